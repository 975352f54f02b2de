"""Hostile or broken inputs: malformed locks, misbehaving mirrors (for `fetch` and for `apply
--mirror` / `--store-mirror`), and every hostile bundle of tests/bundle/test_safe_archive.py. Each
must end in a clear error (exit code and message checked, no traceback), with the root, the
store and everything outside them unchanged."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomli_w

from tests.bundle.test_safe_archive import hostile_cases
from tests.reliability.harness import Result, World, clear, clear_error, error_line
from tests.reliability.manifest import compare, manifest
from tests.upstream import FixtureUpstream
from tests.upstream import server as upstream_server
from tljh_lock.core import tomlio
from tljh_lock.core.errors import EXIT_INPUT, EXIT_INTEGRITY, EXIT_UPSTREAM
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Lock
from tljh_lock.resolve.write import dumps as dump_lock

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: every canonical URL fails fast here


@dataclasses.dataclass
class Expect:
    codes: tuple[int, ...]
    needle: str  # in stderr


def _edit(world: World, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """The new lock's TOML with `edit` applied to its data, content-hashes left as they were."""
    data = tomlio.loads(world.fixture.locks["new"].read_text(), "lock")
    edit(data)
    return tomli_w.dumps(data).encode()


def _resealed(world: World, change: Callable[[Lock], Lock]) -> bytes:
    """The new lock changed through the model and written by `dump_lock`, which reseals every
    content-hash, as an attacker who edits a lock would."""
    return dump_lock(change(lockfile.load(world.fixture.locks["new"]))).encode()


def _hub(lock: Lock) -> pip_lock.Component:
    hub = lock.components["hub"]
    assert isinstance(hub, pip_lock.Component)
    return hub


def _with_hub(lock: Lock, **changes: Any) -> Lock:
    return Lock(lock.targets, lock.targets_hash,
                {**lock.components, "hub": dataclasses.replace(_hub(lock), **changes)})


def _first_wheel(lock: Lock, **changes: Any) -> Lock:
    hub = _hub(lock)
    package = hub.packages[0]
    wheel = dataclasses.replace(package.wheels[0], **changes)
    packages = (dataclasses.replace(package, wheels=(wheel,)), *hub.packages[1:])
    return _with_hub(lock, packages=packages)


def _source(lock: Lock, **changes: Any) -> Lock:
    hub = _hub(lock)
    return _with_hub(lock, sources=(dataclasses.replace(hub.sources[0], **changes),))


def _wheel_table(data: dict[str, Any]) -> dict[str, Any]:
    return data["components"]["hub"]["packages"][0]["wheels"][0]


