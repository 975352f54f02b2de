"""GitHub releases and nodejs.org/dist in the fixture upstream: traefik, Miniforge, Node.js.

Layouts, as the real upstreams publish them:

* ``github.com/<repo>/releases/download/<tag>/<asset>`` and the release list, served as JSON
  for ``https://api.github.com/repos/<repo>/releases`` (``api.github.com/repos/<repo>/
  releases/index.json``: newest first, with each asset's ``size`` and ``digest``);
* ``nodejs.org/dist/v<V>/<file>``, ``nodejs.org/dist/v<V>/SHASUMS256.txt`` and
  ``nodejs.org/dist/index.json``.

Publishing merges into what a root already holds (a release of the same tag or version is
replaced), so scenarios and the real binaries (``real_binaries``) can share one root.
Archives are deterministic: sorted members, root-owned, fixed mtime, gzip/xz headers without
timestamps.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union

from .artifacts import sha256_file
from .fixture_backend import FIXED_MTIME

__all__ = [
    "TarEntry",
    "generate_release_scenario",
    "publish_github_release",
    "publish_nodejs_release",
    "write_tarball",
]

PUBLISHED_AT = "2020-01-01T00:00:00Z"
# The arch names each upstream uses, keyed by ours.
TRAEFIK_PLATFORMS = {"x86_64": "linux_amd64", "aarch64": "linux_arm64"}
MINIFORGE_PLATFORMS = {"x86_64": "x86_64", "aarch64": "aarch64"}
NODEJS_PLATFORMS = {"x86_64": "x64", "aarch64": "arm64"}


@dataclass(frozen=True)
class TarEntry:
    """A regular file (``data`` or ``source``), a directory, or a symlink (``link``)."""

    name: str
    data: bytes | None = None
    source: Path | None = None  # a large file, streamed from disk
    mode: int = 0o644
    link: str | None = None
    directory: bool = False


def write_tarball(out: Path, entries: Iterable[TarEntry], compression: str) -> Path:
    """A deterministic ``.tar.gz`` or ``.tar.xz``; parent directories get their own entries."""
    by_name: dict[str, TarEntry] = {}
    for entry in entries:
        parts = entry.name.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            by_name.setdefault(parent, TarEntry(parent, mode=0o755, directory=True))
        by_name[entry.name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(out, "wb") as raw,
        _compressor(raw, compression) as stream,
        tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(by_name, key=lambda n: n.encode("utf-8")):
            _add(tar, by_name[name])
    return out


def _compressor(raw: BinaryIO, compression: str) -> BinaryIO:
    # No timestamp and no file name in the headers, else every run gives other bytes.
    if compression == "gz":
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9)
    if compression == "xz":
        return lzma.LZMAFile(raw, "wb", format=lzma.FORMAT_XZ, preset=6)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {compression!r}")


def _add(tar: tarfile.TarFile, entry: TarEntry) -> None:
    info = tarfile.TarInfo(entry.name)
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = entry.mode
    if entry.directory:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
        info.mode = 0o777
        tar.addfile(info)
    elif entry.source is not None:
        info.size = entry.source.stat().st_size
        with open(entry.source, "rb") as fh:
            tar.addfile(info, fh)
    else:
        data = entry.data or b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_list(path: Path) -> list[Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _facts(root: Path, path: Path) -> dict[str, Any]:
    return {"name": path.name, "url": "https://" + path.relative_to(root).as_posix(),
            "size": path.stat().st_size, "sha256": sha256_file(path)}


def publish_github_release(
    root: Path,
    repo: str,
    tag: str,
    assets: Mapping[str, Union[bytes, Path]],
    *,
    checksums: str | None = None,
    per_asset_checksums: bool = False,
    omit_from_checksums: Iterable[str] = (),
    draft: bool = False,
    prerelease: bool = False,
) -> dict[str, dict[str, Any]]:
    """Publish `assets` (bytes, or a file to copy) as release `tag` of `repo`.

    Checksums as the upstream publishes them: one `checksums` file listing every asset (and a
    line for a file of another platform, as traefik's lists darwin and windows too), or one
    ``<asset>.sha256`` per asset. `omit_from_checksums` leaves names out, to make a broken
    release. Returns the facts (name, url, size, sha256) of every file published, by name.
    """
    folder = root / "github.com" / repo / "releases" / "download" / tag
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files: dict[str, Path] = {}
    for name, content in sorted(assets.items()):
        path = folder / name
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_bytes(content)
        files[name] = path
    omitted = set(omit_from_checksums)
    sums = {name: sha256_file(path) for name, path in files.items()}
    if checksums is not None:
        # also names a file of a platform we do not publish
        lines = [f"{'0' * 64}  {repo.split('/')[1]}_{tag}_darwin_amd64.tar.gz"]
        lines += [f"{sha}  {name}" for name, sha in sums.items() if name not in omitted]
        (folder / checksums).write_text("\n".join(sorted(lines, key=lambda x: x[66:])) + "\n")
        files[checksums] = folder / checksums
    if per_asset_checksums:
        for name, sha in sums.items():
            if name not in omitted:
                (folder / f"{name}.sha256").write_text(f"{sha}  {name}\n")
                files[f"{name}.sha256"] = folder / f"{name}.sha256"
    facts = {name: _facts(root, path) for name, path in sorted(files.items())}

    listing = root / "api.github.com" / "repos" / repo / "releases" / "index.json"
    releases = [r for r in _read_list(listing) if r["tag_name"] != tag]
    releases.insert(0, {
        "tag_name": tag,
        "name": tag,
        "draft": draft,
        "prerelease": prerelease,
        "created_at": PUBLISHED_AT,
        "published_at": None if draft else PUBLISHED_AT,
        "html_url": f"https://github.com/{repo}/releases/tag/{tag}",
        "assets": [
            {
                "name": name,
                "size": fact["size"],
                "digest": f"sha256:{fact['sha256']}",
                "state": "uploaded",
                "content_type": "application/octet-stream",
                "browser_download_url": fact["url"],
            }
            for name, fact in facts.items()
        ],
    })
    _write_json(listing, releases)
    return facts


def publish_nodejs_release(
    root: Path,
    version: str,
    tarballs: Mapping[str, Union[bytes, Path]],
    *,
    lts: str | None = None,
    omit_from_checksums: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Publish Node.js `version` (no leading v): `tarballs` by file name, SHASUMS256.txt, and
    an entry in dist/index.json. Returns the facts of the tarballs, by name."""
    dist = root / "nodejs.org" / "dist"
    folder = dist / f"v{version}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    facts = {}
    for name, content in sorted(tarballs.items()):
        path = folder / name
        if isinstance(content, Path):
            shutil.copyfile(content, path)
        else:
            path.write_bytes(content)
        facts[name] = _facts(root, path)
    omitted = set(omit_from_checksums)
    lines = [f"{'0' * 64}  node-v{version}-darwin-arm64.tar.gz"]  # not published here
    lines += [f"{fact['sha256']}  {name}" for name, fact in facts.items() if name not in omitted]
    (folder / "SHASUMS256.txt").write_text("\n".join(sorted(lines, key=lambda x: x[66:])) + "\n")

    builds = sorted({"-".join(name.split("-")[2:4]).split(".")[0] for name in tarballs})
    index = [r for r in _read_list(dist / "index.json") if r["version"] != f"v{version}"]
    index.append({"version": f"v{version}", "date": PUBLISHED_AT[:10], "files": builds,
                  "lts": lts or False, "security": False})
    index.sort(key=lambda r: tuple(int(p) for p in r["version"][1:].split(".")), reverse=True)
    _write_json(dist / "index.json", index)
    return facts


# --- tiny stand-ins -------------------------------------------------------------------------


def traefik_tarball(out: Path, version: str, platform: str) -> Path:
    script = f"#!/bin/sh\necho 'Version:      {version}'\necho 'Platform:     {platform}'\n"
    return write_tarball(out, [
        TarEntry("LICENSE.md", b"The MIT License (fixture)\n"),
        TarEntry("traefik", script.encode(), mode=0o755),
    ], "gz")


def miniforge_installer(version: str, arch: str) -> bytes:
    """A batch-mode-only stand-in: `-b -p PREFIX` makes an environment of the system python3
    (Debian's /usr/bin/python3, which has no ensurepip on a minimal system: pip comes later,
    from the lock, as it does for the real installer's user set)."""
    return f"""#!/bin/sh
# Fixture Miniforge3 {version} ({arch}): creates PREFIX with the system python3.
set -eu
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    -p) prefix="$2"; shift 2 ;;
    -b|-u) shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || {{ echo "-p PREFIX is required" >&2; exit 2; }}
/usr/bin/python3 -m venv --without-pip "$prefix"
mkdir -p "$prefix/conda-meta"
echo "fixture Miniforge3 {version}" > "$prefix/conda-meta/history"
""".encode()


def node_tarball(out: Path, version: str, platform: str) -> Path:
    top = f"node-v{version}-linux-{platform}"
    script = f"#!/bin/sh\necho v{version}\n"
    return write_tarball(out, [
        TarEntry(f"{top}/bin/node", script.encode(), mode=0o755),
        TarEntry(f"{top}/LICENSE", b"Node.js license (fixture)\n"),
    ], "xz")


TRAEFIK_VERSIONS = ("3.6.4", "3.6.5")
MINIFORGE_VERSIONS = ("24.7.1-2", "24.11.3-0")
NODEJS_VERSIONS = {"20.18.1": "Iron", "22.11.0": "Jod", "22.12.0": "Jod", "23.3.0": None}


def generate_release_scenario(root: Union[str, Path]) -> dict[str, Any]:
    """traefik, Miniforge and Node.js releases under ``root``; returns their facts.

    * traefik/traefik: v3.6.4, v3.6.5 and v2.11.30 (published after both, as backports are);
      v3.7.0-rc1 (a GitHub prerelease) and v3.7.0 (a draft) that no constraint may pick.
      One ``traefik_v<V>_checksums.txt`` per release.
    * conda-forge/miniforge: 24.7.1-2 and 24.11.3-0, tags without a ``v``, one ``.sha256``
      per installer.
    * nodejs.org/dist: 20.18.1, 22.11.0, 22.12.0, 23.3.0, with SHASUMS256.txt.

    Facts: ``{"traefik" | "miniforge" | "nodejs": {version: {arch: file facts}}}``.
    """
    root = Path(root)
    facts: dict[str, dict[str, dict[str, Any]]] = {"traefik": {}, "miniforge": {}, "nodejs": {}}
    with tempfile.TemporaryDirectory(prefix="fixture-build-") as tmp:
        _generate(root, Path(tmp), facts)
    return facts


def _generate(root: Path, build: Path, facts: dict[str, dict[str, dict[str, Any]]]) -> None:
    for version, draft, prerelease in (
        *((v, False, False) for v in TRAEFIK_VERSIONS),
        ("3.7.0-rc1", False, True),
        ("3.7.0", True, False),
        ("2.11.30", False, False),
    ):
        assets = {
            f"traefik_v{version}_{platform}.tar.gz":
                traefik_tarball(build / f"traefik-{version}-{platform}.tar.gz", version, platform)
            for platform in TRAEFIK_PLATFORMS.values()
        }
        published = publish_github_release(
            root, "traefik/traefik", f"v{version}", assets,
            checksums=f"traefik_v{version}_checksums.txt", draft=draft, prerelease=prerelease)
        facts["traefik"][version] = {
            arch: published[f"traefik_v{version}_{platform}.tar.gz"]
            for arch, platform in TRAEFIK_PLATFORMS.items()
        }
    for version in MINIFORGE_VERSIONS:
        names = {arch: f"Miniforge3-{version}-Linux-{platform}.sh"
                 for arch, platform in MINIFORGE_PLATFORMS.items()}
        published = publish_github_release(
            root, "conda-forge/miniforge", version,
            {name: miniforge_installer(version, arch) for arch, name in names.items()},
            per_asset_checksums=True)
        facts["miniforge"][version] = {arch: published[name] for arch, name in names.items()}
    for version, lts in NODEJS_VERSIONS.items():
        names = {arch: f"node-v{version}-linux-{platform}.tar.xz"
                 for arch, platform in NODEJS_PLATFORMS.items()}
        published = publish_nodejs_release(root, version, {
            name: node_tarball(build / name, version, NODEJS_PLATFORMS[arch])
            for arch, name in names.items()
        }, lts=lts)
        facts["nodejs"][version] = {arch: published[name] for arch, name in names.items()}
