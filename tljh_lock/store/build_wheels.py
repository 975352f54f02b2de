"""Wheels for what the lock only has as source: sdist-only packages and source pins (TLJH).

Built offline at bundle time, so that a server installs wheels only: a throwaway venv gets the
lock's `build-packages` (installed with `--no-index --require-hashes` from verified wheels in the
store), then `pip wheel --no-index --no-build-isolation --no-deps` builds each input, through
`runner.run` (clean environment). `SOURCE_DATE_EPOCH` fixes the timestamps inside the wheels:
fixture-backend, and setuptools with its bdist_wheel, then give byte-identical wheels for the
same input; a backend that embeds paths or times of its own would not, and a second build would
then show a different sha256 (the cache below keeps one build per input and build set).

A built wheel must install on every target of the platform: a pure-Python wheel does; an sdist
with compiled code does not, and then the lock must carry wheels for it instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from tljh_lock.core import runner, treehash
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.store.cas import SourceRecord, Store
from tljh_lock.store.fetch import Fetcher, fetch_from_mirror, lock_sources

SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip entry can hold
BUILD_TIMEOUT = 900


@dataclass(frozen=True)
class Built:
    """One input built into one wheel."""

    source_name: str  # the sdist's file name, or "<name>-<commit>" for a source pin
    source_sha256: str  # the input's key (`_Input.key`)
    wheel: Artifact  # url is empty: a built wheel has no upstream

    @property
    def size(self) -> int:
        assert self.wheel.size is not None  # the store measured it
        return self.wheel.size


@dataclass(frozen=True)
class _Input:
    name: str
    sha256: str
    is_tree: bool  # a source-pin archive (a tree to build) rather than an sdist
    key: str  # names the build: the sha256, or a source pin's `build_input`
    subdirectory: str | None  # of a tree: where the project is
    project: tuple[str, str]  # (normalized name, version) the built wheel must carry
    targets: tuple[Target, ...]  # where the wheel must install


def build_target() -> Target:
    """This interpreter, as a target: which build packages apply, which wheels fit it."""
    libc, version = platform.libc_ver()
    glibc = ".".join(version.split(".")[:2]) if libc == "glibc" and version else "2.17"
    return Target("build", platform.python_version(), glibc, platform.machine())


def _inputs(component: pip_lock.Component, targets: list[Target], arch: str | None,
            sources: dict[tuple[str, str], SourceRecord]) -> list[_Input]:
    chosen = [t for t in component.applicable_targets(targets) if arch in (None, t.arch)]
    found: dict[str, _Input] = {}
    for package in component.packages:
        where = tuple(t for t in chosen if package.applies_to(t))
        if package.wheels or not package.sdist or not where:
            continue
        sdist = package.sdist
        found[sdist.sha256] = _Input(sdist.name, sdist.sha256, False, sdist.sha256, None,
                                     (package.name, _normalized(package.version)), where)
    for source in component.sources:
        record = sources[(source.name, source.commit)]
        key = source.build_input(record.sha256)
        found[key] = _Input(f"{source.name}-{source.commit}", record.sha256, True, key,
                            source.subdirectory, (source.name, _normalized(source.version)),
                            tuple(chosen))
    return sorted(found.values(), key=lambda i: i.name)


def _normalized(version: str) -> str:
    """As a wheel's file name spells it: a tree may declare "2.0.1.dev", its wheel is named
    "2.0.1.dev0"."""
    return str(Version(version))


def build_requirements(component: pip_lock.Component, target: Target) -> list[Artifact]:
    wheels = []
    for package in component.build_packages:
        if not package.applies_to(target):
            continue
        wheel = package.wheel_for(target)
        if wheel is None:
            raise TljhLockError(
                f"build package {package.name} {package.version} has no wheel for python "
                f"{target.python} on {target.arch}",
                hint="build with a python whose version the lock's build packages cover")
        wheels.append(wheel)
    return sorted(wheels)


def build(lock: Lock, arch: str | None, fetcher: Fetcher, sources: Iterable[SourceRecord],
          prebuilt: Mapping[str, tuple[str, Artifact]] | None = None) -> list[Built]:
    """Build (or take from the store's cache) a wheel for every source input of `arch`.

    `prebuilt`: input sha256 -> (store mirror, wheel) for the wheels an unpacked bundle among
    the store mirrors lists as built: those are fetched, not built, so that every server of a
    fleet installs the wheel its bundle carries (and a server needs no pip to build one)."""
    store = fetcher.store
    records = {(r.name, r.commit): r for r in sources}
    missing = [s for s in lock_sources(lock) if (s.name, s.commit) not in records]
    if missing:
        raise TljhLockError(f"source {missing[0].name} is not fetched yet")
    target = build_target()
    built: list[Built] = []
    for _, component in sorted(lock.components.items()):
        if not isinstance(component, pip_lock.Component):
            continue
        inputs = _inputs(component, lock.targets, arch, records)
        if not inputs:
            continue
        requirements = build_requirements(component, target)
        fetcher.fetch(requirements)
        with _Builder(store, requirements, target) as builder:
            built += builder.wheels_for(inputs, fetcher, prebuilt or {})
    return built


class _Builder:
    """A venv with the build packages, made only if some input is not built yet."""

    def __init__(self, store: Store, requirements: list[Artifact], target: Target) -> None:
        self.store = store
        self.requirements = requirements
        self.target = target
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._pip: list[str] = []

    def __enter__(self) -> _Builder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def _key(self, item: _Input) -> str:
        # Same input, same build packages, same python minor: same wheel. The cache makes
        # repeated bundles fast; it is keyed by everything the build depends on.
        inputs = {"input": item.key, "python": "{}.{}".format(*self.target.python_minor),
                  "build": sorted(a.sha256 for a in self.requirements),
                  "epoch": SOURCE_DATE_EPOCH}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def wheels_for(self, inputs: list[_Input], fetcher: Fetcher,
                   prebuilt: Mapping[str, tuple[str, Artifact]]) -> list[Built]:
        keys = {item.key: self._key(item) for item in inputs}
        records: dict[str, dict[str, Any] | None] = {
            item.key: self.store.built_record(keys[item.key]) for item in inputs}
        for item in inputs:
            if records[item.key] is None and item.key in prebuilt:
                mirror, wheel = prebuilt[item.key]
                fetch_from_mirror(fetcher, mirror, wheel)
                fetched = {"name": wheel.name, "sha256": wheel.sha256, "size": wheel.size,
                           "source": item.name, "source-sha256": item.key}
                self.store.record_built(keys[item.key], fetched)
                records[item.key] = fetched
        todo = [item for item in inputs if records[item.key] is None]
        if todo:
            for item, made in self._build(todo).items():
                self.store.record_built(keys[item.key], made)
                records[item.key] = made
        built = []
        for item in inputs:
            record = records[item.key]
            assert record is not None
            wheel = Artifact(record["name"], "", record["size"], record["sha256"])
            _check_installable(item, wheel)
            built.append(Built(item.name, item.key, wheel))
        return built

    def _venv(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tljh-lock-build-")
            tmp = Path(self._tmp.name)
            venv = tmp / "venv"
            own_pip = importlib.util.find_spec("pip") is not None
            # This interpreter's pip drives the venv (`--python`): faster than ensurepip.
            runner.run([sys.executable, "-m", "venv", *(["--without-pip"] if own_pip else []),
                        venv], what="creating the build venv", timeout=BUILD_TIMEOUT)
            python = venv / "bin" / "python"
            self._pip = ([sys.executable, "-m", "pip", "--python", str(python)] if own_pip
                         else [str(python), "-m", "pip"])
            links = tmp / "links"
            links.mkdir()
            lines = []
            for wheel in self.requirements:
                (links / wheel.name).symlink_to(self.store.path(wheel.sha256))
                name, version, _, _ = parse_wheel_filename(wheel.name)
                lines.append(f"{name}=={version} --hash=sha256:{wheel.sha256}\n")
            (tmp / "build-requirements.txt").write_text("".join(lines))
            if lines:
                runner.run([*self._pip, "install", "--no-index", "--no-deps",
                            "--require-hashes", "--find-links", links, "-r",
                            tmp / "build-requirements.txt"],
                           what="installing the locked build packages", env=self._env(),
                           timeout=BUILD_TIMEOUT)
        return Path(self._tmp.name)

    def _env(self) -> dict[str, str]:
        assert self._tmp is not None
        return {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, "PYTHONHASHSEED": "0",
                "HOME": self._tmp.name}

    def _build(self, inputs: list[_Input]) -> dict[_Input, dict[str, Any]]:
        """Build all inputs with one pip run (each run costs seconds of start-up)."""
        tmp = self._venv()
        work = Path(tempfile.mkdtemp(prefix="inputs-", dir=tmp))
        targets = []
        for index, item in enumerate(inputs):
            source = self.store.path(item.sha256)
            if item.is_tree:
                tree = work / f"tree-{index}"
                files = treehash.archive_files(source.read_bytes(), item.name)
                for rel, data in treehash.subtree(files, item.subdirectory).items():
                    (tree / rel).parent.mkdir(parents=True, exist_ok=True)
                    (tree / rel).write_bytes(data)
                targets.append(tree)
            else:
                (work / item.name).symlink_to(source)
                targets.append(work / item.name)
        out = work / "wheels"
        names = ", ".join(item.name for item in inputs)
        runner.run([*self._pip, "wheel", "--no-index", "--no-build-isolation", "--no-deps",
                    "--wheel-dir", out, *targets], what=f"building wheels of {names}",
                   env=self._env(), timeout=BUILD_TIMEOUT, cwd=work)
        produced: dict[tuple[str, str], Path] = {}
        for path in out.glob("*.whl"):
            name, version, _, _ = parse_wheel_filename(path.name)
            produced[(str(name), str(version))] = path
        results = {}
        for item in inputs:
            wheel = produced.pop(item.project, None)
            if wheel is None:
                raise TljhLockError(f"building {item.name} gave no wheel of "
                                    f"{item.project[0]} {item.project[1]}")
            sha256, size = self.store.add_file(wheel, f"the wheel of {item.name}")
            results[item] = {"name": wheel.name, "sha256": sha256, "size": size,
                             "source": item.name, "source-sha256": item.key}
        return results


def _check_installable(item: _Input, wheel: Artifact) -> None:
    tags = parse_wheel_filename(wheel.name)[3]
    for target in item.targets:
        if not tags & target.tag_rank().keys():
            raise TljhLockError(
                f"{item.name} builds {wheel.name}, which does not install on {target.name}",
                hint="compiled code: lock wheels for this package instead of its sdist")
