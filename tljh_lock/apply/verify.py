"""`verify`: drift between what the state says was applied and what is on disk: the rendered
files' hashes and modes, the groups, token, links, units and TLJH's modes, the built
directories' trees, the user environment's marker, the kept copy of the applied lock, and
every locked distribution of the hub and user environments at its version (read as `observe`
reads them, so that apply sees what verify reports). The files TLJH manages (`managed`) are
the admin's: listed, never compared; so are the distributions an admin installed into the user
environment (`admin_installed`).

Each finding is a `Drift`: the line for people and the fields for `--json` come from it alone.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from tljh_lock.apply import layout as L
from tljh_lock.apply import render, tljh
from tljh_lock.apply import state as S
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import Observed, installed, observe
from tljh_lock.apply.plan import HUB, USER_ENV, locked, not_as_locked, system_steps, unlocked
from tljh_lock.apply.steps import (
    EnableStep,
    FileStep,
    GroupStep,
    LinkStep,
    Step,
    TokenStep,
    TraefikConfigStep,
)
from tljh_lock.apply.tree import seen
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.findings import Fields
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Lock

APPLY = "run `tljh-lock apply` with the applied lock (or bundle) again"
REBUILD = ("add it to recipes/hub.toml and run `tljh-lock update`, or run `tljh-lock apply "
           "--rebuild` to rebuild the hub environment without it")


@dataclass(frozen=True)
class Drift(Fields):
    """One difference from what was applied. `kind` is a stable word for scripts: missing,
    changed (a file's or tree's hash), mode, not-in-place (a step that would run again),
    not-applied, not-installed, version, not-locked, no-target, nothing-applied."""

    kind: str
    message: str  # the line for people, after the path
    path: str | None = None  # below --root
    component: str | None = None  # the lock's component, or the built directory's role
    package: str | None = None
    version: str | None = None  # the lock's, or for not-locked the one installed
    expected: str | None = None
    actual: str | None = None
    repair: str | None = None  # the next step

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def verify(layout: Layout) -> list[Drift]:
    """Drift between what the state says was applied and what is on disk."""
    observed = observe(layout)
    state = observed.state
    current = state.current_generation
    if current is None:
        return [Drift("nothing-applied", "nothing has been applied here",
                      repair="run `tljh-lock apply`")]
    found = []
    for installed_path, recorded in sorted(state.files.items()):
        target = layout.path(installed_path)
        try:
            mode = f"{target.stat().st_mode & 0o7777:04o}"
            digest = _sha256(observed, installed_path)
        except FileNotFoundError:
            found.append(Drift("missing", "missing", installed_path, repair=APPLY))
            continue
        if digest != recorded["sha256"]:
            found.append(Drift("changed", f"sha256 {digest}, applied {recorded['sha256']}",
                               installed_path, expected=recorded["sha256"], actual=digest,
                               repair=APPLY))
        if mode != recorded["mode"]:
            found.append(Drift("mode", f"mode {mode}, applied {recorded['mode']}",
                               installed_path, expected=recorded["mode"], actual=mode,
                               repair=APPLY))
    for step in system_steps(observed, current.dirs):
        if not step.done and not isinstance(step, FileStep):
            found.append(Drift("not-in-place", f"{step.summary}: not in place",
                               _step_path(step), repair=APPLY))
    found += _trees(layout, observed, current.dirs)
    user_key = state.steps.get("user-env")
    if user_key is not None and observed.markers.get("user") != user_key:
        found.append(Drift("not-applied", "not the user environment that was applied", L.USER,
                           USER_ENV, expected=user_key, actual=observed.markers.get("user"),
                           repair=APPLY))
    copy = S.lock_copy(layout.state_dir, current.number)
    shown = "/" + str(copy.relative_to(layout.root))
    if observed.lock_copy != current.lock_sha256:
        found.append(Drift("missing" if observed.lock_copy is None else "changed",
                           "missing or not the applied lock", shown,
                           expected=current.lock_sha256, actual=observed.lock_copy,
                           repair=APPLY))
    else:
        found += environment_drift(layout, observed, lockfile.load(copy), current.dirs)
    # apply refuses to rebuild a changed hub that holds what the lock does not: say so there
    refused = {d.path for d in found if d.kind == "not-locked"}
    return [dataclasses.replace(d, repair=REBUILD) if d.kind == "changed" and d.path in refused
            else d for d in found]


def _sha256(observed: Observed, path: str) -> str:
    if path not in observed.files:
        raise FileNotFoundError(path)
    return observed.files[path][0]


def _step_path(step: Step) -> str | None:
    if isinstance(step, LinkStep):
        return step.link
    if isinstance(step, GroupStep):
        return "/etc/group"
    if isinstance(step, TokenStep):
        return render.PROXY_ENV
    if isinstance(step, TraefikConfigStep):
        return tljh.TRAEFIK_CONFIG
    if isinstance(step, EnableStep):
        return f"{L.UNIT_DIR}/multi-user.target.wants"
    return None


def _trees(layout: Layout, observed: Observed, dirs: dict[str, str]) -> list[Drift]:
    cache = S.load_seen(layout.state_dir)
    found = []
    for role, directory in sorted(dirs.items()):
        where = f"{L.PREFIX}/{directory}"
        path = layout.path(where)
        if not path.is_dir():
            found.append(Drift("missing", "missing", where, role, repair=APPLY))
            continue
        actual = seen(path, cache.get(directory)).tree
        built = observed.state.trees.get(directory)
        if actual != built:
            found.append(Drift("changed", f"contents changed since it was built ({actual}, "
                               f"built {built})", where, role, expected=built, actual=actual,
                               repair="run `tljh-lock apply` again: it builds the directory "
                                      "again beside this one, which stays as the previous "
                                      "generation"))
    return found


def _venv_python(prefix: Path) -> tuple[int, int] | None:
    """The python X.Y of a venv, from its pyvenv.cfg (no interpreter is run)."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            major, minor = value.strip().split(".")[:2]
            return int(major), int(minor)
    return None


