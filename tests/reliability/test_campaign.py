"""A fast subset of the reliability campaign (`make reliability` runs all of it): kills during an
upgrade, the hostile inputs that once got through, disk full, two applies at once, an older
bundle. Each case asserts what the campaign judges: a clear error or the state of an
uninterrupted apply, nothing lost."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability import concurrency, diskfull, harness, inputs, kills, rollback
from tests.reliability.manifest import mode_problems
from tljh_lock.core.errors import InputError
from tljh_lock.core.files import write_atomic
from tljh_lock.lock import file as lockfile

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: groupadd into a root, a tmpfs for the full disk")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.World]:
    work = tmp_path_factory.mktemp("reliability")
    yield harness.build_world(work, lambda _: None, twice=False)
    shutil.rmtree(work, ignore_errors=True)


def assert_ok(results: list[harness.Result]) -> None:
    assert results
    for result in results:
        assert result.ok, result.line()
        assert (result.files_lost, result.bytes_lost) == (0, 0), result.line()


def point(mode: str, name: str) -> kills.Point:
    trigger = next(t for t in (kills.FRESH if mode == "fresh" else kills.UPGRADE)
                   if t.name == name)
    return kills.Point(mode, trigger, trigger.max_delay / 2)


def test_kills_during_an_upgrade(world: harness.World) -> None:
    results = [kills.run_point(world, point("upgrade", "installer midway")),
               kills.run_point(world, point("upgrade", "hub link switched"))]
    assert_ok(results)
    assert results[0].faults == 1  # the installer unpacks for long enough to be killed midway


def test_lock_inputs_that_once_got_through(world: harness.World) -> None:
    """A lock that is not UTF-8 gave a traceback; a source pin's commit shaped like a path
    made `fetch` write its record outside the store."""
    cases = inputs.malformed_locks(world)
    assert cases["binary garbage"][1].codes == (3,)
    results = inputs.run_locks(world, lambda _: None, quick=False, only=(
        "binary garbage", "source commit ../../../.. (resealed)",
        "source name /absolute (resealed)"))
    assert len(results) == 6  # each by `apply` and by `fetch`
    assert_ok(results)
    assert not (world.work / "escaped.json").exists()  # where the record landed before


def test_source_pin_fields_are_checked(world: harness.World) -> None:
    text = world.fixture.locks["new"].read_text()
    commit = next(line for line in text.splitlines() if line.startswith("commit = "))
    with pytest.raises(InputError, match="not a full git commit hash"):
        lockfile.parse(text.replace(commit, 'commit = "../../../../escaped"'), "lock")
    name = next(line for line in text.splitlines() if line.startswith('name = "the-littlest'))
    with pytest.raises(InputError, match="not a plain file name"):
        lockfile.parse(text.replace(name, 'name = "/tmp/escaped"'), "lock")


def test_hostile_bundles_and_a_lying_mirror(world: harness.World) -> None:
    assert_ok(inputs.run_bundles(world, lambda _: None, quick=True)[:3])


def test_disk_full_during_fetch(world: harness.World) -> None:
    """A 64 KiB store: closing a part flushed the buffered rest and raised ENOSPC again, as a
    traceback that hid the first error."""
    results = diskfull.fetch_cases(world, lambda _: None, quick=True)
    assert_ok(results)
    assert results[0].faults == 1  # the store did run full


def test_write_atomic_leaves_nothing_after_a_kill(tmp_path: Path) -> None:
    """A run killed between writing the temporary file and the rename left one file per kill
    (its name had the pid); the next write of the same path now takes it over."""
    target = tmp_path / "state.json"
    write_atomic(target, b"old", 0o644, exclusive=True)
    (tmp_path / ".state.json.tljh-lock-tmp").write_bytes(b"half written by a killed run")
    write_atomic(target, b"new", 0o644, exclusive=True)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    assert target.read_bytes() == b"new"


def test_steps_found_done_are_recorded(world: harness.World) -> None:
    """A run killed after a step but before saving the state: the re-run finds the step done
    and did not record it, so `verify` stopped checking the user environment."""
    world.reset("old")
    state = world.root / "opt/tljh/state/state.json"
    data = json.loads(state.read_text())
    del data["steps"]["user-env"]
    state.write_text(json.dumps(data))
    assert world.run(world.apply_argv("old")).returncode == 0  # nothing to do...
    assert "user-env" in json.loads(state.read_text())["steps"]  # ...but the step is recorded
    (world.root / "opt/tljh/user/.tljh-lock-key").write_text("drifted")
    verify = world.run(world.tool("verify", "--root", world.root))
    assert verify.returncode == 1 and "/opt/tljh/user: not the user environment" in verify.stderr


def test_two_applies_at_once(world: harness.World) -> None:
    assert_ok([concurrency.two_applies(world, "upgrade", "the installer runs", None)])


def test_an_older_bundle_is_refused(world: harness.World) -> None:
    assert_ok(rollback.older_bundle(world)[:1])


def test_seeded_points_are_reproducible(world: harness.World) -> None:
    first = kills.points(world, random.Random(7), quick=False, time_offsets=3)
    again = kills.points(world, random.Random(7), quick=False, time_offsets=3)
    assert first == again
    assert len({p.name for p in first}) >= 30  # distinct kill points


def test_the_manifest_asserts_tljh_modes(world: harness.World) -> None:
    """Every reference has TLJH's modes (state and config 0700, installer.log 0500, ...);
    `build_world` refuses one that does not, and so every case is held to them."""
    for name, reference in world.references.items():
        assert mode_problems(reference) == [], name
    loose = dict(world.references["fresh"])
    loose["opt/tljh/state"] = dataclasses.replace(loose["opt/tljh/state"], mode="0755")
    del loose["opt/tljh/installer.log"]
    assert mode_problems(loose) == ["opt/tljh/installer.log: missing (TLJH's mode is 0500)",
                                    "opt/tljh/state: mode 0755, TLJH's is 0700"]
