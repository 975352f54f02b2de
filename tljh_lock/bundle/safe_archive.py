"""Opening a bundle safely, on any python3 >= 3.9 (Debian 12's 3.11.2 has no tarfile filters).

Every member is judged against the manifest before anything is written: only regular files and
directories, exactly the names the manifest lists, no `..` or absolute names, no links, devices
or fifos, no duplicates or extras, sizes as listed. Then the files are written one by one, never
through `tarfile.extract*`, with O_EXCL|O_NOFOLLOW below directory descriptors, into a fresh
directory beside the destination, each checked against its listed sha256; the directory is
renamed into place only when everything matched, and removed on any refusal.

Stdlib only (and `errors`, `store`, which are too): it must run under any bare python3.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tljh_lock.core.errors import InputError, IntegrityError, TljhLockError
from tljh_lock.core.files import CHUNK, sha256_stream
from tljh_lock.store.cas import disk_full, json_bytes

FORMAT = "tljh-lock-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = "tljh.lock.toml"
PYZ_NAME = "tljh-lock.pyz"
# Every name a bundle may hold; anything else is refused before a byte is written.
MEMBER_NAME = re.compile(
    r"^(tljh\.lock\.toml|tljh-lock\.pyz|sha256/[0-9a-f]{64}|sources/[a-z0-9._-]+\.json)$")
EXECUTABLE = (PYZ_NAME,)
MAX_MANIFEST_BYTES = 16 << 20
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Entry:
    name: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "size": self.size}


@dataclass
class Manifest:
    platform: str
    lock: Entry
    tool_version: str
    members: dict[str, Entry]  # every member but the manifest itself, by name
    built: dict[str, Entry] = field(default_factory=dict)  # build input -> wheel
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # name-commit -> record

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format-version": FORMAT_VERSION,
            "platform": self.platform,
            "lock": self.lock.to_dict(),
            "tool": {"name": PYZ_NAME, "version": self.tool_version},
            "members": [self.members[name].to_dict() for name in sorted(self.members)],
            "built": {key: entry.to_dict() for key, entry in sorted(self.built.items())},
            "sources": dict(sorted(self.sources.items())),
        }

    def dumps(self) -> bytes:
        return json_bytes(self.to_dict())


def parse_manifest(data: bytes, where: str) -> Manifest:
    def fail(message: str) -> InputError:
        return InputError(f"{where}: {MANIFEST_NAME}: {message}",
                          hint="the bundle is damaged or not made by `tljh-lock bundle`")

    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise fail(f"not a {FORMAT} manifest")
    if raw.get("format-version") != FORMAT_VERSION:
        raise fail(f"format-version {raw.get('format-version')!r} is not supported "
                   f"(this tljh-lock reads {FORMAT_VERSION})")

    def entry(value: Any, context: str) -> Entry:
        if not isinstance(value, dict):
            raise fail(f"{context} is not a table")
        name, sha256, size = value.get("name"), value.get("sha256"), value.get("size")
        if not isinstance(name, str) or not isinstance(sha256, str) or not _HEX.match(sha256):
            raise fail(f"{context} needs a name and a sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise fail(f"{context}: size {size!r} is not a byte count")
        return Entry(name, sha256, size)

    members: dict[str, Entry] = {}
    listed = raw.get("members")
    if not isinstance(listed, list):
        raise fail("members is not a list")
    for index, value in enumerate(listed):
        item = entry(value, f"members[{index}]")
        if not MEMBER_NAME.match(item.name):
            raise fail(f"member name {item.name!r} is not allowed in a bundle")
        if item.name.startswith("sha256/") and item.name[len("sha256/"):] != item.sha256:
            raise fail(f"{item.name} is listed with sha256 {item.sha256}")
        if item.name in members:
            raise fail(f"{item.name} is listed twice")
        members[item.name] = item
    lock = entry(raw.get("lock"), "lock")
    for required in (LOCK_NAME, PYZ_NAME):
        if required not in members:
            raise fail(f"{required} is not listed")
    if lock.name != LOCK_NAME or members[LOCK_NAME] != lock:
        raise fail(f"the lock's sha256 {lock.sha256} differs from the listed {LOCK_NAME} "
                   f"({members[LOCK_NAME].sha256})")
    built_raw = raw.get("built", {})
    sources = raw.get("sources", {})
    tool = raw.get("tool")
    platform = raw.get("platform")
    if not isinstance(built_raw, dict) or not isinstance(sources, dict):
        raise fail("built and sources must be tables")
    if not isinstance(tool, dict) or not isinstance(platform, str):
        raise fail("tool and platform are required")
    built = {key: entry(value, f"built[{key}]") for key, value in built_raw.items()}
    return Manifest(platform, lock, str(tool.get("version")), members, built, sources)


def _refuse(where: str, member: str, why: str) -> IntegrityError:
    return IntegrityError(f"{where}: refused: member {member!r}: {why}",
                          hint="nothing was extracted; get the bundle again from a trusted copy")


def _check_header(where: str, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(where, name, "absolute name")
    if ".." in parts:
        raise _refuse(where, name, "name leaves the bundle ('..')")
    if "\\" in name or "\0" in name or any(p in ("", ".") for p in parts):
        raise _refuse(where, name, "not a plain relative name")
    if member.issym():
        raise _refuse(where, name, f"symbolic link (to {member.linkname!r})")
    if member.islnk():
        raise _refuse(where, name, f"hard link (to {member.linkname!r})")
    if member.ischr() or member.isblk():
        raise _refuse(where, name, "device file")
    if member.isfifo():
        raise _refuse(where, name, "fifo")
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE):
        raise _refuse(where, name, f"unsupported member type {member.type!r}")


def _plan(tar: tarfile.TarFile, where: str) -> tuple[Manifest, dict[str, tarfile.TarInfo]]:
    """Read the manifest and judge every header against it; writes nothing."""
    files: dict[str, tarfile.TarInfo] = {}
    directories: set[str] = set()
    for member in tar:
        _check_header(where, member)
        if member.name in files or member.name in directories:
            raise _refuse(where, member.name, "duplicate name")
        if member.isdir():
            directories.add(member.name)
        else:
            files[member.name] = member
    info = files.get(MANIFEST_NAME)
    if info is None:
        raise InputError(f"{where}: no {MANIFEST_NAME}: not a tljh-lock bundle")
    if info.size > MAX_MANIFEST_BYTES:
        raise _refuse(where, MANIFEST_NAME, f"{info.size} bytes is too large for a manifest")
    reader = tar.extractfile(info)
    assert reader is not None
    manifest = parse_manifest(reader.read(), where)
    listed = set(manifest.members)
    for name, member in files.items():
        if name == MANIFEST_NAME:
            continue
        if name not in listed:
            raise _refuse(where, name, "not listed in the manifest")
        if member.size != manifest.members[name].size:
            raise _refuse(where, name, f"{member.size} bytes, the manifest lists "
                                       f"{manifest.members[name].size}")
    missing = sorted(listed - set(files))
    if missing:
        raise _refuse(where, missing[0], "listed in the manifest but missing")
    parents = {"/".join(n.split("/")[:i]) for n in listed for i in range(1, n.count("/") + 1)}
    for name in sorted(directories - parents):
        raise _refuse(where, name, "directory not needed by any listed file")
    return manifest, files


def read_manifest(bundle: Path) -> Manifest:
    """The manifest, after the whole archive passed the header checks (nothing extracted)."""
    try:
        with _open(bundle) as tar:
            return _plan(tar, str(bundle))[0]
    except tarfile.TarError as exc:
        raise InputError(f"{bundle}: not a readable tar archive: {exc}") from None


def _open(bundle: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(bundle, mode="r:*")
    except FileNotFoundError:
        raise InputError(f"{bundle}: no such file") from None
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"{bundle}: not a readable tar archive: {exc}") from None


def extract(bundle: Path, dest: Path, expect_lock_sha256: str | None = None) -> Manifest:
    """Unpack `bundle` as the new directory `dest`, or refuse and leave nothing behind. Not
    fsynced: apply unpacks into its run's scratch, which the next run clears, so a crash
    loses nothing that durability would have kept (and fsync was a second of every apply)."""
    dest = Path(dest)
    if os.path.lexists(dest):
        raise InputError(f"{dest} already exists; extract into a new directory")
    if not dest.parent.is_dir():
        raise InputError(f"{dest.parent}: no such directory to extract into")
    return _read_all(bundle, expect_lock_sha256, dest, {})


def verify(bundle: Path, expect_lock_sha256: str | None = None) -> bytes:
    """Every check of `extract`, every member hashed, and nothing written: what lets apply
    refuse a damaged bundle (or a lock it cannot apply) before it creates anything on the
    server. Returns the lock's bytes, verified."""
    kept: dict[str, bytes] = {}
    _read_all(bundle, expect_lock_sha256, None, kept)
    return kept[LOCK_NAME]


