"""Reading small upstream documents (indexes, release JSON, checksum files) through mirrors.

Retries with backoff and timeouts come from urllib3. TLS uses the system trust store, as pip
does, so that sites behind a TLS-intercepting proxy work.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from tljh_lock.core.errors import UpstreamError
from tljh_lock.upstream.mirrors import MirrorMap

_SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
USER_AGENT = "tljh-lock"


def parse_json(data: bytes, url: str) -> Any:
    """An upstream's JSON document; anything else is the upstream's fault, named by URL."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise UpstreamError(f"{url}: not JSON: {exc}") from None


def json_list(data: bytes, url: str, of: str) -> list[Any]:
    items = parse_json(data, url)
    if not isinstance(items, list):
        raise UpstreamError(f"{url}: expected a list of {of}, found {type(items).__name__}")
    return items


def system_ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not os.environ.get("SSL_CERT_FILE"):
        for bundle in _SYSTEM_CA_BUNDLES:
            if os.path.exists(bundle):
                context.load_verify_locations(bundle)
                break
    return context


def retry_policy() -> urllib3.Retry:
    return urllib3.Retry(
        total=5,
        # A host that does not resolve or refuses is a "no", not a hiccup: retry it once only.
        connect=1,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )


def pool_manager(max_connections: int = 8) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        num_pools=16,
        maxsize=max_connections,
        ssl_context=system_ssl_context(),
        retries=retry_policy(),
        timeout=urllib3.Timeout(connect=15, read=60),
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True)
class Document:
    canonical_url: str
    fetched_url: str  # where the bytes came from (a mirror, perhaps): base for relative links
    data: bytes
    content_type: str
    mirrors: MirrorMap

    def resolve(self, link: str) -> str:
        """A link found in this document, as a canonical URL."""
        return self.mirrors.to_canonical(urllib.parse.urljoin(self.fetched_url, link))


class Client:
    """GETs canonical URLs through the mirror map; `file://` mirrors read local folders."""

    def __init__(self, mirrors: MirrorMap | None = None, max_connections: int = 8) -> None:
        self.mirrors = mirrors or MirrorMap()
        self._pool = pool_manager(max_connections)

    def get(self, canonical_url: str, *, accept: str | None = None, what: str = "") -> Document:
        url = self.mirrors.to_mirror(canonical_url)
        where = canonical_url if url == canonical_url else f"{canonical_url} (via {url})"
        label = f"{what}: " if what else ""
        if url.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            if path.is_dir():
                # A static folder cannot negotiate content: prefer the JSON form when asked.
                wants_json = accept is not None and "json" in accept
                use_json = wants_json and (path / "index.json").is_file()
                path = path / ("index.json" if use_json else "index.html")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UpstreamError(f"{label}cannot read {where}: {exc.strerror}") from None
            return Document(canonical_url, url, data, "", self.mirrors)
        headers = {"Accept": accept} if accept else {}
        try:
            response = self._pool.request("GET", url, headers=headers, preload_content=True)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(
                f"{label}cannot reach {where}: {exc}",
                hint="check the network or the mirror map (--mirror / --mirror-config)",
            ) from None
        if response.status != 200:
            raise UpstreamError(f"{label}{where} answered HTTP {response.status}")
        content_type = response.headers.get("Content-Type", "")
        return Document(canonical_url, url, response.data, content_type, self.mirrors)
