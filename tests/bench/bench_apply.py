"""`apply --bundle` against the usual ways of installing the same hub set, in the same run, on
a real bundle (tests/e2e/real_bundle.py: real JupyterHub wheels from PyPI, real traefik,
Node.js and configurable-http-proxy) for this machine's arch:

- tljh-lock apply --bundle, fresh into an empty root, then the no-op re-run; the fresh apply
  installs the whole bundle (hub venv, user environment, traefik, Node.js, the proxy, units),
  so its hub step is timed on its own as well;
- TLJH's way: `python3 -m venv`, then `pip install --upgrade` of the hub's requirement ranges
  from PyPI, cold cache;
- `pip install --require-hashes --no-index` of exactly the bundle's hub wheels;
- `uv pip install --require-hashes --no-index` of the same wheels, cold and warm cache.

Every row starts from a new venv made from the server's python3, and includes making it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from tests.bench.bench_update import timed
from tests.e2e.real_bundle import build_real_bundles
from tljh_lock import lockfile, pip_lock, runner, safe_archive
from tljh_lock.apply import engine
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import BundleSource
from tljh_lock.apply.venv import probe, target_for, wheel_set
from tljh_lock.pip_resolve import uv_binary
from tljh_lock.store import default_path

PYTHON = "/usr/bin/python3"  # the server's python3, as apply uses by default
# pip's own CA bundle does not know this site's TLS-intercepting proxy
CA = {"PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}
_LIST = ("import importlib.metadata as m, json; "
         "print(json.dumps([[d.metadata['Name'], d.version] for d in m.distributions()]))")


def _hub_wheels(bundle: Path, into: Path) -> tuple[list[str], Path, Path]:
    """The wheels apply installs into the hub venv, copied out of the unpacked bundle into
    `into`; returns the hub's requirement ranges, the wheel built from the TLJH source pin, and
    a hash-pinned requirements file of every wheel."""
    source = BundleSource(bundle)
    try:
        lock = lockfile.parse(source.lock_file().read_text(encoding="utf-8"), str(bundle))
        hub = lock.components["hub"]
        assert isinstance(hub, pip_lock.Component)
        target = target_for(hub.applicable_targets(lock.targets), probe(PYTHON), "hub")
        wheels = wheel_set(hub, target, source, "hub")
        (pin,) = hub.sources
        tljh = source.built_from_source(pin, "the TLJH stand-in")
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
    return list(hub.roots), into / tljh.name, requirements


def _installed(python: Path) -> dict[str, str]:
    found = json.loads(runner.run([python, "-c", _LIST], what="listing a venv").stdout)
    return {canonicalize_name(name): version for name, version in found}


def _differences(expected: dict[str, str], got: dict[str, str]) -> list[str]:
    return sorted({f"{n} {expected.get(n, '-')} -> {got.get(n, '-')}"
                   for n in expected.keys() | got.keys() if expected.get(n) != got.get(n)})


def _hub_step_seconds(bundle: Path, root: Path) -> float:
    """A fresh apply in-process, timing its steps from the log line that starts each one."""
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
    print("steps of a fresh apply: " + ", ".join(f"{step} {secs:.1f} s"
                                                 for step, secs in seconds.items()),
          file=sys.stderr)
    return seconds["hub"]


def main() -> list[tuple[str, float]]:
    uv = uv_binary()
    with tempfile.TemporaryDirectory(prefix="tljh-bench-apply-") as tmp:
        work = Path(tmp)
        home = {"HOME": str(work)}
        # `make` filled the store with the zipapp's vendored wheels (zipapp --prefetch)
        built = build_real_bundles(work / "real", default_path())
        bundle = built["bundles"]["old"]
        pyz = built["dir"] / safe_archive.PYZ_NAME
        ranges, tljh_wheel, requirements = _hub_wheels(bundle, work / "wheels")
        wheels = work / "wheels"
        expected = {canonicalize_name(d): str(v) for d, v, _, _ in
                    (parse_wheel_filename(p.name) for p in wheels.iterdir())}
        print(f"hub set: {len(expected)} wheels, "
              f"{sum(p.stat().st_size for p in wheels.iterdir()) / (1 << 20):.1f} MiB; "
              f"bundle {bundle.stat().st_size / (1 << 20):.1f} MiB", file=sys.stderr)

        # the admin's command: the bundle's zipapp under the server's python3
        apply = [PYTHON, pyz, "apply", "--bundle", bundle, "--root", work / "root"]
        rows = [("tljh-lock apply --bundle, fresh (whole bundle: hub venv, user env, traefik, "
                 "Node.js, proxy, units)", timed(apply, home, "tljh-lock apply, fresh")),
                ("tljh-lock apply --bundle, no-op re-run",
                 timed(apply, home, "tljh-lock apply, no-op"))]
        again = json.loads(runner.run([*apply, "--json"], env=home, what="apply again").stdout)
        assert again["ran"] == [], f"the re-run was not a no-op: {again['ran']}"
        runner.run([PYTHON, pyz, "verify", "--root", work / "root"], env=home,
                   what="tljh-lock verify")
        envs = {"apply": work / "root" / "opt" / "tljh" / "hub" / "bin" / "python3"}
        rows.append(("the same fresh apply's hub step alone (venv --without-pip, rehash, pip "
                     "from the bundle's pip wheel, --no-compile)",
                     _hub_step_seconds(bundle, work / "root-2")))

        tljh = work / "tljh-style"
        rows.append(("TLJH-style: python3 -m venv + pip install --upgrade of the ranges from "
                     "PyPI, cold cache",
                     timed([PYTHON, "-m", "venv", tljh], home, "python3 -m venv")
                     + timed([tljh / "bin" / "python", "-m", "pip", "install", "--upgrade",
                              "--cache-dir", work / "pip-cache-online", *ranges, tljh_wheel],
                             {**home, **CA}, "pip install --upgrade from PyPI")))
        envs["TLJH-style"] = tljh / "bin" / "python"

        pip = work / "pip-hashes"
        rows.append(("python3 -m venv + pip install --require-hashes --no-index of the same "
                     "wheels",
                     timed([PYTHON, "-m", "venv", pip], home, "python3 -m venv")
                     + timed([pip / "bin" / "python", "-m", "pip", "install", "--require-hashes",
                              "--no-index", "--find-links", wheels, "--cache-dir",
                              work / "pip-cache", "-r", requirements],
                             home, "pip install --require-hashes")))
        envs["pip --require-hashes"] = pip / "bin" / "python"

        for cache in ("cold", "warm"):  # the warm run reuses the cache the cold one filled
            venv = work / f"uv-{cache}"
            rows.append((f"uv venv + uv pip install --require-hashes --no-index of the same "
                         f"wheels, {cache} cache",
                         timed([uv, "venv", "--quiet", "--python", PYTHON, venv], home, "uv venv")
                         + timed([uv, "pip", "install", "--quiet", "--python",
                                  venv / "bin" / "python", "--no-index", "--find-links", wheels,
                                  "--require-hashes", "--cache-dir", work / "uv-cache", "-r",
                                  requirements], home, f"uv pip install, {cache} cache")))
            envs[f"uv, {cache} cache"] = venv / "bin" / "python"

        for label, python in envs.items():
            differences = _differences(expected, _installed(python))
            print(f"{label}: " + ("the bundle's hub set exactly" if not differences else
                                  "differs from the bundle: " + ", ".join(differences)),
                  file=sys.stderr)
            # the network install may pick newer releases; the other ones install the wheels
            assert label == "TLJH-style" or not [d for d in differences
                                                 if not d.startswith("setuptools -")], label
    return rows


def report(rows: list[tuple[str, float]]) -> str:
    base = rows[0][1]
    lines = ["| command | seconds | time relative to tljh-lock apply, fresh |",
             "| --- | ---: | ---: |"]
    lines += [f"| {name} | {secs:.2f} | {secs / base:.2f}x |" for name, secs in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
