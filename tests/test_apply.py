"""The applier, offline, into a temporary --root: a small hub lock (the fixture upstream's
wheels, a TLJH-like source built into a wheel, the system's own pip wheel as the installer),
a fake traefik and a fake Node.js release."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_RECIPES
from tests.test_bundle import vendor_store  # noqa: F401 - a fixture used below
from tests.upstream import FixtureUpstream, generate_hub_scenario
from tests.upstream.artifacts import build_wheel
from tests.upstream.npm_scenarios import generate_npm_scenario
from tljh_lock import cli, lockfile, pip_lock, release_lock, safe_archive
from tljh_lock.apply import engine
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.apply.unpack import unpack_tree
from tljh_lock.bundle import write_bundle
from tljh_lock.errors import EXIT_INPUT, EXIT_INTEGRITY, IntegrityError, TljhLockError
from tljh_lock.fetch import Fetcher
from tljh_lock.lockfile import Artifact, Lock
from tljh_lock.mirrors import MirrorMap
from tljh_lock.store import SourceRecord, Store
from tljh_lock.targets import Target

SYSTEM_PYTHON = "/usr/bin/python3"
PIP_WHEEL = next(Path("/usr/share/python-wheels").glob("pip-*-py3-none-any.whl"), None)
# The fake Node.js release runs this machine's node and npm.
HOST_NODE, HOST_NPM = "/usr/bin/node", "/usr/lib/node_modules/npm/lib/cli.js"
NEEDS = [SYSTEM_PYTHON, "/usr/sbin/visudo", "/usr/sbin/groupadd", "/usr/bin/systemctl",
         HOST_NODE, HOST_NPM]
pytestmark = pytest.mark.skipif(
    PIP_WHEEL is None or not all(Path(p).exists() for p in NEEDS),
    reason="needs Debian's python3, its pip wheel (python3-pip-whl), sudo, passwd, systemd, "
           "node and npm",
)
PYPI_FILES = "https://files.pythonhosted.org/packages/fx/"


def _system_target() -> Target:
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import platform; print(platform.python_version(),"
                          " platform.machine(), platform.libc_ver()[1])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return Target("this-system", out[0], ".".join(out[2].split(".")[:2]), out[1])


def _tar(path: Path, members: dict[str, bytes | str], modes: dict[str, int]) -> Path:
    """A tarball of files (bytes) and symlinks (str: the link target)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), modes.get(name, 0o644)
                tar.addfile(info, io.BytesIO(data))
    return path


@dataclass
class Fixture:
    store: Path
    built: dict[str, Artifact]
    sources: dict[str, str]
    locks: dict[str, Path]  # "old" (fx-hub 1.0.0), "new" (fx-hub 1.1.0), "old-hub", "new-hub"
    target: Target
    upstream: Path  # the fixture upstream serving every artifact of the locks

    def source(self, store: Path | None = None) -> ArtifactSource:
        return ArtifactSource(store or self.store, self.built, self.sources)


