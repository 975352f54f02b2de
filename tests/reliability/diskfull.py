"""Disk full, on a small tmpfs: as the store of `fetch`, as the root of an apply (filled with
ballast to leave a chosen amount free; the bundle is unpacked below it), and as TMPDIR, which
an apply does not use. Each: a clean error, no partial file in the store, the root as before (an
upgrade) or on its way (a fresh install: nothing half-switched), and once there is room a
plain re-run reaches the state of an uninterrupted apply."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.reliability.harness import Result, Watch, World, clear, clear_error, error_line
from tests.reliability.inputs import _store_problems
from tests.reliability.manifest import compare, manifest
from tests.upstream import FixtureUpstream
from tljh_lock.lock import file as lockfile

BALLAST = "ballast"


@contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=True)


def _fill(directory: Path, leave: int) -> None:
    """Leave `leave` bytes free on the file system of `directory`."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(directory / BALLAST, "wb") as fh:
        remaining = max(0, free - leave)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            try:
                remaining -= fh.write(chunk[:remaining])
            except OSError:
                break


def _clean_error(result: subprocess.CompletedProcess[str]) -> list[str]:
    if result.returncode == 0:
        return []
    unclear = clear_error(result)
    if unclear:
        return [unclear]
    if "no space" not in result.stderr.lower():
        return [f"the error does not say the disk is full: {error_line(result.stderr)}"]
    return []


def _short(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode == 0:
        return "succeeded (enough room)"
    return f"exit {result.returncode}: {(error_line(result.stderr) or '')[:140]}"


def fetch_cases(world: World, log, quick: bool) -> list[Result]:  # type: ignore[no-untyped-def]
    results = []
    lock = world.fixture.locks["new"]
    total = sum(a.size or 0 for a in lockfile.load(lock).artifacts(world.fixture.target.arch))
    with FixtureUpstream(world.fixture.upstream) as server:
        mirrors = [f"--mirror={c}={m}" for c, m in server.mirror_map().items()]
        for share in (0.0,) if quick else (0.0, 0.05, 0.25, 0.5, 0.75, 0.95):
            size = max(64 * 1024, int(total * share))
            with tmpfs(world.work / "df-store", size) as store:
                result = world.run(world.tool("fetch", "--lock", lock, "--store", store,
                                              "--platform", world.fixture.target.arch, *mirrors))
                problems = _clean_error(result) + _store_problems(store, world.fixture.store)
                verified = len(list((store / "sha256").glob("*"))) \
                    if (store / "sha256").is_dir() else 0
            name = f"fetch into a {size // 1024} KiB store ({share:.0%} of {total // 1024} KiB)"
            results.append(Result("disk-full", name, not problems,
                                  f"{_short(result)}; {verified} verified files kept"
                                  + ("; " + "; ".join(problems) if problems else ""),
                                  faults=0 if problems or result.returncode == 0 else 1))
            log(results[-1].line())
    return results


def apply_cases(world: World, log, quick: bool) -> list[Result]:  # type: ignore[no-untyped-def]
    results = []
    new_hub = world.references["upgrade"]["opt/tljh/hub"].digest
    grown = sum(e.size for path, e in world.references["upgrade"].items()
                if path.startswith(f"opt/tljh/{new_hub}"))
    fresh_size = sum(e.size for e in world.references["fresh"].values())
    cases = [("upgrade", leave) for leave in (0, 16 * 1024, grown // 4, grown // 2,
                                              grown * 9 // 10, grown * 3)]
    cases += [("fresh", share) for share in (0.2, 0.5, 0.8)]
    if quick:
        cases = [cases[3], cases[-2]]
    for mode, amount in cases:
        start, label = ("old", "new") if mode == "upgrade" else ("empty", "old")
        size = 256 << 20 if mode == "upgrade" else int(fresh_size * amount) + (256 << 10)
        with tmpfs(world.root, size):
            world.reset(start)
            if mode == "upgrade":
                _fill(world.root, amount)
                name = f"upgrade with {amount // 1024} KiB free (the new hub is " \
                       f"{grown // 1024} KiB)"
            else:
                name = f"fresh install into a {size // 1024} KiB root ({amount:.0%} of " \
                       f"{fresh_size // 1024} KiB)"
            before = manifest(world.root, skip=(BALLAST,))
            kept = ""
            watch = Watch(world.root, (before["opt/tljh/hub"].digest if "opt/tljh/hub" in before
                                       else None, world.references[mode]["opt/tljh/hub"].digest))
            result = world.run(world.apply_argv(label))
            watch.check()
            problems = _clean_error(result) + watch.violations
            after = manifest(world.root, skip=(BALLAST,))
            loss = compare(before, after)
            if result.returncode != 0 and mode == "upgrade" and not loss.clean:
                if loss.only_kept_builds(after):
                    kept = " (it keeps the complete directories it built, unused)"
                else:
                    problems.append(f"the failed upgrade changed the root: {loss.describe()}")
            leaked = clear(world.tmp)
            if leaked:
                problems.append(f"left in TMPDIR: {leaked}")
            # room again: a plain re-run completes it
            (world.root / BALLAST).unlink(missing_ok=True)
            subprocess.run(["mount", "-o", "remount,size=512m", world.root], check=True)
            rerun = world.run(world.apply_argv(label))
            if rerun.returncode != 0:
                problems.append(f"the re-run with room failed: {rerun.stderr[-300:]}")
            final = compare(world.references[mode], world.manifest())
            if not final.clean:
                problems.append(f"after the re-run the root differs: {final.describe()}")
        detail = _short(result) + kept + ("; " + "; ".join(problems) if problems else "")
        results.append(Result("disk-full", name, not problems, detail,
                              faults=0 if problems or result.returncode == 0 else 1,
                              files_lost=final.files_lost, bytes_lost=final.bytes_lost))
        log(results[-1].line())
    shutil.rmtree(world.root, ignore_errors=True)
    return results


def tmpdir_cases(world: World, log, quick: bool) -> list[Result]:  # type: ignore[no-untyped-def]
    """The apply keeps its temporary files below the root: a TMPDIR too small for anything
    (as a server's small /tmp) does not stop it, and it writes nothing there."""
    world.reset("old")
    size = 64 * 1024
    with tmpfs(world.work / "df-tmp", size) as tmp:
        result = world.run(world.apply_argv("new"), tmp=tmp)
        problems = [] if result.returncode == 0 else ["it needs no room in TMPDIR"]
        leftovers = [p.name for p in tmp.iterdir()]
        if leftovers:
            problems.append(f"left in TMPDIR: {leftovers}")
    final = compare(world.references["upgrade"], world.manifest())
    if not final.clean:
        problems.append(f"the root differs from an uninterrupted apply: {final.describe()}")
    results = [Result("disk-full", f"apply (an upgrade) with a {size // 1024} KiB TMPDIR: the "
                      "bundle is unpacked below the root", not problems,
                      _short(result) + ("; " + "; ".join(problems) if problems else ""),
                      files_lost=final.files_lost, bytes_lost=final.bytes_lost)]
    log(results[-1].line())
    return results


def run(world: World, log, quick: bool = False) -> list[Result]:  # type: ignore[no-untyped-def]
    try:
        with tmpfs(world.work / "df-probe", 64 * 1024):
            pass
    except (OSError, subprocess.CalledProcessError) as exc:
        return [Result("disk-full", "mounting a tmpfs", False, f"cannot: {exc}")]
    return [*fetch_cases(world, log, quick), *tmpdir_cases(world, log, quick),
            *apply_cases(world, log, quick)]
