"""The TLJH plugins' hooks at apply, with the real TLJH 2.0.0 and its real test plugin
(integration-tests/plugins/simplest) from the archive in shared/upstream-facts, installed into
an environment that sees this venv's pluggy, ruamel.yaml and filelock (TLJH's own imports)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.e2e.real_bundle import SIMPLEST, tljh_tree
from tljh_lock.apply import tljh as T
from tljh_lock.apply.actions import tljh as actions
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.steps import HubBuild, PluginsStep
from tljh_lock.core import runner, treehash
from tljh_lock.core.errors import InputError
from tljh_lock.lock.plugins import Plugin

SIMPLEST_LOCKED = Plugin("tljh-simplest", hub_pip=("there",), user_pip=("simplejson",),
                         conda=("tqdm", "csvtk"), conda_channels=("conda-forge", "bioconda"),
                         apt=("sl",))
HUB = (("pluggy", "1.6.0"), ("the-littlest-jupyterhub", "2.0.0"), ("there", "0.0.12"),
       ("tljh-simplest", "0.0.0"))
USER = (("simplejson", "4.3.0"),)


@pytest.fixture(scope="module")
def hub_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv seeing this one's packages, with TLJH and the plugin installed from their trees
    (as the hub environment has them, from the wheels built of the same trees)."""
    base = tmp_path_factory.mktemp("plugins-hub")
    tree = tljh_tree("old")
    trees = []
    for name, files in (("tljh", tree), ("simplest", treehash.subtree(tree, SIMPLEST))):
        for rel, data in files.items():
            (base / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (base / name / rel).write_bytes(data)
        trees.append(base / name)
    env = base / "hub"
    runner.run([sys.executable, "-m", "venv", "--without-pip", env],
               what="the test's hub environment")
    # this venv's packages, behind the environment's own
    (Path(sysconfig.get_path("purelib", vars={"base": str(env)})) / "tests-venv.pth"
     ).write_text(sysconfig.get_path("purelib") + "\n")
    runner.run([sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install",
                "--no-deps", "--no-build-isolation", "--no-index", *trees],
               what="installing TLJH and the plugin", env={"HOME": str(base)}, timeout=600)
    return env


def context(root: Path, lines: list[str] | None = None) -> Context:
    return Context(Layout(root), None, (lines if lines is not None else []).append)


def hub_step(**changes: object) -> HubBuild:
    data: dict[str, object] = {"plugins": (SIMPLEST_LOCKED,), "hub_versions": HUB,
                               "user_versions": USER, **changes}
    return HubBuild(id="hub", summary="", key="k", done=False, **data)  # type: ignore[arg-type]


def test_what_the_plugin_asks_for_is_in_the_lock(hub_env: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    actions.check_plugins(hub_step(), context(tmp_path, lines), hub_env)
    said = "\n".join(lines)
    assert "apt packages sl were not installed" in said
    assert "conda packages tqdm, csvtk were not installed" in said


@pytest.mark.parametrize(("changes", "named"), [
    ({"hub_versions": HUB[:2] + HUB[3:]}, "for hub pip packages the lock lacks: there"),
    ({"user_versions": ()}, "for user pip packages the lock lacks: simplejson"),
    ({"user_versions": None}, "for user pip packages the lock lacks: simplejson"),
    ({"plugins": (Plugin("tljh-simplest", ("there",), ("simplejson",)),)},
     "(tljh_extra_apt_packages) for apt packages the lock lacks: sl"),
    ({"plugins": ()}, "plugin tljh-simplest is installed but not in the lock's plugins"),
])
def test_what_the_lock_lacks_is_refused_by_name(hub_env: Path, tmp_path: Path,
                                                 changes: dict[str, object], named: str) -> None:
    with pytest.raises(InputError) as caught:
        actions.check_plugins(hub_step(**changes), context(tmp_path), hub_env)
    assert named in caught.value.message


def test_config_and_post_install_hooks_run_as_tljh_runs_them(
        hub_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    config = root / "opt/tljh/config/config.yaml"
    config.parent.mkdir(parents=True, mode=0o700)
    (root / "opt/tljh/state").mkdir(mode=0o700)
    # what an admin set with tljh-config stays
    config.write_text("auth:\n  type: dummy\n")
    config.chmod(0o600)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # the step's python is below --root, as plan names it
    python = f"/opt/tljh/{hub_env.name}/bin/python3"
    os.symlink(hub_env, root / "opt/tljh" / hub_env.name)
    step = PluginsStep(id="tljh-plugins", summary="", key="plugins-key", done=False,
                       plugins=(SIMPLEST_LOCKED,), python=python)
    ctx = context(root)
    assert actions.run_plugin_hooks(step, ctx)
    loaded = YAML(typ="rt").load(config.read_text())
    assert loaded["Test"]["tljh_config_set_by_simplest_plugin"] is True
    assert loaded["auth"]["type"] == "dummy"
    assert config.stat().st_mode & 0o777 == 0o600
    assert (cwd / "test_tljh_post_install").read_text() == "file_written_by_simplest_plugin"
    assert (root / T.PLUGINS_RAN.lstrip("/")).read_text() == "plugins-key"
    # a second run changes nothing more (the plan runs it once per set of plugins)
    before = config.read_bytes()
    actions.run_plugin_hooks(step, ctx)
    assert config.read_bytes() == before
