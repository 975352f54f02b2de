"""`export`: the lock in the ecosystem's own formats, one module per format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tljh_lock.core.errors import InputError
from tljh_lock.export import conda_lock, package_lock, pylock
from tljh_lock.lock.model import Lock


@dataclass(frozen=True)
class Format:
    export: Callable[[Lock, str | None], str]
    # file name -> text, for a format whose consumer needs more than one file (npm ci needs
    # package.json beside the package-lock)
    files: Callable[[Lock, str | None], dict[str, str]] | None = None


FORMATS = {
    "pylock": Format(pylock.export),
    "conda-lock": Format(conda_lock.export),
    "package-lock": Format(package_lock.export, package_lock.files),
}


def export_files(lock: Lock, fmt: str, component: str | None) -> dict[str, str]:
    files = FORMATS[fmt].files
    if files is None:
        raise InputError(f"--format {fmt} writes one file: give -o a file name, not a directory")
    return files(lock, component)


def export(lock: Lock, fmt: str, component: str | None) -> str:
    return FORMATS[fmt].export(lock, component)
