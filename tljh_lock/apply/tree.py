"""A content hash of an installed directory, for `verify` and for apply's judgement of a built
directory: every regular file (with its executable bit) and every symlink, streamed, so a
100 MB binary is never held in memory.

Hashing a hub environment (thousands of files, traefik's binary) takes longer than a no-op
apply may, so a hash is remembered with the directory's stat signature: every entry's name,
mode, inode, size, mtime and ctime. A file written, replaced, renamed, chmod-ed or touched
changes its ctime at least, which no program can set back, so an equal signature means an
equal tree; any other one means hashing again.

A directory just built may come with the hashes of some of its files already known (what the
installer hashed as it wrote them, what it linked from a tree checked before): those are not
read again."""

from __future__ import annotations

import bisect
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tljh_lock.core.files import file_sha256

# Written by python at run time, not by the install.
_SKIPPED_DIRS = {"__pycache__"}


@dataclass(frozen=True)
class Seen:
    """A directory's tree hash and the stat signature it was computed at."""

    signature: str
    tree: str

    def to_dict(self) -> dict[str, str]:
        return {"signature": self.signature, "tree": self.tree}


# (path relative to the root, full path, lstat)
Entry = tuple[str, str, os.stat_result]


def _entries(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) of every file and symlink below `root`, directories entered
    (not through symlinks), __pycache__ left out. A stack, not recursion: a generator nested
    as deep as site-packages would pass every entry up through each level."""
    pending = [("", str(root))]
    while pending:
        rel, path = pending.pop()
        with os.scandir(path) as it:
            for entry in it:
                name = f"{rel}/{entry.name}" if rel else entry.name
                if not entry.is_dir(follow_symlinks=False):
                    yield name, entry
                elif entry.name not in _SKIPPED_DIRS:
                    pending.append((name, entry.path))


def walk(root: Path) -> list[Entry]:
    """Every file and symlink below `root` (`_entries`), with its lstat, for `Built`."""
    return [(rel, entry.path, entry.stat(follow_symlinks=False)) for rel, entry in _entries(root)]


def entry(root: Path, rel: str) -> Entry:
    """The entry of one file below `root`, as `walk` gives it."""
    path = os.path.join(root, rel)
    return rel, path, os.lstat(path)


def _signature_line(entry: Entry) -> str:
    rel, _, st = entry
    return f"{rel}\0{st.st_mode} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"


def _hash_line(entry: Entry, known: Mapping[str, str]) -> tuple[str, str]:
    """(path, line), for lines sorted by path (a str's order is its UTF-8 bytes')."""
    rel, path, st = entry
    if stat.S_ISLNK(st.st_mode):
        return rel, f"link:{os.readlink(path)}  l  {rel}\n"
    kind = "x" if st.st_mode & 0o111 else "f"
    return rel, f"{known.get(rel) or file_sha256(Path(path))}  {kind}  {rel}\n"


def _digest(lines: Iterable[str]) -> str:
    # surrogateescape: a name that is not UTF-8 (os.scandir keeps its bytes so) is hashed as
    # its bytes, not refused
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


def _signature(entries: list[Entry]) -> str:
    return _digest(sorted(map(_signature_line, entries)))


def _tree(hash_lines: list[tuple[str, str]]) -> str:
    return "sha256:" + _digest(line for _, line in hash_lines)


def _hash(entries: list[Entry]) -> str:
    return _tree(sorted(_hash_line(entry, {}) for entry in entries))


def directory_hash(root: Path) -> str:
    return _hash(walk(root))


def seen(root: Path, before: Seen | None) -> Seen:
    """The tree of `root`, hashed again only when its signature is not `before`'s. One walk
    gives the signature and what is hashed: a file changed while hashing changed its ctime
    after the walk, so the next look finds another signature."""
    entries = walk(root)
    now = _signature(entries)
    if before is not None and before.signature == now:
        return before
    return Seen(now, _hash(entries))


class Built:
    """The tree of a directory just built, from its `walk`, made ready while it is being
    finished (a build's check runs meanwhile), with the `add`ed entry of each file written
    since; `known`: the sha256 (hex) of files below it, by relative path, not read again."""

    def __init__(self, entries: list[Entry], known: Mapping[str, str]) -> None:
        self._signature = sorted(map(_signature_line, entries))
        self._hash = sorted(_hash_line(entry, known) for entry in entries)

    def add(self, entry: Entry) -> None:
        bisect.insort(self._signature, _signature_line(entry))
        bisect.insort(self._hash, _hash_line(entry, {}))

    def seen(self) -> Seen:
        return Seen(_digest(self._signature), _tree(self._hash))
