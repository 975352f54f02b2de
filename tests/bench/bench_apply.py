"""`apply --bundle` against the usual ways of installing the same hub set, in the same run, on
a real bundle (tests/e2e/real_bundle.py: real JupyterHub wheels from PyPI, real traefik,
Node.js and configurable-http-proxy) for this machine's arch:

- tljh-lock apply --bundle, fresh into an empty root, then the no-op re-run, then the upgrade
  to a bundle whose lock differs in one hub package's version (UPGRADE_PIN); the fresh apply
  installs the whole bundle (hub venv, user environment, traefik, Node.js, the proxy, units),
  so its hub step is timed on its own as well, and so is the upgrade's;
- TLJH's way: `python3 -m venv`, then `pip install --upgrade` of the hub's requirement ranges
  from PyPI, cold cache;
- `pip install --require-hashes --no-index` of exactly the bundle's hub wheels;
- `uv pip install --require-hashes --no-index` of the same wheels, cold and warm cache.

Every row starts from a new venv made from the server's python3, and includes making it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.bench.bench_update import timed
from tests.e2e.real_bundle import build_real_bundles
from tljh_lock.apply import engine
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.observe import probe
from tljh_lock.apply.source import BundleSource
from tljh_lock.apply.wheels import target_for, wheel_set
from tljh_lock.bundle import safe_archive
from tljh_lock.cli import main as cli
from tljh_lock.core import runner
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.resolve.pip import uv_binary
from tljh_lock.store.cas import default_path

PYTHON = "/usr/bin/python3"  # the server's python3, as apply uses by default
# pip's own CA bundle does not know this site's TLS-intercepting proxy
CA = {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
ROUNDS = 3
# the upgrade: the old recipes with this extra hub requirement, a release of a hub dependency
# that nothing else pins and that depends on nothing, older than the one the recipes resolve
UPGRADE_PIN = "certifi==2025.1.31"
FRESH_HUB = ("the same fresh apply's hub step alone (venv --without-pip, rehash, the wheels "
             "unpacked in-process on 2 cores, no bytecode)")
UPGRADE_HUB = f"the upgrade's hub step alone (in-process, to the bundle with {UPGRADE_PIN})"
UV_COLD = ("uv venv + uv pip install --require-hashes --no-index of the same wheels, cold "
           "cache")
_LIST = ("import importlib.metadata as m, json; "
         "print(json.dumps([[d.metadata['Name'], d.version] for d in m.distributions()]))")


def _hub_wheels(bundle: Path, into: Path) -> tuple[list[str], list[Path], Path]:
    """The wheels apply installs into the hub venv, copied out of the unpacked bundle into
    `into`; returns the hub's requirement ranges, the wheels built from the source pins (TLJH
    and its test plugin), and a hash-pinned requirements file of every wheel."""
    source = BundleSource(bundle)
    try:
        lock = lockfile.parse(source.verify().decode("utf-8"), str(bundle))
        hub = lock.components["hub"]
        assert isinstance(hub, pip_lock.Component)
        target = target_for(hub.applicable_targets(lock.targets), probe(PYTHON), "hub")
        wheels = wheel_set(hub, target, source, "hub")
        built = [source.built_from_source(pin, pin.name).name for pin in hub.sources]
        into.mkdir()
        lines = []
        for name, artifact in wheels.wheels:
            shutil.copyfile(source.path(artifact), into / name)
            dist, version, _, _ = parse_wheel_filename(name)
            lines.append(f"{dist}=={version} --hash=sha256:{artifact.sha256}\n")
    finally:
        source.close()
    requirements = into.parent / "hub-requirements.txt"
    requirements.write_text("".join(lines))
    return list(hub.roots), [into / name for name in built], requirements


def _installed(python: Path) -> dict[str, str]:
    # -I: not the current directory on sys.path (a checkout's tljh_lock.egg-info would count)
    found = json.loads(runner.run([python, "-I", "-c", _LIST], what="listing a venv").stdout)
    return {canonicalize_name(name): version for name, version in found}


def _differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    return sorted({f"{n} {expected.get(n, '-')} -> {got.get(n, '-')}"
                   for n in expected.keys() | got.keys() if expected.get(n) != got.get(n)})


def _step_seconds(bundle: Path, root: Path, what: str) -> dict[str, float]:
    """An apply in-process, timing its steps from the log line that starts each one."""
    marks: list[tuple[float, str]] = []
    source = BundleSource(bundle)
    try:
        outcome = engine.apply(Layout(root), None, source, PYTHON,
                               log=lambda line: marks.append((time.monotonic(), line)))
    finally:
        source.close()
    # a step's own lines (like "installing 49 locked wheels") do not start one
    starts = [(at, step) for at, line in marks for step in outcome.ran
              if line.startswith(f"{step}: ")]
    ends = [at for at, _ in starts[1:]] + [time.monotonic()]
    seconds = {step: end - at for (at, step), end in zip(starts, ends)}
    print(f"steps of {what}: " + ", ".join(f"{step} {secs:.1f} s"
                                          for step, secs in seconds.items()),
          file=sys.stderr)
    return seconds


def build(work: Path) -> dict[str, Any]:
    """The real bundles (tests/e2e/real_bundle.py) with "pinned", the upgrade's, whose lock is
    checked to pass `tljh-lock check` and to differ from old's in one hub package only."""
    # `make` filled the store with the zipapp's vendored wheels (zipapp --prefetch)
    built = build_real_bundles(work / "real", default_path(), pins=(UPGRADE_PIN,))
    code = cli.main(["-q", "check", "--recipes", str(work / "real" / "recipes-pinned"),
                     "--lock", str(built["locks"]["pinned"])])
    assert code == 0, f"tljh-lock check of the upgrade's lock exited {code}"
    old, pinned = (_hub_packages(built["locks"][label]) for label in ("old", "pinned"))
    changed = {name for name, _ in old ^ pinned}
    assert len(changed) == 1, f"the upgrade's lock changes more than one hub package: {changed}"
    print("the upgrade's lock changes one hub package: " + ", ".join(
        f"{n} {v}" for n, v in sorted(old - pinned)) + " -> " + ", ".join(
        f"{n} {v}" for n, v in sorted(pinned - old)), file=sys.stderr)
    return built


