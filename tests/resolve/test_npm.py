"""The npm kind: update / check / export of an npm tree against the fixture registry (offline),
`npm ci --offline` of the exported package-lock with no network, and the real
configurable-http-proxy tree from the npm registry (online)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import REPO, Upstream, copy_recipes
from tests.upstream import FixtureUpstream
from tests.upstream.npm_scenarios import generate_npm_scenario
from tljh_lock.core import runner
from tljh_lock.core.errors import (
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTEGRITY,
    EXIT_UPSTREAM,
    InputError,
)
from tljh_lock.core.schema import Table
from tljh_lock.export import package_lock as export_package_lock
from tljh_lock.lock import file as lockfile
from tljh_lock.lock import recipes
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.resolve import npm as npm_resolve
from tljh_lock.resolve.write import dumps as dump_lock
from tljh_lock.upstream.http import Client
from tljh_lock.upstream.mirrors import MirrorMap

NAME = "configurable-http-proxy"
CHP_INTEGRITY = ("sha512-5au4O12dEFFHWNm9Y7Exm06TYc1CnMOvvptPTU83Vw7Nz9j0jUqQQwKDR1xT52gqX+X6D8U"
                 "uO754dQdUkeBYuQ==")


@pytest.fixture(scope="session")
def npm_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("npm-upstream")
    facts = generate_npm_scenario(root)
    with FixtureUpstream(root) as server:
        yield Upstream(root, server, facts)


@pytest.fixture
def npm_recipes(tmp_path: Path) -> Path:
    return copy_recipes(tmp_path / "recipes", NAME)


def set_recipe(recipe_dir: Path, dependencies: dict[str, str], node: str = "22.12.0") -> None:
    lines = ['kind = "npm"', f'node = "{node}"', "", "[dependencies]"]
    lines += [f'"{name}" = "{spec}"' for name, spec in dependencies.items()]
    (recipe_dir / f"{NAME}.toml").write_text("\n".join(lines) + "\n")


def update(tljh, upstream: Upstream, recipe_dir: Path, lock: Path, *extra: str, code: int = 0):
    result = tljh("update", "--recipes", recipe_dir, "--lock", lock, *upstream.mirror_flags(),
                  *extra)
    assert result.code == code, result.err
    return result


def component(lock_path: Path) -> npm_lock.Component:
    found = lockfile.load(lock_path).components[NAME]
    assert isinstance(found, npm_lock.Component)
    return found


def by_path(lock_path: Path) -> dict[str, tuple[str, str]]:
    return {p.path: (p.name, p.version) for p in component(lock_path).packages}


def test_update_locks_the_whole_tree(tljh, npm_upstream, npm_recipes, tmp_path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, npm_upstream, npm_recipes, lock_path)
    assert by_path(lock_path) == {
        "node_modules/@fx/log": ("@fx/log", "2.0.0"),
        "node_modules/@fx/log/node_modules/fx-events": ("fx-events", "4.0.0"),
        "node_modules/fx-events": ("fx-events", "3.0.0"),
        "node_modules/fx-http": ("fx-http", "1.1.0"),
        # 2.0.0 needs node >=22.12.0: this machine's node is older, the locked one is not.
        "node_modules/fx-modern": ("fx-modern", "2.0.0"),
        "node_modules/fx-proxy": ("fx-proxy", "1.0.0"),
    }
    chp = component(lock_path)
    published = npm_upstream.facts["packages"]
    for package in chp.packages:
        facts = published[f"{package.name}@{package.version}"]
        assert package.integrity == facts["integrity"]
        assert (package.tarball.url, package.tarball.sha256, package.tarball.size) == (
            facts["url"], facts["sha256"], facts["size"])
    proxy = chp.resolve("", "fx-proxy")
    assert proxy is not None
    assert dict(proxy.engines) == {"node": ">=18"}
    assert dict(proxy.bin) == {"fx-proxy": "bin/fx-proxy.js"}
    assert chp.node == "22.12.0"
    assert "127.0.0.1" not in lock_path.read_text()
    result = tljh("check", "--recipes", npm_recipes, "--lock", lock_path)
    assert result.code == 0, result.err


def test_resolves_as_the_locked_node(tljh, npm_upstream, npm_recipes, tmp_path):
    set_recipe(npm_recipes, {"fx-modern": "^1.0.0 || ^2.0.0"}, node="20.0.0")
    update(tljh, npm_upstream, npm_recipes, tmp_path / "lock.toml")
    assert by_path(tmp_path / "lock.toml") == {"node_modules/fx-modern": ("fx-modern", "1.0.0")}


@pytest.mark.parametrize("existing", [False, True])
def test_engines_excluding_the_locked_node_fail(tljh, npm_upstream, npm_recipes, tmp_path,
                                                existing):
    lock_path = tmp_path / "lock.toml"
    if existing:
        update(tljh, npm_upstream, npm_recipes, lock_path)
        before = lock_path.read_bytes()
    set_recipe(npm_recipes, {"fx-proxy": "1.0.0", "fx-modern": "3.0.0"})
    result = update(tljh, npm_upstream, npm_recipes, lock_path, code=EXIT_INPUT)
    assert f"recipes/{NAME}.toml" in result.err
    assert "Node.js 22.12.0" in result.err and "fx-modern 3.0.0 needs node '>=99'" in result.err
    assert "fx-proxy" not in result.err  # only the package that excludes it is named
    if existing:
        assert lock_path.read_bytes() == before
    else:
        assert not lock_path.exists()


def test_node_must_be_the_locked_nodejs(npm_recipes):
    recipe = npm_resolve.NpmRecipe.from_recipe(recipes.load(npm_recipes).recipes[NAME])
    assert npm_resolve.locked_node(recipe, {}) == "22.12.0"
    assert npm_resolve.locked_node(recipe, {"nodejs": SimpleNamespace(version="22.12.0")}) \
        == "22.12.0"
    with pytest.raises(InputError, match=r"node = '22.12.0', but .* Node.js 22.11.0"):
        npm_resolve.locked_node(recipe, {"nodejs": SimpleNamespace(version="22.11.0")})
    unpinned = dataclasses.replace(recipe, node=None)
    assert npm_resolve.locked_node(unpinned, {"nodejs": SimpleNamespace(version="v22.12.0")}) \
        == "22.12.0"
    with pytest.raises(InputError, match="no Node.js version"):
        npm_resolve.locked_node(unpinned, {})


def test_a_version_the_registry_lacks_fails(tljh, npm_upstream, npm_recipes, tmp_path):
    set_recipe(npm_recipes, {"fx-proxy": "9.9.9"})
    result = update(tljh, npm_upstream, npm_recipes, tmp_path / "lock.toml", code=EXIT_UPSTREAM)
    assert f"recipes/{NAME}.toml" in result.err and "fx-proxy" in result.err
    assert not (tmp_path / "lock.toml").exists()


@pytest.mark.parametrize(("fault", "code", "words"), [
    ("404", EXIT_UPSTREAM, "answered HTTP 404"),
    ("corrupt", EXIT_INTEGRITY, "does not match its sha512 integrity"),
])
def test_tarball_faults_fail(tljh, npm_upstream, npm_recipes, tmp_path, fault, code, words):
    url = npm_upstream.facts["packages"]["fx-http@1.1.0"]["url"]
    npm_upstream.server.faults[FixtureUpstream.path_for(url)] = fault
    try:
        result = update(tljh, npm_upstream, npm_recipes, tmp_path / "lock.toml", code=code)
    finally:
        npm_upstream.server.clear()
    assert f"recipes/{NAME}.toml: fx-http 1.1.0" in result.err and words in result.err
    assert not (tmp_path / "lock.toml").exists()


def test_a_vanished_locked_version_fails(tljh, npm_recipes, tmp_path):
    root = tmp_path / "upstream"
    generate_npm_scenario(root)
    lock_path = tmp_path / "lock.toml"
    with FixtureUpstream(root) as server:
        upstream = Upstream(root, server, {})
        update(tljh, upstream, npm_recipes, lock_path)
        before = lock_path.read_bytes()
        packument_path = root / "registry.npmjs.org" / "fx-http" / "index.json"
        packument = json.loads(packument_path.read_text())
        del packument["versions"]["1.1.0"]
        packument["dist-tags"]["latest"] = "1.0.0"
        packument_path.write_text(json.dumps(packument))
        # A changed recipe is resolved again, starting from the pins of the lock.
        set_recipe(npm_recipes, {"fx-proxy": "1.0.0", "fx-modern": "^2.0.0"})
        result = update(tljh, upstream, npm_recipes, lock_path, code=EXIT_UPSTREAM)
    assert "fx-http 1.1.0 is no longer in the registry" in result.err
    assert lock_path.read_bytes() == before


def test_update_is_byte_identical_and_mirror_independent(tljh, npm_upstream, npm_recipes,
                                                         tmp_path):
    first, second, third = (tmp_path / f"{n}.lock.toml" for n in "abc")
    update(tljh, npm_upstream, npm_recipes, first)
    update(tljh, npm_upstream, npm_recipes, second)
    assert first.read_bytes() == second.read_bytes()
    with FixtureUpstream(npm_upstream.root) as other:
        update(tljh, Upstream(npm_upstream.root, other, {}), npm_recipes, third)
    assert third.read_bytes() == first.read_bytes()
    result = update(tljh, npm_upstream, npm_recipes, first)
    assert f"{NAME} [kept]" in result.out and first.read_bytes() == second.read_bytes()


def test_pins_stay_when_the_recipe_changes_until_upgraded(tljh, npm_upstream, npm_recipes,
                                                           tmp_path):
    lock_path = tmp_path / "lock.toml"
    set_recipe(npm_recipes, {"fx-proxy": "1.0.0", "fx-http": "~1.0.0"})
    update(tljh, npm_upstream, npm_recipes, lock_path)
    assert by_path(lock_path)["node_modules/fx-http"] == ("fx-http", "1.0.0")
    set_recipe(npm_recipes, {"fx-proxy": "1.0.0", "fx-http": "^1.0.0"})
    update(tljh, npm_upstream, npm_recipes, lock_path)
    assert by_path(lock_path)["node_modules/fx-http"] == ("fx-http", "1.0.0")
    kept = tmp_path / "kept.lock.toml"
    kept.write_bytes(lock_path.read_bytes())
    update(tljh, npm_upstream, npm_recipes, lock_path, "-P", "fx-http")
    assert by_path(lock_path)["node_modules/fx-http"] == ("fx-http", "1.1.0")
    assert by_path(lock_path)["node_modules/fx-proxy"] == ("fx-proxy", "1.0.0")
    result = tljh("diff", kept, lock_path, "--format", "json")
    assert json.loads(result.out)[NAME]["upgraded"] == ["fx-http 1.0.0 -> 1.1.0"]


def reseal(lock_path: Path, chp: npm_lock.Component) -> None:
    """Write a changed component as `update` would, content hash and all."""
    lock = lockfile.load(lock_path)
    lock.components[NAME] = chp
    lock_path.write_text(dump_lock(lock))


def replace_package(chp: npm_lock.Component, path: str, **changes) -> npm_lock.Component:
    packages = tuple(dataclasses.replace(p, **changes) if p.path == path else p
                     for p in chp.packages)
    return dataclasses.replace(chp, packages=packages)


def test_check_proves_the_tree_closed(tljh, npm_upstream, npm_recipes, tmp_path):
    lock_path = tmp_path / "lock.toml"
    update(tljh, npm_upstream, npm_recipes, lock_path)
    good = component(lock_path)
    nested = "node_modules/@fx/log/node_modules/fx-events"
    stray = dataclasses.replace(good.by_path()[nested], path="node_modules/fx-http/node_modules/x")
    cases = {
        # the nested copy gone, Node.js would find the hoisted fx-events 3
        "fx-events@^4.0.0 (needed by @fx/log 2.0.0) finds fx-events 3.0.0 at "
        "node_modules/fx-events, not fx-events 4.0.0": dataclasses.replace(
            good, packages=tuple(p for p in good.packages if p.path != nested)),
        "fx-http@^1.0.0 (needed by fx-proxy 1.0.0) is not in the tree": dataclasses.replace(
            good, packages=tuple(p for p in good.packages if p.path != "node_modules/fx-http")),
        "is not needed by anything": dataclasses.replace(
            good, packages=(*good.packages, stray)),
        "tarball fx-http-1.1.0.tgz at https://registry.npmjs.org/fx-http/-/fx-http-1.0.0.tgz":
            replace_package(good, "node_modules/fx-http", tarball=dataclasses.replace(
                good.by_path()["node_modules/fx-http"].tarball,
                url="https://registry.npmjs.org/fx-http/-/fx-http-1.0.0.tgz")),
        "fx-proxy 1.0.0 (node_modules/fx-proxy) does not install on aarch64":
            replace_package(good, "node_modules/fx-proxy", cpu=("x64",)),
        "fx-events@^3.0.0 (needed by fx-http 1.1.0) finds @fx/log 3.0.0": replace_package(
            good, "node_modules/fx-events", name="@fx/log"),
    }
    for words, broken in cases.items():
        reseal(lock_path, broken)
        result = tljh("check", "--recipes", npm_recipes, "--lock", lock_path)
        assert result.code == EXIT_FAILURE and words in result.err, (words, result.err)
    # An optional package may skip an arch: it is then not among that arch's artifacts.
    optional = replace_package(good, "node_modules/fx-proxy", cpu=("x64",), flags=("optional",))
    assert optional.problems(lockfile.load(lock_path).targets) == []
    tarball = good.by_path()["node_modules/fx-proxy"].tarball
    assert tarball not in optional.artifacts(lockfile.load(lock_path).targets, "aarch64")
    assert tarball in optional.artifacts(lockfile.load(lock_path).targets, "x86_64")


@pytest.mark.parametrize(("key", "value", "words"), [
    ("path", "node_modules/../../etc", "is not a node_modules path"),
    ("path", "lib/fx-proxy", "is not a node_modules path"),
    ("integrity", "sha1-abc", "is not a sha512 integrity"),
    ("flags", ["bundled"], "unknown flag"),
])
def test_lock_rejects_malformed_packages(tljh, npm_upstream, npm_recipes, tmp_path, key, value,
                                         words):
    lock_path = tmp_path / "lock.toml"
    update(tljh, npm_upstream, npm_recipes, lock_path)
    text = lock_path.read_text()
    chp = component(lock_path).to_dict()
    chp["packages"][0][key] = value
    with pytest.raises(InputError, match=words):
        npm_lock.Component.from_table(Table(chp, f"components.{NAME}", "lock"))
    assert lockfile.parse(text, "lock").components[NAME] == component(lock_path)


def npm_env(home: Path) -> dict[str, str]:
    for name in ("user.npmrc", "global.npmrc"):
        (home / name).write_text("")
    return {"HOME": str(home), "NPM_CONFIG_USERCONFIG": str(home / "user.npmrc"),
            "NPM_CONFIG_GLOBALCONFIG": str(home / "global.npmrc")}


def npm_ci_offline(lock: Lock, client: Client, work: Path) -> Path:
    """Fill an npm cache with only the locked tarballs (fetched and checked by sha256), then
    `npm ci --offline` the exported project with no network at all. Returns the project."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace (unshare -n)")
    tarballs = work / "tarballs"
    tarballs.mkdir(parents=True)
    files = []
    for artifact in lock.artifacts():
        data = client.get(artifact.url).data
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (artifact.sha256, artifact.size)
        files.append(tarballs / artifact.name)
        files[-1].write_bytes(data)
    env = npm_env(work)
    cache = work / "npm-cache"
    runner.run(["unshare", "-n", "npm", "cache", "add", *files, "--cache", cache], env=env,
               what="npm cache add")
    project = work / "project"
    project.mkdir()
    for name, text in export_package_lock.files(lock, NAME).items():
        (project / name).write_text(text)
    runner.run(["unshare", "-n", "npm", "ci", "--offline", "--ignore-scripts", "--no-audit",
                "--no-fund", "--cache", cache], env=env, cwd=project, what="npm ci")
    return project


