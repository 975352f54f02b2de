"""Two applies at once (the second refuses, they never interleave: the end state is that of one
uninterrupted apply), a rollback during an apply, and `verify` run over and over while an
apply works (it never crashes, and the apply is not disturbed)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Optional

from tests.reliability.harness import Result, Watch, World, clear
from tests.reliability.manifest import compare

REFUSAL = "another tljh-lock apply is running"


def _wait_for(proc: subprocess.Popen[str], watch: Watch, ready, timeout: float = 120  # type: ignore[no-untyped-def]
              ) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        watch.check()
        if ready():
            return True
        time.sleep(0.003)
    return False


@contextmanager
def _paused(proc: subprocess.Popen[str]) -> Iterator[None]:
    """The apply stopped where it is, holding its lock, while the second command runs: a
    step that lasts a tenth of a second (a hub upgrade that links) is over before a second
    python has started."""
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGCONT)


def _finish(world: World, mode: str, first: subprocess.Popen[str], watch: Watch,
            problems: list[str]) -> tuple[int, int, str, str]:
    """Wait for the first apply; check it succeeded and the root is the reference."""
    while first.poll() is None:
        watch.check()
        time.sleep(0.01)
    out, err = first.communicate()
    if first.returncode != 0 and REFUSAL not in err:  # a refusal is judged by the caller
        problems.append(f"the first apply failed ({first.returncode}): {err[-300:]}")
    problems += watch.violations
    loss = compare(world.references[mode], world.manifest())
    if not loss.clean:
        problems.append(f"the root is not that of one uninterrupted apply: {loss.describe()}")
    leaked = clear(world.tmp)
    if leaked:
        problems.append(f"left in TMPDIR: {leaked}")
    return loss.files_lost, loss.bytes_lost, out, err


def _start(world: World, label: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(world.apply_argv(label, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=world.env(),
                            start_new_session=True)


def _installing(world: World) -> Callable[[], bool]:
    """Whether the new hub's installer is unpacking (the in-process installer starts no
    process to wait for): a hub directory besides the one in use has pip's files."""
    link = world.root / "opt/tljh/hub"
    in_use = os.readlink(link) if link.is_symlink() else None
    return lambda: any(site.parts[-5] != in_use for site in
                       world.root.glob("opt/tljh/hub.*/lib/python3*/site-packages/pip"))


def two_applies(world: World, mode: str, when: str, offset: Optional[float]) -> Result:
    start, label = ("empty", "old") if mode == "fresh" else ("old", "new")
    world.reset(start)
    before = world.manifest().get("opt/tljh/hub")
    watch = Watch(world.root, (before.digest if before else None,
                               world.references[mode]["opt/tljh/hub"].digest))
    problems: list[str] = []
    installing = _installing(world)
    first = _start(world, label)
    if offset is not None:
        time.sleep(offset)
        second = world.run(world.apply_argv(label))
    else:
        ready = installing if when == "the installer runs" else (
            lambda: (world.root / "opt/tljh/state/apply.lock").exists())
        if not _wait_for(first, watch, ready):
            problems.append(f"the first apply ended before {when}: the case tested nothing")
        with _paused(first):
            second = world.run(world.apply_argv(label))
    files, size, out, err = _finish(world, mode, first, watch, problems)
    outcome = _one_won((first.returncode, out, err),
                       (second.returncode, second.stdout, second.stderr), problems)
    if offset is None and not outcome.startswith("the second refused"):
        problems.append("the second ran while the first held the lock, and did not refuse")
    name = f"two applies, {mode}, the second " + (
        f"{offset * 1000:.0f} ms after the first" if offset is not None else f"when {when}")
    return Result("concurrency", name, not problems,
                  outcome + ("; " + "; ".join(problems) if problems else ""),
                  faults=0 if problems else 1, files_lost=files, bytes_lost=size)


def _one_won(first: tuple[int, str, str], second: tuple[int, str, str],
             problems: list[str]) -> str:
    """Exactly one of two applies (exit code, stdout, stderr) did the work: the other refused
    (whichever takes the apply lock first wins: the first may still be reading its bundle when
    the second starts), or took the lock after the winner had finished and had nothing to do."""
    runs = {"first": first, "second": second}
    if first[0] == 0 and second[0] == 0:
        if not any("nothing to do" in out for _, out, _ in runs.values()):
            problems.append("both succeeded and both did work")
        return "they ran one after the other; the later one had nothing to do"
    refused = [name for name, (code, _, err) in runs.items() if code != 0 and REFUSAL in err]
    if sorted((first[0], second[0])) != [0, 1] or len(refused) != 1:
        problems.append(f"exit codes {first[0]} and {second[0]}: {first[2][-200:]!r} "
                        f"{second[2][-200:]!r}")
        return "not exactly one refused"
    return f"the {refused[0]} refused (exit 1), the other applied"


