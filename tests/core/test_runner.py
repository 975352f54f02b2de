"""The one subprocess runner: what a tool sees, and what its failure says."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.runner import clean_environment, run


def test_a_full_disk_is_named_without_the_tools_traceback() -> None:
    script = ("import sys; print('Traceback (most recent call last):', file=sys.stderr); "
              "print('OSError: [Errno 28] No space left on device', file=sys.stderr); "
              "sys.exit(1)")
    with pytest.raises(TljhLockError) as caught:
        run([sys.executable, "-c", script], what="installing the hub set")
    assert caught.value.message == ("installing the hub set: "
                                 f"{Path(sys.executable).name} exited 1: "
                                 "OSError: [Errno 28] No space left on device")
    assert "free some space" in (caught.value.hint or "")


def test_other_failures_keep_the_tools_last_words() -> None:
    with pytest.raises(TljhLockError, match=r"exited 3\nboom"):
        run([sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
            what="x")


def test_the_environment_leaks_no_configuration(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://mirror.invalid/simple")
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "http://mirror.invalid/")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = clean_environment()
    assert not any(key.startswith(("PIP_INDEX", "NPM_CONFIG_REGISTRY")) for key in env)
    assert env["TMPDIR"] == str(tmp_path)  # children follow the apply's scratch
    assert env["NPM_CONFIG_USERCONFIG"] != env["NPM_CONFIG_GLOBALCONFIG"]
    assert not Path(env["NPM_CONFIG_GLOBALCONFIG"]).exists()
