"""TLJH's own integration suite against a tljh-lock server with the real TLJH, on a booted Debian 12
with no network (tests/e2e/tljh_suite.py says how it is run, and what differs from TLJH's CI).

2.0.0's suite after `apply --bundle` of TLJH 2.0.0, main's after the upgrade to TLJH main; in
between, a logged-in user's server and files survive the upgrade, and HTTPS set up with
`tljh-config` survives a re-apply; at the end `rollback` brings back a 2.0.0 hub that answers.
Then 2.0.0's suite again in TLJH 2.0's own two-unit layout (no configurable-http-proxy).

Run alone: python -m pytest -m tljh tests/e2e/test_tljh.py -p no:cacheprovider -o addopts=""
(part of `make test-slow`). Needs root, what `.ci/deps test-tljh` lists, PyPI and the npm
registry (to build the bundles and the wheel house) and shared/upstream-facts. Every suite's
results are kept in build/tljh-integration/ (JSON and pytest's output).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import tljh_suite
from tests.e2e.fixtures import *  # noqa: F403  (e2e_rootfs, e2e_workdir)
from tests.e2e.machine import BootedMachine
from tests.e2e.real_bundle import build_real_bundles
from tests.e2e.test_apply import apply, tljh_lock, wait_for_hub
from tljh_lock.bundle import safe_archive

REPO = Path(__file__).resolve().parents[2]
REPORTS = REPO / "build" / "tljh-integration"
KEPT_USER = "kept"
SSL = "/etc/tljh-lock-e2e-ssl"
TRAEFIK_TOML = "/opt/tljh/state/traefik.toml"

pytestmark = [pytest.mark.slow, pytest.mark.tljh]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory,
            vendor_store: Path) -> dict[str, Any]:
    return build_real_bundles(tmp_path_factory.mktemp("e2e-tljh"), vendor_store)


@pytest.fixture(scope="module")
def two_unit_bundles(tmp_path_factory: pytest.TempPathFactory,
                     vendor_store: Path) -> dict[str, Any]:
    """The same without the nodejs and configurable-http-proxy recipes."""
    return build_real_bundles(tmp_path_factory.mktemp("e2e-tljh-two-units"), vendor_store,
                              proxy=False)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tljh_suite.build_wheelhouse(tmp_path_factory.mktemp("tljh-wheels"))


def tljh_config(m: BootedMachine, *args: str) -> str:
    """As an admin runs it (TLJH's tests do too): through sudo and the /usr/bin link."""
    return m.run(["sudo", "tljh-config", *args], timeout=300).stdout


def suite(m: BootedMachine, label: str, layout: str, problems: list[str]) -> None:
    tljh_suite.prepare(m, "old" if label == "2.0.0" else "new")
    results = tljh_suite.run(m, label, REPORTS / f"{layout}-{label}.json")
    summary = {o: sum(r.outcome == o for r in results.values())
               for o in (tljh_suite.PASSED, tljh_suite.FAILED, tljh_suite.SKIPPED,
                         tljh_suite.XFAILED)}
    print(f"[e2e] TLJH {label} suite, {layout}: {summary}")
    found = tljh_suite.check(results, label)
    if found:  # what the hub, the proxy and traefik said, beside the suite's report
        (REPORTS / f"{layout}-{label}.journal").write_text(m.run(
            ["journalctl", "--no-pager", "-u", "jupyterhub", "-u", "configurable-http-proxy",
             "-u", "traefik"], check=False, timeout=120).stdout)
    problems += [f"TLJH {label}, {layout}: {p}" for p in found]


def session(m: BootedMachine, action: str, python: str = tljh_suite.HUB_PYTHON
            ) -> dict[str, Any]:
    """The kept user's session (guest_session.py), driven by hubtraf from `python`'s env."""
    r = m.run([python, "/root/guest_session.py", action, KEPT_USER], check=False, timeout=300)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (IndexError, ValueError):
        return {"ok": False, "output": r.stdout[-2000:] + r.stderr[-2000:]}


def invocation(m: BootedMachine) -> str:
    return m.run(["systemctl", "show", "-P", "InvocationID",
                  f"jupyter-{KEPT_USER}.service"]).stdout.strip()


def served_certificate(m: BootedMachine) -> str:
    return m.run("openssl s_client -connect 127.0.0.1:443 </dev/null 2>/dev/null | "
                 "openssl x509", check=False).stdout


def https_hub(m: BootedMachine) -> int:
    r = m.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
               "https://127.0.0.1/hub/api"], check=False)
    return int(r.stdout or 0)


