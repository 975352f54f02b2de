"""Wheels built offline from the sdist-only package and the TLJH source pin of the fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.store.test_fetch import fetcher_for, scenario_lock
from tests.upstream import FixtureUpstream, build_wheel, generate_hub_scenario
from tljh_lock.core import runner
from tljh_lock.core.errors import TljhLockError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact
from tljh_lock.store import build_wheels
from tljh_lock.store.cas import SourceRecord
from tljh_lock.store.fetch import fetch_lock


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("build")
    facts = generate_hub_scenario(root / "upstream")
    lock = scenario_lock(facts)
    with FixtureUpstream(root / "upstream") as upstream:
        fetcher = fetcher_for(upstream, root / "store")
        _, records = fetch_lock(lock, "aarch64", fetcher)
        upstream.stop()  # building is offline
        wheels = build_wheels.build(lock, "aarch64", fetcher, records)
    return {"root": root, "facts": facts, "lock": lock, "fetcher": fetcher, "records": records,
            "wheels": wheels}


def test_sdist_and_source_become_wheels(built: dict[str, Any]) -> None:
    by_name = {b.wheel.name: b for b in built["wheels"]}
    assert set(by_name) == {"fx_otp-1.0.1-py3-none-any.whl",
                            "the_littlest_jupyterhub-2.0.0-py3-none-any.whl"}
    facts = built["facts"]
    otp = by_name["fx_otp-1.0.1-py3-none-any.whl"]
    assert otp.source_sha256 == facts["files"]["fx_otp-1.0.1.tar.gz"]["sha256"]
    tljh = by_name["the_littlest_jupyterhub-2.0.0-py3-none-any.whl"]
    assert tljh.source_sha256 == facts["tljh"]["sha256"]
    store = built["fetcher"].store
    for item in built["wheels"]:
        assert store.has(item.wheel.sha256, item.wheel.size)


def test_built_wheel_is_reproducible(built: dict[str, Any], tmp_path: Path) -> None:
    """Same bytes as the fixture's own writer produces, independently of the build's time."""
    otp = next(b for b in built["wheels"] if b.wheel.name.startswith("fx_otp"))
    direct = build_wheel(tmp_path, "fx-otp", "1.0.1", requires_dist=("fx-web",))
    assert built["fetcher"].store.path(otp.wheel.sha256).read_bytes() == direct.read_bytes()


def test_second_build_comes_from_the_cache(built: dict[str, Any],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("built again although the store has the wheels")

    monkeypatch.setattr(runner, "run", no_subprocess)
    again = build_wheels.build(built["lock"], "aarch64", built["fetcher"], built["records"])
    assert again == built["wheels"]


def test_unfetched_source_is_an_error(built: dict[str, Any]) -> None:
    with pytest.raises(TljhLockError, match="not fetched"):
        build_wheels.build(built["lock"], "aarch64", built["fetcher"], [])


def test_compiled_wheel_for_another_platform_is_refused() -> None:
    targets = (Target("debian-12-aarch64", "3.11.2", "2.36", "aarch64"),)
    item = build_wheels._Input("fast-1.0.tar.gz", "0" * 64, False, "0" * 64, None,
                                ("fast", "1.0"), targets)
    compiled = Artifact("fast-1.0-cp311-cp311-linux_x86_64.whl", "", 1, "1" * 64)
    with pytest.raises(TljhLockError, match="does not install on debian-12-aarch64"):
        build_wheels._check_installable(item, compiled)
    build_wheels._check_installable(item, Artifact("fast-1.0-py3-none-any.whl", "", 1, "1" * 64))


def test_build_package_without_a_wheel_is_an_error(built: dict[str, Any]) -> None:
    hub = built["lock"].components["hub"]
    sdist_only = type(hub.build_packages[0])(
        "fixture-backend", "1.0", sdist=Artifact("fixture_backend-1.0.tar.gz", "", 1, "2" * 64))
    hub_without_wheels = type(hub)(hub.recipe, hub.recipe_hash, hub.index, hub.roots,
                                   build_packages=(sdist_only,))
    with pytest.raises(TljhLockError, match="has no wheel for python"):
        build_wheels.build_requirements(hub_without_wheels, build_wheels.build_target())


def test_a_source_declaring_an_unnormalized_version_is_matched_to_its_wheel() -> None:
    """TLJH's default branch declares version "2.0.1.dev"; setuptools names the wheel
    "2.0.1.dev0", and the build must accept it as that source's wheel."""
    target = Target("debian-12-x86_64", "3.11.2", "2.36", "x86_64")
    source = pip_lock.Source("the-littlest-jupyterhub", "2.0.1.dev",
                             "https://example.org/a.tar.gz", "8" * 40, "h1:x", (), ())
    hub = pip_lock.Component("hub", "0" * 64, "https://pypi.org/simple/", (), (source,))
    record = SourceRecord(source.name, source.commit, "h1:x", "9" * 64, 1)
    [item] = build_wheels._inputs(hub, [target], "x86_64", {(source.name, source.commit): record})
    assert item.project == ("the-littlest-jupyterhub", "2.0.1.dev0")
