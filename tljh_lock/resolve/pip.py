"""Resolve a `pip` recipe into a locked pip set valid on every target.

uv resolves (`uv pip compile --universal`: one resolution for every python at once, with
markers where versions fork). The index then supplies every file of each pinned version with
its sha256 and size, and each version's declared dependencies, so that `check` can later prove
every target without resolving. Measured alternatives are in docs/benchmarks.md.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename
from packaging.version import Version
from tqdm import tqdm

from tljh_lock.core import runner
from tljh_lock.core.errors import InputError, TljhLockError, UpstreamError
from tljh_lock.core.schema import Table
from tljh_lock.core.targets import Target
from tljh_lock.lock import model
from tljh_lock.lock.kinds.pip import Component, Package, RequirementsFile, Source
from tljh_lock.lock.model import parse_targets
from tljh_lock.lock.plugins import Plugin
from tljh_lock.lock.recipes import Recipe, SameVersion
from tljh_lock.resolve import plugins as plugins_mod
from tljh_lock.resolve import source_pin
from tljh_lock.resolve.plugins import PluginRecipe
from tljh_lock.upstream import pypi as pypi_index
from tljh_lock.upstream.http import Client

DEFAULT_INDEX = "https://pypi.org/simple/"


@dataclass(frozen=True)
class PipRecipe:
    name: str
    file: str
    hash: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    index: str
    sources: tuple[Source, ...]
    targets: tuple[Target, ...]
    plugins: tuple[PluginRecipe, ...] = ()
    requirements_files: tuple[str, ...] = ()  # URLs of requirements.txt files

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> PipRecipe:
        table = recipe.table
        sources = []
        for item in table.tables("sources", optional=True):
            _source_defaults(item)
            sources.append(Source.from_table(item))
        plugins = []
        for item in table.tables("plugins", optional=True):
            _source_defaults(item)
            plugins.append(PluginRecipe.from_table(item))
        return cls(
            name=recipe.name,
            file=recipe.file,
            hash=recipe.hash,
            index=table.url("index", optional=True) or DEFAULT_INDEX,
            requirements=tuple(table.requirements("requirements")),
            constraints=tuple(table.requirements("constraints", optional=True)),
            sources=tuple(sources),
            targets=tuple(parse_targets(table, "targets", optional=True)),
            plugins=tuple(plugins),
            requirements_files=tuple(_canonical_urls(table, "requirements-files")),
        )


def _canonical_urls(table: Table, key: str) -> list[str]:
    urls = table.strings(key, optional=True)
    for url in urls:
        if not url.startswith("https://"):
            table.fail(f"{url!r} is not a canonical https:// URL (a mirror may serve it)", key)
    return urls


def _source_defaults(item: Table) -> None:
    for key in ("archive-sha256", "archive-size"):
        if key in item.data:
            item.fail("is what `tljh-lock update` records from the archive; a recipe "
                      "leaves it out", key)
    item.data.setdefault("requires", [])
    item.data.setdefault("build-requires", list(pypi_index.LEGACY_BUILD_REQUIRES))


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    marker: str | None


def resolve(
    recipe: PipRecipe,
    targets: list[Target],
    client: Client,
    previous: Component | None,
    upgrade: Iterable[str],
) -> Component:
    targets = list(recipe.targets) or targets
    upgrade = {canonicalize_name(name) for name in upgrade}
    files = [read_requirements_file(client, url, f"recipes/{recipe.file}")
             for url in recipe.requirements_files]
    recipe = replace(recipe, requirements=(*recipe.requirements,
                                           *(r for _, taken in files for r in taken)))
    recorded = {source.name: source for source in previous.sources} if previous else {}
    sources = tuple(source_pin.verify(client, source, f"recipes/{recipe.file}",
                                      recorded.get(source.name))
                    for source in (*recipe.sources, *(p.source for p in recipe.plugins)))
    roots = list(recipe.requirements) + [r for s in sources for r in s.requires]
    old = [p for p in previous.packages if p.name not in upgrade] if previous else []
    pins = compile_pins(recipe, roots, recipe.constraints, targets, client, old, "resolution")
    plugins: tuple[Plugin, ...] = ()
    if recipe.plugins:
        plugins = _ask_plugins(recipe, sources, pins, targets, client)
        wanted = [r for plugin in plugins for r in plugin.hub_pip]
        if wanted:
            first = [Package(p.name, p.version, p.marker) for p in pins]
            pins = compile_pins(recipe, roots + wanted, recipe.constraints, targets, client,
                                first, "resolution with the plugins' hub packages")
    packages = collect(recipe, pins, targets, client)
    build_roots = sorted(
        {r for p in packages if not p.wheels for r in p.build_requires}
        | {r for s in sources for r in s.build_requires}
    )
    build_packages: list[Package] = []
    if build_roots:
        old_build = [p for p in (previous.build_packages if previous else ())
                     if p.name not in upgrade]
        build_pins = compile_pins(recipe, build_roots, (), targets, client, old_build,
                                  "build requirements")
        build_packages = collect(recipe, build_pins, targets, client)
        for package in build_packages:
            if not package.wheels:
                raise InputError(
                    f"recipes/{recipe.file}: build requirement {package.name} {package.version} "
                    "has no wheel; building a build backend from source is not supported",
                    hint=f"add a constraint on {package.name} to a version that ships a wheel",
                )
    return Component(
        recipe=recipe.file,
        recipe_hash=recipe.hash,
        index=recipe.index,
        roots=tuple(recipe.requirements),
        sources=sources,
        packages=tuple(packages),
        build_packages=tuple(build_packages),
        targets=recipe.targets,
        plugins=plugins,
        requirements_files=tuple(file for file, _ in files),
    )


def read_requirements_file(client: Client, url: str, where: str
                           ) -> tuple[RequirementsFile, list[str]]:
    """The file (hashed) and its requirements: one a line, comments and blank lines skipped.
    pip's options (`-r`, `-e`, `--index-url`, ...) and direct references are refused by line:
    what they point at would not be locked."""
    data = client.get(url, what=f"{where}: requirements file {url}").data
    found = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        named = f"{where}: {url} line {number}"
        if text.startswith("-"):
            raise InputError(f"{named}: pip option {text.split()[0]!r} cannot be locked",
                             hint="list requirements only, one a line")
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise InputError(f"{named}: not a requirement: {exc}") from None
        if requirement.url:
            raise InputError(f"{named}: {requirement.name} is a direct reference, which "
                             "cannot be locked from the index", hint="name a version instead")
        found.append(str(requirement))
    return RequirementsFile(url, hashlib.sha256(data).hexdigest()), found


def _ask_plugins(recipe: PipRecipe, sources: tuple[Source, ...], pins: list[Pin],
                 targets: list[Target], client: Client) -> tuple[Plugin, ...]:
    """The plugins' package hooks, asked with the pinned pluggy and TLJH (resolve/plugins)."""
    where = f"recipes/{recipe.file}"
    here = {key: str(value) for key, value in default_environment().items()}
    pluggy = [p for p in pins if p.name == "pluggy"
              and (p.marker is None or Marker(p.marker).evaluate(here))]
    if len(pluggy) != 1:
        raise InputError(f"{where}: plugins need TLJH and pluggy in the hub set",
                         hint="add TLJH's source pin (its requires hold pluggy)")
    package = collect_one(recipe, pluggy[0], targets, client)
    trees = [source_pin.tree(client, source, where) for source in sources]
    answers = plugins_mod.ask(uv_binary(), client, recipe.index, trees, package)
    return plugins_mod.checked(recipe.file, recipe.plugins, answers)


