#!/usr/bin/python
# Copyright: the tljh-lock authors
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tljh_lock_apply
short_description: Install The Littlest JupyterHub strictly from a tljh-lock lock
version_added: "0.1.0"
description:
  - Runs C(python3 tljh-lock.pyz apply --json) on the host, from a bundle on the host or from a
    lock whose artifacts come from a store mirror (an unpacked bundle served over HTTP).
  - Every artifact is verified against the lock before it is used; a failed apply leaves the
    previous generation in use.
  - Reports C(changed) only when apply ran a step or made a new generation; re-applying the
    same lock is a no-op and reports C(changed=false).
  - In check mode, runs C(apply --dry-run) and reports whether a step would run. With
    O(store_mirrors), the dry run still fills the store (a verified cache); the install is not
    touched.
options:
  zipapp:
    description: The bundle's C(tljh-lock.pyz) on the host.
    type: path
    default: /var/lib/tljh-lock/tljh-lock.pyz
  python:
    description: The system python3 that runs the zipapp and that the hub environment is made from.
    type: path
    default: /usr/bin/python3
  root:
    description: Install below this directory instead of C(/).
    type: path
    default: /
  bundle:
    description: A bundle file on the host; it holds the lock and every artifact.
    type: path
  lock:
    description: A lock file on the host, whose artifacts come from O(store) and the mirrors.
    type: path
  store:
    description: The content-addressed store on the host (default C($TLJH_LOCK_STORE) or C(~/.cache/tljh-lock/store)).
    type: path
  store_mirrors:
    description: URLs of stores or unpacked bundles that serve what O(store) lacks (C(--store-mirror)).
    type: list
    elements: str
    aliases: [store_mirror]
  mirrors:
    description: C(CANONICAL=MIRROR) prefixes to fetch from instead of the upstreams (C(--mirror)).
    type: list
    elements: str
  mirror_config:
    description: A TOML file on the host with a C([mirrors]) table.
    type: path
  allow_downgrade:
    description: Apply a lock older than the current one.
    type: bool
    default: false
  admins:
    description:
      - TLJH admins, each C(NAME) or C(NAME:PASSWORD), as TLJH's installer C(--admin) takes them.
      - Passed to apply on its standard input, never on its command line; never logged.
      - Needs a tljh-lock whose apply reads admins from standard input (C(--admins-from -)).
    type: list
    elements: str
attributes:
  check_mode:
    description: Runs apply's C(--dry-run) and reports whether a step would run.
    support: full
  diff_mode:
    description: Can show a diff of what changed.
    support: none
author:
  - tljh-lock authors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply a bundle copied to the host
  tljh.lock.tljh_lock_apply:
    zipapp: /var/lib/tljh-lock/tljh-lock.pyz
    bundle: /var/lib/tljh-lock/bundles/tljh.bundle

- name: Apply a lock from the fleet's mirror
  tljh.lock.tljh_lock_apply:
    lock: /var/lib/tljh-lock/mirror/tljh.lock.toml
    store: /var/cache/tljh-lock/store
    store_mirrors: [http://mirror.example/tljh/]
"""

RETURN = r"""
generation:
  description: The generation in use afterwards (null in check mode).
  returned: always
  type: int
previous_generation:
  description: The generation in use before (null on a fresh host).
  returned: always
  type: int
lock_sha256:
  description: The sha256 of the applied lock.
  returned: always
  type: str
ran:
  description: The steps that ran (in check mode, the steps that would run).
  returned: always
  type: list
  elements: str
restarted:
  description: The services restarted.
  returned: always
  type: list
  elements: str
steps:
  description: Every step of the plan, with its action (C(run) or C(keep)).
  returned: always
  type: list
  elements: dict
seconds:
  description: How long apply took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tljh.lock.plugins.module_utils.tljh_lock import (
    COMMON_ARGS,
    Zipapp,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            COMMON_ARGS,
            bundle=dict(type="path"),
            lock=dict(type="path"),
            store=dict(type="path"),
            store_mirrors=dict(type="list", elements="str", aliases=["store_mirror"]),
            mirrors=dict(type="list", elements="str"),
            mirror_config=dict(type="path"),
            allow_downgrade=dict(type="bool", default=False),
            admins=dict(type="list", elements="str", no_log=True),
        ),
        required_one_of=[("bundle", "lock")],
        mutually_exclusive=[("bundle", "lock")],
        supports_check_mode=True,
    )
    params = module.params
    admins = params["admins"] or []
    for admin in admins:
        # the password alone must not appear in any output either
        if ":" in admin:
            module.no_log_values.add(admin.split(":", 1)[1])
    tool = Zipapp(module, params["zipapp"], params["python"], params["root"])

    args = []
    if params["bundle"]:
        args += ["--bundle", params["bundle"]]
    else:
        args += ["--lock", params["lock"]]
    if params["store"]:
        args += ["--store", params["store"]]
    for url in params["store_mirrors"] or []:
        args += ["--store-mirror", url]
    for pair in params["mirrors"] or []:
        args += ["--mirror", pair]
    if params["mirror_config"]:
        args += ["--mirror-config", params["mirror_config"]]
    if params["allow_downgrade"]:
        args.append("--allow-downgrade")
    data = None
    if admins:
        # stdin, not argv: every user on the host can read a process's command line
        args += ["--admins-from", "-"]
        data = "\n".join(admins)
    if module.check_mode:
        args.append("--dry-run")

    current = tool.status().get("current") or {}
    before = current.get("number")
    outcome = tool.run("apply", args, data=data)[0]
    if module.check_mode:
        # apply would run these steps, or record a new generation for a new lock
        ran = [step["id"] for step in outcome["steps"] if step["action"] == "run"]
        changed = bool(ran) or outcome["lock-sha256"] != current.get("lock-sha256")
        generation = None
    else:
        ran = outcome["ran"]
        generation = outcome["generation"]
        changed = bool(ran) or generation != before
    module.exit_json(
        changed=changed,
        generation=generation,
        previous_generation=before,
        lock_sha256=outcome["lock-sha256"],
        ran=ran,
        restarted=outcome["restarted"],
        steps=outcome["steps"],
        seconds=outcome["seconds"],
    )


if __name__ == "__main__":
    main()
