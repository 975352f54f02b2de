"""A local HTTP server standing in for every upstream (PyPI, GitHub, nodejs.org, npm, conda).

Layout: canonical ``https://<host>/<path>`` is the file ``ROOT/<host>/<path>``, served at
``http://127.0.0.1:<port>/<host>/<path>``; :meth:`FixtureUpstream.mirror_map` gives the prefix
map that points clients at it.

Directories are never listed. A directory URL serves, in this order:

* ``index.json`` as ``application/vnd.pypi.simple.v1+json`` when the ``Accept`` header asks for
  it (PEP 691 negotiation);
* ``index.html`` (after a 301 to the trailing-slash URL, as PyPI does, so that the relative
  links in the page resolve);
* ``index.json`` as ``application/json`` otherwise: this is how to lay out URLs that are both a
  document and a prefix of other URLs, such as an npm packument
  (``registry.npmjs.org/<name>/index.json`` next to ``registry.npmjs.org/<name>/-/<tgz>``).

Faults can be injected per URL path (see :data:`FAULTS`), to test that clients verify what they
download and survive broken transfers.
"""

from __future__ import annotations

import mimetypes
import os
import re
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Optional, Union
from urllib.parse import unquote, urlsplit

__all__ = ["FAULTS", "HOSTS", "FixtureUpstream"]

# The canonical upstream hosts; each is a top-level directory of the fixture root.
HOSTS = (
    "pypi.org",
    "files.pythonhosted.org",
    "github.com",
    "api.github.com",
    "nodejs.org",
    "registry.npmjs.org",
    "conda.anaconda.org",
)

FAULTS = {
    "truncate-once": "first GET promises the full length, sends half, closes; later GETs fine",
    "corrupt": "one byte flipped in the middle of the body, same length",
    "oversize": "extra bytes after the file, Content-Length counts them",
    "stall": "headers and a few bytes, then nothing for ~30 s (or until the server stops)",
    "html": "200 with a text/html error page instead of the file",
    "404": "404 although the file exists",
}

PYPI_JSON = "application/vnd.pypi.simple.v1+json"
PYPI_HTML = "application/vnd.pypi.simple.v1+html"
OVERSIZE_EXTRA = 64 * 1024
STALL_SECONDS = 30.0
STALL_PREFIX = 16
CHUNK = 64 * 1024

RequestLog = tuple[str, str, Optional[str]]  # (method, path, Range header)


