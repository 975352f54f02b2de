"""The world every case runs in: the fixture scenario, its bundles and the bundle's zipapp, one
server root path (venv scripts name it, so every apply goes into the same path), the reference
manifests of uninterrupted applies, and the ways to run and watch the tool."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tests.reliability.manifest import (
    Entry,
    Loss,
    compare,
    invalid_sudoers,
    manifest,
    mode_problems,
)
from tests.support import apply_scenario as scenario
from tljh_lock.apply.observe import MARKER
from tljh_lock.bundle import safe_archive

REPO = Path(__file__).resolve().parents[2]
PYTHON = scenario.SYSTEM_PYTHON  # the server's python3 runs the bundle's zipapp


@dataclass
class Result:
    cls: str  # the class of the campaign: kills, inputs, disk-full, concurrency, rollback
    name: str
    ok: bool
    detail: str
    faults: int = 0  # faults injected and survived (kills delivered, bad inputs refused, ...)
    files_lost: int = 0
    bytes_lost: int = 0
    skipped: bool = False  # the fault could not be injected (e.g. the apply finished first)
    known: str = ""  # a known weakness, reported, not failing the run, until it is fixed

    @property
    def failed(self) -> bool:
        return not self.ok and not self.known

    def line(self) -> str:
        mark = "skip" if self.skipped else ("ok" if self.ok else "KNOWN" if self.known
                                            else "FAIL")
        return f"[{mark:5}] {self.cls}: {self.name}: {self.detail}"


@dataclass
class World:
    work: Path
    fixture: scenario.Fixture
    bundles: dict[str, Path]  # "old", "new"
    pyz: Path
    root: Path
    tmp: Path  # TMPDIR of every run: what a killed run leaves there is counted
    references: dict[str, dict[str, Entry]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # uninterrupted apply times

    @property
    def base_old(self) -> Path:
        return self.work / "base-old"  # a root with the old lock applied, copied per case

    def env(self, tmp: Optional[Path] = None) -> dict[str, str]:
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                "TMPDIR": str(tmp or self.tmp)}

    def tool(self, *args: object) -> list[str]:
        return [PYTHON, "-I", str(self.pyz), *map(str, args)]

    def apply_argv(self, label: str, *extra: object) -> list[str]:
        return self.tool("apply", "--bundle", self.bundles[label], "--root", self.root, *extra)

    def run(self, argv: list[str], timeout: float = 300, tmp: Optional[Path] = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(tmp),
                              timeout=timeout)

    def reset(self, start: str) -> None:
        """The root as before the case: "empty" (a bare server) or "old" (old lock applied)."""
        if start == "old" and "old" in self.references and self.root.is_dir() \
                and self.manifest() == self.references["old"]:
            clear(self.tmp)  # the case before changed nothing: no need to copy it again
            return
        if self.root.is_mount():  # a tmpfs of the disk-full cases
            clear(self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        if start == "empty":
            scenario.make_root(self.root)
        else:
            self.root.mkdir(exist_ok=True)
            subprocess.run(["cp", "-a", f"{self.base_old}/.", self.root], check=True)
        clear(self.tmp)

    def manifest(self) -> dict[str, Entry]:
        return manifest(self.root)


def clear(directory: Path) -> list[tuple[str, int]]:
    """Empty `directory`; return what was in it (name, bytes)."""
    found = []
    directory.mkdir(parents=True, exist_ok=True)
    for child in directory.iterdir():
        size = sum(p.stat().st_size for p in child.rglob("*") if p.is_file()) \
            if child.is_dir() else child.lstat().st_size
        found.append((child.name, size))
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    return found


def build_world(work: Path, log, twice: bool = True) -> World:  # type: ignore[no-untyped-def]
    """The scenario, its bundles, and the reference manifests: "fresh" (the old lock into an
    empty root), "old" (the same again, which must agree: `twice`), "upgrade" (the new lock
    over "old")."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("building the fixture scenario and its bundles")
    fixture = scenario.build_fixture(work / "fixture")
    bundles = {label: scenario.build_bundle(fixture, label, work / f"{label}.bundle")
               for label in ("old", "new")}
    pyz = work / "tljh-lock.pyz"
    pyz.write_bytes(bundle_member(bundles["old"], safe_archive.PYZ_NAME))
    world = World(work, fixture, bundles, pyz, work / "root", work / "tmp")
    runs = [("fresh", "empty", "old")] + ([("old", "empty", "old")] if twice else []) + [
        ("upgrade", "old", "new")]
    for name, start, label in runs:
        if name == "upgrade":
            world.references.setdefault("old", world.references["fresh"])
            shutil.copytree(world.root, world.base_old, symlinks=True)  # from "old" just before
        world.reset(start)
        started = time.monotonic()
        result = world.run(world.apply_argv(label))
        world.seconds[name] = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"the uninterrupted apply ({name}) failed: {result.stderr}")
        world.references[name] = world.manifest()
        wrong = mode_problems(world.references[name])
        if wrong:
            raise RuntimeError(f"the uninterrupted apply ({name}) left modes that are not "
                               f"TLJH's: {'; '.join(wrong)}")
        leaked = clear(world.tmp)
        if leaked:
            raise RuntimeError(f"an uninterrupted apply left {leaked} in TMPDIR")
    # Two uninterrupted applies must agree, or the comparison would measure noise.
    if world.references["fresh"] != world.references["old"]:
        raise RuntimeError("two uninterrupted applies differ beyond the documented volatile "
                           "state: " + compare(world.references["fresh"],
                                               world.references["old"]).describe())
    log(f"uninterrupted applies: fresh {world.seconds['fresh']:.1f} s, upgrade "
        f"{world.seconds['upgrade']:.1f} s, {len(world.references['fresh'])} paths")
    return world


