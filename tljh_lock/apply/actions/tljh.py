"""TLJH's own paths (apply/tljh.py), made as TLJH's installer makes them: its directories and
files with its modes, traefik's configuration rendered by TLJH's tljh.traefik from the hub
environment, and configurable-http-proxy's unit retired when the layout drops the proxy."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from tljh_lock.apply import admins as A
from tljh_lock.apply import layout as L
from tljh_lock.apply import tljh
from tljh_lock.apply.actions import system
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.steps import AdminsStep, HubBuild, PluginsStep, TraefikConfigStep
from tljh_lock.core.errors import InputError
from tljh_lock.core.files import write_atomic
from tljh_lock.core.runner import run
from tljh_lock.lock import plugins


def ensure_paths(layout: Layout) -> None:
    """Create what is missing, with TLJH's modes; tighten modes that let users in. Contents
    that exist are never touched."""
    for directory, mode in tljh.DIRECTORIES.items():
        path = layout.path(directory)
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        path.chmod(mode)
    log = layout.path(tljh.INSTALLER_LOG)
    log.touch(exist_ok=True)
    log.chmod(tljh.INSTALLER_LOG_MODE)
    for created, content in ((tljh.CONFIG_FILE, b"{}\n"),  # what TLJH's installer writes first
                             (tljh.API_SECRET, secrets.token_hex(32).encode())):
        target = layout.path(created)
        if target.exists():
            target.chmod(target.stat().st_mode & 0o7700)
        else:
            write_atomic(target, content, tljh.PRIVATE, exclusive=True)


def render_traefik(step: TraefikConfigStep, ctx: Context) -> None:
    state = ctx.layout.path(L.STATE)
    ctx.log(f"rendering traefik's configuration with TLJH's tljh.traefik ({step.python})")
    run([ctx.layout.path(step.python), "-c", tljh.RENDER, state], env=_env(ctx),
        what="rendering traefik's configuration with TLJH's tljh.traefik", tmpdir=ctx.scratch)
    write_atomic(ctx.layout.path(tljh.RENDERED_BY), step.key.encode(), tljh.PRIVATE,
                 exclusive=True)


def retire_proxy(ctx: Context) -> None:
    """Stopped first on a running system, then disabled, then its unit file removed."""
    if system.systemd_running(ctx.layout):
        run(["systemctl", "stop", tljh.PROXY_UNIT], what=f"stopping {tljh.PROXY_UNIT}",
            check=False, tmpdir=ctx.scratch)
    run(["systemctl", f"--root={ctx.layout.root.resolve()}", "disable", tljh.PROXY_UNIT],
        what=f"disabling {tljh.PROXY_UNIT}", tmpdir=ctx.scratch)
    ctx.layout.path(f"{L.UNIT_DIR}/{tljh.PROXY_UNIT}").unlink(missing_ok=True)


def ensure_admins(step: AdminsStep, ctx: Context) -> bool:
    """Whether anything changed: a name added to users.admin, or a password set."""
    result = run([ctx.layout.path(step.python), "-c", tljh.ADMINS], env=_env(ctx),
                 what="setting up TLJH's admins with TLJH's tljh.config", tmpdir=ctx.scratch,
                 stdin=A.stdin_payload(step.admins))
    done = json.loads(result.stdout.strip().splitlines()[-1])
    if done["added"]:
        ctx.log(f"added to users.admin: {', '.join(done['added'])}")
    if done["passwords"]:
        ctx.log(f"password set: {', '.join(done['passwords'])}")
    return bool(done["added"] or done["passwords"])


def _env(ctx: Context) -> dict[str, str]:
    # TLJH finds config/ and state/ through TLJH_INSTALL_PREFIX, as its own units set it.
    return {"TLJH_INSTALL_PREFIX": str(ctx.layout.path(L.PREFIX))}


def check_plugins(step: HubBuild, ctx: Context, path: Path) -> None:
    """Ask the plugins installed in the new hub environment `path` what they want (TLJH's
    plugin manager, as at update); refuse, by name, what the lock lacks. Said once: what the
    lock acknowledged as not installed."""
    result = run(plugins.ask_argv(path / "bin" / "python3"), env=_env(ctx), tmpdir=ctx.scratch,
                 what="asking the TLJH plugins' hooks what they want", cwd=ctx.scratch)
    asked = json.loads(result.stdout.strip().splitlines()[-1])
    problems = plugins.unlocked(asked, step.plugins, dict(step.hub_versions),
                                dict(step.user_versions) if step.user_versions is not None
                                else None)
    if problems:
        raise InputError("; ".join(problems), hint="add what they ask for to the recipes and "
                         "run `tljh-lock update` (it asks the plugins' hooks again)")
    for plugin in step.plugins:
        for what, items in (("apt packages", plugin.apt), ("conda packages", plugin.conda)):
            if items:
                ctx.log(f"plugin {plugin.name}: {what} {', '.join(items)} were not installed "
                        "(the recipe acknowledges the lock cannot install them)")


def run_plugin_hooks(step: PluginsStep, ctx: Context) -> bool:
    """Always a change (tljh_post_install acts on the server, whatever config.yaml shows);
    the step's key is recorded once the hooks ran."""
    result = run([ctx.layout.path(step.python), "-c", tljh.PLUGIN_HOOKS], env=_env(ctx),
                 what="running the TLJH plugins' tljh_config_post_install and "
                      "tljh_post_install", tmpdir=ctx.scratch, cwd=Path.cwd())
    done = json.loads(result.stdout.strip().splitlines()[-1])
    if done["config"]:
        ctx.log(f"the plugins' tljh_config_post_install changed {tljh.CONFIG_FILE}")
    write_atomic(ctx.layout.path(tljh.PLUGINS_RAN), step.key.encode(), tljh.PRIVATE)
    return True
