"""The side effects of an apply, one module per kind of work: venv and wheel_install (python
environments and the locked wheels in them), npm (the proxy's tree), unpack (release tarballs),
system (files, groups, token, units), tljh (TLJH's own paths, traefik's configuration rendered
by TLJH). `execute` makes a step done; each action is safe to repeat after an interruption. May
import apply's data modules, store/, lock/ and core/ (every subprocess through core/runner.py,
with the run's scratch as its TMPDIR)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply import steps as S
from tljh_lock.apply import tree
from tljh_lock.apply.actions import npm, system, tljh, unpack
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.observe import MARKER
from tljh_lock.apply.state import lock_copy
from tljh_lock.core.files import swap_link, write_atomic


def execute(step: S.Step, ctx: Context) -> bool:
    """Make `step` done; False when it found everything in place and changed nothing."""
    if isinstance(step, S.AdminsStep):
        return tljh.ensure_admins(step, ctx)
    if isinstance(step, S.PluginsStep):
        return tljh.run_plugin_hooks(step, ctx)
    if isinstance(step, S.HubBuild):
        # The plugins' hooks are asked while the tree is walked: their python's start and
        # imports (a tenth of a second) on the other core, not after the walk on this one.
        _build(step, ctx, lambda path: _build_hub(step, ctx, path),
               (lambda path: tljh.check_plugins(step, ctx, path)) if step.plugins else None)
    elif isinstance(step, S.UnpackBuild):
        _build(step, ctx, lambda path: unpack.build_release(step, ctx, path))
    elif isinstance(step, S.ProxyBuild):
        _build(step, ctx, lambda path: npm.build_proxy(step, ctx, path))
    elif isinstance(step, S.UserEnvStep):
        from tljh_lock.apply.actions import venv  # imported when used: see _build_hub
        venv.install_user_env(step, ctx)
    elif isinstance(step, S.FileStep):
        assert step.file is not None
        system.install_file(ctx.layout, step.file, ctx.scratch)
    elif isinstance(step, S.GroupStep):
        system.ensure_group(ctx.layout, step.name, ctx.scratch)
    elif isinstance(step, S.TokenStep):
        system.ensure_proxy_token(ctx.layout)
    elif isinstance(step, S.LinkStep):
        swap_link(ctx.layout.path(step.link), step.target)
    elif isinstance(step, S.EnableStep):
        system.enable_units(ctx.layout, step.units, ctx.scratch)
    elif isinstance(step, S.PathsStep):
        tljh.ensure_paths(ctx.layout)
    elif isinstance(step, S.TraefikConfigStep):
        tljh.render_traefik(step, ctx)
    elif isinstance(step, S.RetireProxyStep):
        tljh.retire_proxy(ctx)
    elif isinstance(step, S.LockCopyStep):
        write_atomic(lock_copy(ctx.layout.state_dir, step.number), ctx.lock_bytes,
                     exclusive=True)
    else:
        raise AssertionError(f"no action for {type(step).__name__}")
    return True


def _build_hub(step: S.HubBuild, ctx: Context, path: Path) -> Mapping[str, str]:
    # Imported when an environment is built: with the installer and the email parser, venv
    # costs a no-op apply's start 30 ms.
    from tljh_lock.apply.actions import venv
    return venv.build_hub(step, ctx, path)


def _build(step: S.BuildStep, ctx: Context,
           build: Callable[[Path], Mapping[str, str] | None],
           check: Callable[[Path], None] | None = None) -> None:
    """Build the step's directory afresh (one left by an interrupted run goes first), and mark
    it complete last, once `check` (of the built directory, while it is walked and hashed)
    passed; `build` may return the sha256 of files it knows, for the tree hash."""
    path = ctx.layout.path(f"{L.PREFIX}/{step.directory}")
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        known = build(path)
        if check is None:
            built = tree.Built(tree.walk(path), known or {})
        else:
            # a thread: the check is a subprocess to wait for (no worker process is left to
            # fork by now)
            with ThreadPoolExecutor(1) as thread:
                checked = thread.submit(check, path)
                built = tree.Built(tree.walk(path), known or {})
                checked.result()
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    (path / MARKER).write_text(step.key)
    built.add(tree.entry(path, MARKER))
    ctx.trees[step.directory] = built.seen()
