"""TLJH's own integration suite, run unchanged against a tljh-lock server as TLJH's CI runs it
(its .github/integration-test.py): TLJH's test requirements pip-installed into the hub
environment (from a wheel house built on the host: the machine has no network), then the six
test files of its CI workflow, in the workflow's order, with the hub's python, from the source
tree of the TLJH installed (in /srv/src, where TLJH's CI puts it), with cwd `/`: the cwd of
`apply` too, as TLJH's CI runs its installer and pytest from one directory (the simplest
plugin's tljh_post_install writes a file there, and its test reads it).

Three things differ from TLJH's CI, all outside the test files:
- `localhost` resolves to 127.0.0.1 only. JupyterHub 5 ties the anonymous XSRF token to the
  client's address; with a dual-stack `localhost`, aiohttp (hubtraf) may GET the login page
  over ::1 and POST it over 127.0.0.1, and the login fails with a 403.
- pytest gets `--maxfail` raised (TLJH's pyproject.toml stops at the first failure) and a
  JUnit report, so that every test's result is known.
- each phase of a test gets at most TIMEOUT seconds (tljh_timeout.py, a plugin of ours):
  TLJH's `tljh-config reload` polls the hub until it answers, and would wait forever.

`EXPECTED` names every test that does not pass, with its cause; `check` holds a run to it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.machine import BootedMachine
from tests.e2e.real_bundle import FACTS, tljh_tree
from tljh_lock.core import runner, treehash

HERE = Path(__file__).resolve().parent
PINS = HERE / "tljh-test-requirements.txt"
GUEST_SESSION = HERE / "guest_session.py"
# TLJH's CI workflow (.github/workflows/integration-test.yaml), in its order
TEST_FILES = ("test_hub.py", "test_proxy.py", "test_install.py", "test_extensions.py",
              "test_admin_installer.py", "test_simplest_plugin.py")
# integration-tests/requirements.txt; hubtraf comes from its archive, not PyPI
REQUIREMENTS = ("pytest", "pytest-cov", "pytest-asyncio", "hubtraf")
TIMEOUT = 300  # seconds per phase of a test; the slowest (the idle culler's) takes a minute
TIMEOUT_PLUGIN = HERE / "tljh_timeout.py"
PLUGINS = "/root/tljh-e2e-plugins"
HUBTRAF_REPO = "yuvipanda/hubtraf"
HUBTRAF_COMMIT = "538ec68c8897f07f8edfc9ac63a10966892fda20"
HUBTRAF_TREE_HASH = "h1:7u+xctqmyVmo/JElXTN0hVsWd902F4+RQdy314lGsLQ="
HUB_PYTHON = "/opt/tljh/hub/bin/python3"
# the admin TLJH's CI sets up with its installer's --admin (test_admin_installer logs in as it)
ADMIN, ADMIN_PASSWORD = "test-admin-username", "test-admin-password"
SOURCE = "/srv/src"
WHEELS = "/mnt/tljh-wheels"

PASSED, FAILED, SKIPPED, XFAILED = "passed", "failed", "skipped", "xfailed"

# Causes outside this project, which cannot be reached here.
NOT_OURS_SERVEREXTENSIONS = (
    "TLJH 2.0.0's test reads `jupyter server extension list` from stderr; jupyter-server "
    "2.17+ prints the list to stdout. TLJH main reads both (the test passes there).")
NOT_OURS_CONDA = ("needs conda packages (tqdm from conda-forge, csvtk from bioconda): no conda "
                  "and no conda channel can be reached here (the Miniforge is a stand-in)")
NOT_OURS_APT = "needs `sl` from Debian's archive, which the machine (no network) cannot reach"
XFAIL_UPSTREAM = "marked xfail by TLJH itself (admin-write permissions are not implemented)"
SKIP_UPSTREAM = "skipped by TLJH itself (admin-install permissions are not implemented)"

_UPSTREAM_MARKS = {
    "test_install.py::test_admin_writable": (XFAILED, XFAIL_UPSTREAM),
    "test_install.py::test_pip_install[jupyterhub-admins-True]": (XFAILED, XFAIL_UPSTREAM),
    "test_install.py::test_pip_upgrade[jupyterhub-admins-True]": (SKIPPED, SKIP_UPSTREAM),
}
# The simplest plugin is locked (real_bundle.simplest_plugin) with its apt and conda packages
# acknowledged as not installed: the rest of test_simplest_plugin.py passes.
_PLUGIN = {f"test_simplest_plugin.py::{name}": (FAILED, reason) for name, reason in (
    ("test_tljh_extra_user_conda_packages", NOT_OURS_CONDA),
    ("test_conda_packages", NOT_OURS_CONDA),
    ("test_tljh_extra_apt_packages", NOT_OURS_APT),
)}
# label ("2.0.0", "main") -> test id -> (outcome, cause); every other test passes
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "2.0.0": {**_UPSTREAM_MARKS, **_PLUGIN,
              "test_extensions.py::test_serverextensions": (FAILED, NOT_OURS_SERVEREXTENSIONS)},
    "main": {**_UPSTREAM_MARKS, **_PLUGIN},
}
TOTAL = 39  # tests in the six files, at both commits


@dataclass(frozen=True)
class Result:
    outcome: str
    message: str  # the first line of the failure or skip reason


def hubtraf_archive() -> Path:
    return FACTS / "github.com" / HUBTRAF_REPO / "archive" / f"{HUBTRAF_COMMIT}.tar.gz"


def build_wheelhouse(directory: Path) -> Path:
    """Every wheel the test requirements need on this machine's python (the guest's: both are
    Debian 12's 3.11): the pinned ones from PyPI, hubtraf built from its archive, whose tree
    hash is checked first."""
    directory.mkdir(parents=True, exist_ok=True)
    archive = hubtraf_archive()
    files = treehash.archive_files(archive.read_bytes(), str(archive))
    actual = treehash.tree_hash(files.items())
    if actual != HUBTRAF_TREE_HASH:
        raise RuntimeError(f"{archive}: tree hash {actual}, expected {HUBTRAF_TREE_HASH}")
    pip = [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="hubtraf-") as tmp:
        tree = Path(tmp) / "hubtraf"
        for rel, data in files.items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        runner.run([*pip, "wheel", "--no-deps", "--no-cache-dir", "--wheel-dir", directory, tree],
                   what="building hubtraf's wheel", timeout=600)
    runner.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
                "--dest", directory, "-r", PINS], what="downloading the test requirements",
               timeout=900)
    return directory


def prepare(m: BootedMachine, label: str) -> None:
    """What TLJH's CI does after its installer: the test requirements into the hub environment,
    the source tree (of the TLJH version installed) at /srv/src; and `localhost` IPv4 only."""
    m.run(["sed", "-i", r"s/^::1[[:space:]].*/::1\tip6-localhost ip6-loopback/", "/etc/hosts"])
    assert m.run(["getent", "ahosts", "localhost"]).stdout.split()[0] == "127.0.0.1"
    m.run([HUB_PYTHON, "-m", "pip", "install", "--no-index", "--find-links", WHEELS,
           "--disable-pip-version-check", *REQUIREMENTS], timeout=600)
    m.run(["mkdir", "-p", PLUGINS])
    m.copy_in(TIMEOUT_PLUGIN, f"{PLUGINS}/tljh_timeout.py")
    m.run(["rm", "-rf", SOURCE])
    with tempfile.TemporaryDirectory(prefix="tljh-src-") as tmp:
        tree = Path(tmp)
        for rel, data in tljh_tree(label).items():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(data)
        m.copy_in(tree, SOURCE)


def run(m: BootedMachine, label: str, report: Path) -> dict[str, Result]:
    """The six files, with the hub's python, from cwd `/`; every test's result by its id."""
    junit = f"/root/tljh-{label}.xml"
    proc = m.run([HUB_PYTHON, "-m", "pytest", *(f"{SOURCE}/integration-tests/{f}"
                                                 for f in TEST_FILES),
                  "--maxfail=1000", "-p", "tljh_timeout", f"--junitxml={junit}",
                  "-p", "no:cacheprovider"],
                 cwd="/", timeout=5400, check=False,
                 env={"PYTHONPATH": PLUGINS, "TLJH_TEST_TIMEOUT": str(TIMEOUT)})
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".log").write_text(proc.stdout + proc.stderr)
    results = parse_junit(m.run(["cat", junit]).stdout)
    report.write_text(json.dumps({k: [r.outcome, r.message] for k, r in results.items()},
                                 indent=1) + "\n")
    return results


def parse_junit(text: str) -> dict[str, Result]:
    results: dict[str, Result] = {}
    for case in ET.fromstring(text).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        test_id = f"{module}.py::{case.get('name')}"
        outcome, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, message = FAILED, child.get("message", "")
            elif child.tag == "skipped":
                outcome = XFAILED if child.get("type") == "pytest.xfail" else SKIPPED
                message = child.get("message", "")
        results[test_id] = Result(outcome, message.strip().splitlines()[0] if message.strip()
                                  else "")
    return results


def check(results: dict[str, Result], label: str) -> list[str]:
    """How a run differs from EXPECTED[label]: every other test must pass."""
    expected = EXPECTED[label]
    problems = [f"{len(results)} tests ran, not {TOTAL}"] if len(results) != TOTAL else []
    for test_id, result in sorted(results.items()):
        want = expected.get(test_id, (PASSED, ""))[0]
        if result.outcome != want:
            problems.append(f"{test_id}: {result.outcome}, expected {want}"
                            + (f" ({result.message})" if result.message else ""))
    problems += [f"{test_id}: did not run" for test_id in sorted(set(expected) - set(results))]
    return problems


def table(reports: dict[str, Path]) -> str:
    """A markdown table of every test's result in each report (column -> JSON file of `run`),
    with the cause EXPECTED names for a test that does not pass."""
    results = {column: json.loads(path.read_text()) for column, path in reports.items()}
    tests = list(dict.fromkeys(t for found in results.values() for t in found))  # run order
    causes = {t: why for expected in EXPECTED.values() for t, (_, why) in expected.items()}
    lines = ["| test | " + " | ".join(results) + " | cause, where it does not pass |",
             "| --- |" + " --- |" * (len(results) + 1)]
    for test in tests:
        cells = [results[c].get(test, ["-"])[0] for c in results]
        cause = causes.get(test, "") if any(cell != PASSED for cell in cells) else ""
        lines.append(f"| `{test}` | " + " | ".join(cells) + f" | {cause} |")
    totals = [" ".join(f"{o} {sum(r[0] == o for r in found.values())}"
                       for o in (PASSED, FAILED, SKIPPED, XFAILED)) for found in results.values()]
    lines.append("| **total** | " + " | ".join(totals) + " | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """`python -m tests.e2e.tljh_suite COLUMN=REPORT.json ...`: the table of docs/tljh-
    integration.md from the reports `run` keeps (build/tljh-integration/)."""
    print(table({arg.split("=", 1)[0]: Path(arg.split("=", 1)[1]) for arg in argv}), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
