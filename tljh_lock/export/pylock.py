"""`export --format pylock`: a PEP 751 pylock.toml of one pip component."""

from __future__ import annotations

from typing import Any

import tomli_w

from tljh_lock.core.errors import InputError
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.upstream.http import local_path
from tljh_lock.upstream.mirrors import MirrorMap


def _location(url: str, mirrors: MirrorMap) -> dict[str, str]:
    """Where an installer gets the file: its `url`, or for a `file://` mirror the `path`,
    PEP 751's key for a local file (uv fetches no `file://` URL)."""
    mirrored = mirrors.to_mirror(url)
    if mirrored.startswith("file://"):
        return {"path": str(local_path(mirrored))}
    return {"url": mirrored}


def _pylock_file(artifact: Artifact, mirrors: MirrorMap) -> dict[str, Any]:
    return {"name": artifact.name, **_location(artifact.url, mirrors),
            "size": artifact.size, "hashes": {"sha256": artifact.sha256}}


def _target_marker(python_minor: tuple[int, int], arch: str) -> str:
    return (f"sys_platform == 'linux' and platform_machine == '{arch}' and "
            "python_version == '{}.{}'".format(*python_minor))


def _source_entry(source: pip_lock.Source, where: str, mirrors: MirrorMap) -> dict[str, Any]:
    """A source pin as PEP 751's `[packages.archive]`, by the sha256 and size of the archive
    `update` downloaded, which installers check. Not `[packages.vcs]`: pip refuses a VCS
    checkout in a file whose other entries carry hashes. No marker: the pin is a root of
    every target."""
    if source.archive_sha256 is None:
        raise InputError(f"{where}: source {source.name}: the lock has no sha256 of its archive, "
                         "which PEP 751 needs",
                         hint="run `tljh-lock update` where the archive is reachable: it "
                              "records it")
    archive: dict[str, Any] = {**_location(source.url, mirrors), "size": source.archive_size,
                               "hashes": {"sha256": source.archive_sha256}}
    if source.subdirectory:
        archive["subdirectory"] = source.subdirectory
    # the version is kept: `update` proved it is the one the tree declares
    return {"name": source.name, "version": source.version, "archive": archive}


def to_pylock(lock: Lock, component_name: str, mirrors: MirrorMap) -> dict[str, Any]:
    """PEP 751, every URL through `mirrors` (the lock's own, canonical ones without)."""
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
        entry["index"] = mirrors.to_mirror(component.index)
        if package.sdist:
            entry["sdist"] = _pylock_file(package.sdist, mirrors)
        if package.wheels:
            entry["wheels"] = [_pylock_file(wheel, mirrors) for wheel in package.wheels]
        packages.append(entry)
    packages += [_source_entry(source, f"components.{component_name}", mirrors)
                 for source in component.sources]
    lowest = min(t.python_minor for t in targets)
    return {
        "lock-version": "1.0",
        "environments": sorted({_target_marker(t.python_minor, t.arch) for t in targets}),
        "requires-python": ">={}.{}".format(*lowest),
        "created-by": "tljh-lock",
        "packages": packages,
    }


def export(lock: Lock, component: str | None, mirrors: MirrorMap | None = None) -> str:
    return tomli_w.dumps(to_pylock(lock, component or "hub", mirrors or MirrorMap()),
                         multiline_strings=False, indent=2)