def wait_for_https_hub(m: BootedMachine, timeout: float = 90.0) -> None:
    """With HTTPS on, TLJH's traefik redirects :80 to :443: the hub is asked there."""
    deadline = time.monotonic() + timeout
    while https_hub(m) != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"/hub/api over HTTPS answers {https_hub(m)}")
        time.sleep(1)


def leaked_password(m: BootedMachine, *outputs: str) -> list[str]:
    """Where the admin's password is found: the files of TLJH's prefix that apply writes (the
    hub's password database keeps its bcrypt hash), /etc, the journal and apply's output."""
    found = m.run(["grep", "-rlsF", tljh_suite.ADMIN_PASSWORD, "/opt/tljh/state",
                   "/opt/tljh/config", "/opt/tljh/installer.log", "/etc"],
                  check=False).stdout.split()
    if tljh_suite.ADMIN_PASSWORD in m.run(["journalctl", "--no-pager", "-o", "cat"]).stdout:
        found.append("the journal")
    found += ["apply's output" for out in outputs if tljh_suite.ADMIN_PASSWORD in out]
    return found


def test_tljh_suite_upgrade_https_rollback(e2e_rootfs: Path, e2e_workdir: Path,
                                           bundles: dict[str, Any], wheelhouse: Path) -> None:
    problems: list[str] = []
    binds = {bundles["dir"]: "/mnt/bundles", wheelhouse: tljh_suite.WHEELS}
    with BootedMachine(e2e_rootfs, e2e_workdir, binds) as m:
        # as TLJH's CI runs its installer (test_admin_installer logs in as this admin)
        first = apply(m, "old", "--admin", f"{tljh_suite.ADMIN}:{tljh_suite.ADMIN_PASSWORD}")
        old_hub = wait_for_hub(m)["version"]
        leaks = leaked_password(m, first.stdout, first.stderr)
        if leaks:
            problems.append(f"the admin's password is in {', '.join(leaks)}")
        # apply renders traefik's configuration as TLJH's own reload does, byte for byte
        rendered = m.run(["sha256sum", TRAEFIK_TOML]).stdout
        tljh_config(m, "reload", "proxy")
        if m.run(["sha256sum", TRAEFIK_TOML]).stdout != rendered:
            problems.append("`tljh-config reload proxy` rendered another traefik.toml than apply")
        wait_for_hub(m)
        verify = tljh_lock(m, "verify", check=False)
        if verify.returncode != 0:
            problems.append(f"verify after `tljh-config reload proxy`: {verify.stderr.strip()}")
        suite(m, "2.0.0", "three-units", problems)

        # a logged-in user with a running server and a file, across the upgrade
        m.copy_in(tljh_suite.GUEST_SESSION, "/root/guest_session.py")
        tljh_config(m, "unset", "services.cull")  # 2.0.0's suite left a 30 s max_age
        # any name logs in (TLJH's default FirstUse only lets existing users in)
        tljh_config(m, "set", "auth.type", "dummy")
        tljh_config(m, "reload", "hub")
        logged_in = session(m, "login")
        assert logged_in["ok"], logged_in
        before = invocation(m)
        # TLJH's test requirements (hubtraf) are in this hub's environment only, which the
        # upgrade keeps beside the new one
        tested_hub = m.run(["readlink", "-f", "/opt/tljh/hub"]).stdout.strip()
        upgraded = json.loads(apply(m, "new", "--json").stdout)
        assert upgraded["generation"] == 2
        wait_for_hub(m)
        kept = session(m, "check", f"{tested_hub}/bin/python3")
        if not kept["ok"] or invocation(m) != before:
            problems.append(f"the upgrade did not keep {KEPT_USER}'s server and file: {kept}, "
                            f"unit {before} -> {invocation(m)}")
        verify = tljh_lock(m, "verify", check=False)
        if verify.returncode != 0:
            problems.append(f"verify after the upgrade: {verify.stderr.strip()}")

        # HTTPS with a manual certificate, set up with tljh-config, survives a re-apply
        m.run(["mkdir", "-p", SSL])
        m.run(["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-keyout", f"{SSL}/ssl.key",
               "-x509", "-days", "1", "-out", f"{SSL}/ssl.cert", "-subj", "/CN=tljh-lock.test"])
        cert = m.run(["cat", f"{SSL}/ssl.cert"]).stdout
        for key, value in (("https.enabled", "true"), ("https.tls.key", f"{SSL}/ssl.key"),
                           ("https.tls.cert", f"{SSL}/ssl.cert")):
            tljh_config(m, "set", key, value)
        tljh_config(m, "reload", "proxy")
        wait_for_https_hub(m)  # traefik restarted
        for when in ("after `tljh-config reload proxy`", "after a re-apply"):
            if served_certificate(m) != cert or https_hub(m) != 200:
                problems.append(f"{when}: :443 serves {served_certificate(m)[:60]!r}, "
                                f"/hub/api over HTTPS answers {https_hub(m)}")
            if when.endswith("proxy`"):
                again = json.loads(apply(m, "new", "--json").stdout)
                wait_for_https_hub(m)
        verify = tljh_lock(m, "verify", check=False)
        if verify.returncode != 0:
            problems.append(f"verify after HTTPS and a re-apply ({again['ran']} ran): "
                            f"{verify.stderr.strip()}")
        tljh_config(m, "set", "https.enabled", "false")
        tljh_config(m, "reload", "proxy")
        wait_for_hub(m)

        suite(m, "main", "three-units", problems)

        tljh_lock(m, "rollback")
        status = json.loads(tljh_lock(m, "status", "--json").stdout)
        assert status["current"]["number"] == 1
        if wait_for_hub(m)["version"] != old_hub:
            problems.append("rollback: the hub is not the 2.0.0 generation's")
        shown = m.run([tljh_suite.HUB_PYTHON, "-m", "pip", "show",
                       "the-littlest-jupyterhub"]).stdout
        if "Version: 2.0.0\n" not in shown:
            problems.append(f"rollback: TLJH is not 2.0.0: {shown}")
    assert not problems, "\n".join(problems)


