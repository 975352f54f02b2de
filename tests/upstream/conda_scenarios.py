"""A tiny conda channel: real-format ``.tar.bz2`` packages and ``repodata.json`` per subdir.

Canonical ``https://conda.anaconda.org/<channel>/<subdir>/<file>`` is the file
``ROOT/conda.anaconda.org/<channel>/<subdir>/<file>``, as for every fixture host. Packages are
deterministic (fixed mtimes, sorted members, fixed owners), so their sha256 never changes.
Stdlib only: ``make demo`` runs it too.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

__all__ = ["CondaPackage", "build_conda_package", "generate_conda_scenario", "publish_channel"]

CONDA_HOST = "conda.anaconda.org"
CHANNEL = "conda-forge"
SUBDIRS = ("linux-64", "linux-aarch64")
MTIME = 1577836800  # 2020-01-01, as the wheels of the PyPI fixture
TIMESTAMP_MS = MTIME * 1000


@dataclass(frozen=True)
class CondaPackage:
    name: str
    version: str
    build: str
    subdir: str  # "noarch" or one of SUBDIRS
    depends: tuple[str, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.tar.bz2"

    @property
    def build_number(self) -> int:
        tail = self.build.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    def index_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "build": self.build,
            "build_number": self.build_number,
            "depends": list(self.depends),
            "license": "BSD-3-Clause",
            "name": self.name,
            "subdir": self.subdir,
            "timestamp": TIMESTAMP_MS,
            "version": self.version,
        }
        if self.subdir == "noarch":
            data["noarch"] = "generic"
        else:
            data["arch"], data["platform"] = _ARCH_PLATFORM[self.subdir]
        return data


_ARCH_PLATFORM = {"linux-64": ("x86_64", "linux"), "linux-aarch64": ("aarch64", "linux")}


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = MTIME
    info.mode = 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_conda_package(out_dir: Union[str, Path], package: CondaPackage) -> Path:
    """A ``.tar.bz2`` conda package (v1 format): the payload plus ``info/index.json``,
    ``info/files`` and ``info/paths.json``, as conda and rattler read them."""
    payload = dict(package.files) or {
        f"share/{package.name}/VERSION": f"{package.version}\n".encode()
    }
    paths = [
        {"_path": path, "path_type": "hardlink", "sha256": hashlib.sha256(data).hexdigest(),
         "size_in_bytes": len(data)}
        for path, data in sorted(payload.items())
    ]
    members = {
        **payload,
        "info/files": "".join(f"{p}\n" for p in sorted(payload)).encode(),
        "info/index.json": _json_bytes(package.index_json()),
        "info/paths.json": _json_bytes({"paths": paths, "paths_version": 1}),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in sorted(members):
            _tar_member(tar, name, members[name])
    out = Path(out_dir) / package.file_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bz2.compress(raw.getvalue(), 9))
    return out


def _json_bytes(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def publish_channel(
    root: Union[str, Path], packages: Sequence[CondaPackage], channel: str = CHANNEL
) -> dict[str, dict[str, Any]]:
    """Build ``packages`` into ``root``'s conda host and write every subdir's repodata.json
    (``noarch`` and :data:`SUBDIRS` always, empty when nothing is there, as real channels do).
    Returns ``{canonical URL: {"sha256", "md5", "size", "subdir"}}`` (a file name alone is not
    unique: each arch's subdir has its own ``fx-python-3.12.5-...``)."""
    base = Path(root) / CONDA_HOST / channel
    records: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in ("noarch", *SUBDIRS)}
    facts: dict[str, dict[str, Any]] = {}
    for package in packages:
        path = build_conda_package(base / package.subdir, package)
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        md5 = hashlib.md5(data).hexdigest()
        records[package.subdir][path.name] = {
            **package.index_json(), "md5": md5, "sha256": sha256, "size": len(data)}
        facts[f"https://{CONDA_HOST}/{channel}/{package.subdir}/{path.name}"] = {
            "sha256": sha256, "md5": md5, "size": len(data), "subdir": package.subdir,
        }
    for subdir, entries in records.items():
        repodata = {"info": {"subdir": subdir}, "packages": dict(sorted(entries.items())),
                    "packages.conda": {}, "removed": [], "repodata_version": 1}
        (base / subdir).mkdir(parents=True, exist_ok=True)
        (base / subdir / "repodata.json").write_bytes(_json_bytes(repodata))
    return facts


def scenario_packages() -> list[CondaPackage]:
    """The fixture channel's packages.

    * ``fx-python`` 3.11.9 and 3.12.5 per arch (-> ``fx-libz >=1.3``, ``__glibc >=2.17``)
    * ``fx-libz`` 1.3.1 per arch, and 1.3.2 built against glibc 2.34 (``__glibc >=2.34``):
      a lock for glibc 2.31 must keep 1.3.1
    * ``fx-tool`` 1.0 and 2.0, noarch (-> ``fx-python >=3.12``)
    * ``fx-aarch64-only`` 1.0, only in linux-aarch64 (nothing asks for it)
    """
    packages = []
    for subdir in SUBDIRS:
        for version, build in (("3.11.9", "h1a2b3c4_0_cpython"), ("3.12.5", "h5d6e7f8_0_cpython")):
            packages.append(CondaPackage("fx-python", version, build, subdir,
                                         ("fx-libz >=1.3", "__glibc >=2.17")))
        packages.append(CondaPackage("fx-libz", "1.3.1", "hb9c8d7e_1", subdir, ("__glibc >=2.17",)))
        packages.append(CondaPackage("fx-libz", "1.3.2", "h0f1e2d3_0", subdir, ("__glibc >=2.34",)))
    packages.append(CondaPackage("fx-aarch64-only", "1.0", "h4a5b6c7_0", "linux-aarch64"))
    for version in ("1.0", "2.0"):
        packages.append(CondaPackage("fx-tool", version, "pyhd8ed1ab_0", "noarch",
                                     ("fx-python >=3.12",)))
    return packages


def generate_conda_scenario(root: Union[str, Path]) -> dict[str, Any]:
    """The fixture channel under ``root``; returns facts about it (JSON-serializable)."""
    files = publish_channel(root, scenario_packages())
    return {
        "channel": f"https://{CONDA_HOST}/{CHANNEL}",
        "specs": ["fx-python 3.12.*", "fx-tool"],
        "expected": {"fx-python": "3.12.5", "fx-libz": "1.3.1", "fx-tool": "2.0"},
        "files": files,
    }
