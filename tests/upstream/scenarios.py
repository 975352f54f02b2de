"""Ready-made fixture upstreams for the tests and ``make demo``."""

from __future__ import annotations

import base64
import ensurepip
import hashlib
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from .artifacts import (
    build_fixture_backend_wheel,
    build_sdist,
    build_wheel,
    make_source_archive,
    publish_to_index,
    sha256_file,
)

__all__ = [
    "TLJH_COMMIT",
    "TLJH_REPO",
    "archive_tree_hash",
    "dirhash_h1",
    "generate_hub_scenario",
]

TLJH_REPO = "jupyterhub/the-littlest-jupyterhub"
TLJH_COMMIT = "d1ce" * 10  # fake, but shaped like a git commit id
TLJH_VERSION = "2.0.0"
TLJH_DEPENDENCIES = ("fx-web>=1", "fx-auth")

MANYLINUX_X86_64 = "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
MANYLINUX_AARCH64 = "cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64"
WIN_AMD64 = "cp39-abi3-win_amd64"

_TLJH_PYPROJECT = f"""\
[build-system]
requires = ["fixture-backend"]
build-backend = "fixture_backend"

[project]
name = "the-littlest-jupyterhub"
version = "{TLJH_VERSION}"
requires-python = ">=3.9"
dependencies = [
    "fx-web>=1",
    "fx-auth",
]

[project.scripts]
tljh-config = "tljh.config:main"
"""

_TLJH_CONFIG = '''\
"""tljh-config of the fixture TLJH: proves the console script is wired to this tree."""

import sys


def main() -> int:
    print("tljh-config (fixture)", *sys.argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


# tljh.traefik of the fixture TLJH: TLJH's interface (`ensure_traefik_config(state_dir)`, config
# from TLJH_INSTALL_PREFIX) and TLJH's files and modes, with a short static configuration.
TLJH_TRAEFIK = '''\
"""tljh.traefik of the fixture TLJH: renders traefik's configuration in TLJH's layout."""

import os

CONFIG_DIR = os.path.join(os.environ.get("TLJH_INSTALL_PREFIX", "/opt/tljh"), "config")

STATIC = """[entryPoints.http]
address = ":80"

[entryPoints.auth_api]
address = "localhost:8099"

[providers.file]
directory = "{rules}"
watch = true
"""