def _add(store: Path, path: Path, url: str, upstream: Path | None = None) -> Artifact:
    """Put `path` into the store (as `fetch` would) and, given an upstream, publish it there
    at its canonical URL `url` + its name (for `bundle`)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    (store / "sha256").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, store / "sha256" / digest)
    if upstream is not None:
        published = upstream / (url + path.name)[len("https://"):]
        published.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, published)
    return Artifact(path.name, url + path.name, len(data), digest)


@pytest.fixture(scope="session")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    assert PIP_WHEEL is not None
    base = tmp_path_factory.mktemp("apply-fixture")
    upstream = base / "upstream"
    facts = generate_hub_scenario(upstream)
    store = base / "store"
    target = _system_target()

    def published(name: str) -> Artifact:
        url = facts["files"][name]["url"]
        return _add(store, upstream / url[len("https://"):], url.rsplit("/", 1)[0] + "/")

    def package(name: str, version: str, *files: str, sdist: str | None = None,
                marker: str | None = None) -> pip_lock.Package:
        return pip_lock.Package(name, version, marker=marker,
                                wheels=tuple(published(f) for f in files),
                                sdist=published(sdist) if sdist else None)

    speedups = next(n for n in facts["files"] if "speedups" in n and target.arch in n)
    common = [
        package("fx-web", "1.1", "fx_web-1.1-py3-none-any.whl"),
        package("fx-backport", "1.0", "fx_backport-1.0-py3-none-any.whl",
                marker='python_full_version < "3.11"'),
        package("fx-speedups", "2.0", speedups),
        package("fx-auth", "1.0", "fx_auth-1.0-py3-none-any.whl"),
        pip_lock.Package("fx-otp", "1.0.1", build_requires=("fixture-backend",),
                         sdist=published("fx_otp-1.0.1.tar.gz")),
        pip_lock.Package("pip", PIP_WHEEL.name.split("-")[1],
                         wheels=(_add(store, PIP_WHEEL, PYPI_FILES, upstream),)),
    ]
    backend = package("fixture-backend", "1.0", "fixture_backend-1.0-py3-none-any.whl")
    tljh = facts["tljh"]
    source = pip_lock.Source(tljh["name"], tljh["version"], tljh["archive_url"], tljh["commit"],
                             tljh["tree_hash"], tuple(tljh["dependencies"]), ("fixture-backend",))
    # What `bundle` builds from the sdist and the source pin.
    wheels = base / "built"
    otp = next(p for p in common if p.name == "fx-otp")
    assert otp.sdist is not None
    built = {
        otp.sdist.sha256: _add(store, build_wheel(wheels, "fx-otp", "1.0.1",
                                                  requires_dist=("fx-web",)), "built:"),
        tljh["sha256"]: _add(store, build_wheel(
            wheels, "the-littlest-jupyterhub", "2.0.0", requires_dist=("fx-web>=1", "fx-auth"),
            files={"tljh/__init__.py": '__version__ = "2.0.0"\n',
                   "tljh/config.py": "def main():\n    print('tljh-config (fixture)')\n"},
            entry_points={"console_scripts": {"tljh-config": "tljh.config:main"}}), "built:"),
    }
    traefik = _add(store, _tar(base / "traefik_v3.6.5_linux_amd64.tar.gz",
                               {"traefik": b"#!/bin/sh\necho traefik 3.6.5\n", "LICENSE.md": b""},
                               {"traefik": 0o755}),
                   "https://github.com/traefik/traefik/releases/download/v3.6.5/", upstream)
    top = "node-v22.12.0-linux-x64"
    node = _add(store, _tar(base / f"{top}.tar.gz", {
        f"{top}/bin/node": f'#!/bin/sh\nexec {HOST_NODE} "$@"\n'.encode(),
        f"{top}/lib/node_modules/npm/bin/npm-cli.js":
            f"require('{HOST_NPM}')(process)\n".encode(),
        f"{top}/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
    }, {f"{top}/bin/node": 0o755}), "https://nodejs.org/dist/v22.12.0/", upstream)
    proxy = _npm_component(base, upstream, store)
    installer = base / "Miniforge3-24.7.1-2-Linux-x86_64.sh"
    installer.write_text(f"""#!/bin/sh
