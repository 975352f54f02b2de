"""The mirror map: canonical URL prefixes rewritten for fetching, and only for fetching.

Locks always hold canonical URLs. A mirror changes where bytes come from, never what the
lock says, so a lock made through a mirror is identical to one made without.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tljh_lock.core import tomlio
from tljh_lock.core.errors import InputError, UsageError

# Read when no --mirror-config is given; a server or CI image can point fleets at a cache.
DEFAULT_CONFIG = Path("/etc/tljh-lock/mirrors.toml")
CONFIG_ENV = "TLJH_LOCK_MIRROR_CONFIG"


@dataclass(frozen=True)
class MirrorMap:
    # (canonical prefix, mirror prefix), longest canonical prefix first
    rules: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def from_pairs(cls, pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> MirrorMap:
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        rules = []
        for canonical, mirror in items:
            for label, prefix in (("canonical", canonical), ("mirror", mirror)):
                if not isinstance(prefix, str) or "://" not in prefix:
                    raise InputError(f"mirror map: {label} prefix {prefix!r} is not a URL")
            rules.append((canonical, mirror))
        rules.sort(key=lambda rule: (-len(rule[0]), rule[0]))
        return cls(tuple(rules))

    def merged(self, other: MirrorMap) -> MirrorMap:
        """`other` wins for a canonical prefix both name (command line over config file)."""
        combined = dict(self.rules)
        combined.update(other.rules)
        return MirrorMap.from_pairs(combined)

    def to_mirror(self, url: str) -> str:
        for canonical, mirror in self.rules:
            if url.startswith(canonical):
                return mirror + url[len(canonical) :]
        return url

    def to_canonical(self, url: str) -> str:
        for canonical, mirror in sorted(self.rules, key=lambda rule: -len(rule[1])):
            if url.startswith(mirror):
                return canonical + url[len(mirror) :]
        return url


def parse_flag(value: str) -> tuple[str, str]:
    """`--mirror CANONICAL=MIRROR`."""
    canonical, sep, mirror = value.partition("=")
    if not sep or not canonical or not mirror:
        raise UsageError(f"--mirror {value!r}: expected CANONICAL_PREFIX=MIRROR_PREFIX")
    return canonical, mirror


def load_config(path: Path) -> MirrorMap:
    """A TOML file with a `[mirrors]` table of canonical prefix = mirror prefix."""
    data = tomlio.load(path)
    table = data.get("mirrors", {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: [mirrors] must be a table of prefix = prefix")
    return MirrorMap.from_pairs(table)


def from_options(config: str | None, flags: Iterable[str]) -> MirrorMap:
    path = config or os.environ.get(CONFIG_ENV)
    base = MirrorMap()
    if path:
        base = load_config(Path(path))
    elif DEFAULT_CONFIG.is_file():
        base = load_config(DEFAULT_CONFIG)
    return base.merged(MirrorMap.from_pairs([parse_flag(flag) for flag in flags]))
