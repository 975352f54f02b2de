"""`tljh-lock.pyz`: the tool as one file that a server's bare python3 (3.9+) runs.

The archive holds the server side of the `tljh_lock` package this interpreter imports (modules
and package data, no bytecode; not `tljh_lock.MAINTAINER_SIDE`) and its pure-Python runtime
dependencies, vendored at the top level of the zip so they win over whatever the server has
installed.

Where the vendored code comes from: the wheels pinned in `VENDORED` below, by URL, size and
sha256, fetched into the store like any lock artifact (through the mirror map and the store
mirrors). Not from this interpreter's site-packages: a maintainer's venv holds releases that no
longer run on python 3.9 (packaging 26, urllib3 2.7+), and the tool must not change with the
venv it was built in. `make` prefetches them (`python -m tljh_lock.bundle.zipapp --prefetch`), so
later builds and the test suite work offline.

Reproducible: entries sorted, fixed timestamps and modes, stored uncompressed (zlib's output
can differ between builds of zlib), no bytecode. The stdlib `zipapp` module cannot do this:
it stamps each entry with its file's mtime in local time.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import tljh_lock
from tljh_lock.core.errors import InputError
from tljh_lock.lock.model import Artifact
from tljh_lock.store.cas import Store

_FILES = "https://files.pythonhosted.org/packages/"
VENDORED = (
    # 0.7.0: the last release that runs on python 3.9 (1.x needs 3.10)
    Artifact("installer-0.7.0-py3-none-any.whl",
             _FILES + "e5/ca/1172b6638d52f2d6caa2dd262ec4c811ba59eee96d54a7701930726bce18/"
             "installer-0.7.0-py3-none-any.whl", 453838,
             "05d1933f0a5ba7d8d6296bb6d5018e7c94fa473ceb10cf198a92ccea19c27b53"),
    Artifact("packaging-25.0-py3-none-any.whl",
             _FILES + "20/12/38679034af332785aac8774540895e234f4d07f7545804097de4b666afd8/"
             "packaging-25.0-py3-none-any.whl", 66469,
             "29572ef2b1f17581046b3a2227d5c611fb25ec70ca1ba8554b24b0e69331a484"),
    Artifact("tomli-2.5.0-py3-none-any.whl",
             _FILES + "60/3f/3e3f8fd0919249b0200c80fbc4f9a1e70be19f9883da71dfb7f8b9ab8aca/"
             "tomli-2.5.0-py3-none-any.whl", 14765,
             "32a7b79ac57a2e83670ce329ccf675798bc5a2094783a63676866b70503f2e2b"),
    Artifact("tqdm-4.67.1-py3-none-any.whl",
             _FILES + "d0/30/dc54f88dd4a2b5dc8a0279bdd7270e735851848b762aeb1c1184ed1f6b14/"
             "tqdm-4.67.1-py3-none-any.whl", 78540,
             "26445eca388f82e72884e0d580d5464cd801a3ea01e63e5601bdff9ba6a48de2"),
    Artifact("urllib3-2.6.3-py3-none-any.whl",
             _FILES + "39/08/aaaad47bc4e9dc8c725e68f9d04865dbcb2052843ff09c97b08904852d84/"
             "urllib3-2.6.3-py3-none-any.whl", 131584,
             "bf272323e553dfb2e87d9bfd225ca7b0f467b919d7bbd355436d3fd37cb0acd4"),
)

SHEBANG = b"#!/usr/bin/env python3\n"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
# The archive's __main__.py: this module's text (it says why it unpacks the archive first).
MAIN_SOURCE = "tljh_lock/pyz_main.py"


def carried(rel: str) -> bool:
    """Whether the zipapp holds the package file `rel` (`tljh_lock/...`): not bytecode, not
    the maintainer side, which needs what a server lacks, and not the archive's __main__."""
    module = rel[:-len(".py")] if rel.endswith(".py") else rel
    dotted = module.replace("/", ".")
    return ("__pycache__" not in rel.split("/") and not rel.endswith(".pyc")
            and rel != MAIN_SOURCE and not any(dotted == side or dotted.startswith(side + ".")
                        for side in tljh_lock.MAINTAINER_SIDE))


def package_files() -> dict[str, bytes]:
    """The package's files the zipapp carries: modules and package data (templates) alike."""
    package = Path(tljh_lock.__file__).parent
    if not package.is_dir():
        raise InputError(f"{package}: build the zipapp from an installed tljh_lock, not a zip")
    found = {}
    for path in package.rglob("*"):
        rel = path.relative_to(package.parent).as_posix()
        if path.is_file() and carried(rel):
            found[rel] = path.read_bytes()
    return found


def _wheel_files(store: Store) -> dict[str, bytes]:
    found = {}
    for wheel in VENDORED:
        path = store.path(wheel.sha256)
        if not store.has(wheel.sha256, wheel.size):
            raise InputError(
                f"{wheel.name} (vendored into the zipapp) is not in the store {store.root}",
                hint="run `python -m tljh_lock.bundle.zipapp --prefetch` (or `make`) while online")
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                # .exe: installer's Windows launchers, never used on a server
                if (info.is_dir() or info.filename.endswith((".pyc", ".exe"))
                        or ".data/" in info.filename):
                    continue
                found[info.filename] = archive.read(info)
    return found


def build(store: Store) -> bytes:
    """The zipapp's bytes."""
    entries = {**_wheel_files(store), **package_files(),  # which checks the package is a dir
               "__main__.py": (Path(tljh_lock.__file__).parents[1] / MAIN_SOURCE).read_bytes()}
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3  # unix, so that the mode below is honoured
            info.external_attr = 0o100644 << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    from tljh_lock.store.cas import default_path
    from tljh_lock.store.fetch import Fetcher
    from tljh_lock.upstream import mirrors

    parser = argparse.ArgumentParser(prog="python -m tljh_lock.bundle.zipapp",
                                     description="Build tljh-lock.pyz from the store.")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--prefetch", action="store_true",
                        help="first fetch the vendored wheels into the store (online)")
    parser.add_argument("--mirror", action="append", default=[], metavar="CANONICAL=MIRROR")
    parser.add_argument("-o", "--output", type=Path, help="write the zipapp here")
    args = parser.parse_args(argv)
    store = Store(args.store or default_path())
    if args.prefetch:
        Fetcher(store, mirrors.from_options(None, args.mirror)).fetch(VENDORED)
    if args.output:
        args.output.write_bytes(build(store))
        args.output.chmod(0o755)
    return 0


if __name__ == "__main__":
    sys.exit(main())
