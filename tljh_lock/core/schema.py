"""Typed reading of untrusted TOML tables, with errors that name the place.

A malformed lock must fail with `packages[4].wheels[2].hashes: ...`, not a KeyError.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from tljh_lock.core.errors import InputError

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")


class Table:
    """A TOML table at a named place; every accessor checks the type and says where."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        self.source = source
        self.path = path
        if not isinstance(data, dict):
            self.fail(f"expected a table, found {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, message: str, key: str | None = None) -> None:
        where = self.place(key)
        prefix = f"{self.source}: {where}" if where else self.source
        raise InputError(f"{prefix}: {message}")

    def place(self, key: str | int | None = None) -> str:
        if key is None:
            return self.path
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, kind: type | tuple[type, ...], optional: bool) -> Any:
        if key not in self.data:
            if optional:
                return None
            self.fail("missing", key)
        value = self.data[key]
        # bool is an int in Python; a lock with `size = true` is still malformed.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(f"expected {names}, found {type(value).__name__} {value!r}", key)
        return value

    def string(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, str, optional)
        if value is not None and not value:
            self.fail("must not be empty", key)
        return value

    def integer(self, key: str, optional: bool = False) -> Any:
        value = self._get(key, int, optional)
        if value is not None and value < 0:
            self.fail("must not be negative", key)
        return value

    def strings(self, key: str, optional: bool = False) -> list[str]:
        value: list[str] | None = self._get(key, list, optional)
        if value is None:
            return []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.fail(f"expected a string, found {type(item).__name__}", f"{key}[{index}]")
        return value

    def table(self, key: str, optional: bool = False) -> Table | None:
        value = self._get(key, dict, optional)
        return None if value is None else Table(value, self.place(key), self.source)

    def tables(self, key: str, optional: bool = False) -> Iterator[Table]:
        value = self._get(key, list, optional) or []
        for index, item in enumerate(value):
            yield Table(item, f"{self.place(key)}[{index}]", self.source)

    # Values with a grammar.

    def url(self, key: str, optional: bool = False) -> Any:
        value = self.string(key, optional)
        if value is not None and not value.startswith("https://"):
            self.fail(f"{value!r} is not a canonical https:// URL", key)
        return value

    def file_name(self, key: str) -> str:
        value: str = self.string(key)
        if not _SAFE_FILE_NAME.match(value) or ".." in value:
            self.fail(f"{value!r} is not a plain file name", key)
        return value

    def sha256(self, key: str = "hashes") -> str:
        """The sha256 of a `hashes` table."""
        hashes = self.table(key)
        assert hashes is not None
        value: str = hashes.hex_sha256("sha256")
        return value

    def hex_sha256(self, key: str, optional: bool = False) -> Any:
        value = self.string(key, optional)
        if value is not None and not _SHA256.match(value):
            self.fail(f"{value!r} is not a lowercase hex sha256", key)
        return value

    def version(self, key: str) -> str:
        value: str = self.string(key)
        try:
            Version(value)
        except InvalidVersion:
            self.fail(f"{value!r} is not a valid version", key)
        return value

    def specifier(self, key: str, optional: bool = False) -> Any:
        value = self.string(key, optional)
        if value is not None:
            try:
                SpecifierSet(value)
            except InvalidSpecifier:
                self.fail(f"{value!r} is not a valid version specifier", key)
        return value

    def requirements(self, key: str, optional: bool = False) -> list[str]:
        values = self.strings(key, optional)
        for index, value in enumerate(values):
            try:
                parse_requirement(value)
            except InvalidRequirement as exc:
                self.fail(f"not a valid requirement: {exc}", f"{key}[{index}]")
        return values


@functools.cache
def parse_requirement(text: str) -> Requirement:
    """`text` parsed (InvalidRequirement if it is not one), once per run: a lock names the
    same requirements in many packages and components, and apply plans twice."""
    return Requirement(text)
