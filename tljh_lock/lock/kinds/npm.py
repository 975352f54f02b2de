"""The `npm` component kind: an npm package tree (configurable-http-proxy and everything it
needs), laid out as npm's own package-lock lays it out, every tarball pinned twice: by the
sha512 `integrity` npm checks and by the sha256 and size our fetch and bundle check.

Each package records its place in the tree (`node_modules/a/node_modules/b`) and, for each of
its dependencies, the version that npm's resolution placed where Node.js will find it. `check`
follows Node.js's module resolution without npm or semver and proves that every edge still
lands on that version: the tree is closed as npm built it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from packaging.utils import canonicalize_name

from tljh_lock.core.schema import Table
from tljh_lock.core.targets import Target
from tljh_lock.lock.model import Artifact, Problem, Proof

# npm's names for our architectures (`process.arch`), for packages' `cpu` lists.
NPM_CPU = {"x86_64": "x64", "aarch64": "arm64"}

# Package-lock booleans we carry, by their lock name (kebab-case) and npm's.
FLAGS = {"dev": "dev", "optional": "optional", "dev-optional": "devOptional", "peer": "peer",
         "has-install-script": "hasInstallScript"}

_SEGMENT = r"(?:@[A-Za-z0-9~_-][A-Za-z0-9._~-]*/)?[A-Za-z0-9~_-][A-Za-z0-9._~-]*"
NAME = re.compile(rf"^{_SEGMENT}$")
# Only node_modules/<name> steps: no "..", nothing absolute, nothing outside node_modules.
PATH = re.compile(rf"^node_modules/{_SEGMENT}(?:/node_modules/{_SEGMENT})*$")
SHA512_SRI = re.compile(r"^sha512-[A-Za-z0-9+/]{86}==$")


def string_map(table: Table, key: str) -> dict[str, str]:
    """An optional table of strings (dependency ranges, bin entries, engines)."""
    inner = table.table(key, optional=True)
    if inner is None:
        return {}
    for name in inner.data:
        inner.string(name)
    return dict(inner.data)


def find(tree: dict[str, Package], from_path: str, dependency: str) -> Package | None:
    """What `require(dependency)` finds from `from_path` ("" is the root): the nearest
    node_modules folder up the tree that holds it, as Node.js and npm look."""
    base = from_path
    while True:
        found = tree.get(f"{base}/node_modules/{dependency}" if base else
                         f"node_modules/{dependency}")
        if found is not None or not base:
            return found
        base = base.rpartition("/node_modules/")[0]


def resolved_versions(tree: dict[str, Package], from_path: str,
                      requirements: list[tuple[str, str, bool]]) -> tuple[tuple[str, str], ...]:
    """What each requirement finds from `from_path`, by version, for the lock's `resolves`."""
    return tuple(sorted((name, found.version) for name, _, _ in requirements
                        for found in [find(tree, from_path, name)] if found is not None))


def json_text(data: dict[str, Any]) -> str:
    """JSON as npm formats it: two-space indent, newline at the end."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def tarball_file_name(name: str, version: str) -> str:
    """`npm pack`'s name for a tarball: `scope-name-1.0.0.tgz`, unique across scopes."""
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def tarball_url(registry: str, name: str, version: str) -> str:
    """Where the registry publishes a version: `<registry><name>/-/<unscoped>-<version>.tgz`."""
    return f"{registry}{name}/-/{name.rpartition('/')[2]}-{version}.tgz"


def platform_ok(value: str, allowed: tuple[str, ...]) -> bool:
    """npm-install-checks' `checkList`: a list of allowed values or `!`-negated ones."""
    if not allowed or allowed == ("any",):
        return True
    negated = [entry[1:] for entry in allowed if entry.startswith("!")]
    if value in negated:
        return False
    return value in allowed or len(negated) == len(allowed)


def aliased_name(dependency: str, spec: str) -> str:
    """The package a dependency edge names: itself, or for `npm:real@range` the real one."""
    if not spec.startswith("npm:"):
        return dependency
    target = spec[4:]
    at = target.find("@", 1)  # a scoped name starts with "@"
    return target if at < 0 else target[:at]


