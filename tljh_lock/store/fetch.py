"""`fetch`: every artifact of a lock into the store, verified, in parallel, resumable.

Each file is tried from the store mirrors first (`URL/sha256/<hex>`: another store, an unpacked
bundle), then from its canonical URL through the mirror map. A download stops reading at the
size the lock declares; an interrupted one is resumed with a Range request; a stalled one times
out. Only a file whose size and sha256 match enters the store. (Some upstreams publish a
checksum but no size: such an artifact is bounded by `MAX_UNDECLARED_BYTES` and its hash.)
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Optional

import urllib3

from tljh_lock.core import treehash
from tljh_lock.core.errors import IntegrityError, TljhLockError, UpstreamError
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.store.cas import CHUNK, SourceRecord, Store, disk_full, mismatch
from tljh_lock.upstream.http import pool_manager
from tljh_lock.upstream.mirrors import MirrorMap

# An attempt that moved less than this counts against `attempts`: a server that sends a few
# bytes and stalls every time must not keep us resuming forever.
MIN_PROGRESS = 256 * 1024
MAX_SOURCE_BYTES = 1 << 30  # a source archive has no declared size; refuse absurd ones
MAX_UNDECLARED_BYTES = 8 << 30  # the same for an artifact whose lock entry has no size

HINT_RETRY = "run fetch again: it resumes where this one stopped"


@dataclass
class FetchReport:
    downloaded: int = 0
    present: int = 0
    bytes: int = 0
    resumed: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"downloaded": self.downloaded, "already_present": self.present,
                "bytes": self.bytes, "resumed": self.resumed,
                "seconds": round(self.seconds, 3)}


def lock_sources(lock: Lock) -> list[pip_lock.Source]:
    return sorted({source for comp in lock.components.values()
                   if isinstance(comp, pip_lock.Component) for source in comp.sources},
                  key=lambda s: (s.name, s.commit))


class Fetcher:
    def __init__(
        self,
        store: Store,
        mirrors: MirrorMap | None = None,
        store_mirrors: Sequence[str] = (),
        *,
        jobs: int = 4,
        stall_timeout: float = 30.0,
        attempts: int = 5,
        backoff: float = 0.5,
        progress: bool = False,
    ) -> None:
        self.store = store
        self.mirrors = mirrors or MirrorMap()
        self.store_mirrors = [m.rstrip("/") for m in store_mirrors]
        self.jobs = max(1, jobs)
        self.attempts = attempts
        self.backoff = backoff
        self.progress = progress
        self._timeout = urllib3.Timeout(connect=15, read=stall_timeout)
        self._stall_timeout = stall_timeout
        self._pool: Optional[urllib3.PoolManager] = None
        self._pool_lock = threading.Lock()
        self._unreachable: set[str] = set()  # store mirrors that failed to connect

    @property
    def pool(self) -> urllib3.PoolManager:
        # Created on first use: a run against a full store touches no network at all.
        with self._pool_lock:
            if self._pool is None:
                self._pool = pool_manager(self.jobs)
            return self._pool

    def _retries(self) -> urllib3.Retry:
        return urllib3.Retry(
            total=self.attempts, backoff_factor=self.backoff,
            status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",),
            raise_on_status=False,
        )

    # --- artifacts ----------------------------------------------------------------------------

    def fetch(self, artifacts: Iterable[Artifact]) -> FetchReport:
        started = time.monotonic()
        unique = {a.sha256: a for a in sorted(artifacts)}
        report = FetchReport()
        missing = [a for a in unique.values() if not self.store.has(a.sha256, a.size)]
        report.present = len(unique) - len(missing)
        if missing:
            self.store.ensure_dirs()
            bar = self._bar(sum(a.size or 0 for a in missing), len(missing))
            errors: list[TljhLockError] = []
            try:
                with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                    futures = [(a, pool.submit(self._fetch_one, a, bar)) for a in missing]
                    for artifact, future in futures:
                        try:
                            resumed = future.result()
                        except TljhLockError as exc:
                            errors.append(exc)
                            continue
                        report.downloaded += 1
                        report.resumed += int(resumed)
                        report.bytes += self.store.path(artifact.sha256).stat().st_size
            finally:
                bar.close()
            if errors:
                raise _combined(errors)
        report.seconds = time.monotonic() - started
        return report

    def _bar(self, total: int, count: int) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=f"fetching {count} files", disable=not self.progress, leave=False)

    def candidates(self, artifact: Artifact) -> list[tuple[str | None, str]]:
        """(store mirror or None for the canonical URL, URL to GET), in the order to try."""
        found: list[tuple[str | None, str]] = [
            (m, f"{m}/sha256/{artifact.sha256}") for m in self.store_mirrors
            if m not in self._unreachable]
        return [*found, (None, self.mirrors.to_mirror(artifact.url))]

    def _fetch_one(self, artifact: Artifact, bar: Any) -> bool:
        """Download one artifact into the store; True if it resumed a partial transfer."""
        urls = self.candidates(artifact)
        failures: list[str] = []
        for index, (store_mirror, url) in enumerate(urls):
            try:
                return self._download(artifact, url, bar)
            except TljhLockError as exc:
                if index == len(urls) - 1:
                    if failures:
                        exc.message += "\n  also tried: " + "\n  also tried: ".join(failures)
                    raise
                if isinstance(exc, _Unreachable) and store_mirror is not None:
                    # Each try costs the retries' backoff: do not pay it again for every file.
                    self._unreachable.add(store_mirror)
                failures.append(exc.message.replace("\n", " "))
        raise AssertionError("unreachable: the canonical URL is always a candidate")

    def _download(self, artifact: Artifact, url: str, bar: Any) -> bool:
        part = self.store.part_path(artifact.sha256)
        with _locked_part(part) as fh:
            if self.store.has(artifact.sha256, artifact.size):
                # Another process finished it while we waited; the part we hold is a new,
                # empty one (the finished one was renamed into the store).
                if fh.seek(0, io.SEEK_END) == 0:
                    part.unlink(missing_ok=True)
                return False
            sink = _Sink(fh, _limit(artifact), bar)
            resumed = sink.offset > 0
            try:
                if sink.offset == artifact.size:
                    pass  # complete but not yet verified (interrupted just before): check it
                elif url.startswith("file://"):
                    self._copy_local(artifact, url, sink)
                else:
                    resumed |= self._get_http(artifact, url, sink)
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:
                part.unlink(missing_ok=True)
                if exc.errno == errno.ENOSPC:
                    raise disk_full(self.store.root, artifact.name) from None
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
            self.store.commit(part, artifact.sha256)
            return resumed

    def _copy_local(self, artifact: Artifact, url: str, sink: _Sink) -> None:
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        try:
            src = open(path, "rb")  # noqa: SIM115 - closed below, errors mapped first
        except OSError as exc:
            raise UpstreamError(f"{artifact.name}: cannot read {url}: {exc.strerror}") from None
        with src:
            src.seek(sink.offset)
            try:
                _copy_bounded(artifact, url, src.read, sink, "")
            except _Interrupted as exc:
                raise UpstreamError(f"{artifact.name}: cannot read {url}: {exc.cause}") from None

    def _get_http(self, artifact: Artifact, url: str, sink: _Sink) -> bool:
        """GET `url` into `sink`, resuming after interruptions; True if it resumed."""
        failures = 0
        resumed = False
        while True:
            offset = sink.offset
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                response = self.pool.request(
                    "GET", url, headers=headers, preload_content=False,
                    retries=self._retries(), timeout=self._timeout)
            except urllib3.exceptions.HTTPError as exc:
                raise _Unreachable(f"{artifact.name}: cannot fetch {url}: {_reason(exc)}",
                                    hint="check the network or the mirror map") from None
            try:
                status = response.status
                partial = status == 206 and _range_starts_at(response, offset)
                if status == 200 or partial:
                    if status == 200 and offset:
                        sink.reset()  # the server ignored the range: take the whole file
                    try:
                        _copy_bounded(artifact, url,
                                      functools.partial(response.read1, decode_content=False),
                                      sink, response.headers.get("Content-Type", ""),
                                      announced=_content_length(response))
                        return resumed
                    except _Interrupted as exc:
                        reason = _reason(exc.cause, self._stall_timeout)
                elif (artifact.size is None and status == 416
                      and response.headers.get("Content-Range") == f"bytes */{offset}"):
                    return resumed  # the part was complete: nothing more to send
                elif offset and status in (206, 416):
                    sink.reset()  # our partial file disagrees with the server's: start over
                    reason = f"HTTP {status} to a resume from byte {offset}"
                else:
                    raise _http_status(artifact, url, status)
            finally:
                response.release_conn()
            if sink.offset - offset < MIN_PROGRESS:
                failures += 1
            if failures >= self.attempts:
                raise UpstreamError(
                    f"{artifact.name}: {url}: the transfer broke off {failures} times "
                    f"({reason}); {sink.offset} of {_declared(artifact)} bytes kept for a resume",
                    hint=HINT_RETRY)
            resumed = True
            time.sleep(self.backoff * (2 ** min(failures, 5)) if failures else 0)


class _Unreachable(UpstreamError):
    """No response at all (after urllib3's retries), as opposed to a bad one."""


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


def _copy_bounded(artifact: Artifact, url: str, read: Any, sink: _Sink, content_type: str,
                  announced: int | None = None) -> None:
    """Copy until EOF but never past the declared size."""
    limit = _limit(artifact)
    if artifact.size is not None:
        too_big = f"the {limit} bytes the lock declares"
    else:
        too_big = f"{limit} bytes, the limit for a file whose size the lock does not declare"
    if announced is not None and sink.offset + announced > limit:
        raise IntegrityError(
            f"{artifact.name}: {url} announces {sink.offset + announced} bytes, more than "
            f"{too_big} (expected sha256 {artifact.sha256}); not downloaded"
            + _html_note(content_type),
            hint="the mirror serves a different file; fix or drop that mirror")
    while True:
        try:
            chunk = read(min(CHUNK, limit - sink.offset + 1))
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError,
                urllib3.exceptions.SSLError, OSError) as exc:
            raise _Interrupted(exc) from None
        if not chunk:
            break
        if sink.offset + len(chunk) > limit:
            raise IntegrityError(
                f"{artifact.name}: {url} sent more than {too_big} "
                f"(expected sha256 {artifact.sha256}); stopped reading"
                + _html_note(content_type),
                hint="the mirror serves a different file; fix or drop that mirror")
        sink.write(chunk)
    # The response ended normally: a short body is not an interruption but a different file.
    actual = sink.digest.hexdigest()
    if sink.offset < (artifact.size or 0) or (artifact.size is None and actual != artifact.sha256):
        raise mismatch(artifact.name, url, artifact.sha256, artifact.size, actual, sink.offset,
                       _html_note(content_type))


