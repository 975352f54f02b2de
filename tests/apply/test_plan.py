"""`plan` on its own: a lock and an observed server in, the steps out. No root, sudo, node or
disk: the servers here are `Observed` values, as `observe` would have read them."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from tljh_lock.apply import layout as L
from tljh_lock.apply import render
from tljh_lock.apply.observe import Interpreter, Observed
from tljh_lock.apply.plan import (
    JUPYTERHUB_UNIT,
    Plan,
    check_applicable,
    downgrade_reasons,
    plan,
)
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.apply.state import Generation, State
from tljh_lock.apply.steps import (
    BuildStep,
    FileStep,
    GroupStep,
    HubBuild,
    PluginsStep,
    ProxyBuild,
    RetireProxyStep,
    TraefikConfigStep,
    UserEnvStep,
)
from tljh_lock.apply.tree import Seen
from tljh_lock.core.errors import InputError, TljhLockError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import npm, pip, release
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.lock.plugins import Plugin

TARGET = Target("debian-12-x86_64", "3.11.2", "2.36", "x86_64")
USER_TARGET = Target("miniforge-x86_64", "3.12.7", "2.17", "x86_64")
PYTHON = Interpreter("/usr/bin/python3", "3.11.2", "x86_64", "2.36")
FILES = "https://files.pythonhosted.org/packages/"


def artifact(name: str, url: str = FILES) -> Artifact:
    return Artifact(name, url + name, 1000, hashlib.sha256(name.encode()).hexdigest())


def wheel_package(name: str, version: str) -> pip.Package:
    return pip.Package(name, version, wheels=(artifact(f"{name}-{version}-py3-none-any.whl"),))


def pip_component(recipe: str, *packages: pip.Package, targets: tuple[Target, ...] = ()
                  ) -> pip.Component:
    return pip.Component(recipe=recipe, recipe_hash="sha256:0", index="https://pypi.org/simple/",
                         roots=tuple(p.name for p in packages), packages=packages,
                         targets=targets)


def release_component(name: str, version: str, file: str, upstream: str = "github",
                      top_dir: str | None = None) -> release.Component:
    return release.Component(
        recipe=f"{name}.toml", recipe_hash="sha256:0", upstream=upstream,
        source="https://nodejs.org/dist/" if upstream == "nodejs" else f"{name}/{name}",
        version=version, tag=f"v{version}" if upstream == "github" else None,
        arch_files=(release.ReleaseFile("x86_64", artifact(file), top_dir),))


PROXY_TGZ = Artifact("configurable-http-proxy-4.6.3.tgz",
                     "https://registry.npmjs.org/configurable-http-proxy/-/"
                     "configurable-http-proxy-4.6.3.tgz", 2000, "ab" * 32)
PROXY = npm.Component(
    recipe="configurable-http-proxy.toml", recipe_hash="sha256:0",
    registry="https://registry.npmjs.org/", node="22.12.0", name="tljh-chp",
    dependencies=(("configurable-http-proxy", "^4.6"),),
    resolves=(("configurable-http-proxy", "4.6.3"),),
    packages=(npm.Package("node_modules/configurable-http-proxy", "configurable-http-proxy",
                          "4.6.3", "sha512-" + "A" * 86 + "==", PROXY_TGZ),))


def full_lock(**changes: object) -> Lock:
    components = {
        "hub": pip_component("hub.toml", wheel_package("pip", "24.3.1"),
                             wheel_package("jupyterhub", "5.2.1")),
        "traefik": release_component("traefik", "3.6.5", "traefik_v3.6.5_linux_amd64.tar.gz"),
        "nodejs": release_component("nodejs", "22.12.0", "node-v22.12.0-linux-x64.tar.xz",
                                    "nodejs", "node-v22.12.0-linux-x64"),
        "configurable-http-proxy": PROXY,
        "miniforge": release_component("miniforge", "24.11.0", "Miniforge3-Linux-x86_64.sh"),
        "user-env": pip_component("user-env.toml", wheel_package("jupyterlab", "4.3.4"),
                                  targets=(USER_TARGET,)),
    }
    components.update(changes)  # type: ignore[arg-type]
    return Lock([TARGET], "sha256:0", {k: v for k, v in components.items() if v is not None})


FRESH = Observed(state=State(), markers={}, files={}, links={}, groups=frozenset(),
                 gshadow=None, residue=(), token=False, enabled=frozenset(),
                 tljh_paths=("/opt/tljh/state mode 0700",), traefik_rendered_by=None,
                 proxy_unit=False)
NOTHING_BUILT = ArtifactSource(None)


def as_applied(planned: Plan) -> Observed:
    """The server after `planned` ran: what observe would then read."""
    markers = {step.directory: step.key for step in planned.steps
               if isinstance(step, BuildStep)}
    (user,) = (step for step in planned.steps if isinstance(step, UserEnvStep))
    markers["user"] = user.key
    (traefik,) = (step for step in planned.steps if isinstance(step, TraefikConfigStep))
    return Observed(
        state=State(), markers=markers,
        files={f.path: (hashlib.sha256(f.data).hexdigest(), f.mode) for f in render.render_all()},
        links={L.HUB: planned.dirs["hub"], L.NODE: planned.dirs["node"],
               L.PROXY: planned.dirs["proxy"], L.TLJH_CONFIG_LINK: f"{L.HUB}/bin/tljh-config"},
        groups=frozenset({L.USERS_GROUP, L.ADMINS_GROUP}), gshadow=None, residue=(),
        token=True, enabled=frozenset(L.UNITS), tljh_paths=(), traefik_rendered_by=traefik.key,
        proxy_unit=True, installed={"user": user_set(user)})


def user_set(step: UserEnvStep) -> dict[str, str]:
    """What the user environment holds once `step` ran: its wheels."""
    assert step.wheels is not None
    found = {}
    for name, _ in step.wheels.wheels:
        project, version = parse_wheel_filename(name)[:2]
        found[str(project)] = str(version)
    return found


def test_a_fresh_server_runs_every_step() -> None:
    planned = plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    assert planned.pending == planned.steps
    ids = [step.id for step in planned.steps]
    assert ids[:4] == ["hub", "node", "proxy", "user-env"]
    assert ids[4:8] == [f"group:{L.USERS_GROUP}", f"group:{L.ADMINS_GROUP}", "tljh-paths",
                        "proxy-token"]
    # TLJH renders traefik's configuration before the links move to the new hub
    assert ids.index("tljh-traefik") < ids.index("link:/opt/tljh/hub")
    assert ids[-1] == "enable"
    assert {f"file:{f.path}" for f in render.render_all()} <= set(ids)
    assert {"link:/opt/tljh/hub", "link:/opt/tljh/node", "link:/opt/tljh/proxy",
            "link:/usr/bin/tljh-config"} <= set(ids)
    assert sorted(planned.dirs) == ["hub", "node", "proxy"]
    for role, directory in planned.dirs.items():
        assert directory.startswith(f"{role}.") and len(directory) == len(role) + 17
    assert planned.versions == {"jupyterhub": "5.2.1", "traefik": "3.6.5", "nodejs": "22.12.0",
                                "configurable-http-proxy": "4.6.3"}
    hub = planned.steps[0]
    assert isinstance(hub, HubBuild) and hub.wheels is not None
    assert "pip-24.3.1-py3-none-any.whl" in [name for name, _ in hub.wheels.wheels]
    assert hub.traefik is not None and hub.traefik[1] == "traefik"
    proxy = planned.steps[2]
    assert isinstance(proxy, ProxyBuild) and proxy.tarballs == (PROXY_TGZ,)
    assert [name for name, _ in proxy.project] == ["package-lock.json", "package.json"]
    # a first install installs the user set; nothing is installed "again"
    assert "again" not in planned.steps[3].summary


def test_a_locked_distribution_gone_from_the_user_environment_is_installed_again() -> None:
    lock = full_lock()
    applied = as_applied(plan(lock, "0" * 64, FRESH, PYTHON, NOTHING_BUILT))
    removed = dataclasses.replace(applied, installed={"user": {"pip": "24.3.1"}})
    [user] = plan(lock, "0" * 64, removed, PYTHON, NOTHING_BUILT).pending
    assert user.id == "user-env" and user.summary.endswith("(again: jupyterlab 4.3.4)")


def test_a_server_as_applied_runs_nothing_and_planning_is_repeatable() -> None:
    lock = full_lock()
    planned = plan(lock, "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    applied = as_applied(planned)
    again = plan(lock, "0" * 64, applied, PYTHON, NOTHING_BUILT)
    assert again.pending == []
    assert [(s.id, s.key) for s in again.steps] == [(s.id, s.key) for s in planned.steps]
    assert plan(lock, "0" * 64, applied, PYTHON, NOTHING_BUILT) == again


def test_a_changed_build_is_made_again_beside_it_and_a_pip_install_refused() -> None:
    lock = full_lock()
    planned = plan(lock, "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    applied = as_applied(planned)
    hub, node = planned.dirs["hub"], planned.dirs["node"]
    built = {hub: Seen("s1", "sha256:hub"), node: Seen("s2", "sha256:node")}
    recorded = dataclasses.replace(applied, trees=built, state=State(
        trees={name: seen.tree for name, seen in built.items()}))
    assert plan(lock, "0" * 64, recorded, PYTHON, NOTHING_BUILT).pending == []
    changed = dataclasses.replace(recorded, trees={**built, node: Seen("s3", "sha256:other")})
    again = plan(lock, "0" * 64, changed, PYTHON, NOTHING_BUILT)
    # Node.js again, as node.<key>.1; the proxy (built with that Node.js) and the link follow
    assert again.dirs["node"] == f"{node}.1" and again.dirs["hub"] == hub
    assert [s.id for s in again.pending] == ["node", "proxy", "link:/opt/tljh/node",
                                             "link:/opt/tljh/proxy"]
    assert again.refusals == []
    # once built and recorded, the new one is reused
    rebuilt = dataclasses.replace(
        changed, markers={**changed.markers, f"{node}.1": again.steps[1].key},
        trees={**changed.trees, f"{node}.1": Seen("s4", "sha256:node")})
    rebuilt = dataclasses.replace(rebuilt, state=State(trees={
        **rebuilt.state.trees, f"{node}.1": "sha256:node"}))
    assert plan(lock, "0" * 64, rebuilt, PYTHON, NOTHING_BUILT).dirs["node"] == f"{node}.1"
    # a changed hub that holds a distribution the lock does not: refused, named
    pip_installed = dataclasses.replace(recorded, trees={**built, hub: Seen("s5", "sha256:x")},
                                        installed={**recorded.installed,
                                                   hub: {"jupyterhub": "5.2.1", "pip": "24.3.1",
                                                         "fx-plugin": "0.1"}})
    refused = plan(lock, "0" * 64, pip_installed, PYTHON, NOTHING_BUILT)
    assert refused.dirs["hub"] == f"{hub}.1"
    assert refused.refusals == [f"/opt/tljh/{hub} holds fx-plugin 0.1, which the lock does not "
                                "(a pip install into the hub environment?); rebuilding it from "
                                "the lock would leave them out"]


def test_drift_reruns_only_what_drifted_and_names_the_units_to_restart() -> None:
    planned = plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    unit = f"{L.UNIT_DIR}/traefik.service"
    applied = as_applied(planned)
    edited = dataclasses.replace(applied, files={**applied.files, unit: ("0" * 64, 0o644)})
    pending = plan(full_lock(), "0" * 64, edited, PYTHON, NOTHING_BUILT).pending
    assert [step.id for step in pending] == [f"file:{unit}"]
    assert pending[0].restarts == ("traefik.service",)
    loose = dataclasses.replace(applied, files={**applied.files, L.SUDOERS: (
        applied.files[L.SUDOERS][0], 0o644)})
    pending = plan(full_lock(), "0" * 64, loose, PYTHON, NOTHING_BUILT).pending
    assert [step.id for step in pending] == [f"file:{L.SUDOERS}"]
    assert isinstance(pending[0], FileStep) and pending[0].file is not None
    assert pending[0].file.mode == 0o440


def test_a_killed_groupadd_leaves_the_groups_to_complete() -> None:
    planned = plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    applied = as_applied(planned)
    for broken in (dataclasses.replace(applied, residue=(Path("/etc/group.lock"),)),
                   dataclasses.replace(applied, gshadow=frozenset({L.USERS_GROUP}))):
        pending = plan(full_lock(), "0" * 64, broken, PYTHON, NOTHING_BUILT).pending
        assert {step.id for step in pending} <= {f"group:{L.USERS_GROUP}",
                                                 f"group:{L.ADMINS_GROUP}"}
        assert pending and all(isinstance(step, GroupStep) for step in pending)


def test_a_new_traefik_rebuilds_the_hub_and_nothing_else() -> None:
    before = plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    newer = release_component("traefik", "3.6.6", "traefik_v3.6.6_linux_amd64.tar.gz")
    after = plan(full_lock(traefik=newer), "1" * 64, as_applied(before), PYTHON, NOTHING_BUILT)
    assert after.dirs["hub"] != before.dirs["hub"]
    assert (after.dirs["node"], after.dirs["proxy"]) == (before.dirs["node"], before.dirs["proxy"])
    # the new hub's TLJH renders traefik's configuration again, as its installer would
    assert [step.id for step in after.pending] == ["hub", "tljh-traefik", "link:/opt/tljh/hub"]


def test_tljh_paths_with_loose_modes_are_tightened_and_nothing_else() -> None:
    applied = as_applied(plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT))
    loose = dataclasses.replace(applied, tljh_paths=("/opt/tljh/config mode 0700",))
    pending = plan(full_lock(), "0" * 64, loose, PYTHON, NOTHING_BUILT).pending
    assert [step.id for step in pending] == ["tljh-paths"]


def test_without_the_proxy_tljh_two_units_and_the_proxy_unit_retired() -> None:
    three = as_applied(plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT))
    planned = plan(full_lock(nodejs=None, **{"configurable-http-proxy": None}), "1" * 64, three,
                   PYTHON, NOTHING_BUILT)
    ids = [step.id for step in planned.steps]
    assert "proxy-token" not in ids and f"file:{L.UNIT_DIR}/configurable-http-proxy.service" \
        not in ids
    enable = planned.steps[-1]
    assert enable.summary == "enable jupyterhub.service, traefik.service"
    retire = [step for step in planned.pending if isinstance(step, RetireProxyStep)]
    assert len(retire) == 1 and not retire[0].done
    traefik = next(step for step in planned.steps if isinstance(step, TraefikConfigStep))
    # TLJH's render empties the hub's routes: without the proxy the hub restarts and writes them
    assert "jupyterhub.service" in traefik.restarts


def test_sdists_and_source_pins_install_the_wheels_built_from_them() -> None:
    sdist = artifact("fx-otp-1.0.tar.gz")
    built = Artifact("fx_otp-1.0-py3-none-any.whl", "", 900, "cd" * 32)
    hub = pip_component("hub.toml", wheel_package("pip", "24.3.1"),
                        pip.Package("fx-otp", "1.0", sdist=sdist))
    with pytest.raises(TljhLockError, match="needs a build"):
        plan(full_lock(hub=hub), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    planned = plan(full_lock(hub=hub), "0" * 64, FRESH, PYTHON,
                   ArtifactSource(None, {sdist.sha256: built}))
    step = planned.steps[0]
    assert isinstance(step, HubBuild) and step.wheels is not None
    assert (built.name, built) in step.wheels.wheels


TLJH_PIN = pip.Source("the-littlest-jupyterhub", "2.0.0", "https://example.org/tljh.tar.gz",
                      "a" * 40, "h1:x", (), ())
PLUGIN_PIN = dataclasses.replace(TLJH_PIN, name="tljh-simplest", version="0.0.0",
                                 subdirectory="integration-tests/plugins/simplest")
SIMPLEST = Plugin("tljh-simplest", ("there",), ("simplejson",), apt=("sl",))


def plugin_lock(hub_packages: tuple[pip.Package, ...] = ()) -> tuple[Lock, ArtifactSource]:
    """A hub with TLJH and its test plugin, two pins of one archive, each with its wheel."""
    hub = pip_component("hub.toml", wheel_package("pip", "24.3.1"),
                        wheel_package("there", "0.0.12"), *hub_packages)
    hub = dataclasses.replace(hub, sources=(TLJH_PIN, PLUGIN_PIN), plugins=(SIMPLEST,))
    user = pip_component("user-env.toml", wheel_package("simplejson", "4.3.0"),
                         targets=(USER_TARGET,))
    built = {TLJH_PIN.build_input("ee" * 32): artifact("the_littlest_jupyterhub-2.0.0-py3-none"
                                                        "-any.whl", ""),
             PLUGIN_PIN.build_input("ee" * 32): artifact("tljh_simplest-0.0.0-py3-none-any.whl",
                                                          "")}
    sources = {f"{pin.name}-{pin.commit}": "ee" * 32 for pin in (TLJH_PIN, PLUGIN_PIN)}
    return full_lock(hub=hub, **{"user-env": user}), ArtifactSource(None, built, sources)


def test_plugins_are_checked_in_the_hub_and_their_hooks_run_once_before_the_links() -> None:
    lock, built = plugin_lock()
    planned = plan(lock, "0" * 64, FRESH, PYTHON, built)
    hub = planned.steps[0]
    assert isinstance(hub, HubBuild) and hub.wheels is not None
    assert {name for name, _ in hub.wheels.wheels} >= {
        "the_littlest_jupyterhub-2.0.0-py3-none-any.whl", "tljh_simplest-0.0.0-py3-none-any.whl"}
    assert hub.plugins == (SIMPLEST,)
    assert dict(hub.hub_versions)["there"] == "0.0.12"
    assert dict(hub.user_versions or ())["simplejson"] == "4.3.0"
    ids = [step.id for step in planned.steps]
    assert ids.index("tljh-traefik") < ids.index("tljh-plugins") < ids.index(
        "link:/opt/tljh/hub")
    (hooks,) = (s for s in planned.steps if isinstance(s, PluginsStep))
    assert hooks.python == f"/opt/tljh/{planned.dirs['hub']}/bin/python3"
    assert JUPYTERHUB_UNIT in hooks.restarts
    # done once they ran, whatever the hub environment: a new hub does not run them again
    ran = dataclasses.replace(FRESH, plugins_done=hooks.key)
    other_hub, _ = plugin_lock((wheel_package("requests", "2.32.3"),))
    again = plan(other_hub, "0" * 64, ran, PYTHON, built)
    assert again.dirs["hub"] != planned.dirs["hub"]
    assert next(s for s in again.steps if s.id == "tljh-plugins").done
    without = plan(full_lock(), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)
    assert "tljh-plugins" not in [s.id for s in without.steps]


@pytest.mark.parametrize(("changes", "message"), [
    ({"hub": None}, "no pip component 'hub'"),
    ({"nodejs": None}, "needs Node.js"),
    ({"miniforge": None}, "needs the 'miniforge' installer"),
    ({"traefik": pip_component("traefik.toml")}, "is a pip component, not a release"),
    ({"hub": pip_component("hub.toml", wheel_package("jupyterhub", "5.2.1"))},
     "no pip wheel, and admins manage the environment with pip"),
])
def test_a_lock_it_cannot_install_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        plan(full_lock(**changes), "0" * 64, FRESH, PYTHON, NOTHING_BUILT)


def test_a_python_the_lock_has_no_target_for_is_refused() -> None:
    old = Interpreter("/usr/bin/python3", "3.11.2", "x86_64", "2.31")
    with pytest.raises(InputError, match="no target for python 3.11.2 on x86_64 with glibc 2.31"):
        plan(full_lock(), "0" * 64, FRESH, old, NOTHING_BUILT)


def test_an_unknown_component_is_refused_before_planning() -> None:
    with pytest.raises(InputError, match="cannot apply the component 'extra' \\(pip\\)"):
        check_applicable(full_lock(extra=pip_component("extra.toml")))
    check_applicable(full_lock())


def test_downgrades_are_named() -> None:
    planned = plan(full_lock(), "1" * 64, FRESH, PYTHON, NOTHING_BUILT)
    newer = {**planned.versions, "jupyterhub": "5.3.0"}
    state = State(generations=[Generation(1, "1" * 64, planned.dirs, planned.versions, "t"),
                               Generation(2, "2" * 64, planned.dirs, newer, "t")], current=2)
    assert downgrade_reasons(planned, state) == [
        "jupyterhub 5.3.0 -> 5.2.1",
        "this lock was generation 1, before the current generation 2"]
    assert downgrade_reasons(planned, State()) == []
