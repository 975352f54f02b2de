"""`check`: prove, offline and without resolving, that a lock is fresh and installable.

Fresh: every recipe's hash equals the one recorded, and the recipes' `same-version` rules hold.
Installable: every component proves itself for the lock's targets (each kind's `prove`), and
the npm trees were checked against the Node.js the lock installs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tljh_lock.core.errors import TljhLockError
from tljh_lock.lock.kinds import npm, release
from tljh_lock.lock.model import Lock
from tljh_lock.lock.recipes import RecipeSet, SameVersion


@dataclass
class Report:
    stale: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    proven: list[str] = field(default_factory=list)  # "component on target: N packages"

    @property
    def ok(self) -> bool:
        return not self.stale and not self.problems


def freshness(lock: Lock, recipes: RecipeSet) -> list[str]:
    stale = []
    if lock.targets_hash != recipes.targets_hash:
        stale.append("recipes/targets.toml changed since the lock was made")
    for name, recipe in sorted(recipes.recipes.items()):
        component = lock.components.get(name)
        if component is None:
            stale.append(f"recipes/{recipe.file} has no component in the lock")
        elif component.recipe_hash != recipe.hash:
            stale.append(f"recipes/{recipe.file} changed since the lock was made "
                         f"(lock has {component.recipe_hash}, recipe is {recipe.hash})")
    for name in sorted(set(lock.components) - set(recipes.recipes)):
        stale.append(f"component {name} is in the lock but has no recipe")
    return stale


def check(lock: Lock, recipes: RecipeSet | None) -> Report:
    report = Report()
    if recipes is not None:
        report.stale = freshness(lock, recipes)
        report.problems += same_version_problems(lock, recipes)
    report.problems += node_problems(lock)
    for name, component in sorted(lock.components.items()):
        for proof in component.prove(lock.targets):
            where = f"{name} {proof.scope}" if proof.scope else name
            report.problems += [f"{where}: {p}" for p in proof.problems]
            if not proof.problems:
                report.proven.append(f"{where}: {proof.proven}")
    return report


def same_version_problems(lock: Lock, recipes: RecipeSet) -> list[str]:
    """A recipe's `same-version` rule holds between the two components in the lock."""
    problems = []
    for name, recipe in sorted(recipes.recipes.items()):
        rule = SameVersion.from_recipe(recipe) if recipe.kind == "pip" else None
        component = lock.components.get(name)
        if rule is None or component is None:
            continue
        try:
            pins = rule.pins(lock.components, f"recipes/{recipe.file}")
        except TljhLockError as exc:
            problems.append(exc.message)
            continue
        versions = component.versions()
        for pin in pins:
            package, version = pin.split("==")
            own = versions.get(package, ())
            if own != (version,):
                problems.append(f"{name}: {package} {', '.join(own) or 'unpinned'} is not "
                                f"{rule.component}'s {version} (same-version in "
                                f"recipes/{recipe.file})")
    return problems


def node_problems(lock: Lock) -> list[str]:
    """npm trees were checked against one Node.js: the one the lock installs."""
    nodejs = lock.components.get("nodejs")
    if not isinstance(nodejs, release.Component):
        return []
    return [
        f"{name}: its packages' engines were checked against Node.js {component.node}, but "
        f"the lock installs Node.js {nodejs.version} (component nodejs)"
        for name, component in sorted(lock.components.items())
        if isinstance(component, npm.Component) and component.node != nodejs.version
    ]
