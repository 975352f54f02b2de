"""The scenario the applier's tests and the reliability campaign share: a small but complete
lock (hub set with an sdist and a source pin, traefik, Node.js, an npm tree, a Miniforge
stand-in and a user set), its artifacts in a store and on the fixture upstream, a bundle of it,
and an empty server root. A support module, not a test: `python -m tests.reliability` builds
it outside pytest."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_RECIPES
from tests.upstream import FixtureUpstream, generate_hub_scenario
from tests.upstream.artifacts import build_wheel
from tests.upstream.npm_scenarios import generate_npm_scenario
from tests.upstream.scenarios import TLJH_TRAEFIK
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.bundle import zipapp
from tljh_lock.bundle.write import write_bundle
from tljh_lock.cli import main as cli
from tljh_lock.core.targets import Target
from tljh_lock.lock import file as lockfile
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.kinds import release as release_lock
from tljh_lock.lock.model import Artifact, Component, Lock
from tljh_lock.resolve.write import dumps as dump_lock
from tljh_lock.store.cas import SourceRecord, Store, default_path
from tljh_lock.store.fetch import Fetcher
from tljh_lock.upstream.mirrors import MirrorMap

SYSTEM_PYTHON = "/usr/bin/python3"
PIP_WHEEL = next(Path("/usr/share/python-wheels").glob("pip-*-py3-none-any.whl"), None)
# The fake Node.js release runs this machine's node and npm (Debian's npm is in /usr/share/nodejs,
# Node.js's own in /usr/lib/node_modules).
HOST_NODE, HOST_NPM = "/usr/bin/node", os.path.realpath("/usr/bin/npm")
PYPI_FILES = "https://files.pythonhosted.org/packages/fx/"


def system_target() -> Target:
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import platform; print(platform.python_version(),"
                          " platform.machine(), platform.libc_ver()[1])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return Target("this-system", out[0], ".".join(out[2].split(".")[:2]), out[1])


def make_tar(path: Path, members: dict[str, bytes | str], modes: dict[str, int]) -> Path:
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


def add_artifact(store: Path, path: Path, url: str, upstream: Path | None = None) -> Artifact:
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


def build_fixture(base: Path) -> Fixture:
    """The locks ("old", "new", "old-hub", "new-hub"), their store and upstream, in `base`."""
    assert PIP_WHEEL is not None
    upstream = base / "upstream"
    facts = generate_hub_scenario(upstream)
    store = base / "store"
    target = system_target()

    def published(name: str) -> Artifact:
        url = facts["files"][name]["url"]
        return add_artifact(store, upstream / url[len("https://"):], url.rsplit("/", 1)[0] + "/")

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
                         wheels=(add_artifact(store, PIP_WHEEL, PYPI_FILES, upstream),)),
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
        otp.sdist.sha256: add_artifact(store, build_wheel(wheels, "fx-otp", "1.0.1",
                                                  requires_dist=("fx-web",)), "built:"),
        tljh["sha256"]: add_artifact(store, build_wheel(
            wheels, "the-littlest-jupyterhub", "2.0.0", requires_dist=("fx-web>=1", "fx-auth"),
            files={"tljh/__init__.py": '__version__ = "2.0.0"\n',
                   "tljh/config.py": "def main():\n    print('tljh-config (fixture)')\n",
                   "tljh/traefik.py": TLJH_TRAEFIK},
            entry_points={"console_scripts": {"tljh-config": "tljh.config:main"}}), "built:"),
    }
    traefik = add_artifact(store, make_tar(base / "traefik_v3.6.5_linux_amd64.tar.gz",
                               {"traefik": b"#!/bin/sh\necho traefik 3.6.5\n", "LICENSE.md": b""},
                               {"traefik": 0o755}),
                   "https://github.com/traefik/traefik/releases/download/v3.6.5/", upstream)
    top = "node-v22.12.0-linux-x64"
    node = add_artifact(store, make_tar(base / f"{top}.tar.gz", {
        f"{top}/bin/node": f'#!/bin/sh\nexec {HOST_NODE} "$@"\n'.encode(),
        f"{top}/lib/node_modules/npm/bin/npm-cli.js":
            f"require('{HOST_NPM}')\n".encode(),
        f"{top}/bin/npm": "../lib/node_modules/npm/bin/npm-cli.js",
    }, {f"{top}/bin/node": 0o755}), "https://nodejs.org/dist/v22.12.0/", upstream)
    proxy = npm_component(base, upstream, store)
    installer = base / "Miniforge3-24.7.1-2-Linux-x86_64.sh"
    installer.write_text(f"""#!/bin/sh
# a stand-in for Miniforge's installer: a prefix with this system's python
set -eu
while [ $# -gt 0 ]; do
  case "$1" in -p) prefix="$2"; shift 2 ;; -b|-u) shift ;; *) exit 2 ;; esac
done
# -u: the installer writes its own files again into an existing prefix (a killed run left
# them half done) and keeps the packages added to it, as Miniforge does
{SYSTEM_PYTHON} -m venv --without-pip "$prefix"
""")
    miniforge = add_artifact(store, installer,
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
            locks[name].write_text(dump_lock(variant))
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


def npm_component(base: Path, upstream: Path, store: Path) -> Component:
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
        add_artifact(store, Path(package["path"]), "")
    return component


def make_root(root: Path) -> Path:
    """A server's root with the files groupadd edits and a stand-in for the system python
    (which the venv links to and `systemd-analyze verify --root` looks for)."""
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


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every path below `root`: (mode, sha256) of files, link targets, directory modes."""
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


def vendor_store() -> Path:
    """The store `make` filled with the zipapp's vendored wheels (fetched now if online)."""
    store = Store(default_path())
    if not all(store.has(w.sha256, w.size) for w in zipapp.VENDORED):
        Fetcher(store).fetch(zipapp.VENDORED)  # a TljhLockError says what is missing
    return store.root


def build_bundle(fixture: Fixture, label: str, out: Path, store_mirrors: tuple[str, ...] = ()
                 ) -> Path:
    """A bundle of one of the fixture's locks for this machine's arch, as `tljh-lock bundle`
    writes it (the sdist and the source pin built into wheels with the locked build backend)."""
    with FixtureUpstream(fixture.upstream) as server:
        fetcher = Fetcher(Store(out.parent / f"{out.name}.store"),
                          MirrorMap.from_pairs(server.mirror_map()),
                          [*store_mirrors, vendor_store().as_uri()])
        return write_bundle(fixture.locks[label], fixture.target.arch, out, fetcher).path