class FixtureUpstream:
    """Serve ``root`` on 127.0.0.1 from a background thread; use as a context manager.

    ``requests`` logs ``(method, path, range header or None)`` of every request, in order.
    ``faults`` maps a URL path (``/files.pythonhosted.org/packages/...``, as logged) to one of
    :data:`FAULTS`; it may be changed while the server runs.
    """

    def __init__(self, root: Union[str, Path], port: int = 0) -> None:
        self.root = Path(root)
        self.requests: list[RequestLog] = []
        self.faults: dict[str, str] = {}
        self._requested_port = port
        self._lock = threading.Lock()
        self._tripped: set[str] = set()  # truncate-once paths already truncated
        self._stopping = threading.Event()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FixtureUpstream:
        if self._httpd is not None:
            raise RuntimeError("FixtureUpstream already started")
        self._stopping.clear()
        self._httpd = _Server(("127.0.0.1", self._requested_port), _Handler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fixture-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # releases stalled responses
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FixtureUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FixtureUpstream is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def mirror_map(self) -> dict[str, str]:
        """``{"https://<host>/": "<base_url><host>/"}`` for every host in :data:`HOSTS`."""
        return {f"https://{host}/": f"{self.base_url}{host}/" for host in HOSTS}

    def url_for(self, canonical_url: str) -> str:
        """The served URL of a canonical ``https://<host>/<path>`` URL."""
        return self.base_url + _host_path(canonical_url)

    @staticmethod
    def path_for(canonical_url: str) -> str:
        """The URL path (key of ``faults``, as in ``requests``) of a canonical URL."""
        return "/" + _host_path(canonical_url)

    def clear(self) -> None:
        """Forget logged requests, faults and which truncate-once faults already fired."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self._tripped.clear()

    # --- used by the handler ------------------------------------------------------------------

    def _record(self, method: str, path: str, range_header: Optional[str]) -> Optional[str]:
        """Log a request and return the fault to apply to it, if any."""
        with self._lock:
            self.requests.append((method, path, range_header))
            fault = self.faults.get(path)
            if fault == "truncate-once":
                if method != "GET" or path in self._tripped:
                    return None
                self._tripped.add(path)
            return fault


def _host_path(canonical_url: str) -> str:
    parts = urlsplit(canonical_url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(f"not a canonical https:// URL: {canonical_url!r}")
    return parts.netloc + (parts.path or "/")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        upstream: FixtureUpstream,
    ) -> None:
        self.upstream = upstream
        super().__init__(address, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response is what the fault modes provoke: not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real upstreams and urllib3 pools use
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests read FixtureUpstream.requests instead

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # --- responses ----------------------------------------------------------------------------

    def _serve(self, head: bool) -> None:
        upstream = self.server.upstream
        path = urlsplit(self.path).path
        range_header = self.headers.get("Range")
        fault = upstream._record(self.command, path, range_header)

        if fault == "404":
            return self._send_text(404, "not found (injected fault)\n", head=head)
        if fault == "html":
            page = "<!DOCTYPE html>\n<html><body><h1>Service unavailable</h1></body></html>\n"
            return self._send_text(200, page, "text/html; charset=utf-8", head=head)

        target = self._resolve(upstream.root, path)
        if target is None:
            return self._send_text(404, "not found\n", head=head)
        if isinstance(target, str):  # a redirect
            return self._send_text(301, "", location=target, head=head)
        file_path, content_type = target
        with open(file_path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self._send_file(fh, size, content_type, range_header, fault, head)

    def _resolve(self, root: Path, url_path: str) -> Union[None, str, tuple[Path, str]]:
        segments = [unquote(s) for s in url_path.split("/")]
        if segments[:1] != [""] or any(s in (".", "..") or "\0" in s for s in segments):
            return None
        trailing_slash = segments[-1] == ""
        parts = [s for s in segments if s]
        # No ".." and no absolute parts, so this stays under root (symlinks placed there by the
        # fixture author are followed on purpose: large real binaries need not be copied).
        fs_path = root.joinpath(*parts)
        if fs_path.is_file():
            return None if trailing_slash else (fs_path, _content_type(fs_path))
        if not fs_path.is_dir():
            return None
        index_json = fs_path / "index.json"
        index_html = fs_path / "index.html"
        accept = self.headers.get("Accept", "")
        if PYPI_JSON in accept and index_json.is_file():
            if not trailing_slash:
                return url_path + "/"
            return index_json, PYPI_JSON
        if index_html.is_file():
            if not trailing_slash:
                return url_path + "/"
            html_type = PYPI_HTML if PYPI_HTML in accept else "text/html; charset=utf-8"
            return index_html, html_type
        if index_json.is_file():
            return index_json, "application/json"
        return None

    def _send_text(
        self,
        status: int,
        text: str,
        content_type: str = "text/plain; charset=utf-8",
        *,
        location: Optional[str] = None,
        head: bool = False,
    ) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(
        self,
        fh: BinaryIO,
        size: int,
        content_type: str,
        range_header: Optional[str],
        fault: Optional[str],
        head: bool,
    ) -> None:
        start, end = 0, size - 1
        status = 200
        if range_header is not None:
            parsed = _parse_range(range_header, size)
            if parsed == "unsatisfiable":
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if parsed is not None:  # else: a form we do not support; answer with the whole file
                start, end = parsed
                status = 206
        length = end - start + 1

        announced = length + (OVERSIZE_EXTRA if fault == "oversize" else 0)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(announced))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if fault in ("truncate-once", "stall"):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if head:
            return

        fh.seek(start)
        if fault == "truncate-once":
            self._copy(fh, length // 2)
        elif fault == "stall":
            self._copy(fh, min(STALL_PREFIX, length))
            self.wfile.flush()
            self.server.upstream._stopping.wait(STALL_SECONDS)
        elif fault == "corrupt":
            data = bytearray(fh.read(length))
            if data:
                data[len(data) // 2] ^= 0xFF
            self.wfile.write(bytes(data))
        else:
            self._copy(fh, length)
            if fault == "oversize":
                self.wfile.write(b"\0" * OVERSIZE_EXTRA)

    def _copy(self, fh: BinaryIO, length: int) -> None:
        for chunk in _chunks(fh, length):
            self.wfile.write(chunk)


def _chunks(fh: BinaryIO, length: int) -> Iterator[bytes]:
    while length > 0:
        chunk = fh.read(min(CHUNK, length))
        if not chunk:
            return
        length -= len(chunk)
        yield chunk


def _parse_range(header: str, size: int) -> Union[None, str, tuple[int, int]]:
    """A single ``bytes=`` range as (first, last), "unsatisfiable", or None if not handled."""
    match = _RANGE.match(header.strip())
    if match is None:  # multiple ranges or other units: RFC 9110 lets us ignore the header
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:  # syntactically invalid: ignored, like other forms
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(int(last), size - 1) if last else size - 1


def _content_type(path: Path) -> str:
    if path.suffix == ".json":
        return "application/json"
    guessed, encoding = mimetypes.guess_type(path.name)
    # A .tar.gz is "application/x-tar" + gzip encoding; it travels as plain bytes, not encoded.
    if guessed is None or encoding is not None:
        return "application/octet-stream"
    return guessed
