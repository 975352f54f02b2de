"""What scripts rely on, through the installed console script: a bad command line is exit 2,
`diff --exit-code` is git's, and the JSON of `check` and `diff` is fields, not sentences."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.cli.test_bad_input import COMMITTED_LOCK, refused, run
from tests.conftest import REPO
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.resolve.update import update
from tljh_lock.resolve.write import dumps as dump_lock
from tljh_lock.upstream.http import Client
from tljh_lock.upstream.mirrors import MirrorMap


@pytest.mark.parametrize("command", [
    ["no-such-command"],
    ["check", "--no-such-flag"],
    ["update", "-P"],
    ["fetch", "--jobs", "0"],
    ["fetch", "--stall-timeout", "soon"],
    ["fetch", "--platform", "sparc"],
    ["fetch", "--lock", COMMITTED_LOCK, "--mirror", "no-equals-sign"],
    ["apply", "--bundle", "b.tar", "--store", "s"],
    ["export", "--lock", COMMITTED_LOCK, "--format", "pylock", "-o", REPO / "locks"],
    ["diff", COMMITTED_LOCK],
])
def test_every_bad_command_line_exits_2(command: list[str]) -> None:
    refused(run(*command), EXIT_USAGE)


@pytest.fixture
def smaller_lock(tmp_path: Path) -> Path:
    """The committed lock without its proxy: a removed component to diff against."""
    lock = lockfile.load(COMMITTED_LOCK)
    del lock.components["configurable-http-proxy"]
    path = tmp_path / "smaller.lock.toml"
    path.write_text(dump_lock(lock))
    return path


def test_diff_exit_code_is_gits(smaller_lock: Path) -> None:
    same = run("diff", "--exit-code", COMMITTED_LOCK, COMMITTED_LOCK)
    assert (same.returncode, same.stdout) == (EXIT_OK, "No changes.\n")
    differ = run("diff", "--exit-code", COMMITTED_LOCK, smaller_lock)
    assert differ.returncode == EXIT_FAILURE
    assert "removed: configurable-http-proxy 5.3.0" in differ.stdout
    assert run("diff", COMMITTED_LOCK, smaller_lock).returncode == EXIT_OK  # without: 0


def test_diff_json_is_fields(smaller_lock: Path) -> None:
    result = run("diff", "--format", "json", COMMITTED_LOCK, smaller_lock)
    removed = json.loads(result.stdout)["configurable-http-proxy"]["removed"]
    assert {"package": "configurable-http-proxy", "old": ["5.3.0"], "new": []} in removed


def test_check_json_is_fields_and_names_the_recipes_read(smaller_lock: Path) -> None:
    result = run("check", "--json", "--recipes", REPO / "recipes", "--lock", smaller_lock)
    assert result.returncode == EXIT_FAILURE
    report = json.loads(result.stdout)
    recipe = str(REPO / "recipes" / "configurable-http-proxy.toml")
    assert recipe in report["recipes"] and str(REPO / "recipes" / "targets.toml") in report[
        "recipes"]
    assert {"message": f"{recipe} has no component in the lock", "path": recipe} in report[
        "stale"]
    hub = [finding for finding in report["proven"] if finding["component"] == "hub"]
    assert {finding["target"] for finding in hub} == {
        target.name for target in lockfile.load(COMMITTED_LOCK).targets}
    assert all(finding["message"].endswith(" packages") for finding in hub)


def test_check_json_problems_name_the_package_and_version(tmp_path: Path) -> None:
    """A package left out of the lock, and one whose x86_64 wheels are."""
    lock = lockfile.load(COMMITTED_LOCK)
    hub = lock.components["hub"]
    assert isinstance(hub, pip_lock.Component)
    tornado = next(p for p in hub.packages if p.name == "tornado")
    arm_only = dataclasses.replace(tornado, wheels=tuple(
        w for w in tornado.wheels if "x86_64" not in w.name))
    lock.components["hub"] = dataclasses.replace(hub, packages=tuple(
        arm_only if p is tornado else p for p in hub.packages if p.name != "sqlalchemy"))
    path = tmp_path / "broken.lock.toml"
    path.write_text(dump_lock(lock))
    result = run("check", "--json", "--no-recipes", "--lock", path)
    assert result.returncode == EXIT_FAILURE, result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert problems and all(p["component"] == "hub" and p["target"] for p in problems)
    about = {(p.get("package"), p.get("version")) for p in problems}
    assert ("sqlalchemy", None) in about and ("tornado", tornado.version) in about, about
    x86 = {p["target"] for p in problems if p.get("package") == "tornado"}
    assert x86 and all("x86_64" in t for t in x86)


def test_check_says_which_recipes_it_read() -> None:
    result = run("check", "--recipes", REPO / "recipes", "--lock", COMMITTED_LOCK)
    assert result.returncode == EXIT_OK, result.stderr
    assert f"read {REPO / 'recipes' / 'targets.toml'}, " in result.stderr
    assert str(REPO / "recipes" / "hub.toml") in result.stderr


def test_update_says_one_line_per_component(tljh, hub_upstream, recipes: Path,
                                            tmp_path: Path) -> None:
    lock = tmp_path / "tljh.lock.toml"
    first = tljh("update", "--recipes", recipes, "--lock", lock, *hub_upstream.mirror_flags())
    assert first.code == 0, first.err
    assert first.err == f"hub: resolving {recipes / 'hub.toml'} (pip)\n"  # no bar: not a tty
    again = tljh("update", "--recipes", recipes, "--lock", lock, *hub_upstream.mirror_flags())
    assert again.err == f"hub: kept ({recipes / 'hub.toml'} did not change)\n"
    assert tljh("update", "-q", "--recipes", recipes, "--lock", lock,
                *hub_upstream.mirror_flags()).err == ""


def test_update_shows_a_bar_over_the_index_reads_when_asked(
        hub_upstream, recipes: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    client = Client(MirrorMap.from_pairs(hub_upstream.server.mirror_map()), progress=True)
    update(recipes, tmp_path / "tljh.lock.toml", client)
    bar = capsys.readouterr().err
    assert "hub: index pages" in bar
    pins = len(lockfile.load(tmp_path / "tljh.lock.toml").components["hub"].packages)
    assert f"/{pins} [" in bar  # one step a pinned package
