"""Shared fixtures: the fixture upstream with the demo hub set, and the CLI run in-process."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.upstream import FixtureUpstream, generate_hub_scenario
from tljh_lock.cli import main

REPO = Path(__file__).resolve().parents[1]
TEST_RECIPES = REPO / "tests" / "recipes"


@dataclass
class Upstream:
    root: Path
    server: FixtureUpstream
    facts: dict[str, Any]

    def mirror_flags(self) -> list[str]:
        return [f"--mirror={c}={m}" for c, m in sorted(self.server.mirror_map().items())]


@contextmanager
def serve(root: Path, generate: Callable[[Path], dict[str, Any]]) -> Iterator[Upstream]:
    """Generate a scenario into `root` and serve it on 127.0.0.1."""
    facts = generate(root)
    with FixtureUpstream(root) as server:
        yield Upstream(root, server, facts)


@pytest.fixture(scope="session")
def hub_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with serve(tmp_path_factory.mktemp("upstream"), generate_hub_scenario) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The hub scenario's files, not served yet: for tests that set faults per server."""
    root = tmp_path_factory.mktemp("upstream")
    return root, generate_hub_scenario(root)


@pytest.fixture
def upstream(scenario: tuple[Path, dict[str, Any]]) -> Iterator[FixtureUpstream]:
    with FixtureUpstream(scenario[0]) as server:
        yield server


def copy_recipes(target: Path, *names: str) -> Path:
    """A private copy of some of the test recipes (and the targets), free to edit."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("targets", *names):
        shutil.copyfile((TEST_RECIPES / f"{name}.toml").resolve(), target / f"{name}.toml")
    return target


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    """The hub test recipe and the targets."""
    return copy_recipes(tmp_path / "recipes", "hub")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def tljh(capsys: pytest.CaptureFixture[str]):
    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
