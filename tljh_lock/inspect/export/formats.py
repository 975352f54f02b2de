"""`export`: the lock in the ecosystem's own formats, one module per format."""

from __future__ import annotations

import importlib

from tljh_lock.core.errors import InputError
from tljh_lock.lock.model import Lock

# format -> module with `export(lock, component: str | None) -> str`
FORMATS = {"pylock": "tljh_lock.inspect.export.pylock",
           "conda-lock": "tljh_lock.inspect.export.conda_lock",
           "package-lock": "tljh_lock.inspect.export.package_lock"}


def export_files(lock: Lock, fmt: str, component: str | None) -> dict[str, str]:
    """File name -> text, for a format whose consumer needs more than one file (npm ci needs
    package.json beside the package-lock)."""
    module = importlib.import_module(FORMATS[fmt])
    if hasattr(module, "files"):
        return module.files(lock, component)  # type: ignore[no-any-return]
    raise InputError(f"--format {fmt} writes one file: give -o a file name, not a directory")


def export(lock: Lock, fmt: str, component: str | None) -> str:
    return importlib.import_module(FORMATS[fmt]).export(lock, component)  # type: ignore[no-any-return]
