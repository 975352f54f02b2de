"""`check`: prove, offline and without resolving, that a lock is fresh and installable.

Fresh: every recipe's hash equals the one recorded. Installable: on every target, every
requirement reachable from the roots (markers evaluated, extras followed) has exactly one
pinned version that satisfies it and a compatible file with a hash; sdist-only packages also
have their build requirements installable the same way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Lock
from tljh_lock.lock.recipes import RecipeSet
from tljh_lock.resolve.pip import SameVersion


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
        if isinstance(component, pip_lock.Component):
            for target in component.applicable_targets(lock.targets):
                count, problems = prove_pip(component, target)
                report.problems += [f"{name} on {target.name}: {p}" for p in problems]
                if not problems:
                    report.proven.append(f"{name} on {target.name}: {count} packages")
        else:
            problems = component.prove(lock.targets)  # type: ignore[attr-defined]
            report.problems += [f"{name}: {p}" for p in problems]
            if not problems:
                report.proven.append(f"{name}: {component.summary()}")
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
    if nodejs is None:
        return []
    return [
        f"{name}: its packages' engines were checked against Node.js {component.node}, but "
        f"the lock installs Node.js {nodejs.version} (component nodejs)"
        for name, component in sorted(lock.components.items())
        if component.kind == "npm" and component.node != nodejs.version  # type: ignore[attr-defined]
    ]


def prove_pip(component: pip_lock.Component, target: Target) -> tuple[int, list[str]]:
    roots = [*component.roots, *(r for s in component.sources for r in s.requires)]
    used, problems = walk(component.packages, roots, target, "roots")
    build_roots = sorted(
        {r for p in used if not p.wheels for r in p.build_requires}
        | {r for s in component.sources for r in s.build_requires}
    )
    if build_roots:
        _, build_problems = walk(component.build_packages, build_roots, target, "build")
        problems += [f"building sdists: {p}" for p in build_problems]
        problems += [f"build requirement {p.name} {p.version} has no wheel for this target"
                     for p in component.build_packages if p.applies_to(target)
                     and p.wheel_for(target) is None and any(
                         canonicalize_name(Requirement(r).name) == p.name for r in build_roots)]
    return len(used), problems


def walk(
    packages: tuple[pip_lock.Package, ...], roots: list[str], target: Target, label: str
) -> tuple[list[pip_lock.Package], list[str]]:
    env = target.marker_environment()
    by_name: dict[NormalizedName, list[pip_lock.Package]] = {}
    for package in packages:
        by_name.setdefault(canonicalize_name(package.name), []).append(package)
    problems: list[str] = []
    used: dict[NormalizedName, pip_lock.Package] = {}
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    queue = deque((Requirement(r), label) for r in roots)
    while queue:
        requirement, parent = queue.popleft()
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(e) for e in requirement.extras)
        candidates = [p for p in by_name.get(name, []) if p.applies_to(target)]
        if not candidates:
            problems.append(f"{requirement} (needed by {parent}) has no pinned version")
            continue
        if len(candidates) > 1:
            versions = ", ".join(p.version for p in candidates)
            problems.append(f"{name} has more than one pinned version here: {versions}")
            continue
        package = candidates[0]
        if not requirement.specifier.contains(package.version, prereleases=True):
            problems.append(f"{requirement} (needed by {parent}) is not met by the pinned "
                            f"{package.version}")
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in used:
            used[name] = package
            if package.install_artifact(target) is None:
                problems.append(f"{name} {package.version} has no file installable here "
                                f"(wheels: {', '.join(w.name for w in package.wheels) or 'none'})")
        for dependency in package.dependencies:
            dep = Requirement(dependency)
            if dep.marker is None or any(
                dep.marker.evaluate({**env, "extra": extra}) for extra in ("", *extras)
            ):
                queue.append((dep, f"{name} {package.version}"))
    return list(used.values()), problems


