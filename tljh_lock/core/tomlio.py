"""TOML in: tomllib, or tomli on the servers' older pythons. (Writing TOML is the maintainer
side's: resolve/write.py, export/pylock.py.)"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tljh_lock.core.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the servers' older pythons
    import tomli as tomllib


def loads(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: not valid TOML: {exc}") from None


def load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8: {exc}") from None
    return loads(text, str(path))

