"""`export --format conda-lock`: a conda-lock.yml (its lock format version 1) of a conda component.

`conda-lock render` and `conda-lock install` read it; micromamba installs it directly. Written
by hand because the output is small and regular: every string is a JSON string, which YAML reads
as a double-quoted scalar, so no value can change meaning on the way (`1.10` stays a string).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tljh_lock.core.errors import InputError
from tljh_lock.lock.kinds.conda import Component, CondaPackage, dependency_name
from tljh_lock.lock.model import Lock


def _dependencies(package: CondaPackage) -> dict[str, str]:
    """conda-lock's `dependencies`: name -> the rest of the match spec (`*` for any)."""
    found: dict[str, str] = {}
    for spec in package.depends:
        name = dependency_name(spec)
        rest = spec.strip()[len(name):].strip() or "*"
        # Two specs on one name (rare) must both hold: conda reads `a,b` as an and.
        found[name] = f"{found[name]},{rest}" if name in found and rest != "*" else rest
    return dict(sorted(found.items()))


def to_conda_lock(lock: Lock, component_name: str | None) -> dict[str, Any]:
    conda = {n: c for n, c in lock.components.items() if isinstance(c, Component)}
    if component_name is None and len(conda) == 1:
        component_name = next(iter(conda))
    component = conda.get(component_name or "")
    if component is None:
        raise InputError(f"no conda component {component_name!r} in the lock (conda components: "
                         f"{', '.join(sorted(conda)) or 'none'})")
    # conda-lock hashes its own input per platform; ours is the recipe's hash.
    content_hash = component.recipe_hash.split(":", 1)[-1]
    packages = [
        {
            "name": p.name,
            "version": p.version,
            "manager": "conda",
            "platform": p.platform,
            "dependencies": _dependencies(p),
            "url": p.url,
            "hash": {"md5": p.md5, "sha256": p.sha256},
            "category": "main",
            "optional": False,
        }
        for p in sorted(component.packages)
    ]
    return {
        "version": 1,
        "metadata": {
            "content_hash": {platform: content_hash for platform in component.platforms},
            "channels": [{"url": channel, "used_env_vars": []} for channel in component.channels],
            "platforms": list(component.platforms),
            "sources": [f"recipes/{component.recipe}"],
        },
        "package": packages,
    }


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Words YAML 1.1 readers (PyYAML, conda) take for booleans or null when unquoted.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _key(key: str) -> str:
    plain = _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS
    return key if plain else json.dumps(key)


def _yaml(value: Any, indent: int) -> list[str]:
    """Block YAML for dicts and lists of scalars, dicts and lists."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{_key(key)}:")
                lines += _yaml(item, indent + 2)
            else:
                lines.append(f"{pad}{_key(key)}: {json.dumps(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = _yaml(item, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return lines


def export(lock: Lock, component: str | None) -> str:
    header = "# Exported by `tljh-lock export --format conda-lock`; the lock is the source.\n"
    return header + "\n".join(_yaml(to_conda_lock(lock, component), 0)) + "\n"
