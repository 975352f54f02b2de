"""The store and `fetch` against the fixture upstream, with its faults injected."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from tests.upstream import FixtureUpstream
from tljh_lock.core.errors import IntegrityError, TljhLockError, UpstreamError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.store import download as download_module
from tljh_lock.store import fetch as fetch_module
from tljh_lock.store.cas import Store
from tljh_lock.store.fetch import Fetcher, fetch_lock, lock_sources
from tljh_lock.upstream.mirrors import MirrorMap

TARGETS = [
    Target("debian-11-x86_64", "3.9.2", "2.31", "x86_64"),
    Target("debian-12-aarch64", "3.11.2", "2.36", "aarch64"),
    Target("debian-12-x86_64", "3.11.2", "2.36", "x86_64"),
]
PINS = {"fx-hub": "1.1.0", "fx-web": "1.1", "fx-backport": "1.0", "fx-speedups": "2.0",
        "fx-auth": "1.0", "fx-otp": "1.0.1"}
MARKERS = {"fx-backport": 'python_version < "3.11"'}


def scenario_lock(facts: dict[str, Any], extra: tuple[Artifact, ...] = ()) -> Lock:
    """A small hub lock over the fixture scenario: wheels, an sdist-only package that builds
    with `fixture-backend`, a TLJH source pin; `extra` adds one package per given wheel."""
    files: dict[tuple[str, str], list[Artifact]] = {}
    for name, info in facts["files"].items():
        if name.endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(name)
        else:
            project, version = parse_sdist_filename(name)
        artifact = Artifact(name, info["url"], info["size"], info["sha256"])
        files.setdefault((str(project), str(version)), []).append(artifact)

    def package(name: str, version: str, **kw: Any) -> pip_lock.Package:
        found = files[(name, version)]
        wheels = tuple(sorted(a for a in found if a.name.endswith(".whl")))
        sdists = [a for a in found if not a.name.endswith(".whl")]
        return pip_lock.Package(name, version, wheels=wheels,
                                sdist=sdists[0] if sdists else None, **kw)

    packages = [package(name, version, marker=MARKERS.get(name),
                        build_requires=("fixture-backend",) if name == "fx-otp" else ())
                for name, version in sorted(PINS.items())]
    for wheel in extra:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        packages.append(pip_lock.Package(str(name), str(version), wheels=(wheel,)))
    tljh = facts["tljh"]
    source = pip_lock.Source(
        tljh["name"], tljh["version"], tljh["archive_url"], tljh["commit"], tljh["tree_hash"],
        tuple(tljh["dependencies"]), ("fixture-backend",))
    hub = pip_lock.Component(
        recipe="hub.toml", recipe_hash="sha256:" + "0" * 64, index=facts["index_url"],
        roots=tuple(facts["requirements"]), sources=(source,), packages=tuple(packages),
        build_packages=(package("fixture-backend", "1.0"),))
    return Lock(targets=list(TARGETS), targets_hash="sha256:" + "0" * 64,
                components={"hub": hub})




def fetcher_for(upstream: FixtureUpstream, store: Path, **kw: Any) -> Fetcher:
    kw.setdefault("backoff", 0)
    return Fetcher(Store(store), MirrorMap.from_pairs(upstream.mirror_map()), **kw)


def stored(store: Path) -> set[str]:
    return {p.name for p in (store / "sha256").iterdir()} if (store / "sha256").is_dir() else set()


def leftovers(store: Path) -> list[str]:
    return sorted(p.name for p in (store / "tmp").iterdir()) if (store / "tmp").is_dir() else []


def one_wheel(facts: dict[str, Any], name: str = "fx_web-1.1-py3-none-any.whl") -> Artifact:
    info = facts["files"][name]
    return Artifact(name, info["url"], info["size"], info["sha256"])


# --- the happy path ---------------------------------------------------------------------------


def test_fetch_all_then_rerun_touches_no_network(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    _, facts = scenario
    lock = scenario_lock(facts)
    store = tmp_path / "store"
    report, records = fetch_lock(lock, None, fetcher_for(upstream, store, jobs=4))
    artifacts = lock.artifacts(None)
    assert report.downloaded == len(artifacts) and report.present == 0
    assert report.bytes == sum(a.size for a in artifacts)
    assert {a.sha256 for a in artifacts} | {records[0].sha256} == stored(store)
    assert records[0].sha256 == facts["tljh"]["sha256"]
    assert not any(a.name.endswith("win_amd64.whl") for a in artifacts)
    assert leftovers(store) == []
    record = json.loads((store / "sources" / f"{facts['tljh']['name']}-"
                         f"{facts['tljh']['commit']}.json").read_text())
    assert record["tree-hash"] == facts["tljh"]["tree_hash"]

    offline = fetcher_for(upstream, store)
    upstream.stop()  # a second run must not need the network at all
    again, _ = fetch_lock(lock, None, offline)
    assert (again.downloaded, again.present, again.bytes) == (0, len(artifacts), 0)


def test_platform_selects_files(scenario: tuple[Path, dict[str, Any]]) -> None:
    lock = scenario_lock(scenario[1])
    x86 = {a.name for a in lock.artifacts("x86_64")}
    arm = {a.name for a in lock.artifacts("aarch64")}
    assert any("x86_64" in n for n in x86) and not any("aarch64" in n for n in x86)
    assert any("aarch64" in n for n in arm) and not any("x86_64" in n for n in arm)
    assert "fx_otp-1.0.1.tar.gz" in x86 & arm  # sdist-only: fetched to be built
    assert any(n.startswith("fx_backport") for n in x86)  # python 3.9 target needs it
    assert not any(n.startswith("fx_backport") for n in arm)  # 3.11 only


# --- faults: nothing unverified enters the store ---------------------------------------------


@pytest.mark.parametrize("fault", ["corrupt", "html"])
def test_bad_bytes_are_refused(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path, fault: str
) -> None:
    wheel = one_wheel(scenario[1])
    upstream.faults[upstream.path_for(wheel.url)] = fault
    store = tmp_path / "store"
    with pytest.raises(IntegrityError) as caught:
        fetcher_for(upstream, store).fetch([wheel])
    message = str(caught.value)
    assert wheel.name in message and upstream.url_for(wheel.url) in message
    assert f"expected sha256 {wheel.sha256}" in message
    assert "actual   sha256 " in message
    actual = message.split("actual   sha256 ")[1].split()[0]
    assert len(actual) == 64 and actual != wheel.sha256
    if fault == "html":
        assert "web page (text/html)" in message
    assert stored(store) == set() and leftovers(store) == []


def test_swapped_file_is_refused(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wanted = one_wheel(scenario[1], "fx_web-1.1-py3-none-any.whl")
    other = one_wheel(scenario[1], "fx_web-1.0-py3-none-any.whl")
    served = upstream.url_for(other.url)
    # The mirror answers the 1.1 URL with the 1.0 file (a stale or tampered mirror).
    mirrors = MirrorMap.from_pairs({**upstream.mirror_map(), wanted.url: served})
    store = tmp_path / "store"
    with pytest.raises(IntegrityError) as caught:
        Fetcher(Store(store), mirrors, backoff=0).fetch([wanted])
    message = str(caught.value)
    assert wanted.name in message and served in message
    assert other.size == wanted.size  # same size: only the hash can tell them apart
    assert f"expected sha256 {wanted.sha256}" in message
    assert f"actual   sha256 {other.sha256}" in message
    assert stored(store) == set() and leftovers(store) == []


def test_oversize_stops_at_declared_size(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    upstream.faults[upstream.path_for(wheel.url)] = "oversize"
    store = tmp_path / "store"
    with pytest.raises(IntegrityError, match="announces .* the lock declares"):
        fetcher_for(upstream, store).fetch([wheel])
    assert stored(store) == set() and leftovers(store) == []


def test_oversize_without_length_stops_reading(tmp_path: Path) -> None:
    """No Content-Length to judge by (a file:// mirror here): read one byte past, then stop."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.whl").write_bytes(b"x" * 100 + b"extra")
    artifact = Artifact("f.whl", "https://example.invalid/f.whl", 100,
                        __import__("hashlib").sha256(b"x" * 100).hexdigest())
    store = tmp_path / "store"
    mirrors = MirrorMap.from_pairs({"https://example.invalid/": mirror.as_uri() + "/"})
    with pytest.raises(IntegrityError, match="sent more than the 100 bytes"):
        Fetcher(Store(store), mirrors).fetch([artifact])
    assert stored(store) == set() and leftovers(store) == []


def test_undeclared_size_is_bounded_and_hashed(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Release checksum files give a sha256 but no size: the hash decides, a limit bounds."""
    wheel = one_wheel(scenario[1])
    unsized = Artifact(wheel.name, wheel.url, None, wheel.sha256)  # type: ignore[arg-type]
    store = tmp_path / "store"
    path = upstream.path_for(wheel.url)
    upstream.faults[path] = "corrupt"
    with pytest.raises(IntegrityError, match="size not declared"):
        fetcher_for(upstream, store).fetch([unsized])
    monkeypatch.setattr(download_module, "MAX_UNDECLARED_BYTES", wheel.size - 1)
    upstream.faults.clear()
    with pytest.raises(IntegrityError, match="limit for a file whose size the lock does not"):
        fetcher_for(upstream, store).fetch([unsized])
    assert stored(store) == set() and leftovers(store) == []
    monkeypatch.undo()
    upstream.faults[path] = "truncate-once"
    report = fetcher_for(upstream, store).fetch([unsized])
    assert (report.downloaded, report.resumed, report.bytes) == (1, 1, wheel.size)
    assert stored(store) == {wheel.sha256}
    assert fetcher_for(upstream, store).fetch([unsized]).present == 1


def test_truncated_download_resumes(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    path = upstream.path_for(wheel.url)
    upstream.faults[path] = "truncate-once"
    store = tmp_path / "store"
    report = fetcher_for(upstream, store).fetch([wheel])
    assert (report.downloaded, report.resumed) == (1, 1)
    ranges = [r for method, p, r in upstream.requests if p == path]
    assert ranges[0] is None
    assert ranges[1] == f"bytes={wheel.size // 2}-"  # the second request resumed mid-file
    assert stored(store) == {wheel.sha256} and leftovers(store) == []


def test_stall_times_out_then_resumes(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    path = upstream.path_for(wheel.url)
    upstream.faults[path] = "stall"
    store = tmp_path / "store"
    with pytest.raises(UpstreamError, match="stalled: no data for 0.3 s") as caught:
        fetcher_for(upstream, store, stall_timeout=0.3, attempts=2).fetch([wheel])
    assert "run fetch again" in str(caught.value)
    assert stored(store) == set()
    assert leftovers(store) == [f"{wheel.sha256}.part"]  # kept for the next run
    upstream.clear()
    report = fetcher_for(upstream, store).fetch([wheel])
    assert report.resumed == 1
    assert upstream.requests[0][2] is not None and upstream.requests[0][2].startswith("bytes=")
    assert stored(store) == {wheel.sha256} and leftovers(store) == []


def test_http_error_names_file_and_url(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    upstream.faults[upstream.path_for(wheel.url)] = "404"
    store = tmp_path / "store"
    with pytest.raises(UpstreamError, match="answered HTTP 404") as caught:
        fetcher_for(upstream, store).fetch([wheel])
    assert wheel.name in str(caught.value) and upstream.url_for(wheel.url) in str(caught.value)
    assert stored(store) == set() and leftovers(store) == []


def test_disk_full_is_a_clean_error(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wheel = one_wheel(scenario[1])

    def full(self: Any, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_module._Sink, "write", full)
    store = tmp_path / "store"
    with pytest.raises(TljhLockError, match="no space left") as caught:
        fetcher_for(upstream, store).fetch([wheel])
    assert "--store" in str(caught.value)
    assert stored(store) == set() and leftovers(store) == []


def test_several_failures_are_all_reported(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    good = one_wheel(scenario[1], "fx_auth-1.0-py3-none-any.whl")
    bad = [one_wheel(scenario[1]), one_wheel(scenario[1], "fx_web-1.0-py3-none-any.whl")]
    upstream.faults[upstream.path_for(bad[0].url)] = "404"
    upstream.faults[upstream.path_for(bad[1].url)] = "corrupt"
    store = tmp_path / "store"
    with pytest.raises(IntegrityError, match="2 files failed") as caught:
        fetcher_for(upstream, store, jobs=3).fetch([good, *bad])
    assert all(b.name in str(caught.value) for b in bad)
    assert stored(store) == {good.sha256}


def test_two_fetches_into_one_store(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    """Two runs at once (two cron jobs, say) share the store: each file is written once."""
    from concurrent.futures import ThreadPoolExecutor

    artifacts = scenario_lock(scenario[1]).artifacts(None)
    store = tmp_path / "store"
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: fetcher_for(upstream, store).fetch(artifacts), "ab"))
    assert sum(r.downloaded for r in reports) >= len(artifacts)
    assert stored(store) == {a.sha256 for a in artifacts} and leftovers(store) == []
    assert fetcher_for(upstream, store).fetch(artifacts).present == len(artifacts)


# --- store mirrors ----------------------------------------------------------------------------


def test_store_is_a_static_mirror(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    lock = scenario_lock(scenario[1])
    first = tmp_path / "first"
    fetch_lock(lock, "x86_64", fetcher_for(upstream, first))
    upstream.stop()  # the canonical upstream is gone: only the first store serves

    with FixtureUpstream(first) as server:
        second = tmp_path / "second"
        fetcher = Fetcher(Store(second), MirrorMap(), [server.base_url], backoff=0)
        report, records = fetch_lock(lock, "x86_64", fetcher)
        assert stored(second) == stored(first)
        assert report.downloaded == len(lock.artifacts("x86_64"))
        assert records == lock_records(first, lock)
        assert all(p.startswith(("/sha256/", "/sources/")) for _, p, _ in server.requests)

    third = tmp_path / "third"  # and as a file:// URL
    Fetcher(Store(third), MirrorMap(), [first.as_uri()]).fetch(lock.artifacts("x86_64"))
    assert stored(third) == stored(first) - {records[0].sha256}


def lock_records(store: Path, lock: Lock) -> list[Any]:
    return [Store(store).source_record(s.name, s.commit, s.tree_hash) for s in lock_sources(lock)]


def test_store_mirror_miss_falls_back_to_canonical(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    empty = tmp_path / "empty"
    empty.mkdir()
    fetcher = Fetcher(Store(tmp_path / "store"), MirrorMap.from_pairs(upstream.mirror_map()),
                      [empty.as_uri()], backoff=0)
    assert fetcher.fetch([wheel]).downloaded == 1


def test_unreachable_store_mirror_is_tried_once(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheels = [one_wheel(scenario[1], n) for n in scenario[1]["files"] if n.endswith("any.whl")]
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    fetcher = Fetcher(Store(tmp_path / "store"), MirrorMap.from_pairs(upstream.mirror_map()),
                      [dead], backoff=0, jobs=1)
    assert fetcher.fetch(wheels).downloaded == len(wheels) > 1
    assert fetcher.candidates(wheels[0])[0][0] is None  # skipped from then on


def test_complete_part_is_verified_without_network(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    """A download interrupted after its last byte but before the rename."""
    root, facts = scenario
    wheel = one_wheel(facts)
    store = Store(tmp_path / "store")
    store.ensure_dirs()
    shutil.copyfile(root / wheel.url.removeprefix("https://"), store.part_path(wheel.sha256))
    assert fetcher_for(upstream, tmp_path / "store").fetch([wheel]).downloaded == 1
    assert upstream.requests == []
    assert stored(tmp_path / "store") == {wheel.sha256}


def test_bad_store_mirror_copy_is_not_trusted(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    wheel = one_wheel(scenario[1])
    bad = tmp_path / "bad"
    (bad / "sha256").mkdir(parents=True)
    (bad / "sha256" / wheel.sha256).write_bytes(b"\0" * wheel.size)
    store = tmp_path / "store"
    fetcher = Fetcher(Store(store), MirrorMap.from_pairs(upstream.mirror_map()),
                      [bad.as_uri()], backoff=0)
    assert fetcher.fetch([wheel]).downloaded == 1  # the canonical URL served the real file
    assert stored(store) == {wheel.sha256}
    assert (store / "sha256" / wheel.sha256).read_bytes() != b"\0" * wheel.size


# --- source pins ------------------------------------------------------------------------------


def test_source_with_wrong_tree_is_refused(
    scenario: tuple[Path, dict[str, Any]], upstream: FixtureUpstream, tmp_path: Path
) -> None:
    root, facts = scenario
    source = lock_sources(scenario_lock(facts))[0]
    wrong = pip_lock.Source(source.name, source.version, source.url, source.commit,
                            "h1:" + "A" * 43 + "=", source.requires, source.build_requires)
    store = tmp_path / "store"
    with pytest.raises(IntegrityError, match="is not the pinned tree") as caught:
        fetch_module.fetch_source(fetcher_for(upstream, store), wrong)
    assert source.tree_hash in str(caught.value) and wrong.tree_hash in str(caught.value)
    assert stored(store) == set() and not (store / "sources").exists()


def test_store_has_checks_size(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sha, size = store.add_stream(__import__("io").BytesIO(b"hello"), "x", "test")
    assert store.has(sha, size) and not store.has(sha, size + 1)
    with pytest.raises(TljhLockError, match="not a sha256"):
        store.path("../etc/passwd")
    shutil.rmtree(tmp_path / "sha256")
    assert not store.has(sha, size)
