#!/usr/bin/python
# Copyright: the tljh-lock authors
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tljh_lock_info
short_description: The applied generation of a tljh-lock server, and its drift
version_added: "0.1.0"
description:
  - Runs C(tljh-lock.pyz status --json) and C(tljh-lock.pyz verify --json) on the host.
  - Changes nothing; drift is reported in RV(drift), not as a failure, so that a playbook can
    gather a whole fleet's state before it decides.
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
attributes:
  check_mode:
    description: Changes nothing in either mode.
    support: full
  diff_mode:
    description: Can show a diff of what changed.
    support: none
author:
  - tljh-lock authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the server's state
  tljh.lock.tljh_lock_info:
  register: tljh

- name: Fail on drift
  ansible.builtin.assert:
    that: tljh.as_applied
    fail_msg: "{{ tljh.drift | join('; ') }}"
"""

RETURN = r"""
current:
  description: The generation in use (number, lock-sha256, dirs, versions, applied-at), or null.
  returned: always
  type: dict
generations:
  description: Every kept generation.
  returned: always
  type: list
  elements: dict
as_applied:
  description: Whether C(verify) found the install exactly as applied.
  returned: always
  type: bool
drift:
  description: "What C(verify) found changed since apply, one line each (C(path: message))."
  returned: always
  type: list
  elements: str
drift_fields:
  description: The same as C(verify --json) gives it, each with its fields (kind, message,
    path, component, package, version, expected, actual, repair; those that apply).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tljh.lock.plugins.module_utils.tljh_lock import COMMON_ARGS, Zipapp


def main():
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    params = module.params
    tool = Zipapp(module, params["zipapp"], params["python"], params["root"])
    status = tool.status()
    verify = tool.run("verify", ok_codes=(0, 1))[0]  # 1: drift, reported in the JSON
    module.exit_json(changed=False, current=status["current"],
                     generations=status["generations"], as_applied=verify["ok"],
                     drift=[_line(found) for found in verify["drift"]],
                     drift_fields=verify["drift"])


def _line(found):
    """verify's own line for people, from its fields."""
    return "%s: %s" % (found["path"], found["message"]) if found.get("path") else found["message"]


if __name__ == "__main__":
    main()
