"""The files, groups and links around the installed environments: rendered from
`tljh_lock/templates/`, written atomically, each checked before it takes effect."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pkgutil
import secrets
import shutil
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.state import write_atomic
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.runner import run
from tljh_lock.store.cas import file_sha256

PROXY_ENV = f"{L.STATE}/proxy.env"
HUB_CONFIG = f"{L.STATE}/jupyterhub_config.py"
TRAEFIK_STATIC = f"{L.STATE}/traefik.toml"  # TLJH's, rendered by its tljh.traefik
# tljh-lock's route to configurable-http-proxy, in the directory TLJH's traefik.toml watches
TRAEFIK_ROUTE = f"{L.STATE}/rules/tljh-lock-proxy.toml"
# TLJH 2.0's own layout, where the hub drives traefik and there is no proxy of ours
TWO_UNITS = ("jupyterhub.service", "traefik.service")


@dataclass(frozen=True)
class RenderedFile:
    path: str  # absolute, on the installed system
    data: bytes
    mode: int
    check: str | None = None  # "sudoers": validated with visudo before it is moved into place


def template(name: str) -> str:
    data = pkgutil.get_data("tljh_lock", f"templates/{name}")  # works from the zipapp too
    assert data is not None, name
    return data.decode("utf-8")


def units(proxied: bool) -> tuple[str, ...]:
    """The units of the layout: with configurable-http-proxy behind traefik (the seed's three),
    or TLJH 2.0's two."""
    return L.UNITS if proxied else TWO_UNITS


def render_all(proxied: bool = True) -> list[RenderedFile]:
    """Every rendered file. They name only the stable paths (/opt/tljh/hub, ...), so that a new
    generation changes them only when the templates change."""
    values = {
        "prefix": L.PREFIX, "state": L.STATE, "hub": L.HUB, "node": L.NODE, "proxy": L.PROXY,
        "proxy_env": PROXY_ENV, "hub_config": HUB_CONFIG, "traefik_static": TRAEFIK_STATIC,
        "http_port": str(L.HTTP_PORT), "proxy_port": str(L.PROXY_PORT),
        "proxy_api_port": str(L.PROXY_API_PORT), "hub_port": str(L.HUB_PORT),
        "admins": L.ADMINS_GROUP,
    }

    def render(name: str) -> bytes:
        return string.Template(template(name)).substitute(values).encode("utf-8")

    if proxied:
        files = [RenderedFile(f"{L.UNIT_DIR}/{unit}", render(unit), 0o644) for unit in L.UNITS]
        files.append(RenderedFile(TRAEFIK_ROUTE, render("traefik-rules.toml"), 0o600))
        hub_config = render("jupyterhub_config.py") + render("jupyterhub_config-chp.py")
    else:
        files = [RenderedFile(f"{L.UNIT_DIR}/jupyterhub.service",
                              render("jupyterhub.traefik_file.service"), 0o644),
                 RenderedFile(f"{L.UNIT_DIR}/traefik.service", render("traefik.service"),
                              0o644)]
        hub_config = render("jupyterhub_config.py")
    files += [
        RenderedFile(HUB_CONFIG, hub_config, 0o644),
        RenderedFile(L.SUDOERS, render("sudoers"), 0o440, check="sudoers"),
    ]
    return sorted(files, key=lambda f: f.path)


def file_matches(layout: Layout, file: RenderedFile) -> bool:
    """The file is in place with its contents and mode."""
    target = layout.path(file.path)
    try:
        return ((target.stat().st_mode & 0o7777) == file.mode
                and file_sha256(target) == hashlib.sha256(file.data).hexdigest())
    except FileNotFoundError:
        return False


def visudo(layout: Layout) -> str:
    """The server's own visudo when installing into it, else this machine's."""
    own = layout.path("/usr/sbin/visudo")
    if layout.is_live or not own.exists():
        found = shutil.which("visudo", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if found is None:
            raise TljhLockError("visudo not found: the sudoers file cannot be checked",
                                hint="install sudo (TLJH's admins need it)")
        return found
    return str(own)


def install_file(layout: Layout, file: RenderedFile) -> None:
    target = layout.path(file.path)
    if file.check != "sudoers":
        write_atomic(target, file.data, file.mode)
        return
    # sudo skips names with a dot in /etc/sudoers.d: a broken file never takes effect.
    tmp = target.with_name(f".{target.name}.tljh-lock-new")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(tmp, file.data, file.mode)
    try:
        run([visudo(layout), "-cs", "-f", tmp], what=f"checking {file.path}")
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def replace_symlink(layout: Layout, link: str, target: str) -> None:
    """Point `link` at `target` with one rename: there is no moment without a link."""
    path = layout.path(link)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tljh-lock-new")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def read_link(layout: Layout, link: str) -> str | None:
    try:
        return os.readlink(layout.path(link))
    except (FileNotFoundError, OSError):
        return None


def ensure_proxy_token(layout: Layout) -> bool:
    """Generate the proxy's auth token once, root-only; True if it was created now."""
    path = layout.path(PROXY_ENV)
    if path.exists():
        return False
    write_atomic(path, f"CONFIGPROXY_AUTH_TOKEN={secrets.token_hex(32)}\n".encode(), 0o600)
    return True


GROUP = "/etc/group"
GSHADOW = "/etc/gshadow"
_SHADOW_BASES = ("group", "gshadow")


def _names(path: Path) -> set[str] | None:
    """The names in a group-style file; None where the file does not exist."""
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


def group_complete(layout: Layout, name: str) -> bool:
    """In /etc/group, in /etc/gshadow where the system keeps one, and no residue of a killed
    groupadd. The grp module would answer for this machine, not for --root."""
    shadow = _names(layout.path(GSHADOW))
    return (name in (_names(layout.path(GROUP)) or set())
            and (shadow is None or name in shadow) and not shadow_residue(layout))


@contextmanager
def _account_lock(layout: Layout) -> Iterator[None]:
    """lckpwdf(3)'s lock, which shadow's tools take on the live system (not with --prefix)."""
    if not layout.is_live:
        yield
        return
    fd = os.open("/etc/.pwd.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_group(layout: Layout, name: str) -> None:
    """Add the group with the system's groupadd, completing what a killed one left: its
    residue goes, and a group it wrote to /etc/group but not yet to /etc/gshadow gets the
    gshadow entry (and backup) groupadd would have written."""
    with _account_lock(layout):
        for path in shadow_residue(layout):
            path.unlink(missing_ok=True)
    if name not in (_names(layout.path(GROUP)) or set()):
        argv = ["groupadd"]
        if not layout.is_live:
            layout.path("/etc").mkdir(parents=True, exist_ok=True)  # groupadd creates the files
            argv += ["--prefix", str(layout.root.resolve())]
        run([*argv, name], what=f"adding group {name}")
    with _account_lock(layout):
        path = layout.path(GSHADOW)
        shadow = _names(path)
        if shadow is None or name in shadow:
            return
        old = path.read_bytes()
        owner = path.stat()
        entry = f"{name}:!::\n".encode()
        new = old + (b"\n" if old and not old.endswith(b"\n") else b"") + entry
        keep = (owner.st_mode & 0o7777, (owner.st_uid, owner.st_gid))
        write_atomic(path.with_name(f"{path.name}-"), old, keep[0], owner=keep[1])
        write_atomic(path, new, keep[0], owner=keep[1])


def enable_units(layout: Layout, names: tuple[str, ...]) -> None:
    run(["systemctl", f"--root={layout.root.resolve()}", "enable", *names],
        what="enabling the units")


def systemd_running(layout: Layout) -> bool:
    return layout.is_live and Path("/run/systemd/system").is_dir()


def restart_units(units: list[str]) -> None:
    run(["systemctl", "daemon-reload"], what="reloading systemd")
    for unit in units:
        run(["systemctl", "restart", unit], what=f"restarting {unit}")
