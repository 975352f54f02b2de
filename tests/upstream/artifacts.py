"""Tiny real artifacts (wheels, sdists, GitHub-style archives) and a PyPI-like index of them.

Everything is deterministic (fixed 2020-01-01 timestamps, sorted members, fixed permissions), so
the same call gives the same bytes and the same sha256 on every run.
"""

from __future__ import annotations

import email.parser
import hashlib
import html
import json
import shutil
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Optional, Union

from packaging.utils import (
    InvalidSdistFilename,
    NormalizedName,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from . import fixture_backend as fb
from .fixture_backend import FileData, ProjectMetadata

__all__ = [
    "UPLOAD_TIME",
    "build_fixture_backend_wheel",
    "build_sdist",
    "build_wheel",
    "make_source_archive",
    "publish_to_index",
    "sha256_file",
]

UPLOAD_TIME = "2020-01-01T00:00:00.000000Z"  # every file, so index pages are stable too
FILES_HOST = "files.pythonhosted.org"
INDEX_HOST = "pypi.org"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"

PathLike = Union[str, Path]


def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _default_files(name: str, version: str) -> dict[str, FileData]:
    return {f"{fb.escape_name(name)}/__init__.py": f'__version__ = "{version}"\n'}


def build_wheel(
    out_dir: PathLike,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: Optional[str] = None,
    tag: str = "py3-none-any",
    files: Optional[Mapping[str, FileData]] = None,
    entry_points: Optional[Mapping[str, Mapping[str, str]]] = None,
) -> Path:
    """A wheel pip and uv can install.

    ``files`` maps paths inside the wheel to contents (default: ``<name>/__init__.py``);
    ``entry_points`` maps groups to ``{name: "module:func"}``, e.g.
    ``{"console_scripts": {"tljh-config": "tljh.config:main"}}``. ``tag`` may be a compressed
    tag set such as ``cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64``.
    """
    meta = ProjectMetadata(
        name,
        version,
        requires_dist=requires_dist,
        requires_python=requires_python,
        entry_points=entry_points,
    )
    return fb.write_wheel(out_dir, meta, files or _default_files(name, version), tag)


def build_sdist(
    out_dir: PathLike,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    requires_python: Optional[str] = None,
    build_requires: Sequence[str] = ("fixture-backend",),
    build_backend: str = "fixture_backend",
    files: Optional[Mapping[str, FileData]] = None,
    scripts: Optional[Mapping[str, str]] = None,
) -> Path:
    """``name-version.tar.gz`` with static PKG-INFO (2.2), pyproject.toml and the package.

    With the defaults it builds offline through ``fixture-backend``
    (see :func:`build_fixture_backend_wheel`).
    """
    meta = ProjectMetadata(
        name,
        version,
        requires_dist=requires_dist,
        requires_python=requires_python,
        entry_points={"console_scripts": scripts} if scripts else None,
    )
    pyproject = fb.pyproject_toml(meta, build_requires, build_backend)
    members = fb.sdist_members(meta, files or _default_files(name, version), pyproject)
    out = Path(out_dir) / f"{fb.escape_name(name)}-{version}.tar.gz"
    return fb.write_targz(out, members)


def build_fixture_backend_wheel(out_dir: PathLike) -> Path:
    """The ``fixture-backend`` 1.0 wheel (module ``fixture_backend``), a real PEP 517 backend."""
    source = Path(fb.__file__).read_bytes()
    return build_wheel(
        out_dir,
        "fixture-backend",
        "1.0",
        requires_python=">=3.9",
        files={"fixture_backend/__init__.py": source},
    )


def make_source_archive(
    out_path: PathLike,
    top_dir: str,
    files: Mapping[str, FileData],
    executable: Iterable[str] = (),
) -> Path:
    """A GitHub-style ``archive/<ref>.tar.gz``: one top-level directory, directory entries.

    ``files`` paths are relative to ``top_dir``; those named in ``executable`` get mode 0755.
    """
    executable = set(executable)
    unknown = executable - set(files)
    if unknown:
        raise ValueError(f"executable names files not in the archive: {sorted(unknown)}")
    members = [
        (f"{top_dir}/{path}", fb.as_bytes(data), 0o755 if path in executable else 0o644)
        for path, data in files.items()
    ]
    return fb.write_targz(out_path, members, directories=True)


# --- the index --------------------------------------------------------------------------------


def _project_of(filename: str) -> Optional[tuple[NormalizedName, Version]]:
    """(normalized name, version) of a distribution file name, None if it is not one."""
    if filename.endswith(".whl"):
        name, version, _build, _tags = parse_wheel_filename(filename)
        return name, version
    try:
        name, version = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return None
    return name, version


def _wheel_metadata(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        candidates = [
            n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        if len(candidates) != 1:
            raise ValueError(f"{path.name}: expected one .dist-info/METADATA, got {candidates}")
        return zf.read(candidates[0])


def _sdist_metadata(path: Path) -> Optional[bytes]:
    if not path.name.endswith(".tar.gz"):
        return None
    with tarfile.open(path) as tf:
        for member in tf.getmembers():
            if (
                member.isfile()
                and member.name.count("/") == 1
                and member.name.endswith("/PKG-INFO")
            ):
                fh = tf.extractfile(member)
                return fh.read() if fh else None
    return None


def _requires_python(metadata: Optional[bytes]) -> Optional[str]:
    if metadata is None:
        return None
    msg = email.parser.BytesHeaderParser().parsebytes(metadata)
    return msg.get("Requires-Python")


def publish_to_index(root: PathLike, files: Iterable[PathLike]) -> list[Path]:
    """Copy distribution files into a PyPI-like layout under ``root`` and rebuild its pages.

    Files land in ``files.pythonhosted.org/packages/<h[:2]>/<h[2:4]>/<h[4:]>/<name>``
    (``h`` = sha256 hex); wheels also get ``<name>.metadata`` (PEP 658). The simple pages of
    every project found under ``packages/`` are rewritten (PEP 503 HTML and PEP 691 JSON, API
    1.1), with file URLs relative to the page, so they work behind any mirror prefix.
    Returns the published paths.
    """
    root = Path(root)
    packages = root / FILES_HOST / "packages"
    published = []
    for src in map(Path, files):
        if _project_of(src.name) is None:
            raise ValueError(f"not a wheel or sdist file name: {src.name}")
        digest = sha256_file(src)
        dest = packages / digest[:2] / digest[2:4] / digest[4:] / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        if src.name.endswith(".whl"):
            Path(f"{dest}.metadata").write_bytes(_wheel_metadata(dest))
        published.append(dest)
    _write_index_pages(root)
    return published


def _write_index_pages(root: Path) -> None:
    packages = root / FILES_HOST / "packages"
    by_project: dict[str, list[tuple[Version, Path]]] = {}
    for path in packages.rglob("*") if packages.is_dir() else ():
        parsed = _project_of(path.name) if path.is_file() else None
        if parsed is not None:
            by_project.setdefault(parsed[0], []).append((parsed[1], path))

    simple = root / INDEX_HOST / "simple"
    simple.mkdir(parents=True, exist_ok=True)
    for name, paths in by_project.items():
        _write_project_page(root, simple / name, name, paths)

    names = sorted(by_project)
    links = "\n".join(f'    <a href="{n}/">{html.escape(n)}</a><br />' for n in names)
    (simple / "index.html").write_text(_html_page("Simple index", links), encoding="utf-8")
    _write_json(
        simple / "index.json",
        {"meta": {"api-version": "1.1"}, "projects": [{"name": n} for n in names]},
    )


def _write_project_page(
    root: Path, page_dir: Path, name: str, paths: list[tuple[Version, Path]]
) -> None:
    entries = []
    for version, path in paths:
        is_wheel = path.name.endswith(".whl")
        metadata = _wheel_metadata(path) if is_wheel else _sdist_metadata(path)
        entries.append(
            {
                "version": version,
                "filename": path.name,
                # page_dir is pypi.org/simple/<name>/, three levels below the host root.
                "url": "../../../" + path.relative_to(root).as_posix(),
                "sha256": sha256_file(path),
                "size": path.stat().st_size,
                "requires_python": _requires_python(metadata),
                "metadata_sha256": hashlib.sha256(metadata).hexdigest() if is_wheel else None,
            }
        )
    entries.sort(key=lambda e: (e["version"], e["filename"]))

    links = []
    files = []
    for e in entries:
        attrs = f' href="{html.escape(e["url"])}#sha256={e["sha256"]}"'
        if e["requires_python"]:
            attrs += f' data-requires-python="{html.escape(e["requires_python"])}"'
        if e["metadata_sha256"]:
            meta_attr = f"sha256={e['metadata_sha256']}"
            attrs += f' data-dist-info-metadata="{meta_attr}" data-core-metadata="{meta_attr}"'
        links.append(f"    <a{attrs}>{html.escape(e['filename'])}</a><br />")
        item = {
            "filename": e["filename"],
            "url": e["url"],
            "hashes": {"sha256": e["sha256"]},
            "requires-python": e["requires_python"],
            "size": e["size"],
            "upload-time": UPLOAD_TIME,
            "yanked": False,
        }
        if e["metadata_sha256"]:
            # PEP 714's name plus the older one, as PyPI serves both.
            item["core-metadata"] = {"sha256": e["metadata_sha256"]}
            item["dist-info-metadata"] = {"sha256": e["metadata_sha256"]}
        files.append(item)

    versions = sorted({str(e["version"]) for e in entries}, key=Version)
    page_dir.mkdir(parents=True, exist_ok=True)
    title = f"Links for {name}"
    (page_dir / "index.html").write_text(_html_page(title, "\n".join(links)), encoding="utf-8")
    _write_json(
        page_dir / "index.json",
        {"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": files},
    )


def _html_page(title: str, body: str) -> str:
    title = html.escape(title)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta name="pypi:repository-version" content="1.1">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n    <h1>{title}</h1>\n"
        f"{body}\n  </body>\n</html>\n"
    )


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
