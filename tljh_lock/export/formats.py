"""`export`: the lock in the ecosystem's own formats, one module per format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tljh_lock.core.errors import UsageError
from tljh_lock.export import conda_lock, package_lock, pylock
from tljh_lock.lock.model import Lock
from tljh_lock.upstream.mirrors import MirrorMap


@dataclass(frozen=True)
class Format:
    export: Callable[[Lock, str | None], str]
    # file name -> text, for a format whose consumer needs more than one file (npm ci needs
    # package.json beside the package-lock)
    files: Callable[[Lock, str | None], dict[str, str]] | None = None
    # the export with its URLs through a mirror map (`--mirror`), for a format whose consumers
    # fetch from them (an installer reading pylock where the canonical upstream is out of reach)
    mirrored: Callable[[Lock, str | None, MirrorMap], str] | None = None


FORMATS = {
    "pylock": Format(pylock.export, mirrored=pylock.export),
    "conda-lock": Format(conda_lock.export),
    "package-lock": Format(package_lock.export, package_lock.files),
}


def _unmirrored(fmt: str) -> UsageError:
    return UsageError(f"--mirror: --format {fmt} keeps the lock's canonical URLs",
                      hint="--mirror rewrites the URLs of --format pylock only")


def export_files(lock: Lock, fmt: str, component: str | None,
                 mirrors: MirrorMap) -> dict[str, str]:
    if mirrors.rules:
        raise _unmirrored(fmt)
    files = FORMATS[fmt].files
    if files is None:
        raise UsageError(f"--format {fmt} writes one file: give -o a file name, not a directory")
    return files(lock, component)


def export(lock: Lock, fmt: str, component: str | None, mirrors: MirrorMap) -> str:
    chosen = FORMATS[fmt]
    if not mirrors.rules:
        return chosen.export(lock, component)
    if chosen.mirrored is None:
        raise _unmirrored(fmt)
    return chosen.mirrored(lock, component, mirrors)
