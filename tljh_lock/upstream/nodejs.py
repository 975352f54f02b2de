"""nodejs.org/dist: the release list (`index.json`) and each release's folder.

`index.json` lists every release as `{"version": "v22.12.0", "files": ["linux-x64", ...],
"lts": "Jod" or false, ...}`; the files of release X live under `<dist>/vX/`, their sha256
in `<dist>/vX/SHASUMS256.txt`. Neither gives file sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tljh_lock.core.errors import UpstreamError
from tljh_lock.upstream.http import Client, json_list

DIST = "https://nodejs.org/dist/"
CHECKSUMS = "SHASUMS256.txt"


@dataclass(frozen=True)
class Release:
    version: str  # without the leading "v"
    files: tuple[str, ...]  # builds, e.g. "linux-x64"
    lts: str | None  # the LTS line's codename


def list_releases(client: Client, dist: str, what: str) -> list[Release]:
    url = dist + "index.json"
    return parse_index(client.get(url, accept="application/json", what=what).data, url)


def parse_index(data: bytes, url: str) -> list[Release]:
    items = json_list(data, url, "releases")
    releases = []
    for index, item in enumerate(items):
        version = item.get("version") if isinstance(item, dict) else None
        if not isinstance(version, str) or not version.startswith("v"):
            raise UpstreamError(f"{url} [{index}]: no version like v22.12.0: {item!r}")
        files = item.get("files") or []
        lts = item.get("lts")
        releases.append(Release(
            version=version[1:],
            files=tuple(f for f in files if isinstance(f, str)),
            lts=lts if isinstance(lts, str) and lts else None,
        ))
    return releases
