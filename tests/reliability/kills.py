"""kill -9 of an apply at chosen points, seen from outside (no hooks in the tool): when a path
appears below the root (its scratch directory included), when a child process (npm, the
installer, visudo, groupadd, systemctl) starts, or at a time offset; each then delayed by an
offset drawn from the seed. The whole process group is killed, as a crash or power loss would.

After each kill: the invariants held at every poll, the hub in use still runs, and a plain
re-run reaches exactly the manifest of an uninterrupted apply."""

from __future__ import annotations

import fnmatch
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Optional

from tests.reliability.harness import Result, Watch, World, clear, hub_answers, session_cmdlines
from tests.reliability.manifest import compare

POLL = 0.003
SCRATCH = "opt/tljh/state/tmp"  # the apply's temporary files (layout.SCRATCH)


@dataclass(frozen=True)
class Trigger:
    name: str
    kind: str  # "root": a new path matching `pattern`; "link": the symlink `pattern`
    # changes; "proc": a child's command line contains `pattern`; "time": the apply starts
    pattern: str
    max_delay: float  # the kill comes a seeded offset in [0, max_delay] s after the trigger


FRESH = [  # an apply of the old lock into an empty root
    Trigger("bundle unpacking starts", "root", f"{SCRATCH}/tljh-lock-bundle-*", 0.05),
    Trigger("bundle members being written", "root",
            f"{SCRATCH}/tljh-lock-bundle-*/.bundle.*/sha256", 0.05),
    Trigger("hub directory created", "root", "opt/tljh/hub.*", 0.05),
    Trigger("venv python linked", "root", "opt/tljh/hub.*/bin/python3", 0.02),
    # the in-process installer (apply/actions/wheel_install.py): it first asks the venv's
    # python where to install, then unpacks (the pip wheel, the largest, first), on 2 cores
    Trigger("installer starts", "proc", "sysconfig.get_paths", 0.0),
    Trigger("installer midway", "root", "opt/tljh/hub.*/lib/python3*/site-packages/pip", 0.2),
    Trigger("installer writes site-packages", "root",
            "opt/tljh/hub.*/lib/python3*/site-packages/fx_*", 0.03),
    Trigger("installer writes a RECORD", "root",
            "opt/tljh/hub.*/lib/python3*/site-packages/*.dist-info/RECORD", 0.0),
    Trigger("traefik binary being copied", "root", "opt/tljh/hub.*/bin/traefik", 0.0),
    Trigger("hub marked complete", "root", "opt/tljh/hub.*/.tljh-lock-key", 0.0),
    Trigger("Node.js unpacking", "root", "opt/tljh/node.*", 0.02),
    Trigger("proxy directory created", "root", "opt/tljh/proxy.*", 0.02),
    Trigger("npm cache add", "proc", "cache add", 0.3),
    Trigger("npm ci starts", "proc", " ci --ignore-scripts", 0.0),
    Trigger("npm ci midway", "proc", " ci --ignore-scripts", 0.6),
    Trigger("node_modules appears", "root", "opt/tljh/proxy.*/node_modules", 0.02),
    Trigger("Miniforge installer starts", "proc", " -b -u -p ", 0.0),
    Trigger("Miniforge installer midway", "proc", " -b -u -p ", 0.05),
    Trigger("user set: installer starts", "proc", "opt/tljh/user/bin/python", 0.0),
    Trigger("user set: installer midway", "root",
            "opt/tljh/user/lib/python3*/site-packages/fx_*", 0.03),
    Trigger("user set: installer writes a RECORD", "root",
            "opt/tljh/user/lib/python3*/site-packages/fx_*.dist-info/RECORD", 0.0),
    Trigger("user set: bytecode compiling", "proc", "compileall", 0.05),
    Trigger("user environment marked", "root", "opt/tljh/user/.tljh-lock-key", 0.0),
    Trigger("groupadd runs", "proc", "groupadd", 0.0),
    Trigger("group file rewritten", "root", "etc/group-", 0.005),
    Trigger("proxy token written", "root", "opt/tljh/state/proxy.env", 0.0),
    Trigger("sudoers staged", "root", "etc/sudoers.d/.jupyterhub-admins*", 0.0),
    Trigger("visudo checks", "proc", "visudo", 0.01),
    Trigger("sudoers in place", "root", "etc/sudoers.d/jupyterhub-admins", 0.0),
    Trigger("a unit being written", "root", "etc/systemd/system/.*.service.tljh-lock-tmp", 0.0),
    Trigger("units written", "root", "etc/systemd/system/*.service", 0.005),
    Trigger("hub link staged", "root", "opt/tljh/.hub.tljh-lock-new", 0.0),
    Trigger("hub link switched", "link", "opt/tljh/hub", 0.0),
    Trigger("hub link switched, then", "link", "opt/tljh/hub", 0.02),
    Trigger("tljh-config link", "root", "usr/bin/tljh-config", 0.0),
    Trigger("systemctl enable", "proc", "systemctl", 0.01),
    Trigger("units enabled", "root", "etc/systemd/system/multi-user.target.wants/*", 0.0),
    Trigger("state being saved", "root", "opt/tljh/state/.state.json.tljh-lock-tmp", 0.0),
    Trigger("generation recorded", "root", "opt/tljh/state/generations/*.lock.toml", 0.0),
]
UPGRADE = [  # the new lock over the old one: a new hub beside the one in use, then the switch
    Trigger("hub directory created", "root", "opt/tljh/hub.*", 0.05),
    Trigger("installer starts", "proc", "sysconfig.get_paths", 0.0),
    # what did not change is linked from the hub in use (pip among it, first), the rest
    # unpacked: linking pip's files takes some tens of milliseconds, the rest of the upgrade
    # little more
    Trigger("installer midway", "root", "opt/tljh/hub.*/lib/python3*/site-packages/pip", 0.02),
    Trigger("installer links site-packages", "root",
            "opt/tljh/hub.*/lib/python3*/site-packages/fx_*", 0.0),
    Trigger("traefik binary linked", "root", "opt/tljh/hub.*/bin/traefik", 0.0),
    Trigger("record of what the hub was built from", "root",
            "opt/tljh/hub.*/.tljh-lock-built-from.json", 0.0),
    Trigger("hub marked complete", "root", "opt/tljh/hub.*/.tljh-lock-key", 0.0),
    Trigger("hub link staged", "root", "opt/tljh/.hub.tljh-lock-new", 0.0),
    Trigger("between the hub's marker and the switch", "root", "opt/tljh/hub.*/.tljh-lock-key",
            0.1),
    Trigger("hub link switched", "link", "opt/tljh/hub", 0.0),
    Trigger("hub link switched, then", "link", "opt/tljh/hub", 0.02),
    Trigger("generation 2 recorded", "root", "opt/tljh/state/generations/2.lock.toml", 0.0),
    Trigger("state being saved", "root", "opt/tljh/state/.state.json.tljh-lock-tmp", 0.0),
]
QUICK = {"fresh": ["installer midway", "npm ci starts", "Miniforge installer starts",
                   "sudoers staged", "hub link switched"],
         "upgrade": ["installer midway", "installer links site-packages",
                     "between the hub's marker and the switch"]}


