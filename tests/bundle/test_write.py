"""`bundle` end to end on the fixture upstream: reproducible, complete, safe to open, a mirror,
and its zipapp runs under a bare python3."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UNREACHABLE, nginx_serving
from tests.store.test_fetch import scenario_lock
from tests.upstream import FixtureUpstream, generate_hub_scenario
from tljh_lock.bundle import safe_archive, zipapp
from tljh_lock.cli import main as cli
from tljh_lock.core.errors import EXIT_USAGE
from tljh_lock.core.files import file_sha256 as sha256_of
from tljh_lock.resolve.write import dumps as dump_lock
from tljh_lock.store.cas import Store
from tljh_lock.store.fetch import Fetcher, fetch_lock
from tljh_lock.upstream.mirrors import MirrorMap

REPO = Path(__file__).resolve().parents[2]
REAL_LOCK = REPO / "locks" / "tljh.lock.toml"
# Bare interpreters: Debian 12's own (no tarfile filters) and the oldest python we support.
BARE_PYTHONS = [p for p in ("/usr/bin/python3", "/root/.pyenv/versions/3.9.18/bin/python3")
                if Path(p).exists()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("bundle")
    facts = generate_hub_scenario(root / "upstream")
    lock = scenario_lock(facts)
    lock_path = root / "tljh.lock.toml"
    lock_path.write_text(dump_lock(lock))
    with FixtureUpstream(root / "upstream") as upstream:
        yield {"root": root, "facts": facts, "lock": lock, "lock_path": lock_path,
               "upstream": upstream}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def bundle_args(world: dict[str, Any], vendor_store: Path, store: Path, output: Path,
                platform: str = "x86_64") -> list[str]:
    mirrors = [f"--mirror={c}={m}" for c, m in world["upstream"].mirror_map().items()]
    return ["bundle", "--platform", platform, "-o", str(output), "--lock",
            str(world["lock_path"]), "--store", str(store), "--store-mirror",
            vendor_store.as_uri(), *mirrors]


@pytest.fixture(scope="module")
def bundled(world: dict[str, Any], vendor_store: Path,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three bundles of x86_64: two from one store, one from a fresh store (fresh builds)."""
    root = tmp_path_factory.mktemp("bundles")
    results = []
    for store, name in (("store", "a.tar"), ("store", "b.tar"), ("fresh", "c.tar")):
        argv = [*bundle_args(world, vendor_store, root / store, root / name), "--json"]
        code = cli.main(argv)
        assert code == 0
        results.append(root / name)
    return {"root": root, "bundles": results, "store": root / "store"}


def test_bundles_are_reproducible(bundled: dict[str, Any], world: dict[str, Any]) -> None:
    a, b, c = (p.read_bytes() for p in bundled["bundles"])
    assert a == b  # same store
    assert a == c  # fresh store: downloaded and built again, same bytes


