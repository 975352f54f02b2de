"""The hub environment: a venv from the server's python3, filled with the locked wheels by the
locked pip wheel, with no index and every hash required."""

from __future__ import annotations

import email.parser
import json
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from tljh_lock.apply.source import ArtifactSource
from tljh_lock.core.errors import InputError, IntegrityError, TljhLockError
from tljh_lock.core.runner import run
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact

_PROBE = (
    "import json, platform, sys; print(json.dumps({'version': platform.python_version(), "
    "'machine': platform.machine(), 'libc': platform.libc_ver(), "
    "'implementation': sys.implementation.name}))"
)


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # X.Y.Z
    arch: str
    glibc: str  # X.Y

    @property
    def minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)


def probe(python: str) -> Interpreter:
    out = run([python, "-c", _PROBE], what=f"asking {python} what it is").stdout
    data = json.loads(out)
    libc, libc_version = data["libc"]
    if data["implementation"] != "cpython" or libc != "glibc":
        raise TljhLockError(f"{python} is {data['implementation']} on {libc or 'no libc'}; "
                            "the lock is for CPython on glibc")
    interp = Interpreter(python, data["version"], data["machine"],
                         ".".join(libc_version.split(".")[:2]))
    if interp.minor < (3, 9):
        raise TljhLockError(f"{python} is python {interp.version}; TLJH needs 3.9 or later")
    return interp


def target_for(targets: list[Target], interp: Interpreter, what: str) -> Target:
    """The lock's target this interpreter is: same python X.Y and arch, the newest glibc that
    is not newer than the server's (wheels for a newer glibc would not load)."""
    fitting = [t for t in targets if t.arch == interp.arch and t.python_minor == interp.minor
               and _glibc(t.glibc) <= _glibc(interp.glibc)]
    if not fitting:
        have = ", ".join(f"{t.name} (python {t.python}, glibc {t.glibc})" for t in targets)
        raise InputError(
            f"{what}: the lock has no target for python {interp.version} on {interp.arch} with "
            f"glibc {interp.glibc} ({interp.path}); it has: {have}",
            hint="add this distribution to recipes/targets.toml and update the lock",
        )
    return max(fitting, key=lambda t: _glibc(t.glibc))


def _glibc(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class WheelSet:
    """What one pip install puts into an environment: wheel file name -> artifact."""

    wheels: tuple[tuple[str, Artifact], ...]
    installer: Artifact  # the pip wheel that runs the install

    @property
    def key_material(self) -> list[str]:
        return sorted(f"{name} {a.sha256}" for name, a in self.wheels) + [
            f"installer {self.installer.sha256}"]


def wheel_set(component: pip_lock.Component, target: Target, source: ArtifactSource,
              what: str, fallback_installer: Artifact | None = None) -> WheelSet:
    """The locked files for `target`, with sdists and source pins replaced by the wheels the
    bundle built from them, and the pip wheel to install them with (the set's own, else
    `fallback_installer`). Pure: nothing is read but the source's list of built wheels."""
    chosen: list[tuple[str, Artifact]] = []
    installer: Artifact | None = None
    for package in component.packages:
        if not package.applies_to(target):
            continue
        artifact = package.install_artifact(target)
        if artifact is None:
            raise InputError(f"{what}: {package.name} {package.version} has no file for "
                             f"{target.name}", hint="run `tljh-lock check`")
        if artifact is package.sdist:
            artifact = source.built_wheel(artifact.sha256, f"{what}: {artifact.name}")
        chosen.append((artifact.name, artifact))
        if package.name == "pip" and artifact.name.endswith(".whl"):
            installer = artifact
    for pin in component.sources:
        built = source.built_from_source(pin, f"{what}: source {pin.name} {pin.version}")
        chosen.append((built.name, built))
    if installer is None and fallback_installer is not None:
        installer = fallback_installer
    if installer is None:
        raise InputError(
            f"{what}: the locked set has no pip wheel to install with (the server's python "
            "may have no pip, and an unlocked one is not used)",
            hint="add `pip` to the recipe's requirements and update the lock",
        )
    return WheelSet(tuple(sorted(chosen)), installer)


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


def create_venv(python: str, directory: Path) -> None:
    # Debian's python3 without python3-venv has no ensurepip; pip comes from the lock instead.
    run([python, "-m", "venv", "--without-pip", directory], what=f"creating the venv {directory}")


def pip_install(env_python: Path, wheels: WheelSet, source: ArtifactSource, what: str, *,
                bytecode: bool = False) -> None:
    """Install exactly `wheels` into the environment of `env_python`: a new one, or one that
    has packages of its own (the user environment's conda packages). With `bytecode`, pip
    compiles it, as TLJH's pip does: the users who run it cannot write it at import time."""
    with tempfile.TemporaryDirectory(prefix="tljh-lock-wheels-") as tmp:
        house = Path(tmp)
        lines = []
        for name, artifact in wheels.wheels:
            # pip learns name, version and tags from the file name, the store names by hash.
            check_wheel_metadata(source.path(artifact), name, what)
            (house / name).symlink_to(source.path(artifact))
            # By name from --find-links, not by path: a path install records the (random)
            # temporary path in direct_url.json, and two applies would differ.
            project, version = parse_wheel_filename(name)[:2]
            lines.append(f"{project}=={version} --hash=sha256:{artifact.sha256}\n")
        (house / "requirements.txt").write_text("".join(lines), encoding="utf-8")
        # Run from the unpacked wheel: importing pip from inside a zip is ~4x slower.
        installer = house / "installer"
        with zipfile.ZipFile(source.path(wheels.installer)) as wheel:
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
            env={"PIP_NO_INPUT": "1"}, what=what)


def install_binary(archive: Path, member: str, dest: Path, what: str) -> None:
    """Copy one regular file out of a release tarball (traefik's binary) as an executable."""
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            found = next((m for m in tar if m.name.lstrip("./") == member), None)
            if found is None or not found.isfile():
                raise IntegrityError(f"{what}: {archive.name} has no regular file {member!r}")
            extracted = tar.extractfile(found)
            assert extracted is not None
            tmp = dest.with_name(f".{dest.name}.tljh-lock-new")
            with extracted, open(tmp, "wb") as out:
                shutil.copyfileobj(extracted, out)
    except tarfile.TarError as exc:
        raise IntegrityError(f"{what}: {archive.name} is not a readable archive: {exc}") from None
    tmp.chmod(0o755)
    tmp.replace(dest)
