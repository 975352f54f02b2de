"""`update`: recipes in, lock out. Components whose recipe did not change keep their pins."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from packaging.utils import canonicalize_name

from tljh_lock.core.errors import InputError, UsageError
from tljh_lock.core.targets import Target
from tljh_lock.lock import file as lockfile
from tljh_lock.lock import recipes as recipes_mod
from tljh_lock.lock.kinds.pip import Component as PipComponent
from tljh_lock.lock.model import Component, Lock
from tljh_lock.lock.recipes import Recipe
from tljh_lock.resolve import conda, npm, pip, release, write
from tljh_lock.upstream.http import Client

# recipe kind -> `resolve_recipe(recipe, targets, client, previous, upgrade, resolved)`, where
# `resolved` holds the components already resolved or kept, for recipes that pin themselves
# to another component (a recipe lists those in `after = [...]`).
Resolver = Callable[[Recipe, list[Target], Client, Component | None, set[str],
                     Mapping[str, Component]], Component]
RESOLVERS: dict[str, Resolver] = {
    "pip": pip.resolve_recipe, "release": release.resolve_recipe,
    "conda": conda.resolve_recipe, "npm": npm.resolve_recipe,
}


def resolve_component(recipe: Recipe, lock_targets: list[Target], client: Client,
                      previous: Component | None, upgrade: set[str],
                      resolved: Mapping[str, Component]) -> Component:
    if recipe.kind not in RESOLVERS:
        recipe.table.fail(f"unknown kind {recipe.kind!r} (known: {', '.join(RESOLVERS)})", "kind")
    if previous is not None and previous.kind != recipe.kind:
        previous = None
    return RESOLVERS[recipe.kind](recipe, lock_targets, client, previous, upgrade, resolved)


def update(recipe_dir: Path, lock_path: Path, client: Client, upgrade: Iterable[str] = (),
           log: Callable[[str], None] = lambda _: None) -> tuple[Lock, list[str]]:
    """Returns the new lock and the names of the components that were resolved again; `log`
    hears one line per component as it is kept or resolved."""
    recipe_set = recipes_mod.load(recipe_dir)
    previous = lockfile.load(lock_path) if lock_path.exists() else None
    wanted = {str(canonicalize_name(name)) for name in upgrade}
    if previous and wanted:
        known = set().union(*(c.names() for c in previous.components.values()))
        unknown = sorted(wanted - known - set(previous.components))
        if unknown:
            raise UsageError(f"--upgrade-package: {', '.join(unknown)} is not in {lock_path}",
                             hint="name a package or component the lock has")
    components: dict[str, Component] = {}
    resolved = []
    for name in resolution_order(recipe_set.recipes):
        recipe = recipe_set.recipes[name]
        old = previous.components.get(name) if previous else None
        unchanged = (
            old is not None
            and previous is not None
            and old.recipe_hash == recipe.hash
            and previous.targets_hash == recipe_set.targets_hash
            and not (wanted & (old.names() | {name}))
            and not any(dep in resolved for dep in recipe.after)
        )
        where = recipe_dir / recipe.file
        if unchanged:
            assert old is not None
            components[name] = pip.complete_kept(old, client, str(where))
            log(f"{name}: kept ({where} did not change)")
            continue
        log(f"{name}: resolving {where} ({recipe.kind})")
        # `-P <component>` asks for a fresh resolution of the whole component.
        components[name] = resolve_component(recipe, recipe_set.targets, client,
                                             None if name in wanted else old,
                                             wanted - {name}, components)
        resolved.append(name)
    _check_user_pip_taken(recipe_set.recipes, components)
    lock = Lock(recipe_set.targets, recipe_set.targets_hash, components)
    write.write(lock_path, lock)
    return lock, resolved


def _check_user_pip_taken(recipes: Mapping[str, Recipe],
                          components: Mapping[str, Component]) -> None:
    """A plugin's user pip packages are locked by the recipe that takes them (`plugins-from`):
    with none, the lock would lack them and apply would refuse the plugin."""
    for name, component in sorted(components.items()):
        if not isinstance(component, PipComponent):
            continue
        asked = [r for p in component.plugins for r in p.user_pip]
        if asked and not any(r.table.data.get("plugins-from") == name
                             for r in recipes.values()):
            raise InputError(
                f"recipes/{recipes[name].file}: plugins ask for user pip packages "
                f"({', '.join(asked)}) and no recipe takes them",
                hint=f'add plugins-from = "{name}" (and "{name}" in `after`) to the user '
                     "environment's recipe")


def resolution_order(recipes: dict[str, Recipe]) -> list[str]:
    """Names sorted, except that a recipe comes after the ones it lists in `after`."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise InputError(f"recipes/{recipes[name].file}: `after` forms a cycle")
        visiting.add(name)
        for dep in recipes[name].after:
            if dep not in recipes:
                recipes[name].table.fail(f"names no recipe {dep!r}", "after")
            visit(dep)
        order.append(name)

    for name in sorted(recipes):
        visit(name)
    return order