def _html_note(content_type: str) -> str:
    if content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return ("\n  the server answered with a web page (text/html) instead of the file: an "
                "error or login page, or a proxy's notice")
    return ""


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _range_starts_at(response: urllib3.BaseHTTPResponse, offset: int) -> bool:
    value = response.headers.get("Content-Range", "")
    return value.startswith(f"bytes {offset}-")


def _http_status(artifact: Artifact, url: str, status: int) -> UpstreamError:
    return UpstreamError(f"{artifact.name}: {url} answered HTTP {status}",
                         hint="check that the mirror holds this file, or drop that mirror")


def _reason(exc: BaseException, stall_timeout: float | None = None) -> str:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError) and stall_timeout is not None:
        return f"stalled: no data for {stall_timeout:g} s"
    return str(exc) or type(exc).__name__


def _combined(errors: list[TljhLockError]) -> TljhLockError:
    if len(errors) == 1:
        return errors[0]
    # Integrity problems first: they say the mirror is wrong, not only slow.
    errors.sort(key=lambda e: not isinstance(e, IntegrityError))
    combined = type(errors[0])(
        f"{len(errors)} files failed:\n" + "\n".join(f"- {e.message}" for e in errors),
        hint=errors[0].hint)
    return combined


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


# --- source pins ------------------------------------------------------------------------------


