"""TLJH admins (`apply --admin`, `--admins-from`): read as TLJH's installer takes them, planned
before the links, and the password kept out of every error, the plan, the state, the command
lines apply starts and the server's files."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.apply.test_engine import fixture, root  # noqa: F401 - fixtures used below
from tests.support.apply_scenario import SYSTEM_PYTHON, Fixture
from tljh_lock.apply import engine
from tljh_lock.apply.admins import Admin, merged, parse, read
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.steps import AdminsStep, LinkStep
from tljh_lock.core import runner
from tljh_lock.core.errors import EXIT_INPUT, InputError, TljhLockError

SECRET = "s3cret:with-colon"


def test_entries_as_tljh_takes_them() -> None:
    assert parse("alice", "x") == Admin("alice")
    assert parse(f"bob:{SECRET}", "x") == Admin("bob", SECRET)  # split at the first colon
    assert SECRET not in repr(parse(f"bob:{SECRET}", "x"))
    text = f"# the hub's admins\n\nalice\n  bob:{SECRET}  \n#carol:nope\n"
    assert read(text, "admins.txt") == [Admin("alice"), Admin("bob", SECRET)]
    assert merged([Admin("a"), Admin("b", "p"), Admin("a", "q"), Admin("b")]) == (
        Admin("a", "q"), Admin("b", "p"))


@pytest.mark.parametrize("text", ["alice\n:" + SECRET, "alice\nbo b:" + SECRET,
                                  "alice\nbob:"])
def test_a_bad_line_is_named_and_its_password_is_not(text: str) -> None:
    with pytest.raises(InputError) as caught:
        read(text, "admins.txt")
    assert "admins.txt line 2" in str(caught.value) and SECRET not in str(caught.value)


def test_two_passwords_for_one_admin_are_refused() -> None:
    with pytest.raises(InputError, match="two different passwords") as caught:
        merged([Admin("a", SECRET), Admin("a", "other")])
    assert SECRET not in str(caught.value)


def test_bad_admins_fail_before_anything(tmp_path: Path, tljh, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    listing = tmp_path / "admins.txt"
    listing.write_text(f"alice\n bob :{SECRET}\n")
    result = tljh("apply", "--admins-from", listing, "--root", tmp_path / "root")
    assert result.code == EXIT_INPUT
    assert f"{listing} line 2" in result.err and SECRET not in result.err + result.out
    monkeypatch.setattr("sys.stdin", io.StringIO(f":{SECRET}\n"))
    result = tljh("apply", "--admins-from", "-", "--root", tmp_path / "root")
    assert result.code == EXIT_INPUT and "standard input" in result.err
    assert SECRET not in result.err + result.out
    result = tljh("apply", "--admins-from", tmp_path / "missing", "--root", tmp_path / "root")
    assert result.code == EXIT_INPUT and "cannot be read" in result.err
    assert not (tmp_path / "root").exists()


def test_admins_are_planned_before_the_links_by_name_only(fixture: Fixture,  # noqa: F811
                                                         root: Path) -> None:  # noqa: F811
    admins = (Admin("alice", SECRET), Admin("bob"))
    outcome = engine.apply(Layout(root), fixture.locks["old"], fixture.source(), SYSTEM_PYTHON,
                           dry_run=True, admins=admins)
    steps = outcome.plan.steps
    (index,) = (i for i, step in enumerate(steps) if isinstance(step, AdminsStep))
    assert all(not isinstance(step, LinkStep) for step in steps[:index])
    assert "alice, bob" in steps[index].summary and not steps[index].done
    assert steps[index].restarts == ("jupyterhub.service",)
    assert SECRET not in json.dumps(outcome.to_dict())


def test_the_password_goes_on_stdin_and_nowhere_else(fixture: Fixture, root: Path,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixture's TLJH has no tljh.config: the admins' step fails, with one clear error, and
    the password was only ever on the stdin of the hub's python."""
    started: list[tuple[list[str], Any, Any]] = []
    real = subprocess.run

    def recording(args: list[str], **kwargs: Any) -> Any:
        started.append((args, kwargs.get("env"), kwargs.get("input")))
        return real(args, **kwargs)

    monkeypatch.setattr(runner.subprocess, "run", recording)
    logged: list[str] = []
    with pytest.raises(TljhLockError, match="setting up TLJH's admins") as caught:
        engine.apply(Layout(root), fixture.locks["old"], fixture.source(), SYSTEM_PYTHON,
                     admins=(Admin("alice", SECRET),), log=logged.append)
    assert SECRET not in str(caught.value) and SECRET not in "\n".join(logged)
    fed = [args for args, _, stdin in started if stdin is not None and SECRET in stdin]
    assert len(fed) == 1 and fed[0][0].endswith("/bin/python3")
    assert all(SECRET not in " ".join(args) + json.dumps(env) for args, env, _ in started)
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert SECRET.encode() not in path.read_bytes(), path
    # the links still point at nothing new: the failure came before them
    assert not (root / "opt/tljh/hub").exists()
