"""`bundle`: one reproducible file holding everything an air-gapped install of a platform needs.

A plain (uncompressed) tar, so that its bytes do not depend on a zlib build; the artifacts in it
are compressed already. Members, sorted by name, all with mtime 0, owner 0:0 and no owner
names, mode 0644 (the zipapp 0755), ustar headers (no pax records, so no times):

- `manifest.json`: format version, platform, the lock's sha256, every other member's name,
  size and sha256, the wheels built from sources (`built`: input sha256 -> wheel) and which
  stored archive holds each source pin (`sources`);
- `tljh.lock.toml`: the lock, byte for byte;
- `tljh-lock.pyz`: the tool itself;
- `sha256/<hex>`: every artifact of the platform, the source archives and the built wheels;
- `sources/<name>-<commit>.json`: the source records, as in the store.

Unpacked, a bundle has the store's layout, so any static web server makes it a mirror for
`fetch --store-mirror URL`. `safe_archive` opens it.
"""

from __future__ import annotations

import errno
import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tljh_lock import __version__
from tljh_lock.bundle import zipapp
from tljh_lock.bundle.safe_archive import (
    EXECUTABLE,
    LOCK_NAME,
    MANIFEST_NAME,
    PYZ_NAME,
    Entry,
    Manifest,
)
from tljh_lock.core.errors import InputError, IntegrityError, TljhLockError
from tljh_lock.core.files import CHUNK, replacing, sha256_file
from tljh_lock.core.targets import PLATFORMS
from tljh_lock.lock import file as lockfile
from tljh_lock.store import build_wheels
from tljh_lock.store.cas import disk_full, json_bytes
from tljh_lock.store.fetch import Fetcher, FetchReport, fetch_lock


@dataclass
class BundleResult:
    path: Path
    sha256: str
    size: int
    manifest: Manifest
    fetched: FetchReport

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.path), "sha256": self.sha256, "size": self.size,
                "lock_sha256": self.manifest.lock.sha256, "platform": self.manifest.platform,
                "members": len(self.manifest.members) + 1, "built": len(self.manifest.built),
                "fetch": self.fetched.to_dict()}


def write_bundle(lock_path: Path, platform: str, output: Path, fetcher: Fetcher) -> BundleResult:
    if platform not in PLATFORMS:
        raise TljhLockError(f"unknown platform {platform!r} (expected one of "
                            f"{', '.join(PLATFORMS)})")
    arch = None if platform == "all" else platform
    try:
        lock_bytes = lock_path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{lock_path}: no lock here",
                         hint="run `tljh-lock update` first") from None
    lock = lockfile.parse(lock_bytes.decode("utf-8", errors="replace"), str(lock_path))
    store = fetcher.store
    fetched, records = fetch_lock(lock, arch, fetcher)
    fetcher.fetch(zipapp.VENDORED)
    built = build_wheels.build(lock, arch, fetcher, records)

    # name -> (entry, where its bytes come from: a stored file or bytes in hand)
    contents: dict[str, tuple[Entry, Path | bytes]] = {}

    def add_bytes(name: str, data: bytes) -> Entry:
        entry = Entry(name, hashlib.sha256(data).hexdigest(), len(data))
        contents[name] = (entry, data)
        return entry

    def add_stored(sha256: str, size: int | None) -> None:
        name = f"sha256/{sha256}"
        path = store.path(sha256)
        # Some lock entries have no size (upstream publishes only a checksum): the file's own
        # size then, checked against its sha256 as it is copied in.
        contents[name] = (Entry(name, sha256, path.stat().st_size if size is None else size),
                          path)

    lock_entry = add_bytes(LOCK_NAME, lock_bytes)
    add_bytes(PYZ_NAME, zipapp.build(store))
    for artifact in lock.artifacts(arch):
        add_stored(artifact.sha256, artifact.size)
    sources = {}
    for record in records:
        add_stored(record.sha256, record.size)
        key = f"{record.name}-{record.commit}"
        sources[key] = record.to_dict()
        add_bytes(f"sources/{key}.json", json_bytes(record.to_dict()))
    for item in built:
        add_stored(item.wheel.sha256, item.wheel.size)

    manifest = Manifest(
        platform=platform, lock=lock_entry, tool_version=__version__,
        members={name: entry for name, (entry, _) in contents.items()},
        built={b.source_sha256: Entry(b.wheel.name, b.wheel.sha256, b.size) for b in built},
        sources=sources)
    manifest_bytes = manifest.dumps()
    members = {MANIFEST_NAME: (Entry(MANIFEST_NAME, "", len(manifest_bytes)), manifest_bytes),
               **contents}
    # Replaced only when complete: a failed run leaves the previous bundle (or none).
    with replacing(output, 0o644) as out:
        try:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name in sorted(members):
                    entry, source = members[name]
                    _add_member(tar, entry, source)
            out.flush()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(output.parent, str(output)) from None
            raise
    sha256, size = sha256_file(output)
    return BundleResult(output, sha256, size, manifest, fetched)


def _add_member(tar: tarfile.TarFile, entry: Entry, source: Path | bytes) -> None:
    info = tarfile.TarInfo(entry.name)
    info.size = entry.size
    info.mtime = 0
    info.mode = 0o755 if entry.name in EXECUTABLE else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    if isinstance(source, bytes):
        tar.addfile(info, _Hashing(_BytesReader(source)))
        return
    with open(source, "rb") as fh:
        reader = _Hashing(fh)
        tar.addfile(info, reader)
        if reader.size != entry.size or fh.read(1):
            raise IntegrityError(f"{source} changed size while the bundle was written")
    if reader.digest.hexdigest() != entry.sha256:
        raise IntegrityError(
            f"the store file {source} is damaged: its sha256 is {reader.digest.hexdigest()}",
            hint="delete that file and run `tljh-lock fetch` again")


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = bytes(self._data[self._pos:end])
        self._pos += len(chunk)
        return chunk


class _Hashing:
    """A reader that hashes what tarfile copies out of it."""

    def __init__(self, inner: IO[bytes] | _BytesReader) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = CHUNK) -> bytes:
        chunk = self.inner.read(n)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk
