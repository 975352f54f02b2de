"""configurable-http-proxy: `npm ci --offline` of the locked package-lock, run by the locked
Node.js, from an npm cache that holds only the locked tarballs (each verified by sha256 first;
npm checks their sha512 integrity again)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.steps import ProxyBuild
from tljh_lock.core.runner import run


def build_proxy(step: ProxyBuild, ctx: Context, path: Path) -> None:
    node = ctx.layout.path(f"{L.PREFIX}/{step.node_dir}")
    path.mkdir()
    for name, text in step.project:
        (path / name).write_text(text, encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="tljh-lock-npm-", dir=ctx.scratch) as tmp:
        work = Path(tmp)
        (work / "tarballs").mkdir()
        files = []
        for artifact in step.tarballs:
            # npm takes a path for a tarball only by its .tgz name; the store names by hash
            files.append(work / "tarballs" / f"{artifact.sha256[:16]}-{artifact.name}")
            files[-1].symlink_to(ctx.artifact(artifact))
        # The runner gives npm empty config files; HOME keeps npm's own files in here.
        env = {"HOME": tmp, "PATH": f"{node / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"}
        npm = [node / "bin" / "node", node / "lib" / "node_modules" / "npm" / "bin" /
               "npm-cli.js"]
        cache: list[str | Path] = ["--cache", work / "cache", "--offline", "--no-audit",
                                   "--no-fund", "--no-update-notifier"]
        ctx.log(f"installing {len(files)} npm packages into {path}")
        run([*npm, "cache", "add", *files, *cache], env=env, what="filling the npm cache",
            tmpdir=ctx.scratch)
        # Scripts could reach the network or the host; the proxy's tree needs none.
        run([*npm, "ci", "--ignore-scripts", "--omit=dev", *cache], env=env, cwd=path,
            what="installing configurable-http-proxy", tmpdir=ctx.scratch)
