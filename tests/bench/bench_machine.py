"""The whole apply on booted Debian 12 machines (tests/e2e/machine.py, the end-to-end tests'
machine) against a TLJH-style online install of the same components on another fresh machine
of the same image, in the same run, rounds interleaved:

- tljh-lock apply --bundle of the real-TLJH bundle, fresh, as an air-gapped admin runs it (the
  bundle's zipapp under the system python3, no network), step by step: each step from apply's
  progress line that starts it to the next one's; the last one includes committing the
  generation and restarting the units, "start" is python's start, the bundle's check and the
  plan; then the no-op re-run, then the upgrade to the bundle whose lock differs in one hub
  package (bench_apply.UPGRADE_PIN), step by step as well;
- TLJH's way on a machine sharing the host's network: `python3 -m venv` and `pip install
  --upgrade` of the hub's requirement ranges from PyPI (with the TLJH and test-plugin wheels
  built from the source pins, which are not on PyPI), the same for the user environment's
  ranges, the traefik and Node.js tarballs unpacked (the bundle's own files: their hosts are
  out of reach here), and `npm install` of configurable-http-proxy with that Node.js's npm
  from the npm registry, all with cold caches. Before the clock starts, python3-venv and
  xz-utils (for Node.js's .tar.xz) are installed with apt (TLJH's installer installs
  python3-venv too; the servers' image lacks both) and the host's resolver and trust store
  are copied in (this site's TLS-intercepting proxy).

Neither side is charged for booting or unpacking its machine.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_apply import UPGRADE_PIN, HubSet, settle
from tests.e2e.machine import BootedMachine, ensure_rootfs
from tests.e2e.real_bundle import ARCH
from tests.e2e.test_apply import wait_for_hub
from tljh_lock.apply.source import BundleSource
from tljh_lock.bundle import safe_archive
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.kinds import release

ROUNDS = 3
PYZ = f"/mnt/bundles/{safe_archive.PYZ_NAME}"
CA = "/etc/ssl/certs/ca-certificates.crt"
# apply's progress lines (standard error), each with the time it arrived; pipefail: apply's
# exit status, not the loop's
STAMPED = ('"$@" 2>&1 >/dev/null | while IFS= read -r line; do '
           'printf "%s %s\\n" "$EPOCHREALTIME" "$line"; done')
FRESH = "tljh-lock apply --bundle, fresh, whole (hub venv, user env, traefik, Node.js, proxy, "\
        "units started)"
TLJH = "TLJH-style online install, whole"
NOOP = "tljh-lock apply --bundle, no-op re-run"


def _apply_stepwise(m: BootedMachine, label: str) -> tuple[float, dict[str, float]]:
    """The whole apply's seconds, and each step's (see the module's docstring)."""
    started = time.time()  # the guest's clock is the host's (no time namespace for it)
    out = m.run(["bash", "-o", "pipefail", "-c", STAMPED, "apply", "python3", PYZ, "apply",
                 "--bundle", f"/mnt/bundles/{label}.bundle"], timeout=900).stdout
    ended = time.time()
    # the steps of the plan, all kept now
    again = json.loads(m.run(["python3", PYZ, "apply", "--bundle", f"/mnt/bundles/{label}.bundle",
                              "--json"], timeout=900).stdout)
    assert again["ran"] == [], f"the re-run was not a no-op: {again['ran']}"
    ids = [step["id"] for step in again["steps"]]
    marks = [(float(at), text) for at, _, text in (line.partition(" ")
                                                   for line in out.splitlines())]
    starts = [(at, step) for at, text in marks for step in ids if text.startswith(f"{step}: ")]
    assert starts, out
    steps = {"start": starts[0][0] - started}
    ends = [at for at, _ in starts[1:]] + [ended]
    steps.update({step: end - at for (at, step), end in zip(starts, ends)})
    return ended - started, steps


def _apply_round(m: BootedMachine) -> dict[str, float]:
    fresh, steps = _apply_stepwise(m, "old")
    rows = {FRESH: fresh, **{f"fresh apply, step {step}": secs for step, secs in steps.items()}}
    started = time.monotonic()
    again = json.loads(m.run(["python3", PYZ, "apply", "--bundle", "/mnt/bundles/old.bundle",
                              "--json"]).stdout)
    rows[NOOP] = time.monotonic() - started
    assert again["ran"] == [], again["ran"]
    wait_for_hub(m)  # what the fresh apply installed runs
    upgrade, steps = _apply_stepwise(m, "pinned")
    rows["tljh-lock apply --bundle, upgrade (one hub package), whole"] = upgrade
    rows.update({f"upgrade, step {step}": secs for step, secs in steps.items()})
    assert "hub" in steps, steps
    wait_for_hub(m)
    name, version = UPGRADE_PIN.split("==")
    got = m.run(["/opt/tljh/hub/bin/python3", "-c", "import importlib.metadata as m, sys; "
                 "print(m.version(sys.argv[1]))", name]).stdout.strip()
    assert got == version, f"{name} {got} after the upgrade, not {version}"
    m.run(["python3", PYZ, "verify"], timeout=600)
    return rows


class _Inputs:
    """What the TLJH-style install takes from outside PyPI and npm, in a directory the machine
    mounts: the TLJH and plugin wheels and the bundle's traefik and Node.js files; with the
    lock's user environment ranges and configurable-http-proxy version."""

    def __init__(self, hub: HubSet, into: Path) -> None:
        into.mkdir()
        for wheel in hub.tljh_wheels:
            shutil.copyfile(wheel, into / wheel.name)
        self.dir, self.hub_ranges = into, hub.ranges
        self.tljh_wheels = [f"/mnt/inputs/{wheel.name}" for wheel in hub.tljh_wheels]
        source = BundleSource(hub.bundle)
        try:
            lock = lockfile.parse(source.verify().decode("utf-8"), str(hub.bundle))
            files = {}
            for name in ("traefik", "nodejs"):
                component = lock.components[name]
                assert isinstance(component, release.Component)
                file = component.file_for(ARCH)
                assert file is not None, f"{name} has no file for {ARCH}"
                shutil.copyfile(source.path(file.artifact), into / file.artifact.name)
                files[name] = file
        finally:
            source.close()
        self.traefik, self.node = files["traefik"].artifact.name, files["nodejs"].artifact.name
        self.node_top = files["nodejs"].top_dir
        user = lock.components["user-env"]
        assert isinstance(user, pip_lock.Component)
        self.user_ranges = list(user.roots)
        proxy = lock.components["configurable-http-proxy"]
        assert isinstance(proxy, npm_lock.Component)
        self.proxy = [f"{name}@{version}" for name, version in proxy.dependencies]


def _tljh_round(m: BootedMachine, inputs: _Inputs) -> dict[str, float]:
    m.copy_in("/etc/resolv.conf", "/etc/resolv.conf", mode=0o644)
    m.copy_in(CA, CA, mode=0o644)
    m.run("apt-get update -q && apt-get install -y -q python3-venv xz-utils", timeout=900,
          env={"DEBIAN_FRONTEND": "noninteractive"})
    pip = {"PIP_CERT": CA}
    node = "/opt/tljh/node"
    strip = ["--strip-components=1"] if inputs.node_top else []
    parts = [
        ("hub: python3 -m venv", ["python3", "-m", "venv", "/opt/tljh/hub"], {}),
        ("hub: pip install --upgrade of the ranges from PyPI",
         ["/opt/tljh/hub/bin/pip", "install", "--upgrade", *inputs.hub_ranges,
          *inputs.tljh_wheels], pip),
        ("user env: python3 -m venv", ["python3", "-m", "venv", "/opt/tljh/user"], {}),
        ("user env: pip install --upgrade of the ranges from PyPI",
         ["/opt/tljh/user/bin/pip", "install", "--upgrade", *inputs.user_ranges], pip),
        ("traefik: tarball unpacked",
         ["tar", "-xf", f"/mnt/inputs/{inputs.traefik}", "-C", "/opt/tljh/hub/bin", "traefik"],
         {}),
        ("Node.js: tarball unpacked",
         ["sh", "-c", 'dir=$1 tarball=$2; shift 2; mkdir -p "$dir" && tar -xf "$tarball" '
          '-C "$dir" "$@"', "sh", node, f"/mnt/inputs/{inputs.node}", *strip], {}),
        ("configurable-http-proxy: npm install from the npm registry",
         [f"{node}/bin/npm", "install", "--no-fund", "--no-audit", "--prefix",
          "/opt/tljh/proxy", *inputs.proxy],
         {"PATH": f"{node}/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_EXTRA_CA_CERTS": CA}),
    ]
    rows = {}
    for what, argv, env in parts:
        started = time.monotonic()
        m.run(argv, env=env, timeout=1800)
        rows[f"TLJH-style, {what}"] = time.monotonic() - started
    m.run(["/opt/tljh/hub/bin/python3", "-c", "import tljh, jupyterhub"])
    m.run(["/opt/tljh/hub/bin/traefik", "version"])
    m.run([f"{node}/bin/node", "/opt/tljh/proxy/node_modules/.bin/configurable-http-proxy",
           "--version"])
    return {TLJH: sum(rows.values()), **rows}


def main(built: dict[str, Any], hub: HubSet, work: Path) -> list[tuple[str, float]]:
    """ROUNDS rounds, each an apply machine then a TLJH-style one; the medians."""
    rootfs = ensure_rootfs()
    inputs = _Inputs(hub, work / "tljh-style-inputs")
    print(f"machines from {rootfs.name}; TLJH-style user ranges: {' '.join(inputs.user_ranges)}; "
          f"proxy: {' '.join(inputs.proxy)}; median of {ROUNDS} rounds", file=sys.stderr)
    timings: dict[str, list[float]] = {}
    settle()
    for _ in range(ROUNDS):
        # each machine's tree is kept until the run ends, as the apply rounds are (settle)
        with BootedMachine(rootfs, work / "machines", {built["dir"]: "/mnt/bundles"},
                           keep=True) as m:
            rows = _apply_round(m)
        print("apply machine: " + ", ".join(f"{k} {v:.1f} s" for k, v in rows.items()),
              file=sys.stderr)
        with BootedMachine(rootfs, work / "machines", {inputs.dir: "/mnt/inputs"},
                           network=(), keep=True) as m:
            rows.update(_tljh_round(m, inputs))
        print("round, both machines: " + ", ".join(f"{k} {v:.1f} s" for k, v in rows.items()),
              file=sys.stderr)
        for name, secs in rows.items():
            timings.setdefault(name, []).append(secs)
    return [(name, statistics.median(values)) for name, values in timings.items()]


def report(rows: list[tuple[str, float]]) -> str:
    lines = ["| what | seconds (median) |", "| --- | ---: |"]
    lines += [f"| {name} | {secs:.2f} |" for name, secs in rows]
    by_name = dict(rows)
    lines += ["", f"- TLJH-style online install / fresh apply: "
              f"{by_name[TLJH] / by_name[FRESH]:.2f}x (acceptance: at least 3x)",
              f"- no-op re-apply: {by_name[NOOP]:.2f} s (acceptance: under 0.5 s)"]
    return "\n".join(lines)
