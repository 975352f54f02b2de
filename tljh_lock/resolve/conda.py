"""Resolve a `conda` recipe: solve per platform with py-rattler, verify every file ourselves.

conda-lock solves by running a conda/mamba/micromamba binary, which these machines cannot
install; py-rattler (the Rust solver behind pixi) solves in-process. We fetch each channel's
`repodata.json` ourselves, through the mirror map like every other upstream document, and hand
rattler local copies, so rattler never touches the network. rattler is known to have installed
a package whose sha256 did not match, so nothing it says about a file is trusted: every file
of the solution is downloaded here and its size, sha256 and md5 compared with the repodata.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import re
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tljh_lock.core.errors import IntegrityError, UpstreamError
from tljh_lock.core.targets import Target
from tljh_lock.lock import model
from tljh_lock.lock.kinds.conda import PLATFORMS, Component, CondaPackage
from tljh_lock.lock.recipes import Recipe
from tljh_lock.upstream import pypi as pypi_index
from tljh_lock.upstream.http import Client

CHANNEL_HOST = "https://conda.anaconda.org/"
SOLVE_TIMEOUT = datetime.timedelta(minutes=10)
# A Linux kernel old enough for every supported distribution (Debian 11 ships 5.10).
LINUX_VERSION = "5.10"
_GLIBC = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class CondaRecipe:
    file: str
    hash: str
    channels: tuple[str, ...]  # canonical URLs
    specs: tuple[str, ...]
    platforms: tuple[str, ...]
    glibc: str

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> CondaRecipe:
        from rattler import MatchSpec
        from rattler.exceptions import InvalidMatchSpecError

        table = recipe.table
        channels = []
        for index, channel in enumerate(table.strings("channels")):
            if "://" not in channel:
                channel = CHANNEL_HOST + channel  # a channel name, as conda takes it
            if not channel.startswith("https://"):
                table.fail(f"{channel!r} is neither a channel name nor an https:// URL",
                           f"channels[{index}]")
            channels.append(channel.rstrip("/"))
        if not channels:
            table.fail("no channels", "channels")
        specs = table.strings("specs")
        for index, spec in enumerate(specs):
            try:
                MatchSpec(spec)
            except InvalidMatchSpecError as exc:
                table.fail(f"not a valid match spec: {exc}", f"specs[{index}]")
        if not specs:
            table.fail("no specs", "specs")
        platforms = table.strings("platforms", optional=True) or sorted(PLATFORMS.values())
        for index, platform in enumerate(platforms):
            if platform not in PLATFORMS.values():
                table.fail(f"unknown platform {platform!r} (known: "
                           f"{', '.join(sorted(PLATFORMS.values()))})", f"platforms[{index}]")
        glibc = table.string("glibc")
        if not _GLIBC.match(glibc):
            table.fail(f"{glibc!r} is not a glibc version like 2.31", "glibc")
        return cls(recipe.file, recipe.hash, tuple(channels), tuple(specs),
                   tuple(sorted(set(platforms))), glibc)


def resolve_recipe(recipe: Recipe, targets: list[Target], client: Client,
                   previous: model.Component | None, upgrade: set[str],
                   resolved: Mapping[str, model.Component]) -> Component:
    own = previous if isinstance(previous, Component) else None
    return resolve(CondaRecipe.from_recipe(recipe), client, own, set(upgrade))


def resolve(recipe: CondaRecipe, client: Client, previous: Component | None,
            upgrade: set[str]) -> Component:
    where = f"recipes/{recipe.file}"
    packages: list[CondaPackage] = []
    with tempfile.TemporaryDirectory(prefix="tljh-lock-conda-") as tmp:
        subdirs = sorted({*recipe.platforms, "noarch"})
        repodata = {(channel, subdir): fetch_repodata(client, channel, subdir, Path(tmp), where)
                    for channel in recipe.channels for subdir in subdirs}
        for platform in recipe.platforms:
            packages += solve(recipe, platform, repodata, previous, upgrade, where)
    verify_files(client, packages, where)
    return Component(
        recipe=recipe.file,
        recipe_hash=recipe.hash,
        channels=recipe.channels,
        specs=recipe.specs,
        platforms=recipe.platforms,
        glibc=recipe.glibc,
        packages=tuple(sorted(packages)),
    )


def fetch_repodata(client: Client, channel: str, subdir: str, work: Path, where: str) -> Path:
    document = client.get(f"{channel}/{subdir}/repodata.json", accept="application/json",
                          what=f"{where}: repodata")
    path = work / f"{hashlib.sha256(document.canonical_url.encode()).hexdigest()}.json"
    path.write_bytes(document.data)
    return path


def virtual_packages(platform: str, glibc: str) -> list[Any]:
    """The system a solution is for: Linux, the oldest supported glibc, the base arch."""
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    arch = next(a for a, p in PLATFORMS.items() if p == platform)
    return [
        GenericVirtualPackage(PackageName(name), Version(version), BuildString(build))
        for name, version, build in (("__unix", "0", "0"), ("__linux", LINUX_VERSION, "0"),
                                     ("__glibc", glibc, "0"), ("__archspec", "1", arch))
    ]


def solve(recipe: CondaRecipe, platform: str, repodata: dict[tuple[str, str], Path],
          previous: Component | None, upgrade: set[str], where: str) -> list[CondaPackage]:
    from rattler import Channel, PackageName, SparseRepoData, solve_with_sparse_repodata
    from rattler.exceptions import SolverError

    sparse = [SparseRepoData(Channel(channel), subdir, repodata[(channel, subdir)])
              for channel in recipe.channels for subdir in (platform, "noarch")]
    try:
        # What the lock had stays unless the recipe or an upgrade moves it (as for pip sets).
        keep = {(p.name, p.version, p.build) for p in (previous.for_platform(platform)
                if previous else ()) if p.name not in upgrade}
        locked = [record for data in sparse for name in {k[0] for k in keep}
                  for record in data.load_records(PackageName(name))
                  if (record.name.normalized, str(record.version), str(record.build)) in keep]
        records = asyncio.run(solve_with_sparse_repodata(
            list(recipe.specs), sparse, locked_packages=locked,
            virtual_packages=virtual_packages(platform, recipe.glibc),
            timeout=SOLVE_TIMEOUT, strategy="highest"))
    except SolverError as exc:
        raise UpstreamError(f"{where}: no solution for {platform}: {exc}",
                            hint=f"relax a spec in {where}") from None
    finally:
        for data in sparse:
            data.close()
    return [package_of(record, platform, recipe.channels, where) for record in records]


def package_of(record: Any, platform: str, channels: tuple[str, ...], where: str
               ) -> CondaPackage:
    name = record.name.normalized
    channel = next((c for c in channels if record.url.startswith(c + "/")), None)
    if channel is None or record.sha256 is None or record.md5 is None or not record.size:
        raise UpstreamError(f"{where}: {record.url}: the repodata lacks its channel, sha256, "
                            "md5 or size")
    url = f"{channel}/{record.subdir}/{record.file_name}"
    if record.url != url:
        raise UpstreamError(f"{where}: {name}: repodata points at {record.url}, not {url}")
    return CondaPackage(
        platform=platform, name=name, version=str(record.version), build=str(record.build),
        subdir=record.subdir, channel=channel, url=url, size=int(record.size),
        sha256=record.sha256.hex(), md5=record.md5.hex(),
        depends=tuple(str(d) for d in record.depends),
    )


def verify_files(client: Client, packages: list[CondaPackage], where: str) -> None:
    """Download every file once and compare it with the repodata: size, sha256 and md5."""
    unique = sorted({(p.artifact, p.md5) for p in packages})

    def verify(item: tuple[Any, str]) -> None:
        artifact, md5 = item
        data = pypi_index.download(client, artifact, where)
        # md5 is conda's own check (conda-lock records it); FIPS builds allow it this way.
        if hashlib.md5(data, usedforsecurity=False).hexdigest() != md5:
            raise IntegrityError(f"{where}: {artifact.name} does not match the md5 of the "
                                 "repodata", hint="the channel or a mirror serves another file")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(verify, unique))