def simultaneous(world: World) -> Result:
    """Both started in the same instant: exactly one wins."""
    world.reset("empty")
    a, b = _start(world, "old"), _start(world, "old")
    (a_out, a_err), (b_out, b_err) = a.communicate(), b.communicate()
    problems: list[str] = []
    outcome = _one_won((a.returncode, a_out, a_err), (b.returncode, b_out, b_err), problems)
    loss = compare(world.references["fresh"], world.manifest())
    if not loss.clean:
        problems.append(f"the root is not that of one uninterrupted apply: {loss.describe()}")
    clear(world.tmp)
    return Result("concurrency", "two applies started in the same instant", not problems,
                  outcome +
                  ("; " + "; ".join(problems) if problems else ""),
                  faults=0 if problems else 1, files_lost=loss.files_lost,
                  bytes_lost=loss.bytes_lost)


def rollback_during_apply(world: World) -> Result:
    world.reset("old")
    watch = Watch(world.root, (world.references["old"]["opt/tljh/hub"].digest,
                               world.references["upgrade"]["opt/tljh/hub"].digest))
    installing = _installing(world)
    first = _start(world, "new")
    problems = [] if _wait_for(first, watch, installing) else [
        "the upgrade ended before its installer was seen: the case tested nothing"]
    with _paused(first):
        rollback = world.run(world.tool("rollback", "--root", world.root))
    if rollback.returncode == 0 or REFUSAL not in rollback.stderr:
        problems.append(f"rollback during an apply: exit {rollback.returncode}: "
                        f"{rollback.stderr[-200:]}")
    files, size, _, _ = _finish(world, "upgrade", first, watch, problems)
    return Result("concurrency", "rollback while an upgrade runs", not problems,
                  f"rollback exit {rollback.returncode}" +
                  ("; " + "; ".join(problems) if problems else ""),
                  faults=0 if problems else 1, files_lost=files, bytes_lost=size)


def verify_during_apply(world: World, mode: str) -> Result:
    start, label = ("empty", "old") if mode == "fresh" else ("old", "new")
    world.reset(start)
    first = _start(world, label)
    runs: dict[int, int] = {}
    problems: list[str] = []
    while first.poll() is None:
        verify = world.run(world.tool("verify", "--root", world.root))
        runs[verify.returncode] = runs.get(verify.returncode, 0) + 1
        if verify.returncode not in (0, 1) or "Traceback" in verify.stderr:
            problems.append(f"verify crashed: exit {verify.returncode}: {verify.stderr[-300:]}")
            break
    watch = Watch(world.root, (None, world.references[mode]["opt/tljh/hub"].digest))
    files, size, _, _ = _finish(world, mode, first, watch, problems)
    final = world.run(world.tool("verify", "--root", world.root))
    if final.returncode != 0:
        problems.append(f"verify after the apply: {final.stderr[-300:]}")
    counts = ", ".join(f"{n}× exit {code}" for code, n in sorted(runs.items()))
    return Result("concurrency", f"verify in a loop during a {mode} apply", not problems,
                  f"verify ran {sum(runs.values())} times ({counts}: 1 = drift or nothing "
                  "applied yet, reported mid-apply)" +
                  ("; " + "; ".join(problems) if problems else ""),
                  faults=0 if problems else sum(runs.values()), files_lost=files,
                  bytes_lost=size)


def run(world: World, rng: random.Random, quick: bool, log) -> list[Result]:  # type: ignore[no-untyped-def]
    cases = [lambda: two_applies(world, "fresh", "the first holds the lock", None),
             lambda: two_applies(world, "upgrade", "the installer runs", None),
             lambda: simultaneous(world),
             lambda: verify_during_apply(world, "upgrade")]
    if not quick:
        cases += [lambda: two_applies(world, "fresh", "the installer runs", None),
                  lambda: rollback_during_apply(world),
                  lambda: verify_during_apply(world, "fresh")]
        for _ in range(3):
            offset = round(rng.uniform(0.0, world.seconds["fresh"]), 3)
            cases.append(lambda offset=offset: two_applies(world, "fresh", "", offset))
    results = []
    for case in cases:
        results.append(case())
        log(results[-1].line())
    return results
