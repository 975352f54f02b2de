"""apply, rollback and status: under the apply lock, observe the server, plan, and execute the
plan's steps (through `actions`), recording the state after every step so that an interrupted
run resumes where it stopped; then commit the generation, restart what changed and collect
the directories no kept generation uses."""

from __future__ import annotations

import errno
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tljh_lock.apply import layout as L
from tljh_lock.apply import state as S
from tljh_lock.apply.actions import execute, system
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.admins import Admin
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import MARKER, Interpreter, Observed, observe, probe, with_trees
from tljh_lock.apply.plan import (
    Plan,
    check_applicable,
    downgrade_reasons,
    hub_in_use,
    plan,
    system_steps,
)
from tljh_lock.apply.source import ArtifactSource, BundleSource
from tljh_lock.apply.state import Generation, State
from tljh_lock.apply.steps import BuildStep, FileStep, HubBuild, Step, UserEnvStep
from tljh_lock.apply.tree import directory_hash
from tljh_lock.apply.wheels import BuiltWheels
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.files import file_sha256, write_atomic
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.model import Lock

KEPT_GENERATIONS = 3  # their directories survive garbage collection (rollback needs them)
RESTART_ORDER = ("configurable-http-proxy.service", "jupyterhub.service", "traefik.service")

Log = Callable[[str], None]


@dataclass
class Outcome:
    plan: Plan
    ran: list[str] = field(default_factory=list)
    generation: int | None = None
    restarted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"lock-sha256": self.plan.lock_sha256, "generation": self.generation,
                "ran": self.ran, "restarted": self.restarted, "seconds": round(self.seconds, 3),
                "steps": [step.describe() for step in self.plan.steps]}


def apply(layout: Layout, lock_path: Path | None, source: ArtifactSource, python: str, *,
          dry_run: bool = False, allow_downgrade: bool = False, rebuild: bool = False,
          admins: tuple[Admin, ...] = (), log: Log = lambda _: None) -> Outcome:
    """Apply the lock at `lock_path`, or with none, the lock of the bundle `source`, and set up
    `admins` as TLJH's installer does. With `rebuild`, a changed hub environment holding
    distributions the lock does not is rebuilt from the lock (the changed one stays as the
    previous generation) instead of refused."""
    started = time.monotonic()
    interpreter = probe(python)
    lock_bytes, where = _lock_bytes(layout, lock_path, source)
    lock = lockfile.parse(lock_bytes.decode("utf-8", errors="replace"), str(where))
    lock_sha256 = hashlib.sha256(lock_bytes).hexdigest()
    # The apply lock creates the state directory: what can be refused is refused first.
    check_applicable(lock)
    if dry_run:  # no lock taken: taking it would create the state directory
        observed, planned = _observe_and_plan(layout, lock, lock_sha256, interpreter, source,
                                              admins)
        _refuse(planned, observed.state, allow_downgrade, rebuild)
        return Outcome(planned, seconds=time.monotonic() - started)
    with S.exclusive(layout.state_dir), _scratch(layout, source) as scratch:
        observed, planned = _observe_and_plan(layout, lock, lock_sha256, interpreter, source,
                                              admins)
        state = observed.state
        _refuse(planned, state, allow_downgrade, rebuild)
        outcome = Outcome(planned)
        ctx = Context(layout, source, log, scratch, lock_bytes=lock_bytes)
        _unpack(planned.steps, source, scratch, log)
        _execute(planned.steps, ctx, state, outcome)
        outcome.generation = _commit(layout, state, planned, lock_bytes, observed)
        outcome.restarted = _restart(layout, planned.steps, outcome.ran, scratch)
        _collect_garbage(layout, state)
        S.save_seen(layout.state_dir, {
            name: tree for name, tree in {**observed.trees, **ctx.trees}.items()
            if name in state.trees and layout.path(f"{L.PREFIX}/{name}").is_dir()})
    outcome.seconds = time.monotonic() - started
    return outcome


