"""Source pins: a repository at a commit, fixed by the content hash of its tree.

The pin's declared requirements enter the resolution as given (a fixed input). When the
archive is reachable, `update` also proves the pin: the tree hash matches, and the declared
requirements equal the package's own metadata; and it records the sha256 and size of the
archive's bytes, which PEP 751 readers check (`export --format pylock`).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import logging

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tljh_lock.core import tomlio, treehash
from tljh_lock.core.errors import IntegrityError, UpstreamError
from tljh_lock.lock.kinds.pip import Source
from tljh_lock.upstream import pypi as pypi_index
from tljh_lock.upstream.http import Client

log = logging.getLogger(__name__)


def verify(client: Client, source: Source, where: str, previous: Source | None = None) -> Source:
    """The pin, proven, with its archive's sha256 and size. An unreachable archive is only a
    warning: the pin keeps the sha256 `previous` (the lock's) recorded for the same pin."""
    try:
        data = client.get(source.url, what=f"{where}: source {source.name}").data
    except UpstreamError as exc:
        kept = previous if previous is not None and _unrecorded(previous) == _unrecorded(
            source) else None
        log.warning("%s: source %s not verified (archive unreachable): %s%s", where, source.name,
                    exc.message, "" if kept and kept.archive_sha256 else
                    "; without its archive's sha256, `export --format pylock` cannot name it")
        return kept or source
    files = _checked_tree(client, source, where, data)
    name, version, requires, build_requires = declared_metadata(
        files, f"{source.url}:{source.subdirectory}" if source.subdirectory else source.url)
    problems = []
    if name is not None and canonicalize_name(name) != source.name:
        problems.append(f"name is {name!r}, not {source.name!r}")
    if version is not None and version != source.version:
        problems.append(f"version is {version}, not {source.version}")
    if requires is not None and _normalized(requires) != _normalized(source.requires):
        problems.append(_difference("requires", source.requires, requires))
    if _normalized(build_requires) != _normalized(source.build_requires):
        problems.append(_difference("build-requires", source.build_requires, build_requires))
    if problems:
        raise IntegrityError(
            f"{where}: source {source.name} at {source.commit} disagrees with its own metadata: "
            + "; ".join(problems),
            hint="copy the package's own lists into the recipe",
        )
    return dataclasses.replace(source, archive_sha256=hashlib.sha256(data).hexdigest(),
                               archive_size=len(data))


def _unrecorded(source: Source) -> Source:
    """The pin as a recipe states it: without what `update` records from the archive."""
    return dataclasses.replace(source, archive_sha256=None, archive_size=None)


def tree(client: Client, source: Source, where: str) -> dict[str, bytes]:
    """The pinned project's files (below its subdirectory), its archive verified by the
    tree hash."""
    data = client.get(source.url, what=f"{where}: source {source.name}").data
    return _checked_tree(client, source, where, data)


def _checked_tree(client: Client, source: Source, where: str, data: bytes) -> dict[str, bytes]:
    files = treehash.archive_files(data, source.url)
    actual = treehash.tree_hash(files.items())
    if actual != source.tree_hash:
        raise IntegrityError(
            f"{where}: source {source.name} at {source.commit}: tree hash mismatch: "
            f"expected {source.tree_hash}, got {actual} "
            f"(from {client.mirrors.to_mirror(source.url)})",
            hint="the archive is not the pinned tree; check the commit and the mirror",
        )
    return treehash.subtree(files, source.subdirectory)


def _normalized(requirements: tuple[str, ...] | list[str]) -> set[str]:
    return {str(Requirement(r)) for r in requirements}


def _difference(field: str, declared: tuple[str, ...], actual: list[str]) -> str:
    missing = sorted(_normalized(actual) - _normalized(declared))
    extra = sorted(_normalized(declared) - _normalized(actual))
    return f"{field}: recipe lacks {missing}, recipe has extra {extra}"


def declared_metadata(
    files: dict[str, bytes], source: str
) -> tuple[str | None, str | None, list[str] | None, list[str]]:
    """(name, version, install requirements, build requirements) as the tree declares them:
    PEP 621 `[project]` in pyproject.toml, else literal `setup(...)` keywords in setup.py."""
    build_requires = list(pypi_index.LEGACY_BUILD_REQUIRES)
    if "pyproject.toml" in files:
        pyproject = tomlio.loads(files["pyproject.toml"].decode(), f"{source}:pyproject.toml")
        declared = pyproject.get("build-system", {}).get("requires")
        if isinstance(declared, list):
            build_requires = declared
        project = pyproject.get("project")
        if isinstance(project, dict) and "dependencies" not in project.get("dynamic", []):
            return (_text(project.get("name")), _text(project.get("version")),
                    _texts(project.get("dependencies", [])), build_requires)
    if "setup.py" in files:
        keywords = _setup_keywords(files["setup.py"].decode(), f"{source}:setup.py")
        return (_text(keywords.get("name")), _text(keywords.get("version")),
                _texts(keywords.get("install_requires", [])), build_requires)
    return None, None, None, build_requires


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: object) -> list[str]:
    """A declared list of requirements; anything else is none (and then differs from the
    recipe's, which the caller reports)."""
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else []


def _setup_keywords(text: str, source: str) -> dict[str, object]:
    """Literal keyword arguments of the `setup(...)` call; non-literal ones are skipped."""
    found: dict[str, object] = {}
    for node in ast.walk(ast.parse(text, source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg is None:
                    continue
                try:
                    found[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    continue
    return found