def _hub_packages(lock_path: Path) -> set[tuple[str, str]]:
    hub = lockfile.parse(lock_path.read_text(), str(lock_path)).components["hub"]
    assert isinstance(hub, pip_lock.Component)
    return {(p.name, p.version) for p in hub.packages}


@dataclass(frozen=True)
class HubSet:
    bundle: Path
    upgrade: Path  # the bundle of the upgrade (UPGRADE_PIN)
    pyz: Path  # the bundle's zipapp
    wheels: Path  # a directory of exactly the wheels apply installs into the hub venv
    requirements: Path  # each of them pinned, with its hash
    ranges: list[str]  # the hub's requirement ranges, as TLJH's installer asks for them
    tljh_wheels: list[Path]  # built from the source pins (TLJH, its plugin): not on PyPI
    expected: dict[str, str]  # name -> version

    @classmethod
    def of(cls, built: dict[str, Any], work: Path) -> HubSet:
        bundle = built["bundles"]["old"]
        ranges, tljh_wheels, requirements = _hub_wheels(bundle, work / "wheels")
        expected = {str(canonicalize_name(d)): str(v) for d, v, _, _ in
                    (parse_wheel_filename(p.name) for p in (work / "wheels").iterdir())}
        return cls(bundle, built["bundles"]["pinned"], built["dir"] / safe_archive.PYZ_NAME,
                   work / "wheels", requirements, ranges, tljh_wheels, expected)


def settle() -> None:
    """Wait until no inode freed before now costs a row anything. On an ext4 without a journal
    (this project's hosts) creating a file skips, one block lookup each, the inodes freed in
    the last minute (longer while their table block is not yet written): right after the
    previous round's tens of thousands of files were deleted, creating files spent most of
    its time there (perf: `recently_deleted` under `__ext4_new_inode`), the more the earlier
    a row came in its round. A server's first install follows no such deletion. So neither
    these rounds nor the booted machines' (systemd-nspawn trees on the same file system)
    delete anything until the run ends, and each section starts a minute after the
    deletions before it are written out."""
    os.sync()
    time.sleep(61)


def main(hub: HubSet, work: Path) -> list[tuple[str, float]]:
    """Every row ROUNDS times in directories below `work`; the medians."""
    print(f"hub set: {len(hub.expected)} wheels, "
          f"{sum(p.stat().st_size for p in hub.wheels.iterdir()) / (1 << 20):.1f} MiB; "
          f"bundle {hub.bundle.stat().st_size / (1 << 20):.1f} MiB; median of {ROUNDS} "
          "rounds", file=sys.stderr)
    timings: dict[str, list[float]] = {}
    settle()
    for round_ in range(ROUNDS):
        # kept until the run ends (see settle)
        directory = work / f"round-{round_}"
        directory.mkdir()
        for name, secs in _round(directory, hub):
            timings.setdefault(name, []).append(secs)
    return [(name, statistics.median(values)) for name, values in timings.items()]