def _write(path, text):
    with open(path, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def ensure_traefik_config(state_dir):
    rules = os.path.join(state_dir, "rules")
    os.makedirs(os.path.join(CONFIG_DIR, "traefik_config.d"), mode=0o700, exist_ok=True)
    os.makedirs(rules, mode=0o700, exist_ok=True)
    _write(os.path.join(state_dir, "traefik.toml"), STATIC.format(rules=rules))
    _write(os.path.join(rules, "dynamic.toml"), "")
    _write(os.path.join(rules, "rules.toml"), "")
    with open(os.path.join(state_dir, "acme.json"), "a") as f:
        os.fchmod(f.fileno(), 0o600)
'''


def dirhash_h1(files: Mapping[str, bytes]) -> str:
    """Go's dirhash "h1" over ``{relative posix path: contents}``.

    Sorted by path bytes, one line "<sha256 hex>  <path>\\n" per file, then
    "h1:" + base64(sha256(lines)). A test-side twin of the core's implementation.
    """
    lines = "".join(
        f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
        for p in sorted(files, key=lambda p: p.encode("utf-8"))
    )
    return "h1:" + base64.b64encode(hashlib.sha256(lines.encode("utf-8")).digest()).decode()


def archive_tree_hash(archive: Union[str, Path]) -> str:
    """The dirhash of the regular files below the single top-level directory of a tarball."""
    files: dict[str, bytes] = {}
    tops = set()
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            top, _, rel = member.name.partition("/")
            tops.add(top)
            if member.isfile() and rel:
                fh = tf.extractfile(member)
                assert fh is not None
                files[rel] = fh.read()
    if len(tops) != 1:
        raise ValueError(f"{archive}: expected one top-level directory, got {sorted(tops)}")
    return dirhash_h1(files)


def _canonical(root: Path, path: Path) -> str:
    return "https://" + path.relative_to(root).as_posix()


def installer_wheel() -> Path:
    """A real pip wheel, which the hub set locks as its installer: the one every python
    with venv support carries (ensurepip's bundle, or Debian's python3-pip-whl)."""
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for folder in (bundled, Path("/usr/share/python-wheels")):
        found = sorted(folder.glob("pip-*-py3-none-any.whl"))
        if found:
            return found[-1]
    raise FileNotFoundError("no pip wheel: install python3-venv (python3-pip-whl)")


def generate_hub_scenario(root: Union[str, Path]) -> dict[str, Any]:
    """A small "hub pip set" upstream under ``root``; returns facts about it (JSON-serializable).

    * ``fx-hub`` 1.0.0, 1.1.0 -> ``fx-web>=1``, ``fx-backport>=1`` only below Python 3.11,
      ``fx-speedups>=2``
    * ``fx-web`` 1.0, 1.1; ``fx-backport`` 1.0 (requires-python >=3.8)
    * ``fx-speedups`` 2.0: abi3 wheels for manylinux x86_64 and aarch64, and a win_amd64 one
      that a Linux lock must leave out; no sdist
    * ``fx-auth`` 1.0 -> ``fx-otp``; ``fx-otp`` 1.0.1 is sdist-only (-> ``fx-web``) and builds
      with ``fixture-backend`` 1.0, which is published too
    * TLJH: ``github.com/<TLJH_REPO>/archive/<TLJH_COMMIT>.tar.gz``, a source tree that builds
      with ``fixture-backend``, depends on ``fx-web>=1`` and ``fx-auth`` and has the
      ``tljh-config`` console script.
    """
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="fixture-build-") as tmp:
        out = Path(tmp)
        dists = [
            build_fixture_backend_wheel(out),
            build_wheel(out, "fx-web", "1.0"),
            build_wheel(out, "fx-web", "1.1"),
            build_wheel(out, "fx-backport", "1.0", requires_python=">=3.8"),
        ]
        hub_requires = (
            "fx-web>=1",
            'fx-backport>=1 ; python_version < "3.11"',
            "fx-speedups>=2",
        )
        for version in ("1.0.0", "1.1.0"):
            dists.append(build_wheel(out, "fx-hub", version, requires_dist=hub_requires))
        for tag in (MANYLINUX_X86_64, MANYLINUX_AARCH64, WIN_AMD64):
            dists.append(build_wheel(out, "fx-speedups", "2.0", tag=tag, requires_python=">=3.9"))
        dists.append(build_sdist(out, "fx-otp", "1.0.1", requires_dist=("fx-web",)))
        dists.append(build_wheel(out, "fx-auth", "1.0", requires_dist=("fx-otp",)))
        dists.append(installer_wheel())
        published = publish_to_index(root, dists)

    files = {
        p.name: {"url": _canonical(root, p), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in published
    }

    top_dir = f"the-littlest-jupyterhub-{TLJH_COMMIT}"
    tree: dict[str, bytes] = {
        "README.md": b"# The Littlest JupyterHub (fixture)\n",
        "pyproject.toml": _TLJH_PYPROJECT.encode(),
        "tljh/__init__.py": f'__version__ = "{TLJH_VERSION}"\n'.encode(),
        "tljh/config.py": _TLJH_CONFIG.encode(),
        "tljh/traefik.py": TLJH_TRAEFIK.encode(),
        # Outside any package, so not installed; here because the real tree has one executable.
        "bootstrap/bootstrap.py": b"#!/usr/bin/env python3\nprint('bootstrap (fixture)')\n",
    }
    archive = make_source_archive(
        root / "github.com" / TLJH_REPO / "archive" / f"{TLJH_COMMIT}.tar.gz",
        top_dir,
        tree,
        executable=("bootstrap/bootstrap.py",),
    )
    return {
        "index_url": "https://pypi.org/simple/",
        "requirements": ["fx-hub", "fx-auth"],
        "projects": {
            "fixture-backend": ["1.0"],
            "fx-auth": ["1.0"],
            "fx-backport": ["1.0"],
            "fx-hub": ["1.0.0", "1.1.0"],
            "fx-otp": ["1.0.1"],
            "fx-speedups": ["2.0"],
            "fx-web": ["1.0", "1.1"],
            "pip": [installer_wheel().name.split("-")[1]],
        },
        "marker_only": {"fx-backport": 'python_version < "3.11"'},
        "sdist_only": {"fx-otp": {"build_requires": ["fixture-backend"]}},
        # Wheels a lock for Linux x86_64/aarch64 targets must not contain.
        "foreign_files": [f"fx_speedups-2.0-{WIN_AMD64}.whl"],
        "files": files,
        "tljh": {
            "repo": TLJH_REPO,
            "commit": TLJH_COMMIT,
            "name": "the-littlest-jupyterhub",
            "version": TLJH_VERSION,
            "dependencies": list(TLJH_DEPENDENCIES),
            "console_scripts": {"tljh-config": "tljh.config:main"},
            "archive_url": _canonical(root, archive),
            "top_dir": top_dir,
            "sha256": sha256_file(archive),
            "size": archive.stat().st_size,
            "tree_hash": dirhash_h1(tree),
        },
    }
