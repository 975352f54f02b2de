"""`diff`: what changed between two locks, per component, for a reviewer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from packaging.version import InvalidVersion, Version

from tljh_lock.lock.model import Artifact, Lock


@dataclass
class ComponentChanges:
    added: list[str] = field(default_factory=list)  # "name version"
    removed: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)  # "name old -> new"
    downgraded: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # neither up nor down (forks, sources)
    hash_warnings: list[str] = field(default_factory=list)

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
            changes.added.append(f"{pkg} {', '.join(after[pkg])}")
        for pkg in sorted(set(before) - set(after)):
            changes.removed.append(f"{pkg} {', '.join(before[pkg])}")
        for pkg in sorted(set(before) & set(after)):
            if before[pkg] == after[pkg]:
                continue
            line = f"{pkg} {', '.join(before[pkg])} -> {', '.join(after[pkg])}"
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
                        f"{file.name}: sha256 {was.sha256} -> {file.sha256} for the same version"
                    )
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
