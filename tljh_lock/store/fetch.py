"""`fetch`: every artifact of a lock into the store, verified, in parallel, resumable.

Each file is tried from the store mirrors first (`URL/sha256/<hex>`: another store, an unpacked
bundle), then from its canonical URL through the mirror map; `download` moves each one in.
Source pins are fetched whole and kept once their tree hash matches.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tljh_lock.core import treehash
from tljh_lock.core.errors import IntegrityError, TljhLockError
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.store.cas import SourceRecord, Store
from tljh_lock.store.download import download
from tljh_lock.upstream.http import Client, Unreachable
from tljh_lock.upstream.mirrors import MirrorMap

MAX_SOURCE_BYTES = 1 << 30  # a source archive has no declared size; refuse absurd ones


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
        self.client = Client(self.mirrors, self.jobs, attempts=attempts, backoff=backoff,
                             read_timeout=stall_timeout)
        self._unreachable: set[str] = set()  # store mirrors that failed to connect

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
                if isinstance(exc, Unreachable) and store_mirror is not None:
                    # Each try costs the retries' backoff: do not pay it again for every file.
                    self._unreachable.add(store_mirror)
                failures.append(exc.message.replace("\n", " "))
        raise AssertionError("unreachable: the canonical URL is always a candidate")

    def _download(self, artifact: Artifact, url: str, bar: Any) -> bool:
        return download(self.store, self.client, artifact, url, bar, attempts=self.attempts,
                        backoff=self.backoff)

def _combined(errors: list[TljhLockError]) -> TljhLockError:
    if len(errors) == 1:
        return errors[0]
    # Integrity problems first: they say the mirror is wrong, not only slow.
    errors.sort(key=lambda e: not isinstance(e, IntegrityError))
    combined = type(errors[0])(
        f"{len(errors)} files failed:\n" + "\n".join(f"- {e.message}" for e in errors),
        hint=errors[0].hint)
    return combined


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
            described = json.loads(fetcher.client.read_all(url, limit=1 << 16)[0])
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
        data = fetcher.client.read_all(url, limit=MAX_SOURCE_BYTES)[0]
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


# --- from a store mirror only ------------------------------------------------------------------


def mirror_document(fetcher: Fetcher, mirror: str, name: str, limit: int) -> bytes:
    """A small file a store mirror serves beside its sha256/ (an unpacked bundle's manifest)."""
    return fetcher.client.read_all(f"{mirror}/{name}", limit=limit)[0]


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
