"""The zipapp's `__main__.py` (zipapp.py writes this file's text there): python 3.9+ and the
standard library only, run before anything else is imported from the archive.

python compiles every module it imports from a zip archive from source, at every start, and
keeps no bytecode: on a server that was half the time of a no-op apply. So a run as root
unpacks the archive once into /var/cache/tljh-lock/pyz-<its sha256>/ and imports from there,
where python keeps the bytecode as it does for any installed package. Only root can write
there (every directory on the way is root's and not writable by others, or the archive runs
as it is): root must never import code that another user could have changed. Anything else
(not root, a read-only or full disk, PYTHONDONTWRITEBYTECODE aside) runs from the archive.

A directory is complete when it has its name: it is written under another and renamed, and
its files are synced first, so a crash never leaves a half-written module to import. One no
run has used for UNUSED_DAYS is removed (a run marks its own as used).
"""

import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from typing import Optional

CACHE = "/var/cache/tljh-lock"
UNUSED_DAYS = 30


def _root_only(path: str) -> bool:
    st = os.lstat(path)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def _extract(archive: zipfile.ZipFile, into: str) -> None:
    for info in archive.infolist():
        parts = info.filename.split("/")
        if info.is_dir() or info.filename.startswith("/") or ".." in parts:
            continue  # the archive's own entries are plain relative files
        path = os.path.join(into, *parts)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "xb") as out:
            out.write(archive.read(info))
            out.flush()
            os.fsync(out.fileno())


def _prune(keep: str) -> None:
    old = time.time() - UNUSED_DAYS * 86400
    for name in os.listdir(CACHE):
        path = os.path.join(CACHE, name)
        if path != keep and name.startswith(("pyz-", ".pyz-")) and os.lstat(path).st_mtime < old:
            shutil.rmtree(path, ignore_errors=True)


def unpacked(pyz: str) -> Optional[str]:
    """The directory holding the archive `pyz`'s files, unpacked now if need be; None where
    there is no such place to trust or to write."""
    if os.geteuid() != 0 or not os.path.isfile(pyz):
        return None
    try:
        with open(pyz, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
        if not all(_root_only(path) for path in ("/", "/var", "/var/cache", CACHE)):
            return None
        target = os.path.join(CACHE, "pyz-" + digest)
        if not os.path.lexists(target):
            tmp = tempfile.mkdtemp(prefix=".pyz-", dir=CACHE)
            try:
                with zipfile.ZipFile(pyz) as archive:
                    _extract(archive, tmp)
                os.rename(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                if not os.path.lexists(target):  # else another run renamed its copy first
                    raise
        if not _root_only(target):
            return None
        os.utime(target)
        _prune(target)
        return target
    except (OSError, zipfile.BadZipFile):
        return None


if __name__ == "__main__":
    if sys.version_info < (3, 9):  # noqa: UP036 (an older python runs this file too)
        sys.exit("tljh-lock needs python 3.9 or newer, this is " + sys.version.split()[0])
    where = unpacked(sys.path[0])
    if where is not None:
        sys.path[0] = where

    from tljh_lock.cli.main import main

    sys.exit(main())
