"""`export`: the lock in the ecosystem's own formats, one module per format."""

from __future__ import annotations

import importlib

from tljh_lock.lockfile import Lock

# format -> module with `export(lock, component: str | None) -> str`
FORMATS = {"pylock": "tljh_lock.export_pylock", "conda-lock": "tljh_lock.export_conda_lock",
           "package-lock": "tljh_lock.export_package_lock"}


def export(lock: Lock, fmt: str, component: str | None) -> str:
    return importlib.import_module(FORMATS[fmt]).export(lock, component)  # type: ignore[no-any-return]
