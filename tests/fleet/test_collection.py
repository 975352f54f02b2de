"""The collection in ansible/ as Ansible's own tools judge it: ansible-lint and ansible-test
sanity, without containers (ansible-test's --docker and --remote are out of reach here).

Run: make test-fleet (the tools come from .venv-fleet)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.machine import run_host
from tests.fleet.controller import BIN, TOOLS_HOME, collection_tree, require_tools, tool_env

pytestmark = pytest.mark.fleet

# The Pythons the collection's modules may meet on a server (tljh-lock's zipapp needs 3.9+;
# ansible-core 2.19 runs modules on 3.8 to 3.14): ansible-test's compile and import tests run
# on whichever of them this machine has, on PATH or under pyenv.
TARGET_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
# ansible-test 2.19 bootstraps pip 24.2 in each sanity venv with a script from a host out of
# reach; its message names the cache file it reads instead.
ANSIBLE_TEST_PIP = "24.2"
PIP_BOOTSTRAP = '''\
"""Stand-in for ansible-test's pip bootstrap script, written by tests/fleet/test_collection.py:
ensurepip's own pip installs the pip asked for from the package index."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
'''


def python_dirs() -> tuple[list[str], list[str]]:
    """(directories to put on PATH for the target Pythons found, the versions missing)."""
    dirs, missing = [], []
    for version in TARGET_PYTHONS:
        found = sorted(PYENV.glob(f"{version}.*/bin/python{version}"))
        if found:
            dirs.append(str(found[-1].parent))
        elif not any(Path(d, f"python{version}").exists() for d in ("/usr/bin", "/usr/local/bin")):
            missing.append(version)
    return dirs, missing


def test_ansible_lint_is_clean(tmp_path: Path) -> None:
    require_tools()
    tree = collection_tree(tmp_path)
    result = run_host(["env", "-C", tree, BIN / "ansible-lint", "--offline", "--nocolor"],
                      check=False, timeout=600,
                      env=tool_env(tmp_path / "home", ANSIBLE_COLLECTIONS_PATH=str(tmp_path)))
    out = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, out
    print(f"\n[ansible] ansible-lint: {out.strip().splitlines()[-1]}")


def test_ansible_test_sanity(tmp_path: Path) -> None:
    require_tools()
    tree = collection_tree(tmp_path)
    run_host(["git", "init", "-q", tree])  # ansible-test lists a collection's files with git
    cache = TOOLS_HOME / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / f"get_pip_{ANSIBLE_TEST_PIP.replace('.', '_')}.py").write_text(PIP_BOOTSTRAP)
    dirs, missing = python_dirs()
    env = tool_env(TOOLS_HOME, PATH=":".join([str(BIN), *dirs, tool_env(TOOLS_HOME)["PATH"]]))
    result = run_host(["env", "-C", tree, BIN / "ansible-test", "sanity", "--color", "no", "-v"],
                      check=False, timeout=1800, env=env)
    out = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, out[-12000:]
    ran: dict[str, bool] = {}  # test -> had files to check
    pythons = []
    test = ""
    for line in out.splitlines():
        if line.startswith('Running sanity test "'):
            test = line.split('"')[1]
            ran[test] = True
            if test == "compile":
                pythons.append(line.rsplit(" ", 1)[-1])
        elif line.strip() == "No tests applicable.":
            ran[test] = False
    idle = sorted(name for name, applied in ran.items() if not applied)
    print(f"\n[ansible] ansible-test sanity: {len(ran) - len(idle)} tests passed, "
          f"{len(idle)} with no file of theirs ({', '.join(idle)}); compile and import on "
          f"Python {', '.join(pythons)}; no interpreter here for {', '.join(missing) or '-'}")
    assert ran.get("validate-modules") and ran.get("pylint") and ran.get("import"), out
