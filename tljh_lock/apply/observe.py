"""Every read of the server that planning needs, in one place: what `plan` decides from.

`observe(layout)` looks at the state file, the built directories' markers and trees (hashed
again only when their stat signature moved, tree.py), the distributions of the user environment
and of a built hub environment whose tree changed, the kept copy of the current generation's
lock, the rendered files' hashes and modes, the links, the groups (and what a killed groupadd
left in /etc), the proxy token, the enabled units and TLJH's own paths (their modes, which TLJH
rendered traefik's configuration, whether the proxy's unit is there). `probe` asks the
server's python3 what it is. Nothing here changes anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from tljh_lock.apply import layout as L
from tljh_lock.apply import state as S
from tljh_lock.apply import tljh
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.render import PROXY_ENV, render_all
from tljh_lock.apply.tree import Seen, seen
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.files import file_sha256
from tljh_lock.core.runner import run

MARKER = ".tljh-lock-key"  # written last into a built directory: its presence means complete
BUILT_ROLES = ("hub", "node", "proxy")  # built beside each other as <role>.<key>[.<n>]
LINKS = (L.HUB, L.NODE, L.PROXY, L.TLJH_CONFIG_LINK)
GROUP = "/etc/group"
GSHADOW = "/etc/gshadow"
_SHADOW_BASES = ("group", "gshadow")

# What probe asks an interpreter, as an expression of `platform` and `sys`.
_FACTS = ("{'version': platform.python_version(), 'machine': platform.machine(), "
          "'libc': platform.libc_ver(), 'implementation': sys.implementation.name}")


@dataclass(frozen=True)
class Observed:
    state: S.State
    markers: dict[str, str]  # directory below /opt/tljh (hub.<key>, user) -> its marker
    files: dict[str, tuple[str, int]]  # rendered file present -> (sha256, permission bits)
    links: dict[str, str]  # link present -> where it points
    groups: frozenset[str]  # names in /etc/group
    gshadow: frozenset[str] | None  # names in /etc/gshadow; None where the system has none
    residue: tuple[Path, ...]  # what a killed groupadd left (see `shadow_residue`)
    token: bool  # the proxy's auth token exists
    enabled: frozenset[str]  # units with a multi-user.target.wants link
    tljh_paths: tuple[str, ...]  # what of TLJH's paths is not as TLJH keeps it
    traefik_rendered_by: str | None  # the key of the render of the traefik.toml in place
    proxy_unit: bool  # configurable-http-proxy's unit file is there
    # "user", and a built hub directory whose tree is not as built -> canonical name -> version
    installed: dict[str, dict[str, str]] = field(default_factory=dict)
    lock_copy: str | None = None  # sha256 of the current generation's kept lock; None: missing
    # marked built directories -> their trees now: only those `with_trees` was asked for
    trees: dict[str, Seen] = field(default_factory=dict)
    plugins_done: str | None = None  # the key of the plugins' hooks last run


def observe(layout: Layout) -> Observed:
    """Everything but the built directories' trees: `with_trees` adds those a plan may use
    (hashing every kept generation's would cost a no-op apply more than it may take)."""
    state = S.load(layout.state_dir)
    return Observed(
        state=state,
        markers=_markers(layout),
        files=_files(layout),
        links={link: target for link in LINKS
               for target in [read_link(layout, link)] if target is not None},
        groups=frozenset(group_names(layout.path(GROUP)) or ()),
        gshadow=_frozen(group_names(layout.path(GSHADOW))),
        residue=tuple(shadow_residue(layout)),
        token=layout.path(PROXY_ENV).exists(),
        enabled=frozenset(unit for unit in L.UNITS if layout.path(
            f"{L.UNIT_DIR}/multi-user.target.wants/{unit}").is_symlink()),
        tljh_paths=tuple(_tljh_paths(layout)),
        traefik_rendered_by=_rendered_by(layout),
        proxy_unit=layout.path(f"{L.UNIT_DIR}/{tljh.PROXY_UNIT}").exists(),
        installed={"user": installed(layout.path(L.USER))},
        lock_copy=_lock_copy(layout, state),
        plugins_done=_read(layout, tljh.PLUGINS_RAN),
    )


def with_trees(layout: Layout, observed: Observed, keys: Collection[str]) -> Observed:
    """`observed` with the trees of the built directories marked with one of `keys` (from
    the cache where their signature is the one it holds), and the distributions of a hub
    environment among them whose tree is not as built."""
    cache = S.load_seen(layout.state_dir)
    trees = {name: seen(layout.path(f"{L.PREFIX}/{name}"), cache.get(name))
             for name, marker in observed.markers.items()
             if marker in keys and name.partition(".")[0] in BUILT_ROLES and "." in name}
    found = dict(observed.installed)
    for name, tree in trees.items():
        if name.startswith("hub.") and tree.tree != observed.state.trees.get(name, tree.tree):
            found[name] = installed(layout.path(f"{L.PREFIX}/{name}"))
    return dataclasses.replace(observed, trees=trees, installed=found)


def installed(prefix: Path) -> dict[str, str]:
    """Canonical name -> version of every distribution in the prefix's site-packages, from
    the names of its `<name>-<version>.dist-info` directories (as pip names them, from the
    wheel's file name): reading every METADATA of a user environment costs a no-op apply
    0.2 s. A METADATA edited to another version changes the hub's tree, which is hashed."""
    found: dict[str, str] = {}
    for site in sorted(prefix.glob("lib/python3*/site-packages")):
        with os.scandir(site) as it:
            names = sorted(entry.name for entry in it if entry.name.endswith(".dist-info"))
        for name in names:
            project, _, version = name[:-len(".dist-info")].rpartition("-")
            if project and version:
                found[canonicalize_name(project)] = version
    return found


def _lock_copy(layout: Layout, state: S.State) -> str | None:
    current = state.current_generation
    if current is None:
        return None
    try:
        return file_sha256(S.lock_copy(layout.state_dir, current.number))
    except FileNotFoundError:
        return None


def _read(layout: Layout, path: str) -> str | None:
    try:
        return layout.path(path).read_text()
    except FileNotFoundError:
        return None


def mode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode & 0o7777
    except FileNotFoundError:
        return None


def _tljh_paths(layout: Layout) -> list[str]:
    """What is not as TLJH keeps it; empty when everything is."""
    found = []
    for directory, wanted in tljh.DIRECTORIES.items():
        if mode(layout.path(directory)) != wanted:
            found.append(f"{directory} mode {wanted:04o}")
    if mode(layout.path(tljh.INSTALLER_LOG)) != tljh.INSTALLER_LOG_MODE:
        found.append(f"{tljh.INSTALLER_LOG} mode {tljh.INSTALLER_LOG_MODE:04o}")
    for path in tljh.CREATED:
        have = mode(layout.path(path))
        if have is None or have & 0o077:
            found.append(f"{path} readable by root only")
    return found


def _rendered_by(layout: Layout) -> str | None:
    """The key TLJH's render recorded, while the traefik.toml it wrote is there."""
    key = _read(layout, tljh.RENDERED_BY)
    return key if layout.path(tljh.TRAEFIK_CONFIG).exists() else None


def _markers(layout: Layout) -> dict[str, str]:
    found = {}
    prefix = layout.path(L.PREFIX)
    for path in sorted(prefix.iterdir()) if prefix.is_dir() else ():
        try:
            found[path.name] = (path / MARKER).read_text()
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def _files(layout: Layout) -> dict[str, tuple[str, int]]:
    found = {}
    for path in sorted({f.path for proxied in (True, False) for f in render_all(proxied)}):
        target = layout.path(path)
        try:
            found[path] = (file_sha256(target), target.stat().st_mode & 0o7777)
        except FileNotFoundError:
            continue
    return found


def read_link(layout: Layout, link: str) -> str | None:
    try:
        return os.readlink(layout.path(link))
    except (FileNotFoundError, OSError):
        return None


def _frozen(names: set[str] | None) -> frozenset[str] | None:
    return None if names is None else frozenset(names)


def group_names(path: Path) -> set[str] | None:
    """The names in a group-style file; None where the file does not exist. (The grp module
    would answer for this machine, not for --root.)"""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed process stays a zombie until its parent (or init) reaps it; kill(pid, 0) still
    # finds it, but it holds nothing.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:][:1] != "Z"


def _pid_in(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def shadow_residue(layout: Layout) -> list[Path]:
    """What a groupadd killed midway leaves in /etc: `group.<pid>` (made before it links
    `group.lock`), a stale `group.lock`, an unrenamed `group+`, and the same for gshadow.
    shadow clears a stale `.lock` only when it runs again, and the others never; a group
    that was complete by then would keep them forever. Only files proven stale are named:
    a lock whose process is alive (or whose content is not a pid) is left alone."""
    etc = layout.path("/etc")
    found: list[Path] = []
    for base in _SHADOW_BASES:
        lock = etc / f"{base}.lock"
        holder = _pid_in(lock)
        stale_lock = holder is not None and not _alive(holder)
        if stale_lock:
            found.append(lock)
        if (etc / f"{base}+").exists() and (stale_lock or not lock.exists()):
            found.append(etc / f"{base}+")
        for path in etc.glob(f"{base}.*"):
            pid = path.name[len(base) + 1:]
            if pid.isdigit() and not _alive(int(pid)):
                found.append(path)
    return sorted(found)


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # X.Y.Z
    arch: str
    glibc: str  # X.Y

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


def probe(python: str) -> Interpreter:
    """What `python` is. The interpreter running this, named by its path, is asked
    in-process (a second one's start costs a no-op apply a tenth of its time): the answers
    are the binary's own. A bare name is found on the runner's PATH, not this process's."""
    if os.path.isabs(python) and os.path.realpath(python) == os.path.realpath(sys.executable):
        data = eval(_FACTS, {"platform": platform, "sys": sys})  # noqa: S307 (our constant)
    else:
        data = json.loads(run([python, "-c", f"import json, platform, sys; print(json.dumps("
                               f"{_FACTS}))"], what=f"asking {python} what it is").stdout)
    libc, libc_version = data["libc"]
    if data["implementation"] != "cpython" or libc != "glibc":
        raise TljhLockError(f"{python} is {data['implementation']} on {libc or 'no libc'}; "
                            "the lock is for CPython on glibc")
    interp = Interpreter(python, data["version"], data["machine"],
                         ".".join(libc_version.split(".")[:2]))
    if interp.minor < (3, 9):
        raise TljhLockError(f"{python} is python {interp.version}; TLJH needs 3.9 or later")
    return interp