@dataclass(frozen=True)
class Point:
    mode: str  # "fresh" or "upgrade"
    trigger: Trigger
    delay: float

    @property
    def name(self) -> str:
        return f"{self.mode}: {self.trigger.name} +{self.delay * 1000:.0f} ms"


def points(world: World, rng: random.Random, quick: bool, time_offsets: int) -> list[Point]:
    chosen = []
    for mode, triggers in (("fresh", FRESH), ("upgrade", UPGRADE)):
        for trigger in triggers:
            if quick and trigger.name not in QUICK[mode]:
                continue
            chosen.append(Point(mode, trigger, round(rng.uniform(0, trigger.max_delay), 4)))
        for _ in range(0 if quick else time_offsets):
            seconds = world.seconds[mode]
            chosen.append(Point(mode, Trigger("time offset", "time", "", seconds),
                                round(rng.uniform(0.05, 0.95) * seconds, 3)))
    return chosen


class _Matcher:
    def __init__(self, world: World, trigger: Trigger, sid: int) -> None:
        self.world, self.trigger, self.sid = world, trigger, sid
        self.before = self._paths() if trigger.kind == "root" else set()
        self.link = self._link() if trigger.kind == "link" else None

    def _link(self) -> Optional[str]:
        try:
            return os.readlink(self.world.root / self.trigger.pattern)
        except FileNotFoundError:
            return None

    def _paths(self) -> set[str]:
        return set(_glob_hidden(str(self.world.root), self.trigger.pattern))

    def fired(self) -> bool:
        kind = self.trigger.kind
        if kind == "time":
            return True
        if kind == "proc":
            return any(self.trigger.pattern in line for line in session_cmdlines(self.sid))
        if kind == "link":
            return self._link() != self.link
        return bool(self._paths() - self.before)


