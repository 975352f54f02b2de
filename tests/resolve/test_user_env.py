"""The user environment's pip set: its own targets (the fixture Miniforge's python: the
system python3 of Debian 12, as the real one carries 3.12), the hub's jupyterhub version.

Offline against the fixture upstream (hub and user-env scenarios), except the one online test.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from packaging.pylock import Pylock, PylockSelectError

from tests.conftest import REPO, Upstream, copy_recipes
from tests.upstream import FixtureUpstream, generate_hub_scenario
from tests.upstream.user_env_scenarios import generate_user_env_scenario, publish_newer_hub
from tljh_lock.core import runner
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_INPUT
from tljh_lock.core.targets import Target
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.model import Lock
from tljh_lock.resolve.write import dumps as dump_lock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SYSTEM_PYTHON = Path("/usr/bin/python3")  # the fixture Miniforge carries the system python
PYTHON312 = Path("/root/.pyenv/versions/3.12.1/bin/python3")  # the real Miniforge's python
USER_TARGETS = [Target("miniforge-x86_64", "3.11.2", "2.31", "x86_64"),
                Target("miniforge-aarch64", "3.11.2", "2.31", "aarch64")]


def make_upstream(root: Path) -> Iterator[Upstream]:
    facts = generate_hub_scenario(root)
    facts["user_env"] = generate_user_env_scenario(root)
    with FixtureUpstream(root) as server:
        yield Upstream(root, server, facts)


@pytest.fixture(scope="module")
def user_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    yield from make_upstream(tmp_path_factory.mktemp("upstream"))


@pytest.fixture
def own_upstream(tmp_path: Path) -> Iterator[Upstream]:
    """An upstream this test may publish new releases to."""
    yield from make_upstream(tmp_path / "upstream")


@pytest.fixture
def user_recipes(tmp_path: Path) -> Path:
    return copy_recipes(tmp_path / "recipes", "hub", "user-env")


def update(tljh, upstream: Upstream, recipes: Path, lock: Path, *extra: str):
    result = tljh("update", "--recipes", recipes, "--lock", lock, *upstream.mirror_flags(), *extra)
    assert result.code == 0, result.err
    return result


def pinned(lock_path: Path, component: str, name: str) -> tuple[str, ...]:
    return lockfile.load(lock_path).components[component].versions()[name]


def test_user_env_is_locked_for_python_311_on_both_arches(
        tljh, user_upstream: Upstream, user_recipes: Path, tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, user_upstream, user_recipes, lock_path)
    user_env = lockfile.load(lock_path).components["user-env"]
    assert sorted(user_env.targets) == sorted(USER_TARGETS)
    by_name = {p.name: p for p in user_env.packages}
    assert set(by_name) == {"fx-hub", "fx-lab", "fx-notebook", "fx-speedups", "fx-web",
                            "fx-widgets"}
    # fx-backport is only for Pythons below 3.11: the user env's 3.11 never needs it
    assert "fx-backport" not in by_name
    wheels = sorted(w.name for w in by_name["fx-widgets"].wheels)
    assert wheels == [
        "fx_widgets-8.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
        "fx_widgets-8.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ]
    files = user_upstream.facts["user_env"]["files"]
    for wheel in by_name["fx-widgets"].wheels:
        assert wheel.sha256 == files[wheel.name]["sha256"]
        assert wheel.size == files[wheel.name]["size"]
    result = tljh("check", "--recipes", user_recipes, "--lock", lock_path, "--json")
    assert result.code == 0, result.out
    proven = json.loads(result.out)["proven"]
    for arch in ("x86_64", "aarch64"):
        assert {"component": "user-env", "target": f"miniforge-{arch}",
                "message": "6 packages"} in proven


def test_pylock_selects_python_311_on_both_arches(
        tljh, user_upstream: Upstream, user_recipes: Path, tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, user_upstream, user_recipes, lock_path)
    result = tljh("export", "--lock", lock_path, "--format", "pylock", "--component", "user-env")
    assert result.code == 0, result.err
    pylock = Pylock.from_dict(tomllib.loads(result.out))
    for target in USER_TARGETS:
        chosen = {package.name: file.name for package, file in pylock.select(
            environment=target.marker_environment(), tags=target.supported_tags())}
        assert chosen["fx-hub"] == "fx_hub-1.1.0-py3-none-any.whl"
        assert chosen["fx-widgets"].endswith(f"manylinux2014_{target.arch}.whl")
        assert chosen["fx-speedups"].endswith(f"manylinux2014_{target.arch}.whl")
    # The other system Pythons are not this set's: Ubuntu 24.04's must be turned away.
    ubuntu24 = Target("ubuntu-24.04-x86_64", "3.12.3", "2.39", "x86_64")
    with pytest.raises(PylockSelectError):
        list(pylock.select(environment=ubuntu24.marker_environment(),
                           tags=ubuntu24.supported_tags()))


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason=f"needs {SYSTEM_PYTHON}")
def test_user_env_installs_with_hashes_into_python_311(
        tljh, user_upstream: Upstream, user_recipes: Path, tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, user_upstream, user_recipes, lock_path)
    result = tljh("export", "--lock", lock_path, "--format", "pylock", "--component", "user-env")
    pylock = Pylock.from_dict(tomllib.loads(result.out))
    here = USER_TARGETS[0]  # this machine is x86_64; aarch64 is proven by selection above
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    requirements = []
    for package, wheel in pylock.select(environment=here.marker_environment(),
                                        tags=here.supported_tags()):
        assert wheel.url and wheel.name
        data = (user_upstream.root / FixtureUpstream.path_for(wheel.url).lstrip("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == wheel.hashes["sha256"]
        (wheels / wheel.name).write_bytes(data)
        requirements.append(f"{package.name}=={package.version} "
                            f"--hash=sha256:{wheel.hashes['sha256']}\n")
    (tmp_path / "requirements.txt").write_text("".join(requirements))
    venv = tmp_path / "venv"
    runner.run([SYSTEM_PYTHON, "-m", "venv", venv], what="venv")
    runner.run([venv / "bin" / "python", "-m", "pip", "install", "--require-hashes",
                "--no-index", "--no-deps", "--find-links", wheels, "-r",
                tmp_path / "requirements.txt"], what="pip install", timeout=300)
    # every dependency is there (pip check), and the binary wheel is the cp311 one
    runner.run([venv / "bin" / "python", "-m", "pip", "check"], what="pip check")
    shown = runner.run([venv / "bin" / "python", "-c",
                        "import fx_widgets, fx_hub, sys; print(fx_hub.__version__)"],
                       what="import").stdout
    assert shown.strip() == "1.1.0"
    # a tampered wheel is refused
    victim = next(wheels.glob("fx_lab-*.whl"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    failed = runner.run([venv / "bin" / "python", "-m", "pip", "install", "--force-reinstall",
                         "--require-hashes", "--no-index", "--no-deps", "--find-links", wheels,
                         "-r", tmp_path / "requirements.txt"], what="pip install", check=False)
    assert failed.returncode != 0 and "DO NOT MATCH THE HASHES" in failed.stderr


def hub_only(lock_path: Path, out: Path) -> Path:
    """A lock holding only the hub of `lock_path`: the user env then resolves afresh."""
    lock = lockfile.load(lock_path)
    out.write_text(dump_lock(Lock(lock.targets, lock.targets_hash,
                                  {"hub": lock.components["hub"]})))
    return out


def test_same_version_follows_the_hub_pin(
        tljh, own_upstream: Upstream, user_recipes: Path, tmp_path: Path):
    lock_path = tmp_path / "tljh.lock.toml"
    update(tljh, own_upstream, user_recipes, lock_path)
    assert pinned(lock_path, "hub", "fx-hub") == ("1.1.0",)
    # Upstream releases 1.2.0. The hub recipe did not change, so the hub keeps 1.1.0.
    newer = publish_newer_hub(own_upstream.root)
    ruled = hub_only(lock_path, tmp_path / "ruled.lock.toml")
    update(tljh, own_upstream, user_recipes, ruled)
    assert pinned(ruled, "hub", "fx-hub") == ("1.1.0",)
    assert pinned(ruled, "user-env", "fx-hub") == ("1.1.0",)
    assert tljh("check", "--recipes", user_recipes, "--lock", ruled).code == 0

    # Without the rule the same fresh resolution takes 1.2.0: the rule is what holds it.
    recipe = user_recipes / "user-env.toml"
    ruled_text = recipe.read_text()
    recipe.write_text(ruled_text.replace(
        'same-version = { component = "hub", packages = ["fx-hub"] }\n', ""))
    unruled = hub_only(lock_path, tmp_path / "unruled.lock.toml")
    update(tljh, own_upstream, user_recipes, unruled)
    assert pinned(unruled, "user-env", "fx-hub") == (newer,)

    # A lock that breaks the rule, though fresh and sealed, fails `check`.
    recipe.write_text(ruled_text)
    broken = lockfile.load(unruled)
    broken.components["user-env"].recipe_hash = lockfile.load(ruled).components[
        "user-env"].recipe_hash
    unruled.write_text(dump_lock(broken))
    result = tljh("check", "--recipes", user_recipes, "--lock", unruled)
    assert result.code == EXIT_FAILURE
    assert "stale" not in result.err
    assert (f"problem: user-env: fx-hub {newer} is not hub's 1.1.0 (same-version in "
            f"{user_recipes / 'user-env.toml'})") in result.err

    # Upgrading jupyterhub's stand-in moves the hub, and the user env follows.
    update(tljh, own_upstream, user_recipes, ruled, "-P", "fx-hub")
    assert pinned(ruled, "hub", "fx-hub") == pinned(ruled, "user-env", "fx-hub") == (newer,)
    assert tljh("check", "--recipes", user_recipes, "--lock", ruled).code == 0


def test_same_version_needs_after(tljh, user_upstream: Upstream, user_recipes: Path,
                                  tmp_path: Path):
    recipe = user_recipes / "user-env.toml"
    recipe.write_text(recipe.read_text().replace('after = ["hub"]\n', ""))
    lock_path = tmp_path / "tljh.lock.toml"
    result = tljh("update", "--recipes", user_recipes, "--lock", lock_path,
                  *user_upstream.mirror_flags())
    assert result.code == EXIT_INPUT
    assert "user-env.toml: after: same-version takes pins from 'hub': list it in `after`" \
        in result.err
    assert not lock_path.exists()


def test_update_twice_is_byte_identical(tljh, user_upstream: Upstream, user_recipes: Path,
                                        tmp_path: Path):
    first, second = tmp_path / "a.lock.toml", tmp_path / "b.lock.toml"
    update(tljh, user_upstream, user_recipes, first)
    update(tljh, user_upstream, user_recipes, second)
    assert first.read_bytes() == second.read_bytes()
    before = first.read_bytes()
    update(tljh, user_upstream, user_recipes, first)
    assert first.read_bytes() == before


@pytest.mark.online
def test_real_user_env_resolves_against_pypi(tljh, tmp_path: Path):
    """The real recipe, against the real PyPI; the committed hub pins stay (recipe unchanged)."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("targets", "hub", "user-env"):
        shutil.copyfile(REPO / "recipes" / f"{name}.toml", recipes / f"{name}.toml")
    lock_path = tmp_path / "tljh.lock.toml"
    committed = lockfile.load(REPO / "locks" / "tljh.lock.toml")
    lock_path.write_text(dump_lock(Lock(committed.targets, committed.targets_hash,
                                        {"hub": committed.components["hub"]})))
    result = tljh("update", "--recipes", recipes, "--lock", lock_path)
    assert result.code == 0, result.err
    lock = lockfile.load(lock_path)
    hub, user_env = lock.components["hub"], lock.components["user-env"]
    assert user_env.versions()["jupyterhub"] == hub.versions()["jupyterhub"]
    for name in ("notebook", "jupyterlab", "nbgitpuller", "jupyter-resource-usage", "ipywidgets"):
        assert name in user_env.versions()
    assert tljh("check", "--recipes", recipes, "--lock", lock_path).code == 0
    if not PYTHON312.exists():
        return
    # Installs from PyPI with hashes required, wheels only, nothing pip would add by itself.
    pylock = Pylock.from_dict(tomllib.loads(tljh(
        "export", "--lock", lock_path, "--format", "pylock", "--component", "user-env").out))
    target = Target("here", "3.12.1", "2.31", "x86_64")
    (tmp_path / "requirements.txt").write_text("".join(
        f"{package.name}=={package.version} --hash=sha256:{wheel.hashes['sha256']}\n"
        for package, wheel in pylock.select(environment=target.marker_environment(),
                                            tags=target.supported_tags())))
    venv = tmp_path / "venv"
    runner.run([PYTHON312, "-m", "venv", venv], what="venv")
    # The system trust store, as tljh-lock uses: PyPI may sit behind a TLS-intercepting proxy.
    system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
    runner.run([venv / "bin" / "python", "-m", "pip", "install", "--require-hashes", "--no-deps",
                "--only-binary=:all:", "-r", tmp_path / "requirements.txt"],
               env={"PIP_CERT": str(system_ca)} if system_ca.exists() else None,
               what="pip install", timeout=900)
    runner.run([venv / "bin" / "python", "-m", "pip", "check"], what="pip check")
    shown = runner.run([venv / "bin" / "jupyterhub-singleuser", "--version"], what="version")
    assert shown.stdout.strip() == hub.versions()["jupyterhub"][0]


