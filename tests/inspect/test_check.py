"""Rules that span components: checked by `check` from the lock alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import copy_recipes
from tests.upstream import FixtureUpstream
from tests.upstream.npm_scenarios import generate_npm_scenario
from tests.upstream.release_scenarios import generate_release_scenario
from tljh_lock.core.errors import EXIT_FAILURE
from tljh_lock.lock import file as lockfile
from tljh_lock.resolve.write import dumps as dump_lock


@pytest.fixture(scope="module")
def node_lock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tljh_lock.cli.main import main

    work = tmp_path_factory.mktemp("cross")
    root = work / "upstream"
    generate_release_scenario(root)
    generate_npm_scenario(root)
    recipes = copy_recipes(work / "recipes", "nodejs", "configurable-http-proxy")
    lock = work / "tljh.lock.toml"
    with FixtureUpstream(root) as server:
        flags = [f"--mirror={c}={m}" for c, m in server.mirror_map().items()]
        assert main(["-q", "update", "--recipes", str(recipes), "--lock", str(lock), *flags]) == 0
    return recipes, lock


def test_npm_tree_must_match_the_locked_nodejs(tljh, node_lock, tmp_path):
    recipes, lock_path = node_lock
    assert tljh("check", "--recipes", recipes, "--lock", lock_path).code == 0
    lock = lockfile.load(lock_path)
    lock.components["nodejs"] = dataclasses.replace(lock.components["nodejs"], version="22.99.0")
    edited = tmp_path / "edited.lock.toml"
    edited.write_text(dump_lock(lock))
    result = tljh("check", "--no-recipes", "--lock", edited)
    assert result.code == EXIT_FAILURE
    assert ("configurable-http-proxy: its packages' engines were checked against Node.js "
            "22.12.0, but the lock installs Node.js 22.99.0") in result.err
