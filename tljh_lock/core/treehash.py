"""Content hash of a source tree: Go's dirhash "h1", which survives archive re-packing."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from collections.abc import Iterable

from tljh_lock.core.errors import InputError


def tree_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """Hash (relative posix path, contents) pairs; order of the input does not matter."""
    entries = sorted(files, key=lambda item: item[0].encode())
    summary = "".join(f"{hashlib.sha256(data).hexdigest()}  {path}\n" for path, data in entries)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def archive_files(data: bytes, source: str) -> dict[str, bytes]:
    """Regular files below the single top-level directory of a .tar.gz source archive.

    Links and special files are refused: a tree pinned by hash must not point outside itself.
    """
    files: dict[str, bytes] = {}
    top: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.name.startswith("/") or ".." in parts:
                    raise InputError(f"{source}: unsafe member name {member.name!r}")
                top.add(parts[0])
                if member.isdir() or member.name == "pax_global_header":
                    continue
                if not member.isfile():
                    raise InputError(f"{source}: member {member.name!r} is not a regular file")
                rel = "/".join(p for p in parts[1:] if p)
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[rel] = extracted.read()
    except tarfile.TarError as exc:
        raise InputError(f"{source}: not a readable tar archive: {exc}") from None
    top.discard("pax_global_header")
    if len(top) != 1:
        raise InputError(f"{source}: expected one top-level directory, found {sorted(top)}")
    return files


def subtree(files: dict[str, bytes], subdirectory: str | None) -> dict[str, bytes]:
    """The files below `subdirectory` of a tree (archive_files'), relative to it; all of them
    when it is None."""
    if not subdirectory:
        return files
    prefix = subdirectory + "/"
    return {rel[len(prefix):]: data for rel, data in files.items() if rel.startswith(prefix)}
