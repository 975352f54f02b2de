"""The applier and TLJH's own tools, offline, into a temporary --root (the fixture scenario of
tests/test_apply.py): TLJH's directories and files with TLJH's modes, a locked pip installed
into the user environment, every locked distribution verified."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reliability.scenario import NEEDS, PIP_WHEEL, Fixture, build_fixture, make_root
from tests.test_apply import apply
from tljh_lock.apply import engine
from tljh_lock.apply.layout import Layout
from tljh_lock.lock import model as lockfile

pytestmark = pytest.mark.skipif(
    PIP_WHEEL is None or not all(Path(p).exists() for p in NEEDS),
    reason="needs Debian's python3, its pip wheel (python3-pip-whl), sudo, passwd, systemd, "
           "node and npm",
)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    built = build_fixture(tmp_path_factory.mktemp("apply-tljh-fixture"))
    # the user set with a pip of its own, as TLJH's installer makes sure of
    lock = lockfile.load(built.locks["old"])
    pip = next(p for p in lock.components["hub"].packages if p.name == "pip")
    user = lock.components["user-env"]
    lock.components["user-env"] = dataclasses.replace(user, packages=(*user.packages, pip))
    built.locks["old-user-pip"] = built.locks["old"].with_name("old-user-pip.lock.toml")
    built.locks["old-user-pip"].write_text(lock.dumps())
    return built


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path / "root")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_tljh_paths_with_tljh_modes(fixture: Fixture, root: Path) -> None:
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
    assert engine.verify(Layout(root)) == []


def test_modes_that_let_users_in_are_tightened(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    prefix = root / "opt/tljh"
    (prefix / "state").chmod(0o755)  # as an earlier tljh-lock left it
    (prefix / "config/config.yaml").write_text("auth:\n  type: dummy\n")
    (prefix / "config/config.yaml").chmod(0o644)  # tljh-config recreating a deleted file
    (prefix / "installer.log").chmod(0o644)
    problems = engine.verify(Layout(root))
    assert any("TLJH's directories and files" in p for p in problems), problems
    assert apply(fixture, root).ran == ["tljh-paths"]
    assert mode(prefix / "state") == 0o700 and mode(prefix / "installer.log") == 0o500
    assert mode(prefix / "config/config.yaml") == 0o600
    assert (prefix / "config/config.yaml").read_text() == "auth:\n  type: dummy\n"
    assert engine.verify(Layout(root)) == []


def test_a_locked_pip_is_installed_and_every_distribution_verified(fixture: Fixture,
                                                                    root: Path) -> None:
    apply(fixture, root, "old-user-pip")
    user = root / "opt/tljh/user"
    pip_version = PIP_WHEEL.name.split("-")[1]  # type: ignore[union-attr]
    out = subprocess.run([user / "bin/python", "-m", "pip", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith(f"pip {pip_version} from {user}/lib/")
    assert engine.verify(Layout(root)) == []
    # a distribution gone from an environment is named, with the version the lock has
    for info in user.glob("lib/python3*/site-packages/fx_web-*.dist-info"):
        shutil.rmtree(info)
    assert "/opt/tljh/user: fx-web 1.1 is not installed" in engine.verify(Layout(root))
    # and one at another version in the hub environment
    hub = root / "opt/tljh/hub"
    [metadata] = hub.glob("lib/python3*/site-packages/fx_auth-*.dist-info/METADATA")
    metadata.write_text(metadata.read_text().replace("Version: 1.0", "Version: 0.9"))
    hub_dir = os.readlink(hub)
    assert f"/opt/tljh/{hub_dir}: fx-auth is 0.9, the lock has 1.0" in engine.verify(Layout(root))
