"""What a lock holds: targets and components, each component's artifacts (canonical URL,
size, sha256). The kinds of component are in `kinds/`; reading and sealing the file is
`file.py`. Documented in docs/lockfile.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from tljh_lock.core.schema import Table
from tljh_lock.core.targets import ARCHES, Target


@dataclass(frozen=True, order=True)
class Artifact:
    """One file to fetch: where it canonically lives, how big it is, what it hashes to."""

    name: str
    url: str
    # None where upstream publishes no size next to its checksums (a release's .sha256
    # files): a networked run and one through a checksum-only mirror must lock the same.
    size: int | None
    sha256: str

    @classmethod
    def from_table(cls, table: Table) -> Artifact:
        return cls(
            name=table.file_name("name"),
            url=table.url("url"),
            size=table.integer("size", optional=True),
            sha256=table.sha256("hashes"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "url": self.url}
        if self.size is not None:
            data["size"] = self.size
        data["hashes"] = {"sha256": self.sha256}
        return data


class Component(Protocol):
    kind: ClassVar[str]
    recipe: str
    recipe_hash: str

    @classmethod
    def from_table(cls, table: Table) -> Component: ...

    def to_dict(self) -> dict[str, Any]: ...

    def artifacts(self, targets: list[Target], arch: str | None = None) -> list[Artifact]: ...

    def summary(self) -> str: ...

    def names(self) -> set[str]:
        """Names `update --upgrade-package` may ask to move."""

    def versions(self) -> dict[str, tuple[str, ...]]:
        """Pinned versions by name, for `diff`."""

    def files(self) -> list[Artifact]:
        """Every artifact the lock records for this component, for `diff`."""

    def prove(self, targets: list[Target]) -> list[Proof]:
        """What `check` proves: every target has what it needs."""


@dataclass(frozen=True)
class Problem:
    """What a proof found wrong: the sentence, and the package (at the version) it is about,
    where it is about one, for `check --json`."""

    message: str
    package: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Proof:
    """One claim `check` proves of a component, for all of it (`scope` "") or for one target
    (`scope` "on <target>"): its problems, or when there are none, what was proven."""

    scope: str
    problems: list[Problem]
    proven: str


@dataclass
class Lock:
    targets: list[Target]
    targets_hash: str  # hash of recipes/targets.toml, like a component's recipe-hash
    components: dict[str, Component]

    def artifacts(self, arch: str | None = None) -> list[Artifact]:
        """Every file an install on `arch` (or any arch) may need, without duplicates."""
        found = {a for comp in self.components.values() for a in comp.artifacts(self.targets, arch)}
        return sorted(found)

    def targets_for(self, arch: str | None) -> list[Target]:
        return [t for t in self.targets if arch is None or t.arch == arch]


def parse_targets(table: Table, key: str, optional: bool = False) -> list[Target]:
    targets = []
    for item in table.tables(key, optional=optional):
        arch = item.string("arch")
        if arch not in ARCHES:
            item.fail(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})", "arch")
        python = item.version("python")
        glibc = item.string("glibc")
        if not all(part.isdigit() for part in glibc.split(".")) or glibc.count(".") != 1:
            item.fail(f"{glibc!r} is not a glibc version like 2.31", "glibc")
        targets.append(Target(item.string("name"), python, glibc, arch))
    if not targets and not optional:
        table.fail("no targets", key)
    return targets