@dataclass(frozen=True)
class Package:
    path: str  # its place in the tree, as in package-lock.json
    name: str  # the package's own name (differs from the path's end for an alias)
    version: str
    integrity: str
    tarball: Artifact
    license: str | None = None
    engines: tuple[tuple[str, str], ...] = ()
    dependencies: tuple[tuple[str, str], ...] = ()
    optional_dependencies: tuple[tuple[str, str], ...] = ()
    peer_dependencies: tuple[tuple[str, str], ...] = ()
    optional_peers: tuple[str, ...] = ()
    bin: tuple[tuple[str, str], ...] = ()
    os: tuple[str, ...] = ()
    cpu: tuple[str, ...] = ()
    libc: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()  # keys of FLAGS that npm set
    # dependency -> the version `require()` finds from here, as npm resolved it
    resolves: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Package:
        path = table.string("path")
        if not PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
            table.fail(f"{path!r} is not a node_modules path", "path")
        name = table.string("name")
        if not NAME.match(name):
            table.fail(f"{name!r} is not an npm package name", "name")
        integrity = table.string("integrity")
        if not SHA512_SRI.match(integrity):
            table.fail(f"{integrity!r} is not a sha512 integrity", "integrity")
        tarball = table.table("tarball")
        assert tarball is not None
        flags = tuple(table.strings("flags", optional=True))
        for index, flag in enumerate(flags):
            if flag not in FLAGS:
                table.fail(f"unknown flag {flag!r}", f"flags[{index}]")
        return cls(
            path=path,
            name=name,
            version=table.string("version"),
            integrity=integrity,
            tarball=Artifact.from_table(tarball),
            license=table.string("license", optional=True),
            engines=tuple(string_map(table, "engines").items()),
            dependencies=tuple(string_map(table, "dependencies").items()),
            optional_dependencies=tuple(string_map(table, "optional-dependencies").items()),
            peer_dependencies=tuple(string_map(table, "peer-dependencies").items()),
            optional_peers=tuple(table.strings("optional-peers", optional=True)),
            bin=tuple(string_map(table, "bin").items()),
            os=tuple(table.strings("os", optional=True)),
            cpu=tuple(table.strings("cpu", optional=True)),
            libc=tuple(table.strings("libc", optional=True)),
            flags=flags,
            resolves=tuple(string_map(table, "resolves").items()),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "name": self.name, "version": self.version,
                                "integrity": self.integrity}
        if self.license:
            data["license"] = self.license
        for key, value in (("flags", self.flags), ("os", self.os), ("cpu", self.cpu),
                           ("libc", self.libc), ("optional-peers", self.optional_peers)):
            if value:
                data[key] = list(value)
        for key, pairs in (("engines", self.engines), ("dependencies", self.dependencies),
                           ("optional-dependencies", self.optional_dependencies),
                           ("peer-dependencies", self.peer_dependencies), ("bin", self.bin),
                           ("resolves", self.resolves)):
            if pairs:
                data[key] = dict(pairs)
        data["tarball"] = self.tarball.to_dict()
        return data

    @property
    def optional(self) -> bool:
        return "optional" in self.flags

    def installs_on(self, arch: str) -> bool:
        return (platform_ok("linux", self.os) and platform_ok(NPM_CPU[arch], self.cpu)
                and platform_ok("glibc", self.libc))

    def package_lock_entry(self, registry: str) -> dict[str, Any]:
        """Its `packages` entry as npm writes it; `resolved` is the registry's canonical URL."""
        entry: dict[str, Any] = {}
        if self.path.rpartition("node_modules/")[2] != self.name:
            entry["name"] = self.name  # an alias: npm records the real name
        entry["version"] = self.version
        entry["resolved"] = tarball_url(registry, self.name, self.version)
        entry["integrity"] = self.integrity
        for flag in self.flags:
            entry[FLAGS[flag]] = True
        if self.license:
            entry["license"] = self.license
        for key, pairs in (("dependencies", self.dependencies),
                           ("optionalDependencies", self.optional_dependencies),
                           ("peerDependencies", self.peer_dependencies)):
            if pairs:
                entry[key] = dict(pairs)
        if self.optional_peers:
            entry["peerDependenciesMeta"] = {name: {"optional": True}
                                             for name in self.optional_peers}
        for key, pairs in (("bin", self.bin), ("engines", self.engines)):
            if pairs:
                entry[key] = dict(pairs)
        for key, values in (("os", self.os), ("cpu", self.cpu), ("libc", self.libc)):
            if values:
                entry[key] = list(values)
        return entry

    def requirements(self) -> list[tuple[str, str, bool]]:
        """(dependency, spec, required) for every edge npm follows when installing."""
        found = [(name, spec, True) for name, spec in self.dependencies]
        found += [(name, spec, False) for name, spec in self.optional_dependencies]
        found += [(name, spec, name not in self.optional_peers)
                  for name, spec in self.peer_dependencies]
        return found


