"""`check`: prove, offline and without resolving, that a lock is fresh and installable.

Fresh: every recipe's hash equals the one recorded, and the recipes' `same-version` rules hold.
Installable: every component proves itself for the lock's targets (each kind's `prove`), and
the npm trees were checked against the Node.js the lock installs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.findings import Fields
from tljh_lock.lock.kinds import npm, release
from tljh_lock.lock.model import Lock
from tljh_lock.lock.recipes import RecipeSet, SameVersion


@dataclass(frozen=True)
class Finding(Fields):
    """One thing `check` found, in fields a script can read; `str()` is the line for people."""

    message: str
    component: str | None = None
    target: str | None = None  # the target's name, where the finding is about one
    path: str | None = None  # the recipe file it is about
    package: str | None = None  # the package it is about, at `version` where one is pinned
    version: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.component, self.target and f"on {self.target}") if x)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class Report:
    recipes: list[str] = field(default_factory=list)  # the recipe files read, in order
    stale: list[Finding] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    proven: list[Finding] = field(default_factory=list)  # message: "N packages ..."

    @property
    def ok(self) -> bool:
        return not self.stale and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "recipes": self.recipes,
                **{name: [f.to_dict() for f in getattr(self, name)]
                   for name in ("stale", "problems", "proven")}}


def recipe_path(recipes: RecipeSet, file: str) -> str:
    return str(recipes.directory / file)


def freshness(lock: Lock, recipes: RecipeSet) -> list[Finding]:
    stale = []
    if lock.targets_hash != recipes.targets_hash:
        path = recipe_path(recipes, "targets.toml")
        stale.append(Finding(f"{path} changed since the lock was made", path=path))
    for name, recipe in sorted(recipes.recipes.items()):
        component = lock.components.get(name)
        path = recipe_path(recipes, recipe.file)
        if component is None:
            stale.append(Finding(f"{path} has no component in the lock", path=path))
        elif component.recipe_hash != recipe.hash:
            stale.append(Finding(f"{path} changed since the lock was made (lock has "
                                 f"{component.recipe_hash}, recipe is {recipe.hash})",
                                 path=path))
    for name in sorted(set(lock.components) - set(recipes.recipes)):
        stale.append(Finding(f"component {name} is in the lock but has no recipe in "
                             f"{recipes.directory}"))
    return stale


def check(lock: Lock, recipes: RecipeSet | None) -> Report:
    report = Report()
    if recipes is not None:
        report.recipes = [recipe_path(recipes, "targets.toml")] + [
            recipe_path(recipes, recipes.recipes[name].file) for name in sorted(recipes.recipes)]
        report.stale = freshness(lock, recipes)
        report.problems += same_version_problems(lock, recipes)
    report.problems += node_problems(lock)
    for name, component in sorted(lock.components.items()):
        for proof in component.prove(lock.targets):
            target = proof.scope.removeprefix("on ") if proof.scope else None
            report.problems += [Finding(p.message, name, target, package=p.package,
                                        version=p.version) for p in proof.problems]
            if not proof.problems:
                report.proven.append(Finding(proof.proven, name, target))
    return report


def same_version_problems(lock: Lock, recipes: RecipeSet) -> list[Finding]:
    """A recipe's `same-version` rule holds between the two components in the lock."""
    problems = []
    for name, recipe in sorted(recipes.recipes.items()):
        rule = SameVersion.from_recipe(recipe) if recipe.kind == "pip" else None
        component = lock.components.get(name)
        if rule is None or component is None:
            continue
        path = recipe_path(recipes, recipe.file)
        try:
            pins = rule.pins(lock.components, path)
        except TljhLockError as exc:
            problems.append(Finding(exc.message, path=path))
            continue
        versions = component.versions()
        for pin in pins:
            package, version = pin.split("==")
            own = versions.get(package, ())
            if own != (version,):
                problems.append(Finding(
                    f"{package} {', '.join(own) or 'unpinned'} is not {rule.component}'s "
                    f"{version} (same-version in {path})", name, path=path, package=package,
                    version=", ".join(own) or None))
    return problems


def node_problems(lock: Lock) -> list[Finding]:
    """npm trees were checked against one Node.js: the one the lock installs."""
    nodejs = lock.components.get("nodejs")
    if not isinstance(nodejs, release.Component):
        return []
    return [
        Finding(f"its packages' engines were checked against Node.js {component.node}, but "
                f"the lock installs Node.js {nodejs.version} (component nodejs)", name,
                package="nodejs", version=nodejs.version)
        for name, component in sorted(lock.components.items())
        if isinstance(component, npm.Component) and component.node != nodejs.version
    ]
