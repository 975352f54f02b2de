"""`apply --bundle` on a booted Debian 12 with no network: real JupyterHub wheels (resolved
against PyPI), real configurable-http-proxy (npm), real Node.js and traefik binaries repacked
into their upstreams' layouts, a stand-in Miniforge and a TLJH-like source pin.

Run: python -m pytest -m slow tests/test_e2e_apply.py -p no:cacheprovider -o addopts=""
Needs root, tests/e2e/APT_PACKAGES and (to build the bundles) PyPI and the npm registry.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_bundle import vendor_store  # noqa: F401 - a fixture used below
from tests.upstream import FixtureUpstream
from tests.upstream.artifacts import make_source_archive
from tests.upstream.real_binaries import fill_real_binaries
from tests.upstream.release_scenarios import publish_github_release
from tests.upstream.scenarios import dirhash_h1
from tljh_lock import cli, safe_archive
from tljh_lock.bundle import write_bundle
from tljh_lock.errors import EXIT_FAILURE, EXIT_INTEGRITY
from tljh_lock.fetch import Fetcher
from tljh_lock.mirrors import MirrorMap
from tljh_lock.store import Store, default_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e.fixtures import *  # noqa: E402, F403  (e2e_rootfs, e2e_workdir)
from e2e.machine import BootedMachine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ARCH = platform.machine()
NODE_VERSION = "22.13.1"  # the oldest with both arches on npm's node-linux-* (see real_binaries)
CACHE = Path("/var/cache/tljh-lock-e2e/real-binaries")
UNITS = ("configurable-http-proxy.service", "jupyterhub.service", "traefik.service")
TLJH_REPO = "jupyterhub/the-littlest-jupyterhub"
HUB_RANGE = "jupyterhub>=5.2.0,<6"

# A TLJH-like source tree: the real archive is on GitHub, out of reach here.
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "the-littlest-jupyterhub"
version = "{version}"
requires-python = ">=3.9"
dependencies = ["{hub_range}"]

[project.scripts]
tljh-config = "tljh.config:main"

[tool.setuptools]
packages = ["tljh"]
"""
CONFIG_PY = "def main():\n    print('tljh-config (e2e stand-in)')\n"

MINIFORGE = b"""#!/bin/sh
# A stand-in for Miniforge's batch installer: a prefix with the system python3 (no ensurepip).
set -eu
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift 2 ;; -b|-u) shift ;; *) exit 2 ;; esac
done
[ -x "$prefix/bin/python" ] || python3 -m venv --without-pip "$prefix"
"""


def _tljh_source(upstream: Path, version: str) -> str:
    """Publish the stand-in at a fake commit; returns the recipe's [[sources]] table."""
    commit = (version.replace(".", "") * 40)[:40]
    tree = {"pyproject.toml": PYPROJECT.format(version=version, hub_range=HUB_RANGE).encode(),
            "tljh/__init__.py": f'__version__ = "{version}"\n'.encode(),
            "tljh/config.py": CONFIG_PY.encode()}
    make_source_archive(upstream / "github.com" / TLJH_REPO / "archive" / f"{commit}.tar.gz",
                        f"the-littlest-jupyterhub-{commit}", tree)
    return f"""
[[sources]]
name = "the-littlest-jupyterhub"
version = "{version}"
url = "https://github.com/{TLJH_REPO}/archive/{commit}.tar.gz"
commit = "{commit}"
tree-hash = "{dirhash_h1(tree)}"
requires = ["{HUB_RANGE}"]
build-requires = ["setuptools>=61"]
"""


