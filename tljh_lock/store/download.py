"""One artifact into the store: a resumable, bounded transfer, verified before it enters.

Bytes land in the store's `tmp/<sha256>.part`, locked against another process fetching the same
file. A transfer stops reading at the size the lock declares; an interrupted one is resumed
with a Range request (a `file://` URL answers as a web server would); a stalled one times out.
Only a file whose size and sha256 match is renamed into `sha256/`. (Some upstreams publish a
checksum but no size: such an artifact is bounded by `MAX_UNDECLARED_BYTES` and its hash.)
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import time
from pathlib import Path
from typing import IO, Any

from tljh_lock.core.errors import IntegrityError, TljhLockError, UpstreamError
from tljh_lock.core.files import CHUNK
from tljh_lock.lock.model import Artifact
from tljh_lock.store.cas import Store, disk_full, mismatch
from tljh_lock.upstream.http import READ_ERRORS, Body, Client, reason

# An attempt that moved less than this counts against `attempts`: a server that sends a few
# bytes and stalls every time must not keep us resuming forever.
MIN_PROGRESS = 256 * 1024
MAX_UNDECLARED_BYTES = 8 << 30  # the bound for an artifact whose lock entry has no size

HINT_RETRY = "run fetch again: it resumes where this one stopped"


def download(store: Store, client: Client, artifact: Artifact, url: str, bar: Any, *,
             attempts: int, backoff: float) -> bool:
    """Fetch `artifact` from `url` into `store`; True if it resumed a partial transfer."""
    part = store.part_path(artifact.sha256)
    with _locked_part(part) as fh:
        if store.has(artifact.sha256, artifact.size):
            # Another process finished it while we waited; the part we hold is a new,
            # empty one (the finished one was renamed into the store).
            if fh.seek(0, io.SEEK_END) == 0:
                part.unlink(missing_ok=True)
            return False
        sink = _Sink(fh, _limit(artifact), bar)
        resumed = sink.offset > 0
        try:
            if sink.offset != artifact.size:  # else complete but not yet verified: check it
                resumed |= _transfer(client, artifact, url, sink, attempts, backoff)
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            part.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise disk_full(store.root, artifact.name) from None
            raise TljhLockError(f"{artifact.name}: cannot write {part}: {exc}") from None
        except IntegrityError:
            part.unlink(missing_ok=True)
            raise
        except UpstreamError:
            if sink.offset == 0:
                part.unlink(missing_ok=True)
            raise
        actual = sink.digest.hexdigest()
        if actual != artifact.sha256 or sink.offset != (artifact.size or sink.offset):
            part.unlink(missing_ok=True)
            raise mismatch(artifact.name, url, artifact.sha256, artifact.size, actual,
                           sink.offset)
        store.commit(part, artifact.sha256)
        return resumed


def _transfer(client: Client, artifact: Artifact, url: str, sink: _Sink, attempts: int,
              backoff: float) -> bool:
    """GET `url` into `sink`, resuming after interruptions; True if it resumed."""
    failures = 0
    resumed = False
    while True:
        offset = sink.offset
        with client.open(url, offset=offset, what=artifact.name) as body:
            status = body.status
            partial = status == 206 and _range_starts_at(body, offset)
            if status == 200 or partial:
                if status == 200 and offset:
                    sink.reset()  # the server ignored the range: take the whole file
                try:
                    _copy_bounded(artifact, url, body, sink)
                    return resumed
                except _Interrupted as exc:
                    why = reason(exc.cause, client.read_timeout)
            elif (artifact.size is None and status == 416
                  and body.headers.get("Content-Range") == f"bytes */{offset}"):
                return resumed  # the part was complete: nothing more to send
            elif offset and status in (206, 416):
                sink.reset()  # our partial file disagrees with the server's: start over
                why = f"HTTP {status} to a resume from byte {offset}"
            else:
                raise UpstreamError(
                    f"{artifact.name}: {url} answered HTTP {status}",
                    hint="check that the mirror holds this file, or drop that mirror")
        if sink.offset - offset < MIN_PROGRESS:
            failures += 1
        if failures >= attempts:
            raise UpstreamError(
                f"{artifact.name}: {url}: the transfer broke off {failures} times "
                f"({why}); {sink.offset} of {_declared(artifact)} bytes kept for a resume",
                hint=HINT_RETRY)
        resumed = True
        time.sleep(backoff * (2 ** min(failures, 5)) if failures else 0)


class _Interrupted(Exception):
    """Reading broke off (not writing: a full disk is no reason to retry)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Sink:
    """The .part file being written, with the running hash of everything in it."""

    def __init__(self, fh: IO[bytes], limit: int, bar: Any) -> None:
        self.fh = fh
        self.bar = bar
        self.digest = hashlib.sha256()
        self.offset = fh.seek(0, io.SEEK_END)
        if self.offset > limit:
            self.reset()
        fh.seek(0)
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            self.digest.update(chunk)
        self.bar.update(self.offset)

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)
        self.digest.update(chunk)
        self.offset += len(chunk)
        self.bar.update(len(chunk))

    def reset(self) -> None:
        self.fh.seek(0)
        self.fh.truncate(0)
        self.digest = hashlib.sha256()
        self.bar.update(-self.offset)
        self.offset = 0


