"""The groups step completes what a killed groupadd left, into the state an uninterrupted
groupadd reaches (the reliability campaign found both cases by kill -9)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tljh_lock.apply.actions.system import ensure_group
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import observe, shadow_residue
from tljh_lock.apply.plan import group_complete

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="groupadd --prefix needs root")

GROUP = "root:x:0:\nnogroup:x:65534:\n"
GSHADOW = "root:*::\nnogroup:*::\n"


def _etc(root: Path) -> Path:
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "group").write_text(GROUP)
    (etc / "gshadow").write_text(GSHADOW)
    (etc / "gshadow").chmod(0o640)
    return etc


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    etc = root / "etc"
    return {p.name: (p.read_bytes(), p.stat().st_mode & 0o7777) for p in sorted(etc.iterdir())}


def _uninterrupted(tmp_path: Path, *names: str) -> dict[str, tuple[bytes, int]]:
    root = tmp_path / "reference"
    _etc(root)
    for name in names:
        subprocess.run(["groupadd", "--prefix", str(root), name], check=True)
    return _files(root)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_group_without_its_gshadow_entry_is_completed(tmp_path: Path) -> None:
    reference = _uninterrupted(tmp_path, "jupyterhub-users", "jupyterhub-admins")
    root = tmp_path / "root"
    etc = _etc(root)
    layout = Layout(root)
    ensure_group(layout, "jupyterhub-users")
    # groupadd killed after renaming group+ over /etc/group, before it wrote gshadow
    backup = (etc / "gshadow").read_bytes()
    subprocess.run(["groupadd", "--prefix", str(root), "jupyterhub-admins"], check=True)
    (etc / "gshadow").write_bytes(backup)
    (etc / "gshadow").chmod(0o640)
    (etc / "gshadow-").write_bytes(GSHADOW.encode())
    assert not group_complete(observe(layout), "jupyterhub-admins")

    ensure_group(layout, "jupyterhub-admins")

    assert group_complete(observe(layout), "jupyterhub-admins")
    assert _files(root) == reference


def test_what_a_killed_groupadd_leaves_is_cleared(tmp_path: Path) -> None:
    reference = _uninterrupted(tmp_path, "jupyterhub-users")
    root = tmp_path / "root"
    etc = _etc(root)
    layout = Layout(root)
    subprocess.run(["groupadd", "--prefix", str(root), "jupyterhub-users"], check=True)
    dead = _dead_pid()
    (etc / f"group.{dead}").write_text(str(dead))
    os.link(etc / f"group.{dead}", etc / "group.lock")
    (etc / "gshadow+").write_text(GSHADOW)
    assert not group_complete(observe(layout), "jupyterhub-users")
    assert [p.name for p in shadow_residue(layout)] == [
        f"group.{dead}", "group.lock", "gshadow+"]

    ensure_group(layout, "jupyterhub-users")

    assert group_complete(observe(layout), "jupyterhub-users")
    assert _files(root) == reference


def test_a_live_holders_lock_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "root"
    etc = _etc(root)
    (etc / "group.lock").write_text(str(os.getpid()))
    (etc / "group+").write_text(GROUP)
    (etc / "gshadow.lock").write_text("not a pid")
    assert shadow_residue(Layout(root)) == []


def test_a_killed_holder_not_yet_reaped_holds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    etc = _etc(root)
    zombie = subprocess.Popen(["true"])  # not waited for: a zombie once it exits
    stat = Path(f"/proc/{zombie.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.01)
    (etc / "group.lock").write_text(str(zombie.pid))
    try:
        assert [p.name for p in shadow_residue(Layout(root))] == ["group.lock"]
    finally:
        zombie.wait()
