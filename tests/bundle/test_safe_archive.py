"""Opening bundles: hostile archives are refused with nothing written, on every python we run
on, including Debian 12's 3.11.2, whose tarfile has no extraction filters."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tljh_lock.bundle import safe_archive
from tljh_lock.bundle.safe_archive import Entry, Manifest
from tljh_lock.core.errors import TljhLockError

REPO = Path(__file__).resolve().parents[2]
OTHER_PYTHONS = [p for p in ("/usr/bin/python3", "/root/.pyenv/versions/3.9.18/bin/python3")
                 if Path(p).exists()]

LOCK = b'lock-version = 1\n'
PYZ = b"#!/usr/bin/env python3\nPK-not-really"
BLOB = b"a wheel, say\n" * 100
BLOB_NAME = "sha256/" + hashlib.sha256(BLOB).hexdigest()
OTHER = b"another file\n"
OTHER_NAME = "sha256/" + hashlib.sha256(OTHER).hexdigest()


def entry(name: str, data: bytes) -> Entry:
    return Entry(name, hashlib.sha256(data).hexdigest(), len(data))


def manifest_for(files: dict[str, bytes], lock: Entry | None = None) -> bytes:
    members = {name: entry(name, data) for name, data in files.items()}
    return Manifest("x86_64", lock or members["tljh.lock.toml"], "0.1.0", members).dumps()


GOOD = {"tljh.lock.toml": LOCK, "tljh-lock.pyz": PYZ, BLOB_NAME: BLOB}


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, b""


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
              fmt: int = tarfile.GNU_FORMAT) -> None:
    with tarfile.open(path, "w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def good_members(files: dict[str, bytes] = GOOD) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [regular("manifest.json", manifest_for(files))] + [
        regular(name, data) for name, data in sorted(files.items())]


def hostile_cases(outside: Path) -> dict[str, Callable[[Path], None]]:
    """name -> writer of a hostile bundle; `outside` is where escapes would land."""
    listed = manifest_for(GOOD)

    def with_manifest(*extra: tuple[tarfile.TarInfo, bytes], skip: str = "",
                      manifest: bytes = listed, fmt: int = tarfile.GNU_FORMAT
                      ) -> Callable[[Path], None]:
        members = [regular("manifest.json", manifest)] + [
            regular(n, d) for n, d in sorted(GOOD.items()) if n != skip] + list(extra)
        return lambda path: write_tar(path, members, fmt)

    pax_escape = tarfile.TarInfo("innocent")
    pax_escape.size = len(BLOB)
    pax_escape.pax_headers = {"path": "../../pax-escaped"}
    with_bad_lock = manifest_for(GOOD, lock=entry("tljh.lock.toml", b"another lock\n"))
    wrong_name = json.loads(listed)
    wrong_name["members"][0]["name"] = "etc/cron.d/evil"  # a plain name, not a bundle's
    return {
        "traversal": with_manifest(regular("../../escaped", b"x")),
        "unexpected-listed": with_manifest(
            regular("etc/cron.d/evil", BLOB),
            manifest=json.dumps(wrong_name).encode()),
        "absolute": with_manifest(regular(str(outside / "absolute"), b"x")),
        "absolute-etc": with_manifest(regular("/etc/tljh-lock-test-x", b"x")),
        "pax-traversal": with_manifest((pax_escape, BLOB), fmt=tarfile.PAX_FORMAT),
        "symlink-out": with_manifest(special(OTHER_NAME, tarfile.SYMTYPE, "/etc/passwd")),
        "symlink-dir": lambda path: write_tar(path, [
            regular("manifest.json", listed),
            special("sha256", tarfile.SYMTYPE, str(outside)),
            *[regular(n, d) for n, d in sorted(GOOD.items())]]),
        "symlink-listed": with_manifest(special(BLOB_NAME, tarfile.SYMTYPE, "/etc/passwd"),
                                        skip=BLOB_NAME),
        "hardlink-out": with_manifest(special(OTHER_NAME, tarfile.LNKTYPE, "/etc/passwd")),
        "hardlink-listed": with_manifest(special(BLOB_NAME, tarfile.LNKTYPE, "tljh.lock.toml"),
                                         skip=BLOB_NAME),
        "char-device": with_manifest(special("tljh-lock.pyz", tarfile.CHRTYPE),
                                     skip="tljh-lock.pyz"),
        "block-device": with_manifest(special(OTHER_NAME, tarfile.BLKTYPE)),
        "fifo": with_manifest(special(OTHER_NAME, tarfile.FIFOTYPE)),
        "duplicate": with_manifest(regular("tljh.lock.toml", b"lock-version = 666\n")),
        "duplicate-manifest": with_manifest(regular("manifest.json", listed)),
        "extra-member": with_manifest(regular(OTHER_NAME, OTHER)),
        "extra-unlisted-name": with_manifest(regular("evil.sh", b"rm -rf /\n")),
        "extra-directory": with_manifest(special("etc", tarfile.DIRTYPE)),
        "missing-member": with_manifest(skip=BLOB_NAME),
        "oversize": with_manifest(regular(BLOB_NAME, BLOB + b"more"), skip=BLOB_NAME),
        "undersize": with_manifest(regular(BLOB_NAME, BLOB[:-1]), skip=BLOB_NAME),
        "hash-mismatch": with_manifest(regular(BLOB_NAME, BLOB.upper()), skip=BLOB_NAME),
        "lock-mismatch": with_manifest(manifest=with_bad_lock),
        "lock-swapped": with_manifest(regular("tljh.lock.toml", b"lock-version = 2\n"),
                                      skip="tljh.lock.toml"),
        "no-manifest": lambda path: write_tar(path, [regular(n, d) for n, d in GOOD.items()]),
        "not-json-manifest": with_manifest(manifest=b"{nope"),
        "not-a-tar": lambda path: path.write_bytes(b"\x00garbage" * 100),
    }


def snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


@pytest.fixture
def cases(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    """Each case in its own directory: `bundle.tar` and an empty `area/` to extract into."""
    outside = tmp_path / "outside"
    outside.mkdir()
    built = {}
    for name, write in hostile_cases(outside).items():
        case = tmp_path / "cases" / name
        (case / "area").mkdir(parents=True)
        write(case / "bundle.tar")
        built[name] = case
    return tmp_path, outside, built


def test_good_bundle_extracts(tmp_path: Path) -> None:
    write_tar(tmp_path / "b.tar", good_members())
    manifest = safe_archive.extract(tmp_path / "b.tar", tmp_path / "out",
                                    expect_lock_sha256=hashlib.sha256(LOCK).hexdigest())
    assert manifest.lock.sha256 == hashlib.sha256(LOCK).hexdigest()
    for name, data in GOOD.items():
        assert (tmp_path / "out" / name).read_bytes() == data
    assert (tmp_path / "out" / "tljh-lock.pyz").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / BLOB_NAME).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "out"]  # no staging left


def test_expected_lock_is_enforced(tmp_path: Path) -> None:
    write_tar(tmp_path / "b.tar", good_members())
    with pytest.raises(TljhLockError, match="made from another lock"):
        safe_archive.extract(tmp_path / "b.tar", tmp_path / "out", expect_lock_sha256="0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar"]


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    write_tar(tmp_path / "b.tar", good_members())
    (tmp_path / "out").mkdir()
    with pytest.raises(TljhLockError, match="already exists"):
        safe_archive.extract(tmp_path / "b.tar", tmp_path / "out")


def test_hostile_archives_are_refused(cases: tuple[Path, Path, dict[str, Path]]) -> None:
    root, outside, built = cases
    before = snapshot(root)
    for name, case in built.items():
        with pytest.raises(TljhLockError) as caught:
            safe_archive.extract(case / "bundle.tar", case / "area" / "dest")
        assert "nothing was extracted" in str(caught.value) or "bundle" in str(caught.value), name
    assert snapshot(root) == before  # nothing written anywhere: not outside, not in area/
    assert not Path("/etc/tljh-lock-test-x").exists()


def test_refusals_say_why(cases: tuple[Path, Path, dict[str, Path]]) -> None:
    _, _, built = cases
    expected = {
        "traversal": "'..'", "absolute": "absolute name", "pax-traversal": "'..'",
        "symlink-out": "symbolic link", "symlink-dir": "symbolic link",
        "hardlink-out": "hard link", "char-device": "device file", "block-device": "device",
        "fifo": "fifo", "duplicate": "duplicate name", "extra-member": "not listed",
        "extra-unlisted-name": "not listed", "extra-directory": "directory not needed",
        "missing-member": "missing", "oversize": "the manifest lists",
        "hash-mismatch": "sha256", "lock-mismatch": "lock's sha256",
        "lock-swapped": "sha256", "unexpected-listed": "not allowed",
        "no-manifest": "not a tljh-lock bundle", "not-a-tar": "not a readable tar",
    }
    for name, needle in expected.items():
        with pytest.raises(TljhLockError) as caught:
            safe_archive.extract(built[name] / "bundle.tar", built[name] / "area" / "dest")
        assert needle in str(caught.value), (name, str(caught.value))


SCRIPT = """
import json, sys, tarfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tljh_lock.bundle import safe_archive
from tljh_lock.core.errors import TljhLockError
results = {"_filters": hasattr(tarfile, "data_filter"), "_version": sys.version.split()[0]}
for case in sorted(Path(sys.argv[2]).iterdir()):
    try:
        safe_archive.extract(case / "bundle.tar", case / "area" / "dest")
        results[case.name] = "extracted"
    except TljhLockError as exc:
        results[case.name] = "refused: " + str(exc)
print(json.dumps(results))
"""


@pytest.mark.parametrize("python", OTHER_PYTHONS)
def test_hostile_archives_refused_by_other_pythons(
    cases: tuple[Path, Path, dict[str, Path]], python: str
) -> None:
    root, _, built = cases
    before = snapshot(root)
    proc = subprocess.run([python, "-I", "-c", SCRIPT, str(REPO), str(root / "cases")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    if python == "/usr/bin/python3" and results["_version"] == "3.11.2":
        assert results["_filters"] is False  # the case this module exists for
    for name in built:
        assert results[name].startswith("refused: "), (name, results[name])
    assert snapshot(root) == before
    assert not Path("/etc/tljh-lock-test-x").exists()


@pytest.mark.parametrize("python", [sys.executable, *OTHER_PYTHONS])
def test_good_bundle_extracts_on_every_python(tmp_path: Path, python: str) -> None:
    write_tar(tmp_path / "b.tar", good_members())
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from tljh_lock.bundle import safe_archive; "
            "print(safe_archive.extract(Path(sys.argv[2]), Path(sys.argv[3])).lock.sha256)")
    proc = subprocess.run([python, "-I", "-c", code, str(REPO), str(tmp_path / "b.tar"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == hashlib.sha256(LOCK).hexdigest()
    assert (tmp_path / "out" / BLOB_NAME).read_bytes() == BLOB


def test_read_manifest_checks_without_extracting(tmp_path: Path) -> None:
    write_tar(tmp_path / "b.tar", good_members())
    assert set(safe_archive.read_manifest(tmp_path / "b.tar").members) == set(GOOD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar"]
