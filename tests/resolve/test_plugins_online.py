"""TLJH's test plugin locked against the real PyPI (`make test-online`): its hooks asked with
the real pluggy and TLJH 2.0.0's plugin manager, "there" in the hub set, "simplejson" in the
user environment, apt and conda refused by name until the recipe acknowledges them."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w
import tomllib

from tests.e2e import real_bundle
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.plugins import Plugin

pytestmark = pytest.mark.online


def recipes(tmp_path: Path) -> Path:
    """The e2e's recipes of TLJH 2.0.0, its hub and user environment only."""
    directory = real_bundle._recipes(tmp_path / "recipes", "old", proxy=False)
    for name in ("traefik", "miniforge"):
        (directory / f"{name}.toml").unlink()
    return directory


def update(tljh, directory: Path, lock: Path):  # type: ignore[no-untyped-def]
    mirror = real_bundle.tljh_archive("old").parent.as_uri() + "/"
    return tljh("update", "--recipes", directory, "--lock", lock,
                f"--mirror={real_bundle.TLJH_ARCHIVES}={mirror}")


def test_the_simplest_plugin_is_locked(tljh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory, lock = recipes(tmp_path), tmp_path / "tljh.lock.toml"
    assert update(tljh, directory, lock).code == 0
    assert tljh("check", "--recipes", directory, "--lock", lock).code == 0
    hub, user = (lockfile.load(lock).components[n] for n in ("hub", "user-env"))
    assert isinstance(hub, pip_lock.Component) and isinstance(user, pip_lock.Component)
    assert hub.plugins == (Plugin("tljh-simplest", ("there",), ("simplejson",),
                                  ("tqdm", "csvtk"), ("conda-forge", "bioconda"), ("sl",)),)
    (pin,) = (s for s in hub.sources if s.name == "tljh-simplest")
    assert pin.subdirectory == real_bundle.SIMPLEST
    assert "there" in {p.name for p in hub.packages}
    assert "simplejson" in {p.name for p in user.packages} and "simplejson" in user.roots


def test_unacknowledged_apt_packages_are_refused_by_name(tljh, tmp_path: Path  # type: ignore[no-untyped-def]
                                                         ) -> None:
    directory = recipes(tmp_path)
    hub = tomllib.loads((directory / "hub.toml").read_text())
    del hub["plugins"][0]["unlocked-apt"]
    (directory / "hub.toml").write_text(tomli_w.dumps(hub))
    lock = tmp_path / "tljh.lock.toml"
    result = update(tljh, directory, lock)
    assert result.code == 3
    assert "plugin tljh-simplest asks for what the lock cannot install: apt packages sl" in (
        result.err)
    assert 'unlocked-apt = ["sl"]' in result.err
    assert not lock.exists()


def test_user_pip_packages_no_recipe_takes_are_refused(tljh, tmp_path: Path  # type: ignore[no-untyped-def]
                                                       ) -> None:
    directory = recipes(tmp_path)
    user = tomllib.loads((directory / "user-env.toml").read_text())
    del user["plugins-from"]
    (directory / "user-env.toml").write_text(tomli_w.dumps(user))
    result = update(tljh, directory, tmp_path / "tljh.lock.toml")
    assert result.code == 3
    assert "plugins ask for user pip packages (simplejson) and no recipe takes them" in result.err