def test_exported_package_lock_installs_offline(tljh, npm_upstream, npm_recipes, tmp_path):
    lock_path = tmp_path / "lock.toml"
    update(tljh, npm_upstream, npm_recipes, lock_path)
    exported = tmp_path / "package-lock.json"
    result = tljh("export", "--lock", lock_path, "--format", "package-lock", "-o", exported)
    assert result.code == 0, result.err
    lock = lockfile.load(lock_path)
    assert exported.read_text() == export_package_lock.files(lock, None)["package-lock.json"]
    data = json.loads(exported.read_text())
    assert data["lockfileVersion"] == 3
    for path, entry in data["packages"].items():
        if path:
            assert entry["resolved"].startswith("https://registry.npmjs.org/")
            assert entry["integrity"].startswith("sha512-")
    client = Client(MirrorMap.from_pairs(npm_upstream.server.mirror_map()))
    project = npm_ci_offline(lock, client, tmp_path / "install")
    installed = json.loads((project / "node_modules/@fx/log/node_modules/fx-events/package.json")
                           .read_text())
    assert installed["version"] == "4.0.0"
    ran = runner.run([project / "node_modules/.bin/fx-proxy"], what="fx-proxy")
    assert ran.stdout.strip() == npm_upstream.facts["describe"]


def test_export_names_the_npm_components(tljh, npm_upstream, npm_recipes, tmp_path):
    lock_path = tmp_path / "lock.toml"
    update(tljh, npm_upstream, npm_recipes, lock_path)
    result = tljh("export", "--lock", lock_path, "--format", "package-lock", "--component", "hub")
    assert result.code == EXIT_INPUT and f"npm components: {NAME}" in result.err


