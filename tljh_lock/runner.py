"""The one place subprocesses start, with an environment we control.

This machine's (and many servers') pip and npm configuration leaks into every install:
PIP_* variables, pip.conf files with extra indexes and constraints, npmrc settings. Every
tool we run gets a clean environment with only what we pass on purpose.
"""

from __future__ import annotations

import atexit
import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tljh_lock.errors import TljhLockError

_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
         "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


@functools.cache
def _empty_file(role: str) -> str:
    """An empty config file that lives as long as this process.

    npm refuses one path for both its user and global config ("double-loading config"),
    so each role gets its own file; /dev/null serves one of them.
    """
    fd, path = tempfile.mkstemp(prefix=f"tljh-lock-{role}-", suffix=".npmrc")
    os.close(fd)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: os.environ[key] for key in _KEPT if key in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "UV_NO_CONFIG": "1",
            "NPM_CONFIG_USERCONFIG": os.devnull,
            "NPM_CONFIG_GLOBALCONFIG": _empty_file("globalconfig"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    what: str,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure raise an error naming `what` with the tool's own last words."""
    args = [str(arg) for arg in argv]
    try:
        result = subprocess.run(
            args, env=clean_environment(env), cwd=cwd, text=True, capture_output=True,
            timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise TljhLockError(f"{what}: program {args[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise TljhLockError(f"{what}: {args[0]} did not finish within {timeout} s") from None
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise TljhLockError(f"{what}: {Path(args[0]).name} exited {result.returncode}\n{tail}")
    return result
