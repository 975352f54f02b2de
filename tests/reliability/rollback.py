"""Rollback and mix-and-match: a bundle carrying an older lock, a lock made older by a version
the downgrade rule compares, and locks whose hashes were edited to point at another valid
artifact and resealed (`dump_lock` recomputes every content-hash, as an attacker editing a
lock would). The last kind cannot be told from a genuine lock by its content-hash: the
question is whether the wrong file is installed silently."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from tests.reliability.harness import Result, World, clear, error_line
from tests.reliability.inputs import _hub, _with_hub
from tests.reliability.manifest import compare
from tests.support import apply_scenario as scenario
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import release as release_lock
from tljh_lock.lock.model import Artifact, Lock
from tljh_lock.resolve.write import dumps as dump_lock

# Cases that show a weakness of the tool, reported here until it is fixed; when one stops
# reproducing, the run fails until it is taken off this list.
KNOWN: dict[str, str] = {}  # label -> the weakness


def _first_line(result: subprocess.CompletedProcess[str]) -> str:
    return (error_line(result.stderr) or "")[:220]


def _installed(world: World, package: str) -> str:
    found = sorted(p.name for p in world.root.glob(
        f"opt/tljh/hub/lib/python3*/site-packages/{package.replace('-', '_')}-*.dist-info"))
    return ", ".join(found) or "nothing"


def _upgraded(world: World) -> None:
    world.reset("old")
    result = world.run(world.apply_argv("new"))
    assert result.returncode == 0, result.stderr


def older_bundle(world: World) -> list[Result]:
    results = []
    _upgraded(world)
    before = world.manifest()
    refused = world.run(world.apply_argv("old"))
    loss = compare(before, world.manifest())
    ok = refused.returncode == 1 and "older than the one applied" in refused.stderr and loss.clean
    results.append(Result("rollback", "a bundle carrying an older lock (an earlier generation's)",
                          ok, f"exit {refused.returncode}: {_first_line(refused)}" +
                          ("" if loss.clean else f"; root changed: {loss.describe()}"),
                          faults=1 if ok else 0, files_lost=loss.files_lost,
                          bytes_lost=loss.bytes_lost))
    allowed = world.run(world.apply_argv("old", "--allow-downgrade"))
    hub = world.manifest()["opt/tljh/hub"].digest
    verify = world.run(world.tool("verify", "--root", world.root))
    ok = allowed.returncode == 0 and hub == world.references["old"]["opt/tljh/hub"].digest \
        and verify.returncode == 0
    results.append(Result("rollback", "the same with --allow-downgrade", ok,
                          f"exit {allowed.returncode}, /opt/tljh/hub -> {hub} (the old "
                          f"generation's, kept), verify exit {verify.returncode}"))
    _upgraded(world)
    rolled = world.run(world.tool("rollback", "--root", world.root))
    hub = world.manifest()["opt/tljh/hub"].digest
    ok = rolled.returncode == 0 and hub == world.references["old"]["opt/tljh/hub"].digest
    results.append(Result("rollback", "`rollback` after the upgrade", ok,
                          f"exit {rolled.returncode}, /opt/tljh/hub -> {hub}"))
    clear(world.tmp)
    return results


def _tampered(world: World, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    path = world.work / "tampered" / f"{name}.lock.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(dump_lock(change(lockfile.load(world.fixture.locks["new"]))))
    return path


def _swap_wheel(lock: Lock, package: str, other: Artifact) -> Lock:
    hub = _hub(lock)
    packages = tuple(
        dataclasses.replace(p, wheels=tuple(dataclasses.replace(w, sha256=other.sha256,
                                                                size=other.size)
                                            for w in p.wheels)) if p.name == package else p
        for p in hub.packages)
    return _with_hub(lock, packages=packages)


def _older_traefik(lock: Lock) -> Lock:
    traefik = lock.components["traefik"]
    assert isinstance(traefik, release_lock.Component)
    return Lock(lock.targets, lock.targets_hash, {
        **lock.components, "traefik": dataclasses.replace(traefik, version="3.0.0",
                                                          tag="v3.0.0")})


def _node_is_traefik(lock: Lock) -> Lock:
    node, traefik = lock.components["nodejs"], lock.components["traefik"]
    assert isinstance(node, release_lock.Component) and isinstance(traefik, release_lock.Component)
    files = tuple(dataclasses.replace(f, artifact=dataclasses.replace(
        f.artifact, sha256=traefik.arch_files[0].artifact.sha256,
        size=traefik.arch_files[0].artifact.size)) for f in node.arch_files)
    return Lock(lock.targets, lock.targets_hash,
                {**lock.components, "nodejs": dataclasses.replace(node, arch_files=files)})


def _wheel(world: World, label: str, package: str) -> Artifact:
    lock = lockfile.load(world.fixture.locks[label])
    return next(w for p in _hub(lock).packages if p.name == package for w in p.wheels)


def mix_and_match(world: World) -> list[Result]:
    web_1_0 = _fx_web_1_0(world)
    cases = {
        "fx-hub 1.1.0's hashes edited to the fx-hub 1.0.0 wheel's": (
            "swap-hub", "fx-hub",
            lambda lock: _swap_wheel(lock, "fx-hub", _wheel(world, "old", "fx-hub"))),
        "fx-web 1.1's hashes edited to the fx-web 1.0 wheel's (same size)": (
            "swap-web", "fx-web", lambda lock: _swap_wheel(lock, "fx-web", web_1_0)),
        "Node.js's hashes edited to the traefik tarball's": ("swap-node", "", _node_is_traefik),
        "traefik's version lowered to 3.0.0 (the downgrade rule compares it)": (
            "older-traefik", "", _older_traefik),
    }
    # the attacker has every file: a store holding them serves the bundler
    attacker = (world.fixture.store.as_uri() + "/",)
    results = []
    for name, (label, package, change) in cases.items():
        path = _tampered(world, label, change)
        for via in ("--lock", "--bundle (re-bundled by the attacker)"):
            _upgraded(world) if label == "older-traefik" else world.reset("old")
            before = world.manifest()
            if via == "--lock":
                argv = world.tool("apply", "--lock", path, "--store", world.fixture.store,
                                  "--root", world.root)
            else:
                world.fixture.locks[label] = path
                bundle = world.work / "tampered" / f"{label}.bundle"
                if not bundle.exists():
                    try:
                        scenario.build_bundle(world.fixture, label, bundle, attacker)
                    except Exception as exc:  # noqa: BLE001 - the bundler refusing is an answer
                        results.append(Result("rollback", f"{name}, {via}", True,
                                              f"`bundle` refuses to pack it: {exc}", faults=1))
                        continue
                argv = world.tool("apply", "--bundle", bundle, "--root", world.root)
            result = world.run(argv)
            loss = compare(before, world.manifest())
            if result.returncode == 0:
                ok, what = False, "INSTALLED silently: exit 0" + (
                    f", the hub now has {_installed(world, package)}" if package else "")
            else:
                ok = loss.clean or loss.only_kept_builds(world.manifest())
                what = f"refused, exit {result.returncode}: {_first_line(result)}"
                if not loss.clean:
                    what += "; the previous generation stays in use" + (
                        " (the directories built before the failure are kept, unused)" if ok
                        else f"; root changed: {loss.describe()}")
            if ok and label in KNOWN:
                ok, what = False, f"{what}; the known weakness no longer reproduces: take " \
                                  f"{label!r} off KNOWN in {__name__}"
                KNOWN.pop(label)  # fail this case, as a fix should be recorded
            results.append(Result("rollback", f"{name}, {via}", ok, what, faults=1 if ok else 0,
                                  known="" if ok else KNOWN.get(label, "")))
            clear(world.tmp)
    return results


def _fx_web_1_0(world: World) -> Artifact:
    """The fx-web 1.0 wheel (in no lock), put into the fixture store."""
    found = next(world.fixture.upstream.rglob("fx_web-1.0-py3-none-any.whl"))
    return scenario.add_artifact(world.fixture.store, found, "https://unused/")


def run(world: World, log) -> list[Result]:  # type: ignore[no-untyped-def]
    results = [*older_bundle(world), *mix_and_match(world)]
    for result in results:
        log(result.line())
    return results
