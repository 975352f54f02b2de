"""A plain `pip install .` (no extras), built and installed offline from the wheels the zipapp
vendors: every subcommand works, or says which extra it needs, never an ImportError."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_bad_input import COMMITTED_LOCK, refused, wheels_only_lock
from tests.conftest import REPO
from tljh_lock.bundle import zipapp
from tljh_lock.cli.main import MAINTAINER_VERBS, ORDER
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from tljh_lock.core.runner import clean_environment
from tljh_lock.store.cas import Store

SOURCE = ("pyproject.toml", "README.md", "LICENSE", "tljh_lock")


def pip(python: Path, *args: str | Path) -> None:
    # the machine's pip configuration (an index, find-links) must not add to --no-index
    subprocess.run([str(python), "-m", "pip", "-q", *map(str, args)], check=True,
                   env={**clean_environment(), "PIP_CONFIG_FILE": "/dev/null"}, timeout=300)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, vendor_store: Path) -> Iterator[Path]:
    """The `tljh-lock` of a venv holding tljh-lock and its run-time dependencies only."""
    work = tmp_path_factory.mktemp("plain-install")
    source = work / "source"
    source.mkdir()
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(REPO / name, source / name)
    wheels = work / "wheels"
    wheels.mkdir()
    store = Store(vendor_store)
    for wheel in zipapp.VENDORED:
        shutil.copyfile(store.path(wheel.sha256), wheels / wheel.name)
    # The build backend is the project venv's (setuptools, from the dev extra): offline.
    pip(Path(sys.executable), "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", wheels, source)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    [built] = wheels.glob("tljh_lock-*.whl")
    pip(venv / "bin" / "python", "install", "--no-index", "--find-links", wheels, built)
    yield venv / "bin" / "tljh-lock"


def run(script: Path, *args: str | Path, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_plain_install_has_no_maintainer_side(plain: Path) -> None:
    python = plain.with_name("python")
    for module in ("tomli_w", "uv", "rattler"):
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True,
                               check=False)
        assert found.returncode != 0, f"{module} is installed: the test proves nothing"


@pytest.mark.parametrize("verb", ORDER)
def test_every_subcommand_helps_or_names_the_extra(plain: Path, verb: str) -> None:
    result = run(plain, verb, "--help")
    if verb in MAINTAINER_VERBS:
        refused(result, EXIT_USAGE, f"`{verb}` is a maintainer command",
                "pip install 'tljh-lock[maintainer]'", "tomli_w")
    else:
        assert result.returncode == EXIT_OK, result.stderr
        assert f"usage: tljh-lock {verb}" in result.stdout


def test_the_top_level_help_says_what_is_missing(plain: Path) -> None:
    result = run(plain, "--help")
    assert result.returncode == EXIT_OK
    assert "the maintainer commands (update, export) are not part of this" in result.stdout
    assert "pip install 'tljh-lock[maintainer]'" in result.stdout


def test_one_real_call_of_each_subcommand(plain: Path, tmp_path: Path) -> None:
    """The maintainer verbs refused with the extra; the others doing their job offline."""
    for verb in MAINTAINER_VERBS:
        refused(run(plain, verb, "--lock", COMMITTED_LOCK, "--format", "pylock"), EXIT_USAGE,
                "pip install 'tljh-lock[maintainer]'")
    check = run(plain, "check", "--recipes", REPO / "recipes", "--lock", COMMITTED_LOCK)
    assert check.returncode == EXIT_OK, check.stderr
    diff = run(plain, "diff", "--exit-code", COMMITTED_LOCK, COMMITTED_LOCK)
    assert (diff.returncode, diff.stdout) == (EXIT_OK, "No changes.\n")
    root = tmp_path / "server"
    lock = wheels_only_lock(tmp_path / "tljh.lock.toml")
    plan = run(plain, "apply", "--dry-run", "--root", root, "--lock", lock)
    assert plan.returncode == EXIT_OK, plan.stderr
    assert "plan for lock sha256 " in plan.stdout
    assert run(plain, "status", "--root", root).stdout == f"{root}: nothing applied\n"
    verify = run(plain, "verify", "--root", root)
    assert (verify.returncode, verify.stderr) == (
        EXIT_FAILURE, "drift: nothing has been applied here\n  hint: run `tljh-lock apply`\n")
    refused(run(plain, "rollback", "--root", root), EXIT_FAILURE, "nothing has been applied")
    # fetch and bundle: the network side (urllib3, tqdm) loads and says what it cannot reach
    for verb, extra in (("fetch", []), ("bundle", ["--platform", "x86_64", "-o",
                                                   tmp_path / "b.tar"])):
        result = run(plain, verb, "--lock", COMMITTED_LOCK, "--store", tmp_path / "store",
                     "--mirror", "https://=http://127.0.0.1:9/", "--stall-timeout", "2", *extra)
        refused(result, 4, "cannot reach http://127.0.0.1:9/")