def test_tljh_suite_in_tljh_two_unit_layout(e2e_rootfs: Path, e2e_workdir: Path,
                                            two_unit_bundles: dict[str, Any],
                                            wheelhouse: Path) -> None:
    """A site without configurable-http-proxy: TLJH 2.0's own layout, the hub driving traefik."""
    problems: list[str] = []
    binds = {two_unit_bundles["dir"]: "/mnt/bundles", wheelhouse: tljh_suite.WHEELS}
    with BootedMachine(e2e_rootfs, e2e_workdir, binds) as m:
        # the admin on apply's stdin, as the Ansible role hands admins over
        first = m.run(["python3", f"/mnt/bundles/{safe_archive.PYZ_NAME}", "apply", "--bundle",
                       "/mnt/bundles/old.bundle", "--admins-from", "-"], timeout=900,
                      input=f"# TLJH's CI admin\n{tljh_suite.ADMIN}:{tljh_suite.ADMIN_PASSWORD}\n")
        wait_for_hub(m)
        leaks = leaked_password(m, first.stdout, first.stderr)
        if leaks:
            problems.append(f"the admin's password is in {', '.join(leaks)}")
        enabled = m.run("ls /etc/systemd/system/multi-user.target.wants").stdout.split()
        assert {"jupyterhub.service", "traefik.service"} <= set(enabled), enabled
        assert "configurable-http-proxy.service" not in enabled
        assert m.run(["test", "-e", "/etc/systemd/system/configurable-http-proxy.service"],
                     check=False).returncode == 1
        suite(m, "2.0.0", "two-units", problems)
    assert not problems, "\n".join(problems)
