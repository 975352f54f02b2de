"""`fetch` against a raw copy of the same bytes with `curl`, in the same run, from one local
mirror: the fixture upstream's hub scenario plus generated multi-megabyte wheels.

tljh-lock fetch does more than copy: it bounds every read by the declared size, hashes, fsyncs
each file and renames it into the store, after starting python and selecting the lock's files
for every target. The ratios say what that costs; the full-store row is the fixed part.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.store.test_fetch import scenario_lock
from tests.upstream import FixtureUpstream, generate_hub_scenario
from tljh_lock.lock.model import Artifact
from tljh_lock.resolve.write import dumps as dump_lock

REPO = Path(__file__).resolve().parents[2]
BLOBS = [1 << 20] * 16 + [8 << 20] * 2  # 32 MiB in 18 files, besides the scenario's own
ROUNDS = 3

def _blobs(root: Path) -> list[Artifact]:
    rng = random.Random(0)  # incompressible, and the same every run
    found = []
    for index, size in enumerate(BLOBS):
        name = f"fx_blob{index}-1.0-py3-none-any.whl"
        path = root / "files.pythonhosted.org" / "packages" / "bench" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        path.write_bytes(data)
        found.append(Artifact(name, f"https://files.pythonhosted.org/packages/bench/{name}",
                              size, hashlib.sha256(data).hexdigest()))
    return found


def _timed(argv: list[str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd),
                        "PYTHONPATH": str(REPO)})
    return time.monotonic() - started


def main() -> list[tuple[str, float]]:
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("bench_fetch needs curl (Debian package curl)")
    with tempfile.TemporaryDirectory(prefix="tljh-bench-fetch-") as tmp:
        work = Path(tmp)
        facts = generate_hub_scenario(work / "upstream")
        lock = scenario_lock(facts, extra=tuple(_blobs(work / "upstream")))
        (work / "tljh.lock.toml").write_text(dump_lock(lock))
        tljh = facts["tljh"]  # fetch also gets the source archive: so does curl
        artifacts = [*lock.artifacts(None),
                     Artifact("tljh.tar.gz", tljh["archive_url"], tljh["size"], tljh["sha256"])]
        total = sum(a.size for a in artifacts)
        timings: dict[str, list[float]] = {}
        with FixtureUpstream(work / "upstream") as upstream:
            mirrors = [f"--mirror={c}={m}" for c, m in upstream.mirror_map().items()]
            config = work / "curl.conf"
            for jobs in (4, 1):
                for round_ in range(ROUNDS):
                    out = work / f"curl-{jobs}-{round_}"
                    out.mkdir()
                    config.write_text("".join(
                        f'url = "{upstream.url_for(a.url)}"\noutput = "{out / a.sha256}"\n'
                        for a in artifacts))
                    parallel = ["--parallel", "--parallel-max", str(jobs)] if jobs > 1 else []
                    timings.setdefault(f"curl{' --parallel' if jobs > 1 else ''}, {jobs} at "
                                       f"a time (raw copy)", []).append(_timed(
                        [curl, "--silent", "--fail", *parallel, "--config", str(config)], work))
                    _same_bytes(out, artifacts)
                    store = work / f"store-{jobs}-{round_}"
                    timings.setdefault(f"tljh-lock fetch --jobs {jobs} (bounded, hashed, "
                                       "fsynced)", []).append(_timed(
                        [sys.executable, "-m", "tljh_lock", "-q", "fetch", "--lock",
                         str(work / "tljh.lock.toml"), "--store", str(store),
                         "--jobs", str(jobs), *mirrors], work))
                    _same_bytes(store / "sha256", artifacts)
                    if jobs == 1:  # again, all present: what is left is the fixed cost
                        timings.setdefault("tljh-lock fetch, store already full (start-up, "
                                           "lock parsing, file selection)", []).append(_timed(
                            [sys.executable, "-m", "tljh_lock", "-q", "fetch", "--lock",
                             str(work / "tljh.lock.toml"), "--store", str(store), *mirrors],
                            work))
                    shutil.rmtree(out)
                    shutil.rmtree(store)
        print(f"{len(artifacts)} files, {total / (1 << 20):.1f} MiB, median of {ROUNDS} "
              "rounds, fresh store each round", file=sys.stderr)
        return [(name, statistics.median(values)) for name, values in timings.items()]


def _same_bytes(folder: Path, artifacts: list[Artifact]) -> None:
    names = {p.name for p in folder.iterdir()}
    assert names == {a.sha256 for a in artifacts}, "not every file arrived"


def report(rows: list[tuple[str, float]]) -> str:
    lines = ["| command | seconds | time relative to curl at the same parallelism |",
             "| --- | ---: | ---: |"]
    anchor = rows[0][1]
    for name, secs in rows:
        if name.startswith("curl"):  # each curl row anchors the fetch rows after it
            anchor = secs
        lines.append(f"| {name} | {secs:.2f} | {secs / anchor:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
