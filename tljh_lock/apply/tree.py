"""A content hash of an installed directory, for `verify`: every regular file (with its
executable bit) and every symlink, streamed, so a 100 MB binary is never held in memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tljh_lock.core.files import file_sha256

# Written by python at run time, not by the install.
_SKIPPED_DIRS = {"__pycache__"}


def directory_hash(root: Path) -> str:
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS
                       and not os.path.islink(os.path.join(dirpath, d))]
        linked_dirs = [d for d in os.listdir(dirpath)
                       if d not in filenames and os.path.islink(os.path.join(dirpath, d))]
        for name in (*filenames, *linked_dirs):
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                lines.append(f"link:{os.readlink(path)}  l  {rel}\n")
            else:
                kind = "x" if os.access(path, os.X_OK) else "f"
                lines.append(f"{file_sha256(path)}  {kind}  {rel}\n")
    lines.sort(key=lambda line: line.rsplit("  ", 1)[1].encode())
    return "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest()
