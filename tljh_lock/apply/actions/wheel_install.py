"""The locked wheels into a python environment, unpacked in this process with pypa/installer
(vendored in the zipapp): the lock names every file and its hash, so no resolver, index or
pip is needed, and pip's start-up and resolution were most of the hub step's time. installer
writes the scripts and RECORD; the members are written by a loop of our own (`_unpack`),
which does per file only what a wheel the lock vouches for needs.

What pip would leave is left: RECORD, INSTALLER and REQUESTED in each
`.dist-info`, console scripts whose shebang is the environment's python, no direct_url.json
(a wheel taken by name from a directory of files is not a direct URL install, as pip sees it).
So `pip list`, `pip uninstall` and an admin's `pip install` keep working on the result.
Bytecode is compiled in a separate step, by the environment's own python on every core.

A new hub generation links what an earlier one installed from the same wheel file (`Previous`)
instead of unpacking it again: an upgrade costs what changed. The wheel is not opened: the
earlier RECORD lists the files. Only the wheel's own files are linked; its console scripts
(their shebang names each environment's python), RECORD, INSTALLER and REQUESTED are written
again as installer writes them, so the result is what unpacking gives."""

from __future__ import annotations

import base64
import concurrent.futures
import csv
import email.parser
import io
import json
import multiprocessing
import os
import shutil
import stat
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError, InvalidWheelSource
from installer.records import Hash, RecordEntry
from installer.sources import WheelFile
from installer.utils import (
    SCHEME_NAMES,
    Scheme,
    copyfileobj_with_hashing,
    make_file_executable,
    parse_entrypoints,
    parse_metadata_file,
)
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from tljh_lock.core.errors import IntegrityError
from tljh_lock.core.files import link_regular
from tljh_lock.core.runner import run

INSTALLER = b"tljh-lock\n"
# Below this many wheels a second process costs more than it saves.
_PARALLEL_FROM = 8

# Run by the environment's python: where its wheels go (what pip asks sysconfig too), and
# its bytecode tag.
_SCHEME = """
import json, sys, sysconfig
paths = sysconfig.get_paths()
print(json.dumps({"purelib": paths["purelib"], "platlib": paths["platlib"],
                  "scripts": paths["scripts"], "data": paths["data"], "prefix": sys.prefix,
                  "version": "%d.%d" % sys.version_info[:2],
                  "cache_tag": sys.implementation.cache_tag}))
"""
# Run by the environment's python (the bytecode is its version's): the files on stdin, on
# every core. A file that does not compile is left without bytecode, as pip leaves it.
_COMPILE = """
import compileall, concurrent.futures, functools, os, sys
files = sys.stdin.read().splitlines()
compile_one = functools.partial(compileall.compile_file, quiet=2)
workers = min(os.cpu_count() or 1, max(1, len(files) // 200))
if workers == 1:
    list(map(compile_one, files))
else:
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        list(pool.map(compile_one, files, chunksize=64))
"""


@dataclass(frozen=True)
class Environment:
    """Where an environment's python installs to."""

    python: str
    schemes: dict[str, str]  # purelib, platlib, scripts, data (headers per distribution)
    prefix: str
    version: str  # X.Y
    cache_tag: str

    @classmethod
    def of(cls, python: Path, scratch: Path | None) -> Environment:
        data = json.loads(run([python, "-c", _SCHEME], what=f"asking {python} where it "
                              "installs", tmpdir=scratch).stdout)
        schemes = {k: data[k] for k in ("purelib", "platlib", "scripts", "data")}
        # the scripts' shebang: this path as given (a venv's python is a link, not resolved)
        return cls(os.path.abspath(python), schemes, data["prefix"], data["version"],
                   data["cache_tag"])

    def scheme_for(self, project: str) -> dict[str, str]:
        # pip's place for a venv's headers: one directory per distribution
        headers = os.path.join(self.prefix, "include", "site", f"python{self.version}", project)
        return {**self.schemes, "headers": headers}

    @property
    def sites(self) -> list[str]:
        return sorted({self.schemes["purelib"], self.schemes["platlib"]})


