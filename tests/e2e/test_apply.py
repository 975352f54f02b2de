"""`apply --bundle` on a booted Debian 12 with no network: the real TLJH (2.0.0, then main) and
JupyterHub wheels (resolved against PyPI), real configurable-http-proxy (npm), real Node.js and
traefik binaries repacked into their upstreams' layouts and a stand-in Miniforge.

Run: python -m pytest -m slow tests/e2e/test_apply.py -p no:cacheprovider -o addopts=""
Needs root, what `.ci/deps test-slow` lists and (to build the bundles) PyPI and the npm registry.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures import *  # noqa: F403  (e2e_rootfs, e2e_workdir)
from tests.e2e.machine import BootedMachine
from tests.e2e.real_bundle import build_real_bundles
from tljh_lock.bundle import safe_archive
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_INTEGRITY

UNITS = ("configurable-http-proxy.service", "jupyterhub.service", "traefik.service")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory,
            vendor_store: Path) -> dict[str, Any]:
    """Two bundles: "old" (TLJH 2.0.0) and "new" (TLJH main), for this arch, a corrupted
    "bad" one, plus the bundle's zipapp, all in one directory the machine mounts read-only."""
    return build_real_bundles(tmp_path_factory.mktemp("e2e-apply"), vendor_store)


def tljh_lock(m: BootedMachine, *args: str, check: bool = True) -> Any:
    """The tool as an air-gapped admin runs it: the bundle's zipapp under the system python3."""
    return m.run(["python3", f"/mnt/bundles/{safe_archive.PYZ_NAME}", *args], check=check,
                 timeout=900)


def apply(m: BootedMachine, label: str, *extra: str, check: bool = True) -> Any:
    return tljh_lock(m, "apply", "--bundle", f"/mnt/bundles/{label}.bundle", *extra,
                     check=check)


def wait_for_hub(m: BootedMachine, timeout: float = 90.0) -> dict[str, Any]:
    """GET /hub/api through traefik (port 80) -> configurable-http-proxy -> JupyterHub."""
    deadline = time.monotonic() + timeout
    while True:
        r = m.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1/hub/api"], check=False)
        if r.returncode == 0 and r.stdout.startswith("{"):
            return json.loads(r.stdout)  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            logs = m.run("journalctl --no-pager -n 80 -u jupyterhub -u configurable-http-proxy "
                         "-u traefik", check=False).stdout
            raise AssertionError(f"the hub did not answer: {r.stdout} {r.stderr}\n{logs}")
        time.sleep(1)


def snapshot(m: BootedMachine) -> str:
    return m.run("cd / && find etc/systemd/system etc/sudoers.d usr/bin/tljh-config opt/tljh "
                 "-maxdepth 1 -printf '%p %l\\n' | sort; cat opt/tljh/state/state.json; "
                 "getent group jupyterhub-users jupyterhub-admins").stdout


@pytest.mark.slow
def test_apply_on_a_booted_debian(e2e_rootfs: Path, e2e_workdir: Path,
                                  bundles: dict[str, Any]) -> None:
    with BootedMachine(e2e_rootfs, e2e_workdir, {bundles["dir"]: "/mnt/bundles"}) as m:
        started = time.monotonic()
        first = json.loads(apply(m, "old", "--json").stdout)
        print(f"[e2e] fresh apply {time.monotonic() - started:.1f} s: {first['ran']}")
        assert first["generation"] == 1
        for unit in UNITS:
            assert m.run(["systemctl", "is-active", unit], check=False).stdout.strip() == \
                "active", m.run(["systemctl", "status", unit], check=False).stdout
        api = wait_for_hub(m)
        installed = m.run(["/opt/tljh/hub/bin/python3", "-c",
                           "import jupyterhub; print(jupyterhub.__version__)"]).stdout.strip()
        assert api["version"] == installed

        assert m.run(["getent", "group", "jupyterhub-users"]).returncode == 0
        m.run(["useradd", "-m", "-G", "jupyterhub-admins", "alice"])
        m.run(["useradd", "-m", "-G", "jupyterhub-users", "bob"])
        assert m.run(["sudo", "-n", "id", "-u"], user="alice").stdout.strip() == "0"
        assert m.run(["sudo", "-n", "id", "-u"], user="bob", check=False).returncode != 0
        assert m.run(["readlink", "/usr/bin/tljh-config"]).stdout.strip() == \
            "/opt/tljh/hub/bin/tljh-config"
        assert m.run(["tljh-config", "--help"]).stdout.startswith("usage: tljh-config")
        verify = m.run(["systemd-analyze", "verify", *(f"/etc/systemd/system/{u}" for u in UNITS)],
                       check=False)
        assert verify.returncode == 0 and verify.stderr == "", verify.stderr
        assert m.run(["stat", "-c", "%a %U", "/opt/tljh/state/proxy.env"]).stdout.strip() == \
            "600 root"
        assert tljh_lock(m, "verify").returncode == 0

        m.reboot()
        assert wait_for_hub(m)["version"] == installed

        started = time.monotonic()
        again = json.loads(apply(m, "old", "--json").stdout)
        print(f"[e2e] no-op re-apply {time.monotonic() - started:.2f} s")
        assert again["ran"] == [] and again["generation"] == 1

        # a corrupted artifact: the bundle is refused before anything changes
        before = snapshot(m)
        bad = apply(m, "bad", check=False)
        assert bad.returncode == EXIT_INTEGRITY and bundles["victim"] in bad.stderr, bad.stderr
        assert snapshot(m) == before

        upgraded = json.loads(apply(m, "new", "--json").stdout)
        assert upgraded["generation"] == 2
        # only what changed, and traefik's configuration rendered by the new TLJH; the
        # simplest plugin is pinned to the new tree too, and its hooks run again
        assert upgraded["ran"] == ["hub", "tljh-traefik", "tljh-plugins", "link:/opt/tljh/hub"]
        wait_for_hub(m)
        assert "Version: 2.0.1.dev0\n" in m.run(["/opt/tljh/hub/bin/python3", "-m", "pip", "show",
                                                "the-littlest-jupyterhub"]).stdout

        refused = apply(m, "old", check=False)
        assert refused.returncode == EXIT_FAILURE and "older" in refused.stderr
        assert json.loads(tljh_lock(m, "status", "--json").stdout)["current"]["number"] == 2
        wait_for_hub(m)

        # the way back is a rollback: the previous generation's directories, restarted
        tljh_lock(m, "rollback")
        assert json.loads(tljh_lock(m, "status", "--json").stdout)["current"]["number"] == 1
        assert wait_for_hub(m)["version"] == installed
        assert "Version: 2.0.0\n" in m.run(["/opt/tljh/hub/bin/python3", "-m", "pip", "show",
                                           "the-littlest-jupyterhub"]).stdout
        assert tljh_lock(m, "verify").returncode == 0
