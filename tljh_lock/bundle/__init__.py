"""The bundle: one deterministic archive of a lock, its artifacts and the zipapp."""
