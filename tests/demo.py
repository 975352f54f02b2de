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
import shlex
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


class CommandFailed(Exception):
    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"demo: `{command}` exited {code} (its error is above)")
        self.code = code


def shown(arg: str | Path) -> str:
    """An argument as typed in the project directory: paths relative to it, quoted."""
    if isinstance(arg, Path) and arg.is_relative_to(REPO):
        arg = arg.relative_to(REPO)
    return shlex.quote(str(arg))


def tljh_lock(*args: str | Path) -> None:
    """Run one command, printed in full first, so that it can be replayed by hand (from the
    project directory, in the venv: .venv/bin/tljh-lock)."""
    command = "tljh-lock " + " ".join(shown(arg) for arg in args)
    print(f"$ {command}", flush=True)
    done = subprocess.run([sys.executable, "-m", "tljh_lock", *map(str, args)], cwd=REPO,
                          check=False)
    if done.returncode != 0:
        raise CommandFailed(command, done.returncode)


def main() -> int:
    # The zipapp's vendored wheels were put there by `make` (python -m tljh_lock.bundle.zipapp
    # --prefetch): the demo itself needs no network.
    os.environ.setdefault("TLJH_LOCK_STORE", str(REPO / "build" / "store"))
    print(f"$ export TLJH_LOCK_STORE={shown(Path(os.environ['TLJH_LOCK_STORE']))}")
    if OUT.exists():
        shutil.rmtree(OUT)
    upstream = OUT / "upstream"
    for generate in (generate_hub_scenario, generate_user_env_scenario,
                     generate_release_scenario, generate_npm_scenario):
        generate(upstream)
    lock = OUT / "tljh.lock.toml"
    with FixtureUpstream(upstream) as server:
        mirrors = OUT / "mirrors.toml"
        # the fixture upstream serves only while the demo runs: replaying a command that uses
        # this mirror map needs it serving again on its port (python -m tests.upstream serve
        # build/demo/upstream --port N)
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
    try:
        sys.exit(main())
    except CommandFailed as failed:
        print(failed, file=sys.stderr)
        sys.exit(failed.code)
