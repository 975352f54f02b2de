"""The store: a local content-addressed cache, `STORE/sha256/<hex>`, that is also a static mirror.

Nothing enters unverified: bytes land in `STORE/tmp/<hex>.part`, are checked for size and
sha256, fsynced and renamed into `sha256/`, so a crash never leaves a partial file there.
A `.part` survives an interruption and is resumed. Serving the store directory over HTTP
makes it a mirror for other servers (`fetch --store-mirror URL`), with the same layout as an
unpacked bundle.

Source archives are pinned by tree hash, not sha256: once verified they are stored under their
sha256 and `STORE/sources/<name>-<commit>.json` records which file holds the pinned tree.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tljh_lock.core.errors import InputError, IntegrityError, TljhLockError
from tljh_lock.core.files import CHUNK, fsync_dir, temporary_file, write_atomic

STORE_ENV = "TLJH_LOCK_STORE"
_HEX = re.compile(r"^[0-9a-f]{64}$")


def default_path() -> Path:
    configured = os.environ.get(STORE_ENV)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tljh-lock" / "store"


def disk_full(path: Path, what: str) -> TljhLockError:
    return TljhLockError(f"no space left on the device holding {path} while writing {what}",
                         hint="free some space, or point --store at a larger disk")


@dataclass(frozen=True)
class SourceRecord:
    """Which stored file holds a source pin's tree (verified by its tree hash)."""

    name: str
    commit: str
    tree_hash: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "commit": self.commit, "tree-hash": self.tree_hash,
                "sha256": self.sha256, "size": self.size}


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        if not _HEX.match(sha256):
            raise InputError(f"{sha256!r} is not a sha256 hex digest")
        return self.root / "sha256" / sha256

    def part_path(self, sha256: str) -> Path:
        return self.root / "tmp" / f"{sha256}.part"

    def has(self, sha256: str, size: int | None) -> bool:
        """Present (with the declared size, if any); the content was verified on entry."""
        try:
            actual = self.path(sha256).stat().st_size
        except FileNotFoundError:
            return False
        return size is None or actual == size

    def ensure_dirs(self) -> None:
        for sub in ("sha256", "tmp", "sources", "built"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def commit(self, part: Path, sha256: str) -> Path:
        """Move an already verified, fsynced `part` into place."""
        final = self.path(sha256)
        os.replace(part, final)
        fsync_dir(final.parent)
        return final

    def add_file(self, source: Path, what: str) -> tuple[str, int]:
        """Copy a local file in (built wheels); returns (sha256, size)."""
        with open(source, "rb") as src:
            return self.add_stream(src, source.name, what)

    def add_stream(self, src: IO[bytes], hint: str, what: str) -> tuple[str, int]:
        """Store what `src` yields under the sha256 it turns out to have."""
        self.ensure_dirs()
        digest = hashlib.sha256()
        size = 0
        with temporary_file(self.root / "tmp", hint) as (tmp, out):
            try:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise disk_full(self.root, what) from None
                raise
            sha256 = digest.hexdigest()
            if not self.has(sha256, size):
                self.commit(tmp, sha256)
        return sha256, size

    # --- source pins --------------------------------------------------------------------------

    def _source_record_path(self, name: str, commit: str) -> Path:
        return self.root / "sources" / f"{name}-{commit}.json"

    def source_record(self, name: str, commit: str, tree_hash: str) -> SourceRecord | None:
        path = self._source_record_path(name, commit)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = SourceRecord(name, commit, data["tree-hash"], data["sha256"], data["size"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record is only a cache miss: the archive is verified again
        if record.tree_hash != tree_hash or not self.has(record.sha256, record.size):
            return None
        return record

    def record_source(self, record: SourceRecord) -> None:
        self.ensure_dirs()
        write_atomic(self._source_record_path(record.name, record.commit),
                     json_bytes(record.to_dict()))

    def records(self, kind: str) -> list[dict[str, Any]]:
        """Every record of `kind` ("sources" pins, "built" wheels), by file name; a damaged one
        is only a cache miss, and is left out."""
        found = []
        for path in sorted((self.root / kind).glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append(data)
        return found

    # --- built wheels -------------------------------------------------------------------------

    def built_record(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.root / "built" / f"{key}.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(data, dict) or not self.has(str(data.get("sha256")), data.get("size")):
            return None
        return data

    def record_built(self, key: str, data: dict[str, Any]) -> None:
        self.ensure_dirs()
        write_atomic(self.root / "built" / f"{key}.json", json_bytes(data))


def mismatch(name: str, url: str, sha256: str, size: int | None, actual: str,
             actual_size: int, note: str = "") -> IntegrityError:
    declared = f"{size} bytes" if size is not None else "size not declared"
    return IntegrityError(
        f"{name}: {url} served a different file than the lock declares\n"
        f"  expected sha256 {sha256} ({declared})\n"
        f"  actual   sha256 {actual} ({actual_size} bytes){note}",
        hint="nothing was stored; check the mirror (a stale or tampered copy?) and fetch again",
    )


def json_bytes(data: dict[str, Any]) -> bytes:
    """The one JSON form of records and manifests: sorted, indented, stable across runs."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()
