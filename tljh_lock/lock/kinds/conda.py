"""The `conda` component kind: conda packages solved per platform, every file hashed.

Each platform (conda subdir) has its own complete solution, as in conda-lock's format; a
noarch package appears once per platform with the same file. The lock keeps the facts
conda-lock keeps (name, version, build, canonical URL, md5, sha256, depends) plus the size,
so that `check` can prove each platform's solution complete and `export --format conda-lock`
needs nothing but the lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from tljh_lock.core.schema import Table
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import conda_spec
from tljh_lock.lock.model import Artifact, Problem, Proof

# tljh-lock arch -> conda subdir
PLATFORMS = {"x86_64": "linux-64", "aarch64": "linux-aarch64"}
# Virtual packages stand for the system; a solution depends on them but never ships them.
VIRTUAL_PREFIX = "__"
# Conda file names start with `_` for a few packages (`_openmp_mutex`), unlike wheels.
_CONDA_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+!-]*\.(conda|tar\.bz2)$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")


def dependency_name(spec: str) -> str:
    """The package name of a conda match spec as found in `depends` (`name [version [build]]`)."""
    return spec.split()[0] if spec.strip() else ""


@dataclass(frozen=True, order=True)
class CondaPackage:
    platform: str  # the subdir this solution is for
    name: str
    version: str
    build: str
    subdir: str  # the subdir the file lives in: `platform` or noarch
    channel: str  # canonical channel URL, no trailing slash
    url: str
    size: int
    sha256: str
    md5: str
    depends: tuple[str, ...]

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def artifact(self) -> Artifact:
        return Artifact(self.file_name, self.url, self.size, self.sha256)

    @classmethod
    def from_table(cls, table: Table) -> CondaPackage:
        package = cls(
            platform=table.string("platform"),
            name=table.string("name"),
            version=table.string("version"),
            build=table.string("build"),
            subdir=table.string("subdir"),
            channel=table.url("channel"),
            url=table.url("url"),
            size=table.integer("size"),
            sha256=table.sha256("hashes"),
            md5=table.string("md5"),
            depends=tuple(table.strings("depends")),
        )
        if package.platform not in PLATFORMS.values():
            table.fail(f"unknown platform {package.platform!r}", "platform")
        if package.subdir not in (package.platform, "noarch"):
            table.fail(f"a {package.platform} solution cannot use a {package.subdir} package",
                       "subdir")
        expected = f"{package.channel}/{package.subdir}/{package.file_name}"
        if package.url != expected:
            table.fail(f"{package.url!r} is not a file of {package.channel}/{package.subdir}",
                       "url")
        stem = f"{package.name}-{package.version}-{package.build}"
        if not _CONDA_FILE.match(package.file_name) or not package.file_name.startswith(
                stem + "."):
            table.fail(f"{package.file_name!r} is not the file of {stem}", "url")
        if not _MD5.match(package.md5):
            table.fail(f"{package.md5!r} is not a lowercase hex md5", "md5")
        return package

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform, "name": self.name, "version": self.version,
            "build": self.build, "subdir": self.subdir, "channel": self.channel,
            "url": self.url, "size": self.size, "hashes": {"sha256": self.sha256},
            "md5": self.md5, "depends": list(self.depends),
        }


@dataclass
class Component:
    kind: ClassVar[str] = "conda"
    recipe: str
    recipe_hash: str
    channels: tuple[str, ...]  # canonical URLs, in priority order
    specs: tuple[str, ...]
    platforms: tuple[str, ...]
    glibc: str  # the __glibc virtual package the solution was made for
    packages: tuple[CondaPackage, ...]

    @classmethod
    def from_table(cls, table: Table) -> Component:
        platforms = tuple(table.strings("platforms"))
        for index, platform in enumerate(platforms):
            if platform not in PLATFORMS.values():
                table.fail(f"unknown platform {platform!r}", f"platforms[{index}]")
        channels = tuple(table.strings("channels"))
        for index, channel in enumerate(channels):
            if not channel.startswith("https://") or channel.endswith("/"):
                table.fail(f"{channel!r} is not a canonical channel URL", f"channels[{index}]")
        packages = tuple(CondaPackage.from_table(t) for t in table.tables("packages"))
        for index, package in enumerate(packages):
            if package.platform not in platforms:
                table.fail(f"platform {package.platform} is not in `platforms`",
                           f"packages[{index}].platform")
            if package.channel not in channels:
                table.fail(f"channel {package.channel} is not in `channels`",
                           f"packages[{index}].channel")
        return cls(
            recipe=table.string("recipe"),
            recipe_hash=table.string("recipe-hash"),
            channels=channels,
            specs=tuple(table.strings("specs")),
            platforms=platforms,
            glibc=table.string("glibc"),
            packages=packages,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "recipe-hash": self.recipe_hash,
            "channels": list(self.channels),
            "specs": list(self.specs),
            "platforms": list(self.platforms),
            "glibc": self.glibc,
            "packages": [p.to_dict() for p in sorted(self.packages)],
        }

    def for_platform(self, platform: str) -> list[CondaPackage]:
        return [p for p in self.packages if p.platform == platform]

    def artifacts(self, targets: list[Target], arch: str | None = None) -> list[Artifact]:
        wanted = {PLATFORMS[arch]} if arch else set(self.platforms)
        return sorted({p.artifact for p in self.packages if p.platform in wanted})

    def names(self) -> set[str]:
        return {p.name for p in self.packages}

    def versions(self) -> dict[str, tuple[str, ...]]:
        # `version@build`: a rebuild is a change a reviewer must see (as pip sources' @commit).
        found: dict[str, set[str]] = {}
        for package in self.packages:
            found.setdefault(package.name, set()).add(f"{package.version}@{package.build}")
        return {name: tuple(sorted(v)) for name, v in found.items()}

    def files(self) -> list[Artifact]:
        return sorted({p.artifact for p in self.packages})

    def summary(self) -> str:
        heads = {dependency_name(s) for s in self.specs}
        versions = {p.name: p.version for p in self.packages}
        roots = ", ".join(f"{n} {versions[n]}" for n in sorted(heads) if n in versions)
        return (f"{len(self.packages)} packages on {len(self.platforms)} platforms, "
                f"{len(self.files())} files; specs: {roots}")

    def prove(self, targets: list[Target]) -> list[Proof]:
        return [Proof("", [Problem(p) for p in self.problems(targets)], self.summary())]

    def problems(self, targets: list[Target]) -> list[str]:
        """Every platform has one package per name, every spec and every dependency met by
        version and build (and `__glibc` by the recorded glibc), as the solver matches them."""
        problems = []
        for platform in self.platforms:
            packages = self.for_platform(platform)
            by_name: dict[str, CondaPackage] = {}
            for package in packages:
                if package.name in by_name:
                    problems.append(f"{platform}: {package.name} is pinned more than once")
                by_name[package.name] = package
            if not packages:
                problems.append(f"{platform}: no packages")
            needs = [(spec, "specs") for spec in self.specs] + [
                (dep, f"{p.name} {p.version}") for p in packages for dep in p.depends]
            for spec, parent in needs:
                name = dependency_name(spec)
                if name.startswith(VIRTUAL_PREFIX) and name != "__glibc":
                    continue
                found = by_name.get(name)
                if name == "__glibc":
                    version, build, met_by = self.glibc, "0", f"glibc {self.glibc}"
                elif found is None:
                    problems.append(f"{platform}: {spec} (needed by {parent}) is not pinned")
                    continue
                else:
                    version, build = found.version, found.build
                    met_by = f"{found.name} {found.version} {found.build}"
                try:
                    met = conda_spec.matches(spec, version, build)
                except conda_spec.SpecError as exc:
                    problems.append(f"{platform}: {spec} (needed by {parent}): {exc}")
                    continue
                if not met:
                    problems.append(f"{platform}: {spec} (needed by {parent}) is not met by "
                                    f"{met_by}")
        return problems
