"""TLJH plugins in the lock: what each plugin's package hooks answered at `update`.

TLJH's installer (`--plugin`) installs a plugin into the hub environment and asks its hooks
for packages at install time (tljh.installer.run_plugin_actions). Here the plugin is a
source pin of the hub set, and its package hooks are asked at update, with the real pluggy
and TLJH's own `tljh.utils.get_plugin_manager` in a scratch environment; the answers are
locked, so that apply needs no resolver. Apply asks the installed plugins again, from the
locked hub environment, and refuses what the lock lacks (`unlocked`).

What the lock cannot install yet (apt packages; conda packages, as the user environment is a
pip set) is locked only when the recipe acknowledges it: apply then says it was not
installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tljh_lock.core.schema import Table

# hook -> the lock's (and the recipe's) key for its answers
HOOKS = {
    "tljh_extra_hub_pip_packages": "hub-pip",
    "tljh_extra_user_pip_packages": "user-pip",
    "tljh_extra_user_conda_packages": "conda",
    "tljh_extra_user_conda_channels": "conda-channels",
    "tljh_extra_apt_packages": "apt",
}

# Run with an environment's python that holds TLJH and the plugins: every plugin TLJH's own
# plugin manager loads, by its distribution's name, with what each package hook answers (one
# plugin at a time, through pluggy's subset caller). The hooks' names are its arguments
# (`ask_argv`); one JSON object on the last line.
ASK = """\
import json, sys
from tljh.utils import get_plugin_manager

HOOKS = sys.argv[1:]
pm = get_plugin_manager()
answers = {}
for plugin, dist in pm.list_plugin_distinfo():
    others = [p for p in pm.get_plugins() if p is not plugin]
    asked = {}
    for hook in HOOKS:
        items = []
        for answer in pm.subset_hook_caller(hook, remove_plugins=others)():
            items += [str(item) for item in answer if str(item) not in items]
        asked[hook] = items
    answers[dist.metadata["Name"]] = asked
print(json.dumps(answers, sort_keys=True))
"""


def ask_argv(python: Path) -> list[str | Path]:
    return [python, "-c", ASK, *HOOKS]


@dataclass(frozen=True)
class Plugin:
    """One plugin's locked answers. `conda`, `conda-channels` and `apt` are what the recipe
    acknowledged as not installed."""

    name: str
    hub_pip: tuple[str, ...] = ()
    user_pip: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    conda_channels: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Plugin:
        return cls(
            name=str(canonicalize_name(table.file_name("name"))),
            hub_pip=tuple(table.requirements("hub-pip", optional=True)),
            user_pip=tuple(table.requirements("user-pip", optional=True)),
            conda=tuple(table.strings("conda", optional=True)),
            conda_channels=tuple(table.strings("conda-channels", optional=True)),
            apt=tuple(table.strings("apt", optional=True)),
        )

    @classmethod
    def from_answers(cls, name: str, answers: Mapping[str, Iterable[str]]) -> Plugin:
        """From ASK's answers of one plugin (hook name -> items)."""
        return cls(str(canonicalize_name(name)),
                   *(tuple(answers.get(hook, ())) for hook in HOOKS))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        for key, items in zip(HOOKS.values(), self.answers()):
            if items:
                data[key] = list(items)
        return data

    def answers(self) -> tuple[tuple[str, ...], ...]:
        """In the order of HOOKS."""
        return (self.hub_pip, self.user_pip, self.conda, self.conda_channels, self.apt)


def _requirement(text: str) -> Requirement | None:
    try:
        return Requirement(text)
    except InvalidRequirement:
        return None


def missing_pip(asked: Iterable[str], locked: Mapping[str, str]) -> list[str]:
    """The asked pip requirements that no locked version (name -> version) meets."""
    found = []
    for text in asked:
        requirement = _requirement(text)
        version = locked.get(canonicalize_name(requirement.name)) if requirement else None
        if requirement is None or version is None or not requirement.specifier.contains(
                version, prereleases=True):
            found.append(text)
    return found


def unlocked(asked: Mapping[str, Mapping[str, list[str]]], plugins: Iterable[Plugin],
             hub: Mapping[str, str], user: Mapping[str, str] | None) -> list[str]:
    """What the installed plugins ask for (ASK's answers) that the lock lacks, one line a
    plugin and hook, naming the packages. `hub`, `user`: the locked pip sets (name ->
    version); `user` None when the lock has no user environment."""
    locked = {plugin.name: plugin for plugin in plugins}
    problems = []
    for name, answers in sorted(asked.items()):
        plugin = locked.get(str(canonicalize_name(name)))
        if plugin is None:
            problems.append(f"plugin {name} is installed but not in the lock's plugins")
            continue

        lacking = [
            ("tljh_extra_hub_pip_packages", "hub pip packages",
             missing_pip(answers.get("tljh_extra_hub_pip_packages", []), hub)),
            ("tljh_extra_user_pip_packages", "user pip packages",
             missing_pip(answers.get("tljh_extra_user_pip_packages", []), user or {})),
        ] + [(hook, what, [i for i in answers.get(hook, []) if i not in acknowledged])
             for hook, acknowledged, what in (
                 ("tljh_extra_user_conda_packages", plugin.conda, "conda packages"),
                 ("tljh_extra_user_conda_channels", plugin.conda_channels, "conda channels"),
                 ("tljh_extra_apt_packages", plugin.apt, "apt packages"))]
        problems += [f"plugin {name} asks ({hook}) for {what} the lock lacks: "
                     + ", ".join(items) for hook, what, items in lacking if items]
    return problems
