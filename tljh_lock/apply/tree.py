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

import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
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
    """Every file and symlink below `root` (`_entries`), with its lstat, for `seen_built`."""
    return [(rel, entry.path, entry.stat(follow_symlinks=False)) for rel, entry in _entries(root)]


def entry(root: Path, rel: str) -> Entry:
    """The entry of one file below `root`, as `walk` gives it."""
    path = os.path.join(root, rel)
    return rel, path, os.lstat(path)


def _signature(entries: list[Entry]) -> str:
    lines = [f"{rel}\0{st.st_mode} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"
             for rel, _, st in entries]
    lines.sort()
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _hash(entries: list[Entry], known: Mapping[str, str]) -> str:
    lines = []
    for rel, path, st in entries:
        if stat.S_ISLNK(st.st_mode):
            lines.append(f"link:{os.readlink(path)}  l  {rel}\n")
        else:
            kind = "x" if st.st_mode & 0o111 else "f"
            digest = known.get(rel) or file_sha256(Path(path))
            lines.append(f"{digest}  {kind}  {rel}\n")
    lines.sort(key=lambda line: line.rsplit("  ", 1)[1].encode())
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()


def directory_hash(root: Path) -> str:
    return _hash(walk(root), {})


def seen(root: Path, before: Seen | None) -> Seen:
    """The tree of `root`, hashed again only when its signature is not `before`'s. One walk
    gives the signature and what is hashed: a file changed while hashing changed its ctime
    after the walk, so the next look finds another signature."""
    entries = walk(root)
    now = _signature(entries)
    if before is not None and before.signature == now:
        return before
    return Seen(now, _hash(entries, {}))


def seen_built(entries: list[Entry], known: Mapping[str, str]) -> Seen:
    """The tree of a directory just built, from its `walk` (with the `entry` of each file
    written since); `known`: the sha256 (hex) of files below it, by relative path, not read
    again."""
    return Seen(_signature(entries), _hash(entries, known))