def _observe_and_plan(layout: Layout, lock: Lock, lock_sha256: str, interpreter: Interpreter,
                      built: BuiltWheels, admins: tuple[Admin, ...]) -> tuple[Observed, Plan]:
    """Observe, plan, then look at the trees of the built directories that plan may reuse
    (marked with one of its build keys, and the hub in use when the hub is built again, to
    link from) and plan again with them: a changed one is built again, not reused."""
    observed = observe(layout)
    first = plan(lock, lock_sha256, observed, interpreter, built, admins)
    keys = {step.key for step in first.steps if isinstance(step, BuildStep)}
    in_use = hub_in_use(observed)
    if in_use is not None and any(isinstance(step, HubBuild) and not step.done
                                  for step in first.steps):
        keys.add(observed.markers[in_use])
    observed = with_trees(layout, observed, keys)
    return observed, plan(lock, lock_sha256, observed, interpreter, built, admins)


@contextmanager
def _scratch(layout: Layout, source: ArtifactSource) -> Iterator[Path]:
    """The run's temporary files (the unpacked bundle, the wheel house, npm's cache, what pip
    and npm make: actions are given it, and it is their TMPDIR) go below the state directory,
    not TMPDIR: a killed run's leftovers are cleared by the next run, under the apply lock,
    and a full disk is the root's, not a small /tmp's."""
    scratch = layout.path(L.SCRATCH)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700, parents=True)
    try:
        yield scratch
    finally:
        source.close()  # what it unpacked is in the scratch
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(steps: list[Step], source: ArtifactSource, scratch: Path, log: Log) -> None:
    """Unpack a bundle before the steps that install from it, as a phase of its own (its
    members hashed again as they are written): a step's time is then its own work, and an
    apply with nothing to install, or only files to write again, never unpacks."""
    if isinstance(source, BundleSource) and any(
            not step.done and isinstance(step, (BuildStep, UserEnvStep)) for step in steps):
        log(f"unpacking {source.bundle} "
            f"({source.bundle.stat().st_size / (1 << 20):.0f} MiB) into {scratch}")
        source.directory(scratch)


def _lock_bytes(layout: Layout, lock_path: Path | None,
                source: ArtifactSource) -> tuple[bytes, Path]:
    """The lock to apply and where it was read, before anything is written: a bundle's comes
    from the state when it was applied before, else with the whole bundle checked (it is
    unpacked only under the apply lock)."""
    if lock_path is not None:
        return lock_path.read_bytes(), lock_path
    assert isinstance(source, BundleSource)
    kept = _kept_lock(layout, source)
    if kept is not None:
        return kept.read_bytes(), kept
    return source.verify(), source.bundle


def _kept_lock(layout: Layout, source: BundleSource) -> Path | None:
    """The bundle's lock as kept in the state when it was applied before, so that a no-op
    re-run reads only the bundle's manifest."""
    for generation in reversed(S.load(layout.state_dir).generations):
        copy = S.lock_copy(layout.state_dir, generation.number)
        if generation.lock_sha256 == source.lock_sha256 and copy.exists() \
                and file_sha256(copy) == source.lock_sha256:
            return copy
    return None


def _refuse(planned: Plan, state: State, allow_downgrade: bool, rebuild: bool) -> None:
    if planned.refusals and not rebuild:
        raise TljhLockError(
            "; ".join(planned.refusals),
            hint="add them to recipes/hub.toml and run `tljh-lock update`, then apply that "
                 "lock; or pass --rebuild to rebuild the hub environment from this lock (the "
                 "changed one stays, as the previous generation: `tljh-lock rollback` returns "
                 "to it)")
    reasons = downgrade_reasons(planned, state)
    if reasons and not allow_downgrade:
        raise TljhLockError(
            "this lock is older than the one applied: " + "; ".join(reasons),
            hint="use `tljh-lock rollback` to return to the previous generation, or pass "
                 "--allow-downgrade if going back is intended",
        )


def _execute(steps: list[Step], ctx: Context, state: State, outcome: Outcome) -> None:
    for step in steps:
        if step.done:
            continue
        ctx.log(f"{step.id}: {step.summary}")
        try:
            changed = execute(step, ctx)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            where = exc.filename or ctx.layout.path(L.PREFIX)
            raise TljhLockError(f"{step.id}: no space left on the device holding {where}",
                                hint="free some space there, then run this command again; "
                                     "the previous generation stays in use") from None
        state.steps[step.id] = step.key
        state.trees.update({name: tree.tree for name, tree in ctx.trees.items()})
        if isinstance(step, FileStep):
            assert step.file is not None
            state.files[step.file.path] = {
                "sha256": hashlib.sha256(step.file.data).hexdigest(),
                "mode": f"{step.file.mode:04o}"}
        S.save(ctx.layout.state_dir, state)  # an interrupted run resumes after this step
        if changed:  # what changed nothing restarts nothing and is not reported as run
            outcome.ran.append(step.id)
    # Steps already done (a state file lost, a run killed before it saved) are recorded too.
    for step in steps:
        state.steps[step.id] = step.key
        if isinstance(step, FileStep) and step.file is not None:
            state.files[step.file.path] = {
                "sha256": hashlib.sha256(step.file.data).hexdigest(),
                "mode": f"{step.file.mode:04o}"}
    # Only the files this layout renders are ours to verify (traefik.toml became TLJH's).
    rendered = {step.file.path for step in steps if isinstance(step, FileStep) and step.file}
    state.files = {path: record for path, record in state.files.items() if path in rendered}


