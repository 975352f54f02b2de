"""What TLJH itself keeps below /opt/tljh, made the way TLJH's installer makes it, so that TLJH's
own tools (`tljh-config`, `tljh-config reload proxy`) find the server they expect:

- TLJH's directories with TLJH's modes: state/ and config/ 0700 (the hub's database, its
  secrets and the admin's settings live there), config/jupyterhub_config.d,
  config/traefik_config.d and state/rules 0700;
- installer.log 0500 (as TLJH's bootstrap leaves it; tljh-config's logger appends to it);
- config/config.yaml, written `{}` with mode 0600 when there is none: tljh-config rewrites the
  file in place, so what an admin sets there (authenticator secrets) stays root's;
- state/traefik-api.secret, the traefik API password TLJH's hub configuration reads, made once
  (in TLJH 2.0's two-unit layout the hub gives it to traefik);
- traefik's configuration, rendered by TLJH's own `tljh.traefik.ensure_traefik_config` run
  with the hub environment's python, exactly as TLJH's installer and `tljh-config reload proxy`
  render it (state/traefik.toml, state/rules/dynamic.toml and rules.toml, state/acme.json);
- with configurable-http-proxy, tljh-lock's own route to it is a rendered file of state/rules
  (system_files; traefik watches the directory, TLJH's reload leaves the file alone).

What TLJH manages (traefik.toml, the rest of rules/, config/, acme.json) is TLJH's and the
admin's: apply creates what is missing and never rewrites it, `verify` does not compare it.
A layout without configurable-http-proxy is TLJH 2.0's own: two units, the hub driving traefik
(`proxy_class = "traefik_file"`); moving to it retires the proxy's unit, as TLJH's installer
does.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply import system_files
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.state import write_atomic
from tljh_lock.apply.steps import Context, Step, hash_of
from tljh_lock.core.runner import run

INSTALLER_LOG = f"{L.PREFIX}/installer.log"
CONFIG_FILE = f"{L.CONFIG}/config.yaml"
RULES = f"{L.STATE}/rules"
TRAEFIK_CONFIG = f"{L.STATE}/traefik.toml"
ACME = f"{L.STATE}/acme.json"
API_SECRET = f"{L.STATE}/traefik-api.secret"
# which hub environment's TLJH rendered traefik's configuration (the step's key)
RENDERED_BY = f"{L.STATE}/tljh-lock-traefik.key"
PROXY_UNIT = "configurable-http-proxy.service"

# TLJH's modes (its installer, bootstrap and tljh.traefik)
DIRECTORIES = {L.STATE: 0o700, L.CONFIG: 0o700, f"{L.CONFIG}/jupyterhub_config.d": 0o700,
               f"{L.CONFIG}/traefik_config.d": 0o700, RULES: 0o700}
INSTALLER_LOG_MODE = 0o500
PRIVATE = 0o600  # config.yaml, the API secret, traefik's files

_RENDER = ("import sys\n"
           "from tljh.traefik import ensure_traefik_config\n"
           "ensure_traefik_config(sys.argv[1])\n")


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


@dataclass
class TraefikConfigStep(Step):
    """TLJH renders traefik's configuration, with the hub environment's python."""

    python: str = ""  # below --root

    def execute(self, ctx: Context) -> None:
        state = ctx.layout.path(L.STATE)
        ctx.log(f"rendering traefik's configuration with TLJH's tljh.traefik ({self.python})")
        # TLJH finds config/ through TLJH_INSTALL_PREFIX, as its own units set it.
        run([ctx.layout.path(self.python), "-c", _RENDER, state],
            env={"TLJH_INSTALL_PREFIX": str(ctx.layout.path(L.PREFIX))},
            what="rendering traefik's configuration with TLJH's tljh.traefik")
        write_atomic(ctx.layout.path(RENDERED_BY), self.key.encode(), PRIVATE)


def _rendered_with(layout: Layout, key: str) -> bool:
    try:
        return (layout.path(RENDERED_BY).read_text() == key
                and layout.path(TRAEFIK_CONFIG).exists())
    except FileNotFoundError:
        return False


@dataclass
class RetireProxyStep(Step):
    """Leaving the three-unit layout: configurable-http-proxy's unit goes, as TLJH's installer
    removes it (stopped and disabled first on a running system)."""

    def execute(self, ctx: Context) -> None:
        if system_files.systemd_running(ctx.layout):
            run(["systemctl", "stop", PROXY_UNIT], what=f"stopping {PROXY_UNIT}", check=False)
        run(["systemctl", f"--root={ctx.layout.root.resolve()}", "disable", PROXY_UNIT],
            what=f"disabling {PROXY_UNIT}")
        ctx.layout.path(f"{L.UNIT_DIR}/{PROXY_UNIT}").unlink(missing_ok=True)


def paths_step(layout: Layout) -> Step:
    """TLJH's directories and files, first: what apply writes below them gets their modes."""
    return PathsStep(
        id="tljh-paths", summary="TLJH's directories and files with TLJH's modes (state and "
        "config 0700, installer.log 0500, config.yaml and traefik-api.secret 0600)",
        key=hash_of("tljh-paths", *(f"{d} {m:o}" for d, m in sorted(DIRECTORIES.items()))),
        done=not _problems(layout))


def steps(layout: Layout, dirs: dict[str, str]) -> list[Step]:
    """traefik's configuration rendered by TLJH; the proxy's unit retired without the proxy."""
    render_key = hash_of("tljh-traefik", dirs["hub"])
    found: list[Step] = [TraefikConfigStep(
        id="tljh-traefik", summary=f"traefik's configuration rendered by TLJH "
        f"(tljh.traefik of {L.PREFIX}/{dirs['hub']})", key=render_key,
        done=_rendered_with(layout, render_key),
        # TLJH's render empties rules/rules.toml, where its hub keeps its routes: without the
        # proxy the hub restarts too and writes them again, as after TLJH's installer
        restarts=("traefik.service",) if "proxy" in dirs else ("traefik.service",
                                                                "jupyterhub.service"),
        python=f"{L.PREFIX}/{dirs['hub']}/bin/python3")]
    if "proxy" not in dirs and layout.path(f"{L.UNIT_DIR}/{PROXY_UNIT}").exists():
        found.append(RetireProxyStep(id=f"retire:{PROXY_UNIT}", summary=f"remove {PROXY_UNIT} "
                                     "(TLJH's two-unit layout has no proxy of its own)",
                                     key=hash_of("retire", PROXY_UNIT), done=False))
    return found


def managed(layout: Layout) -> list[str]:
    """The files TLJH manages that are on this server: never compared, never rewritten."""
    found = [TRAEFIK_CONFIG, ACME, CONFIG_FILE]
    for directory in (RULES, L.CONFIG):
        root = layout.path(directory)
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = "/" + str(Path(dirpath, name).relative_to(layout.root))
                if path != system_files.TRAEFIK_ROUTE:
                    found.append(path)
    return sorted({p for p in found if layout.path(p).exists()})
