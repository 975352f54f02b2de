"""GitHub releases, read through the REST API's release list and its download URLs.

Only what resolving needs: each published release's tag and, per asset, its size and (for
releases since mid-2025) the sha256 digest GitHub computed on upload. Where the assets are
downloaded from is the lock's to say (lock/kinds/release.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tljh_lock.core.errors import UpstreamError
from tljh_lock.upstream.http import Client, json_list

API = "https://api.github.com"
ACCEPT = "application/vnd.github+json"
PER_PAGE = 100
# traefik has ~700 releases; a repository with more than this is not one we resolve against.
MAX_PAGES = 30

_SHA256_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


@dataclass(frozen=True)
class Asset:
    name: str
    size: int
    sha256: str | None  # GitHub's own digest, absent on older releases


@dataclass(frozen=True)
class Release:
    tag: str
    draft: bool
    prerelease: bool
    assets: dict[str, Asset]


def releases_url(repo: str, page: int) -> str:
    return f"{API}/repos/{repo}/releases?per_page={PER_PAGE}&page={page}"


def list_releases(client: Client, repo: str, what: str) -> list[Release]:
    """Every release of `repo`, drafts and prereleases included (the caller filters)."""
    releases: list[Release] = []
    for page in range(1, MAX_PAGES + 1):
        url = releases_url(repo, page)
        document = client.get(url, accept=ACCEPT, what=what)
        items = parse_release_page(document.data, url)
        releases += items
        # A short page is the last one; the Link header would say so too, but a static
        # mirror (a folder, the fixture upstream) has no headers to give.
        if len(items) < PER_PAGE:
            return releases
    raise UpstreamError(f"{what}: {repo} has more than {MAX_PAGES * PER_PAGE} releases")


def parse_release_page(data: bytes, url: str) -> list[Release]:
    items = json_list(data, url, "releases")
    return [_release(item, f"{url} [{index}]") for index, item in enumerate(items)]


def _release(item: Any, where: str) -> Release:
    if not isinstance(item, dict) or not isinstance(item.get("tag_name"), str):
        raise UpstreamError(f"{where}: not a release (no tag_name)")
    assets: dict[str, Asset] = {}
    for asset in item.get("assets") or []:
        name, size = asset.get("name"), asset.get("size")
        if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool):
            raise UpstreamError(f"{where}: asset without a name and a size: {asset!r}")
        digest = asset.get("digest")
        match = _SHA256_DIGEST.match(digest) if isinstance(digest, str) else None
        assets[name] = Asset(name, size, match.group(1) if match else None)
    return Release(
        tag=item["tag_name"],
        draft=bool(item.get("draft")),
        prerelease=bool(item.get("prerelease")),
        assets=assets,
    )
