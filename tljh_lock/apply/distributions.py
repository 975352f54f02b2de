"""Which distributions an environment holds, read from its `.dist-info` directories (what pip
and importlib.metadata read), against what the lock put there: for `verify`, every locked
distribution of the hub and user environments must be present at its version."""

from __future__ import annotations

import email.parser
import os
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tljh_lock.apply import layout as L
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.plan import HUB, USER_ENV
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Lock


def installed(prefix: Path) -> dict[str, str]:
    """Canonical name -> version of every distribution in the prefix's site-packages."""
    found: dict[str, str] = {}
    parser = email.parser.BytesParser()
    for site in sorted(prefix.glob("lib/python3*/site-packages")):
        for info in sorted(site.glob("*.dist-info")):
            try:
                with open(info / "METADATA", "rb") as fh:
                    headers = parser.parse(fh, headersonly=True)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if headers.get("Name") and headers.get("Version"):
                found[canonicalize_name(headers["Name"])] = headers["Version"]
    return found


def locked(component: pip_lock.Component, target: Target) -> dict[str, str]:
    """Canonical name -> version of what the component installs on `target`."""
    found: dict[str, str] = {canonicalize_name(p.name): p.version
                             for p in component.packages if p.applies_to(target)}
    found.update({canonicalize_name(s.name): s.version for s in component.sources})
    return found


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def missing(where: str, prefix: Path, expected: dict[str, str]) -> list[str]:
    have = installed(prefix)
    problems = []
    for name, version in sorted(expected.items()):
        got = have.get(name)
        if got is None:
            problems.append(f"{where}: {name} {version} is not installed")
        elif not _same(got, version):
            problems.append(f"{where}: {name} is {got}, the lock has {version}")
    return problems


def _venv_python(prefix: Path) -> tuple[int, int] | None:
    """The python X.Y of a venv, from its pyvenv.cfg (no interpreter is run)."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            major, minor = value.strip().split(".")[:2]
            return int(major), int(minor)
    return None


def environment_problems(layout: Layout, lock: Lock, dirs: dict[str, str]) -> list[str]:
    """Locked distributions missing from, or at another version in, the hub environment of
    `dirs` and the user environment."""
    arch = os.uname().machine
    problems = []
    hub = lock.components.get(HUB)
    if isinstance(hub, pip_lock.Component) and "hub" in dirs:
        prefix = layout.path(f"{L.PREFIX}/{dirs['hub']}")
        minor = _venv_python(prefix)
        fitting = [t for t in hub.applicable_targets(lock.targets)
                   if t.arch == arch and t.python_minor == minor]
        if fitting:
            problems += missing(f"{L.PREFIX}/{dirs['hub']}", prefix, locked(hub, fitting[0]))
        else:
            problems.append(f"{L.PREFIX}/{dirs['hub']}: no target of the lock is its python "
                            f"{minor} on {arch}")
    user = lock.components.get(USER_ENV)
    if isinstance(user, pip_lock.Component):
        targets = [t for t in user.applicable_targets(lock.targets) if t.arch == arch]
        if targets:
            problems += missing(L.USER, layout.path(L.USER), locked(user, targets[0]))
    return problems
