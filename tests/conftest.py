"""Shared fixtures: the fixture upstream with the demo hub set, and the CLI run in-process."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.upstream import FixtureUpstream, generate_hub_scenario
from tljh_lock.cli.main import main
from tljh_lock.core.errors import TljhLockError

REPO = Path(__file__).resolve().parents[1]
# The shared upstream facts beside the clone (CI binds them there), or where TLJH_SHARED says.
SHARED = Path(os.environ.get("TLJH_SHARED", REPO.parent / "shared"))
TEST_RECIPES = REPO / "tests" / "recipes"
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, connections fail fast
NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin")


@dataclass
class Upstream:
    root: Path
    server: FixtureUpstream
    facts: dict[str, Any]

    def mirror_flags(self) -> list[str]:
        return [f"--mirror={c}={m}" for c, m in sorted(self.server.mirror_map().items())]


@contextmanager
def serve(root: Path, generate: Callable[[Path], dict[str, Any]]) -> Iterator[Upstream]:
    """Generate a scenario into `root` and serve it on 127.0.0.1."""
    facts = generate(root)
    with FixtureUpstream(root) as server:
        yield Upstream(root, server, facts)


@pytest.fixture(scope="session")
def hub_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with serve(tmp_path_factory.mktemp("upstream"), generate_hub_scenario) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The hub scenario's files, not served yet: for tests that set faults per server."""
    root = tmp_path_factory.mktemp("upstream")
    return root, generate_hub_scenario(root)


@pytest.fixture
def upstream(scenario: tuple[Path, dict[str, Any]]) -> Iterator[FixtureUpstream]:
    with FixtureUpstream(scenario[0]) as server:
        yield server


def copy_recipes(target: Path, *names: str) -> Path:
    """A private copy of some of the test recipes (and the targets), free to edit."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("targets", *names):
        shutil.copyfile((TEST_RECIPES / f"{name}.toml").resolve(), target / f"{name}.toml")
    return target


@pytest.fixture
def recipes(tmp_path: Path) -> Path:
    """The hub test recipe and the targets."""
    return copy_recipes(tmp_path / "recipes", "hub")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def tljh(capsys: pytest.CaptureFixture[str]):
    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@contextmanager
def nginx_serving(directory: Path, work: Path, listen: str = "127.0.0.1",
                  netns: str | None = None) -> Iterator[str]:
    """Debian's nginx serving `directory` as static files on `listen`; yields its URL.

    With `netns` (a named network namespace, `ip netns add`), nginx runs in it on port 80:
    the fleet test's mirror on its private bridge."""
    assert NGINX is not None, "nginx is missing: `make test` installs it (nginx-light)"
    work.mkdir(parents=True)
    if netns is None:
        with socket.socket() as sock:
            sock.bind((listen, 0))
            port = int(sock.getsockname()[1])
        prefix: list[str] = []
    else:
        port, prefix = 80, ["nsenter", f"--net=/run/netns/{netns}"]
    # As root, nginx's workers would drop to www-data, who cannot enter pytest's 0700 tmp.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.getuid() == 0 else ""
    temp = " ".join(f"{kind}_temp_path {work}/{kind};"
                    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = work / "nginx.conf"
    pid = work / "nginx.pid"
    conf.write_text(f"""
{user}
daemon off;
pid {pid};
error_log {work}/error.log;
events {{}}
http {{
  access_log off;
  {temp}
  server {{ listen {listen}:{port}; root {directory}; }}
}}
""")
    nginx = subprocess.Popen([*prefix, NGINX, "-c", str(conf), "-p", str(work)])
    try:
        # nginx writes its pid file once its sockets listen (from any network namespace)
        deadline = time.monotonic() + 10
        while not pid.exists():
            if time.monotonic() > deadline or nginx.poll() is not None:
                raise AssertionError(f"nginx does not listen on {listen}:{port}: "
                                     f"{(work / 'error.log').read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"http://{listen}:{port}/"
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)


@pytest.fixture(scope="session")
def vendor_store() -> Path:
    """The store `make` filled with the zipapp's vendored wheels (fetched now if online)."""
    from tests.support import apply_scenario  # it imports this module's recipes

    try:
        return apply_scenario.vendor_store()
    except TljhLockError as exc:
        pytest.fail(f"the zipapp's vendored wheels are not in the default store and could not "
                    f"be fetched ({exc}); run `make` once while online")
