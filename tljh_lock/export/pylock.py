"""`export --format pylock`: a PEP 751 pylock.toml of one pip component."""

from __future__ import annotations

from typing import Any

import tomli_w

from tljh_lock.core.errors import InputError
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock


def _pylock_file(artifact: Artifact) -> dict[str, Any]:
    return {"name": artifact.name, "url": artifact.url, "size": artifact.size,
            "hashes": {"sha256": artifact.sha256}}


def _target_marker(python_minor: tuple[int, int], arch: str) -> str:
    return (f"sys_platform == 'linux' and platform_machine == '{arch}' and "
            "python_version == '{}.{}'".format(*python_minor))


def to_pylock(lock: Lock, component_name: str) -> dict[str, Any]:
    """PEP 751. Source pins are left out: they install from the wheel a bundle builds."""
    component = lock.components.get(component_name)
    if not isinstance(component, pip_lock.Component):
        known = ", ".join(n for n, c in lock.components.items() if c.kind == "pip")
        raise InputError(f"no pip component {component_name!r} in the lock (pip components: "
                         f"{known})")
    targets = component.applicable_targets(lock.targets)
    packages = []
    for package in component.packages:
        entry: dict[str, Any] = {"name": package.name, "version": package.version}
        if package.marker:
            entry["marker"] = package.marker
        if package.requires_python:
            entry["requires-python"] = package.requires_python
        entry["index"] = component.index
        if package.sdist:
            entry["sdist"] = _pylock_file(package.sdist)
        if package.wheels:
            entry["wheels"] = [_pylock_file(wheel) for wheel in package.wheels]
        packages.append(entry)
    lowest = min(t.python_minor for t in targets)
    return {
        "lock-version": "1.0",
        "environments": sorted({_target_marker(t.python_minor, t.arch) for t in targets}),
        "requires-python": ">={}.{}".format(*lowest),
        "created-by": "tljh-lock",
        "packages": packages,
    }


def export(lock: Lock, component: str | None) -> str:
    return tomli_w.dumps(to_pylock(lock, component or "hub"), multiline_strings=False, indent=2)
