"""Resolve a `release` recipe: pick the version, then read the upstream's own checksum files.

A recipe names where the upstream publishes (a GitHub repository or a nodejs.org-style dist
folder), how its files are named, and which version it wants:

    kind = "release"
    upstream = "github"                          # or "nodejs" (with `dist = ".../dist/"`)
    repo = "traefik/traefik"
    tag = "v{version}"                           # github; the default
    version = "3.6.5"                            # or version-constraint = ">=3.6,<3.7"
    asset = "traefik_v{version}_{platform}.tar.gz"
    platforms = { x86_64 = "linux_amd64", aarch64 = "linux_arm64" }
    checksums = "traefik_v{version}_checksums.txt"   # or "{asset}.sha256": one per asset
    binary = "traefik"                           # optional, copied into the lock
    top-dir = "node-v{version}-linux-{platform}" # optional, rendered per arch

`checksums` is a file name in the same release (nodejs: the same dist folder; default
SHASUMS256.txt), in `sha256sum` format, which every one of these upstreams uses.

`version-constraint` is a PEP 440 specifier set (`>=22.12,<23`, `~=3.6.0`), matched against
the upstream's versions read as PEP 440 versions (`24.7.1-2` is `24.7.1.post2`); semver
ranges (`^22`) are not understood. Drafts, GitHub prereleases and PEP 440 prereleases are
skipped. The newest match wins, except that a previously locked version that still matches is
kept: the lock moves only when asked to.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from tljh_lock.core.errors import InputError, IntegrityError, UpstreamError
from tljh_lock.core.schema import Table
from tljh_lock.core.targets import ARCHES, Target
from tljh_lock.lock import model
from tljh_lock.lock.kinds.release import UPSTREAMS, Component, ReleaseFile, published_url
from tljh_lock.lock.model import Artifact
from tljh_lock.lock.recipes import Recipe
from tljh_lock.upstream import github as github_releases
from tljh_lock.upstream import nodejs as nodejs_dist
from tljh_lock.upstream.http import Client

_KEYS = {
    "kind", "after", "upstream", "repo", "dist", "tag", "version", "version-constraint",
    "asset", "platforms", "checksums", "binary", "top-dir",
}
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ReleaseRecipe:
    where: str  # the recipe file, as errors name it
    file: str
    hash: str
    upstream: str
    source: str  # github: "owner/repo"; nodejs: the dist base URL
    tag: str | None
    version: str | None
    constraint: SpecifierSet | None
    asset: str
    platforms: dict[str, str]
    checksums: str
    binary: str | None
    top_dir: str | None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ReleaseRecipe:
        table = recipe.table
        for key in sorted(set(table.data) - _KEYS):
            table.fail(f"unknown key (known: {', '.join(sorted(_KEYS))})", key)
        upstream = table.string("upstream")
        if upstream not in UPSTREAMS:
            table.fail(f"unknown upstream {upstream!r} (expected one of {', '.join(UPSTREAMS)})",
                       "upstream")
        github = upstream == "github"
        for key in ("dist",) if github else ("repo", "tag"):
            if key in table.data:
                table.fail(f"not a key of upstream {upstream!r}", key)
        if github:
            source = table.string("repo")
            if not _REPO.match(source):
                table.fail(f"{source!r} is not a GitHub repository like owner/name", "repo")
        else:
            source = table.url("dist", optional=True) or nodejs_dist.DIST
            if not source.endswith("/"):
                table.fail(f"{source!r} must end with /", "dist")
        version = table.version("version") if "version" in table.data else None
        constraint = table.specifier("version-constraint", optional=True)
        if (version is None) == (constraint is None):
            table.fail("give exactly one of `version` and `version-constraint`")
        platforms_table = table.table("platforms")
        assert platforms_table is not None
        platforms = {arch: platforms_table.string(arch) for arch in platforms_table.data}
        for arch in platforms:
            if arch not in ARCHES:
                platforms_table.fail(f"unknown arch (expected one of {', '.join(ARCHES)})", arch)
        tag = _template(table, "tag", {"version"}, "v{version}") if github else None
        if tag is not None and "{version}" not in tag:
            table.fail("must contain {version}", "tag")
        checksums = _template(table, "checksums", {"version", "platform", "asset"},
                              None if github else nodejs_dist.CHECKSUMS)
        assert checksums is not None
        return cls(
            where=table.source,
            file=recipe.file,
            hash=recipe.hash,
            upstream=upstream,
            source=source,
            tag=tag,
            version=version,
            constraint=SpecifierSet(constraint) if constraint is not None else None,
            asset=_template(table, "asset", {"version", "platform"}) or "",
            platforms=platforms,
            checksums=checksums,
            binary=table.string("binary", optional=True),
            top_dir=_template(table, "top-dir", {"version", "platform", "asset"}, optional=True),
        )


def _template(table: Table, key: str, fields: set[str], default: str | None = None,
              optional: bool = False) -> str | None:
    value: str | None = table.string(key, optional=optional or default is not None)
    if value is None:
        return default
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        table.fail(f"not a valid template: {exc}", key)
    unknown = used - fields  # includes "" for a positional {}
    if unknown:
        table.fail(f"unknown placeholder {{{sorted(unknown)[0]}}} (known: "
                   f"{', '.join('{' + f + '}' for f in sorted(fields))})", key)
    return value


@dataclass(frozen=True)
class Choice:
    """The version picked, with what the release list said about its files, if it was read."""

    version: str
    tag: str | None
    listed: dict[str, github_releases.Asset] | None = None


def resolve(recipe: ReleaseRecipe, targets: list[Target], client: Client,
            previous: Component | None) -> Component:
    arches = sorted({t.arch for t in targets})
    for arch in arches:
        if arch not in recipe.platforms:
            raise InputError(f"{recipe.where}: platforms: no entry for {arch}, which the "
                             "targets need")
    if previous is not None and (previous.upstream, previous.source) != (
            recipe.upstream, recipe.source):
        previous = None
    choice = choose(recipe, client, previous)
    assets = {arch: recipe.asset.format(version=choice.version, platform=recipe.platforms[arch])
              for arch in arches}
    if choice.listed is not None:
        for arch, name in assets.items():
            if name not in choice.listed:
                raise UpstreamError(f"{recipe.where}: release {choice.tag} of {recipe.source} "
                                    f"has no asset {name} (for {arch})")
    sums = checksums(recipe, client, choice, assets)
    files = []
    for arch in arches:
        name = assets[arch]
        size = None
        if choice.listed is not None:
            listed = choice.listed[name]
            if listed.sha256 is not None and listed.sha256 != sums[arch]:
                raise IntegrityError(
                    f"{recipe.where}: {name}: the checksum file says {sums[arch]}, GitHub's "
                    f"release list says {listed.sha256}")
            if listed.size <= 0:
                raise UpstreamError(f"{recipe.where}: {name} is empty upstream")
            size = listed.size
        top_dir = None
        if recipe.top_dir is not None:
            top_dir = recipe.top_dir.format(version=choice.version,
                                            platform=recipe.platforms[arch], asset=name)
        files.append(ReleaseFile(arch, Artifact(name, download_url(recipe, choice, name), size,
                                                sums[arch]), top_dir))
    component = Component(
        recipe=recipe.file, recipe_hash=recipe.hash, upstream=recipe.upstream,
        source=recipe.source, version=choice.version, arch_files=tuple(files),
        tag=choice.tag, binary=recipe.binary,
    )
    # Rendered templates are upstream-controlled strings: the lock reader's checks (plain file
    # names, https URLs) must hold before the lock is written, not when it is next read.
    return Component.from_table(Table(component.to_dict(), "", f"{recipe.where} (resolved)"))


def choose(recipe: ReleaseRecipe, client: Client, previous: Component | None) -> Choice:
    if recipe.version is not None:
        return Choice(recipe.version, _tag(recipe, recipe.version))
    assert recipe.constraint is not None
    listed: dict[str, Choice] = {}
    if recipe.upstream == "github":
        for release in github_releases.list_releases(client, recipe.source, recipe.where):
            version = _tag_version(recipe, release.tag)
            if version is not None and not release.draft and not release.prerelease:
                listed[version] = Choice(version, release.tag, release.assets)
    else:
        for node in nodejs_dist.list_releases(client, recipe.source, recipe.where):
            listed[node.version] = Choice(node.version, None)
    parsed = {}
    for version in listed:
        try:
            parsed[version] = Version(version)
        except InvalidVersion:
            continue  # not a release line a PEP 440 constraint can name
    matching = [v for v in listed if v in parsed and recipe.constraint.contains(parsed[v])]
    if previous is not None and recipe.constraint.contains(previous.version, prereleases=True):
        if previous.version not in listed:
            raise UpstreamError(
                f"{recipe.where}: the locked release {previous.version} has vanished from "
                f"{_listing(recipe)}",
                hint=f"update --upgrade-package {previous.name} moves to the newest match, if "
                "the removal was intended",
            )
        return listed[previous.version]
    if not matching:
        newest = sorted(parsed, key=parsed.__getitem__, reverse=True)[:5]
        raise UpstreamError(
            f"{recipe.where}: version-constraint {str(recipe.constraint)!r} matches no release "
            f"in {_listing(recipe)} (newest: {', '.join(newest) or 'none'})",
            hint="relax version-constraint, or pin a `version`",
        )
    return listed[max(matching, key=parsed.__getitem__)]


def _listing(recipe: ReleaseRecipe) -> str:
    if recipe.upstream == "github":
        return github_releases.releases_url(recipe.source, 1).split("?")[0]
    return recipe.source + "index.json"


def _tag(recipe: ReleaseRecipe, version: str) -> str | None:
    return recipe.tag.format(version=version) if recipe.tag is not None else None


def _tag_version(recipe: ReleaseRecipe, tag: str) -> str | None:
    assert recipe.tag is not None
    prefix, _, suffix = recipe.tag.partition("{version}")
    if len(tag) > len(prefix) + len(suffix) and tag.startswith(prefix) and tag.endswith(suffix):
        return tag[len(prefix):len(tag) - len(suffix)]
    return None


def download_url(recipe: ReleaseRecipe, choice: Choice, file_name: str) -> str:
    return published_url(recipe.upstream, recipe.source, choice.version, choice.tag, file_name)


def checksums(recipe: ReleaseRecipe, client: Client, choice: Choice,
              assets: dict[str, str]) -> dict[str, str]:
    """The published sha256 of each arch's asset; each checksum file is read once."""
    documents: dict[str, dict[str, str]] = {}
    found = {}
    for arch, asset in sorted(assets.items()):
        name = recipe.checksums.format(version=choice.version, platform=recipe.platforms[arch],
                                       asset=asset)
        url = download_url(recipe, choice, name)
        if url not in documents:
            if choice.listed is not None and name not in choice.listed:
                raise UpstreamError(f"{recipe.where}: release {choice.tag} of {recipe.source} "
                                    f"has no checksum file {name}")
            try:
                document = client.get(url, what=recipe.where)
            except UpstreamError as exc:
                raise UpstreamError(
                    exc.message, hint=f"is {choice.version} published? A release that has "
                    "vanished upstream cannot be locked again") from None
            documents[url] = parse_sha256sums(document.data, url, only=asset)
        sha256 = documents[url].get(asset)
        if sha256 is None:
            raise UpstreamError(f"{recipe.where}: {url} has no sha256 for {asset} ({arch})")
        found[arch] = sha256
    return found


def parse_sha256sums(data: bytes, url: str, only: str) -> dict[str, str]:
    """`sha256sum` output: `<hex>  <name>` lines (`*<name>` in binary mode). A file holding
    just a hash (some `.sha256` files) is taken to be the hash of `only`."""
    try:
        lines = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise UpstreamError(f"{url}: not a checksum file (not UTF-8)") from None
    sums: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        digest, _, name = line.partition(" ")
        digest = digest.lower()
        name = name.strip().lstrip("*")
        if not _SHA256.match(digest) or (not name and len(lines) > 1):
            raise UpstreamError(f"{url}: line {number} is not `<sha256>  <file name>`: "
                                f"{line[:120]!r}")
        sums[name or only] = digest
    return sums


def resolve_recipe(recipe: Recipe, targets: list[Target], client: Client,
                   previous: model.Component | None, upgrade: set[str],
                   resolved: Mapping[str, model.Component]) -> Component:
    own = previous if isinstance(previous, Component) else None
    return resolve(ReleaseRecipe.from_recipe(recipe), targets, client, own)