def _commit(layout: Layout, state: State, planned: Plan, lock_bytes: bytes,
            observed: Observed) -> int:
    """Record the generation now in use; a new number only if the lock or directories moved."""
    current = state.current_generation
    if current is None or (current.lock_sha256, current.dirs) != (planned.lock_sha256,
                                                                   planned.dirs):
        number = max((g.number for g in state.generations), default=0) + 1
        write_atomic(S.lock_copy(layout.state_dir, number), lock_bytes, exclusive=True)
        state.generations.append(Generation(
            number, planned.lock_sha256, dict(planned.dirs), dict(planned.versions),
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        state.current = number
    for directory in planned.dirs.values():
        if directory not in state.trees:  # built before the state was lost
            found = observed.trees.get(directory)
            state.trees[directory] = found.tree if found else directory_hash(
                layout.path(f"{L.PREFIX}/{directory}"))
    S.save(layout.state_dir, state)
    assert state.current is not None
    return state.current


def _restart(layout: Layout, steps: list[Step], ran: list[str], scratch: Path | None
             ) -> list[str]:
    if not ran or not system.systemd_running(layout):
        return []
    wanted = {unit for step in steps if step.id in ran for unit in step.restarts}
    units = [unit for unit in RESTART_ORDER if unit in wanted]
    system.restart_units(units, scratch)
    return units


def _collect_garbage(layout: Layout, state: State) -> None:
    """Remove built directories no kept generation uses (and leftovers of interrupted runs)."""
    kept_generations = sorted(state.generations, key=lambda g: g.number)[-KEPT_GENERATIONS:]
    current = state.current_generation
    if current is not None and current not in kept_generations:
        kept_generations.append(current)
    kept = {d for g in kept_generations for d in g.dirs.values()}
    prefix = layout.path(L.PREFIX)
    for role in ("hub", "node", "proxy"):
        for path in prefix.glob(f"{role}.*"):
            if path.name not in kept and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                state.trees.pop(path.name, None)
    S.save(layout.state_dir, state)


def rollback(layout: Layout, log: Log = lambda _: None) -> Generation:
    """Point everything back at the generation before the current one (its directories are
    kept), re-render the files, and make it current."""
    with S.exclusive(layout.state_dir):
        state = S.load(layout.state_dir)
        current = state.current_generation
        if current is None:
            raise TljhLockError("nothing has been applied here: there is nothing to roll back")
        earlier = [g for g in state.generations if g.number < current.number]
        if not earlier:
            raise TljhLockError(f"generation {current.number} is the first one: there is no "
                                "previous generation")
        previous = max(earlier, key=lambda g: g.number)
        for directory in previous.dirs.values():
            if not (layout.path(f"{L.PREFIX}/{directory}") / MARKER).exists():
                raise TljhLockError(f"generation {previous.number}'s {directory} is gone",
                                    hint="apply that generation's lock again instead")
        steps = system_steps(observe(layout), previous.dirs)
        outcome = Outcome(Plan(previous.lock_sha256, steps, previous.dirs, previous.versions))
        _execute(steps, Context(layout, None, log), state, outcome)
        state.current = previous.number
        S.save(layout.state_dir, state)
        _restart(layout, steps, outcome.ran, None)
        return previous


def status(layout: Layout) -> dict[str, Any]:
    state = S.load(layout.state_dir)
    current = state.current_generation
    return {
        "root": str(layout.root),
        "current": current.to_dict() if current else None,
        "generations": [g.to_dict() for g in state.generations],
        "files": state.files,
        "trees": state.trees,
    }
