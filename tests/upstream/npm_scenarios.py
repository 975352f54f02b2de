"""The npm registry of the fixture upstream: packuments and real-format tarballs.

Layout (see ``server``): the packument of ``NAME`` is ``registry.npmjs.org/NAME/index.json``
(served for ``/NAME``, and for a scoped ``@scope%2fname`` too, since the server unquotes
``%2f``), its tarballs ``registry.npmjs.org/NAME/-/<unscoped name>-<version>.tgz``. Tarballs
hold ``package/...`` as ``npm pack`` makes them, deterministic like every fixture artifact.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .artifacts import UPLOAD_TIME, sha256_file
from .fixture_backend import write_targz

__all__ = ["REGISTRY", "NpmPackage", "generate_npm_scenario", "publish_npm", "sri_sha512"]

REGISTRY_HOST = "registry.npmjs.org"
REGISTRY = f"https://{REGISTRY_HOST}/"


@dataclass(frozen=True)
class NpmPackage:
    """One published version. Its ``index.js`` exports ``describe()``: its name and version
    followed by what each dependency's ``describe()`` says, so that running it proves which
    copy of each dependency Node.js loaded."""

    name: str
    version: str
    dependencies: Mapping[str, str] = field(default_factory=dict)
    engines: Mapping[str, str] = field(default_factory=dict)
    bin: Mapping[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version,
                                "main": "index.js", "license": "MIT"}
        for key in ("dependencies", "engines", "bin"):
            value = getattr(self, key)
            if value:
                data[key] = dict(value)
        return data

    def tarball_url(self) -> str:
        return f"{REGISTRY}{self.name}/-/{self.name.rpartition('/')[2]}-{self.version}.tgz"


def _index_js(package: NpmPackage) -> str:
    deps = json.dumps(sorted(package.dependencies))
    return (f"const deps = {deps}\n"
            "exports.describe = () => {\n"
            f"  const inner = deps.map(d => require(d).describe()).join(', ')\n"
            f"  return {json.dumps(f'{package.name} {package.version}')}"
            " + (inner ? ` [${inner}]` : '')\n"
            "}\n")


def sri_sha512(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _write_tarball(root: Path, package: NpmPackage) -> Path:
    members = [
        ("package/package.json", (json.dumps(package.manifest(), indent=2) + "\n").encode(), 0o644),
        ("package/index.js", _index_js(package).encode(), 0o644),
    ]
    for script in package.bin.values():
        members.append((f"package/{script}",
                        b"#!/usr/bin/env node\nconsole.log(require('../index.js').describe())\n",
                        0o755))
    out = root / REGISTRY_HOST / package.tarball_url()[len(REGISTRY):]
    return write_targz(out, members)


def publish_npm(root: Union[str, Path], packages: Iterable[NpmPackage],
                latest: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Write tarballs and packuments under ``root``; ``latest`` overrides a name's ``latest``
    dist-tag (default: its last version given). Returns facts by ``name@version``."""
    root = Path(root)
    by_name: dict[str, list[NpmPackage]] = {}
    for package in packages:
        by_name.setdefault(package.name, []).append(package)
    facts: dict[str, dict[str, Any]] = {}
    for name, versions in by_name.items():
        documents = {}
        for package in versions:
            tarball = _write_tarball(root, package)
            integrity = sri_sha512(tarball)
            documents[package.version] = {
                **package.manifest(),
                "_id": f"{name}@{package.version}",
                "dist": {"tarball": package.tarball_url(), "integrity": integrity,
                         "shasum": hashlib.sha1(tarball.read_bytes()).hexdigest()},
            }
            facts[f"{name}@{package.version}"] = {
                "url": package.tarball_url(), "integrity": integrity,
                "sha256": sha256_file(tarball), "size": tarball.stat().st_size,
                "path": str(tarball),
            }
        packument = {
            "_id": name,
            "name": name,
            "dist-tags": {"latest": (latest or {}).get(name, versions[-1].version)},
            "versions": documents,
            "time": {"created": UPLOAD_TIME, "modified": UPLOAD_TIME,
                     **{v: UPLOAD_TIME for v in documents}},
        }
        index = root / REGISTRY_HOST / name / "index.json"
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(json.dumps(packument, indent=2, sort_keys=True) + "\n")
    return facts


def generate_npm_scenario(root: Union[str, Path]) -> dict[str, Any]:
    """A small stand-in for configurable-http-proxy's tree under ``root``; returns its facts.

    * ``fx-proxy`` 1.0.0 (bin ``fx-proxy``, engines node >=18) -> ``fx-http@^1``,
      ``@fx/log@^2``, ``fx-events@^3``
    * ``fx-http`` 1.0.0, 1.1.0 -> ``fx-events@^3``
    * ``@fx/log`` 2.0.0 (scoped) -> ``fx-events@^4``: npm nests fx-events 4.0.0 under it
    * ``fx-events`` 3.0.0, 4.0.0
    * ``fx-modern`` 1.0.0 (node >=18), 2.0.0 (node >=22.12.0), 3.0.0 (node >=99, the latest
      dist-tag): which one npm picks for ``^1 || ^2`` depends on the Node.js it resolves for,
      and 3.0.0 excludes every Node.js a lock can have.
    """
    packages = [
        NpmPackage("fx-proxy", "1.0.0",
                   {"fx-http": "^1.0.0", "@fx/log": "^2.0.0", "fx-events": "^3.0.0"},
                   {"node": ">=18"}, {"fx-proxy": "bin/fx-proxy.js"}),
        NpmPackage("fx-http", "1.0.0", {"fx-events": "^3.0.0"}),
        NpmPackage("fx-http", "1.1.0", {"fx-events": "^3.0.0"}),
        NpmPackage("@fx/log", "2.0.0", {"fx-events": "^4.0.0"}),
        NpmPackage("fx-events", "3.0.0"),
        NpmPackage("fx-events", "4.0.0"),
        NpmPackage("fx-modern", "1.0.0", engines={"node": ">=18"}),
        NpmPackage("fx-modern", "2.0.0", engines={"node": ">=22.12.0"}),
        NpmPackage("fx-modern", "3.0.0", engines={"node": ">=99"}),
    ]
    return {
        "registry": REGISTRY,
        "packages": publish_npm(root, packages),
        # what the installed `fx-proxy` prints: the nested fx-events 4 under @fx/log
        "describe": "fx-proxy 1.0.0 [@fx/log 2.0.0 [fx-events 4.0.0], fx-events 3.0.0, "
                    "fx-http 1.1.0 [fx-events 3.0.0]]",
    }
