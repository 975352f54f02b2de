"""Files replaced so that a reader (or a crash) sees the old content or the new, never half of
it; a symlink switched with one rename; a file's sha256, read in chunks.

Every writer of tljh-lock that replaces a file goes through `replacing` (or `write_atomic`), so
that durability (fsync before the rename) and permissions (the mode asked for, whatever the
umask) are decided here once.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO

CHUNK = 1 << 20
_FIXED_SUFFIX = ".tljh-lock-tmp"


def sha256_stream(reader: IO[bytes]) -> tuple[str, int]:
    """(sha256 hex, size) of what `reader` yields until its end."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter(lambda: reader.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as fh:
        return sha256_stream(fh)


def file_sha256(path: Path) -> str:
    return sha256_file(path)[0]


def link_regular(there: str, here: str, size: int | None = None) -> bool:
    """Hard-link `there` as `here` when it is a regular file (of `size` bytes, if given): a
    symlink, a directory or a file of another size is not the one recorded, so nothing is
    made and False returned."""
    try:
        st = os.lstat(there)
        if not stat.S_ISREG(st.st_mode) or (size is not None and st.st_size != size):
            return False
        os.link(there, here)
    except FileNotFoundError:
        return False
    return True


def fsync_dir(path: Path) -> None:
    """Make a rename into `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _until_renamed(tmp: Path, fd: int) -> Iterator[tuple[Path, IO[bytes]]]:
    """The open file `tmp`, removed on exit unless the caller renamed it away."""
    try:
        with os.fdopen(fd, "wb") as out:
            yield tmp, out
    finally:
        tmp.unlink(missing_ok=True)


def temporary_file(directory: Path, hint: str, mode: int = 0o644
                   ) -> AbstractContextManager[tuple[Path, IO[bytes]]]:
    """A new file in `directory` (created with `mode`, less the umask) with a name no other
    process uses, removed on exit unless the caller renamed it away."""
    directory.mkdir(parents=True, exist_ok=True)
    counter = 0
    while True:
        tmp = directory / f".{hint}.{os.getpid()}.{counter}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            return _until_renamed(tmp, fd)
        except FileExistsError:
            counter += 1


def _fixed_temporary(path: Path) -> AbstractContextManager[tuple[Path, IO[bytes]]]:
    tmp = path.with_name(f".{path.name}{_FIXED_SUFFIX}")
    return _until_renamed(tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


@contextmanager
def replacing(path: Path, mode: int = 0o644, *, owner: tuple[int, int] | None = None,
              exclusive: bool = False) -> Iterator[IO[bytes]]:
    """A file to write that replaces `path` when the block ends without an error.

    `exclusive`: the caller holds a lock that keeps every other writer of `path` out (apply's
    lock). The temporary file then has one name per path, so that a run killed before the
    rename leaves one file, which the next write takes over, rather than one per kill.
    Without it, concurrent writers (two fetches into one store) each get their own name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private: the mode asked for is set before a byte is written.
    opened = (_fixed_temporary(path) if exclusive
              else temporary_file(path.parent, path.name, 0o600))
    with opened as (tmp, out):
        if owner is not None:
            os.fchown(out.fileno(), *owner)
        os.fchmod(out.fileno(), mode)  # the umask must not loosen or tighten what we ask for
        yield out
        out.flush()
        os.fsync(out.fileno())
        os.replace(tmp, path)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, *,
                 owner: tuple[int, int] | None = None, exclusive: bool = False) -> None:
    """Replace `path` with `data` (see `replacing`)."""
    with replacing(path, mode, owner=owner, exclusive=exclusive) as out:
        out.write(data)


def swap_link(path: Path, target: str) -> None:
    """Point the symlink `path` at `target` with one rename: there is no moment without it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tljh-lock-new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)