def uv_binary() -> str:
    candidate = Path(sys.executable).parent / "uv"
    found = str(candidate) if candidate.is_file() else shutil.which("uv")
    if not found:
        raise TljhLockError("uv is needed to resolve", hint="pip install 'tljh-lock[maintainer]'")
    return found


def compile_pins(
    recipe: PipRecipe,
    requirements: list[str],
    constraints: Iterable[str],
    targets: list[Target],
    client: Client,
    preferred: list[Package],
    what: str,
) -> list[Pin]:
    """Run `uv pip compile --universal`; `preferred` pins stay unless they must move."""
    lowest = min(t.python_minor for t in targets)
    with tempfile.TemporaryDirectory(prefix="tljh-lock-") as tmp:
        work = Path(tmp)
        (work / "requirements.in").write_text("\n".join(requirements) + "\n")
        (work / "constraints.txt").write_text("\n".join(constraints) + "\n")
        # uv takes an existing output file as preferences, like pip-compile does.
        (work / "pins.txt").write_text("".join(
            f"{p.name}=={p.version}" + (f" ; {p.marker}" if p.marker else "") + "\n"
            for p in preferred
        ))
        argv: list[str | Path] = [
            uv_binary(), "pip", "compile", "--no-config", "--universal", "--quiet",
            "--no-python-downloads",
            "--python-version", "{}.{}".format(*lowest),
            "--index-url", client.mirrors.to_mirror(recipe.index),
            "--no-header", "--no-annotate", "--no-strip-markers",
            "-c", work / "constraints.txt", "-o", work / "pins.txt", work / "requirements.in",
        ]
        env = {"UV_CACHE_DIR": str(work / "uv-cache"), "HOME": str(work)}
        try:
            runner.run(argv, env=env, what=f"recipes/{recipe.file}: {what}", timeout=1800)
        except TljhLockError as exc:
            raise UpstreamError(str(exc.message), hint="relax a requirement or a constraint in "
                                f"recipes/{recipe.file}") from None
        lines = (work / "pins.txt").read_text().splitlines()
    pins = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        marker = str(requirement.marker) if requirement.marker else None
        if applies_anywhere(marker, targets):
            pins.append(Pin(canonicalize_name(requirement.name), specifier.version, marker))
    return pins


