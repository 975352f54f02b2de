"""The steps of an apply. Each knows its input hash (`key`) and whether it is already done;
`execute` makes it done and is safe to repeat after an interruption."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tljh_lock.apply import layout as L
from tljh_lock.apply import system_files, venv
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.apply.system_files import RenderedFile
from tljh_lock.apply.tree import directory_hash
from tljh_lock.apply.unpack import unpack_tree
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.runner import run
from tljh_lock.core.targets import Target
from tljh_lock.lock.model import Artifact

MARKER = ".tljh-lock-key"  # written last into a built directory: its presence means complete


def hash_of(*parts: str) -> str:
    """A step's key: the hash of its inputs."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class Context:
    layout: Layout
    source: ArtifactSource | None
    log: Callable[[str], None]
    trees: dict[str, str] = field(default_factory=dict)  # directories built in this run

    def artifact(self, artifact: Artifact) -> Path:
        if self.source is None:
            raise TljhLockError(f"{artifact.name} is needed, and this command has no artifacts",
                                hint="apply the lock again from a bundle or a store")
        return self.source.path(artifact)


@dataclass
class Step:
    id: str
    summary: str
    key: str
    done: bool
    # units to restart when this step ran on a live system
    restarts: tuple[str, ...] = ()

    def execute(self, ctx: Context) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "action": "keep" if self.done else "run",
                "summary": self.summary, "key": self.key}


def built_complete(layout: Layout, directory: str, key: str) -> bool:
    try:
        return (layout.path(f"{L.PREFIX}/{directory}") / MARKER).read_text() == key
    except (FileNotFoundError, NotADirectoryError):
        return False