def malformed_locks(world: World) -> dict[str, tuple[bytes, Expect]]:
    bad = Expect((EXIT_INPUT,), "")

    def expect(needle: str) -> Expect:
        return dataclasses.replace(bad, needle=needle)

    def set_in(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
        def edit(data: dict[str, Any]) -> None:
            for key in path[:-1]:
                data = data[key]
            if value is KeyError:
                del data[path[-1]]
            else:
                data[path[-1]] = value
        return edit

    wheel = ("components", "hub", "packages", 0, "wheels", 0)
    return {
        "unknown lock-version": (_edit(world, set_in(("lock-version",), 99)),
                                 expect("lock-version 99 is not supported")),
        "lock-version as a string": (_edit(world, set_in(("lock-version",), "1")),
                                     expect("lock-version")),
        "size as a string": (_edit(world, set_in((*wheel, "size"), "big")), expect("size")),
        "negative size": (_edit(world, set_in((*wheel, "size"), -1)), expect("negative")),
        "hashes missing": (_edit(world, set_in((*wheel, "hashes"), KeyError)), expect("hashes")),
        "sha256 missing": (_edit(world, set_in((*wheel, "hashes"), {})), expect("sha256")),
        "sha256 not hex": (_edit(world, set_in((*wheel, "hashes"), {"sha256": "zz" * 32})),
                           expect("sha256")),
        "sha256 as a number": (_edit(world, set_in((*wheel, "hashes"), {"sha256": 5})),
                               expect("sha256")),
        "packages as a string": (_edit(world, set_in(("components", "hub", "packages"), "x")),
                                 expect("packages")),
        "targets as a table": (_edit(world, set_in(("targets",), {"a": 1})), expect("targets")),
        "unknown component kind": (_edit(world, set_in(("components", "hub", "kind"), "apt")),
                                   expect("unknown component kind")),
        "edited by hand (version)": (
            _edit(world, set_in(("components", "hub", "packages", 0, "version"), "1.0.0")),
            Expect((EXIT_INPUT,), "")),
        "edited by hand (hash)": (
            _edit(world, set_in((*wheel, "hashes"), {"sha256": "0" * 64})),
            expect("content-hash")),
        "not TOML": (b"lock-version = 1\n[components\n", expect("")),
        "empty file": (b"", expect("lock-version")),
        "binary garbage": (bytes(range(256)) * 4, expect("")),
        "http:// URL (resealed)": (
            _resealed(world, lambda lock: _first_wheel(
                lock, url=_hub(lock).packages[0].wheels[0].url.replace("https://", "http://"))),
            expect("https://")),
        "file:// URL (resealed)": (
            _resealed(world, lambda lock: _first_wheel(lock, url="file:///etc/passwd")),
            expect("https://")),
        "file name ../../etc/passwd (resealed)": (
            _resealed(world, lambda lock: _first_wheel(lock, name="../../etc/passwd")),
            expect("plain file name")),
        "file name with a slash (resealed)": (
            _resealed(world, lambda lock: _first_wheel(lock, name="sub/fx_hub-1.1.0-py3-none-"
                                                                  "any.whl")),
            expect("plain file name")),
        "file name absolute (resealed)": (
            _resealed(world, lambda lock: _first_wheel(lock, name="/etc/cron.d/x.whl")),
            expect("plain file name")),
        "package name ../evil (resealed)": (
            _resealed(world, lambda lock: _with_hub(lock, packages=(dataclasses.replace(
                _hub(lock).packages[0], name="../evil"), *_hub(lock).packages[1:]))),
            expect("")),
        "source commit ../../../.. (resealed)": (
            _resealed(world, lambda lock: _source(lock, commit="../../../../escaped")),
            expect("commit")),
        "source name /absolute (resealed)": (
            _resealed(world, lambda lock: _source(lock, name="/tmp/tljh-lock-escaped")),
            expect("name")),
        "no hub component (resealed)": (
            _resealed(world, lambda lock: Lock(lock.targets, lock.targets_hash, {
                k: v for k, v in lock.components.items() if k != "hub"})),
            expect("no pip component 'hub'")),
    }


# Where the escapes these cases attempt would land.
ESCAPES = ("/tmp/tljh-lock-escaped*", "/etc/cron.d/x.whl", "/etc/tljh-lock-test-x", "/escaped*")


def _outside(world: World) -> dict[str, Any]:
    """What must never change outside the root and the store: the fixture's upstream and
    store, /etc/passwd, and the places an escape would land."""
    return {"fixture": manifest(world.work / "fixture"),
            "escapes": sorted(str(p) for pattern in ESCAPES for p in glob.glob(pattern)),
            "/etc/passwd": hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()}


def _judge(world: World, cls: str, name: str, result: subprocess.CompletedProcess[str],
           expect: Expect, before: dict[str, Any], outside: dict[str, Any],
           store: Path | None = None) -> Result:
    problems = []
    if result.returncode not in expect.codes:
        problems.append(f"exit {result.returncode}, expected {expect.codes}")
    message = error_line(result.stderr) or ""
    unclear = clear_error(result)
    if unclear:
        problems.append(unclear)
    elif expect.needle and expect.needle not in result.stderr:
        problems.append(f"the message lacks {expect.needle!r}")
    loss = compare(before, world.manifest())
    if not loss.clean:
        problems.append(f"the root changed: {loss.describe()}")
    if store is not None:
        problems += _store_problems(store, world.fixture.store)
    leaked = clear(world.tmp)
    if leaked:
        problems.append(f"left in TMPDIR: {leaked}")
    now = _outside(world)
    for place, listing in outside.items():
        if now[place] != listing:
            problems.append(f"{place} changed")
    detail = f"exit {result.returncode}: {message[:160]}"
    ok = not problems
    return Result(cls, name, ok, detail + ("" if ok else "; " + "; ".join(problems)),
                  faults=1 if ok else 0, files_lost=loss.files_lost, bytes_lost=loss.bytes_lost)


def _store_problems(store: Path, genuine: Path) -> list[str]:
    """A store may hold only verified files, each named by its own sha256; in tmp/, only a
    resumable part that is a prefix of the genuine file (`genuine`: a store that has it)."""
    problems = []
    for path in sorted((store / "sha256").glob("*")) if (store / "sha256").is_dir() else []:
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            problems.append(f"unverified file in the store: {path.name}")
    for part in (store / "tmp").iterdir() if (store / "tmp").is_dir() else []:
        data = part.read_bytes()
        original = genuine / "sha256" / part.name.removesuffix(".part")
        if not (part.name.endswith(".part") and original.is_file()
                and original.read_bytes().startswith(data)):
            problems.append(f"a partial file in the store that no resume can use: {part.name}")
    return problems


APPLY_ONLY = {"no hub component (resealed)"}  # `fetch` needs no hub: it rightly succeeds


def run_locks(world: World, log, quick: bool,  # type: ignore[no-untyped-def]
              only: tuple[str, ...] | None = None) -> list[Result]:
    """Each malformed lock given to `apply --store` (over the old install) and to `fetch`
    (from the fixture upstream: what gets past parsing is downloaded, and records written)."""
    results = []
    locks = world.work / "locks"
    locks.mkdir(exist_ok=True)
    with FixtureUpstream(world.fixture.upstream) as server:
        mirrors = [f"--mirror={c}={m}" for c, m in server.mirror_map().items()]
        for number, (name, (text, expect)) in enumerate(malformed_locks(world).items()):
            if name not in (only or (QUICK_LOCKS if quick else (name,))):
                continue
            path = locks / f"case-{number}.lock.toml"
            path.write_bytes(text)
            for command in ("apply", "fetch"):
                if command == "fetch" and name in APPLY_ONLY:
                    continue
                world.reset("old")
                before, outside = world.manifest(), _outside(world)
                store = world.work / "case-store"
                shutil.rmtree(store, ignore_errors=True)
                if command == "apply":
                    argv = world.tool("apply", "--lock", path, "--store", world.fixture.store,
                                      "--root", world.root)
                else:
                    argv = world.tool("fetch", "--lock", path, "--store", store, *mirrors)
                result = _judge(world, "inputs", f"malformed lock, {command}: {name}",
                                world.run(argv), expect, before, outside,
                                store if command == "fetch" else None)
                log(result.line())
                results.append(result)
    return results


def _mirrors_to(base: str) -> list[str]:
    return [f"--mirror=https://{host}/={base}{host}/" for host in upstream_server.HOSTS]


def run_mirrors(world: World, log, quick: bool) -> list[Result]:  # type: ignore[no-untyped-def]
    """The new lock's fx-hub 1.1.0 wheel (the one file an upgrade needs) served wrongly."""
    results = []
    new = lockfile.load(world.fixture.locks["new"])
    wanted = next(a for p in _hub(new).packages if p.name == "fx-hub" for a in p.wheels)
    older = next(a for p in _hub(lockfile.load(world.fixture.locks["old"])).packages
                 if p.name == "fx-hub" for a in p.wheels)
    # A store copy a fleet serves, at a path of the fixture upstream (faults apply there too).
    fleet = world.fixture.upstream / "pypi.org" / "fleet-store"
    if not fleet.exists():
        shutil.copytree(world.fixture.store, fleet)
    partial_store = world.work / "partial-store"  # the old lock's files: fx-hub 1.1.0 missing
    shutil.rmtree(partial_store, ignore_errors=True)
    shutil.copytree(world.fixture.store, partial_store)
    (partial_store / "sha256" / wanted.sha256).unlink()
    faults = {"200 with an HTML page": ("html", (EXIT_INTEGRITY,), "web page"),
              "more bytes than declared": ("oversize", (EXIT_INTEGRITY,), "declares"),
              "a stall": ("stall", (EXIT_UPSTREAM,), "fx_hub-1.1.0"),
              "corrupted bytes": ("corrupt", (EXIT_INTEGRITY,), wanted.sha256),
              "404": ("404", (EXIT_UPSTREAM,), "404"),
              "an older version's file under the new name": ("swap", (EXIT_INTEGRITY,),
                                                             older.sha256)}
    saved_stall = upstream_server.STALL_SECONDS
    upstream_server.STALL_SECONDS = 1.0  # the server closes sooner; the client counts attempts
    try:
        with FixtureUpstream(world.fixture.upstream) as server:
            for label, (fault, codes, needle) in faults.items():
                if quick and fault not in QUICK_MIRRORS:
                    continue
                for via in ("fetch", "apply --mirror", "apply --store-mirror"):
                    server.clear()
                    if via == "apply --store-mirror":
                        path = f"/pypi.org/fleet-store/sha256/{wanted.sha256}"
                        if fault == "swap":
                            (fleet / "sha256" / wanted.sha256).write_bytes(
                                (fleet / "sha256" / older.sha256).read_bytes())
                        else:
                            server.faults[path] = fault
                            server.faults[server.path_for(wanted.url)] = fault
                        # what the fleet's store lacks or spoils comes from the canonical
                        # mirror, which misbehaves the same way
                        mirrors = [f"--store-mirror={server.base_url}pypi.org/fleet-store/",
                                   *(f"--mirror={c}={m}" for c, m in server.mirror_map().items())]
                        if fault == "swap":
                            mirrors.append(f"--mirror={wanted.url}={server.url_for(older.url)}")
                    else:
                        mirrors = [f"--mirror={c}={m}" for c, m in server.mirror_map().items()]
                        if fault == "swap":
                            mirrors.insert(0, f"--mirror={wanted.url}={server.url_for(older.url)}")
                        else:
                            server.faults[server.path_for(wanted.url)] = fault
                    if via == "apply --store-mirror":
                        codes, needle = (EXIT_UPSTREAM, EXIT_INTEGRITY), "fx_hub-1.1.0"
                    results.append(_mirror_case(world, f"mirror serving {label}, {via}", via,
                                                mirrors, partial_store, Expect(codes, needle)))
                    log(results[-1].line())
                    if fault == "swap" and via == "apply --store-mirror":
                        shutil.copyfile(world.fixture.store / "sha256" / wanted.sha256,
                                        fleet / "sha256" / wanted.sha256)
    finally:
        upstream_server.STALL_SECONDS = saved_stall
    return results


def _mirror_case(world: World, name: str, via: str, mirrors: list[str], partial_store: Path,
                 expect: Expect) -> Result:
    world.reset("old")
    before, outside = world.manifest(), _outside(world)
    store = world.work / "case-store"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(partial_store, store)
    lock = world.fixture.locks["new"]
    if via == "fetch":
        argv = world.tool("fetch", "--lock", lock, "--store", store, "--stall-timeout", "1",
                          *mirrors)
    else:
        argv = world.tool("apply", "--lock", lock, "--store", store, "--root", world.root,
                          *mirrors)
    return _judge(world, "inputs", name, world.run(argv), expect, before, outside, store)


def run_bundles(world: World, log, quick: bool) -> list[Result]:  # type: ignore[no-untyped-def]
    results = []
    cases = world.work / "hostile-bundles"
    shutil.rmtree(cases, ignore_errors=True)
    outside = cases / "outside"
    outside.mkdir(parents=True)
    writers = dict(hostile_cases(outside))
    real = world.bundles["new"]
    writers["real bundle, one byte flipped"] = lambda path: _flipped(real, path)
    writers["real bundle, truncated"] = lambda path: path.write_bytes(
        real.read_bytes()[: real.stat().st_size // 2])
    writers["real bundle of another lock's manifest"] = lambda path: _spliced(
        world.bundles["old"], real, path)
    for name, write in writers.items():
        if quick and name not in QUICK_BUNDLES:
            continue
        bundle = cases / f"{len(results)}.tar"
        write(bundle)
        world.reset("old")
        before, watched = world.manifest(), _outside(world)
        result = world.run(world.tool("apply", "--bundle", bundle, "--root", world.root))
        judged = _judge(world, "inputs", f"hostile bundle: {name}", result,
                        Expect((EXIT_INPUT, EXIT_INTEGRITY), ""), before, watched)
        if any(outside.iterdir()) or Path("/etc/tljh-lock-test-x").exists():
            judged.ok, judged.faults = False, 0
            judged.detail += "; something was written outside"
        log(judged.line())
        results.append(judged)
    return results


def _flipped(bundle: Path, out: Path) -> None:
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))


def _spliced(first: Path, second: Path, out: Path) -> None:
    """The first bundle's manifest (its first member) followed by the second one's members."""
    with tarfile.open(first) as a, tarfile.open(second) as b, tarfile.open(out, "w") as tar:
        manifest_member = a.getmembers()[0]
        tar.addfile(manifest_member, a.extractfile(manifest_member))
        for member in b.getmembers()[1:]:
            tar.addfile(member, b.extractfile(member) if member.isfile() else None)


QUICK_LOCKS = ("unknown lock-version", "hashes missing", "binary garbage",
               "http:// URL (resealed)", "file name ../../etc/passwd (resealed)",
               "source name /absolute (resealed)")
QUICK_MIRRORS = ("html", "swap")
QUICK_BUNDLES = ("traversal", "symlink-out", "hardlink-out", "char-device", "duplicate",
                 "oversize", "lock-mismatch", "real bundle, one byte flipped")


def run(world: World, log, quick: bool = False) -> list[Result]:  # type: ignore[no-untyped-def]
    return [*run_locks(world, log, quick), *run_mirrors(world, log, quick),
            *run_bundles(world, log, quick)]