def test_a_requirements_file_is_read_hashed_and_locked(
        tljh, user_upstream: Upstream, user_recipes: Path, tmp_path: Path):
    """TLJH's `--user-requirements-txt-url`, as a recipe input: read at update, hashed, its
    requirements among the roots; pip's options in it are refused by line."""
    text = "# the site's extras\nfx-widgets>=8.1.5,<9  # widgets\n\n"
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text)
    recipe = user_recipes / "user-env.toml"
    data = tomllib.loads(recipe.read_text())
    data["requirements"] = [r for r in data["requirements"] if not r.startswith("fx-widgets")]
    url = "https://example.org/site/requirements.txt"
    data["requirements-files"] = [url]
    recipe.write_text(tomli_w.dumps(data))
    lock_path = tmp_path / "tljh.lock.toml"
    site = f"--mirror=https://example.org/site/={tmp_path.as_uri()}/"
    update(tljh, user_upstream, user_recipes, lock_path, site)
    user_env = lockfile.load(lock_path).components["user-env"]
    assert "fx-widgets<9,>=8.1.5" in user_env.roots
    assert "fx-widgets" in {p.name for p in user_env.packages}
    (file,) = user_env.requirements_files
    assert (file.url, file.sha256) == (url, hashlib.sha256(text.encode()).hexdigest())
    assert tljh("check", "--recipes", user_recipes, "--lock", lock_path).code == 0
    requirements.write_text("fx-widgets\n-r more.txt\n")
    result = tljh("update", "--recipes", user_recipes, "--lock", lock_path,
                  *user_upstream.mirror_flags(), site, "-P", "user-env")
    assert result.code == EXIT_INPUT
    assert f"{url} line 2: pip option '-r' cannot be locked" in result.err