@dataclass
class BuildStep(Step):
    """A directory built beside the one in use, named by its key, complete once marked."""

    directory: str = ""

    def execute(self, ctx: Context) -> None:
        path = ctx.layout.path(f"{L.PREFIX}/{self.directory}")
        if path.exists():  # left incomplete by an interrupted run
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.build(ctx, path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        (path / MARKER).write_text(self.key)
        ctx.trees[self.directory] = directory_hash(path)

    def build(self, ctx: Context, path: Path) -> None:
        raise NotImplementedError


@dataclass
class HubBuild(BuildStep):
    python: str = ""
    wheels: venv.WheelSet | None = None
    traefik: tuple[Artifact, str] | None = None  # release tarball, the binary inside

    def build(self, ctx: Context, path: Path) -> None:
        assert self.wheels is not None
        ctx.log(f"creating the hub environment {path} with {self.python}")
        venv.create_venv(self.python, path)
        for _, artifact in self.wheels.wheels:
            ctx.artifact(artifact)  # verify everything before installing anything
        ctx.log(f"installing {len(self.wheels.wheels)} locked wheels")
        assert ctx.source is not None
        venv.pip_install(path / "bin" / "python3", self.wheels, ctx.source,
                         what="installing the hub set")
        if self.traefik:
            artifact, binary = self.traefik
            ctx.log(f"installing traefik from {artifact.name}")
            venv.install_binary(ctx.artifact(artifact), binary, path / "bin" / "traefik",
                                what="traefik")


@dataclass
class UnpackBuild(BuildStep):
    """A relocatable release tree (Node.js), unpacked as published."""

    artifact: Artifact | None = None
    top_dir: str | None = None

    def build(self, ctx: Context, path: Path) -> None:
        assert self.artifact is not None
        ctx.log(f"unpacking {self.artifact.name} into {path}")
        unpack_tree(ctx.artifact(self.artifact), path, self.top_dir, what=self.artifact.name)


@dataclass
class ProxyBuild(BuildStep):
    """configurable-http-proxy: `npm ci --offline` of the exported package-lock, from an npm
    cache that holds only the locked tarballs (each verified by sha256 first; npm checks their
    sha512 integrity again)."""

    node_dir: str = ""  # the Node.js directory (below /opt/tljh) whose npm installs
    project: tuple[tuple[str, str], ...] = ()  # package.json, package-lock.json
    tarballs: tuple[Artifact, ...] = ()

    def build(self, ctx: Context, path: Path) -> None:
        node = ctx.layout.path(f"{L.PREFIX}/{self.node_dir}")
        path.mkdir()
        for name, text in self.project:
            (path / name).write_text(text, encoding="utf-8")
        with tempfile.TemporaryDirectory(prefix="tljh-lock-npm-") as tmp:
            work = Path(tmp)
            (work / "tarballs").mkdir()
            files = []
            for artifact in self.tarballs:
                # npm takes a path for a tarball only by its .tgz name; the store names by hash
                files.append(work / "tarballs" / f"{artifact.sha256[:16]}-{artifact.name}")
                files[-1].symlink_to(ctx.artifact(artifact))
            # The runner gives npm empty config files; HOME keeps npm's own files in here.
            env = {"HOME": tmp, "PATH": f"{node / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"}
            npm = [node / "bin" / "node", node / "lib" / "node_modules" / "npm" / "bin" /
                   "npm-cli.js"]
            cache = ["--cache", work / "cache", "--offline", "--no-audit", "--no-fund",
                     "--no-update-notifier"]
            ctx.log(f"installing {len(files)} npm packages into {path}")
            run([*npm, "cache", "add", *files, *cache], env=env, what="filling the npm cache")
            # Scripts could reach the network or the host; the proxy's tree needs none.
            run([*npm, "ci", "--ignore-scripts", "--omit=dev", *cache], env=env, cwd=path,
                what="installing configurable-http-proxy")


@dataclass
class UserEnvStep(Step):
    """The user environment, in place as TLJH keeps it (admins install packages into it): the
    verified Miniforge installer (`-u` updates an existing prefix), then the locked pip set."""

    installer: Artifact | None = None
    target: Target | None = None
    wheels: venv.WheelSet | None = None

    def execute(self, ctx: Context) -> None:
        assert self.installer is not None and self.target and self.wheels and ctx.source
        prefix = ctx.layout.path(L.USER)
        for _, artifact in self.wheels.wheels:
            ctx.artifact(artifact)  # verify everything before changing anything
        if prefix.exists() and not (prefix / MARKER).exists():
            # Never completed (a killed first install): the installer cannot finish a half
            # prefix, so start over. A completed one keeps its marker, whatever its key, and
            # is updated in place: admins install packages into it, as on TLJH.
            shutil.rmtree(prefix)
        ctx.log(f"running {self.installer.name} into {prefix}")
        run(["bash", ctx.artifact(self.installer), "-b", "-u", "-p", prefix],
            what=f"running {self.installer.name}")
        python = prefix / "bin" / "python"
        found = venv.probe(str(python))
        if found.minor != self.target.python_minor:
            raise TljhLockError(
                f"{self.installer.name} installed python {found.version}, and the user set is "
                f"locked for python {self.target.python}",
                hint="lock the user environment for the installer's python (its targets)")
        ctx.log(f"installing {len(self.wheels.wheels)} locked wheels into {prefix}")
        # Users' servers import it as the users, who cannot write its bytecode: every start
        # would compile all of jupyter_server and jupyterlab again (seconds per spawn).
        venv.pip_install(python, self.wheels, ctx.source, what="installing the user set",
                         bytecode=True)
        (prefix / MARKER).write_text(self.key)


@dataclass
class FileStep(Step):
    file: RenderedFile | None = None

    def execute(self, ctx: Context) -> None:
        assert self.file is not None
        system_files.install_file(ctx.layout, self.file)


@dataclass
class GroupStep(Step):
    name: str = ""

    def execute(self, ctx: Context) -> None:
        system_files.ensure_group(ctx.layout, self.name)


@dataclass
class TokenStep(Step):
    def execute(self, ctx: Context) -> None:
        system_files.ensure_proxy_token(ctx.layout)


@dataclass
class LinkStep(Step):
    link: str = ""
    target: str = ""

    def execute(self, ctx: Context) -> None:
        system_files.replace_symlink(ctx.layout, self.link, self.target)


@dataclass
class EnableStep(Step):
    units: tuple[str, ...] = ()

    def execute(self, ctx: Context) -> None:
        system_files.enable_units(ctx.layout, self.units)
