"""The bundle, server side: one deterministic tar of a lock, its artifacts, the built wheels
and the zipapp (write.py); its manifest and the safe reader that checks every member before
writing a byte (safe_archive.py, which apply uses); the zipapp of the server side
(zipapp.py). May import store/, upstream/, lock/ and core/."""
