"""The `release` kind (traefik, Miniforge, Node.js): resolving, the lock, check, errors."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, SHARED, Upstream, copy_recipes, serve
from tests.upstream import FixtureUpstream
from tests.upstream.real_binaries import fill_real_binaries
from tests.upstream.release_scenarios import (
    generate_release_scenario,
    publish_github_release,
    traefik_tarball,
)
from tljh_lock.core import tomlio
from tljh_lock.core.errors import InputError, UpstreamError
from tljh_lock.core.schema import Table
from tljh_lock.core.targets import default_targets
from tljh_lock.inspect.diff import diff_locks
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds.release import Component
from tljh_lock.lock.recipes import load as load_recipes
from tljh_lock.resolve.release import ReleaseRecipe, parse_sha256sums, resolve
from tljh_lock.resolve.write import dumps as dump_lock
from tljh_lock.upstream import github as github_releases
from tljh_lock.upstream.http import Client
from tljh_lock.upstream.mirrors import MirrorMap

RELEASES = ("traefik", "miniforge", "nodejs")
FACTS = SHARED / "upstream-facts"
FACTS_MIRRORS = [
    f"--mirror=https://github.com/={(FACTS / 'github.com').as_uri()}/",
    f"--mirror=https://nodejs.org/={(FACTS / 'nodejs.org').as_uri()}/",
]


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """A read-only fixture upstream with the release scenario."""
    with serve(tmp_path_factory.mktemp("releases"), generate_release_scenario) as upstream:
        yield upstream


@pytest.fixture
def own_releases(tmp_path: Path) -> Iterator[Upstream]:
    """A fixture upstream of this test's own, free to break."""
    with serve(tmp_path / "upstream", generate_release_scenario) as upstream:
        yield upstream


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def components(lock_path: Path) -> dict[str, Component]:
    lock = lockfile.load(lock_path)
    found = {n: c for n, c in lock.components.items() if isinstance(c, Component)}
    return found


def by_arch(component: Component) -> dict[str, dict[str, Any]]:
    return {f.arch: {"name": f.artifact.name, "url": f.artifact.url, "size": f.artifact.size,
                     "sha256": f.artifact.sha256} for f in component.arch_files}


# --- the real recipes against the upstreams' published checksums ------------------------------


def published_sums(*files: Path) -> dict[str, str]:
    sums = {}
    for path in files:
        for line in path.read_text().splitlines():
            digest, name = line.split()
            sums[name] = digest
    return sums


@pytest.fixture(scope="module")
def facts_sums() -> dict[str, str]:
    if not FACTS.is_dir():
        pytest.skip(f"needs {FACTS} (../shared beside the clone, or set TLJH_SHARED)")
    return published_sums(*(p for p in FACTS.rglob("*") if p.is_file()
                            and (p.suffix in (".sha256", ".txt"))))


def expected_real(sums: dict[str, str]) -> dict[str, dict[str, str]]:
    facts = tomlio.load(FACTS / "tljh.toml")
    traefik, nodejs = facts["traefik"], facts["nodejs"]
    miniforge = facts["user-env"]["installer"].split()[1]
    names = {
        "traefik": {arch: f"traefik_v{traefik['version']}_{platform}.tar.gz"
                    for arch, platform in traefik["platforms"].items()},
        "miniforge": {arch: f"Miniforge3-{miniforge}-Linux-{arch}.sh"
                      for arch in ("x86_64", "aarch64")},
        "nodejs": {arch: f"node-v{nodejs['version']}-linux-{platform}.tar.xz"
                   for arch, platform in nodejs["platforms"].items()},
    }
    return {comp: {arch: sums[name] for arch, name in arches.items()}
            for comp, arches in names.items()}


def lock_sums(comps: dict[str, Component]) -> dict[str, dict[str, str]]:
    return {name: {f.arch: f.artifact.sha256 for f in comps[name].arch_files}
            for name in RELEASES}


