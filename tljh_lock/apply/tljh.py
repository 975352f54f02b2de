"""What TLJH itself keeps below /opt/tljh, made the way TLJH's installer makes it, so that TLJH's
own tools (`tljh-config`) find the server they expect:

- TLJH's directories with TLJH's modes: state/ and config/ 0700 (the hub's database, its
  secrets and the admin's settings live there), config/jupyterhub_config.d,
  config/traefik_config.d and state/rules 0700;
- installer.log 0500 (as TLJH's bootstrap leaves it; tljh-config's logger appends to it);
- config/config.yaml, written `{}` with mode 0600 when there is none: tljh-config rewrites the
  file in place, so what an admin sets there (authenticator secrets) stays root's;
- state/traefik-api.secret, the traefik API password TLJH's hub configuration reads, made once.

Contents that exist are TLJH's and the admin's: apply creates what is missing and never
rewrites it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.state import write_atomic
from tljh_lock.apply.steps import Context, Step, hash_of

INSTALLER_LOG = f"{L.PREFIX}/installer.log"
CONFIG_FILE = f"{L.CONFIG}/config.yaml"
RULES = f"{L.STATE}/rules"
API_SECRET = f"{L.STATE}/traefik-api.secret"

# TLJH's modes (its installer, bootstrap and tljh.traefik)
DIRECTORIES = {L.STATE: 0o700, L.CONFIG: 0o700, f"{L.CONFIG}/jupyterhub_config.d": 0o700,
               f"{L.CONFIG}/traefik_config.d": 0o700, RULES: 0o700}
INSTALLER_LOG_MODE = 0o500
PRIVATE = 0o600  # config.yaml, the API secret


def _mode(path: Path) -> int | None:
    try:
        return path.lstat().st_mode & 0o7777
    except FileNotFoundError:
        return None


def _problems(layout: Layout) -> list[str]:
    """What is not as TLJH keeps it; empty when everything is."""
    found = []
    for directory, mode in DIRECTORIES.items():
        if _mode(layout.path(directory)) != mode:
            found.append(f"{directory} mode {mode:04o}")
    if _mode(layout.path(INSTALLER_LOG)) != INSTALLER_LOG_MODE:
        found.append(f"{INSTALLER_LOG} mode {INSTALLER_LOG_MODE:04o}")
    for path in (CONFIG_FILE, API_SECRET):
        mode = _mode(layout.path(path))
        if mode is None or mode & 0o077:
            found.append(f"{path} readable by root only")
    return found


def ensure_paths(layout: Layout) -> None:
    """Create what is missing, with TLJH's modes; tighten modes that let users in. Contents
    that exist are never touched."""
    for directory, mode in DIRECTORIES.items():
        path = layout.path(directory)
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        path.chmod(mode)
    log = layout.path(INSTALLER_LOG)
    log.touch(exist_ok=True)
    log.chmod(INSTALLER_LOG_MODE)
    for path, content in ((CONFIG_FILE, b"{}\n"),  # what TLJH's installer writes at first
                          (API_SECRET, secrets.token_hex(32).encode())):
        target = layout.path(path)
        if target.exists():
            target.chmod(_mode(target) & ~0o077)  # type: ignore[operator]
        else:
            write_atomic(target, content, PRIVATE)


@dataclass
class PathsStep(Step):
    def execute(self, ctx: Context) -> None:
        ensure_paths(ctx.layout)


def paths_step(layout: Layout) -> Step:
    """TLJH's directories and files, first: what apply writes below them gets their modes."""
    return PathsStep(
        id="tljh-paths", summary="TLJH's directories and files with TLJH's modes (state and "
        "config 0700, installer.log 0500, config.yaml and traefik-api.secret 0600)",
        key=hash_of("tljh-paths", *(f"{d} {m:o}" for d, m in sorted(DIRECTORIES.items()))),
        done=not _problems(layout))
