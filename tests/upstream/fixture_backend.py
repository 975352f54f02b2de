"""``fixture_backend``: a tiny but real PEP 517 build backend.

This file is published verbatim as ``fixture_backend/__init__.py`` inside the ``fixture-backend``
wheel of the fixture upstream, so sdists and source archives in tests build offline without
setuptools. It also holds the deterministic wheel/sdist writers that ``artifacts.py`` reuses, so
that a wheel built by pip through this backend and one built directly by the tests agree.

It runs inside pip's isolated build environments on any Python >= 3.9: stdlib only, no imports
from the test tree.

Metadata comes from ``pyproject.toml`` ``[project]`` (name, version, dependencies,
requires-python, scripts, entry-points); every top-level package directory (one holding
``__init__.py``) of the source tree is packaged.
"""

from __future__ import annotations

import ast
import base64
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

__all__ = [
    "build_wheel",
    "build_sdist",
    "get_requires_for_build_wheel",
    "get_requires_for_build_sdist",
    "prepare_metadata_for_build_wheel",
]

# Every archive member gets this date so that rebuilding gives byte-identical files and hashes.
FIXED_DATE_TIME = (2020, 1, 1, 0, 0, 0)
FIXED_MTIME = 1577836800  # 2020-01-01T00:00:00Z

Member = tuple[str, bytes, int]  # (archive path, contents, permission bits)
FileData = Union[bytes, str]

_GENERATOR = "fixture-backend 1.0"
PURE_TAG = "py3-none-any"  # what the backend builds: the fixtures have no compiled code


