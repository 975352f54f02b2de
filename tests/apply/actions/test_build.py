"""A built directory is marked complete only once its check passed, and its tree hash, taken
while the check ran, is the one a later look computes from scratch."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from tljh_lock.apply.actions import _build
from tljh_lock.apply.actions.context import Context
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import MARKER
from tljh_lock.apply.steps import BuildStep
from tljh_lock.apply.tree import directory_hash, seen
from tljh_lock.core.errors import InputError

STEP = BuildStep(id="thing", summary="", key="the-key", done=False, directory="thing.1")


def _fill(path: Path) -> dict[str, str]:
    path.mkdir()
    (path / "lib").mkdir()
    (path / "lib" / "a.py").write_text("a = 1\n")
    (path / "run").write_text("#!/bin/sh\n")
    (path / "run").chmod(0o755)
    (path / "alias").symlink_to("run")
    return {"lib/a.py": hashlib.sha256(b"a = 1\n").hexdigest()}


def test_a_checked_build_is_marked_and_its_tree_is_what_a_new_look_finds(tmp_path: Path) -> None:
    ctx = Context(Layout(tmp_path), None, lambda line: None)
    checked: list[str] = []

    def check(path: Path) -> None:
        assert not (path / MARKER).exists()  # marked only once this passed
        checked.append(threading.current_thread().name)

    _build(STEP, ctx, _fill, check)
    built = tmp_path / "opt/tljh/thing.1"
    assert (built / MARKER).read_text() == "the-key"
    assert checked and checked[0] != threading.current_thread().name
    assert ctx.trees["thing.1"] == seen(built, None)


def test_a_build_whose_check_fails_is_removed(tmp_path: Path) -> None:
    ctx = Context(Layout(tmp_path), None, lambda line: None)

    def check(path: Path) -> None:
        raise InputError("the plugins ask for what the lock lacks")

    with pytest.raises(InputError, match="the lock lacks"):
        _build(STEP, ctx, _fill, check)
    assert not (tmp_path / "opt/tljh/thing.1").exists()
    assert "thing.1" not in ctx.trees


def test_an_unchecked_build_is_marked(tmp_path: Path) -> None:
    ctx = Context(Layout(tmp_path), None, lambda line: None)
    _build(STEP, ctx, _fill)
    built = tmp_path / "opt/tljh/thing.1"
    assert (built / MARKER).read_text() == "the-key"
    assert ctx.trees["thing.1"] == seen(built, None)


def test_a_name_that_is_not_utf8_is_hashed_as_its_bytes(tmp_path: Path) -> None:
    ctx = Context(Layout(tmp_path), None, lambda line: None)

    def fill(path: Path) -> None:
        _fill(path)
        (path / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 named\n")

    _build(STEP, ctx, fill)
    built = tmp_path / "opt/tljh/thing.1"
    assert ctx.trees["thing.1"] == seen(built, None)
    os.rename(built / os.fsdecode(b"caf\xe9"), built / os.fsdecode(b"caf\xe8"))
    assert directory_hash(built) != ctx.trees["thing.1"].tree
