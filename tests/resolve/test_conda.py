"""Conda packages of the user environment: solve with py-rattler, verify, export, render.

Offline against the fixture conda channel (tests/upstream/conda_scenarios.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Upstream, copy_recipes, serve
from tests.upstream import FixtureUpstream
from tests.upstream.conda_scenarios import (
    CondaPackage,
    generate_conda_scenario,
    publish_channel,
    scenario_packages,
)
from tljh_lock.core import runner
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_INPUT, EXIT_INTEGRITY, EXIT_UPSTREAM
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds.conda import Component
from tljh_lock.lock.kinds.conda import CondaPackage as LockedPackage
from tljh_lock.resolve.write import dumps as dump_lock

CONDA_LOCK = Path(sys.executable).with_name("conda-lock")


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with serve(tmp_path_factory.mktemp("upstream"), generate_conda_scenario) as upstream:
        yield upstream


@pytest.fixture
def own_channel(tmp_path: Path) -> Iterator[Upstream]:
    """A channel this test may publish to or break."""
    with serve(tmp_path / "upstream", generate_conda_scenario) as upstream:
        yield upstream


CONDA_RECIPE = REPO / "tests" / "recipes-conda" / "user-env-conda.toml"


@pytest.fixture
def conda_recipes(tmp_path: Path) -> Path:
    recipes = copy_recipes(tmp_path / "recipes")
    shutil.copyfile(CONDA_RECIPE, recipes / CONDA_RECIPE.name)
    return recipes


def update(tljh, upstream: Upstream, recipes: Path, lock: Path, *extra: str):
    result = tljh("update", "--recipes", recipes, "--lock", lock, *upstream.mirror_flags(), *extra)
    assert result.code == 0, result.err
    return result


def conda_component(lock_path: Path) -> Component:
    component = lockfile.load(lock_path).components["user-env-conda"]
    assert isinstance(component, Component)
    return component


def solution(component: Component) -> dict[str, dict[str, str]]:
    return {platform: {p.name: f"{p.version}={p.build}" for p in component.for_platform(platform)}
            for platform in component.platforms}


def test_solve_per_platform_with_verified_files(tljh, channel: Upstream, conda_recipes: Path,
                                                tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    component = conda_component(lock_path)
    expected = {"fx-python": "3.12.5=h5d6e7f8_0_cpython", "fx-libz": "1.3.1=hb9c8d7e_1",
                "fx-tool": "2.0=pyhd8ed1ab_0"}
    # fx-libz 1.3.2 needs glibc 2.34, the recipe says 2.31; fx-aarch64-only is never asked for
    assert solution(component) == {"linux-64": expected, "linux-aarch64": expected}
    files = channel.facts["files"]
    for package in component.packages:
        fact = files[package.url]
        assert (package.sha256, package.md5, package.size) == (
            fact["sha256"], fact["md5"], fact["size"])
        assert package.subdir == ("noarch" if package.name == "fx-tool" else package.platform)
    # the noarch file is one artifact for both arches; the arch files differ (same names!)
    x86 = {a.url for a in lockfile.load(lock_path).artifacts("x86_64")}
    arm = {a.url for a in lockfile.load(lock_path).artifacts("aarch64")}
    assert x86 & arm == {f"{channel.facts['channel']}/noarch/fx-tool-2.0-pyhd8ed1ab_0.tar.bz2"}
    assert len(x86) == len(arm) == 3
    assert "127.0.0.1" not in lock_path.read_text()
    result = tljh("check", "--recipes", conda_recipes, "--lock", lock_path)
    assert result.code == 0, result.err


def test_glibc_of_the_recipe_reaches_the_solver(tljh, channel: Upstream, conda_recipes: Path,
                                                tmp_path: Path):
    recipe = conda_recipes / "user-env-conda.toml"
    recipe.write_text(recipe.read_text().replace('glibc = "2.31"', 'glibc = "2.34"'))
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    assert solution(conda_component(lock_path))["linux-64"]["fx-libz"] == "1.3.2=h0f1e2d3_0"


@pytest.mark.skipif(not CONDA_LOCK.exists(), reason="conda-lock is not installed")
def test_export_is_rendered_by_conda_lock(tljh, channel: Upstream, conda_recipes: Path,
                                          tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    out = tmp_path / "render"
    out.mkdir()
    result = tljh("export", "--lock", lock_path, "--format", "conda-lock",
                  "-o", out / "conda-lock.yml")
    assert result.code == 0, result.err
    runner.run([CONDA_LOCK, "render", "--kind", "explicit", "--kind", "env",
                "-p", "linux-64", "-p", "linux-aarch64", "conda-lock.yml"],
               cwd=out, what="conda-lock render", timeout=120)
    component = conda_component(lock_path)
    for platform in component.platforms:
        explicit = (out / f"conda-{platform}.lock").read_text().splitlines()
        assert "@EXPLICIT" in explicit
        urls = sorted(line for line in explicit if line.startswith("https://"))
        assert urls == sorted(f"{p.url}#{p.md5}" for p in component.for_platform(platform))
        env = (out / f"conda-{platform}.lock.yml").read_text()
        for package in component.for_platform(platform):
            assert f"- {package.name}={package.version}={package.build}" in env


def test_update_twice_is_byte_identical(tljh, channel: Upstream, conda_recipes: Path,
                                        tmp_path: Path):
    first, second = tmp_path / "a.lock.toml", tmp_path / "b.lock.toml"
    update(tljh, channel, conda_recipes, first)
    update(tljh, channel, conda_recipes, second)
    assert first.read_bytes() == second.read_bytes()
    export_a = tljh("export", "--lock", first, "--format", "conda-lock").out
    export_b = tljh("export", "--lock", second, "--format", "conda-lock").out
    assert export_a == export_b


def test_apply_refuses_what_it_cannot_install(tljh, channel: Upstream, conda_recipes: Path,
                                              tmp_path: Path):
    lock = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock)
    root = tmp_path / "root"
    for dry_run in ([], ["--dry-run"]):
        result = tljh("apply", "--lock", lock, "--store", tmp_path / "store", "--root", root,
                      *dry_run)
        assert result.code == EXIT_INPUT, result.err
        assert "cannot apply the component 'user-env-conda' (conda)" in result.err
        assert not root.exists()  # refused before the apply lock made the state directory


def test_pins_stay_until_upgraded(tljh, own_channel: Upstream, conda_recipes: Path,
                                  tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, own_channel, conda_recipes, lock_path)
    newer = [CondaPackage("fx-tool", "3.0", "pyhd8ed1ab_0", "noarch", ("fx-python >=3.12",))]
    newer += [CondaPackage("fx-libz", "1.3.3", "h7a8b9c0_0", subdir, ("__glibc >=2.17",))
              for subdir in ("linux-64", "linux-aarch64")]
    publish_channel(own_channel.root, [*scenario_packages(), *newer])
    recipe = conda_recipes / "user-env-conda.toml"
    recipe.write_text(recipe.read_text() + "# touched\n")
    update(tljh, own_channel, conda_recipes, lock_path)
    assert solution(conda_component(lock_path))["linux-64"]["fx-tool"] == "2.0=pyhd8ed1ab_0"
    before = tmp_path / "before.lock.toml"
    before.write_bytes(lock_path.read_bytes())
    update(tljh, own_channel, conda_recipes, lock_path, "-P", "fx-tool")
    diff = tljh("diff", before, lock_path)
    assert "fx-tool 2.0@pyhd8ed1ab_0 -> 3.0@pyhd8ed1ab_0" in diff.out
    assert "fx-libz 1.3.1" not in diff.out
    after = solution(conda_component(lock_path))
    assert after["linux-64"]["fx-tool"] == after["linux-aarch64"]["fx-tool"] == "3.0=pyhd8ed1ab_0"
    assert after["linux-64"]["fx-libz"] == "1.3.1=hb9c8d7e_1"  # not asked to move


def test_a_corrupt_package_is_refused(tljh, own_channel: Upstream, conda_recipes: Path,
                                      tmp_path: Path):
    url = f"{own_channel.facts['channel']}/noarch/fx-tool-2.0-pyhd8ed1ab_0.tar.bz2"
    assert url in own_channel.facts["files"]
    own_channel.server.faults[FixtureUpstream.path_for(url)] = "corrupt"
    lock_path = tmp_path / "tljh.lock.toml"
    result = tljh("update", "--recipes", conda_recipes, "--lock", lock_path,
                  *own_channel.mirror_flags())
    assert result.code == EXIT_INTEGRITY
    assert "recipes/user-env-conda.toml: fx-tool-2.0-pyhd8ed1ab_0.tar.bz2" in result.err
    assert not lock_path.exists()


def test_repodata_lying_about_a_file_is_refused(tljh, own_channel: Upstream,
                                                conda_recipes: Path, tmp_path: Path):
    # Same size, different bytes: only our own hash check can tell.
    url = f"{own_channel.facts['channel']}/linux-64/fx-libz-1.3.1-hb9c8d7e_1.tar.bz2"
    path = own_channel.root / FixtureUpstream.path_for(url).lstrip("/")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    lock_path = tmp_path / "tljh.lock.toml"
    result = tljh("update", "--recipes", conda_recipes, "--lock", lock_path,
                  *own_channel.mirror_flags())
    assert result.code == EXIT_INTEGRITY, result.err
    assert "fx-libz-1.3.1-hb9c8d7e_1.tar.bz2" in result.err
    assert not lock_path.exists()


@pytest.mark.parametrize(("old", "new", "code", "message"), [
    ('"fx-python 3.12.*"', '"fx-python 3.13.*"', EXIT_UPSTREAM,
     "recipes/user-env-conda.toml: no solution for linux-64"),
    ('channels = ["conda-forge"]', 'channels = ["no-such-channel"]', EXIT_UPSTREAM,
     "recipes/user-env-conda.toml: repodata: https://conda.anaconda.org/no-such-channel/"),
    ('"fx-tool",', '"fx-tool >=>=2",', EXIT_INPUT, "specs[1]: not a valid match spec"),
    ('glibc = "2.31"', 'glibc = "two"', EXIT_INPUT, "glibc: 'two' is not a glibc version"),
    ('platforms = ["linux-64", "linux-aarch64"]', 'platforms = ["win-64"]', EXIT_INPUT,
     "platforms[0]: unknown platform 'win-64'"),
])
def test_recipe_errors_name_the_recipe(tljh, channel: Upstream, conda_recipes: Path,
                                       tmp_path: Path, old: str, new: str, code: int,
                                       message: str):
    recipe = conda_recipes / "user-env-conda.toml"
    assert old in recipe.read_text()
    recipe.write_text(recipe.read_text().replace(old, new))
    lock_path = tmp_path / "tljh.lock.toml"
    result = tljh("update", "--recipes", conda_recipes, "--lock", lock_path,
                  *channel.mirror_flags())
    assert result.code == code, result.err
    assert message in result.err
    assert not lock_path.exists()


def reseal(lock_path: Path, packages: list[LockedPackage]) -> None:
    """Rewrite the component's packages and seal the lock again, as a forged lock would be."""
    lock = lockfile.load(lock_path)
    component = lock.components["user-env-conda"]
    assert isinstance(component, Component)
    component.packages = tuple(packages)
    lock_path.write_text(dump_lock(lock))


def test_check_proves_each_platform(tljh, channel: Upstream, conda_recipes: Path,
                                    tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    good = list(conda_component(lock_path).packages)

    reseal(lock_path, [p for p in good if (p.platform, p.name) != ("linux-aarch64", "fx-libz")])
    result = tljh("check", "--recipes", conda_recipes, "--lock", lock_path)
    assert result.code == EXIT_FAILURE
    assert ("user-env-conda: linux-aarch64: fx-libz >=1.3 (needed by fx-python 3.12.5) is not "
            "pinned") in result.err

    bumped = [p if p.name != "fx-tool" else LockedPackage(**{**p.__dict__,
              "depends": ("fx-python >=3.13",)}) for p in good]
    reseal(lock_path, bumped)
    result = tljh("check", "--recipes", conda_recipes, "--lock", lock_path)
    assert result.code == EXIT_FAILURE
    assert ("linux-64: fx-python >=3.13 (needed by fx-tool 2.0) is not met by fx-python 3.12.5 "
            "h5d6e7f8_0_cpython") in result.err

    reseal(lock_path, good)
    assert tljh("check", "--recipes", conda_recipes, "--lock", lock_path).code == 0


@pytest.mark.parametrize(("old", "new", "message"), [
    ('subdir = "noarch"', 'subdir = "linux-aarch64"', "cannot use a linux-aarch64 package"),
    ('md5 = "', 'md5 = "x', "is not a lowercase hex md5"),
    ("/noarch/fx-tool-2.0-pyhd8ed1ab_0.tar.bz2", "/noarch/fx-tool-2.1-pyhd8ed1ab_0.tar.bz2",
     "is not the file of fx-tool-2.0-pyhd8ed1ab_0"),
])
def test_malformed_conda_entries_are_rejected(tljh, channel: Upstream, conda_recipes: Path,
                                              tmp_path: Path, old: str, new: str, message: str):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    text = lock_path.read_text()
    assert old in text
    lock_path.write_text(text.replace(old, new, 1))
    result = tljh("check", "--recipes", conda_recipes, "--lock", lock_path)
    assert result.code == EXIT_INPUT
    assert message in result.err


def check_without_rattler(lock_path: Path) -> subprocess.CompletedProcess[str]:
    """`check` in an interpreter where py-rattler cannot be imported, as on a server."""
    code = ("import sys; sys.modules['rattler'] = None; "
            "from tljh_lock.cli.main import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "check", "--no-recipes", "--lock",
                           str(lock_path)], capture_output=True, text=True, cwd=REPO)


def test_check_without_rattler_proves_the_same(tljh, channel: Upstream, conda_recipes: Path,
                                               tmp_path: Path):
    """A server has no py-rattler: a missing package and a version that does not meet its
    spec are caught there as on the maintainer's side."""
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, channel, conda_recipes, lock_path)
    good = list(conda_component(lock_path).packages)
    bumped = [p if p.name != "fx-tool" else LockedPackage(**{**p.__dict__,
              "depends": ("fx-python >=3.13",)}) for p in good]
    reseal(lock_path, bumped)
    result = check_without_rattler(lock_path)
    assert result.returncode == EXIT_FAILURE, result.stderr
    assert ("linux-64: fx-python >=3.13 (needed by fx-tool 2.0) is not met by fx-python 3.12.5 "
            "h5d6e7f8_0_cpython") in result.stderr
    reseal(lock_path, [p for p in good if p.name != "fx-libz"])
    result = check_without_rattler(lock_path)
    assert result.returncode == EXIT_FAILURE
    assert "fx-libz >=1.3 (needed by fx-python 3.12.5) is not pinned" in result.stderr
    reseal(lock_path, good)
    assert check_without_rattler(lock_path).returncode == 0