# a stand-in for Miniforge's installer: a prefix with this system's python
set -eu
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift 2 ;; -b|-u) shift ;; *) exit 2 ;; esac
done
[ -x "$prefix/bin/python" ] || {SYSTEM_PYTHON} -m venv --without-pip "$prefix"
""")
    miniforge = _add(store, installer,
                     "https://github.com/conda-forge/miniforge/releases/download/24.7.1-2/",
                     upstream)

    def release(name: str, version: str, artifact: Artifact,
                **extra: str) -> release_lock.Component:
        upstream_kind = "nodejs" if name == "nodejs" else "github"
        return release_lock.Component(
            recipe=f"recipes/{name}.toml", recipe_hash="sha256:" + "0" * 64,
            upstream=upstream_kind,
            source="https://nodejs.org/dist/" if name == "nodejs" else f"{name}/{name}",
            version=version, arch_files=(release_lock.ReleaseFile(
                target.arch, artifact, extra.get("top_dir")),),
            tag=None if name == "nodejs" else f"v{version}", binary=extra.get("binary"))

    locks = {}
    for label, hub_version in (("old", "1.0.0"), ("new", "1.1.0")):
        hub_wheel = f"fx_hub-{hub_version}-py3-none-any.whl"
        hub = pip_lock.Component(
            recipe="recipes/hub.toml", recipe_hash="sha256:" + "1" * 64,
            index="https://pypi.org/simple/", roots=("fx-hub", "fx-auth", "pip"),
            sources=(source,),
            packages=(package("fx-hub", hub_version, hub_wheel), *common),
            build_packages=(backend,))
        lock = Lock([target], "sha256:" + "2" * 64, {
            "hub": hub,
            "traefik": release("traefik", "3.6.5", traefik, binary="traefik"),
            "nodejs": release("nodejs", "22.12.0", node, top_dir=top),
            "configurable-http-proxy": proxy,
            "miniforge": release("miniforge", "24.7.1-2", miniforge),
            # the user set, for the installer's python, without a pip of its own
            "user-env": pip_lock.Component(
                recipe="recipes/user-env.toml", recipe_hash="sha256:" + "3" * 64,
                index="https://pypi.org/simple/", roots=("fx-web",), targets=(target,),
                packages=tuple(p for p in common if p.name in ("fx-web", "fx-auth", "fx-otp")),
                build_packages=(backend,)),
        })
        # "-hub": the hub set and traefik only, for the tests about generations (faster)
        small = Lock(lock.targets, lock.targets_hash,
                     {k: lock.components[k] for k in ("hub", "traefik")})
        for name, variant in ((label, lock), (f"{label}-hub", small)):
            locks[name] = base / f"{name}.lock.toml"
            locks[name].write_text(variant.dumps())
            lockfile.load(locks[name])  # what apply reads must parse
    sources = {f"{source.name}-{source.commit}": tljh["sha256"]}
    # the store's records of them, as `bundle` leaves them (for `apply --store`)
    records = Store(store)
    for input_sha256, wheel in built.items():
        records.record_built(input_sha256, {"name": wheel.name, "sha256": wheel.sha256,
                                            "size": wheel.size, "source-sha256": input_sha256})
    records.record_source(SourceRecord(source.name, source.commit, source.tree_hash,
                                       tljh["sha256"], tljh["size"]))
    return Fixture(store, built, sources, locks, target, upstream)


def _npm_component(base: Path, upstream: Path, store: Path) -> lockfile.Component:
    """The fixture npm tree (a stand-in for configurable-http-proxy), locked by `update`,
    its tarballs put into the store."""
    facts = generate_npm_scenario(upstream)
    recipes = base / "npm-recipes"
    recipes.mkdir()
    shutil.copyfile(TEST_RECIPES / "targets.toml", recipes / "targets.toml")
    # alone: its `node` pins what engines are checked against, the fake Node.js is not locked
    chp = (TEST_RECIPES / "configurable-http-proxy.toml").read_text()
    (recipes / "configurable-http-proxy.toml").write_text(
        "\n".join(line for line in chp.splitlines() if not line.startswith("after =")))
    with FixtureUpstream(upstream) as server:
        mirrors = [f"--mirror={c}={m}" for c, m in sorted(server.mirror_map().items())]
        assert cli.main(["-q", "update", "--recipes", str(recipes), "--lock",
                         str(base / "npm.lock.toml"), *mirrors]) == 0
    component = lockfile.load(base / "npm.lock.toml").components["configurable-http-proxy"]
    for package in facts["packages"].values():
        _add(store, Path(package["path"]), "")
    return component


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A server's root with the files groupadd edits and a stand-in for the system python
    (which the venv links to and `systemd-analyze verify --root` looks for)."""
    root = tmp_path / "root"
    etc = root / "etc"
    etc.mkdir(parents=True)
    (etc / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (etc / "gshadow").write_text("root:*::\nnogroup:*::\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (etc / "shadow").write_text("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")
    for name in ("gshadow", "shadow"):
        (etc / name).chmod(0o640)
    bindir = root / "usr" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python3").write_text("#!/bin/sh\n")
    (bindir / "python3").chmod(0o755)
    return root


def apply(fixture: Fixture, root: Path, label: str = "old", **options: object) -> engine.Outcome:
    return engine.apply(Layout(root), fixture.locks[label], options.pop("source", None)
                        or fixture.source(), SYSTEM_PYTHON, **options)  # type: ignore[arg-type]


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path))
        elif path.is_file():
            found[rel] = (oct(path.stat().st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[rel] = ("dir", oct(path.stat().st_mode))
    return found


def test_full_apply_then_noop(fixture: Fixture, root: Path) -> None:
    first = apply(fixture, root)
    assert first.generation == 1 and "hub" in first.ran and "node" in first.ran
    layout = Layout(root)
    hub = root / "opt/tljh/hub"
    assert hub.is_symlink() and os.readlink(hub).startswith("hub.")
    # TLJH's console script, from the wheel built out of the source pin, through the link
    link = root / "usr/bin/tljh-config"
    assert os.readlink(link) == "/opt/tljh/hub/bin/tljh-config"
    out = subprocess.run([hub / "bin/tljh-config"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tljh-config (fixture)"
    listed = subprocess.run([hub / "bin/python3", "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert {"fx-hub==1.0.0", "fx-otp==1.0.1", "the-littlest-jupyterhub==2.0.0",
            "fx-speedups==2.0"} <= set(listed)
    assert not any(line.startswith("fx-backport") for line in listed)  # marker: python < 3.11
    assert (hub / "bin/traefik").read_bytes().startswith(b"#!/bin/sh\necho traefik")
    assert (root / "opt/tljh/node/bin/npm").resolve() == (
        root / "opt/tljh/node/lib/node_modules/npm/bin/npm-cli.js").resolve()
    # the npm tree, installed by the locked Node.js's npm from the verified tarballs only
    fx_proxy = root / "opt/tljh/proxy/node_modules/.bin/fx-proxy"
    described = subprocess.run([root / "opt/tljh/node/bin/node", fx_proxy], capture_output=True,
                               text=True, check=True).stdout.strip()
    assert described.startswith("fx-proxy 1.0.0 [@fx/log 2.0.0 [fx-events 4.0.0]")
    user = root / "opt/tljh/user/bin/python"
    listed = subprocess.run([user, "-c", "import fx_web, fx_otp, sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert listed == str(root / "opt/tljh/user")
    groups = (root / "etc/group").read_text()
    assert "\njupyterhub-users:" in groups and "\njupyterhub-admins:" in groups
    sudoers = root / "etc/sudoers.d/jupyterhub-admins"
    assert sudoers.stat().st_mode & 0o777 == 0o440
    assert "%jupyterhub-admins ALL = (ALL) NOPASSWD: ALL" in sudoers.read_text()
    subprocess.run(["/usr/sbin/visudo", "-cs", "-f", sudoers], check=True, capture_output=True)
    token = root / "opt/tljh/state/proxy.env"
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text().startswith("CONFIGPROXY_AUTH_TOKEN=")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert {p.name for p in wants.iterdir()} == {
        "jupyterhub.service", "configurable-http-proxy.service", "traefik.service"}
    assert engine.verify(layout) == []
    status = engine.status(layout)
    assert status["current"]["number"] == 1
    assert status["current"]["lock-sha256"] == hashlib.sha256(
        fixture.locks["old"].read_bytes()).hexdigest()

    before = snapshot(root)
    started = time.monotonic()
    second = apply(fixture, root)
    assert time.monotonic() - started < 1.0
    assert second.ran == [] and second.generation == 1
    after = snapshot(root)
    # only the state file is rewritten (same contents: nothing recorded changed)
    assert after == before


def test_units_pass_systemd_analyze_verify(fixture: Fixture, root: Path) -> None:
    # the targets and slices the units are ordered against, as a server has them
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    apply(fixture, root)
    units = root / "etc/systemd/system"
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}",
         *(f"/etc/systemd/system/{u}" for u in ("jupyterhub.service", "traefik.service",
                                                "configurable-http-proxy.service"))],
        capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # and it does catch a unit it cannot run
    (units / "traefik.service").write_text(
        (units / "traefik.service").read_text().replace("/bin/traefik", "/bin/nothere"))
    result = subprocess.run(["systemd-analyze", "verify", f"--root={root}",
                             "/etc/systemd/system/traefik.service"], capture_output=True, text=True)
    assert "nothere" in result.stderr


def test_dry_run_changes_nothing(fixture: Fixture, root: Path) -> None:
    before = snapshot(root)
    outcome = apply(fixture, root, dry_run=True)
    assert snapshot(root) == before
    steps = {s.id: s for s in outcome.plan.steps}
    assert all(not s.done for s in outcome.plan.steps if not s.id.startswith("group"))
    unit = steps["file:/etc/systemd/system/jupyterhub.service"]
    apply(fixture, root)
    installed = root / "etc/systemd/system/jupyterhub.service"
    assert hashlib.sha256(installed.read_bytes()).hexdigest() in unit.summary
    # a dry run after the apply plans nothing
    assert apply(fixture, root, dry_run=True).plan.pending == []


def test_verify_reports_an_edited_unit_and_apply_repairs_it(fixture: Fixture, root: Path) -> None:
    apply(fixture, root)
    unit = root / "etc/systemd/system/jupyterhub.service"
    unit.write_text(unit.read_text().replace("Restart=always", "Restart=no"))
    (root / "opt/tljh/hub/bin/traefik").write_bytes(b"#!/bin/sh\necho evil\n")
    (root / "opt/tljh/user/.tljh-lock-key").unlink()
    problems = engine.verify(Layout(root))
    assert any(p.startswith("/etc/systemd/system/jupyterhub.service: sha256") for p in problems)
    assert "/opt/tljh/user: not the user environment that was applied" in problems
    assert any("contents changed" in p and "/opt/tljh/hub." in p for p in problems)
    repaired = apply(fixture, root)
    assert repaired.ran == ["user-env", "file:/etc/systemd/system/jupyterhub.service"]
    assert "Restart=always" in unit.read_text()


def test_failed_upgrade_keeps_the_previous_generation(fixture: Fixture, root: Path,
                                                      tmp_path: Path) -> None:
    apply(fixture, root, "old-hub")
    hub_before = os.readlink(root / "opt/tljh/hub")
    # a store whose fx-hub 1.1.0 wheel is corrupted
    store = tmp_path / "corrupt-store"
    shutil.copytree(fixture.store, store)
    new_wheel = next(a for c in [lockfile.load(fixture.locks["new-hub"]).components["hub"]]
                     for p in c.packages if p.name == "fx-hub" for a in p.wheels)
    (store / "sha256" / new_wheel.sha256).write_bytes(b"not a wheel")
    with pytest.raises(IntegrityError, match="fx_hub-1.1.0"):
        apply(fixture, root, "new-hub", source=fixture.source(store))
    assert os.readlink(root / "opt/tljh/hub") == hub_before
    assert engine.status(Layout(root))["current"]["number"] == 1
    assert engine.verify(Layout(root)) == []
    # a run killed midway leaves a half-built directory without its marker
    half = root / "opt/tljh" / apply(fixture, root, "new-hub", dry_run=True).plan.dirs["hub"]
    (half / "bin").mkdir(parents=True)
    (half / "bin/python3").write_text("half written")
    # a re-run with good artifacts completes it
    outcome = apply(fixture, root, "new-hub")
    assert (half / "bin/python3").is_symlink()
    assert outcome.generation == 2
    # a new lock changes only what changed: the hub set, and the link to it
    assert outcome.ran == ["hub", "link:/opt/tljh/hub"]
    assert os.readlink(root / "opt/tljh/hub") != hub_before
    assert engine.verify(Layout(root)) == []


def test_downgrade_refused_and_rollback(fixture: Fixture, root: Path) -> None:
    apply(fixture, root, "old-hub")
    old_hub = os.readlink(root / "opt/tljh/hub")
    apply(fixture, root, "new-hub")
    new_hub = os.readlink(root / "opt/tljh/hub")
    with pytest.raises(TljhLockError, match="older than the one applied.*generation 1"):
        apply(fixture, root, "old-hub")
    assert os.readlink(root / "opt/tljh/hub") == new_hub
    previous = engine.rollback(Layout(root))
    assert previous.number == 1
    assert os.readlink(root / "opt/tljh/hub") == old_hub
    assert engine.verify(Layout(root)) == []
    with pytest.raises(TljhLockError, match="first one"):
        engine.rollback(Layout(root))
    # forward again, and back explicitly with --allow-downgrade
    assert apply(fixture, root, "new-hub").generation == 3
    assert apply(fixture, root, "old-hub", allow_downgrade=True).generation == 4
    assert os.readlink(root / "opt/tljh/hub") == old_hub  # reused, not rebuilt


def test_concurrent_apply_refuses(fixture: Fixture, root: Path) -> None:
    state = root / "opt/tljh/state"
    state.mkdir(parents=True)
    with open(state / "apply.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(TljhLockError, match="another tljh-lock apply is running"):
            apply(fixture, root)
    assert not (root / "opt/tljh/hub").exists()


def test_unpack_refuses_links_out(tmp_path: Path) -> None:
    evil = _tar(tmp_path / "evil.tar.gz", {"top/d/a": "..", "top/d/a/b": "../../etc"}, {})
    with pytest.raises(IntegrityError, match="below a symlink"):
        unpack_tree(evil, tmp_path / "out", "top", "evil")
    out = _tar(tmp_path / "out.tar.gz", {"top/l": "../../etc"}, {})
    with pytest.raises(IntegrityError, match="links outside"):
        unpack_tree(out, tmp_path / "out2", "top", "evil")


@pytest.fixture(scope="module")
def bundle(fixture: Fixture, vendor_store: Path,  # noqa: F811 - the imported fixture
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle of the old lock for this machine's arch, as `tljh-lock bundle` writes it
    (the sdist and the source pin built into wheels with the locked build backend)."""
    out = tmp_path_factory.mktemp("apply-bundle")
    with FixtureUpstream(fixture.upstream) as server:
        fetcher = Fetcher(Store(out / "store"), MirrorMap.from_pairs(server.mirror_map()),
                          [vendor_store.as_uri()])
        return write_bundle(fixture.locks["old"], fixture.target.arch, out / "tljh.bundle",
                            fetcher).path


def run_offline_from_bundle(bundle: Path, tmp_path: Path,
                            *args: str) -> subprocess.CompletedProcess[str]:
    """`apply --bundle` by the bundle's own zipapp, under the system python3, in a network
    namespace with no interfaces up (no route anywhere, no DNS)."""
    pyz = tmp_path / "tljh-lock.pyz"
    if not pyz.exists():
        with tarfile.open(bundle) as tar:
            member = tar.extractfile(safe_archive.PYZ_NAME)
            assert member is not None
            pyz.write_bytes(member.read())
    return subprocess.run(["unshare", "-n", SYSTEM_PYTHON, "-I", pyz, *args],
                          capture_output=True, text=True, env={"PATH": os.environ["PATH"],
                                                               "LANG": "C.UTF-8"})


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a network namespace")
def test_apply_from_bundle_without_network(bundle: Path, root: Path, tmp_path: Path) -> None:
    result = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(bundle),
                                     "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["generation"] == 1 and "hub" in report["ran"]
    tljh_config = root / "opt/tljh/hub/bin/tljh-config"
    out = subprocess.run([tljh_config], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tljh-config (fixture)"  # built from the source pin
    assert not list(root.glob("opt/tljh/state/*bundle*"))  # the unpacked bundle is gone
    # a re-run reads only the manifest: a no-op, fast even with the interpreter's start-up
    started = time.monotonic()
    again = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(bundle),
                                    "--root", str(root), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ran"] == []
    assert time.monotonic() - started < 2.0
    assert run_offline_from_bundle(bundle, tmp_path, "verify", "--root", str(root)).returncode == 0
    status = run_offline_from_bundle(bundle, tmp_path, "status", "--json", "--root", str(root))
    assert json.loads(status.stdout)["current"]["lock-sha256"] == \
        safe_archive.read_manifest(bundle).lock.sha256


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a network namespace")
def test_corrupted_bundle_changes_nothing(bundle: Path, root: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.bundle"
    shutil.copyfile(bundle, corrupt)
    manifest = safe_archive.read_manifest(bundle)
    victim = next(e for name, e in sorted(manifest.members.items())
                  if name.startswith("sha256/") and e.size > 1024)
    with tarfile.open(bundle) as tar:
        offset = tar.getmember(victim.name).offset_data
    with open(corrupt, "r+b") as fh:
        fh.seek(offset + 512)
        byte = fh.read(1)
        fh.seek(offset + 512)
        fh.write(bytes([byte[0] ^ 0xFF]))
    before = snapshot(root)
    result = run_offline_from_bundle(bundle, tmp_path, "apply", "--bundle", str(corrupt),
                                     "--root", str(root))
    assert result.returncode == EXIT_INTEGRITY, result.stderr
    assert victim.sha256 in result.stderr
    assert snapshot(root) == before


def test_command_line(fixture: Fixture, root: Path, tljh) -> None:  # type: ignore[no-untyped-def]
    where = ["--root", root]
    store = ["--lock", fixture.locks["old"], "--store", fixture.store]
    result = tljh("apply", "--dry-run", *where, *store)
    assert result.code == 0 and "[run ] hub: hub environment" in result.out
    assert "file:/etc/sudoers.d/jupyterhub-admins: /etc/sudoers.d/jupyterhub-admins mode 0440 " \
           "sha256 " in result.out
    assert not (root / "opt").exists()
    result = tljh("apply", *where, *store)
    assert result.code == 0 and result.out.startswith("generation 1 (lock sha256 ")
    result = tljh("status", *where)
    assert result.code == 0 and "generation 1 since" in result.out
    assert json.loads(tljh("status", "--json", *where).out)["current"]["number"] == 1
    assert tljh("verify", *where).code == 0
    unit = root / "etc/systemd/system/traefik.service"
    unit.chmod(0o666)
    result = tljh("verify", *where)
    assert result.code == 1
    assert "drift: /etc/systemd/system/traefik.service: mode 0666" in result.err
    result = tljh("apply", *where, "--lock", fixture.locks["new"], "--store", fixture.store)
    assert result.code == 0 and unit.stat().st_mode & 0o777 == 0o644
    result = tljh("rollback", *where)
    assert result.code == 0 and result.out.startswith("rolled back to generation 1")
    result = tljh("apply", *where, *store, "--bundle", fixture.store)
    assert result.code == EXIT_INPUT and "takes no --store" in result.err
