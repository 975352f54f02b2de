"""The `pip` component kind: a pip set pinned for every target, every file hashed.

`check` proves it per target, without resolving: every requirement reachable from the roots
(markers evaluated, extras followed) has exactly one pinned version that satisfies it and a
compatible file with a hash; sdist-only packages also have their build requirements
installable the same way."""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from packaging.markers import Marker
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from tljh_lock.core.schema import Table, parse_requirement
from tljh_lock.core.targets import Target
from tljh_lock.lock.model import Artifact, Problem, Proof, parse_targets
from tljh_lock.lock.plugins import Plugin


@dataclass(frozen=True)
class Source:
    """A source tree pinned by commit and content hash (a Nix fixed-output input)."""

    name: str
    version: str
    url: str
    commit: str
    tree_hash: str
    requires: tuple[str, ...]
    build_requires: tuple[str, ...]
    # The bytes `update` downloaded: what PEP 751 readers check (`export --format pylock`).
    # Not the pin's identity: a forge may compress the same tree to other bytes, so fetch,
    # bundle and apply go by the tree hash. None where `update` could not reach the archive
    # (and in locks from before it recorded them).
    archive_sha256: str | None = None
    archive_size: int | None = None
    # the project's directory inside the tree (TLJH's plugins live in its integration-tests)
    subdirectory: str | None = None

    @classmethod
    def from_table(cls, table: Table) -> Source:
        commit = table.string("commit")
        if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):  # it names store records
            table.fail(f"{commit!r} is not a full git commit hash", "commit")
        tree_hash = table.string("tree-hash")
        if not tree_hash.startswith("h1:"):
            table.fail(f"{tree_hash!r} is not an h1: tree hash", "tree-hash")
        archive_sha256 = table.hex_sha256("archive-sha256", optional=True)
        archive_size = table.integer("archive-size", optional=True)
        if (archive_sha256 is None) != (archive_size is None):
            table.fail("archive-sha256 and archive-size are recorded together",
                       "archive-size" if archive_size is None else "archive-sha256")
        subdirectory = table.string("subdirectory", optional=True)
        if subdirectory is not None and any(part in ("", ".", "..")
                                            for part in subdirectory.split("/")):
            table.fail(f"{subdirectory!r} is not a relative path inside the tree",
                       "subdirectory")
        return cls(
            name=str(canonicalize_name(table.file_name("name"))),
            version=table.version("version"),
            url=table.url("url"),
            commit=commit,
            tree_hash=tree_hash,
            requires=tuple(table.requirements("requires")),
            build_requires=tuple(table.requirements("build-requires")),
            archive_sha256=archive_sha256,
            archive_size=archive_size,
            subdirectory=subdirectory,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "version": self.version, "url": self.url,
            "commit": self.commit, "tree-hash": self.tree_hash,
        }
        if self.subdirectory:
            data["subdirectory"] = self.subdirectory
        data["requires"] = list(self.requires)
        data["build-requires"] = list(self.build_requires)
        if self.archive_sha256 is not None:
            data.update({"archive-sha256": self.archive_sha256, "archive-size": self.archive_size})
        return data

    def build_input(self, archive_sha256: str) -> str:
        """What names the build of this pin in the store's records and a bundle's manifest:
        the archive's sha256, with the subdirectory (one archive can hold several projects)."""
        return f"{archive_sha256}/{self.subdirectory}" if self.subdirectory else archive_sha256


