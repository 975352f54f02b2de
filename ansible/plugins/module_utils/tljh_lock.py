# Copyright: the tljh-lock authors
# BSD 3-Clause License (see https://opensource.org/licenses/BSD-3-Clause)
"""Run a tljh-lock zipapp on the managed host and read its JSON.

The modules never reimplement tljh-lock: they run the bundle's own zipapp under the host's
python3, as an admin would by hand, and turn its answer into Ansible's (changed, failed, msg, rc).
"""

from __future__ import annotations

import json
import os

ERROR_PREFIX = "tljh-lock: error: "


def error_message(stderr, rc):
    """tljh-lock's own error as one line: the `tljh-lock: error:` line and what follows it (the
    rest of the message, the hint), joined; else the last line it printed."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith(ERROR_PREFIX):
            # one line; apply's own alignment ("expected"/"actual") is not kept
            parts = [line[len(ERROR_PREFIX):], *lines[index + 1:]]
            return "; ".join(" ".join(part.split()) for part in parts)
    if lines:
        return lines[-1].strip()
    return "tljh-lock exited %d without a message" % rc


class Zipapp:
    """`python3 tljh-lock.pyz COMMAND ... --json` on this host."""

    def __init__(self, module, zipapp, python, root):
        self.module = module
        self.zipapp = zipapp
        self.python = python
        self.root = root
        if not os.path.isfile(zipapp):
            module.fail_json(msg="%s: no such file; the tljh_lock role puts the bundle's "
                             "tljh-lock.pyz there" % zipapp, rc=None)

    def run(self, command, args=(), data=None, ok_codes=(0,)):
        """The command's JSON answer and exit code; fails the module on any other exit code
        with tljh-lock's message and exit code."""
        argv = [self.python, self.zipapp, command, "--root", self.root, *args, "--json"]
        # The zipapp controls the environment of what it runs itself; LC_ALL keeps its
        # messages (and the tools' it quotes) in one language.
        rc, out, err = self.module.run_command(argv, data=data, environ_update={"LC_ALL": "C.UTF-8"})
        if rc not in ok_codes:
            self.module.fail_json(msg=error_message(err, rc), rc=rc, stderr=err)
        try:
            return json.loads(out), rc
        except ValueError:
            self.module.fail_json(msg="tljh-lock %s printed no JSON (is %s a tljh-lock zipapp?)"
                                  % (command, self.zipapp), rc=rc, stdout=out, stderr=err)

    def status(self):
        return self.run("status")[0]


COMMON_ARGS = dict(
    zipapp=dict(type="path", default="/var/lib/tljh-lock/tljh-lock.pyz"),
    python=dict(type="path", default="/usr/bin/python3"),
    root=dict(type="path", default="/"),
)