def test_bundle_prints_its_hash_and_the_locks(
    bundled: dict[str, Any], world: dict[str, Any], vendor_store: Path,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    output = tmp_path / "d.tar"
    code, out, _ = run_cli(capsys, *bundle_args(world, vendor_store, bundled["store"], output))
    assert code == 0
    assert f"bundle sha256 {sha256_of(output)}" in out
    assert f"lock sha256   {sha256_of(world['lock_path'])}" in out
    code, out, _ = run_cli(capsys, *bundle_args(world, vendor_store, bundled["store"], output),
                           "--json")
    summary = json.loads(out)
    assert summary["sha256"] == sha256_of(output) == sha256_of(bundled["bundles"][0])
    assert summary["lock_sha256"] == sha256_of(world["lock_path"])
    assert summary["fetch"]["downloaded"] == 0  # everything was in the store already


def test_bundle_layout(bundled: dict[str, Any], world: dict[str, Any]) -> None:
    lock = world["lock"]
    with tarfile.open(bundled["bundles"][0]) as tar:
        members = tar.getmembers()
        manifest = safe_archive.parse_manifest(tar.extractfile("manifest.json").read(), "t")  # type: ignore[union-attr]
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "manifest.json"
    for member in members:
        assert member.isreg() and member.mtime == 0 and member.uid == member.gid == 0
        assert member.uname == member.gname == "" and not member.pax_headers
        assert member.mode == (0o755 if member.name == "tljh-lock.pyz" else 0o644)
    assert set(names) - {"manifest.json"} == set(manifest.members)
    assert manifest.platform == "x86_64"
    assert manifest.lock.sha256 == sha256_of(world["lock_path"])
    stored = {n.split("/")[1] for n in names if n.startswith("sha256/")}
    wanted = {a.sha256 for a in lock.artifacts("x86_64")}
    assert wanted <= stored
    assert not {a.sha256 for a in lock.artifacts("aarch64")} - wanted & stored  # no aarch64
    built = {entry.name for entry in manifest.built.values()}
    assert built == {"fx_otp-1.0.1-py3-none-any.whl",
                     "the_littlest_jupyterhub-2.0.0-py3-none-any.whl"}
    assert {entry.sha256 for entry in manifest.built.values()} <= stored
    sdist = world["facts"]["files"]["fx_otp-1.0.1.tar.gz"]["sha256"]
    assert sdist in manifest.built
    tljh = world["facts"]["tljh"]
    source = manifest.sources[f"{tljh['name']}-{tljh['commit']}"]
    assert source["tree-hash"] == tljh["tree_hash"] and source["sha256"] in stored
    assert stored == wanted | {source["sha256"]} | {e.sha256 for e in manifest.built.values()}


def test_unpacked_bundle_is_a_mirror(
    bundled: dict[str, Any], world: dict[str, Any], tmp_path: Path
) -> None:
    unpacked = tmp_path / "unpacked"
    safe_archive.extract(bundled["bundles"][0], unpacked)
    lock = world["lock"]
    # Canonical URLs lead nowhere: every byte must come from the unpacked bundle.
    nowhere = MirrorMap.from_pairs({c: UNREACHABLE for c in world["upstream"].mirror_map()})
    with FixtureUpstream(unpacked) as server:
        fetcher = Fetcher(Store(tmp_path / "server-store"), nowhere, [server.base_url],
                          backoff=0, attempts=1)
        report, records = fetch_lock(lock, "x86_64", fetcher)
    assert report.downloaded == len(lock.artifacts("x86_64"))
    assert records[0].tree_hash == world["facts"]["tljh"]["tree_hash"]


def test_nginx_serves_an_unpacked_bundle(
    bundled: dict[str, Any], world: dict[str, Any], tmp_path: Path
) -> None:
    unpacked = tmp_path / "www"
    safe_archive.extract(bundled["bundles"][0], unpacked)
    with nginx_serving(unpacked, tmp_path / "nginx") as url:
        nowhere = MirrorMap.from_pairs({c: UNREACHABLE for c in world["upstream"].mirror_map()})
        fetcher = Fetcher(Store(tmp_path / "store"), nowhere, [url], backoff=0, attempts=1)
        report, _ = fetch_lock(world["lock"], "x86_64", fetcher)
        assert report.downloaded == len(world["lock"].artifacts("x86_64"))


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_zipapp_from_bundle_runs_on_bare_python(
    bundled: dict[str, Any], tmp_path: Path, python: str
) -> None:
    unpacked = tmp_path / "unpacked"
    safe_archive.extract(bundled["bundles"][0], unpacked)
    pyz = unpacked / "tljh-lock.pyz"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # nothing of ours on any path
    runs = {
        "help": [python, "-I", str(pyz), "--help"],
        "check": [python, "-I", str(pyz), "check", "--no-recipes", "--lock",
                  str(unpacked / "tljh.lock.toml")],
    }
    for what, argv in runs.items():
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, f"{what}: {proc.stderr}"
    assert "usage: tljh-lock" in subprocess.run(runs["help"], cwd=tmp_path, env=env,
                                                capture_output=True, text=True).stdout


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_zipapp_has_no_maintainer_side(bundled: dict[str, Any], tmp_path: Path,
                                       python: str) -> None:
    """Resolving and exporting need uv, py-rattler and tomli-w: the zipapp leaves them out, says
    so in its help, and answers a maintainer verb with one line and exit code 2."""
    unpacked = tmp_path / "unpacked"
    safe_archive.extract(bundled["bundles"][0], unpacked)
    pyz = unpacked / "tljh-lock.pyz"
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
    assert "tljh_lock/apply/engine.py" in names
    assert not [n for n in names if n.startswith(("tljh_lock/resolve/", "tljh_lock/export/",
                                                  "tljh_lock/cli/maintainer", "tomli_w/"))]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-I", str(pyz), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    shown = run("--help")
    assert shown.returncode == 0
    assert "  apply " in shown.stdout and "  update " not in shown.stdout
    assert "pip install 'tljh-lock[maintainer]'" in shown.stdout
    for verb in ("update", "export"):
        refused = run(verb, "--lock", "tljh.lock.toml")
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert refused.stderr.startswith(f"tljh-lock: error: `{verb}` is a maintainer command")
        assert "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_zipapp_checks_the_real_lock(bundled: dict[str, Any], tmp_path: Path,
                                     python: str) -> None:
    """5-11 s per python: the real hub lock proven on every target by a bare interpreter."""
    unpacked = tmp_path / "unpacked"
    safe_archive.extract(bundled["bundles"][0], unpacked)
    proc = subprocess.run([python, "-I", str(unpacked / "tljh-lock.pyz"), "check",
                           "--no-recipes", "--lock", str(REAL_LOCK)],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "fresh and installable on 10 targets" in proc.stdout


def test_zipapp_is_deterministic(vendor_store: Path, tmp_path: Path) -> None:
    first = zipapp.build(Store(vendor_store))
    os.utime(Path(zipapp.__file__), (0, 1_000_000_000))  # an mtime must not matter
    try:
        second = zipapp.build(Store(vendor_store))
    finally:
        os.utime(Path(zipapp.__file__))
    assert first == second
    assert first.startswith(b"#!/usr/bin/env python3\n")


def test_fetch_command(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mirrors = [f"--mirror={c}={m}" for c, m in world["upstream"].mirror_map().items()]
    argv = ["fetch", "--platform", "aarch64", "--lock", str(world["lock_path"]), "--store",
            str(tmp_path / "store"), "--json", *mirrors]
    code, out, _ = run_cli(capsys, *argv)
    assert code == 0
    first = json.loads(out)
    assert first["downloaded"] == len(world["lock"].artifacts("aarch64"))
    code, out, _ = run_cli(capsys, *argv)
    again = json.loads(out)
    assert (again["downloaded"], again["already_present"]) == (0, first["downloaded"])
    code, out, err = run_cli(capsys, "-q", *argv[:-len(mirrors) - 1], *mirrors)
    assert code == 0 and out == "" and err == ""


def test_fetch_command_error_exit_code(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    upstream = world["upstream"]
    wheel = world["facts"]["files"]["fx_web-1.1-py3-none-any.whl"]
    upstream.faults[upstream.path_for(wheel["url"])] = "corrupt"
    try:
        mirrors = [f"--mirror={c}={m}" for c, m in upstream.mirror_map().items()]
        code, _, err = run_cli(capsys, "fetch", "--lock", str(world["lock_path"]), "--store",
                               str(tmp_path / "store"), *mirrors)
    finally:
        upstream.faults.clear()
    assert code == 5  # EXIT_INTEGRITY
    assert "fx_web-1.1-py3-none-any.whl" in err and wheel["sha256"] in err
