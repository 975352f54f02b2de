"""The system around the environments: rendered files written atomically (sudoers checked by
visudo before it takes effect), the groups, the proxy's token, the units enabled and
restarted."""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import GROUP, GSHADOW, group_names, shadow_residue
from tljh_lock.apply.render import PROXY_ENV, RenderedFile
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.files import write_atomic
from tljh_lock.core.runner import run


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


def install_file(layout: Layout, file: RenderedFile, scratch: Path | None) -> None:
    target = layout.path(file.path)
    if file.check != "sudoers":
        write_atomic(target, file.data, file.mode, exclusive=True)
        return
    # sudo skips names with a dot in /etc/sudoers.d: a broken file never takes effect.
    tmp = target.with_name(f".{target.name}.tljh-lock-new")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(tmp, file.data, file.mode, exclusive=True)
    try:
        run([visudo(layout), "-cs", "-f", tmp], what=f"checking {file.path}", tmpdir=scratch)
        if os.geteuid() == 0:
            os.chown(tmp, 0, 0)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_proxy_token(layout: Layout) -> None:
    """Generate the proxy's auth token once, root-only."""
    path = layout.path(PROXY_ENV)
    if not path.exists():
        write_atomic(path, f"CONFIGPROXY_AUTH_TOKEN={secrets.token_hex(32)}\n".encode(), 0o600,
                     exclusive=True)


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


def ensure_group(layout: Layout, name: str, scratch: Path | None = None) -> None:
    """Add the group with the system's groupadd, completing what a killed one left: its
    residue goes, and a group it wrote to /etc/group but not yet to /etc/gshadow gets the
    gshadow entry (and backup) groupadd would have written."""
    with _account_lock(layout):
        for path in shadow_residue(layout):
            path.unlink(missing_ok=True)
    if name not in (group_names(layout.path(GROUP)) or set()):
        argv = ["groupadd"]
        if not layout.is_live:
            layout.path("/etc").mkdir(parents=True, exist_ok=True)  # groupadd creates the files
            argv += ["--prefix", str(layout.root.resolve())]
        run([*argv, name], what=f"adding group {name}", tmpdir=scratch)
    with _account_lock(layout):
        path = layout.path(GSHADOW)
        shadow = group_names(path)
        if shadow is None or name in shadow:
            return
        old = path.read_bytes()
        owner = path.stat()
        entry = f"{name}:!::\n".encode()
        new = old + (b"\n" if old and not old.endswith(b"\n") else b"") + entry
        keep = (owner.st_mode & 0o7777, (owner.st_uid, owner.st_gid))
        write_atomic(path.with_name(f"{path.name}-"), old, keep[0], owner=keep[1], exclusive=True)
        write_atomic(path, new, keep[0], owner=keep[1], exclusive=True)


def enable_units(layout: Layout, units: tuple[str, ...], scratch: Path | None) -> None:
    run(["systemctl", f"--root={layout.root.resolve()}", "enable", *units],
        what="enabling the units", tmpdir=scratch)


def systemd_running(layout: Layout) -> bool:
    return layout.is_live and Path("/run/systemd/system").is_dir()


def restart_units(units: list[str], scratch: Path | None) -> None:
    run(["systemctl", "daemon-reload"], what="reloading systemd", tmpdir=scratch)
    for unit in units:
        run(["systemctl", "restart", unit], what=f"restarting {unit}", tmpdir=scratch)