def _limit(artifact: Artifact) -> int:
    return artifact.size if artifact.size is not None else MAX_UNDECLARED_BYTES


def _declared(artifact: Artifact) -> str:
    return str(artifact.size) if artifact.size is not None else "undeclared"


def _copy_bounded(artifact: Artifact, url: str, body: Body, sink: _Sink) -> None:
    """Copy until EOF but never past the declared size."""
    limit = _limit(artifact)
    if artifact.size is not None:
        too_big = f"the {limit} bytes the lock declares"
    else:
        too_big = f"{limit} bytes, the limit for a file whose size the lock does not declare"
    announced = body.length
    if announced is not None and sink.offset + announced > limit:
        raise IntegrityError(
            f"{artifact.name}: {url} announces {sink.offset + announced} bytes, more than "
            f"{too_big} (expected sha256 {artifact.sha256}); not downloaded"
            + _html_note(body.content_type),
            hint="the mirror serves a different file; fix or drop that mirror")
    while True:
        try:
            chunk = body.read(min(CHUNK, limit - sink.offset + 1))
        except READ_ERRORS as exc:
            raise _Interrupted(exc) from None
        if not chunk:
            break
        if sink.offset + len(chunk) > limit:
            raise IntegrityError(
                f"{artifact.name}: {url} sent more than {too_big} "
                f"(expected sha256 {artifact.sha256}); stopped reading"
                + _html_note(body.content_type),
                hint="the mirror serves a different file; fix or drop that mirror")
        sink.write(chunk)
    # The response ended normally: a short body is not an interruption but a different file.
    actual = sink.digest.hexdigest()
    if sink.offset < (artifact.size or 0) or (artifact.size is None and actual != artifact.sha256):
        raise mismatch(artifact.name, url, artifact.sha256, artifact.size, actual, sink.offset,
                       _html_note(body.content_type))


def _html_note(content_type: str) -> str:
    if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return ("\n  the server answered with a web page (text/html) instead of the file: an "
                "error or login page, or a proxy's notice")
    return ""


def _range_starts_at(body: Body, offset: int) -> bool:
    return body.headers.get("Content-Range", "").startswith(f"bytes {offset}-")


class _locked_part:
    """The .part file, opened for update and locked against another fetch of the same file."""

    def __init__(self, part: Path) -> None:
        self.part = part

    def __enter__(self) -> IO[bytes]:
        while True:
            fd = os.open(self.part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.part).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fh = os.fdopen(fd, "r+b")
                return self.fh
            os.close(fd)  # renamed into the store or removed while we waited: look again

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self.fh.close()
        except OSError:
            if exc_type is None:
                raise
            # closing flushed what a failed write had buffered (ENOSPC again): report the first