@dataclass
class Component:
    kind: ClassVar[str] = "npm"
    recipe: str
    recipe_hash: str
    registry: str
    node: str  # the Node.js version every package's engines were checked against
    name: str  # the root package.json's name
    dependencies: tuple[tuple[str, str], ...]  # the root's, as the recipe asks
    resolves: tuple[tuple[str, str], ...]  # the root's dependencies, by locked version
    packages: tuple[Package, ...]

    @classmethod
    def from_table(cls, table: Table) -> Component:
        registry = table.url("registry")
        if not registry.endswith("/"):
            table.fail(f"{registry!r} must end with /", "registry")
        return cls(
            recipe=table.string("recipe"),
            recipe_hash=table.string("recipe-hash"),
            registry=registry,
            node=table.string("node"),
            name=table.string("name"),
            dependencies=tuple(string_map(table, "dependencies").items()),
            resolves=tuple(string_map(table, "resolves").items()),
            packages=tuple(Package.from_table(t) for t in table.tables("packages")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "recipe-hash": self.recipe_hash,
            "registry": self.registry,
            "node": self.node,
            "name": self.name,
            "dependencies": dict(self.dependencies),
            "resolves": dict(self.resolves),
            "packages": [package.to_dict() for package in self.packages],
        }

    def package_json(self) -> dict[str, Any]:
        """The root package.json, which `npm ci` needs beside the package-lock."""
        return {"name": self.name, "private": True, "dependencies": dict(self.dependencies)}

    def package_lock(self) -> dict[str, Any]:
        """npm's own package-lock.json (lockfileVersion 3) of the tree, the root in
        `packages[""]`: `npm ci --offline` installs exactly the locked tree from it."""
        root = {"name": self.name, "dependencies": dict(self.dependencies)}
        packages = {p.path: p.package_lock_entry(self.registry)
                    for p in sorted(self.packages, key=lambda p: p.path)}
        return {"name": self.name, "lockfileVersion": 3, "requires": True,
                "packages": {"": root, **packages}}

    def project_files(self) -> dict[str, str]:
        """`package.json` and `package-lock.json`: what `npm ci` reads from the project."""
        return {"package.json": json_text(self.package_json()),
                "package-lock.json": json_text(self.package_lock())}

    def root_requirements(self) -> list[tuple[str, str, bool]]:
        return [(name, spec, True) for name, spec in self.dependencies]

    def by_path(self) -> dict[str, Package]:
        return {package.path: package for package in self.packages}

    def resolve(self, from_path: str, dependency: str) -> Package | None:
        return find(self.by_path(), from_path, dependency)

    def artifacts(self, targets: list[Target], arch: str | None = None) -> list[Artifact]:
        arches = {t.arch for t in targets if arch is None or t.arch == arch}
        return sorted({p.tarball for p in self.packages
                       if any(p.installs_on(a) for a in arches)})

    def prove(self, targets: list[Target]) -> list[Proof]:
        return [Proof("", self.problems(targets), self.summary())]

    def problems(self, targets: list[Target]) -> list[Problem]:
        """The tree is closed: from the root, every edge (following Node.js's resolution)
        lands on a package of the right name at the version npm resolved it to, which npm's
        semver checked against the range when the lock was made. Nothing in the tree is
        unreachable, every tarball is the registry's file of its version, and every required
        package installs on every target's arch."""
        problems: list[Problem] = []
        tree = self.by_path()
        if len(tree) != len(self.packages):
            problems.append(Problem("a node_modules path appears twice"))
        reached: set[str] = set()
        pending = [("", self.root_requirements(), dict(self.resolves), self.name)]
        while pending:
            from_path, requirements, locked, parent = pending.pop()
            for dependency, spec, required in requirements:
                edge = f"{dependency}@{spec} (needed by {parent})"
                found = find(tree, from_path, dependency)
                if found is None:
                    if required or dependency in locked:
                        problems.append(Problem(f"{edge} is not in the tree", dependency,
                                                locked.get(dependency)))
                    continue
                expected = (aliased_name(dependency, spec), locked.get(dependency))
                if (found.name, found.version) != expected:
                    problems.append(Problem(
                        f"{edge} finds {found.name} {found.version} at {found.path}, not "
                        f"{expected[0]} {expected[1] or '(none locked)'}", found.name,
                        found.version))
                if found.path not in reached:
                    reached.add(found.path)
                    pending.append((found.path, found.requirements(), dict(found.resolves),
                                    f"{found.name} {found.version}"))
        for package in self.packages:
            label = f"{package.name} {package.version} ({package.path})"
            if package.path not in reached:
                problems.append(Problem(f"{label} is not needed by anything", package.name,
                                        package.version))
            url = tarball_url(self.registry, package.name, package.version)
            file_name = tarball_file_name(package.name, package.version)
            if (package.tarball.url, package.tarball.name) != (url, file_name):
                problems.append(Problem(f"{label}: tarball {package.tarball.name} at "
                                        f"{package.tarball.url} is not {file_name} at {url}",
                                        package.name, package.version))
            if not package.optional:
                problems += [Problem(f"{label} does not install on {arch} (os "
                                     f"{list(package.os)}, cpu {list(package.cpu)}, libc "
                                     f"{list(package.libc)})", package.name, package.version)
                             for arch in sorted({t.arch for t in targets})
                             if not package.installs_on(arch)]
        return problems

    def names(self) -> set[str]:
        # Normalized as `update` normalizes --upgrade-package names (string_decoder).
        return {canonicalize_name(package.name) for package in self.packages}

    def versions(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, set[str]] = {}
        for package in self.packages:
            found.setdefault(package.name, set()).add(package.version)
        return {name: tuple(sorted(v)) for name, v in found.items()}

    def files(self) -> list[Artifact]:
        return sorted({package.tarball for package in self.packages})

    def summary(self) -> str:
        roots = ", ".join(
            f"{found.name} {found.version}" for name, _ in self.dependencies
            for found in [self.resolve("", name)] if found is not None)
        return f"{len(self.packages)} npm packages for Node.js {self.node}; roots: {roots}"