@dataclass(frozen=True)
class Installed:
    """One distribution as installed: its RECORD, how many of its files were linked from a
    previous environment, and in a new one (install_wheels) its RECORD's hashes."""

    record: str
    linked: int = 0
    # (path below the environment's prefix, sha256 in hex) of each file `record` hashes there
    hashes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Previous:
    """An earlier environment, its tree as built (the plan checks it), and the RECORD each wheel
    installed there, by the wheel's sha256. A file linked from it is shared by both
    environments, and safe to share: nothing writes into an installed file in place. pip, this
    installer and every apply unlink a file before writing its path, and python writes
    bytecode beside the source, into each environment's own __pycache__."""

    prefix: str
    records: dict[str, str]  # wheel sha256 -> absolute path of its RECORD there


class _Destination(SchemeDictionaryDestination):
    """installer's own destination (its scripts, shebangs and RECORD), whose writing of a file
    does only what a wheel the lock vouches for needs: the hub's wheels hold ten thousand
    files, and installer's work per file was a third of the profiled install. Unlike
    installer's, it overwrites a file that exists, as pip does (another distribution's, or a
    killed install's), and it refuses a member that would land outside its scheme's
    directory."""

    def __init__(self, scheme_dict: dict[str, str], interpreter: str) -> None:
        super().__init__(scheme_dict, interpreter=interpreter, script_kind="posix")
        self._bases: dict[str, str] = {}
        self._made: set[str] = set()  # directories made, not asked for again per file

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO,
                    is_executable: bool) -> RecordEntry:
        base = self._bases.get(scheme)
        if base is None:
            base = self._bases[scheme] = os.path.abspath(self.scheme_dict[scheme]) + os.sep
        target = os.path.normpath(os.path.join(base, path))
        if not target.startswith(base):
            raise IntegrityError(f"a wheel's file {path!r} would be written outside {base}")
        self.make_parent(target)
        with suppress(FileNotFoundError):
            os.unlink(target)
        # O_EXCL: what is there now (a link put back since) is not followed
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with open(fd, "wb") as out:
            digest, size = copyfileobj_with_hashing(stream, out, self.hash_algorithm)
        if is_executable:
            make_file_executable(target)
        return RecordEntry(path, Hash(self.hash_algorithm, digest), size)

    def make_parent(self, target: str) -> None:
        parent = os.path.dirname(target)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)


@dataclass(frozen=True)
class Wheel:
    """A verified wheel to install: its locked file name, where it is, its sha256."""

    name: str
    path: Path
    sha256: str


@contextmanager
def workers() -> Iterator[Executor | None]:
    """Two worker processes, where there are two cores (None on one), for a build to share
    between its wheels and its other work (traefik's binary); after a failure they take no
    more. fork: the zipapp's modules are already imported (a spawned child could not import
    them from a zip that is the __main__), and no thread of apply's runs while they fork."""
    if (os.cpu_count() or 1) < 2:
        yield None
        return
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context(
        "fork"))
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def check_wheel_metadata(path: Path, file_name: str, what: str) -> None:
    """The wheel is what its locked file name says. A lock whose hashes were edited to name
    another genuine wheel (resealed, so every hash matches) would otherwise install that other
    version: pip trusts the file name and does not compare it with the wheel's metadata."""
    try:
        with zipfile.ZipFile(path) as archive:
            _check_metadata(archive, file_name, what)
    except zipfile.BadZipFile:
        raise IntegrityError(f"{what}: {file_name} is not a wheel (zip) file") from None