@dataclass(frozen=True)
class RequirementsFile:
    """A requirements.txt read at update (TLJH's installer's `--user-requirements-txt-url`):
    its requirements are among the component's roots; its sha256 says which text they are."""

    url: str
    sha256: str

    @classmethod
    def from_table(cls, table: Table) -> RequirementsFile:
        sha256 = table.string("sha256")
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            table.fail(f"{sha256!r} is not a sha256 hex digest", "sha256")
        return cls(table.url("url"), sha256)

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "sha256": self.sha256}


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    marker: str | None = None
    requires_python: str | None = None
    dependencies: tuple[str, ...] = ()
    build_requires: tuple[str, ...] = ()  # only for packages installed from an sdist
    sdist: Artifact | None = None
    wheels: tuple[Artifact, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Package:
        marker = table.string("marker", optional=True)
        if marker is not None:
            try:
                Marker(marker)
            except Exception as exc:  # packaging raises InvalidMarker
                table.fail(f"not a valid marker: {exc}", "marker")
        sdist = table.table("sdist", optional=True)
        wheels = tuple(Artifact.from_table(t) for t in table.tables("wheels", optional=True))
        name = table.string("name")
        if str(canonicalize_name(name)) != name:
            table.fail(f"{name!r} is not a normalized project name", "name")
        for index, wheel in enumerate(wheels):
            try:
                wheel_name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
            except Exception as exc:
                table.fail(f"not a wheel file name: {exc}", f"wheels[{index}].name")
            if wheel_name != name or str(wheel_version) != str(table.version("version")):
                table.fail(f"{wheel.name!r} is not a file of {name} {table.data['version']}",
                           f"wheels[{index}].name")
        package = cls(
            name=name,
            version=table.version("version"),
            marker=marker,
            requires_python=table.specifier("requires-python", optional=True),
            dependencies=tuple(table.requirements("dependencies", optional=True)),
            build_requires=tuple(table.requirements("build-requires", optional=True)),
            sdist=Artifact.from_table(sdist) if sdist else None,
            wheels=wheels,
        )
        if not package.sdist and not package.wheels:
            table.fail("has neither an sdist nor a wheel")
        return package

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.marker:
            data["marker"] = self.marker
        if self.requires_python:
            data["requires-python"] = self.requires_python
        data["dependencies"] = list(self.dependencies)
        if self.build_requires:
            data["build-requires"] = list(self.build_requires)
        if self.sdist:
            data["sdist"] = self.sdist.to_dict()
        if self.wheels:
            data["wheels"] = [wheel.to_dict() for wheel in self.wheels]
        return data

    def applies_to(self, target: Target) -> bool:
        return _applies(self.marker, self.requires_python, target)

    def wheel_for(self, target: Target) -> Artifact | None:
        """The wheel pip would pick on `target`: the one whose best tag ranks highest."""
        rank = target.tag_rank()
        best: tuple[int, Artifact] | None = None
        for wheel in self.wheels:
            tags: frozenset[Tag] = parse_wheel_filename(wheel.name)[3]
            score = min((rank[tag] for tag in tags if tag in rank), default=None)
            if score is not None and (best is None or score < best[0]):
                best = (score, wheel)
        return best[1] if best else None

    def install_artifact(self, target: Target) -> Artifact | None:
        """What an offline install on `target` uses: a wheel, or the sdist of an sdist-only
        package (built with the locked build requirements)."""
        return self.wheel_for(target) or (self.sdist if not self.wheels else None)


@dataclass
class Component:
    kind: ClassVar[str] = "pip"
    recipe: str
    recipe_hash: str
    index: str
    roots: tuple[str, ...]
    sources: tuple[Source, ...] = ()
    packages: tuple[Package, ...] = ()
    build_packages: tuple[Package, ...] = ()
    # Own targets, for an environment whose python is not the system's (the user env).
    targets: tuple[Target, ...] = ()
    # TLJH plugins among the sources, with their package hooks' answers (lock/plugins.py)
    plugins: tuple[Plugin, ...] = ()
    requirements_files: tuple[RequirementsFile, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Component:
        return cls(
            recipe=table.string("recipe"),
            recipe_hash=table.string("recipe-hash"),
            index=table.url("index"),
            roots=tuple(table.requirements("roots")),
            sources=tuple(Source.from_table(t) for t in table.tables("sources", optional=True)),
            packages=tuple(Package.from_table(t) for t in table.tables("packages")),
            build_packages=tuple(
                Package.from_table(t) for t in table.tables("build-packages", optional=True)
            ),
            targets=tuple(parse_targets(table, "targets", optional=True)),
            plugins=tuple(Plugin.from_table(t) for t in table.tables("plugins", optional=True)),
            requirements_files=tuple(RequirementsFile.from_table(t) for t in table.tables(
                "requirements-files", optional=True)),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "recipe": self.recipe,
            "recipe-hash": self.recipe_hash,
            "index": self.index,
        }
        if self.targets:
            data["targets"] = [target.to_dict() for target in self.targets]
        data["roots"] = list(self.roots)
        if self.requirements_files:
            data["requirements-files"] = [f.to_dict() for f in self.requirements_files]
        if self.sources:
            data["sources"] = [source.to_dict() for source in self.sources]
        if self.plugins:
            data["plugins"] = [plugin.to_dict() for plugin in self.plugins]
        data["packages"] = [package.to_dict() for package in self.packages]
        if self.build_packages:
            data["build-packages"] = [package.to_dict() for package in self.build_packages]
        return data

    def applicable_targets(self, targets: list[Target]) -> list[Target]:
        return list(self.targets or targets)

    def artifacts(self, targets: list[Target], arch: str | None = None) -> list[Artifact]:
        chosen = [t for t in self.applicable_targets(targets) if arch is None or t.arch == arch]
        found: set[Artifact] = set()
        for package in (*self.packages, *self.build_packages):
            for target in chosen:
                if package.applies_to(target):
                    artifact = package.install_artifact(target)
                    if artifact:
                        found.add(artifact)
        return sorted(found)

    def names(self) -> set[str]:
        return {p.name for p in (*self.packages, *self.build_packages)} | {
            s.name for s in self.sources}

    def versions(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for package in self.packages:
            found.setdefault(package.name, []).append(package.version)
        for source in self.sources:
            found.setdefault(source.name, []).append(f"{source.version}@{source.commit[:12]}")
        return {name: tuple(sorted(set(v))) for name, v in found.items()}

    def files(self) -> list[Artifact]:
        return sorted({f for p in (*self.packages, *self.build_packages)
                       for f in (*p.wheels, *([p.sdist] if p.sdist else []))})

    def prove(self, targets: list[Target]) -> list[Proof]:
        proofs = []
        for target in self.applicable_targets(targets):
            count, problems = prove_on(self, target)
            proofs.append(Proof(f"on {target.name}", problems, f"{count} packages"))
        return proofs

    def summary(self) -> str:
        files = sum(len(p.wheels) + (1 if p.sdist else 0) for p in self.packages)
        versions = {p.name: p.version for p in self.packages}
        root_names = {canonicalize_name(parse_requirement(root).name) for root in self.roots}
        heads = ", ".join(f"{n} {versions[n]}" for n in sorted(versions) if n in root_names)
        sources = ", ".join(f"{s.name} {s.version} @ {s.commit[:12]}" for s in self.sources)
        return (
            f"{len(self.packages)} packages, {files} files, {len(self.build_packages)} build "
            f"packages; roots: {heads}" + (f"; sources: {sources}" if sources else "")
        )


@functools.cache
def _applies(marker: str | None, requires_python: str | None, target: Target) -> bool:
    """Whether a package with this marker and requires-python is installed on `target`;
    once per run for each (a lock's packages share a few, and apply plans twice)."""
    if marker and not Marker(marker).evaluate(target.marker_environment()):
        return False
    return not requires_python or SpecifierSet(requires_python).contains(
        target.python, prereleases=True)


def prove_on(component: Component, target: Target) -> tuple[int, list[Problem]]:
    """(packages used, problems) of one target: every requirement reachable from the roots
    (markers evaluated, extras followed) has exactly one pinned version that satisfies it and
    a compatible file; sdist-only packages also have their build requirements so."""
    roots = [*component.roots, *(r for s in component.sources for r in s.requires),
             *(r for p in component.plugins for r in p.hub_pip)]
    used, problems = walk(component.packages, roots, target, "roots")
    build_roots = sorted(
        {r for p in used if not p.wheels for r in p.build_requires}
        | {r for s in component.sources for r in s.build_requires}
    )
    if build_roots:
        _, build_problems = walk(component.build_packages, build_roots, target, "build")
        problems += [Problem(f"building sdists: {p}", p.package, p.version)
                     for p in build_problems]
        problems += [Problem(f"build requirement {p.name} {p.version} has no wheel for this "
                             "target", p.name, p.version)
                     for p in component.build_packages if p.applies_to(target)
                     and p.wheel_for(target) is None and any(
                         canonicalize_name(parse_requirement(r).name) == p.name
                         for r in build_roots)]
    return len(used), problems


def walk(
    packages: tuple[Package, ...], roots: list[str], target: Target, label: str
) -> tuple[list[Package], list[Problem]]:
    env = target.marker_environment()
    by_name: dict[NormalizedName, list[Package]] = {}
    for package in packages:
        by_name.setdefault(canonicalize_name(package.name), []).append(package)
    problems: list[Problem] = []
    used: dict[NormalizedName, Package] = {}
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    queue = deque((parse_requirement(r), label) for r in roots)
    while queue:
        requirement, parent = queue.popleft()
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        candidates = [p for p in by_name.get(name, []) if p.applies_to(target)]
        if not candidates:
            problems.append(Problem(f"{requirement} (needed by {parent}) has no pinned version",
                                    name))
            continue
        if len(candidates) > 1:
            versions = ", ".join(p.version for p in candidates)
            problems.append(Problem(f"{name} has more than one pinned version here: {versions}",
                                    name))
            continue
        package = candidates[0]
        if not requirement.specifier.contains(package.version, prereleases=True):
            problems.append(Problem(f"{requirement} (needed by {parent}) is not met by the "
                                    f"pinned {package.version}", name, package.version))
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in used:
            used[name] = package
            if package.install_artifact(target) is None:
                problems.append(Problem(
                    f"{name} {package.version} has no file installable here (wheels: "
                    f"{', '.join(w.name for w in package.wheels) or 'none'})", name,
                    package.version))
        for dependency in package.dependencies:
            dep = parse_requirement(dependency)
            if dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras)
            ):
                queue.append((dep, f"{name} {package.version}"))
    return list(used.values()), problems
