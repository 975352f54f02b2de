"""Resolve an `npm` recipe: npm builds the tree, then every package is checked upstream.

npm itself resolves (`npm install --package-lock-only`, through the mirror map, with no
configuration of this machine's and as if it ran on the locked Node.js, whose version steers
npm's choice among versions by their `engines`). Then, for every package of the tree, its
packument gives its `engines` and the registry's integrity, and its tarball is fetched and
checked against that sha512 integrity while its sha256 and size are recorded. Every
`engines.node` is then checked against the locked Node.js with npm's own semver, through node.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from tljh_lock.core import runner
from tljh_lock.core.errors import InputError, IntegrityError, TljhLockError, UpstreamError
from tljh_lock.core.targets import Target
from tljh_lock.lock import model
from tljh_lock.lock.kinds.npm import (
    FLAGS,
    NAME,
    PATH,
    Component,
    Package,
    json_text,
    resolved_versions,
    string_map,
    tarball_file_name,
    tarball_url,
)
from tljh_lock.lock.model import Artifact
from tljh_lock.lock.recipes import Recipe
from tljh_lock.upstream.http import Client, system_ca_file
from tljh_lock.upstream.mirrors import MirrorMap

DEFAULT_REGISTRY = "https://registry.npmjs.org/"
# The corgi (abbreviated) packument when the registry has it: it still carries engines.
PACKUMENT_ACCEPT = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"
NPM_TIMEOUT = 900
NODE_COMPONENT = "nodejs"  # the component whose version, when it is locked, must be `node`

# package-lock entry keys the lock carries; the ignored ones only inform (funding links,
# deprecation notices). Any other key (inBundle, link, hasShrinkwrap, bundleDependencies,
# acceptDependencies, workspaces...) is a layout tljh-lock does not lock.
_CARRIED = {"name", "version", "resolved", "integrity", "license", "dependencies",
            "optionalDependencies", "peerDependencies", "peerDependenciesMeta", "bin",
            "engines", "os", "cpu", "libc", *FLAGS.values()}
_IGNORED = {"funding", "deprecated"}

# SRI algorithms we can check, strongest first.
_SRI_ALGORITHMS = ("sha512", "sha384", "sha256", "sha1")

# npm's semver, as npm-install-checks calls it to raise EBADENGINE.
_SATISFIES_JS = """
const [npmHome, inputPath] = process.argv.slice(1)
// the semver npm itself loads: bundled in npm's node_modules, or Debian's shared copy
const semver = require(require.resolve('semver', {paths: [npmHome]}))
const {version, ranges} = JSON.parse(require('fs').readFileSync(inputPath, 'utf8'))
const opts = {includePrerelease: true}
process.stdout.write(JSON.stringify(ranges.map(range => semver.satisfies(version, range, opts))))
"""


@dataclass(frozen=True)
class NpmRecipe:
    name: str
    file: str
    hash: str
    registry: str
    node: str | None
    dependencies: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"recipes/{self.file}"

    @property
    def root_name(self) -> str:
        # A fixed name: npm would otherwise take the temporary folder's, and the root must not
        # share the name of a dependency.
        return f"tljh-{self.name}"

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> NpmRecipe:
        table = recipe.table
        registry = table.url("registry", optional=True) or DEFAULT_REGISTRY
        if not registry.endswith("/"):
            table.fail(f"{registry!r} must end with /", "registry")
        node = table.string("node", optional=True)
        if node is not None and not _is_plain_version(node):
            table.fail(f"{node!r} is not a Node.js version like 22.12.0", "node")
        dependencies = string_map(table, "dependencies")
        if not dependencies:
            table.fail("names no packages", "dependencies")
        for name in dependencies:
            if not NAME.match(name):
                table.fail(f"{name!r} is not an npm package name", "dependencies")
        return cls(recipe.name, recipe.file, recipe.hash, registry, node,
                   tuple(sorted(dependencies.items())))


def _is_plain_version(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(part.isdigit() for part in parts)


def locked_node(recipe: NpmRecipe, resolved: Mapping[str, object]) -> str:
    """The recipe's `node`, which must equal the locked Node.js component's version."""
    component = resolved.get(NODE_COMPONENT)
    version = getattr(component, "version", None)
    from_lock = version.lstrip("v") if isinstance(version, str) else None
    if recipe.node and from_lock and recipe.node != from_lock:
        raise InputError(f"{recipe.where}: node = {recipe.node!r}, but the lock's "
                         f"{NODE_COMPONENT} component is Node.js {from_lock}",
                         hint="make the two versions agree")
    node = recipe.node or from_lock
    if not node:
        raise InputError(f"{recipe.where}: no Node.js version to check engines against",
                         hint=f'set node = "X.Y.Z", or after = ["{NODE_COMPONENT}"]')
    return node


def resolve(recipe: NpmRecipe, targets: list[Target], client: Client,
            previous: Component | None, upgrade: Iterable[str],
            resolved: Mapping[str, object]) -> Component:
    node = locked_node(recipe, resolved)
    # `update` normalizes --upgrade-package names as Python's; npm names are compared alike.
    package_lock = run_npm(recipe, node, client, previous, {canonicalize_name(n) for n in upgrade})
    entries = read_entries(recipe, package_lock, client.mirrors)
    names = sorted({entry["name"] for entry in entries.values()})
    with ThreadPoolExecutor(max_workers=8) as pool:
        packuments = dict(zip(names, pool.map(lambda n: packument(recipe, client, n), names)))
        packages = list(pool.map(
            lambda item: verify(recipe, client, item[0], item[1], packuments[item[1]["name"]]),
            sorted(entries.items())))
    check_engines(recipe, node, packages)
    tree = {package.path: package for package in packages}
    component = Component(
        recipe=recipe.file,
        recipe_hash=recipe.hash,
        registry=recipe.registry,
        node=node,
        name=recipe.root_name,
        dependencies=recipe.dependencies,
        resolves=(),
        packages=tuple(
            dataclasses.replace(p, resolves=resolved_versions(tree, p.path, p.requirements()))
            for p in packages),
    )
    component.resolves = resolved_versions(tree, "", component.root_requirements())
    # What `check` would reject is never written: npm's tree must be closed as it stands.
    problems = component.problems(targets)
    if problems:
        raise UpstreamError(f"{recipe.where}: the tree npm resolved is not installable: "
                            + "; ".join(map(str, problems)))
    return component


def run_npm(recipe: NpmRecipe, node: str, client: Client, previous: Component | None,
            upgrade: set[str]) -> dict[str, Any]:
    """npm's package-lock for the recipe; the previous lock's pins are kept where they fit."""
    npm_home()  # without npm, say so, rather than npm install's failure read as the recipe's
    registry = client.mirrors.to_mirror(recipe.registry)
    if not registry.startswith(("https://", "http://")):
        raise InputError(f"{recipe.where}: npm needs an http(s) registry, not {registry}",
                         hint=f"map {recipe.registry} to an http(s) mirror")
    with tempfile.TemporaryDirectory(prefix="tljh-lock-npm-") as tmp:
        work = Path(tmp)
        project = work / "project"
        project.mkdir()
        root = {"name": recipe.root_name, "private": True,
                "dependencies": dict(recipe.dependencies)}
        (project / "package.json").write_text(json_text(root))
        if previous is not None:
            kept = tuple(p for p in previous.packages if canonicalize_name(p.name) not in upgrade)
            seed = dataclasses.replace(previous, packages=kept).package_lock()
            (project / "package-lock.json").write_text(json_text(seed))
        # Separate empty files: npm 11 refuses to load one file (e.g. /dev/null) twice.
        for name in ("user.npmrc", "global.npmrc"):
            (work / name).write_text("")
        # npm picks among versions by their engines against process.version: make that the
        # locked Node.js, so that every maintainer's node resolves alike.
        (work / "locked-node.js").write_text(
            f"Object.defineProperty(process, 'version', {{value: {json.dumps('v' + node)}}})\n")
        env = {"HOME": str(work), "NPM_CONFIG_USERCONFIG": str(work / "user.npmrc"),
               "NPM_CONFIG_GLOBALCONFIG": str(work / "global.npmrc"),
               "NODE_OPTIONS": f"--require {work / 'locked-node.js'}"}
        ca_file = system_ca_file()
        if ca_file:
            env["NODE_EXTRA_CA_CERTS"] = ca_file
        argv = ["npm", "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
                "--no-fund", "--no-update-notifier", "--omit-lockfile-registry-resolved=false",
                "--lockfile-version=3", "--install-strategy=hoisted", "--engine-strict=false",
                "--legacy-peer-deps=false", "--loglevel=warn", "--registry", registry,
                "--cache", str(work / "cache")]
        try:
            runner.run(argv, env=env, cwd=project, what=f"{recipe.where}: npm install",
                       timeout=NPM_TIMEOUT)
        except TljhLockError as exc:
            raise UpstreamError(exc.message, hint="check the package names and ranges in "
                                f"{recipe.where}") from None
        data: dict[str, Any] = json.loads((project / "package-lock.json").read_text())
    return data


def read_entries(recipe: NpmRecipe, package_lock: dict[str, Any], mirrors: MirrorMap
                 ) -> dict[str, dict[str, Any]]:
    """npm's entries by path, each with its real `name` and canonical `resolved` URL."""
    if package_lock.get("lockfileVersion") != 3:
        raise UpstreamError(f"{recipe.where}: npm wrote lockfileVersion "
                            f"{package_lock.get('lockfileVersion')}, not 3")
    entries: dict[str, dict[str, Any]] = {}
    for path, raw in sorted(package_lock.get("packages", {}).items()):
        if path == "":
            continue
        unsupported = sorted(set(raw) - _CARRIED - _IGNORED)
        if unsupported or not PATH.match(path):
            raise InputError(f"{recipe.where}: {path} is a {', '.join(unsupported) or 'path'} "
                             "entry; tljh-lock locks only registry packages in node_modules")
        entry = {key: value for key, value in raw.items() if key in _CARRIED}
        entry.setdefault("name", path.rpartition("node_modules/")[2])
        if not entry.get("resolved") or not entry.get("integrity"):
            raise UpstreamError(f"{recipe.where}: npm recorded no resolved URL or integrity for "
                                f"{path}")
        entry["resolved"] = mirrors.to_canonical(entry["resolved"])
        expected = tarball_url(recipe.registry, entry["name"], entry["version"])
        if entry["resolved"] != expected:
            raise InputError(f"{recipe.where}: {path} comes from {entry['resolved']}, not from "
                             f"the registry ({expected})")
        entries[path] = entry
    return entries


