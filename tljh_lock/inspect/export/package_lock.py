"""`export --format package-lock`: npm's own package-lock.json (lockfileVersion 3) of one npm
component, with canonical `resolved` URLs and sha512 `integrity`.

`npm ci --offline` installs exactly the locked tree from it, from a cache that holds only the
locked tarballs (`npm cache add`), once the root package.json sits next to it. The
package-lock carries the root in `packages[""]`; `package_json` is that root as a file, and
`files` gives both by name.
"""

from __future__ import annotations

import json
from typing import Any

from tljh_lock.core.errors import InputError
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.model import Lock


def npm_component(lock: Lock, name: str | None) -> npm_lock.Component:
    """The named npm component, or the only one when no name is given."""
    known = sorted(n for n, c in lock.components.items() if isinstance(c, npm_lock.Component))
    if name is None and len(known) == 1:
        name = known[0]
    component = lock.components.get(name) if name else None
    if not isinstance(component, npm_lock.Component):
        raise InputError(f"no npm component {name!r} in the lock (npm components: "
                         f"{', '.join(known) or 'none'}; choose one with --component)")
    return component


def package_entry(package: npm_lock.Package, registry: str) -> dict[str, Any]:
    """A `packages` entry as npm writes it; `resolved` is the registry's canonical URL."""
    entry: dict[str, Any] = {}
    if package.path.rpartition("node_modules/")[2] != package.name:
        entry["name"] = package.name  # an alias: npm records the real name
    entry["version"] = package.version
    entry["resolved"] = npm_lock.tarball_url(registry, package.name, package.version)
    entry["integrity"] = package.integrity
    for flag in package.flags:
        entry[npm_lock.FLAGS[flag]] = True
    if package.license:
        entry["license"] = package.license
    for key, pairs in (("dependencies", package.dependencies),
                       ("optionalDependencies", package.optional_dependencies),
                       ("peerDependencies", package.peer_dependencies)):
        if pairs:
            entry[key] = dict(pairs)
    if package.optional_peers:
        entry["peerDependenciesMeta"] = {name: {"optional": True}
                                         for name in package.optional_peers}
    for key, pairs in (("bin", package.bin), ("engines", package.engines)):
        if pairs:
            entry[key] = dict(pairs)
    for key, values in (("os", package.os), ("cpu", package.cpu), ("libc", package.libc)):
        if values:
            entry[key] = list(values)
    return entry


def package_json(component: npm_lock.Component) -> dict[str, Any]:
    return {"name": component.name, "private": True,
            "dependencies": dict(component.dependencies)}


def package_lock(component: npm_lock.Component) -> dict[str, Any]:
    root = {"name": component.name, "dependencies": dict(component.dependencies)}
    packages = {p.path: package_entry(p, component.registry)
                for p in sorted(component.packages, key=lambda p: p.path)}
    return {"name": component.name, "lockfileVersion": 3, "requires": True,
            "packages": {"": root, **packages}}


def dumps(data: dict[str, Any]) -> str:
    """JSON as npm formats it: two-space indent, newline at the end."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def files(lock: Lock, component: str | None) -> dict[str, str]:
    """`package.json` and `package-lock.json`: what `npm ci` reads from the project folder."""
    chosen = npm_component(lock, component)
    return {"package.json": dumps(package_json(chosen)),
            "package-lock.json": dumps(package_lock(chosen))}


def export(lock: Lock, component: str | None) -> str:
    return dumps(package_lock(npm_component(lock, component)))
