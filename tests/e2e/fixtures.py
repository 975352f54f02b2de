"""pytest fixtures for end-to-end tests. Import them into a test module (or a conftest):

    from e2e.fixtures import *  # noqa: F403  (e2e_rootfs, e2e_workdir)

Environment:
  TLJH_E2E_CACHE    cache dir of the rootfs tarball (default /var/cache/tljh-lock-e2e)
  TLJH_E2E_MIRROR   Debian mirror for building it (default: from /etc/apt, else deb.debian.org)
  TLJH_E2E_WORKDIR  where machines are unpacked (default: pytest's tmp_path). Unpacking the
                    ~10k-file tree took 0.3 s on tmpfs vs 1-9 s on this machine's disk, so
                    TLJH_E2E_WORKDIR=/dev/shm is worth it when RAM allows (~0.3 GB per machine
                    plus what the test installs; trees are deleted on close()).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .machine import ensure_rootfs

__all__ = ["e2e_rootfs", "e2e_workdir"]


@pytest.fixture(scope="session")
def e2e_rootfs() -> Path:
    """The cached rootfs tarball, built on first use (~1 min), reused across runs."""
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (debootstrap, systemd-nspawn)")
    t0 = time.monotonic()
    path = ensure_rootfs()
    print(f"\n[e2e] rootfs {path} ready in {time.monotonic() - t0:.1f} s")
    return path


@pytest.fixture
def e2e_workdir(tmp_path: Path) -> Path:
    """Directory to pass as BootedMachine(workdir=...)."""
    base = os.environ.get("TLJH_E2E_WORKDIR")
    workdir = Path(base) if base else tmp_path / "machines"
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir
