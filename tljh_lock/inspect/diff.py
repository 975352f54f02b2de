"""`diff`: what changed between two locks, per component, for a reviewer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from packaging.version import InvalidVersion, Version

from tljh_lock.lock.model import Artifact, Lock


@dataclass(frozen=True)
class PackageChange:
    """One package's versions before and after (none before: added; none after: removed)."""

    package: str
    old: tuple[str, ...]
    new: tuple[str, ...]

    def __str__(self) -> str:
        if not self.old or not self.new:
            return f"{self.package} {', '.join(self.old or self.new)}"
        return f"{self.package} {', '.join(self.old)} -> {', '.join(self.new)}"


@dataclass(frozen=True)
class HashChange:
    """A file of an unchanged version whose bytes changed: upstream re-published it."""

    file: str
    old_sha256: str
    new_sha256: str
    old_size: int | None  # some records carry no size
    new_size: int | None

    def __str__(self) -> str:
        return f"{self.file}: sha256 {self.old_sha256} -> {self.new_sha256} for the same version"


@dataclass
class ComponentChanges:
    added: list[PackageChange] = field(default_factory=list)
    removed: list[PackageChange] = field(default_factory=list)
    upgraded: list[PackageChange] = field(default_factory=list)
    downgraded: list[PackageChange] = field(default_factory=list)
    changed: list[PackageChange] = field(default_factory=list)  # neither up nor down (forks)
    hash_warnings: list[HashChange] = field(default_factory=list)

    def empty(self) -> bool:
        return not any(asdict(self).values())


def _key(versions: tuple[str, ...]) -> Version | None:
    try:
        return max(Version(v.split("@")[0]) for v in versions)
    except (InvalidVersion, ValueError):
        return None


def diff_locks(old: Lock, new: Lock) -> dict[str, ComponentChanges]:
    result: dict[str, ComponentChanges] = {}
    for name in sorted(set(old.components) | set(new.components)):
        changes = ComponentChanges()
        before = old.components[name].versions() if name in old.components else {}
        after = new.components[name].versions() if name in new.components else {}
        for pkg in sorted(set(after) - set(before)):
            changes.added.append(PackageChange(pkg, (), tuple(after[pkg])))
        for pkg in sorted(set(before) - set(after)):
            changes.removed.append(PackageChange(pkg, tuple(before[pkg]), ()))
        for pkg in sorted(set(before) & set(after)):
            if before[pkg] == after[pkg]:
                continue
            line = PackageChange(pkg, tuple(before[pkg]), tuple(after[pkg]))
            old_key, new_key = _key(before[pkg]), _key(after[pkg])
            if old_key is None or new_key is None or old_key == new_key:
                changes.changed.append(line)
            elif new_key > old_key:
                changes.upgraded.append(line)
            else:
                changes.downgraded.append(line)
        if name in old.components and name in new.components:
            old_files: dict[str, list[Artifact]] = {}
            for file in old.components[name].files():
                old_files.setdefault(file.name, []).append(file)
            for file in new.components[name].files():
                was = _same_file(file, old_files.get(file.name, []))
                if was and (was.sha256 != file.sha256 or was.size != file.size):
                    changes.hash_warnings.append(
                        HashChange(file.name, was.sha256, file.sha256, was.size, file.size))
        if not changes.empty():
            result[name] = changes
    return result


def _same_file(file: Artifact, candidates: list[Artifact]) -> Artifact | None:
    """The old record of `file`: by name, or by URL where one name lives in several places
    (a conda package in each platform's subdir). PyPI URLs embed the hash, so matching them
    by URL alone would hide exactly the change this warns about."""
    if len(candidates) == 1:
        return candidates[0]
    return next((c for c in candidates if c.url == file.url), None)


_SECTIONS = ("added", "removed", "upgraded", "downgraded", "changed")


def render(changes: dict[str, ComponentChanges], style: str) -> str:
    if style == "json":
        # the fields, not the sentences: {component: {section: [{package, old, new}]}}
        return json.dumps({k: asdict(v) for k, v in changes.items()}, indent=2) + "\n"
    if not changes:
        return "No changes.\n" if style == "text" else "_No changes to the lock._\n"
    lines: list[str] = []
    if style == "markdown":
        lines.append("## Lock changes\n")
        for component, change in changes.items():
            lines.append(f"### {component}\n")
            for section in _SECTIONS:
                items = getattr(change, section)
                if items:
                    lines.append(f"**{section.capitalize()}** ({len(items)})\n")
                    lines += [f"- `{item}`" for item in items]
                    lines.append("")
            if change.hash_warnings:
                lines.append("> [!WARNING]\n> Hash changed for an unchanged version "
                             "(upstream re-published a file):")
                lines += [f"> - `{item}`" for item in change.hash_warnings]
                lines.append("")
        return "\n".join(lines).rstrip() + "\n"
    for component, change in changes.items():
        lines.append(f"{component}:")
        for section in _SECTIONS:
            lines += [f"  {section}: {item}" for item in getattr(change, section)]
        lines += [f"  WARNING hash changed: {item}" for item in change.hash_warnings]
    return "\n".join(lines) + "\n"
