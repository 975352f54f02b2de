"""The zipapp's __main__ (tljh_lock/pyz_main.py): a root run imports from its copy
unpacked into /var/cache/tljh-lock, where python keeps the bytecode; a copy that is not root's
alone is never imported, and a user's run never writes there. The real cache, the real
interpreter: each test's archive carries a zip comment of its own, so its copy is its own."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bundle.test_write import BARE_PYTHONS
from tljh_lock import pyz_main
from tljh_lock.bundle import zipapp
from tljh_lock.store.cas import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cache is root's")
ENV = {"PATH": "/usr/bin:/bin"}  # PYTHONDONTWRITEBYTECODE unset: bytecode is what is tested


@pytest.fixture
def pyz(vendor_store: Path) -> Iterator[tuple[Path, Path]]:
    """(a world-readable archive of its own, the directory a root run unpacks it into)."""
    where = Path(tempfile.mkdtemp(prefix="tljh-lock-pyz-"))
    where.chmod(0o755)
    path = where / "tljh-lock.pyz"
    path.write_bytes(zipapp.build(Store(vendor_store)))
    with zipfile.ZipFile(path, "a") as archive:
        archive.comment = uuid.uuid4().hex.encode()
    path.chmod(0o644)
    copy = Path(pyz_main.CACHE) / f"pyz-{hashlib.sha256(path.read_bytes()).hexdigest()}"
    yield path, copy
    shutil.rmtree(where)
    shutil.rmtree(copy, ignore_errors=True)


def _version(python: str, pyz: Path, *prefix: str) -> None:
    proc = subprocess.run([*prefix, python, str(pyz), "--version"], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("tljh-lock "), proc.stderr


def _bytecode(copy: Path) -> list[Path]:
    return sorted(copy.glob("tljh_lock/**/__pycache__/*.pyc"))


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_a_root_run_imports_from_its_unpacked_copy(pyz: tuple[Path, Path], python: str) -> None:
    archive, copy = pyz
    _version(python, archive)
    st = copy.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    with zipfile.ZipFile(archive) as zf:
        members = {n for n in zf.namelist() if not n.endswith("/")}
    assert members == {p.relative_to(copy).as_posix() for p in copy.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts}
    compiled = _bytecode(copy)
    assert compiled, "the run did not import from the unpacked copy"
    before = {p: p.stat().st_mtime_ns for p in compiled}
    _version(python, archive)  # the second run reads that bytecode, writes none
    assert {p: p.stat().st_mtime_ns for p in _bytecode(copy)} == before
    assert not list(Path(pyz_main.CACHE).glob(".pyz-*")), "a temporary copy was left"


def test_a_copy_others_can_write_is_not_imported(pyz: tuple[Path, Path]) -> None:
    archive, copy = pyz
    _version("/usr/bin/python3", archive)
    for cache in copy.glob("**/__pycache__"):
        shutil.rmtree(cache)
    copy.chmod(0o770)
    _version("/usr/bin/python3", archive)
    assert not _bytecode(copy), "a group-writable copy was imported from"


def test_a_users_run_runs_from_the_archive(pyz: tuple[Path, Path]) -> None:
    archive, copy = pyz
    _version("/usr/bin/python3", archive, "setpriv", "--reuid=65534", "--regid=65534",
             "--clear-groups")
    assert not copy.exists()