def _recipes(directory: Path, source: str) -> Path:
    directory.mkdir(parents=True)
    target = (f'name = "debian-12-{ARCH}"\npython = "3.11.2"\nglibc = "2.36"\n'
              f'arch = "{ARCH}"\n')
    (directory / "targets.toml").write_text(f"[[targets]]\n{target}")
    (directory / "hub.toml").write_text(
        f'kind = "pip"\nindex = "https://pypi.org/simple/"\n'
        f'requirements = ["{HUB_RANGE}", "pip"]\n{source}')
    (directory / "user-env.toml").write_text(
        'kind = "pip"\nindex = "https://pypi.org/simple/"\nafter = ["hub"]\n'
        'same-version = { component = "hub", packages = ["jupyterhub"] }\n'
        f'requirements = ["{HUB_RANGE}"]\n'
        # the stand-in installer's python is the system's
        f'[[targets]]\nname = "miniforge-{ARCH}"\npython = "3.11.2"\nglibc = "2.36"\n'
        f'arch = "{ARCH}"\n')
    for name in ("traefik", "nodejs", "miniforge"):
        shutil.copyfile(REPO / "tests" / "recipes" / f"{name}.toml", directory / f"{name}.toml")
    chp = (REPO / "recipes" / "configurable-http-proxy.toml").read_text()
    (directory / "configurable-http-proxy.toml").write_text(
        chp.replace('node = "22.12.0"', f'node = "{NODE_VERSION}"'))
    return directory


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory,
            vendor_store: Path) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """Two bundles: "old" (TLJH stand-in 2.0.0) and "new" (2.0.1), for this arch, plus the
    bundle's zipapp, all in one directory the machine mounts read-only."""
    base = tmp_path_factory.mktemp("e2e-apply")
    upstream = base / "upstream"
    fill_real_binaries(upstream, CACHE, node_version=NODE_VERSION)
    publish_github_release(upstream, "conda-forge/miniforge", "24.7.1-2",
                           {f"Miniforge3-24.7.1-2-Linux-{a}.sh": MINIFORGE
                            for a in ("x86_64", "aarch64")}, per_asset_checksums=True)
    out = base / "bundles"
    out.mkdir()
    with FixtureUpstream(upstream) as server:
        # only the hosts out of reach come from the fixture; PyPI and npm are the real ones
        mirrors = {c: m for c, m in server.mirror_map().items()
                   if c.split("/")[2] in ("github.com", "api.github.com", "nodejs.org")}
        for label, version in (("old", "2.0.0"), ("new", "2.0.1")):
            recipes = _recipes(base / f"recipes-{label}", _tljh_source(upstream, version))
            lock = base / f"{label}.lock.toml"
            code = cli.main(["-q", "update", "--recipes", str(recipes), "--lock", str(lock),
                             *(f"--mirror={c}={m}" for c, m in sorted(mirrors.items()))])
            assert code == 0
            fetcher = Fetcher(Store(default_path()), MirrorMap.from_pairs(mirrors),
                              [vendor_store.as_uri()])
            write_bundle(lock, ARCH, out / f"{label}.bundle", fetcher)
    with tarfile.open(out / "old.bundle") as tar:
        member = tar.extractfile(safe_archive.PYZ_NAME)
        assert member is not None
        (out / safe_archive.PYZ_NAME).write_bytes(member.read())
    # "bad": the new bundle with one byte of its largest artifact flipped
    shutil.copyfile(out / "new.bundle", out / "bad.bundle")
    manifest = safe_archive.read_manifest(out / "new.bundle")
    victim = max((e for n, e in manifest.members.items() if n.startswith("sha256/")),
                 key=lambda e: e.size)
    with tarfile.open(out / "new.bundle") as tar:
        offset = tar.getmember(victim.name).offset_data + victim.size // 2
    with open(out / "bad.bundle", "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return {"dir": out, "victim": victim.sha256}


def tljh_lock(m: BootedMachine, *args: str, check: bool = True) -> Any:
    """The tool as an air-gapped admin runs it: the bundle's zipapp under the system python3."""
    return m.run(["python3", f"/mnt/bundles/{safe_archive.PYZ_NAME}", *args], check=check,
                 timeout=900)


def apply(m: BootedMachine, label: str, *extra: str, check: bool = True) -> Any:
    return tljh_lock(m, "apply", "--bundle", f"/mnt/bundles/{label}.bundle", *extra,
                     check=check)


def wait_for_hub(m: BootedMachine, timeout: float = 90.0) -> dict[str, Any]:
    """GET /hub/api through traefik (port 80) -> configurable-http-proxy -> JupyterHub."""
    deadline = time.monotonic() + timeout
    while True:
        r = m.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1/hub/api"], check=False)
        if r.returncode == 0 and r.stdout.startswith("{"):
            return json.loads(r.stdout)  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            logs = m.run("journalctl --no-pager -n 80 -u jupyterhub -u configurable-http-proxy "
                         "-u traefik", check=False).stdout
            raise AssertionError(f"the hub did not answer: {r.stdout} {r.stderr}\n{logs}")
        time.sleep(1)


def snapshot(m: BootedMachine) -> str:
    return m.run("cd / && find etc/systemd/system etc/sudoers.d usr/bin/tljh-config opt/tljh "
                 "-maxdepth 1 -printf '%p %l\\n' | sort; cat opt/tljh/state/state.json; "
                 "getent group jupyterhub-users jupyterhub-admins").stdout


@pytest.mark.slow
def test_apply_on_a_booted_debian(e2e_rootfs: Path, e2e_workdir: Path,
                                  bundles: dict[str, Any]) -> None:
    with BootedMachine(e2e_rootfs, e2e_workdir, {bundles["dir"]: "/mnt/bundles"}) as m:
        started = time.monotonic()
        first = json.loads(apply(m, "old", "--json").stdout)
        print(f"[e2e] fresh apply {time.monotonic() - started:.1f} s: {first['ran']}")
        assert first["generation"] == 1
        for unit in UNITS:
            assert m.run(["systemctl", "is-active", unit], check=False).stdout.strip() == \
                "active", m.run(["systemctl", "status", unit], check=False).stdout
        api = wait_for_hub(m)
        installed = m.run(["/opt/tljh/hub/bin/python3", "-c",
                           "import jupyterhub; print(jupyterhub.__version__)"]).stdout.strip()
        assert api["version"] == installed

        assert m.run(["getent", "group", "jupyterhub-users"]).returncode == 0
        m.run(["useradd", "-m", "-G", "jupyterhub-admins", "alice"])
        m.run(["useradd", "-m", "-G", "jupyterhub-users", "bob"])
        assert m.run(["sudo", "-n", "id", "-u"], user="alice").stdout.strip() == "0"
        assert m.run(["sudo", "-n", "id", "-u"], user="bob", check=False).returncode != 0
        assert m.run(["readlink", "/usr/bin/tljh-config"]).stdout.strip() == \
            "/opt/tljh/hub/bin/tljh-config"
        assert m.run(["tljh-config"]).stdout.strip() == "tljh-config (e2e stand-in)"
        verify = m.run(["systemd-analyze", "verify", *(f"/etc/systemd/system/{u}" for u in UNITS)],
                       check=False)
        assert verify.returncode == 0 and verify.stderr == "", verify.stderr
        assert m.run(["stat", "-c", "%a %U", "/opt/tljh/state/proxy.env"]).stdout.strip() == \
            "600 root"
        assert tljh_lock(m, "verify").returncode == 0

        m.reboot()
        assert wait_for_hub(m)["version"] == installed

        started = time.monotonic()
        again = json.loads(apply(m, "old", "--json").stdout)
        print(f"[e2e] no-op re-apply {time.monotonic() - started:.2f} s")
        assert again["ran"] == [] and again["generation"] == 1

        # a corrupted artifact: the bundle is refused before anything changes
        before = snapshot(m)
        bad = apply(m, "bad", check=False)
        assert bad.returncode == EXIT_INTEGRITY and bundles["victim"] in bad.stderr, bad.stderr
        assert snapshot(m) == before

        upgraded = json.loads(apply(m, "new", "--json").stdout)
        assert upgraded["generation"] == 2
        assert upgraded["ran"] == ["hub", "link:/opt/tljh/hub"]  # only what changed
        wait_for_hub(m)
        assert "2.0.1" in m.run(["/opt/tljh/hub/bin/python3", "-m", "pip", "show",
                                 "the-littlest-jupyterhub"]).stdout

        refused = apply(m, "old", check=False)
        assert refused.returncode == EXIT_FAILURE and "older" in refused.stderr
        assert json.loads(tljh_lock(m, "status", "--json").stdout)["current"]["number"] == 2
        wait_for_hub(m)

        # the way back is a rollback: the previous generation's directories, restarted
        tljh_lock(m, "rollback")
        assert json.loads(tljh_lock(m, "status", "--json").stdout)["current"]["number"] == 1
        assert wait_for_hub(m)["version"] == installed
        assert "2.0.0" in m.run(["/opt/tljh/hub/bin/python3", "-m", "pip", "show",
                                 "the-littlest-jupyterhub"]).stdout
        assert tljh_lock(m, "verify").returncode == 0