def applies_anywhere(marker: str | None, targets: list[Target]) -> bool:
    return marker is None or any(Marker(marker).evaluate(t.marker_environment()) for t in targets)


def collect(recipe: PipRecipe, pins: list[Pin], targets: list[Target], client: Client
            ) -> list[Package]:
    with ThreadPoolExecutor(max_workers=8) as pool, tqdm(
            total=len(pins), unit="page", desc=f"{recipe.name}: index pages", leave=False,
            disable=not client.progress) as bar:
        def read(pin: Pin) -> Package:
            package = collect_one(recipe, pin, targets, client)
            bar.update()
            return package

        packages = list(pool.map(read, pins))
    return sorted(packages, key=lambda p: (p.name, Version(p.version), p.marker or ""))


def collect_one(recipe: PipRecipe, pin: Pin, targets: list[Target], client: Client) -> Package:
    """Every file of the pinned version that some target may install, and its dependencies."""
    where = f"recipes/{recipe.file}: {pin.name} {pin.version}"
    files = [f for f in pypi_index.project_files(client, recipe.index, pin.name)
             if f.version == Version(pin.version)]
    if not files:
        raise UpstreamError(f"{where}: the index lists no files for this version")
    probe = Package(pin.name, pin.version, pin.marker, requires_python=files[0].requires_python)
    tag_sets = [t.tag_rank().keys() for t in targets if probe.applies_to(t)]
    wheels = sorted(
        (f for f in files if f.is_wheel
         and any(parse_wheel_filename(f.artifact.name)[3] & tags for tags in tag_sets)),
        key=lambda f: f.artifact.name,
    )
    sdists = sorted((f for f in files if not f.is_wheel), key=lambda f: f.artifact.name)
    sdist = sdists[0] if sdists else None
    build_requires: list[str] = []
    if wheels:
        dependencies = pypi_index.wheel_dependencies(client, wheels[0])
    elif sdist and not any(f.is_wheel for f in files):
        data = pypi_index.download(client, sdist.artifact, where)
        facts = pypi_index.sdist_facts(pin.name, data, where)
        dependencies, build_requires = facts.dependencies, facts.build_requires
    else:
        # Wheels exist, none for our targets: building would need a compiler and headers.
        raise UpstreamError(f"{where}: no wheel for any target",
                            hint="add a constraint that pins a version with linux wheels")
    chosen = wheels[0] if wheels else sdist
    assert chosen is not None
    return Package(
        name=pin.name,
        version=pin.version,
        marker=pin.marker,
        requires_python=chosen.requires_python,
        dependencies=tuple(dependencies),
        build_requires=tuple(build_requires),
        sdist=sdist.artifact if sdist else None,
        wheels=tuple(f.artifact for f in wheels),
    )


def complete_kept(component: model.Component, client: Client, where: str) -> model.Component:
    """A component `update` keeps, as it is, except the source pins it has no archive sha256
    for (locked while the archive was out of reach, or before `update` recorded it): those
    are verified and get it now. No pin moves."""
    if not isinstance(component, Component) or all(s.archive_sha256 for s in component.sources):
        return component
    return replace(component, sources=tuple(
        s if s.archive_sha256 else source_pin.verify(client, s, where) for s in component.sources))


def resolve_recipe(recipe: Recipe, targets: list[Target], client: Client,
                   previous: model.Component | None, upgrade: set[str],
                   resolved: Mapping[str, model.Component]) -> Component:
    own = previous if isinstance(previous, Component) else None
    pip_recipe = PipRecipe.from_recipe(recipe)
    helped = recipe.table.string("plugins-from", optional=True)
    if helped is not None:
        # the user pip packages that the plugins of that component's recipe asked for
        if helped not in recipe.after:
            recipe.table.fail(f"takes the plugins of {helped!r}: list it in `after`",
                              "plugins-from")
        other = resolved.get(helped)
        if not isinstance(other, Component):
            recipe.table.fail(f"{helped!r} is not a pip component", "plugins-from")
        assert isinstance(other, Component)
        wanted = [r for plugin in other.plugins for r in plugin.user_pip]
        pip_recipe = replace(pip_recipe, requirements=(*pip_recipe.requirements, *wanted))
    rule = SameVersion.from_recipe(recipe)
    if rule:
        pins = rule.pins(resolved, f"recipes/{recipe.file}")
        pip_recipe = replace(pip_recipe, constraints=(*pip_recipe.constraints, *pins))
    return resolve(pip_recipe, targets, client, own, upgrade)