def normalize_name(name: str) -> str:
    """PEP 503 normalized project name (``Foo.Bar_baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def escape_name(name: str) -> str:
    """Project name as written in wheel and sdist file names and the dist-info directory."""
    return re.sub(r"[-_.]+", "_", name).lower()


def as_bytes(data: FileData) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


class ProjectMetadata:
    """The static core metadata the fixtures need; nothing is dynamic."""

    def __init__(
        self,
        name: str,
        version: str,
        *,
        requires_dist: Sequence[str] = (),
        requires_python: Optional[str] = None,
        entry_points: Optional[Mapping[str, Mapping[str, str]]] = None,
    ) -> None:
        self.name = name
        self.version = version
        self.requires_dist = tuple(requires_dist)
        self.requires_python = requires_python
        self.entry_points = {g: dict(e) for g, e in (entry_points or {}).items() if e}

    @property
    def dist_info(self) -> str:
        return f"{escape_name(self.name)}-{self.version}.dist-info"

    def render(self, metadata_version: str) -> str:
        lines = [
            f"Metadata-Version: {metadata_version}",
            f"Name: {self.name}",
            f"Version: {self.version}",
        ]
        if self.requires_python:
            lines.append(f"Requires-Python: {self.requires_python}")
        lines.extend(f"Requires-Dist: {req}" for req in self.requires_dist)
        return "\n".join(lines) + "\n"

    def render_entry_points(self) -> str:
        out = []
        for group in sorted(self.entry_points):
            out.append(f"[{group}]")
            out.extend(f"{k} = {v}" for k, v in sorted(self.entry_points[group].items()))
            out.append("")
        return "\n".join(out)


def expand_tag(tag: str) -> list[str]:
    """``py2.py3-none-any`` -> ``["py2-none-any", "py3-none-any"]`` (compressed tag sets)."""
    interpreters, abis, platforms = tag.split("-")
    return [
        f"{i}-{a}-{p}"
        for i in interpreters.split(".")
        for a in abis.split(".")
        for p in platforms.split(".")
    ]


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def dist_info_members(meta: ProjectMetadata, tag: str) -> list[Member]:
    """METADATA, WHEEL and entry_points.txt (RECORD is added when the wheel is written)."""
    pure = tag.endswith("-none-any")
    wheel = [
        "Wheel-Version: 1.0",
        f"Generator: {_GENERATOR}",
        f"Root-Is-Purelib: {'true' if pure else 'false'}",
    ]
    wheel.extend(f"Tag: {t}" for t in expand_tag(tag))
    members = [
        (f"{meta.dist_info}/METADATA", meta.render("2.1").encode("utf-8"), 0o644),
        (f"{meta.dist_info}/WHEEL", ("\n".join(wheel) + "\n").encode("utf-8"), 0o644),
    ]
    if meta.entry_points:
        members.append(
            (f"{meta.dist_info}/entry_points.txt", meta.render_entry_points().encode(), 0o644)
        )
    return members


def write_wheel(
    out_dir: Union[str, Path],
    meta: ProjectMetadata,
    files: Mapping[str, FileData],
    tag: str = "py3-none-any",
) -> Path:
    """Write a deterministic wheel: package files sorted, then dist-info, RECORD last."""
    body: list[Member] = [(p, as_bytes(d), 0o644) for p, d in sorted(files.items())]
    body += dist_info_members(meta, tag)
    record_path = f"{meta.dist_info}/RECORD"
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d, _ in body)
    record += f"{record_path},,\n"
    body.append((record_path, record.encode("utf-8"), 0o644))

    out = Path(out_dir) / f"{escape_name(meta.name)}-{meta.version}-{tag}.whl"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Stored, not deflated: the bytes then do not depend on the zlib version.
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for path, data, mode in body:
            info = zipfile.ZipInfo(path, date_time=FIXED_DATE_TIME)
            info.external_attr = (0o100000 | mode) << 16
            info.create_system = 3  # unix, so the permission bits are honoured
            zf.writestr(info, data)
    return out


def write_targz(
    out_path: Union[str, Path], members: Iterable[Member], *, directories: bool = False
) -> Path:
    """Write a deterministic ``.tar.gz`` (sorted members, root-owned, fixed mtime).

    ``directories`` adds an entry for every parent directory, as ``git archive`` does.
    """
    members = sorted(members, key=lambda m: m[0].encode("utf-8"))
    entries: dict[str, Optional[Member]] = {}
    for member in members:
        if directories:
            parts = member[0].split("/")[:-1]
            for i in range(1, len(parts) + 1):
                entries.setdefault("/".join(parts[:i]), None)
        entries[member[0]] = member

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in sorted(entries, key=lambda n: n.encode("utf-8")):
            member = entries[name]
            info = tarfile.TarInfo(name)
            info.mtime = FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if member is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(member[1])
                info.mode = member[2]
                tf.addfile(info, io.BytesIO(member[1]))
    # gzip with mtime 0 and no embedded file name, else the header differs per run.
    with (
        open(out, "wb") as fh,
        gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(raw.getvalue())
    return out


def pyproject_toml(meta: ProjectMetadata, build_requires: Sequence[str], build_backend: str) -> str:
    """A small pyproject.toml; JSON string literals are valid TOML basic strings."""
    q = _toml_str
    lines = [
        "[build-system]",
        f"requires = [{', '.join(q(r) for r in build_requires)}]",
        f"build-backend = {q(build_backend)}",
        "",
        "[project]",
        f"name = {q(meta.name)}",
        f"version = {q(meta.version)}",
        f"dependencies = [{', '.join(q(r) for r in meta.requires_dist)}]",
    ]
    if meta.requires_python:
        lines.append(f"requires-python = {q(meta.requires_python)}")
    for group in sorted(meta.entry_points):
        header = (
            "project.scripts" if group == "console_scripts" else f"project.entry-points.{q(group)}"
        )
        lines += ["", f"[{header}]"]
        lines += [f"{q(k)} = {q(v)}" for k, v in sorted(meta.entry_points[group].items())]
    return "\n".join(lines) + "\n"


def sdist_members(
    meta: ProjectMetadata, files: Mapping[str, FileData], pyproject: FileData
) -> list[Member]:
    """Members of ``name-version.tar.gz``: PKG-INFO (2.2, all static), pyproject, sources."""
    top = f"{escape_name(meta.name)}-{meta.version}"
    members = [(f"{top}/{p}", as_bytes(d), 0o644) for p, d in files.items()]
    members.append((f"{top}/PKG-INFO", meta.render("2.2").encode("utf-8"), 0o644))
    members.append((f"{top}/pyproject.toml", as_bytes(pyproject), 0o644))
    return members


def _toml_str(value: str) -> str:
    return json.dumps(value)


# --- reading pyproject.toml -------------------------------------------------------------------


def _load_toml(text: str) -> dict[str, Any]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python < 3.11 and no tomli in the build env: use the subset parser.
        try:
            import tomli as tomllib  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return parse_toml_subset(text)
    return tomllib.loads(text)


def _strip_comment(line: str) -> str:
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
    return line


class _TomlBooleans(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ("true", "false"):
            return ast.copy_location(ast.Constant(node.id == "true"), node)
        return node


def _toml_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("{"):
        raise ValueError(f"fixture_backend: inline tables are not supported: {text!r}")
    # Strings, numbers and arrays read like Python literals once true/false are mapped.
    tree = _TomlBooleans().visit(ast.parse(text, mode="eval"))
    return ast.literal_eval(tree)


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r'\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)\s*(?:\.|$)', key)
    return [ast.literal_eval(p) if p[0] in "\"'" else p for p in parts]


def parse_toml_subset(text: str) -> dict[str, Any]:
    """The TOML subset that pyproject files in these fixtures use.

    Tables, ``key = value`` with strings, booleans, numbers and (multi-line) arrays of those.
    Only for Pythons without tomllib; anything else raises rather than guessing.
    """
    data: dict[str, Any] = {}
    table = data
    lines = iter(text.splitlines())
    for raw in lines:
        line = _strip_comment(raw).strip()
        if not line:
            continue
        if line.startswith("[["):
            raise ValueError("fixture_backend: arrays of tables are not supported")
        if line.startswith("["):
            table = data
            for key in _split_dotted(line[1 : line.rindex("]")]):
                table = table.setdefault(key, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"fixture_backend: cannot parse TOML line {raw!r}")
        # Brackets inside strings (extras like "a[b]") come in pairs, so counting is enough.
        while value.count("[") > value.count("]"):
            value += " " + _strip_comment(next(lines)).strip()
        target = table
        keys = _split_dotted(key)
        for k in keys[:-1]:
            target = target.setdefault(k, {})
        target[keys[-1]] = _toml_value(value)
    return data


def load_project(source_dir: Union[str, Path] = ".") -> tuple[ProjectMetadata, dict[str, bytes]]:
    """Metadata from ``pyproject.toml`` and the package files of a source tree."""
    root = Path(source_dir)
    pyproject = _load_toml((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    if project.get("dynamic"):
        raise ValueError("fixture_backend: dynamic metadata is not supported")
    entry_points = {g: dict(e) for g, e in project.get("entry-points", {}).items()}
    if project.get("scripts"):
        entry_points["console_scripts"] = dict(project["scripts"])
    meta = ProjectMetadata(
        project["name"],
        project["version"],
        requires_dist=project.get("dependencies", ()),
        requires_python=project.get("requires-python"),
        entry_points=entry_points,
    )
    return meta, _package_files(root)


def _package_files(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for top in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file()):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in filenames:
                if name.endswith((".pyc", ".pyo")):
                    continue
                path = Path(dirpath, name)
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


# --- PEP 517 hooks ----------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[dict[str, Any]] = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict[str, Any]] = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(
    metadata_directory: str, config_settings: Optional[dict[str, Any]] = None
) -> str:
    meta, _ = load_project()
    for path, data, _mode in dist_info_members(meta, PURE_TAG):
        target = Path(metadata_directory, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return meta.dist_info


def build_wheel(
    wheel_directory: str,
    config_settings: Optional[dict[str, Any]] = None,
    metadata_directory: Optional[str] = None,
) -> str:
    # The prepared metadata is recomputed from the same pyproject.toml, so it always matches.
    meta, files = load_project()
    return write_wheel(wheel_directory, meta, files, PURE_TAG).name


def build_sdist(sdist_directory: str, config_settings: Optional[dict[str, Any]] = None) -> str:
    meta, files = load_project()
    pyproject = Path("pyproject.toml").read_bytes()
    out = Path(sdist_directory) / f"{escape_name(meta.name)}-{meta.version}.tar.gz"
    return write_targz(out, sdist_members(meta, files, pyproject)).name
