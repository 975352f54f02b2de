"""The fleet test's parts: a private bridge in a network namespace, the hub poller, the
controller's Ansible (tests/fleet/test_rollout.py, tests/fleet/test_collection.py)."""
