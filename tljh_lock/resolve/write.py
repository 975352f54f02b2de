"""The lock written as TOML: the one file `update` produces (tomli-w, so maintainer side only)."""

from __future__ import annotations

from pathlib import Path

import tomli_w

from tljh_lock.core.files import write_atomic
from tljh_lock.lock.file import HEADER, to_dict
from tljh_lock.lock.model import Lock


def dumps(lock: Lock) -> str:
    return HEADER + tomli_w.dumps(to_dict(lock), multiline_strings=False, indent=2)


def write(path: Path, lock: Lock) -> None:
    """Readers see the old lock or the new one, never half of one."""
    write_atomic(path, dumps(lock).encode())
