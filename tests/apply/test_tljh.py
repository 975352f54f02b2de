"""The applier and TLJH's own tools, offline, into a temporary --root (the fixture scenario of
tests/apply/test_engine.py, whose TLJH has a `tljh.traefik` with TLJH's interface): TLJH's modes,
traefik's configuration rendered by TLJH, tljh-lock's route in TLJH's rules directory, what an
admin changes with tljh-config kept, a locked pip installed, every locked distribution
verified, and TLJH 2.0's own two-unit layout without configurable-http-proxy."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.apply.test_engine import apply
from tests.support.apply_scenario import PIP_WHEEL, Fixture, build_fixture, make_root, snapshot
from tests.upstream.artifacts import build_wheel
from tljh_lock.apply import engine, render
from tljh_lock.apply import layout as L
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.verify import admin_installed, managed, verify
from tljh_lock.core.errors import EXIT_FAILURE, TljhLockError
from tljh_lock.lock import file as lockfile
from tljh_lock.resolve.write import dumps as dump_lock


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    built = build_fixture(tmp_path_factory.mktemp("apply-tljh-fixture"))
    # the user set with a pip of its own, as TLJH's installer makes sure of
    lock = lockfile.load(built.locks["old"])
    pip = next(p for p in lock.components["hub"].packages if p.name == "pip")
    user = lock.components["user-env"]
    lock.components["user-env"] = dataclasses.replace(user, packages=(*user.packages, pip))
    built.locks["old-user-pip"] = built.locks["old"].with_name("old-user-pip.lock.toml")
    built.locks["old-user-pip"].write_text(dump_lock(lock))
    return built


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


UNITS = "etc/systemd/system"
WANTS = f"{UNITS}/multi-user.target.wants"


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_tljh_paths_modes_and_traefik_rendered_by_tljh(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    tljh_root = root / "opt/tljh"
    for directory in ("state", "config", "config/jupyterhub_config.d",
                      "config/traefik_config.d", "state/rules"):
        assert mode(tljh_root / directory) == 0o700, directory
    assert mode(tljh_root / "installer.log") == 0o500
    assert (tljh_root / "config/config.yaml").read_text() == "{}\n"
    assert mode(tljh_root / "config/config.yaml") == 0o600
    secret = (tljh_root / "state/traefik-api.secret").read_bytes()
    assert len(secret) == 64 and mode(tljh_root / "state/traefik-api.secret") == 0o600
    # traefik's configuration is TLJH's own (its tljh.traefik, run with the hub's python)
    static = tljh_root / "state/traefik.toml"
    assert f'directory = "{tljh_root}/state/rules"' in static.read_text()
    for name in ("traefik.toml", "rules/dynamic.toml", "rules/rules.toml", "acme.json"):
        assert mode(tljh_root / "state" / name) == 0o600, name
    # tljh-lock's route to the proxy, in TLJH's rules directory; traefik's API locked
    route = (tljh_root / "state/rules/tljh-lock-proxy.toml").read_text()
    assert 'url = "http://127.0.0.1:15003"' in route
    assert 'users = ["api_admin:!"]' in route
    assert mode(tljh_root / "state/rules/tljh-lock-proxy.toml") == 0o600
    assert not (tljh_root / "state/traefik-dynamic.toml").exists()
    layout = Layout(root)
    assert verify(layout) == []
    assert managed(layout) == sorted(
        f"/opt/tljh/{p}" for p in ("config/config.yaml", "state/acme.json",
                                   "state/rules/dynamic.toml", "state/rules/rules.toml",
                                   "state/traefik.toml"))


def test_what_an_admin_changes_with_tljh_config_is_kept(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    state, config = root / "opt/tljh/state", root / "opt/tljh/config"
    # tljh-config set ... and reload proxy, and an admin's own traefik files
    (config / "config.yaml").write_text("https:\n  enabled: true\n")
    (state / "traefik.toml").write_text("# re-rendered by tljh-config reload proxy\n")
    (state / "rules/extra_rules.toml").write_text("[http.routers]\n")
    (config / "traefik_config.d/extra.toml").write_text("[entryPoints]\n")
    admin = {p: p.read_bytes() for p in (config / "config.yaml", state / "traefik.toml",
                                         state / "rules/extra_rules.toml")}
    assert verify(Layout(root)) == []
    assert apply(fixture, root).ran == []
    assert {p: p.read_bytes() for p in admin} == admin
    # tljh-lock's own route is drift, repaired by the next apply; the admin's files stay
    route = state / "rules/tljh-lock-proxy.toml"
    route.write_text(route.read_text().replace("15003", "9999"))
    (drift,) = verify(Layout(root))
    assert str(drift).startswith(f"{render.TRAEFIK_ROUTE}: sha256 ")
    assert (drift.kind, drift.path, drift.actual) == (
        "changed", render.TRAEFIK_ROUTE, hashlib.sha256(route.read_bytes()).hexdigest())
    assert apply(fixture, root).ran == [f"file:{render.TRAEFIK_ROUTE}"]
    assert "15003" in route.read_text()
    assert {p: p.read_bytes() for p in admin} == admin
    assert verify(Layout(root)) == []
    assert apply(fixture, root).ran == []


def test_modes_that_let_users_in_are_tightened(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    prefix = root / "opt/tljh"
    (prefix / "state").chmod(0o755)  # as an earlier tljh-lock left it
    (prefix / "config/config.yaml").write_text("auth:\n  type: dummy\n")
    (prefix / "config/config.yaml").chmod(0o644)  # tljh-config recreating a deleted file
    (prefix / "installer.log").chmod(0o644)
    problems = verify(Layout(root))
    assert any("TLJH's directories and files" in str(p) and p.kind == "not-in-place"
               for p in problems), problems
    assert apply(fixture, root).ran == ["tljh-paths"]
    assert mode(prefix / "state") == 0o700 and mode(prefix / "installer.log") == 0o500
    assert mode(prefix / "config/config.yaml") == 0o600
    assert (prefix / "config/config.yaml").read_text() == "auth:\n  type: dummy\n"
    assert verify(Layout(root)) == []


def test_a_locked_pip_is_installed_and_every_distribution_verified(fixture: Fixture,
                                                                    root: Path) -> None:
    apply(fixture, root, "old-user-pip")
    user = root / "opt/tljh/user"
    pip_version = PIP_WHEEL.name.split("-")[1]  # type: ignore[union-attr]
    out = subprocess.run([user / "bin/python", "-m", "pip", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith(f"pip {pip_version} from {user}/lib/")
    # compiled at install, as TLJH's pip does: the users cannot write bytecode there
    assert list(user.glob("lib/python3*/site-packages/fx_web/__pycache__/*.pyc"))
    assert verify(Layout(root)) == []
    # a distribution gone from an environment is named, with the version the lock has, and
    # installed again by a plain apply
    for info in user.glob("lib/python3*/site-packages/fx_web-*.dist-info"):
        shutil.rmtree(info)
    (drift,) = verify(Layout(root))
    assert str(drift) == "/opt/tljh/user: fx-web 1.1 is not installed"
    assert drift.to_dict() == {
        "kind": "not-installed", "message": "fx-web 1.1 is not installed",
        "path": "/opt/tljh/user", "component": "user-env", "package": "fx-web",
        "version": "1.1", "expected": "1.1", "repair": drift.repair}
    assert apply(fixture, root, "old-user-pip").ran == ["user-env"]
    assert verify(Layout(root)) == []


def pip_install(env: Path, wheel: Path) -> None:
    """An admin's `sudo -E pip install` into an environment, with this machine's pip
    configuration left out."""
    subprocess.run([env / "bin/python3", "-m", "pip", "install", "--no-index", "--no-deps",
                    "--disable-pip-version-check", wheel], check=True, capture_output=True,
                   env={"PATH": os.environ["PATH"], "PIP_CONFIG_FILE": "/dev/null"})


def test_what_an_admin_pip_installs_into_the_user_env_is_kept(fixture: Fixture, root: Path,
                                                              tmp_path: Path) -> None:
    apply(fixture, root, "old-user-pip")
    user = root / "opt/tljh/user"
    pip_install(user, build_wheel(tmp_path, "fx-admin-tool", "3.0"))
    layout = Layout(root)
    assert verify(layout) == []  # the admin's, not drift
    assert admin_installed(layout) == {"fx-admin-tool": "3.0"}
    assert apply(fixture, root, "old-user-pip").ran == []
    # a locked distribution upgraded by the admin is put back at the lock's version; what
    # the admin added stays
    pip_install(user, build_wheel(tmp_path, "fx-web", "2.0"))
    (drift,) = verify(layout)
    assert (drift.kind, drift.package, drift.expected, drift.actual) == (
        "version", "fx-web", "1.1", "2.0")
    assert apply(fixture, root, "old-user-pip").ran == ["user-env"]
    assert verify(layout) == []
    assert admin_installed(layout) == {"fx-admin-tool": "3.0"}
    assert [p.name for p in user.glob("lib/python3*/site-packages/fx_web-*.dist-info")] == [
        "fx_web-1.1.dist-info"]


def test_a_changed_hub_is_built_again_beside_it(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    link = root / "opt/tljh/hub"
    built = os.readlink(link)
    [module] = link.glob("lib/python3*/site-packages/fx_auth/__init__.py")
    module.write_text("raise SystemExit('edited on the server')\n")
    (drift,) = verify(Layout(root))
    assert (drift.kind, drift.path, drift.component) == ("changed", f"/opt/tljh/{built}", "hub")
    assert drift.expected != drift.actual and drift.actual and drift.actual.startswith("sha256:")
    repaired = apply(fixture, root)
    assert repaired.ran[0] == "hub" and f"link:{L.HUB}" in repaired.ran
    assert repaired.generation == 2
    assert os.readlink(link) == f"{built}.1"
    assert verify(Layout(root)) == []
    assert apply(fixture, root).ran == []
    # the changed one is kept as it is, as generation 1's: rollback returns to it
    assert "edited on the server" in (root / "opt/tljh" / built / module.relative_to(
        link)).read_text()
    assert engine.rollback(Layout(root)).number == 1
    assert os.readlink(link) == built


def test_a_pip_install_into_the_hub_is_refused_until_rebuild(fixture: Fixture, root: Path,
                                                             tmp_path: Path) -> None:
    apply(fixture, root)
    link = root / "opt/tljh/hub"
    built = os.readlink(link)
    pip_install(link, build_wheel(tmp_path, "fx-hub-plugin", "0.3"))
    drift = verify(Layout(root))
    assert {(d.kind, d.package, d.version) for d in drift} == {
        ("changed", None, None), ("not-locked", "fx-hub-plugin", "0.3")}
    assert all(d.path == f"/opt/tljh/{built}" for d in drift)
    before = snapshot(root)
    with pytest.raises(TljhLockError, match=f"/opt/tljh/{built} holds fx-hub-plugin 0.3, "
                       "which the lock does not") as refused:
        apply(fixture, root)
    assert refused.value.exit_code == EXIT_FAILURE and "--rebuild" in str(refused.value)
    assert snapshot(root) == before
    assert apply(fixture, root, rebuild=True).ran[0] == "hub"
    assert os.readlink(link) == f"{built}.1"
    assert verify(Layout(root)) == []
    assert list((root / "opt/tljh" / built).glob("lib/python3*/site-packages/fx_hub_plugin"))


def test_a_damaged_copy_of_the_applied_lock_is_written_again(fixture: Fixture,
                                                             root: Path) -> None:
    apply(fixture, root)
    copy = root / "opt/tljh/state/generations/1.lock.toml"
    copy.unlink()
    (drift,) = verify(Layout(root))
    assert (drift.kind, drift.path) == ("missing", "/opt/tljh/state/generations/1.lock.toml")
    assert apply(fixture, root).ran == ["lock-copy"]
    assert copy.read_bytes() == fixture.locks["old"].read_bytes()
    assert verify(Layout(root)) == []


def test_without_the_proxy_the_layout_is_tljh_two_units(fixture: Fixture, root: Path) -> None:
    apply(fixture, root, "old-hub")
    hub_unit = (root / UNITS / "jupyterhub.service").read_text()
    assert "Requires=traefik.service" in hub_unit and "proxy.env" not in hub_unit
    config = (root / "opt/tljh/state/jupyterhub_config.py").read_text()
    assert "load_subconfig" in config and "configurable-http-proxy" not in config
    assert sorted(os.listdir(root / WANTS)) == ["jupyterhub.service", "traefik.service"]
    for absent in ("etc/systemd/system/configurable-http-proxy.service",
                   "opt/tljh/state/proxy.env", "opt/tljh/state/rules/tljh-lock-proxy.toml"):
        assert not (root / absent).exists(), absent
    assert (root / "opt/tljh/state/traefik-api.secret").exists()  # TLJH's hub reads it
    assert verify(Layout(root)) == []
    # TLJH's render empties the hub's routes (rules.toml): the hub restarts to write them again
    steps = {s.id: s for s in apply(fixture, root, "old-hub", dry_run=True).plan.steps}
    assert set(steps["tljh-traefik"].restarts) == {"traefik.service", "jupyterhub.service"}
    # to the three units and back: the proxy's unit is retired, as TLJH's installer does
    apply(fixture, root, "old")
    assert (root / WANTS / "configurable-http-proxy.service").is_symlink()
    moved = apply(fixture, root, "new-hub")
    assert "retire:configurable-http-proxy.service" in moved.ran
    assert not (root / UNITS / "configurable-http-proxy.service").exists()
    assert sorted(os.listdir(root / WANTS)) == ["jupyterhub.service", "traefik.service"]
    assert verify(Layout(root)) == []
