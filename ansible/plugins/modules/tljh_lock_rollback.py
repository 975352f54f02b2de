#!/usr/bin/python
# Copyright: the tljh-lock authors
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tljh_lock_rollback
short_description: Return a tljh-lock server to an earlier generation
version_added: "0.1.0"
description:
  - Runs C(python3 tljh-lock.pyz rollback --json) on the host, which points the hub, Node.js
    and proxy back at an earlier generation's directories, re-renders the files and restarts
    the services.
  - Without O(generation) or O(lock_sha256), goes back one generation, and always reports
    C(changed).
  - With a target, rolls back until the target generation is current, and reports
    C(changed=false) when it already is, so that a fleet rollback can be run again safely.
  - Fails before changing anything if no earlier generation matches the target.
options:
  zipapp:
    description: The bundle's C(tljh-lock.pyz) on the host.
    type: path
    default: /var/lib/tljh-lock/tljh-lock.pyz
  python:
    description: The system python3 that runs the zipapp.
    type: path
    default: /usr/bin/python3
  root:
    description: The install's root directory.
    type: path
    default: /
  generation:
    description: Roll back until this generation is current.
    type: int
  lock_sha256:
    description:
      - Roll back until a generation of this lock is current (the most recent such generation
        before the current one).
      - One value serves a whole fleet, whose generation numbers may differ between hosts.
    type: str
attributes:
  check_mode:
    description: Reports the generation it would return to, without rolling back.
    support: full
  diff_mode:
    description: Can show a diff of what changed.
    support: none
author:
  - tljh-lock authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Back to the previous generation
  tljh.lock.tljh_lock_rollback:

- name: Back to the lock the fleet ran before the upgrade
  tljh.lock.tljh_lock_rollback:
    lock_sha256: "{{ tljh_lock_rollback_to }}"
"""

RETURN = r"""
generation:
  description: The generation current afterwards (in check mode, the one it would be).
  returned: always
  type: int
previous_generation:
  description: The generation current before.
  returned: always
  type: int
lock_sha256:
  description: The lock of the generation current afterwards.
  returned: always
  type: str
rollbacks:
  description: How many times rollback ran (in check mode, would run).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tljh.lock.plugins.module_utils.tljh_lock import COMMON_ARGS, Zipapp


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            generation=dict(type="int"),
            lock_sha256=dict(type="str"),
        ),
        mutually_exclusive=[("generation", "lock_sha256")],
        supports_check_mode=True,
    )
    params = module.params
    tool = Zipapp(module, params["zipapp"], params["python"], params["root"])
    status = tool.status()
    current = status["current"]
    if current is None:
        module.fail_json(msg="nothing has been applied here: there is nothing to roll back", rc=1)
    # rollback goes to the highest-numbered generation below the current one
    earlier = sorted((g for g in status["generations"] if g["number"] < current["number"]),
                     key=lambda g: g["number"], reverse=True)
    target = _target(module, current, earlier)
    if target is None:
        module.exit_json(changed=False, generation=current["number"],
                         previous_generation=current["number"],
                         lock_sha256=current["lock-sha256"], rollbacks=0)
    # each rollback lands on the next lower generation, down to the target
    path = [g["number"] for g in earlier]
    path = path[:path.index(target["number"]) + 1]
    if not module.check_mode:
        for expected in path:
            landed = tool.run("rollback")[0]["number"]
            if landed != expected:
                module.fail_json(msg="rollback went to generation %d, not %d; see `tljh-lock "
                                 "status`" % (landed, expected), rc=1)
    module.exit_json(changed=True, generation=target["number"],
                     previous_generation=current["number"],
                     lock_sha256=target["lock-sha256"], rollbacks=len(path))


def _target(module, current, earlier):
    """The generation to end at, or None when the current one is already the target."""
    params = module.params
    if params["generation"] is not None:
        if params["generation"] == current["number"]:
            return None
        wanted = [g for g in earlier if g["number"] == params["generation"]]
        what = "is generation %d" % params["generation"]
    elif params["lock_sha256"]:
        if params["lock_sha256"] == current["lock-sha256"]:
            return None
        wanted = [g for g in earlier if g["lock-sha256"] == params["lock_sha256"]]
        what = "has lock sha256 %s" % params["lock_sha256"]
    else:
        if not earlier:
            module.fail_json(msg="generation %d is the first one: there is no previous "
                             "generation" % current["number"], rc=1)
        return earlier[0]
    if not wanted:
        module.fail_json(msg="no generation before %d %s; apply that lock's bundle instead"
                         % (current["number"], what), rc=1)
    return wanted[0]


if __name__ == "__main__":
    main()