def _check_metadata(archive: zipfile.ZipFile, file_name: str, what: str) -> None:
    found = [n for n in archive.namelist()
             if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(found) != 1:
        raise IntegrityError(f"{what}: {file_name} has no single .dist-info/METADATA")
    _check_fields(archive.read(found[0]), file_name, what)


def _check_fields(data: bytes, file_name: str, what: str) -> None:
    """The METADATA `data` names the distribution and version `file_name` does."""
    name, version = parse_wheel_filename(file_name)[:2]
    # The headers end at the first empty line: the description after it (most of a big
    # METADATA) is not fed to the parser, which took a millisecond a wheel reading it all.
    metadata = email.parser.BytesParser().parsebytes(data.split(b"\n\n", 1)[0],
                                                     headersonly=True)
    meta_name, meta_version = metadata.get("Name", ""), metadata.get("Version", "")
    try:
        matches = canonicalize_name(meta_name) == name and Version(meta_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise IntegrityError(
            f"{what}: {file_name} holds {meta_name} {meta_version}, not {name} {version}",
            hint="the lock's hashes name another distribution's file: do not trust this lock",
        )


def install_wheels(env: Environment, wheels: list[Wheel], what: str,
                   previous: Previous | None = None, pool: Executor | None = None, *,
                   new: bool = False) -> list[Installed]:
    """Install each wheel into `env`, replacing any distribution of the same name it has (the
    user environment holds conda's), linking what `previous` installed from the same wheel; in
    `pool`'s processes when there are enough wheels, else in this one. In a `new` environment
    (a directory being built, removed if the build fails) each wheel's metadata is checked as
    it is opened (else check_wheel_metadata, before), and its RECORD's hashes come back, for
    the tree hash, read and placed where it was written. The results are in the order of
    `wheels`."""
    if pool is None or len(wheels) < _PARALLEL_FROM:
        return [install_one(env, wheel, what, previous, new) for wheel in wheels]
    # Largest first, so that neither process is left with one big wheel at the end.
    order = sorted(range(len(wheels)), key=lambda i: wheels[i].path.stat().st_size,
                   reverse=True)
    done = pool.map(install_one, [env] * len(order), [wheels[i] for i in order],
                    [what] * len(order), [previous] * len(order), [new] * len(order))
    by_index = dict(zip(order, done))
    return [by_index[i] for i in range(len(wheels))]


def install_one(env: Environment, wheel: Wheel, what: str,
                previous: Previous | None = None, new: bool = False) -> Installed:
    installed = _install_one(env, wheel, what, previous, new)
    if not new:
        return installed
    return Installed(installed.record, installed.linked,
                     tuple(_hashes_below(env.prefix, installed.record)))


def _hashes_below(prefix: str, record: str) -> Iterator[tuple[str, str]]:
    """record_hashes of `record`, by path below `prefix`; what is not below it left out."""
    # a prefix cut off, not os.path.relpath: ten thousand of those took a fifth of a second
    below = os.path.abspath(prefix) + os.sep
    root = os.path.dirname(os.path.dirname(record))  # the directory of its .dist-info
    for rel, digest in record_hashes(record):
        full = os.path.normpath(os.path.join(root, rel))
        if full.startswith(below):
            yield full[len(below):], digest


def _install_one(env: Environment, wheel: Wheel, what: str, previous: Previous | None,
                 new: bool) -> Installed:
    file_name, path = wheel.name, wheel.path
    project = canonicalize_name(parse_wheel_filename(file_name)[0])
    record = previous.records.get(wheel.sha256) if previous is not None else None
    if new and record is not None:
        # The wheel is not opened unless linking fails (then it is checked below, as it is
        # opened): the METADATA checked is the one it installed there, its own bytes (that
        # tree is checked as built), one small file to read where a big wheel's zip
        # directory is thousands of entries.
        try:
            with open(os.path.join(os.path.dirname(record), "METADATA"), "rb") as fh:
                _check_fields(fh.read(), file_name, what)
        except OSError:
            record = None  # not as installed there: unpacked below
    if not new:  # a new environment has nothing installed yet
        uninstall(env, project)
    destination = _Destination(env.scheme_for(project), env.python)
    if previous is not None and record is not None:
        linked = _link_installed(env, previous.prefix, record, destination)
        if linked is not None:
            return linked
        uninstall(env, project)  # what was linked before a file was found changed
    try:
        with zipfile.ZipFile(path) as archive:
            # installer reads name and version from the zip's file name; the store names
            # files by hash, so give it the wheel's own name.
            archive.filename = file_name
            if new:
                _check_metadata(archive, file_name, what)
            return Installed(_unpack(WheelFile(archive), archive, destination))
    except (zipfile.BadZipFile, ValueError, InstallerError) as exc:  # about the wheel
        raise IntegrityError(f"{what}: {file_name} cannot be installed: {exc}") from None


def _unpack(source: WheelFile, archive: zipfile.ZipFile, destination: _Destination) -> str:
    """What installer.install does, writing the same files and the same RECORD (in the same
    order), without its per-file work that a locked wheel does not need: its scheme is found
    by one prefix test, and the wheel's own RECORD is not read (the lock's hash vouches for
    every byte). The path of the RECORD written (in purelib or platlib, as its WHEEL says)."""
    dist_info, data_dir = source.dist_info_dir, source.data_dir + "/"
    wheel = parse_metadata_file(source.read_dist_info("WHEEL"))
    if not (wheel["Wheel-Version"] or "").startswith("1."):
        raise InvalidWheelSource(source, f"Wheel-Version {wheel['Wheel-Version']} is not 1.x")
    root = Scheme("purelib" if wheel["Root-Is-Purelib"] == "true" else "platlib")
    # A scheme whose directory is the root's (a venv's platlib is its purelib) is written as
    # the root: installer would give its RECORD rows a "./", pip does not.
    schemes: dict[str, Scheme] = {
        name: root if destination.scheme_dict[name] == destination.scheme_dict[root] else name
        for name in SCHEME_NAMES}
    written: list[tuple[Scheme, RecordEntry]] = []
    if "entry_points.txt" in source.dist_info_filenames:
        for script in parse_entrypoints(source.read_dist_info("entry_points.txt")):
            written.append((Scheme("scripts"), destination.write_script(*script)))
    record = f"{dist_info}/RECORD"
    for item in archive.infolist():
        name = item.filename
        if name.endswith("/") or name == record:
            continue
        scheme, path = root, name
        if name.startswith(data_dir):
            scheme_name, _, path = name[len(data_dir):].partition("/")
            if scheme_name not in schemes or not path:
                raise InvalidWheelSource(source, f"{name} is not in a valid .data directory")
            scheme = schemes[scheme_name]
        mode = item.external_attr >> 16
        executable = bool(mode and stat.S_ISREG(mode) and mode & 0o111)
        with archive.open(item) as member:
            # write_file: a script's "#!python" becomes the environment's python
            written.append((scheme, destination.write_file(scheme, path, cast(BinaryIO, member),
                                                           executable)))
    for name, data in (("INSTALLER", INSTALLER), ("REQUESTED", b"")):
        with io.BytesIO(data) as stream:
            written.append((root, destination.write_file(root, f"{dist_info}/{name}", stream,
                                                         False)))
    written.append((root, RecordEntry(record, None, None)))
    destination.finalize_installation(root, record, written)
    return os.path.join(os.path.abspath(destination.scheme_dict[root]), record)


def _link_installed(env: Environment, prefix: str, record: str,
                    destination: _Destination) -> Installed | None:
    """Link into `env` the files that the RECORD `record` of the environment at `prefix` lists,
    write its console scripts, INSTALLER, REQUESTED and RECORD as installer does, and return
    the result; None (some files linked) when a file is not the regular file of the size
    its RECORD says, or the RECORD lists a file this cannot write again."""
    info = os.path.dirname(record)
    root_there, dist_info = os.path.split(info)
    root_here = env.prefix + root_there[len(prefix):]
    scheme = next((Scheme(s) for s in ("purelib", "platlib") if env.schemes[s] == root_here),
                  None)
    if scheme is None or not root_there.startswith(prefix + os.sep):
        return None
    scripts = os.path.relpath(env.schemes["scripts"], root_here) + "/"
    rows = _rows(record)
    try:
        with open(os.path.join(info, "entry_points.txt"), encoding="utf-8") as fh:
            entry_points = {name: (module, attr, section) for name, module, attr, section
                            in parse_entrypoints(fh.read())}
    except FileNotFoundError:
        entry_points = {}
    # The RECORD written: a linked file's row as it was there (the same path, hash and size),
    # the rest as installer writes them; in installer's order and CSV dialect.
    written: list[Sequence[str]] = []
    linked = 0
    for row in rows:
        name = row[0]
        if name.startswith(scripts):
            script = entry_points.get(name[len(scripts):])
            if script is None:  # a script the wheel carries: its shebang is rewritten
                return None
            entry = destination.write_script(name[len(scripts):], *script)
            written.append(entry.to_row(scripts))
            continue
        if name in (f"{dist_info}/RECORD", f"{dist_info}/INSTALLER", f"{dist_info}/REQUESTED"):
            continue  # written below, as the install writes them
        if len(row) < 3 or not row[1] or not row[2].isdigit():
            return None
        there = os.path.normpath(os.path.join(root_there, name))
        if not there.startswith(prefix + os.sep):
            return None
        here = env.prefix + there[len(prefix):]
        destination.make_parent(here)
        if not link_regular(there, here, int(row[2])):
            return None
        linked += 1
        written.append(row[:3])
    for name, data in (("INSTALLER", INSTALLER), ("REQUESTED", b"")):
        with io.BytesIO(data) as stream:
            written.append(destination.write_file(scheme, f"{dist_info}/{name}", stream,
                                                  False).to_row())
    path = f"{dist_info}/RECORD"
    written.append((path, "", ""))
    text = io.StringIO()
    csv.writer(text, delimiter=",", quotechar='"', lineterminator="\n").writerows(written)
    with io.BytesIO(text.getvalue().encode()) as stream:
        destination.write_to_fs(scheme, path, stream, False)
    return Installed(os.path.join(root_here, path), linked)


def _modules(record: str, env: Environment) -> list[str]:
    """The .py files a RECORD lists in the environment's site directories."""
    root = os.path.dirname(os.path.dirname(record))  # the directory of its .dist-info
    found = []
    for row in _rows(record):
        if not row[0].endswith(".py"):
            continue
        full = os.path.normpath(os.path.join(root, row[0]))
        if any(full.startswith(site + os.sep) for site in env.sites):
            found.append(full)
    return found


def record_hashes(record: str) -> list[tuple[str, str]]:
    """(path as the RECORD has it, sha256 in hex) of each of its rows with a sha256."""
    found = []
    for row in _rows(record):
        if len(row) >= 2 and row[1].startswith("sha256="):
            value = row[1][len("sha256="):]
            found.append((row[0], base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()))
    return found


def _rows(record: str) -> list[list[str]]:
    try:
        with open(record, newline="", encoding="utf-8") as fh:
            return [row for row in csv.reader(fh) if row]
    except FileNotFoundError:
        return []


def uninstall(env: Environment, project: str) -> None:
    """Remove every installed distribution named `project` as pip does: the files its RECORD
    lists (and their bytecode) inside the environment, then its .dist-info. One without a
    RECORD (a killed install) loses its .dist-info; its files are overwritten next."""
    for site in env.sites:
        if not os.path.isdir(site):
            continue
        for entry in sorted(os.listdir(site)):
            if not entry.endswith(".dist-info") or canonicalize_name(
                    entry[:-len(".dist-info")].rpartition("-")[0]) != project:
                continue
            info = os.path.join(site, entry)
            emptied = set()
            for row in _rows(os.path.join(info, "RECORD")):
                full = os.path.normpath(os.path.join(site, row[0]))
                if os.path.commonpath([env.prefix, full]) != env.prefix or full.startswith(
                        info + os.sep):
                    continue
                for path in (full, *(_cached(full) if full.endswith(".py") else ())):
                    if os.path.lexists(path) and not os.path.isdir(path):
                        os.unlink(path)
                        emptied.add(os.path.dirname(path))
            shutil.rmtree(info)
            _prune(emptied, env)


def _cached(module: str) -> list[str]:
    """Every bytecode file of `module` (any python, any optimization level)."""
    cache = os.path.join(os.path.dirname(module), "__pycache__")
    stem = os.path.basename(module)[:-len(".py")] + "."
    try:
        return [os.path.join(cache, n) for n in os.listdir(cache)
                if n.startswith(stem) and n.endswith(".pyc") and n.count(".") in (2, 3)]
    except FileNotFoundError:
        return []


def _prune(directories: set[str], env: Environment) -> None:
    """Remove the directories that removing files emptied, up to the environment's own."""
    keep = {env.prefix, *env.sites, *env.schemes.values()}
    for directory in sorted(directories, key=len, reverse=True):
        while directory not in keep and directory.startswith(env.prefix + os.sep):
            try:
                os.rmdir(directory)
            except OSError:  # not empty (or gone): what is above it is not empty either
                break
            directory = os.path.dirname(directory)


def compile_bytecode(env: Environment, installed: list[Installed], scratch: Path | None,
                     what: str) -> None:
    """Bytecode of every installed module. RECORD leaves it out: its source's mtime, which it
    holds, makes two applies differ; the wheel spec has uninstallers remove a module's .pyc
    whether RECORD names it or not, and pip does."""
    modules = [m for dist in installed for m in _modules(dist.record, env)]
    run([env.python, "-c", _COMPILE], what=f"{what}: compiling bytecode", tmpdir=scratch,
        stdin="\n".join(modules))