def _round(work: Path, hub: HubSet) -> list[tuple[str, float]]:
    """Every row once, each into new directories and with new caches below `work`."""
    home = {"HOME": str(work)}
    # the admin's command: the bundle's zipapp under the server's python3
    apply = [PYTHON, hub.pyz, "apply", "--bundle", hub.bundle, "--root", work / "root"]
    rows = [("tljh-lock apply --bundle, fresh (whole bundle: hub venv, user env, traefik, "
             "Node.js, proxy, units)", timed(apply, home, "tljh-lock apply, fresh")),
            ("tljh-lock apply --bundle, no-op re-run",
             timed(apply, home, "tljh-lock apply, no-op"))]
    again = json.loads(runner.run([*apply, "--json"], env=home, what="apply again").stdout)
    assert again["ran"] == [], f"the re-run was not a no-op: {again['ran']}"
    runner.run([PYTHON, hub.pyz, "verify", "--root", work / "root"], env=home,
               what="tljh-lock verify")
    envs = {"apply": work / "root" / "opt" / "tljh" / "hub" / "bin" / "python3"}
    upgrade = [PYTHON, hub.pyz, "apply", "--bundle", hub.upgrade, "--root", work / "root",
               "--json"]
    started = time.monotonic()
    upgraded = json.loads(runner.run(upgrade, env=home, what="apply, upgrade").stdout)
    rows.append((f"tljh-lock apply --bundle, upgrade to the bundle with {UPGRADE_PIN} (every "
                 "step that changed: " + ", ".join(upgraded["ran"]) + "; restarts)",
                 time.monotonic() - started))
    assert "hub" in upgraded["ran"], upgraded["ran"]
    rows.append((FRESH_HUB, _step_seconds(hub.bundle, work / "root-2", "a fresh apply")["hub"]))
    rows.append((UPGRADE_HUB, _step_seconds(hub.upgrade, work / "root-2", "the upgrade")["hub"]))

    tljh = work / "tljh-style"
    rows.append(("TLJH-style: python3 -m venv + pip install --upgrade of the ranges from "
                 "PyPI, cold cache",
                 timed([PYTHON, "-m", "venv", tljh], home, "python3 -m venv")
                 + timed([tljh / "bin" / "python", "-m", "pip", "install", "--upgrade",
                          "--cache-dir", work / "pip-cache-online", *hub.ranges,
                          *hub.tljh_wheels],
                         {**home, **CA}, "pip install --upgrade from PyPI")))
    envs["TLJH-style"] = tljh / "bin" / "python"

    pip = work / "pip-hashes"
    rows.append(("python3 -m venv + pip install --require-hashes --no-index of the same wheels",
                 timed([PYTHON, "-m", "venv", pip], home, "python3 -m venv")
                 + timed([pip / "bin" / "python", "-m", "pip", "install", "--require-hashes",
                          "--no-index", "--find-links", hub.wheels, "--cache-dir",
                          work / "pip-cache", "-r", hub.requirements],
                         home, "pip install --require-hashes")))
    envs["pip --require-hashes"] = pip / "bin" / "python"

    uv = uv_binary()
    for cache in ("cold", "warm"):  # the warm run reuses the cache the cold one filled
        venv = work / f"uv-{cache}"
        rows.append((UV_COLD.replace("cold", cache),
                     timed([uv, "venv", "--quiet", "--python", PYTHON, venv], home, "uv venv")
                     + timed([uv, "pip", "install", "--quiet", "--python",
                              venv / "bin" / "python", "--no-index", "--find-links",
                              hub.wheels, "--require-hashes", "--cache-dir", work / "uv-cache",
                              "-r", hub.requirements], home, f"uv pip install, {cache} cache")))
        envs[f"uv, {cache} cache"] = venv / "bin" / "python"

    for label, python in envs.items():
        installed = _installed(python)
        if label != "apply":  # `python3 -m venv` seeds setuptools (python 3.11's ensurepip)
            installed.pop("setuptools", None)
        # apply's root is at the upgrade's lock by now
        name, version = UPGRADE_PIN.split("==")
        expected = {**hub.expected, name: version} if label == "apply" else hub.expected
        differences = _differences(expected, installed)
        print(f"{label}: " + ("the bundle's hub set exactly" if not differences else
                              "differs from the bundle: " + ", ".join(differences)),
              file=sys.stderr)
        # the network install may pick newer releases; the others install the same wheels
        assert label == "TLJH-style" or not differences, label
    return rows


def report(rows: list[tuple[str, float]]) -> str:
    base = rows[0][1]
    lines = ["| command | seconds | time relative to tljh-lock apply, fresh |",
             "| --- | ---: | ---: |"]
    lines += [f"| {name} | {secs:.2f} | {secs / base:.2f}x |" for name, secs in rows]
    by_name = dict(rows)
    lines += ["", f"- fresh hub step / uv cold: {by_name[FRESH_HUB] / by_name[UV_COLD]:.2f}x "
              "(acceptance: at most 1.0x)",
              f"- upgrade hub step / fresh hub step: "
              f"{by_name[UPGRADE_HUB] / by_name[FRESH_HUB]:.2f}x (acceptance: at most 0.3x)"]
    return "\n".join(lines)
