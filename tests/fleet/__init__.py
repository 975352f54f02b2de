"""The fleet test's parts: a private bridge in a network namespace, the hub poller, the
controller's Ansible (tests/test_fleet.py, tests/test_ansible_collection.py)."""