def _glob_hidden(base: str, pattern: str) -> list[str]:
    """glob that matches names starting with a dot (python < 3.11 has no include_hidden)."""
    found = [base]
    for part in pattern.split("/"):
        found = [os.path.join(d, n) for d in found if os.path.isdir(d)
                 for n in os.listdir(d) if fnmatch.fnmatchcase(n, part)]
    return found


def run_point(world: World, point: Point) -> Result:
    start, label = ("empty", "old") if point.mode == "fresh" else ("old", "new")
    world.reset(start)
    reference = world.references[point.mode]
    new_hub = reference["opt/tljh/hub"].digest
    before = world.manifest().get("opt/tljh/hub")
    watch = Watch(world.root, (before.digest if before else None, new_hub))
    proc = subprocess.Popen(world.apply_argv(label), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=world.env(), start_new_session=True)
    matcher = _Matcher(world, point.trigger, proc.pid)
    fired_at: Optional[float] = None
    killed = False
    while proc.poll() is None:
        watch.check()
        now = time.monotonic()
        if fired_at is None and matcher.fired():
            fired_at = now
        if fired_at is not None and now - fired_at >= point.delay:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            except ProcessLookupError:
                pass
            break
        time.sleep(POLL)
    proc.wait()
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if killed and proc.returncode != -signal.SIGKILL:
        killed = False  # it had exited on its own between the poll and the kill
    watch.check()
    problems = list(watch.violations)
    if not killed and proc.returncode != 0:
        problems.append(f"the uninterrupted apply failed ({proc.returncode}): {stderr[-300:]}")
    answering = hub_answers(world.root)
    if answering:
        problems.append(f"after the kill: {answering}")
    leaked = clear(world.tmp)
    if leaked:
        problems.append(f"the killed run left {leaked} in TMPDIR")
    scratch = world.root / SCRATCH
    in_scratch = sum(1 for _ in scratch.iterdir()) if scratch.is_dir() else 0
    rerun = world.run(world.apply_argv(label))
    if rerun.returncode != 0:
        problems.append(f"the re-run failed ({rerun.returncode}): {rerun.stderr[-400:]}")
    else:
        verify = world.run(world.tool("verify", "--root", world.root))
        if verify.returncode != 0:
            problems.append(f"verify after the re-run: {verify.stderr.strip()[-400:]}")
    loss = compare(reference, world.manifest())
    leaked_after = clear(world.tmp)
    if leaked_after:
        problems.append(f"the re-run left {leaked_after} in TMPDIR")
    detail = "killed" if killed else "the apply finished before the kill point"
    detail += f", {watch.polls} polls"
    if in_scratch:
        detail += f"; the scratch left {in_scratch} entries, which the re-run cleared"
    if problems:
        detail += "; " + "; ".join(problems)
    ok = not problems and loss.clean
    if not loss.clean:
        detail += f"; after the re-run the root differs: {loss.describe()}"
    return Result("kills", point.name, ok, detail, faults=1 if killed and ok else 0,
                  files_lost=loss.files_lost, bytes_lost=loss.bytes_lost,
                  skipped=not killed and ok)


def run(world: World, rng: random.Random, quick: bool, log) -> list[Result]:  # type: ignore[no-untyped-def]
    results = []
    for point in points(world, rng, quick, time_offsets=4):
        result = run_point(world, point)
        log(result.line())
        results.append(result)
    return results