def test_real_recipes_give_the_published_hashes(facts_sums: dict[str, str], tmp_path: Path,
                                                tljh: Any) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("targets", *RELEASES):
        shutil.copyfile(REPO / "recipes" / f"{name}.toml", recipes / f"{name}.toml")
    lock = tmp_path / "lock.toml"
    result = tljh("update", "--recipes", recipes, "--lock", lock, *FACTS_MIRRORS)
    assert result.code == 0, result.err
    comps = components(lock)
    assert lock_sums(comps) == expected_real(facts_sums)
    assert {n: c.version for n, c in comps.items()} == {
        "traefik": "3.6.5", "miniforge": "24.7.1-2", "nodejs": "22.12.0"}
    # Canonical URLs only, and no size where no upstream document states one.
    for comp in comps.values():
        for file in comp.arch_files:
            assert file.artifact.url.startswith(("https://github.com/", "https://nodejs.org/"))
            assert file.artifact.size is None
    assert tljh("check", "--recipes", recipes, "--lock", lock).code == 0


def test_committed_lock_has_the_published_hashes(facts_sums: dict[str, str]) -> None:
    comps = components(REPO / "locks" / "tljh.lock.toml")
    missing = sorted(set(RELEASES) - set(comps))
    assert not missing, (
        f"locks/tljh.lock.toml lacks {', '.join(missing)}: run `tljh-lock update "
        + " ".join(FACTS_MIRRORS) + "`")
    assert lock_sums(comps) == expected_real(facts_sums)


# --- resolving against the fixture upstream ----------------------------------------------------


def update(tljh: Any, upstream: Upstream, recipes: Path, lock: Path) -> Any:
    return tljh("update", "--recipes", recipes, "--lock", lock, *upstream.mirror_flags())


def test_exact_versions_and_constraints(releases: Upstream, tmp_path: Path, tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", *RELEASES)
    lock = tmp_path / "lock.toml"
    releases.server.clear()
    result = update(tljh, releases, recipes, lock)
    assert result.code == 0, result.err
    comps = components(lock)
    facts = releases.facts
    # traefik: a constraint, read from GitHub's release list, which also states sizes.
    assert comps["traefik"].version == "3.6.5"
    assert by_arch(comps["traefik"]) == facts["traefik"]["3.6.5"]
    # Miniforge: an exact version; only the per-asset checksum files are read: no sizes.
    assert comps["miniforge"].version == "24.7.1-2"
    assert comps["miniforge"].tag == "24.7.1-2"
    expected = {arch: {**f, "size": None} for arch, f in facts["miniforge"]["24.7.1-2"].items()}
    assert by_arch(comps["miniforge"]) == expected
    # Node.js: a constraint read from dist/index.json, which states no sizes.
    assert comps["nodejs"].version == "22.12.0"
    expected = {arch: {**f, "size": None} for arch, f in facts["nodejs"]["22.12.0"].items()}
    assert by_arch(comps["nodejs"]) == expected
    assert {f.arch: f.top_dir for f in comps["nodejs"].arch_files} == {
        "aarch64": "node-v22.12.0-linux-arm64", "x86_64": "node-v22.12.0-linux-x64"}
    assert comps["nodejs"].binary == "bin/node"
    requested = {path for _, path, _ in releases.server.requests}
    assert "/api.github.com/repos/conda-forge/miniforge/releases" not in requested
    assert "/api.github.com/repos/traefik/traefik/releases" in requested
    # No artifact is downloaded to resolve: the published checksums are what the lock records.
    assert not [p for p in requested if p.endswith((".tar.gz", ".tar.xz", ".sh"))]
    assert tljh("check", "--recipes", recipes, "--lock", lock).code == 0


@pytest.mark.parametrize(("constraint", "version"), [
    (">=3.6", "3.6.5"),  # not the draft 3.7.0, not the prerelease 3.7.0-rc1
    ("<3.6.5", "3.6.4"),
    ("<3", "2.11.30"),  # listed after 3.6.x, as backports are: list order does not matter
])
def test_github_constraints(releases: Upstream, tmp_path: Path, tljh: Any, constraint: str,
                            version: str) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    edit(recipes / "traefik.toml", '"~=3.6.0"', json.dumps(constraint))
    result = update(tljh, releases, recipes, tmp_path / "lock.toml")
    assert result.code == 0, result.err
    assert components(tmp_path / "lock.toml")["traefik"].version == version


def test_github_drafts_and_prereleases_are_never_picked(releases: Upstream, tmp_path: Path,
                                                        tljh: Any) -> None:
    # A PEP 440 constraint that names a prerelease admits prereleases; GitHub's flags still rule.
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    edit(recipes / "traefik.toml", '"~=3.6.0"', '">=3.7.0rc1"')
    result = update(tljh, releases, recipes, tmp_path / "lock.toml")
    assert result.code == 4
    assert "matches no release" in result.err


@pytest.mark.parametrize(("constraint", "version"), [
    (">=23", "23.3.0"), ("<22", "20.18.1"), ("==22.11.*", "22.11.0")])
def test_nodejs_constraints(releases: Upstream, tmp_path: Path, tljh: Any, constraint: str,
                            version: str) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "nodejs")
    edit(recipes / "nodejs.toml", '">=22.12,<23"', json.dumps(constraint))
    result = update(tljh, releases, recipes, tmp_path / "lock.toml")
    assert result.code == 0, result.err
    node = components(tmp_path / "lock.toml")["nodejs"]
    assert node.version == version
    assert by_arch(node)["x86_64"]["sha256"] == releases.facts["nodejs"][version]["x86_64"][
        "sha256"]


