"""The one way tljh-lock reads a URL: `file://` from a local folder, `http(s)://` through one
urllib3 pool, with one retry policy and the system's CA bundle.

`Client.open` gives a body to read from an offset on (what `fetch` resumes with); `Client.get`
reads a whole small document (an index page, a release list, a checksum file) of a canonical
URL, through the mirror map. Retries with backoff and timeouts come from urllib3. TLS uses the
system trust store, as pip does, so that sites behind a TLS-intercepting proxy work.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import urllib3

from tljh_lock.core.errors import UpstreamError
from tljh_lock.upstream.mirrors import MirrorMap

_SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
USER_AGENT = "tljh-lock"
RETRIED_STATUSES = (429, 500, 502, 503, 504)
HINT_NETWORK = "check the network or the mirror map (--mirror / --mirror-config)"


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


def system_ca_file() -> str | None:
    """The CA bundle this system trusts: $SSL_CERT_FILE, else the distribution's bundle (for
    urllib3 and for node, which otherwise knows only its own)."""
    configured = os.environ.get("SSL_CERT_FILE")
    if configured:
        return configured
    defaults = ssl.get_default_verify_paths()
    for candidate in (*_SYSTEM_CA_BUNDLES, defaults.cafile, defaults.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def retry_policy(attempts: int = 5, backoff: float = 0.5) -> urllib3.Retry:
    return urllib3.Retry(
        total=attempts,
        # A host that does not resolve or refuses is a "no", not a hiccup: retry it once only.
        connect=min(1, attempts),
        backoff_factor=backoff,
        status_forcelist=RETRIED_STATUSES,
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )


def local_path(url: str) -> Path:
    """The file a `file://` URL names."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def reason(exc: BaseException, stall_timeout: float | None = None) -> str:
    """What went wrong, in words, without urllib3's wrapping."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError) and stall_timeout is not None:
        return f"stalled: no data for {stall_timeout:g} s"
    return str(exc) or type(exc).__name__


class Unreachable(UpstreamError):
    """No response at all (after the retries), as opposed to a bad one."""


# What reading a body may raise when the connection breaks or stalls.
READ_ERRORS = (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError,
               urllib3.exceptions.SSLError, OSError)


class Body:
    """A response to read: status, headers, and `read(n)` (at most n bytes, b"" at the end)."""

    status: int
    headers: Mapping[str, str]

    def read(self, n: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value and value.isdigit() else None

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HttpBody(Body):
    def __init__(self, response: urllib3.BaseHTTPResponse, decode: bool) -> None:
        self._response = response
        self._decode = decode
        self.status = response.status
        self.headers = response.headers

    def read(self, n: int) -> bytes:
        return self._response.read1(n, decode_content=self._decode)

    def close(self) -> None:
        self._response.release_conn()


class _FileBody(Body):
    """A local file answering as a web server does to a GET with a Range, without announcing a
    length: what is read is what counts."""

    def __init__(self, fh: IO[bytes], url: str, what: str, offset: int) -> None:
        self._fh = fh
        self._url = url
        self._what = what
        size = os.fstat(fh.fileno()).st_size
        if offset and offset >= size:
            self.status, self.headers = 416, {"Content-Range": f"bytes */{size}"}
        elif offset:
            fh.seek(offset)
            self.status = 206
            self.headers = {"Content-Range": f"bytes {offset}-{size - 1}/{size}"}
        else:
            self.status, self.headers = 200, {}

    def read(self, n: int) -> bytes:
        try:
            return self._fh.read(n)
        except OSError as exc:  # a local disk's error: resuming would only meet it again
            raise UpstreamError(f"{self._what}cannot read {self._url}: {exc.strerror}") from None

    def close(self) -> None:
        self._fh.close()


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
    """GETs URLs; `file://` ones read local folders. The pool is made on first use: a run
    against a full store touches no network at all."""

    def __init__(self, mirrors: MirrorMap | None = None, max_connections: int = 8, *,
                 attempts: int = 5, backoff: float = 0.5, read_timeout: float = 60.0) -> None:
        self.mirrors = mirrors or MirrorMap()
        self.read_timeout = read_timeout
        self._max_connections = max_connections
        self._retries = retry_policy(attempts, backoff)
        self._pool: urllib3.PoolManager | None = None
        self._pool_lock = threading.Lock()

    @property
    def pool(self) -> urllib3.PoolManager:
        with self._pool_lock:
            if self._pool is None:
                context = ssl.create_default_context()  # which honours $SSL_CERT_FILE itself
                bundle = system_ca_file()
                if bundle and not os.environ.get("SSL_CERT_FILE"):
                    context.load_verify_locations(bundle)
                self._pool = urllib3.PoolManager(
                    num_pools=16, maxsize=self._max_connections, ssl_context=context,
                    retries=self._retries,
                    timeout=urllib3.Timeout(connect=15, read=self.read_timeout),
                    headers={"User-Agent": USER_AGENT})
            return self._pool

    def open(self, url: str, *, offset: int = 0, accept: str | None = None, what: str = "",
             where: str | None = None, decode: bool = False) -> Body:
        """GET `url` as it is (no mirror map) from byte `offset` on. A folder answers with its
        `index.json` when JSON is accepted and there is one, else its `index.html` (a static
        folder cannot negotiate content). `decode` undoes a Content-Encoding (documents do,
        artifacts are hashed as sent)."""
        label = f"{what}: " if what else ""
        where = where or url
        if url.startswith("file://"):
            path = local_path(url)
            if path.is_dir():
                use_json = accept is not None and "json" in accept and (
                    path / "index.json").is_file()
                path = path / ("index.json" if use_json else "index.html")
            try:
                fh = open(path, "rb")  # noqa: SIM115 - the body closes it
            except OSError as exc:
                raise UpstreamError(f"{label}cannot read {where}: {exc.strerror}") from None
            return _FileBody(fh, where, label, offset)
        headers = {"Accept": accept} if accept else {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = self.pool.request("GET", url, headers=headers, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise Unreachable(f"{label}cannot reach {where}: {reason(exc)}",
                              hint=HINT_NETWORK) from None
        return _HttpBody(response, decode)

    def read_all(self, url: str, *, limit: int | None = None, accept: str | None = None,
                 what: str = "", where: str | None = None) -> tuple[bytes, str]:
        """The whole body of `url` (at most `limit` bytes) and its content type."""
        label = f"{what}: " if what else ""
        where = where or url
        with self.open(url, accept=accept, what=what, where=where, decode=True) as body:
            if body.status != 200:
                raise UpstreamError(f"{label}{where} answered HTTP {body.status}")
            chunks: list[bytes] = []
            size = 0
            try:
                while limit is None or size <= limit:
                    chunk = body.read(1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            except READ_ERRORS as exc:
                raise UpstreamError(f"{label}cannot read {where}: "
                                    f"{reason(exc, self.read_timeout)}",
                                    hint="the connection broke off: run this command again"
                                    ) from None
            if limit is not None and size > limit:
                raise UpstreamError(f"{label}{where} is larger than {limit} bytes; refusing it")
            return b"".join(chunks), body.content_type

    def get(self, canonical_url: str, *, accept: str | None = None, what: str = "",
            limit: int | None = None) -> Document:
        """The document at `canonical_url`, from its mirror if the map names one."""
        url = self.mirrors.to_mirror(canonical_url)
        where = canonical_url if url == canonical_url else f"{canonical_url} (via {url})"
        data, content_type = self.read_all(url, limit=limit, accept=accept, what=what,
                                           where=where)
        return Document(canonical_url, url, data, content_type, self.mirrors)
