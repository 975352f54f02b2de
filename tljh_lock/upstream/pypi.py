"""A PEP 503/691 package index, read as data: files, hashes, sizes, and core metadata."""

from __future__ import annotations

import email.parser
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass

from packaging.requirements import Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from tljh_lock.core import tomlio
from tljh_lock.core.errors import IntegrityError, UpstreamError
from tljh_lock.lock.model import Artifact
from tljh_lock.upstream.http import Client

JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
# What pip assumes when an sdist declares no build system (PEP 517's fallback); pip before 25
# also asks for `wheel`, and the installer on a server may be that old.
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")


@dataclass(frozen=True)
class IndexFile:
    artifact: Artifact
    version: Version
    is_wheel: bool
    requires_python: str | None
    metadata_sha256: str | None  # PEP 658/714 core metadata, when the index serves it
    yanked: bool


def project_url(index: str, name: str) -> str:
    return f"{index.rstrip('/')}/{canonicalize_name(name)}/"


def project_files(client: Client, index: str, name: str) -> list[IndexFile]:
    url = project_url(index, name)
    document = client.get(url, accept=JSON_ACCEPT, what=f"index page of {name}")
    try:
        page = json.loads(document.data)
        entries = page["files"]
    except (ValueError, KeyError, TypeError):
        raise UpstreamError(
            f"{url}: not a PEP 691 JSON index page (content type {document.content_type!r})",
            hint="the index or mirror must serve application/vnd.pypi.simple.v1+json",
        ) from None
    files = []
    for entry in entries:
        filename = entry["filename"]
        try:
            if filename.endswith(".whl"):
                file_name, version = parse_wheel_filename(filename)[:2]
                is_wheel = True
            else:
                file_name, version = parse_sdist_filename(filename)
                is_wheel = False
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue  # eggs, .exe installers and other files no installer here picks
        if file_name != canonicalize_name(name):
            # e.g. "cffi-1.0.2-2.tar.gz" parses as project "cffi-1-0-2", version 2
            continue
        sha256 = entry.get("hashes", {}).get("sha256")
        size = entry.get("size")
        if not sha256 or not isinstance(size, int):
            raise UpstreamError(f"{url}: {filename} lacks a sha256 or a size (PEP 700)")
        core = entry.get("core-metadata", entry.get("dist-info-metadata"))
        metadata_sha256 = core.get("sha256") if isinstance(core, dict) else None
        files.append(
            IndexFile(
                artifact=Artifact(filename, document.resolve(entry["url"]), size, sha256),
                version=version,
                is_wheel=is_wheel,
                requires_python=entry.get("requires-python") or None,
                metadata_sha256=metadata_sha256,
                yanked=bool(entry.get("yanked")),
            )
        )
    return files


def download(client: Client, artifact: Artifact, what: str) -> bytes:
    data = client.get(artifact.url, what=what).data
    actual = hashlib.sha256(data).hexdigest()
    if actual != artifact.sha256 or len(data) != artifact.size:
        raise IntegrityError(
            f"{what}: {artifact.name} from {client.mirrors.to_mirror(artifact.url)} does not match "
            f"the index: expected sha256 {artifact.sha256} ({artifact.size} bytes), "
            f"got {actual} ({len(data)} bytes)",
            hint="the index or a mirror serves a different file; do not use it",
        )
    return data


def requirements_from_metadata(text: str) -> list[str]:
    message = email.parser.Parser().parsestr(text)
    return sorted({str(Requirement(value)) for value in message.get_all("Requires-Dist") or []})


def wheel_dependencies(client: Client, file: IndexFile) -> list[str]:
    """Requires-Dist of a wheel, from PEP 658 metadata when served, else from the wheel."""
    name = file.artifact.name
    if file.metadata_sha256:
        url = file.artifact.url + ".metadata"
        data = client.get(url, what=f"metadata of {name}").data
        if hashlib.sha256(data).hexdigest() != file.metadata_sha256:
            raise IntegrityError(f"{url}: metadata does not match the sha256 the index gives")
        return requirements_from_metadata(data.decode("utf-8"))
    with zipfile.ZipFile(io.BytesIO(download(client, file.artifact, name))) as wheel:
        metadata = [n for n in wheel.namelist() if n.count("/") == 1
                    and n.endswith(".dist-info/METADATA")]
        if len(metadata) != 1:
            raise UpstreamError(f"{name}: no single .dist-info/METADATA inside")
        return requirements_from_metadata(wheel.read(metadata[0]).decode("utf-8"))


@dataclass(frozen=True)
class SdistFacts:
    dependencies: list[str]
    build_requires: list[str]


def sdist_facts(name: NormalizedName, data: bytes, source: str) -> SdistFacts:
    """Dependencies and build requirements an sdist declares statically.

    PKG-INFO is trusted from Metadata-Version 2.2 on (PEP 643) when Requires-Dist is not
    dynamic; older setuptools sdists carry the same list in `*.egg-info/requires.txt`.
    """
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) in (2, 3) and (
                parts[-1] in ("PKG-INFO", "pyproject.toml", "requires.txt")
            ):
                extracted = tar.extractfile(member)
                assert extracted is not None
                members["/".join(parts[1:])] = extracted.read()
    build_requires = list(LEGACY_BUILD_REQUIRES)
    if "pyproject.toml" in members:
        pyproject = tomlio.loads(members["pyproject.toml"].decode(), f"{source}/pyproject.toml")
        declared = pyproject.get("build-system", {}).get("requires")
        if isinstance(declared, list):
            build_requires = [str(Requirement(r)) for r in declared]
    pkg_info = members.get("PKG-INFO", b"").decode("utf-8", "replace")
    message = email.parser.Parser().parsestr(pkg_info)
    dynamic = {value.lower() for value in message.get_all("Dynamic") or []}
    metadata_version = Version(message.get("Metadata-Version") or "1.0")
    if metadata_version >= Version("2.2") and "requires-dist" not in dynamic:
        return SdistFacts(requirements_from_metadata(pkg_info), sorted(build_requires))
    requires = [path for path in members if path.endswith(".egg-info/requires.txt")]
    if len(requires) == 1:
        return SdistFacts(egg_info_requires(members[requires[0]].decode()), sorted(build_requires))
    if not requires and "Requires-Dist" not in pkg_info:
        return SdistFacts([], sorted(build_requires))
    raise UpstreamError(
        f"{source}: {name} declares its dependencies dynamically; tljh-lock cannot read them "
        "without building it",
        hint="pin a version that ships a wheel, or a static Metadata-Version 2.2 sdist",
    )


def egg_info_requires(text: str) -> list[str]:
    """setuptools' requires.txt: plain lines, then `[extra]`, `[:marker]` or `[extra:marker]`."""
    found: set[str] = set()
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        extra, _, marker = section.partition(":")
        markers = [f"({marker})"] if marker else []
        if extra:
            markers.append(f'extra == "{extra}"')
        found.add(str(Requirement(line + (" ; " + " and ".join(markers) if markers else ""))))
    return sorted(found)
