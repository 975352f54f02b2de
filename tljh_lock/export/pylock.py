"""`export --format pylock`: a PEP 751 pylock.toml of one pip component."""

from __future__ import annotations

import re
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


# A forge's archive of one commit (`<repository>/archive/<commit>.tar.gz`), whose repository
# git clones at the same address.
_ARCHIVE_OF_COMMIT = re.compile(r"(?P<repository>https://[^?#]+?)/archive/(?P<commit>[0-9a-f]+)"
                                r"\.(?:tar\.gz|zip)")


def _source_entry(source: pip_lock.Source, where: str) -> dict[str, Any]:
    """A source pin as PEP 751's `[packages.vcs]`: the git repository and the commit. Not
    `[packages.archive]`, which needs the archive's own hash: the lock pins the tree inside
    it (a forge may compress the same tree to other bytes), and git checks the commit."""
    match = _ARCHIVE_OF_COMMIT.fullmatch(source.url)
    if match is None or match["commit"] != source.commit:
        raise InputError(f"{where}: source {source.name}: {source.url} is not a forge's archive "
                         f"of commit {source.commit}, so PEP 751 has no git URL for it",
                         hint="pin the source by a <repository>/archive/<commit>.tar.gz URL")
    # the version is kept: `update` proved it is the one the tree declares
    return {"name": source.name, "version": source.version,
            "vcs": {"type": "git", "url": f"{match['repository']}.git",
                    "commit-id": source.commit}}


def to_pylock(lock: Lock, component_name: str) -> dict[str, Any]:
    """PEP 751, the component's source pins (TLJH itself) as git commits."""
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
    packages += [_source_entry(source, f"components.{component_name}")
                 for source in component.sources]
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