def fetch_sources(fetcher: Fetcher, sources: Iterable[pip_lock.Source]) -> list[SourceRecord]:
    return [fetch_source(fetcher, source) for source in sources]


def fetch_source(fetcher: Fetcher, source: pip_lock.Source) -> SourceRecord:
    """The archive of a source pin, verified by its tree hash, stored under its sha256."""
    store = fetcher.store
    record = store.source_record(source.name, source.commit, source.tree_hash)
    if record is not None:
        return record
    urls = [f"{m}/sources/{source.name}-{source.commit}.json" for m in fetcher.store_mirrors]
    tried: list[str] = []
    for url in urls:
        try:
            described = json.loads(_get_small(fetcher, url, 1 << 16))
            artifact = Artifact(f"{source.name}-{source.commit}.tar.gz", source.url,
                                int(described["size"]), str(described["sha256"]))
            fetcher.store.ensure_dirs()
            fetcher._download(artifact, f"{url.rsplit('/sources/', 1)[0]}/sha256/"
                              f"{artifact.sha256}", _NoBar())
            data = store.path(artifact.sha256).read_bytes()
            return _keep_source(store, source, data, url)
        except (TljhLockError, ValueError, KeyError, TypeError) as exc:
            tried.append(f"{url}: {exc}".replace("\n", " "))
    url = fetcher.mirrors.to_mirror(source.url)
    try:
        data = _get_small(fetcher, url, MAX_SOURCE_BYTES)
    except TljhLockError as exc:
        if tried:
            exc.message += "\n  also tried: " + "\n  also tried: ".join(tried)
        raise
    return _keep_source(store, source, data, url)


