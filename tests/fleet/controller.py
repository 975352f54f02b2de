"""The Ansible controller of the fleet test: ansible-core from PyPI in its own venv
(.venv-fleet, from tests/fleet/requirements.txt), the collection built and installed as a site
would, and playbooks run with their output kept and their recap read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.e2e.machine import HOST_PATH, run_host

REPO = Path(__file__).resolve().parents[2]
COLLECTION = REPO / "ansible"
VENV = REPO / ".venv-fleet"
BIN = VENV / "bin"
# ansible-test keeps its sanity venvs below HOME: kept between runs, like the project's store
TOOLS_HOME = REPO / "build" / "fleet-home"

RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")
FATAL = re.compile(r"^fatal: \[([^\]]+)\]: FAILED! => (\{.*)$")


def require_tools() -> None:
    if not (BIN / "ansible-playbook").exists():
        pytest.fail(f"{BIN}/ansible-playbook is missing: run `make test-fleet`, which makes "
                    f"{VENV.name} from tests/fleet/requirements.txt")


def tool_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of every Ansible tool the tests run: this venv first on PATH, a HOME of
    the test's own (~/.ansible), no pip configuration from the machine, no colours."""
    env = {"HOME": str(home), "PATH": f"{BIN}:{HOST_PATH}", "PIP_CONFIG_FILE": "/dev/null",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0",
           "NO_COLOR": "1"}
    env.update(extra)
    return env


def collection_tree(dest: Path) -> Path:
    """A copy of the collection at DEST/ansible_collections/tljh/lock, the layout ansible-test
    and ansible-lint resolve `tljh.lock.*` names in."""
    tree = dest / "ansible_collections" / "tljh" / "lock"
    shutil.copytree(COLLECTION, tree, ignore=shutil.ignore_patterns("*.tar.gz", "output"))
    return tree


def build_and_install(work: Path, home: Path) -> Path:
    """`ansible-galaxy collection build` then `install` of the tarball into WORK/collections."""
    env = tool_env(home)
    run_host([BIN / "ansible-galaxy", "collection", "build", COLLECTION, "--output-path",
              work / "dist", "--force"], env=env, timeout=300)
    tarballs = sorted((work / "dist").glob("tljh-lock-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    run_host([BIN / "ansible-galaxy", "collection", "install", tarballs[0], "-p",
              work / "collections", "--force"], env=env, timeout=300)
    return work / "collections"


@dataclass
class Run:
    """One ansible-playbook run: its exit code, its output, and its PLAY RECAP."""

    name: str
    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line in self.output.splitlines():
            m = RECAP.match(line)
            if m:
                self.recap[m.group(1)] = {"ok": int(m.group(2)), "changed": int(m.group(3)),
                                          "unreachable": int(m.group(4)),
                                          "failed": int(m.group(5))}

    def changed(self) -> list[str]:
        return sorted(host for host, counts in self.recap.items() if counts["changed"])

    def failed(self) -> list[str]:
        return sorted(host for host, counts in self.recap.items()
                      if counts["failed"] or counts["unreachable"])

    def failure(self, host: str) -> Optional[dict[str, Any]]:
        """The result Ansible printed for the task that failed on `host` (on one line, or
        indented over several with -v and more)."""
        lines = self.output.splitlines()
        for index, line in enumerate(lines):
            m = FATAL.match(line)
            if m and m.group(1) == host:
                text = m.group(2)
                for more in lines[index + 1:]:
                    try:
                        return json.loads(text)  # type: ignore[no-any-return]
                    except ValueError:
                        text += "\n" + more
                return json.loads(text)  # type: ignore[no-any-return]
        return None

    def explain(self) -> str:
        return f"ansible-playbook {self.name} exited {self.rc}:\n{self.output[-12000:]}"


class Controller:
    """ansible-playbook inside the bridge's namespace, logging in with the test's own key and
    trusting only the machines' own host keys."""

    def __init__(self, work: Path, prefix: Sequence[str], collections: Path, key: Path,
                 known_hosts: Path) -> None:
        self.work = work
        self.prefix = list(prefix)
        self.home = work / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        self.config = work / "ansible.cfg"
        ssh_args = (f"-o ControlMaster=auto -o ControlPersist=120s -o IdentitiesOnly=yes "
                    f"-o IdentityFile={key} -o UserKnownHostsFile={known_hosts} "
                    f"-o StrictHostKeyChecking=yes")
        self.config.write_text(f"""[defaults]
collections_path = {collections}
forks = 3
host_key_checking = True
interpreter_python = /usr/bin/python3
retry_files_enabled = False

[ssh_connection]
ssh_args = {ssh_args}
""")
        self.runs = 0

    def playbook(self, playbook: str, inventory: Path, *args: str, timeout: float = 2400) -> Run:
        self.runs += 1
        env = tool_env(self.home, ANSIBLE_CONFIG=str(self.config))
        argv = [*self.prefix, BIN / "ansible-playbook", "-i", inventory, playbook, *args]
        started = time.monotonic()
        try:
            result = run_host(argv, check=False, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode(errors="replace")
            raise AssertionError(f"ansible-playbook {playbook} still running after {timeout} s"
                                 f":\n{out[-8000:]}") from None
        output = (result.stdout + result.stderr).decode(errors="replace")
        log = self.logs / f"{self.runs:02d}-{playbook.rsplit('.', 1)[-1]}.log"
        log.write_text(output)
        return Run(playbook, result.returncode, output, time.monotonic() - started)
