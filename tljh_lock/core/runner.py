"""The one place subprocesses start, with an environment we control.

This machine's (and many servers') pip and npm configuration leaks into every install:
PIP_* variables, pip.conf files with extra indexes and constraints, npmrc settings. Every
tool we run gets a clean environment with only what we pass on purpose.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tljh_lock.core.errors import TljhLockError

_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR",
         "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")


# npm refuses one path for both its user and global config ("double-loading config"). This
# one can never exist (/dev/null is no directory), so npm reads nothing from it, and unlike a
# temporary file it cannot be left behind by a killed run.
_NO_GLOBAL_NPMRC = "/dev/null/npmrc"
_NO_SPACE = "No space left on device"  # strerror(ENOSPC), as Python, pip and npm print it


def clean_environment(extra: Mapping[str, str] | None = None,
                      tmpdir: Path | None = None) -> dict[str, str]:
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
            "NPM_CONFIG_GLOBALCONFIG": _NO_GLOBAL_NPMRC,
            "PYTHONDONTWRITEBYTECODE": "1",
            # where the tool may make temporary files: the apply's scratch while one runs
            "TMPDIR": str(tmpdir) if tmpdir is not None else tempfile.gettempdir(),
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
    tmpdir: Path | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure raise an error naming `what` with the tool's own last words.
    `tmpdir` is the tool's TMPDIR (default: this process's temporary directory). `stdin` is
    what it reads (a secret goes there: every user can read a process's command line)."""
    args = [str(arg) for arg in argv]
    try:
        result = subprocess.run(
            args, env=clean_environment(env, tmpdir), cwd=cwd, text=True, capture_output=True,
            timeout=timeout, check=False, input=stdin,
        )
    except FileNotFoundError:
        raise TljhLockError(f"{what}: program {args[0]!r} not found") from None
    except subprocess.TimeoutExpired:
        raise TljhLockError(f"{what}: {args[0]} did not finish within {timeout} s") from None
    if check and result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        name = Path(args[0]).name
        full = [line for line in lines if _NO_SPACE in line or "ENOSPC" in line]
        if full:  # a tool's traceback would bury the one line that says what to do
            raise TljhLockError(f"{what}: {name} exited {result.returncode}: {full[-1].strip()}",
                                hint="free some space on the disk it writes to, then run "
                                     "this command again")
        tail = "\n".join(lines[-25:])
        raise TljhLockError(f"{what}: {name} exited {result.returncode}\n{tail}")
    return result
