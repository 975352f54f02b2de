"""A pytest plugin the e2e harness loads into TLJH's suite (`-p tljh_timeout`, copied into the
machine): each phase of each test (setup, call, teardown) gets at most TLJH_TEST_TIMEOUT
seconds, then fails.

TLJH's `tljh-config reload` polls the hub until it answers, forever; its `preserve_config`
fixture reloads in its teardown. pytest-timeout stops timing a test once it has failed, so a
teardown that hangs after a failure held the whole run. Only SIGALRM and the main thread are
used, as pytest-timeout's signal method does.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

TIMEOUT = int(os.environ.get("TLJH_TEST_TIMEOUT", "300"))


def _expired(signum: int, frame: Any) -> None:
    pytest.fail(f"timed out after {TIMEOUT} s (tljh_timeout)", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _limited()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _limited()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield from _limited()


def _limited() -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
