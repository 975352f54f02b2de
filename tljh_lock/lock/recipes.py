"""Recipes: what the maintainers want, one TOML file per component in `recipes/`.

`targets.toml` names the install targets; every other `NAME.toml` is the recipe of component
NAME, with a `kind` saying which resolver reads it. A recipe's hash (sha256 of its bytes) is
recorded in the lock so that `check` can name the recipe that changed without resolving, and a
`same-version` rule ties a pip recipe's packages to another component's versions, which
`update` applies and `check` proves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from tljh_lock.core import tomlio
from tljh_lock.core.errors import InputError
from tljh_lock.core.schema import Table
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import parse_targets

TARGETS_FILE = "targets.toml"


@dataclass(frozen=True)
class Recipe:
    name: str
    kind: str
    file: str  # relative to the recipe directory, as recorded in the lock
    hash: str
    table: Table
    after: tuple[str, ...]  # components this recipe takes pins from


@dataclass(frozen=True)
class RecipeSet:
    directory: Path
    targets: list[Target]
    targets_hash: str
    recipes: dict[str, Recipe]


def file_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def load(directory: Path) -> RecipeSet:
    if not directory.is_dir():
        raise InputError(f"{directory}: no recipe directory here")
    targets_path = directory / TARGETS_FILE
    if not targets_path.is_file():
        raise InputError(f"{targets_path}: missing; it names the install targets")
    targets_bytes = targets_path.read_bytes()
    targets_table = Table(tomlio.load(targets_path), "", str(targets_path))
    targets = parse_targets(targets_table, "targets")
    recipes: dict[str, Recipe] = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name == TARGETS_FILE:
            continue
        table = Table(tomlio.load(path), "", str(path))
        recipes[path.stem] = Recipe(
            name=path.stem, kind=table.string("kind"), file=path.name,
            hash=file_hash(path.read_bytes()), table=table,
            after=tuple(table.strings("after", optional=True)),
        )
    if not recipes:
        raise InputError(f"{directory}: no recipes (*.toml besides {TARGETS_FILE})")
    return RecipeSet(directory, targets, file_hash(targets_bytes), recipes)


@dataclass(frozen=True)
class SameVersion:
    """`same-version = { component = "hub", packages = ["jupyterhub"] }`: these packages are
    pinned at the version the other component locked (the user env's jupyterhub must be the
    hub's, or single-user servers and the hub disagree on their API)."""

    component: str
    packages: tuple[str, ...]

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> SameVersion | None:
        table = recipe.table.table("same-version", optional=True)
        if table is None:
            return None
        component = table.string("component")
        if component not in recipe.after:
            recipe.table.fail(f"same-version takes pins from {component!r}: list it in `after`",
                              "after")
        packages = tuple(str(canonicalize_name(name)) for name in table.strings("packages"))
        if not packages:
            table.fail("no packages", "packages")
        return cls(component, packages)

    def pins(self, components: Mapping[str, object], where: str) -> list[str]:
        """`name==version` for each package, at the version `components[component]` has."""
        other = components.get(self.component)
        if not isinstance(other, pip_lock.Component):
            raise InputError(f"{where}: same-version: {self.component!r} is not a pip component")
        versions = other.versions()
        pins = []
        for name in self.packages:
            found = versions.get(name, ())
            if len(found) != 1:
                raise InputError(f"{where}: same-version: {self.component} pins {name} at "
                                 f"{', '.join(found) or 'no version'}; exactly one is needed")
            pins.append(f"{name}=={found[0]}")
        return pins
