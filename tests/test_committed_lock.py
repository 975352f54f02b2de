"""The committed lock, offline: fresh, installable, and selectable by PEP 751 tooling."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import tomllib
from packaging.pylock import PackageArchive, Pylock

from tests.conftest import REPO, SHARED
from tljh_lock.core.errors import InputError
from tljh_lock.export.pylock import export
from tljh_lock.lock import file as lockfile
from tljh_lock.resolve import source_pin
from tljh_lock.upstream.http import Client
from tljh_lock.upstream.mirrors import MirrorMap

LOCK = REPO / "locks" / "tljh.lock.toml"
FACTS = SHARED / "upstream-facts"


def test_committed_lock_is_fresh_and_installable(tljh):
    result = tljh("check", "--recipes", REPO / "recipes", "--lock", LOCK)
    assert result.code == 0, result.err
    lock = lockfile.load(LOCK)
    assert {"hub", "user-env", "traefik", "miniforge", "nodejs",
            "configurable-http-proxy"} <= set(lock.components)
    for name in ("traefik", "miniforge", "nodejs"):
        assert {a.name for a in lock.components[name].files()} and all(
            lock.components[name].file_for(arch) for arch in ("x86_64", "aarch64"))


def _selected(lock, component, target):
    pylock = Pylock.from_dict(tomllib.loads(export(lock, component)))
    return {p.name: d for p, d in pylock.select(environment=target.marker_environment(),
                                                tags=target.supported_tags())}


def test_pylock_selects_the_hub_set_for_all_10_targets():
    lock = lockfile.load(LOCK)
    assert len(lock.targets) == 10
    for target in lock.targets:
        chosen = _selected(lock, "hub", target)
        assert {"jupyterhub", "pycurl", "pip", "onetimepass"} <= set(chosen), target.name
        pycurl = chosen["pycurl"].name
        assert f"cp{target.python_minor[0]}{target.python_minor[1]}" in pycurl
        assert target.arch in pycurl


def test_pylock_selects_tljh_itself_as_its_archive_on_all_10_targets():
    """The hub an installer reads from pylock has tljh-config: TLJH is there, the archive the
    lock pins by its sha256 and size, for every target (packaging's own PEP 751 reader)."""
    lock = lockfile.load(LOCK)
    [pin] = lock.components["hub"].sources
    assert pin.name == "the-littlest-jupyterhub" and pin.archive_sha256
    assert len(lock.targets) == 10
    for target in lock.targets:
        tljh = _selected(lock, "hub", target)["the-littlest-jupyterhub"]
        assert isinstance(tljh, PackageArchive), target.name
        assert (tljh.url, tljh.size, dict(tljh.hashes), tljh.subdirectory) == (
            pin.url, pin.archive_size, {"sha256": pin.archive_sha256}, None)
    data = tomllib.loads(export(lock, "hub"))
    [entry] = [p for p in data["packages"] if p["name"] == pin.name]
    assert entry["version"] == pin.version


def test_pylock_refuses_a_source_pin_without_its_archive_sha256():
    lock = lockfile.load(LOCK)
    hub = lock.components["hub"]
    [pin] = hub.sources
    hub.sources = (dataclasses.replace(pin, archive_sha256=None, archive_size=None),)
    with pytest.raises(InputError, match="no sha256 of its archive") as refused:
        export(lock, "hub")
    assert "tljh-lock update" in (refused.value.hint or "")


def test_pylock_export_takes_its_urls_through_mirror_flags(tljh, tmp_path):
    """Where GitHub is out of reach an installer needs TLJH's archive from a mirror: --mirror
    rewrites the URLs it names, a file:// one as PEP 751's `path` (the hashes stay: the
    mirror serves the same bytes)."""
    mirror = f"{(FACTS / 'github.com').as_uri()}/"
    out = tmp_path / "pylock.toml"
    assert tljh("export", "--lock", LOCK, "--format", "pylock", "-o", out,
                "--mirror", f"https://github.com/={mirror}").code == 0
    mirrored = tomllib.loads(out.read_text())
    canonical = tomllib.loads(export(lockfile.load(LOCK), "hub"))
    [pin] = lockfile.load(LOCK).components["hub"].sources
    [entry] = [p for p in mirrored["packages"] if "archive" in p]
    assert entry["archive"]["path"] == str(FACTS / pin.url.removeprefix("https://"))
    assert "url" not in entry["archive"]
    assert entry["archive"]["hashes"] == {"sha256": pin.archive_sha256}
    assert [p for p in mirrored["packages"] if "archive" not in p] == [
        p for p in canonical["packages"] if "archive" not in p]
    result = tljh("export", "--lock", LOCK, "--format", "conda-lock", "--mirror",
                  f"https://github.com/={mirror}")
    assert result.code == 2 and "--format conda-lock keeps the lock's canonical URLs" in result.err
    result = tljh("export", "--lock", LOCK, "--format", "package-lock", "-o", tmp_path,
                  "--mirror", f"https://github.com/={mirror}")
    assert result.code == 2 and not (tmp_path / "package.json").exists()


def test_pylock_selects_the_user_set_for_python_312_on_both_arches():
    lock = lockfile.load(LOCK)
    user_env = lock.components["user-env"]
    assert sorted((t.python_minor, t.arch) for t in user_env.targets) == [
        ((3, 12), "aarch64"), ((3, 12), "x86_64")]
    for target in user_env.targets:
        chosen = _selected(lock, "user-env", target)
        assert {"jupyterhub", "notebook", "jupyterlab", "ipywidgets"} <= set(chosen)
        hub_version = {p.name: p.version for p in lock.components["hub"].packages}["jupyterhub"]
        assert _version(chosen["jupyterhub"].name) == hub_version


def _version(filename: str) -> str:
    return filename.split("-")[1]


def test_package_lock_export_writes_both_files_into_a_directory(tljh, tmp_path):
    assert tljh("export", "--lock", LOCK, "--format", "package-lock", "-o", tmp_path).code == 0
    manifest = json.loads((tmp_path / "package.json").read_text())
    package_lock = json.loads((tmp_path / "package-lock.json").read_text())
    assert manifest["dependencies"] == {"configurable-http-proxy": "5.3.0"}
    assert package_lock["packages"][""]["dependencies"] == manifest["dependencies"]
    chp = package_lock["packages"]["node_modules/configurable-http-proxy"]
    assert chp["integrity"].startswith("sha512-5au4O12dEFFHWNm9Y7Exm06TYc1CnMOvvptPTU83Vw7")
    assert chp["resolved"].startswith("https://registry.npmjs.org/")
    result = tljh("export", "--lock", LOCK, "--format", "pylock", "-o", tmp_path)
    assert result.code == 2 and "writes one file" in result.err


def test_committed_source_pin_is_the_archive_in_upstream_facts():
    """The committed lock's TLJH is the archive in shared/upstream-facts: its tree hash, the
    sha256 and size of its bytes, and the name, version and requirements its own setup.py
    declares. `make lock` runs
    this with TLJH_LOCK_REQUIRE_FACTS=1, where a missing archive fails instead of skipping
    (`update` only warns when an archive cannot be reached)."""
    lock = lockfile.load(LOCK)
    [source] = lock.components["hub"].sources
    archive = FACTS / source.url.removeprefix("https://")
    if not archive.is_file():
        if os.environ.get("TLJH_LOCK_REQUIRE_FACTS"):
            pytest.fail(f"{archive} is missing: `make lock` verifies the source pin against it")
        pytest.skip(f"no upstream facts at {FACTS} (set TLJH_SHARED)")
    client = Client(MirrorMap.from_pairs({"https://github.com/": f"{FACTS.as_uri()}/github.com/"}))
    assert source_pin.verify(client, source, str(LOCK)) == source
