"""observe.probe: the running interpreter answers in-process what a process of it would."""

from __future__ import annotations

import sys

import pytest

from tljh_lock.apply import observe


def test_the_running_python_is_probed_in_process_as_a_process_of_it_would_be(
        monkeypatch: pytest.MonkeyPatch) -> None:
    python = sys.executable
    with monkeypatch.context() as m:
        m.setattr(observe, "run", lambda *a, **k: pytest.fail("a process was started"))
        here = observe.probe(python)
    monkeypatch.setattr(observe.sys, "executable", "/nonexistent/python3")
    assert observe.probe(python) == here  # asked in a process of its own this time