def _keep_source(store: Store, source: pip_lock.Source, data: bytes, url: str) -> SourceRecord:
    actual = treehash.tree_hash(treehash.archive_files(data, url).items())
    if actual != source.tree_hash:
        raise IntegrityError(
            f"source {source.name} at {source.commit}: {url} is not the pinned tree\n"
            f"  expected tree hash {source.tree_hash}\n  actual   tree hash {actual}",
            hint="nothing was stored; check the mirror map for this archive")
    sha256, size = store.add_stream(io.BytesIO(data), f"{source.name}.tar.gz",
                                    f"source {source.name}")
    record = SourceRecord(source.name, source.commit, source.tree_hash, sha256, size)
    store.record_source(record)
    return record


def _get_small(fetcher: Fetcher, url: str, limit: int) -> bytes:
    """A whole document of unknown size, at most `limit` bytes."""
    if url.startswith("file://"):
        path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise UpstreamError(f"cannot read {url}: {exc.strerror}") from None
    else:
        try:
            response = fetcher.pool.request("GET", url, preload_content=False,
                                            retries=fetcher._retries(), timeout=fetcher._timeout)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"cannot fetch {url}: {_reason(exc)}") from None
        try:
            if response.status != 200:
                raise UpstreamError(f"{url} answered HTTP {response.status}")
            data = response.read(limit + 1)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise UpstreamError(f"cannot fetch {url}: {_reason(exc, fetcher._stall_timeout)}",
                                hint=HINT_RETRY) from None
        finally:
            response.release_conn()
    if len(data) > limit:
        raise UpstreamError(f"{url} is larger than {limit} bytes; refusing it")
    return data


# --- from a store mirror only ------------------------------------------------------------------


def mirror_document(fetcher: Fetcher, mirror: str, name: str, limit: int) -> bytes:
    """A small file a store mirror serves beside its sha256/ (an unpacked bundle's manifest)."""
    return _get_small(fetcher, f"{mirror}/{name}", limit)


def fetch_from_mirror(fetcher: Fetcher, mirror: str, artifact: Artifact) -> None:
    """An artifact with no upstream of its own (a wheel a bundle built from a source), from
    that store mirror only, verified by the sha256 and size the caller was given."""
    fetcher.store.ensure_dirs()
    fetcher._download(artifact, f"{mirror}/sha256/{artifact.sha256}", _NoBar())


class _NoBar:
    def update(self, n: int) -> None:
        pass


def fetch_lock(lock: Lock, arch: str | None, fetcher: Fetcher) -> tuple[FetchReport,
                                                                         list[SourceRecord]]:
    """Everything an install on `arch` (None: every arch) needs, sources included."""
    report = fetcher.fetch(lock.artifacts(arch))
    started = time.monotonic()
    records = fetch_sources(fetcher, lock_sources(lock))
    report.seconds += time.monotonic() - started
    return report, records


def progress_wanted(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
