"""The reliability campaign (`python -m tests.reliability`): kills, hostile inputs, disk full,
concurrency and rollback against the applier, reported in docs/reliability.md."""
