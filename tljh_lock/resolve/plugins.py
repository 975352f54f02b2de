"""TLJH plugins at `update`: their package hooks asked, the answers checked and locked.

A plugin is a `[[plugins]]` table of the hub recipe: a source pin (often with a
`subdirectory`, as TLJH's own test plugin), which joins the hub set like TLJH's `--plugin`
installs it into the hub environment. Its package hooks are asked in a scratch environment
that holds the locked pluggy (its locked wheel, verified), the pinned TLJH and the pinned
plugins, through TLJH's own plugin manager (lock/plugins.py's ASK): no resolver runs at
apply, and what the hooks say is reviewed in the lock's diff.

What the lock cannot install is refused by name, unless the plugin's table acknowledges it:
`unlocked-apt` (apt packages: not locked yet) and `unlocked-conda` (conda packages: the user
environment is a pip set, no conda solve is possible).
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from tljh_lock.core import runner
from tljh_lock.core.errors import InputError, TljhLockError
from tljh_lock.core.schema import Table
from tljh_lock.lock.kinds.pip import Package, Source
from tljh_lock.lock.plugins import Plugin, ask_argv
from tljh_lock.upstream import pypi as pypi_index
from tljh_lock.upstream.http import Client

ASK_TIMEOUT = 900


@dataclass(frozen=True)
class PluginRecipe:
    source: Source
    unlocked_apt: tuple[str, ...]
    unlocked_conda: tuple[str, ...]

    @classmethod
    def from_table(cls, table: Table) -> PluginRecipe:
        apt = tuple(table.strings("unlocked-apt", optional=True))
        conda = tuple(table.strings("unlocked-conda", optional=True))
        for key in ("unlocked-apt", "unlocked-conda"):
            table.data.pop(key, None)
        return cls(Source.from_table(table), apt, conda)


def checked(recipe_file: str, plugins: Iterable[PluginRecipe],
            answers: dict[str, dict[str, list[str]]]) -> tuple[Plugin, ...]:
    """The locked answers of `plugins`, from ASK's `answers`; what the lock cannot install
    and the recipe does not acknowledge is an error naming the plugin and the packages."""
    where = f"recipes/{recipe_file}"
    by_name = {str(canonicalize_name(name)): asked for name, asked in answers.items()}
    locked = []
    for recipe in plugins:
        name = recipe.source.name
        if name not in by_name:
            raise InputError(f"{where}: plugin {name} registers no `tljh` entry point",
                             hint="a TLJH plugin declares entry_points={'tljh': [...]}")
        plugin = Plugin.from_answers(name, by_name[name])
        problems = []
        apt = [p for p in plugin.apt if p not in recipe.unlocked_apt]
        if apt:
            problems.append(f"apt packages {', '.join(apt)} (tljh_extra_apt_packages: apt "
                            "packages cannot be locked yet)")
        conda = [p for p in plugin.conda if p not in recipe.unlocked_conda]
        if conda:
            problems.append(f"conda packages {', '.join(conda)} (tljh_extra_user_conda_packages"
                            ": the user environment is a pip set, no conda solve is possible)")
        if problems:
            keys = " and ".join(
                f"{key} = {json.dumps(items)}" for key, items in (
                    ("unlocked-apt", list(plugin.apt)), ("unlocked-conda", list(plugin.conda)))
                if items)
            raise InputError(f"{where}: plugin {name} asks for what the lock cannot install: "
                             + "; ".join(problems),
                             hint=f"to lock it without them (apply will say they were not "
                                  f"installed), add {keys} to its [[plugins]] table")
        if not plugin.conda:
            plugin = Plugin(plugin.name, plugin.hub_pip, plugin.user_pip, (), (), plugin.apt)
        locked.append(plugin)
    return tuple(locked)


def ask(uv: str, client: Client, index: str, trees: Iterable[dict[str, bytes]],
        pluggy: Package) -> dict[str, dict[str, list[str]]]:
    """ASK's answers in a scratch environment of this interpreter: `pluggy`'s locked wheel,
    then `trees` (TLJH's and the plugins', verified by their tree hashes), without their
    dependencies (TLJH's plugin manager imports pluggy only; a plugin that imports more
    declares it in its pin's `requires`, which the hub set holds)."""
    wheel = next((w for w in pluggy.wheels if w.name.endswith("-py3-none-any.whl")), None)
    if wheel is None:
        raise TljhLockError(f"pluggy {pluggy.version} has no pure-Python wheel to ask the "
                            "plugins' hooks with")
    with tempfile.TemporaryDirectory(prefix="tljh-lock-plugins-") as tmp:
        work = Path(tmp)
        (work / wheel.name).write_bytes(pypi_index.download(client, wheel, "the plugins' pluggy"))
        paths = []
        for number, files in enumerate(trees):
            path = work / f"tree-{number}"
            for rel, data in files.items():
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                (path / rel).write_bytes(data)
            paths.append(path)
        venv = work / "venv"
        env = {"UV_CACHE_DIR": str(work / "uv-cache"), "HOME": str(work)}
        runner.run([uv, "venv", "--no-config", "--quiet", "--no-python-downloads", "--python",
                    sys.executable, venv], env=env, what="the plugins' scratch environment",
                   timeout=ASK_TIMEOUT)
        # the trees are built with build isolation, from the recipe's index
        runner.run([uv, "pip", "install", "--no-config", "--quiet", "--python",
                    venv / "bin" / "python", "--no-deps",
                    "--index-url", client.mirrors.to_mirror(index), work / wheel.name, *paths],
                   env=env, what="installing TLJH and the plugins to ask their hooks",
                   timeout=ASK_TIMEOUT)
        result = runner.run(ask_argv(venv / "bin" / "python"), env={"HOME": str(work)},
                            what="asking the plugins' hooks with TLJH's plugin manager",
                            timeout=ASK_TIMEOUT, cwd=work)
    answers: dict[str, dict[str, list[str]]] = json.loads(result.stdout.strip().splitlines()[-1])
    return answers
