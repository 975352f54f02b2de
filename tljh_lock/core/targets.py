"""Install targets: a distribution's system python and C library on one architecture.

A target answers the two questions a lock must settle without resolving again: which
requirements apply (environment markers) and which wheels install (compatibility tags).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags

ARCHES = ("x86_64", "aarch64")
PLATFORMS = (*ARCHES, "all")  # what `fetch` and `bundle` take: one arch, or every one

# name -> (system python X.Y.Z, glibc X.Y); the python patch level only matters to markers.
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "debian-11": ("3.9.2", "2.31"),
    "debian-12": ("3.11.2", "2.36"),
    "debian-13": ("3.13.5", "2.41"),
    "ubuntu-22.04": ("3.10.12", "2.35"),
    "ubuntu-24.04": ("3.12.3", "2.39"),
}

# The oldest glibc any manylinux tag names (manylinux_2_5 == manylinux1).
_MANYLINUX_FLOOR = 5
_LEGACY_ALIASES = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


@dataclass(frozen=True, order=True)
class Target:
    name: str
    python: str  # full version, e.g. "3.11.2"
    glibc: str  # e.g. "2.36"
    arch: str  # "x86_64" or "aarch64"

    @property
    def python_minor(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    def marker_environment(self) -> dict[str, str]:
        major, minor = self.python_minor
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python,
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python,
            "python_version": f"{major}.{minor}",
            "sys_platform": "linux",
        }

    def platform_tags(self) -> list[str]:
        """manylinux tags this glibc accepts, most specific first (as pip orders them)."""
        glibc_major, glibc_minor = (int(p) for p in self.glibc.split("."))
        tags: list[str] = []
        for minor in range(glibc_minor, _MANYLINUX_FLOOR - 1, -1):
            tags.append(f"manylinux_{glibc_major}_{minor}_{self.arch}")
            alias = _LEGACY_ALIASES.get((glibc_major, minor))
            if alias and (self.arch == "x86_64" or alias == "manylinux2014"):
                tags.append(f"{alias}_{self.arch}")
        tags.append(f"linux_{self.arch}")
        return tags

    def supported_tags(self) -> list[Tag]:
        version = self.python_minor
        platforms = self.platform_tags()
        return [
            *cpython_tags(version, platforms=platforms),
            *compatible_tags(version, interpreter="cp{}{}".format(*version), platforms=platforms),
        ]

    def tag_rank(self) -> dict[Tag, int]:
        """Supported tags with pip's preference order (lower is better)."""
        return _tag_rank(self)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "python": self.python, "glibc": self.glibc, "arch": self.arch}


@functools.cache
def _tag_rank(target: Target) -> dict[Tag, int]:
    return {tag: index for index, tag in enumerate(target.supported_tags())}


def default_targets() -> list[Target]:
    return sorted(
        Target(f"{dist}-{arch}", python, glibc, arch)
        for dist, (python, glibc) in DISTRIBUTIONS.items()
        for arch in ARCHES
    )