def test_update_is_deterministic(releases: Upstream, tmp_path: Path, tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", *RELEASES)
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    assert update(tljh, releases, recipes, first).code == 0
    assert update(tljh, releases, recipes, second).code == 0
    assert first.read_bytes() == second.read_bytes()
    before = first.read_bytes()
    assert update(tljh, releases, recipes, first).code == 0  # kept: nothing changed
    assert first.read_bytes() == before


# --- keeping what is locked --------------------------------------------------------------------


def resolve_traefik(upstream: Upstream, recipes: Path, previous: Component | None) -> Component:
    recipe_set = load_recipes(recipes)
    client = Client(MirrorMap.from_pairs(upstream.server.mirror_map()))
    return resolve(ReleaseRecipe.from_recipe(recipe_set.recipes["traefik"]), recipe_set.targets,
                   client, previous)


def test_a_locked_version_that_still_matches_is_kept(releases: Upstream, tmp_path: Path) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    newest = resolve_traefik(releases, recipes, None)
    assert newest.version == "3.6.5"
    edit(recipes / "traefik.toml", '"~=3.6.0"', '"<3.6.5"')
    older = resolve_traefik(releases, recipes, None)
    assert older.version == "3.6.4"
    edit(recipes / "traefik.toml", '"<3.6.5"', '">=3.6"')
    kept = resolve_traefik(releases, recipes, older)
    assert kept.version == "3.6.4"
    assert kept.files() == older.files()
    assert resolve_traefik(releases, recipes, None).version == "3.6.5"  # an upgrade moves


def test_a_vanished_locked_release_is_an_error(releases: Upstream, tmp_path: Path) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    locked = resolve_traefik(releases, recipes, None)
    gone = replace(locked, version="3.6.3", tag="v3.6.3")
    with pytest.raises(UpstreamError, match=r"traefik\.toml: the locked release 3\.6\.3 has "
                       r"vanished from https://api\.github\.com/repos/traefik/traefik/releases"):
        resolve_traefik(releases, recipes, gone)


# --- errors: each names the recipe and the cause, and nothing is written -----------------------


def fails(tljh: Any, upstream: Upstream, recipes: Path, lock: Path, code: int,
          *messages: str) -> None:
    before = lock.read_bytes() if lock.exists() else None
    result = update(tljh, upstream, recipes, lock)
    assert result.code == code, result.err
    for message in messages:
        assert message in result.err
    assert (lock.read_bytes() if lock.exists() else None) == before


def test_checksum_file_without_an_entry_for_a_platform(own_releases: Upstream, tmp_path: Path,
                                                       tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    folder = own_releases.root / "github.com/traefik/traefik/releases/download/v3.6.5"
    sums = folder / "traefik_v3.6.5_checksums.txt"
    sums.write_text("".join(line for line in sums.read_text().splitlines(keepends=True)
                            if "arm64" not in line))
    fails(tljh, own_releases, recipes, tmp_path / "lock.toml", 4,
          f"{recipes / 'traefik.toml'}: https://github.com/traefik/traefik/releases/download/"
          "v3.6.5/traefik_v3.6.5_checksums.txt has no sha256 for "
          "traefik_v3.6.5_linux_arm64.tar.gz (aarch64)")


def test_per_asset_checksum_file_missing(own_releases: Upstream, tmp_path: Path,
                                         tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "miniforge")
    (own_releases.root / "github.com/conda-forge/miniforge/releases/download/24.7.1-2/"
     "Miniforge3-24.7.1-2-Linux-aarch64.sh.sha256").unlink()
    fails(tljh, own_releases, recipes, tmp_path / "lock.toml", 4,
          f"{recipes / 'miniforge.toml'}: https://github.com/conda-forge/miniforge/releases/"
          "download/24.7.1-2/Miniforge3-24.7.1-2-Linux-aarch64.sh.sha256",
          "answered HTTP 404", "is 24.7.1-2 published?")


def test_a_release_that_vanished_after_locking(own_releases: Upstream, tmp_path: Path,
                                               tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", *RELEASES)
    lock = tmp_path / "lock.toml"
    assert update(tljh, own_releases, recipes, lock).code == 0
    shutil.rmtree(own_releases.root / "github.com/conda-forge/miniforge/releases/download/"
                  "24.7.1-2")
    shutil.rmtree(own_releases.root / "nodejs.org/dist/v22.12.0")
    # Unchanged recipes keep their pins without asking upstream.
    assert update(tljh, own_releases, recipes, lock).code == 0
    # A recipe edit resolves again: the pinned Miniforge release is gone.
    edit(recipes / "miniforge.toml", "# The demo", "# Edited. The demo")
    fails(tljh, own_releases, recipes, lock, 4, f"{recipes / 'miniforge.toml'}:",
          "answered HTTP 404")
    edit(recipes / "miniforge.toml", "# Edited. The demo", "# The demo")
    # Node.js 22.12.0, locked by a constraint, has left dist/index.json too.
    index = own_releases.root / "nodejs.org/dist/index.json"
    index.write_text(json.dumps([r for r in json.loads(index.read_text())
                                 if r["version"] != "v22.12.0"]))
    edit(recipes / "nodejs.toml", "# The demo", "# Edited. The demo")
    fails(tljh, own_releases, recipes, lock, 4, f"{recipes / 'nodejs.toml'}: the locked release "
          "22.12.0 has vanished from https://nodejs.org/dist/index.json")


def test_a_version_that_was_never_published(releases: Upstream, tmp_path: Path,
                                            tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "miniforge")
    edit(recipes / "miniforge.toml", '"24.7.1-2"', '"24.7.1-9"')
    fails(tljh, releases, recipes, tmp_path / "lock.toml", 4, f"{recipes / 'miniforge.toml'}:",
          "Miniforge3-24.7.1-9-Linux-aarch64.sh.sha256", "answered HTTP 404")


@pytest.mark.parametrize("recipe", ["traefik", "nodejs"])
def test_a_constraint_that_matches_nothing(releases: Upstream, tmp_path: Path, tljh: Any,
                                           recipe: str) -> None:
    recipes = copy_recipes(tmp_path / "recipes", recipe)
    old = '"~=3.6.0"' if recipe == "traefik" else '">=22.12,<23"'
    edit(recipes / f"{recipe}.toml", old, '">=99"')
    newest = "3.6.5, 3.6.4, 2.11.30" if recipe == "traefik" else "23.3.0, 22.12.0, 22.11.0"
    fails(tljh, releases, recipes, tmp_path / "lock.toml", 4,
          f"{recipes / f'{recipe}.toml'}: version-constraint '>=99' matches no release",
          f"(newest: {newest}")


def test_a_listed_release_without_the_asset(own_releases: Upstream, tmp_path: Path,
                                            tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    amd64 = traefik_tarball(tmp_path / "t.tar.gz", "3.6.6", "linux_amd64")
    publish_github_release(own_releases.root, "traefik/traefik", "v3.6.6",
                           {"traefik_v3.6.6_linux_amd64.tar.gz": amd64},
                           checksums="traefik_v3.6.6_checksums.txt")
    fails(tljh, own_releases, recipes, tmp_path / "lock.toml", 4,
          f"{recipes / 'traefik.toml'}: release v3.6.6 of traefik/traefik has no asset "
          "traefik_v3.6.6_linux_arm64.tar.gz (for aarch64)")


def test_release_list_and_checksum_file_disagree(own_releases: Upstream, tmp_path: Path,
                                                 tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    listing = own_releases.root / "api.github.com/repos/traefik/traefik/releases/index.json"
    data = json.loads(listing.read_text())
    release = next(r for r in data if r["tag_name"] == "v3.6.5")
    asset = next(a for a in release["assets"] if a["name"].endswith("_linux_amd64.tar.gz"))
    asset["digest"] = "sha256:" + "ab" * 32
    listing.write_text(json.dumps(data))
    fails(tljh, own_releases, recipes, tmp_path / "lock.toml", 5,
          f"{recipes / 'traefik.toml'}: traefik_v3.6.5_linux_amd64.tar.gz: the checksum file says",
          f"GitHub's release list says {'ab' * 32}")


@pytest.mark.parametrize(("old", "new", "message"), [
    ('version = "24.7.1-2"', 'version = "24.7.1-2"\nversion-constraint = ">=24"',
     "give exactly one of `version` and `version-constraint`"),
    ('version = "24.7.1-2"', "", "give exactly one of `version` and `version-constraint`"),
    ('asset = "Miniforge3-{version}', 'asset = "Miniforge3-{vesion}', "asset: unknown "
     "placeholder {vesion}"),
    ('x86_64 = "x86_64", ', "", "platforms: no entry for x86_64"),
    ('platforms = {', 'platforms = { riscv64 = "riscv64",', "platforms.riscv64: unknown arch"),
    ('kind = "release"', 'kind = "release"\nversion_constraint = ">1"',
     "version_constraint: unknown key"),
    ('repo = "conda-forge/miniforge"', 'repo = "https://github.com/conda-forge/miniforge"',
     "is not a GitHub repository like owner/name"),
    ('upstream = "github"', 'upstream = "gitlab"', "unknown upstream 'gitlab'"),
    ('version = "24.7.1-2"', 'version = "latest"', "'latest' is not a valid version"),
])
def test_recipe_errors(releases: Upstream, tmp_path: Path, tljh: Any, old: str, new: str,
                       message: str) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "miniforge")
    edit(recipes / "miniforge.toml", old, new)
    fails(tljh, releases, recipes, tmp_path / "lock.toml", 3, str(recipes / "miniforge.toml"),
          message)


# --- the lock: round trip, check, diff ---------------------------------------------------------


@pytest.fixture
def locked(releases: Upstream, tmp_path: Path, tljh: Any) -> Path:
    recipes = copy_recipes(tmp_path / "recipes", *RELEASES)
    lock = tmp_path / "lock.toml"
    assert update(tljh, releases, recipes, lock).code == 0
    return lock


def component_table(data: dict[str, Any]) -> Table:
    return Table(data, "components.x", "lock.toml")


def test_round_trip_and_artifacts(locked: Path) -> None:
    lock = lockfile.load(locked)
    assert lockfile.to_dict(lockfile.parse(dump_lock(lock), "again")) == lockfile.to_dict(lock)
    traefik = lock.components["traefik"]
    assert isinstance(traefik, Component)
    x86 = lock.artifacts("x86_64")
    assert [a.name for a in x86 if "traefik" in a.name] == ["traefik_v3.6.5_linux_amd64.tar.gz"]
    assert {a.name for a in lock.artifacts()} >= {
        "node-v22.12.0-linux-arm64.tar.xz", "node-v22.12.0-linux-x64.tar.xz"}
    only_x86 = [t for t in lock.targets if t.arch == "x86_64"]
    assert [a.name for a in traefik.artifacts(only_x86)] == ["traefik_v3.6.5_linux_amd64.tar.gz"]
    assert traefik.names() == {"traefik"}
    assert traefik.versions() == {"traefik": ("3.6.5",)}
    assert traefik.summary() == "traefik 3.6.5 from traefik/traefik v3.6.5 (aarch64, x86_64)"
    file = traefik.file_for("aarch64")
    assert file is not None and file.artifact.name == "traefik_v3.6.5_linux_arm64.tar.gz"


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["artifacts"][0].update(size=0), "artifacts[0].size: an empty file"),
    (lambda d: d["artifacts"].reverse(), "artifacts: one artifact per arch, sorted by arch"),
    (lambda d: d["artifacts"][0].update(arch="riscv64"), "unknown arch 'riscv64'"),
    (lambda d: d["artifacts"][0].update(name="../evil"), "is not a plain file name"),
    (lambda d: d["artifacts"][0].update(hashes={"sha256": "00"}), "is not a lowercase hex"),
    (lambda d: d.update(binary="../../bin/sh"), "is not a relative path inside the archive"),
    (lambda d: d["artifacts"][0].update({"top-dir": "a/b"}), "is not a single folder name"),
])
def test_malformed_lock_entries(locked: Path, change: Any, message: str) -> None:
    data = components(locked)["traefik"].to_dict()
    change(data)
    with pytest.raises(InputError, match=re.escape(message)):
        Component.from_table(component_table(data))


def test_prove(locked: Path) -> None:
    targets = lockfile.load(locked).targets
    traefik = components(locked)["traefik"]
    assert traefik.problems(targets) == []
    only_amd64 = replace(traefik, arch_files=traefik.arch_files[1:])
    assert only_amd64.problems(targets) == [
        "no artifact for aarch64 (needed by debian-11-aarch64, debian-12-aarch64, "
        "debian-13-aarch64, ubuntu-22.04-aarch64, ubuntu-24.04-aarch64)"]
    assert only_amd64.problems([t for t in targets if t.arch == "x86_64"]) == []
    wrong = replace(traefik, version="3.6.4")
    problems = wrong.problems(targets)
    assert "tag 'v3.6.5' does not name version 3.6.4" in problems
    assert ("aarch64: traefik_v3.6.5_linux_arm64.tar.gz does not name version 3.6.4"
            in problems)
    moved = replace(traefik, tag="v3.6.5-1")
    assert any("is not where github publishes" in p for p in moved.problems(targets))
    node = components(locked)["nodejs"]
    assert node.problems(default_targets()) == []
    other = replace(node, arch_files=tuple(replace(f, top_dir="node-v1-linux-x64")
                                           for f in node.arch_files))
    assert "x86_64: top-dir 'node-v1-linux-x64' does not name version 22.12.0" in other.problems(
        targets)


def test_check_reports_a_missing_arch(locked: Path, tljh: Any) -> None:
    lock = lockfile.load(locked)
    traefik = lock.components["traefik"]
    assert isinstance(traefik, Component)
    lock.components["traefik"] = replace(traefik, arch_files=traefik.arch_files[1:])
    locked.write_text(dump_lock(lock))
    result = tljh("check", "--no-recipes", "--lock", locked)
    assert result.code == 1
    assert "traefik: no artifact for aarch64" in result.out + result.err


def test_diff_shows_a_new_version(releases: Upstream, tmp_path: Path, tljh: Any) -> None:
    recipes = copy_recipes(tmp_path / "recipes", "traefik")
    old, new = tmp_path / "old.toml", tmp_path / "new.toml"
    edit(recipes / "traefik.toml", '"~=3.6.0"', '"<3.6.5"')
    assert update(tljh, releases, recipes, old).code == 0
    edit(recipes / "traefik.toml", '"<3.6.5"', '"~=3.6.0"')
    assert update(tljh, releases, recipes, new).code == 0
    changes = diff_locks(lockfile.load(old), lockfile.load(new))
    assert changes["traefik"].upgraded == ["traefik 3.6.4 -> 3.6.5"]
    assert changes["traefik"].hash_warnings == []


# --- the readers ---------------------------------------------------------------------------------


def test_sha256sums_forms() -> None:
    digest = "ab" * 32
    assert parse_sha256sums(f"{digest}  a.tar.gz\n{digest.upper()} *b.tar.gz\n\n".encode(),
                            "u", only="a.tar.gz") == {"a.tar.gz": digest, "b.tar.gz": digest}
    assert parse_sha256sums(f"{digest}\n".encode(), "u", only="x.sh") == {"x.sh": digest}
    with pytest.raises(UpstreamError, match="line 2 is not"):
        parse_sha256sums(f"{digest}  a\n<html>\n".encode(), "u", only="a")


class PagedClient:
    """Answers GitHub's release list page by page (the fixture server ignores queries)."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.urls: list[str] = []

    def get(self, url: str, *, accept: str | None = None, what: str = "") -> Any:
        self.urls.append(url)
        page = int(url.rsplit("page=", 1)[1])
        data = json.dumps(self.pages[page - 1] if page <= len(self.pages) else []).encode()
        return type("Doc", (), {"data": data})()


def test_github_release_list_pages() -> None:
    full = [{"tag_name": f"v1.0.{i}", "assets": []} for i in range(github_releases.PER_PAGE)]
    client = PagedClient([full, [{"tag_name": "v0.9.0", "assets": [
        {"name": "a", "size": 3, "digest": "sha256:" + "cd" * 32}]}]])
    releases = github_releases.list_releases(client, "o/r", "test")  # type: ignore[arg-type]
    assert len(releases) == github_releases.PER_PAGE + 1
    assert releases[-1].assets["a"] == github_releases.Asset("a", 3, "cd" * 32)
    assert client.urls == [
        "https://api.github.com/repos/o/r/releases?per_page=100&page=1",
        "https://api.github.com/repos/o/r/releases?per_page=100&page=2",
    ]


# --- real binaries -----------------------------------------------------------------------------


@pytest.mark.online
@pytest.mark.slow
def test_real_binaries_resolve_and_run(tmp_path: Path, tljh: Any) -> None:
    """Real node and traefik, repacked into the upstream layouts, lock and run (first run:
    ~130 MB of downloads and minutes of xz; later runs use the cache)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tljh-lock/real"
    root = tmp_path / "upstream"
    facts = fill_real_binaries(root, cache)
    (node_version,), (traefik_version,) = facts["nodejs"], facts["traefik"]
    recipes = copy_recipes(tmp_path / "recipes", "traefik", "nodejs")
    lock = tmp_path / "lock.toml"
    with FixtureUpstream(root) as server:
        upstream = Upstream(root, server, facts)
        assert update(tljh, upstream, recipes, lock).code == 0
    comps = components(lock)
    assert (comps["nodejs"].version, comps["traefik"].version) == (node_version, traefik_version)
    assert by_arch(comps["traefik"]) == facts["traefik"][traefik_version]
    assert {a: f["sha256"] for a, f in by_arch(comps["nodejs"]).items()} == {
        a: f["sha256"] for a, f in facts["nodejs"][node_version].items()}
    if platform.machine() != "x86_64":
        return
    node = comps["nodejs"].file_for("x86_64")
    assert node is not None and node.top_dir is not None
    with tarfile.open(root / "nodejs.org/dist" / f"v{node_version}" / node.artifact.name) as tar:
        tar.extractall(tmp_path / "node")  # our own repack: links are relative and inside
    bin_dir = tmp_path / "node" / node.top_dir / "bin"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    assert subprocess.run([bin_dir / "node", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip() == f"v{node_version}"
    assert subprocess.run(["npm", "--version"], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()
    traefik = tmp_path / "traefik"
    tarball = comps["traefik"].file_for("x86_64")
    assert tarball is not None
    with tarfile.open(root / tarball.artifact.url.removeprefix("https://")) as tar:
        tar.extractall(traefik)
    out = subprocess.run([traefik / "traefik", "version"], capture_output=True, text=True,
                         check=True).stdout
    assert f"Version:      {traefik_version}" in out