def _not_as_locked(where: str, component: str, have: dict[str, str],
                   expected: dict[str, str]) -> list[Drift]:
    found = []
    for entry in not_as_locked(have, expected):
        name, version = entry.split(" ", 1)
        got = have.get(name)
        if got is None:
            found.append(Drift("not-installed", f"{name} {version} is not installed", where,
                               component, name, version, expected=version, repair=APPLY))
        else:
            found.append(Drift("version", f"{name} is {got}, the lock has {version}", where,
                               component, name, version, expected=version, actual=got,
                               repair=APPLY))
    return found


def _hub_drift(layout: Layout, lock: Lock, hub: pip_lock.Component,
               directory: str) -> list[Drift]:
    where = f"{L.PREFIX}/{directory}"
    prefix = layout.path(where)
    arch = os.uname().machine
    minor = _venv_python(prefix)
    fitting = [t for t in hub.applicable_targets(lock.targets)
               if t.arch == arch and t.python_minor == minor]
    if not fitting:
        return [Drift("no-target", f"no target of the lock is its python {minor} on {arch}",
                      where, HUB, repair=APPLY)]
    expected = locked(hub, fitting[0])
    have = installed(prefix)
    found = _not_as_locked(where, HUB, have, expected)
    found += [Drift("not-locked", f"{name} {version} is installed, and the lock does not have "
                    "it", where, HUB, name, version, actual=version, repair=REBUILD)
              for name, version in unlocked(have, expected).items()]
    return found


def environment_drift(layout: Layout, observed: Observed, lock: Lock,
                      dirs: dict[str, str]) -> list[Drift]:
    """Locked distributions missing from, or at another version in, the hub environment of
    `dirs` and the user environment; distributions the lock does not have in the hub's."""
    found = []
    hub = lock.components.get(HUB)
    if isinstance(hub, pip_lock.Component) and "hub" in dirs:
        found += _hub_drift(layout, lock, hub, dirs["hub"])
    user, expected = _user_expected(lock)
    if user is not None:
        found += _not_as_locked(L.USER, USER_ENV, observed.installed.get("user", {}), expected)
    return found


def _user_expected(lock: Lock) -> tuple[pip_lock.Component | None, dict[str, str]]:
    user = lock.components.get(USER_ENV)
    if not isinstance(user, pip_lock.Component):
        return None, {}
    arch = os.uname().machine
    targets = [t for t in user.applicable_targets(lock.targets) if t.arch == arch]
    return (user, locked(user, targets[0])) if targets else (None, {})


def admin_installed(layout: Layout) -> dict[str, str]:
    """The distributions of the user environment that the applied lock does not have and conda
    did not install (Miniforge's own packages say `conda` in their INSTALLER): an admin's
    `sudo -E pip install`, as TLJH's docs say. Kept by apply, listed by verify."""
    state = S.load(layout.state_dir)
    current = state.current_generation
    if current is None:
        return {}
    try:
        lock = lockfile.load(S.lock_copy(layout.state_dir, current.number))
    except TljhLockError:  # a damaged copy: verify reports it as drift
        return {}
    user, expected = _user_expected(lock)
    prefix = layout.path(L.USER)
    if user is None:
        return {}
    by_conda = {canonicalize_name(info.name[:-len(".dist-info")].rpartition("-")[0])
                for info in prefix.glob("lib/python3*/site-packages/*.dist-info")
                if _installer(info) == "conda"}
    return {name: version for name, version in unlocked(installed(prefix), expected).items()
            if name not in by_conda}


def _installer(info: Path) -> str | None:
    try:
        return (info / "INSTALLER").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def managed(layout: Layout) -> list[str]:
    """The files TLJH manages that are on this server: never compared, never rewritten."""
    found = [tljh.TRAEFIK_CONFIG, tljh.ACME, tljh.CONFIG_FILE]
    for directory in (tljh.RULES, L.CONFIG):
        root = layout.path(directory)
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = "/" + str(Path(dirpath, name).relative_to(layout.root))
                if path != render.TRAEFIK_ROUTE:
                    found.append(path)
    return sorted({p for p in found if layout.path(p).exists()})