def _read_all(bundle: Path, expect_lock_sha256: str | None, dest: Path | None,
              kept: dict[str, bytes]) -> Manifest:
    where = str(bundle)
    try:
        with _open(bundle) as tar:
            manifest, files = _plan(tar, where)
            if expect_lock_sha256 is not None and manifest.lock.sha256 != expect_lock_sha256:
                raise IntegrityError(
                    f"{where}: holds the lock with sha256 {manifest.lock.sha256}, "
                    f"not the expected {expect_lock_sha256}",
                    hint="this bundle was made from another lock")
            if dest is None:
                _read_members(tar, where, manifest, files, None, kept)
                return manifest
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            try:
                _read_members(tar, where, manifest, files, staging, kept)
                os.rename(staging, dest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except tarfile.TarError as exc:
        raise InputError(f"{where}: not a readable tar archive: {exc}") from None
    except OSError as exc:
        if dest is None:
            raise TljhLockError(f"{where}: cannot read: {exc}") from None
        if exc.errno == errno.ENOSPC:
            raise disk_full(dest.parent, f"the contents of {where}") from None
        raise TljhLockError(f"{where}: cannot extract into {dest}: {exc}") from None
    return manifest


def _read_members(tar: tarfile.TarFile, where: str, manifest: Manifest,
                  files: dict[str, tarfile.TarInfo], staging: Path | None,
                  kept: dict[str, bytes]) -> None:
    """Hash every member against the manifest, writing each below `staging` if given; when
    not, keep the lock's bytes in `kept`."""
    root = None if staging is None else \
        os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in sorted(files):
            reader = tar.extractfile(files[name])
            assert reader is not None
            expected = manifest.members.get(name)
            mode = 0o755 if name in EXECUTABLE else 0o644
            if root is not None:
                actual = _write_one(root, name, reader, mode)
            elif name == LOCK_NAME:
                kept[name] = reader.read()
                actual = hashlib.sha256(kept[name]).hexdigest()
            else:
                actual = sha256_stream(reader)[0]
            if expected is not None and actual != expected.sha256:
                raise _refuse(where, name, f"sha256 {actual}, the manifest lists "
                                           f"{expected.sha256}")
    finally:
        if root is not None:
            os.close(root)


def _write_one(root: int, name: str, reader: IO[bytes], mode: int) -> str:
    *dirs, base = name.split("/")
    fd = os.dup(root)
    try:
        for part in dirs:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
        out = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode,
                      dir_fd=fd)
    finally:
        os.close(fd)
    digest = hashlib.sha256()
    with os.fdopen(out, "wb") as fh:
        for chunk in iter(lambda: reader.read(CHUNK), b""):
            digest.update(chunk)
            fh.write(chunk)
        os.fchmod(fh.fileno(), mode)  # not the archive's mode bits, nor the umask's
    return digest.hexdigest()
