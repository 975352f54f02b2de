"""`make demo`: the main job on an embedded default, with every output under build/demo/.

A fixture upstream (tests/upstream) stands in for PyPI and GitHub on 127.0.0.1; the demo
recipe set (tests/recipes) points at their canonical URLs and a mirror map sends the fetches
to the fixture. recipes -> lock -> check -> fetch -> bundle -> apply into build/demo/root ->
verify: the hub pip set, the user environment, traefik, Miniforge, Node.js and
configurable-http-proxy, then the systemd units, groups, sudoers file and tljh-config link.
Nothing outside the project directory changes: the store is build/store.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from tests.upstream import FixtureUpstream, generate_hub_scenario
from tests.upstream.npm_scenarios import generate_npm_scenario
from tests.upstream.release_scenarios import generate_release_scenario
from tests.upstream.user_env_scenarios import generate_user_env_scenario

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "demo"
RECIPES = REPO / "tests" / "recipes"


def tljh_lock(*args: str | Path) -> None:
    argv = [sys.executable, "-m", "tljh_lock", *map(str, args)]
    print("$ tljh-lock " + " ".join(str(a) for a in args[:1]) + " ...", flush=True)
    subprocess.run(argv, check=True, cwd=REPO)


def main() -> int:
    # The zipapp's vendored wheels were put there by `make` (python -m tljh_lock.bundle.zipapp
    # --prefetch): the demo itself needs no network.
    os.environ.setdefault("TLJH_LOCK_STORE", str(REPO / "build" / "store"))
    if OUT.exists():
        shutil.rmtree(OUT)
    upstream = OUT / "upstream"
    for generate in (generate_hub_scenario, generate_user_env_scenario,
                     generate_release_scenario, generate_npm_scenario):
        generate(upstream)
    lock = OUT / "tljh.lock.toml"
    with FixtureUpstream(upstream) as server:
        mirrors = OUT / "mirrors.toml"
        mirrors.write_text("[mirrors]\n" + "".join(
            f'"{canonical}" = "{mirror}"\n' for canonical, mirror in server.mirror_map().items()))
        tljh_lock("update", "--recipes", RECIPES, "--lock", lock, "--mirror-config", mirrors)
        tljh_lock("check", "--recipes", RECIPES, "--lock", lock)
        arch = platform.machine()
        bundle = OUT / "tljh.bundle"
        tljh_lock("fetch", "--lock", lock, "--platform", arch, "--mirror-config", mirrors)
        tljh_lock("bundle", "--lock", lock, "--platform", arch, "-o", bundle,
                  "--mirror-config", mirrors)
    # From here on, no upstream: the bundle is all the server gets.
    root = OUT / "root"
    tljh_lock("apply", "--bundle", bundle, "--root", root)
    tljh_lock("verify", "--root", root)
    tljh_lock("status", "--root", root)
    print(f"\nDemo outputs are in {OUT.relative_to(REPO)}/: lock {lock.name}, bundle "
          f"{bundle.name}, the applied system in {root.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
