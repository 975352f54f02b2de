"""Against the real PyPI (reachable from CI): `make test-online`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED
from tljh_lock.core import runner
from tljh_lock.core.targets import Target
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.kinds.pip import walk
from tljh_lock.upstream.http import Client
from tljh_lock.upstream.pypi import download

pytestmark = pytest.mark.online

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "locks" / "tljh.lock.toml"
PYTHON311 = shutil.which("python3.11") or "/root/.pyenv/versions/3.11.7/bin/python3.11"
ONLINE_ENV = {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}  # the site's TLS proxy
# GitHub is out of reach here: TLJH's archive from shared/upstream-facts, as `make lock` has it
GITHUB_FACTS = SHARED / "upstream-facts" / "github.com"
GITHUB_MIRROR = f"https://github.com/={GITHUB_FACTS.as_uri()}/"


def committed_hub() -> pip_lock.Component:
    component = lockfile.load(COMMITTED).components["hub"]
    assert isinstance(component, pip_lock.Component)
    return component


def test_update_of_real_recipes_has_the_committed_shape(tljh, tmp_path: Path):
    """The source pin as committed too: verified against its archive, its sha256 recorded."""
    assert GITHUB_FACTS.is_dir(), f"{GITHUB_FACTS} is missing: `make lock` reads GitHub there"
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("targets.toml", "hub.toml"):
        shutil.copyfile(REPO / "recipes" / name, recipes / name)
    fresh = tmp_path / "fresh.lock.toml"
    assert tljh("update", "--recipes", recipes, "--lock", fresh,
                "--mirror", GITHUB_MIRROR).code == 0
    assert tljh("check", "--recipes", recipes, "--lock", fresh).code == 0
    new, old = lockfile.load(fresh), lockfile.load(COMMITTED)
    assert new.targets == old.targets and new.targets_hash == old.targets_hash
    new_hub, old_hub = new.components["hub"], committed_hub()
    assert isinstance(new_hub, pip_lock.Component)
    assert (new_hub.roots, new_hub.sources, new_hub.index) == (
        old_hub.roots, old_hub.sources, old_hub.index)
    assert new_hub.recipe_hash == old_hub.recipe_hash
    # Upstream moves on; the shape does not: the same root projects, mostly the same tree.
    new_names = {p.name for p in new_hub.packages}
    old_names = {p.name for p in old_hub.packages}
    assert len(new_names & old_names) >= 0.9 * len(old_names)
    assert {p.name for p in new_hub.build_packages} == {p.name for p in old_hub.build_packages}


def test_committed_hub_set_installs_with_hashes_from_a_wheel_folder(tmp_path: Path):
    """python 3.11 x86_64, the lock's files only, hashes required, no index."""
    hub = committed_hub()
    target = Target("this-machine", "3.11.7", "2.36", "x86_64")
    roots = [*hub.roots, *(r for s in hub.sources for r in s.requires)]
    used, problems = walk(hub.packages, roots, target, "roots")
    assert not problems
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    client = Client()
    lines = []
    for package in used:
        artifact = package.install_artifact(target)
        assert artifact is not None
        (wheels / artifact.name).write_bytes(download(client, artifact, package.name))
        lines.append(f"{package.name}=={package.version} --hash=sha256:{artifact.sha256}")
    for package in hub.build_packages:  # what builds onetimepass, the sdist-only one
        if package.applies_to(target):
            artifact = package.install_artifact(target)
            assert artifact is not None
            (wheels / artifact.name).write_bytes(download(client, artifact, package.name))
    (tmp_path / "requirements.txt").write_text("\n".join(lines) + "\n")
    venv = tmp_path / "venv"
    runner.run([PYTHON311, "-m", "venv", venv], what="venv")
    runner.run([venv / "bin" / "pip", "install", "--no-index", "--find-links", wheels,
                "--require-hashes", "-r", tmp_path / "requirements.txt"], what="pip install")
    result = runner.run([venv / "bin" / "python", "-c",
                         "import jupyterhub, pycurl, onetimepass; print(jupyterhub.__version__)"],
                        what="import")
    versions = {p.name: p.version for p in used}
    assert result.stdout.strip() == versions["jupyterhub"]


def test_pylock_export_installs_a_hub_with_tljh_config_with_pip_and_uv(tljh, tmp_path: Path):
    """The whole hub from the exported pylock, TLJH itself included, each installer checking
    every file against the pylock's hashes: wheels and sdists from the real PyPI, TLJH's
    archive from shared/upstream-facts through --mirror (GitHub is out of reach here)."""
    assert GITHUB_FACTS.is_dir(), f"{GITHUB_FACTS} is missing: TLJH's archive is read there"
    hub = committed_hub()
    [pin] = hub.sources
    pylock = tmp_path / "pylock.toml"
    assert tljh("export", "--lock", COMMITTED, "--format", "pylock", "-o", pylock,
                "--mirror", GITHUB_MIRROR).code == 0
    pip_venv, uv_venv = tmp_path / "pip-venv", tmp_path / "uv-venv"
    for venv in (pip_venv, uv_venv):
        runner.run([PYTHON311, "-m", "venv", venv], what="venv")
    runner.run([pip_venv / "bin" / "pip", "install", "pip>=26.1"], env=ONLINE_ENV, what="pip")
    runner.run([pip_venv / "bin" / "pip", "install", "-r", pylock], env=ONLINE_ENV,
               what="pip install -r pylock.toml")
    runner.run([Path(sys.executable).parent / "uv", "pip", "install", "--no-config", "-r", pylock],
               env={"VIRTUAL_ENV": str(uv_venv), "UV_CACHE_DIR": str(tmp_path / "uv")},
               what="uv pip install -r pylock.toml")
    versions = {p.name: p.version for p in hub.packages}
    for venv in (pip_venv, uv_venv):
        usage = runner.run([venv / "bin" / "tljh-config", "--help"], what="tljh-config --help")
        assert usage.stdout.startswith("usage: tljh-config"), venv
        installed = runner.run([venv / "bin" / "python", "-c", (
            "from importlib.metadata import version as v; "
            "print(v('the-littlest-jupyterhub'), v('jupyterhub'))")], what="installed versions")
        assert installed.stdout.split() == [pin.version, versions["jupyterhub"]], venv