def packument(recipe: NpmRecipe, client: Client, name: str) -> dict[str, Any]:
    # npm's own spelling of a scoped name in the URL: @scope%2fname.
    url = recipe.registry + name.replace("/", "%2f")
    document = client.get(url, accept=PACKUMENT_ACCEPT, what=f"{recipe.where}: {name}")
    try:
        data = json.loads(document.data)
    except ValueError:
        raise UpstreamError(f"{recipe.where}: {url} is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise UpstreamError(f"{recipe.where}: {url} is not a packument (no versions)")
    return data


def parse_sri(value: str) -> list[tuple[str, bytes]]:
    """The (algorithm, digest) pairs of an SRI string that we can check."""
    found = []
    for token in value.split():
        algorithm, _, rest = token.partition("-")
        if algorithm in _SRI_ALGORITHMS:
            try:
                found.append((algorithm, base64.b64decode(rest.split("?")[0], validate=True)))
            except binascii.Error:
                continue
    return found


def verify(recipe: NpmRecipe, client: Client, path: str, entry: dict[str, Any],
           document: dict[str, Any]) -> Package:
    """The tarball fetched and checked against npm's and the registry's integrity."""
    name, version = entry["name"], entry["version"]
    label = f"{recipe.where}: {name} {version}"
    manifest = document["versions"].get(version)
    if not isinstance(manifest, dict):
        raise UpstreamError(f"{label} is no longer in the registry (its packument does not "
                            "list it)", hint="the version was unpublished: pick another one")
    dist: dict[str, Any] = manifest["dist"] if isinstance(manifest.get("dist"), dict) else {}
    expected = parse_sri(entry["integrity"])
    if isinstance(dist.get("integrity"), str):
        expected += parse_sri(dist["integrity"])
    if not expected:
        raise IntegrityError(f"{label}: no integrity we can check ({entry['integrity']!r})")
    data = client.get(entry["resolved"], what=label).data
    for algorithm, digest in expected:
        if hashlib.new(algorithm, data).digest() != digest:
            raise IntegrityError(
                f"{label}: {entry['resolved']} does not match its {algorithm} integrity",
                hint="the registry or a mirror served other bytes than it published")
    sha512 = base64.b64encode(hashlib.sha512(data).digest()).decode()
    engines = manifest.get("engines")
    peer_meta = entry.get("peerDependenciesMeta", {})
    return Package(
        path=path,
        name=name,
        version=version,
        # sha512 even where the registry knows only a sha1 (packages from before 2017),
        # once that sha1 matched: npm ci looks the tarball up in its cache by this.
        integrity=f"sha512-{sha512}",
        tarball=Artifact(tarball_file_name(name, version), entry["resolved"], len(data),
                         hashlib.sha256(data).hexdigest()),
        license=entry["license"] if isinstance(entry.get("license"), str) else None,
        engines=tuple(sorted((k, v) for k, v in engines.items() if isinstance(v, str)))
        if isinstance(engines, dict) else (),
        dependencies=_pairs(entry.get("dependencies")),
        optional_dependencies=_pairs(entry.get("optionalDependencies")),
        peer_dependencies=_pairs(entry.get("peerDependencies")),
        optional_peers=tuple(sorted(n for n, meta in peer_meta.items()
                                    if isinstance(meta, dict) and meta.get("optional"))),
        bin=_pairs(entry.get("bin")),
        os=tuple(entry.get("os", ())),
        cpu=tuple(entry.get("cpu", ())),
        libc=tuple(entry.get("libc", ())),
        flags=tuple(key for key, npm_key in FLAGS.items() if entry.get(npm_key) is True),
    )


def _pairs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple(sorted((k, v) for k, v in value.items() if isinstance(v, str)))


def npm_home() -> Path:
    """The directory of the npm package that resolves (its semver decides engines)."""
    npm = shutil.which("npm")
    if npm is None:
        raise TljhLockError("npm is needed to resolve npm recipes, and it is not on PATH",
                            hint="install Node.js with npm (Debian: apt-get install npm)")
    return Path(npm).resolve().parents[1]


def satisfies(version: str, ranges: list[str], what: str) -> list[bool]:
    """For each range, whether `version` satisfies it, by npm's semver."""
    with tempfile.TemporaryDirectory(prefix="tljh-lock-semver-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"version": version, "ranges": ranges}))
        result = runner.run(["node", "-e", _SATISFIES_JS, npm_home(), request], what=what)
    answers = json.loads(result.stdout)
    assert len(answers) == len(ranges)
    return [bool(answer) for answer in answers]


def check_engines(recipe: NpmRecipe, node: str, packages: list[Package]) -> None:
    # Optional packages whose engines exclude the node are skipped by npm at install time.
    wanted = [(p, dict(p.engines)["node"]) for p in packages
              if "node" in dict(p.engines) and not p.optional]
    if not wanted:
        return
    answers = satisfies(node, [r for _, r in wanted], f"{recipe.where}: engines")
    excluded = [f"{p.name} {p.version} needs node {r!r}" for (p, r), ok in zip(wanted, answers)
                if not ok]
    if excluded:
        raise InputError(
            f"{recipe.where}: the locked Node.js {node} is excluded by the engines of: "
            + "; ".join(excluded),
            hint="pin versions that support this Node.js in the recipe, or lock a newer Node.js")


def resolve_recipe(recipe: Recipe, targets: list[Target], client: Client,
                   previous: model.Component | None, upgrade: set[str],
                   resolved: Mapping[str, model.Component]) -> Component:
    own = previous if isinstance(previous, Component) else None
    return resolve(NpmRecipe.from_recipe(recipe), targets, client, own, upgrade, resolved)
