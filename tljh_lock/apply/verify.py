"""`verify`: drift between what the state says was applied and what is on disk: the rendered
files' hashes and modes, the groups, token, links, units and TLJH's modes, the built
directories' contents, the user environment's marker, the kept copy of the applied lock, and
every locked distribution of the hub and user environments at its version. The files TLJH
manages (`managed`) are the admin's: listed, never compared."""

from __future__ import annotations

import os
from pathlib import Path

from tljh_lock.apply import distributions, render, tljh
from tljh_lock.apply import layout as L
from tljh_lock.apply import state as S
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import MARKER, observe
from tljh_lock.apply.plan import system_steps
from tljh_lock.apply.steps import FileStep
from tljh_lock.apply.tree import directory_hash
from tljh_lock.core.files import file_sha256
from tljh_lock.lock import file as lockfile


def verify(layout: Layout) -> list[str]:
    """Drift between what the state says was applied and what is on disk."""
    state = S.load(layout.state_dir)
    current = state.current_generation
    if current is None:
        return ["nothing has been applied here"]
    problems = []
    for installed, recorded in sorted(state.files.items()):
        target = layout.path(installed)
        try:
            mode = f"{target.stat().st_mode & 0o7777:04o}"
            digest = file_sha256(target)
        except FileNotFoundError:
            problems.append(f"{installed}: missing")
            continue
        if digest != recorded["sha256"]:
            problems.append(f"{installed}: sha256 {digest}, applied {recorded['sha256']}")
        if mode != recorded["mode"]:
            problems.append(f"{installed}: mode {mode}, applied {recorded['mode']}")
    for step in system_steps(observe(layout), current.dirs):
        if not step.done and not isinstance(step, FileStep):
            problems.append(f"{step.summary}: not in place")
    for directory in sorted(current.dirs.values()):
        path = layout.path(f"{L.PREFIX}/{directory}")
        if not path.is_dir():
            problems.append(f"{L.PREFIX}/{directory}: missing")
            continue
        actual = directory_hash(path)
        if actual != state.trees.get(directory):
            problems.append(f"{L.PREFIX}/{directory}: contents changed since it was built "
                            f"({actual}, built {state.trees.get(directory)})")
    user_key = state.steps.get("user-env")
    if user_key is not None:
        marker = layout.path(L.USER) / MARKER
        if not marker.exists() or marker.read_text() != user_key:
            problems.append(f"{L.USER}: not the user environment that was applied")
    copy = S.lock_copy(layout.state_dir, current.number)
    if not copy.exists() or file_sha256(copy) != current.lock_sha256:
        problems.append(f"{copy}: missing or not the applied lock")
    else:
        problems += distributions.environment_problems(layout, lockfile.load(copy), current.dirs)
    return problems


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
