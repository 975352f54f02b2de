"""What a user can get wrong, through the installed `tljh-lock` console script: each case exits
with its documented code and a line naming the thing and the next step, never a traceback, and
changes nothing. The last tests feed the top-level handler what no command should raise."""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_recipes
from tljh_lock.bundle.safe_archive import LOCK_NAME, MANIFEST_NAME, PYZ_NAME, Entry, Manifest
from tljh_lock.cli import main as cli_main
from tljh_lock.cli.common import Subcommands, Verb
from tljh_lock.core.errors import (
    EXIT_BUG,
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
)
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.resolve.write import dumps as dump_lock

# The console script of the venv running the tests: the entry point as installed, not main().
TLJH_LOCK = Path(sys.executable).with_name("tljh-lock")
COMMITTED_LOCK = REPO / "locks" / "tljh.lock.toml"
NOBODY = 65534


def run(*args: str | Path, cwd: Path | None = None, unprivileged: bool = False,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [str(TLJH_LOCK), *map(str, args)]
    if unprivileged and os.geteuid() == 0:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def refused(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> str:
    """The one error of a refused command: its exit code, its words, no traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == code, output
    error = result.stderr
    # argparse's own errors come after the usage
    assert any(line.startswith("tljh-lock") and "error: " in line
               for line in error.splitlines()), output
    for phrase in phrases:
        assert phrase in error, output
    return error


def wheels_only_lock(path: Path) -> Path:
    """The committed lock without what needs a build (TLJH's source pin, sdist-only packages):
    a plan of it needs no store, so a dry run works on any machine."""
    lock = lockfile.load(COMMITTED_LOCK)
    for name in ("hub", "user-env"):
        component = lock.components[name]
        assert isinstance(component, pip_lock.Component)
        component.sources = ()
        component.packages = tuple(p for p in component.packages if p.wheels)
    path.write_text(dump_lock(lock))
    return path


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory an unprivileged user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="tljh-lock-bad-input-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("command", [["apply", "--lock", COMMITTED_LOCK], ["rollback"]])
def test_unprivileged_apply_and_rollback_on_the_system_are_refused(command: list[str]) -> None:
    error = refused(run(*command, unprivileged=True), EXIT_FAILURE,
                    f"{command[0]} on / changes the system and needs root", "sudo", "--root DIR")
    assert f"uid {NOBODY if os.geteuid() == 0 else os.geteuid()}" in error


def test_apply_without_arguments_and_without_locks_names_the_lock_and_the_options(
        tmp_path: Path) -> None:
    error = refused(run("apply", cwd=tmp_path), EXIT_INPUT, "locks/tljh.lock.toml: no lock here",
                    "--lock FILE", "--bundle FILE")
    assert "tljh-lock update" not in error  # the maintainer's next step, not the server's
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["check", "--no-recipes"], ["apply", "--root", "root"],
                                     ["diff", COMMITTED_LOCK]])
def test_a_lock_path_that_is_a_directory(tmp_path: Path, command: list[str]) -> None:
    lock_dir = tmp_path / "locks"
    lock_dir.mkdir()
    args = [*command, lock_dir] if command[0] == "diff" else [*command, "--lock", lock_dir]
    refused(run(*args, cwd=tmp_path), EXIT_INPUT, f"{lock_dir}: a directory, not a lock file",
            f"{lock_dir / 'tljh.lock.toml'}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locks"]  # no root made


def test_an_unreadable_lock(open_dir: Path) -> None:
    lock = open_dir / "tljh.lock.toml"
    shutil.copyfile(COMMITTED_LOCK, lock)
    lock.chmod(0)
    if os.geteuid() != 0 and os.access(lock, os.R_OK):
        pytest.skip("this user reads files of mode 0")
    refused(run("check", "--no-recipes", "--lock", lock, unprivileged=True), EXIT_INPUT,
            f"{lock}: not readable by this user (permission denied)", "make it readable")


@pytest.mark.parametrize("command", [
    ["export", "--lock", COMMITTED_LOCK, "--format", "pylock"],
    ["bundle", "--lock", COMMITTED_LOCK, "--platform", "x86_64"],
])
def test_output_into_a_missing_directory_is_refused_not_created(tmp_path: Path,
                                                                command: list[str]) -> None:
    missing = tmp_path / "typo"
    refused(run(*command, "--store", tmp_path / "store", "-o", missing / "out")
            if command[0] == "bundle" else run(*command, "-o", missing / "out"),
            EXIT_USAGE, f"argument -o/--output: {missing} does not exist", "create it first")
    assert list(tmp_path.iterdir()) == []


def test_output_below_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    refused(run("export", "--lock", COMMITTED_LOCK, "--format", "pylock",
                "-o", tmp_path / "file" / "out"),
            EXIT_USAGE, f"{tmp_path / 'file'} is not a directory")


def test_a_relative_root_is_the_directory_below_the_current_one(tmp_path: Path) -> None:
    lock = wheels_only_lock(tmp_path / "tljh.lock.toml")
    result = run("apply", "--dry-run", "--root", "server", "--lock", lock, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"into {tmp_path / 'server'}:" in result.stdout
    status = run("status", "--root", "server", cwd=tmp_path)
    assert (status.returncode, status.stdout) == (0, f"{tmp_path / 'server'}: nothing applied\n")
    refused(run("rollback", "--root", "server", cwd=tmp_path), EXIT_FAILURE,
            "nothing has been applied here")


def test_update_of_an_npm_recipe_without_npm_names_npm(tmp_path: Path) -> None:
    recipe_dir = copy_recipes(tmp_path / "recipes", "configurable-http-proxy")
    lock = tmp_path / "tljh.lock.toml"
    env = {**os.environ, "PATH": str(tmp_path / "empty")}  # the script needs no PATH: shebang
    error = refused(run("update", "--recipes", recipe_dir, "--lock", lock, env=env),
                    EXIT_FAILURE, "npm is needed to resolve npm recipes, and it is not on PATH",
                    "install Node.js with npm")
    assert "ranges" not in error
    assert not lock.exists()


def test_an_unknown_upgrade_package_is_a_bad_command_line() -> None:
    refused(run("update", "--recipes", REPO / "recipes", "--lock", COMMITTED_LOCK,
                "-P", "no-such-package"),
            EXIT_USAGE, "--upgrade-package: no-such-package is not in")


def test_help_documents_the_exit_codes_of_a_bug_and_an_interrupt() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "70 a bug in tljh-lock" in result.stdout
    assert "130 interrupted" in result.stdout


def _verbs_raising(exc: BaseException) -> dict[str, Verb]:
    def add(sub: Subcommands, common: argparse.ArgumentParser) -> None:
        sub.add_parser("crash", parents=[common])

    def crash(args: argparse.Namespace) -> int:
        raise exc

    return {"crash": Verb("crash", add, crash)}


def test_an_unexpected_exception_is_one_line_saying_bug_and_a_saved_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli_main, "verbs", lambda: _verbs_raising(KeyError("the-key")))
    assert cli_main.main(["crash"]) == EXIT_BUG
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("tljh-lock: error: unexpected KeyError: 'the-key': this is a bug in "
                           "tljh-lock; the traceback is in ")
    [saved] = tmp_path.iterdir()
    assert str(saved) in line
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    text = saved.read_text()
    assert "Traceback (most recent call last)" in text
    assert "raise exc" in text and "KeyError: 'the-key'" in text


def test_a_bug_report_keeps_no_admin_password(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cli_main, "verbs", lambda: _verbs_raising(KeyError("the-key")))
    argv = ["tljh-lock", "crash", "--admin", "alice:s3cret:x", "--admin=bob:hunter2", "--admin",
            "carol"]
    monkeypatch.setattr(sys, "argv", argv)
    assert cli_main.main(["crash"]) == EXIT_BUG
    capsys.readouterr()
    [saved] = tmp_path.iterdir()
    text = saved.read_text()
    assert "s3cret" not in text and "hunter2" not in text
    assert "'alice:<password>'" in text and "'--admin=bob:<password>'" in text
    assert "'carol'" in text


def test_an_interrupt_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_main, "verbs", lambda: _verbs_raising(KeyboardInterrupt()))
    assert cli_main.main(["crash"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "tljh-lock: interrupted\n"


def test_conda_lock_export_of_a_lock_without_conda_says_so() -> None:
    refused(run("export", "--lock", COMMITTED_LOCK, "--format", "conda-lock"), EXIT_INPUT,
            "the lock has no conda component: conda-lock has nothing to export",
            "--format pylock")


def other_arch_bundle(path: Path) -> str:
    """A bundle the reader accepts, made for the arch this machine is not: its lock, a tool
    and the manifest listing them."""
    arch = "aarch64" if os.uname().machine == "x86_64" else "x86_64"
    lock = COMMITTED_LOCK.read_bytes()
    tool = b"not run: the bundle is refused first"
    entries = {name: Entry(name, hashlib.sha256(data).hexdigest(), len(data))
               for name, data in ((LOCK_NAME, lock), (PYZ_NAME, tool))}
    manifest = Manifest(arch, entries[LOCK_NAME], "0.1.0", entries).dumps()
    with tarfile.open(path, "w") as tar:
        for name, data in ((MANIFEST_NAME, manifest), (LOCK_NAME, lock), (PYZ_NAME, tool)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return arch


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_bundle_for_another_arch_is_refused_before_unpacking(tmp_path: Path,
                                                               dry_run: list[str]) -> None:
    bundle = tmp_path / "other.bundle"
    arch = other_arch_bundle(bundle)
    root = tmp_path / "root"
    refused(run("apply", *dry_run, "--bundle", bundle, "--root", root), EXIT_INPUT,
            f"{bundle}: a bundle for {arch}, and this machine is {os.uname().machine}",
            f"tljh-lock bundle --platform {os.uname().machine}")
    assert not root.exists()