def bundle_member(bundle: Path, name: str) -> bytes:
    """The bytes of one member of a (trusted, just built) bundle."""
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


def session_cmdlines(sid: int) -> list[str]:
    """Command lines of the processes in session `sid` (an apply and its children)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
            if int(stat.rsplit(b")", 1)[1].split()[3]) != sid:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                found.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


@dataclass
class Watch:
    """Invariants checked at every poll while an apply runs: no sudoers file sudo would read is
    invalid; /opt/tljh/hub points at an allowed, complete directory, and never back."""

    root: Path
    allowed_hubs: tuple[Optional[str], ...]
    violations: list[str] = field(default_factory=list)
    polls: int = 0
    _sudo_cache: dict = field(default_factory=dict)  # type: ignore[type-arg]
    _seen: list[Optional[str]] = field(default_factory=list)

    def check(self) -> None:
        self.polls += 1
        for problem in invalid_sudoers(self.root, self._sudo_cache):
            self._violate(f"invalid sudoers: {problem}")
        try:
            target: Optional[str] = os.readlink(self.root / "opt/tljh/hub")
        except FileNotFoundError:
            target = None
        if target not in self.allowed_hubs:
            self._violate(f"/opt/tljh/hub -> {target}, expected one of {self.allowed_hubs}")
        elif target is not None and not (self.root / "opt/tljh" / target / MARKER).exists():
            self._violate(f"/opt/tljh/hub -> {target}, which is not complete")
        if not self._seen or self._seen[-1] != target:
            if target in self._seen:
                self._violate(f"/opt/tljh/hub went back to {target}")
            self._seen.append(target)

    def _violate(self, message: str) -> None:
        if message not in self.violations:
            self.violations.append(message)


def hub_answers(root: Path) -> Optional[str]:
    """None if the hub the link points at runs (its tljh-config), else why not."""
    if not os.path.lexists(root / "opt/tljh/hub"):
        return None  # nothing installed yet: nothing to keep answering
    try:
        out = subprocess.run([root / "opt/tljh/hub/bin/tljh-config"], capture_output=True,
                             text=True, timeout=30)
    except OSError as exc:
        return f"the hub does not run: {exc}"
    if out.returncode != 0 or "tljh-config" not in out.stdout:
        return f"the hub does not run: exit {out.returncode}: {out.stderr.strip()[-200:]}"
    return None


def loss_result(cls: str, name: str, loss: Loss, detail: str, ok: bool, faults: int = 1
                ) -> Result:
    return Result(cls, name, ok and loss.clean, detail if loss.clean else
                  f"{detail}; root differs: {loss.describe()}", faults if ok else 0,
                  loss.files_lost, loss.bytes_lost)


def python_module_argv(*args: object) -> list[str]:
    """`python -m tljh_lock` from this checkout (for the cases the zipapp cannot express)."""
    return [sys.executable, "-m", "tljh_lock", *map(str, args)]


def repo_env(world: World, tmp: Optional[Path] = None) -> dict[str, str]:
    return {**world.env(tmp), "PYTHONPATH": str(REPO)}


def error_line(stderr: str) -> Optional[str]:
    """The tool's error message (after any progress lines), None if there is none."""
    lines = [line for line in stderr.splitlines() if line.startswith("tljh-lock: error: ")]
    return lines[0][len("tljh-lock: error: "):] if lines else None


def clear_error(result: subprocess.CompletedProcess[str]) -> Optional[str]:
    """None if `result` failed with the tool's own error message and no traceback."""
    if result.returncode == 0:
        return "it succeeded"
    if "Traceback" in result.stderr or error_line(result.stderr) is None:
        return f"not a clear error (exit {result.returncode}): {result.stderr.strip()[-300:]!r}"
    return None
