"""The plugins' answers checked at update (offline); tests/resolve/test_plugins_online.py asks
the real TLJH test plugin with the real pluggy from PyPI."""

from __future__ import annotations

import pytest

from tljh_lock.core.errors import InputError
from tljh_lock.core.schema import Table
from tljh_lock.lock.plugins import Plugin
from tljh_lock.resolve.plugins import PluginRecipe, checked

# what the simplest plugin's hooks answer (lock/plugins.py ASK), as the online test sees them
ASKED = {"tljh-simplest": {
    "tljh_extra_hub_pip_packages": ["there"], "tljh_extra_user_pip_packages": ["simplejson"],
    "tljh_extra_user_conda_packages": ["tqdm", "csvtk"],
    "tljh_extra_user_conda_channels": ["conda-forge", "bioconda"],
    "tljh_extra_apt_packages": ["sl"]}}


def recipe(**acknowledged: list[str]) -> PluginRecipe:
    data = {"name": "tljh-simplest", "version": "0.0.0", "url": "https://example.org/t.tar.gz",
            "commit": "a" * 40, "tree-hash": "h1:x", "requires": [], "build-requires": [],
            "subdirectory": "integration-tests/plugins/simplest", **acknowledged}
    return PluginRecipe.from_table(Table(data, "plugins[0]", "hub.toml"))


def test_acknowledged_apt_and_conda_are_locked_as_not_installed() -> None:
    (plugin,) = checked("hub.toml", [recipe(**{"unlocked-apt": ["sl"],
                                               "unlocked-conda": ["tqdm", "csvtk"]})], ASKED)
    assert plugin == Plugin("tljh-simplest", ("there",), ("simplejson",), ("tqdm", "csvtk"),
                            ("conda-forge", "bioconda"), ("sl",))
    assert Plugin.from_table(Table(plugin.to_dict(), "plugins[0]", "lock")) == plugin


@pytest.mark.parametrize(("acknowledged", "named"), [
    ({}, "apt packages sl (tljh_extra_apt_packages"),
    ({"unlocked-apt": ["sl"]}, "conda packages tqdm, csvtk (tljh_extra_user_conda_packages"),
    ({"unlocked-apt": ["sl"], "unlocked-conda": ["tqdm"]}, "conda packages csvtk ("),
])
def test_what_the_lock_cannot_install_is_refused_by_name(acknowledged: dict[str, list[str]],
                                                         named: str) -> None:
    with pytest.raises(InputError) as caught:
        checked("hub.toml", [recipe(**acknowledged)], ASKED)
    assert "plugin tljh-simplest asks for what the lock cannot install" in caught.value.message
    assert named in caught.value.message
    assert "unlocked-apt" in (caught.value.hint or "")


def test_a_plugin_without_an_entry_point_is_refused() -> None:
    with pytest.raises(InputError, match="registers no `tljh` entry point"):
        checked("hub.toml", [recipe()], {})


def test_a_subdirectory_must_stay_inside_the_tree() -> None:
    for bad in ("../x", "/abs", "a//b", "a/", "."):
        with pytest.raises(InputError, match="not a relative path inside the tree"):
            recipe(subdirectory=bad)  # type: ignore[arg-type]