@pytest.mark.online
def test_real_configurable_http_proxy(tmp_path):
    """The real recipe against the real registry: integrity of every package equals the
    registry's, and the exported package-lock installs offline."""
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    shutil.copyfile(REPO / "recipes" / "targets.toml", recipe_dir / "targets.toml")
    shutil.copyfile(REPO / "recipes" / f"{NAME}.toml", recipe_dir / f"{NAME}.toml")
    recipe_set = recipes.load(recipe_dir)
    client = Client()
    chp = npm_resolve.resolve_recipe(recipe_set.recipes[NAME], recipe_set.targets, client, None,
                                     (), {})
    root = chp.resolve("", NAME)
    assert root is not None and (root.version, root.integrity) == ("5.3.0", CHP_INTEGRITY)
    assert len(chp.packages) > 20
    for package in chp.packages:
        packument = json.loads(client.get(
            "https://registry.npmjs.org/" + package.name.replace("/", "%2f")).data)
        assert package.integrity == packument["versions"][package.version]["dist"]["integrity"]
    lock = Lock(recipe_set.targets, recipe_set.targets_hash, {NAME: chp})
    assert chp.problems(lock.targets) == []
    assert all(isinstance(a, Artifact) for a in lock.artifacts())
    project = npm_ci_offline(lock, client, tmp_path / "install")
    installed = json.loads((project / "node_modules" / NAME / "package.json").read_text())
    assert installed["version"] == "5.3.0"
    assert (project / "node_modules/.bin" / NAME).exists()
