"""The `release` component kind: one upstream release, one file per architecture.

traefik, the Miniforge installer and Node.js are each a version plus, per architecture, one
published file (tarball or installer) with the sha256 the upstream publishes next to it:

    [components.traefik]
    kind = "release"
    upstream = "github"                 # or "nodejs"
    repo = "traefik/traefik"            # github; nodejs has `dist = "https://nodejs.org/dist/"`
    tag = "v3.6.5"                      # github only
    version = "3.6.5"
    binary = "traefik"                  # optional: the executable inside the archive
    [[components.traefik.artifacts]]
    arch = "x86_64"
    name = "traefik_v3.6.5_linux_amd64.tar.gz"
    url = "https://github.com/traefik/traefik/releases/download/v3.6.5/traefik_v3.6.5_linux_amd64.tar.gz"
    size = 48234151                     # optional, see below
    top-dir = "node-v22.12.0-linux-x64" # optional: the archive's single top-level folder
    hashes = { sha256 = "..." }

Sizes are optional. The upstreams' checksum files (traefik's checksums.txt, Miniforge's
`.sha256`, SHASUMS256.txt) give no sizes, and a maintainer whose only view of those upstreams
is a folder of their checksum files (upstream-facts) must produce the same lock as one on the
open internet. So a size is recorded only when the document that resolution has to read
anyway states it: GitHub's release list, read when the recipe gives a `version-constraint`.
A pinned `version` reads nothing but the checksum file and records no size; nodejs.org never
states sizes. A file without a size is fetched on its hash alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar

from tljh_lock.core.schema import Table
from tljh_lock.core.targets import ARCHES, Target
from tljh_lock.lock.model import Artifact, Problem, Proof

UPSTREAMS = ("github", "nodejs")
GITHUB = "https://github.com"


def published_url(upstream: str, source: str, version: str, tag: str | None,
                  file_name: str) -> str:
    """Where `upstream` publishes a file of a release: GitHub's release downloads of the tag,
    or the version's folder of a nodejs.org-style dist (`source`)."""
    if upstream == "github":
        assert tag is not None
        return f"{GITHUB}/{source}/releases/download/{tag}/{file_name}"
    return f"{source}v{version}/{file_name}"


@dataclass(frozen=True)
class ReleaseFile:
    arch: str
    artifact: Artifact  # size is None when unknown (see the module docstring)
    top_dir: str | None = None

    @classmethod
    def from_table(cls, table: Table) -> ReleaseFile:
        arch = table.string("arch")
        if arch not in ARCHES:
            table.fail(f"unknown arch {arch!r} (expected one of {', '.join(ARCHES)})", "arch")
        if table.data.get("size") == 0:
            table.fail("an empty file is not a release artifact", "size")
        top_dir = table.string("top-dir", optional=True)
        if top_dir is not None and ("/" in top_dir or top_dir in (".", "..")):
            table.fail(f"{top_dir!r} is not a single folder name", "top-dir")
        return cls(arch, Artifact.from_table(table), top_dir)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"arch": self.arch, **self.artifact.to_dict()}
        if self.top_dir:
            data["top-dir"] = self.top_dir
        return data


@dataclass
class Component:
    kind: ClassVar[str] = "release"
    recipe: str
    recipe_hash: str
    upstream: str
    source: str  # github: "owner/repo"; nodejs: the dist base URL
    version: str
    arch_files: tuple[ReleaseFile, ...]  # sorted by arch
    tag: str | None = None  # github only
    binary: str | None = None

    @classmethod
    def from_table(cls, table: Table) -> Component:
        upstream = table.string("upstream")
        if upstream not in UPSTREAMS:
            table.fail(f"unknown upstream {upstream!r} (expected one of {', '.join(UPSTREAMS)})",
                       "upstream")
        binary = table.string("binary", optional=True)
        if binary is not None and (binary.startswith("/") or ".." in binary.split("/")):
            table.fail(f"{binary!r} is not a relative path inside the archive", "binary")
        arch_files = tuple(ReleaseFile.from_table(t) for t in table.tables("artifacts"))
        if [f.arch for f in arch_files] != sorted({f.arch for f in arch_files}):
            table.fail("one artifact per arch, sorted by arch", "artifacts")
        return cls(
            recipe=table.string("recipe"),
            recipe_hash=table.string("recipe-hash"),
            upstream=upstream,
            source=table.string("repo") if upstream == "github" else table.url("dist"),
            version=table.version("version"),
            arch_files=arch_files,
            tag=table.string("tag") if upstream == "github" else None,
            binary=binary,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"recipe": self.recipe, "recipe-hash": self.recipe_hash,
                                "upstream": self.upstream}
        if self.upstream == "github":
            data["repo"] = self.source
            data["tag"] = self.tag
        else:
            data["dist"] = self.source
        data["version"] = self.version
        if self.binary:
            data["binary"] = self.binary
        data["artifacts"] = [f.to_dict() for f in self.arch_files]
        return data

    @property
    def name(self) -> str:
        return PurePosixPath(self.recipe).stem

    def expected_url(self, file_name: str) -> str:
        return published_url(self.upstream, self.source, self.version, self.tag, file_name)

    def artifacts(self, targets: list[Target], arch: str | None = None) -> list[Artifact]:
        arches = {t.arch for t in targets if arch is None or t.arch == arch}
        return sorted(f.artifact for f in self.arch_files if f.arch in arches)

    def prove(self, targets: list[Target]) -> list[Proof]:
        return [Proof("", [Problem(p) for p in self.problems(targets)], self.summary())]

    def problems(self, targets: list[Target]) -> list[str]:
        problems = []
        by_arch = {f.arch: f for f in self.arch_files}
        for arch in sorted({t.arch for t in targets}):
            if arch not in by_arch:
                names = ", ".join(sorted(t.name for t in targets if t.arch == arch))
                problems.append(f"no artifact for {arch} (needed by {names})")
        if self.tag is not None and self.version not in self.tag:
            problems.append(f"tag {self.tag!r} does not name version {self.version}")
        for file in self.arch_files:
            name = file.artifact.name
            if self.version not in name:
                problems.append(f"{file.arch}: {name} does not name version {self.version}")
            if file.artifact.url != self.expected_url(name):
                problems.append(f"{file.arch}: {file.artifact.url} is not where {self.upstream} "
                                f"publishes {name} (expected {self.expected_url(name)})")
            if file.top_dir is not None and self.version not in file.top_dir:
                problems.append(f"{file.arch}: top-dir {file.top_dir!r} does not name version "
                                f"{self.version}")
        return problems

    def names(self) -> set[str]:
        return {self.name}

    def versions(self) -> dict[str, tuple[str, ...]]:
        return {self.name: (self.version,)}

    def files(self) -> list[Artifact]:
        return sorted(f.artifact for f in self.arch_files)

    def file_for(self, arch: str) -> ReleaseFile | None:
        """What the applier installs on `arch`, with how to unpack it."""
        return next((f for f in self.arch_files if f.arch == arch), None)

    def summary(self) -> str:
        where = f"{self.source} {self.tag}" if self.upstream == "github" else self.source
        arches = ", ".join(f.arch for f in self.arch_files)
        return f"{self.name} {self.version} from {where} ({arches})"

