"""Plan an apply: from the lock, the recorded state and what is on disk, the steps to run, each
keyed by the hash of its inputs. Planning changes nothing; `--dry-run` prints the plan."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from tljh_lock.apply import layout as L
from tljh_lock.apply import system_files, tljh
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.apply.state import State
from tljh_lock.apply.steps import (
    MARKER,
    EnableStep,
    FileStep,
    GroupStep,
    HubBuild,
    LinkStep,
    ProxyBuild,
    Step,
    TokenStep,
    UnpackBuild,
    UserEnvStep,
    built_complete,
    hash_of,
)
from tljh_lock.apply.venv import Interpreter, target_for, wheel_set
from tljh_lock.core.errors import InputError
from tljh_lock.inspect.export import package_lock as export_package_lock
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.kinds import release as release_lock
from tljh_lock.lock.model import Artifact, Component, Lock

# Bump when the way a directory is built changes, so that existing ones are rebuilt.
BUILD_VERSION = "1"

# Component names in the lock (the recipes' file names).
HUB = "hub"
TRAEFIK = "traefik"
NODEJS = "nodejs"
PROXY = "configurable-http-proxy"
MINIFORGE = "miniforge"
USER_ENV = "user-env"
APPLIED = (HUB, TRAEFIK, NODEJS, PROXY, MINIFORGE, USER_ENV)

# The versions the downgrade rule compares, wherever a component pins them.
COMPARED = ("jupyterhub", "the-littlest-jupyterhub", "traefik", "nodejs",
            "configurable-http-proxy")

JUPYTERHUB_UNIT = "jupyterhub.service"
PROXY_UNIT = "configurable-http-proxy.service"
TRAEFIK_UNIT = "traefik.service"


@dataclass
class Plan:
    lock_sha256: str
    steps: list[Step]
    dirs: dict[str, str]  # role -> directory below /opt/tljh
    versions: dict[str, str]

    @property
    def pending(self) -> list[Step]:
        return [step for step in self.steps if not step.done]


def check_applicable(lock: Lock) -> None:
    """Installing strictly from the lock: no component in it may be skipped."""
    unknown = sorted(set(lock.components) - set(APPLIED))
    if unknown:
        raise InputError(
            "this tljh-lock cannot apply the component"
            f"{'s' if len(unknown) > 1 else ''} "
            + ", ".join(f"{name!r} ({lock.components[name].kind})" for name in unknown)
            + f"; it applies {', '.join(APPLIED)}",
            hint="remove that recipe and run `tljh-lock update`; a conda component can be "
                 "installed with `tljh-lock export --format conda-lock` and conda-lock")


def plan_apply(lock: Lock, lock_sha256: str, layout: Layout, source: ArtifactSource,
               interpreter: Interpreter) -> Plan:
    """Steps are judged done by what is on disk (a marker written last into a built directory,
    a file's hash, a link's target), which cannot disagree with a lost or stale state file."""
    hub = lock.components.get(HUB)
    if not isinstance(hub, pip_lock.Component):
        raise InputError(f"the lock has no pip component {HUB!r} (the hub environment)")
    target = target_for(hub.applicable_targets(lock.targets), interpreter, HUB)
    wheels = wheel_set(hub, target, source, HUB)
    traefik = _release_file(lock, TRAEFIK, interpreter.arch)
    traefik_input = None
    if traefik is not None:
        component, file = traefik
        traefik_input = (file.artifact, component.binary or "traefik")
    hub_key = hash_of("hub", BUILD_VERSION, interpreter.path, "{}.{}".format(*interpreter.minor),
                      *wheels.key_material,
                      *([f"traefik {traefik_input[0].sha256} {traefik_input[1]}"]
                        if traefik_input else []))
    dirs = {"hub": f"hub.{hub_key[:16]}"}
    steps: list[Step] = [HubBuild(
        id="hub", summary=f"hub environment {dirs['hub']}: {len(wheels.wheels)} wheels for "
        f"{target.name}" + (f", traefik {traefik[0].version}" if traefik else ""),
        key=hub_key, done=built_complete(layout, dirs["hub"], hub_key),
        restarts=(JUPYTERHUB_UNIT, TRAEFIK_UNIT), directory=dirs["hub"],
        python=interpreter.path, wheels=wheels, traefik=traefik_input)]
    node = _release_file(lock, NODEJS, interpreter.arch)
    if node is not None:
        component, file = node
        key = hash_of("node", BUILD_VERSION, file.artifact.sha256, file.top_dir or "")
        dirs["node"] = f"node.{key[:16]}"
        steps.append(UnpackBuild(
            id="node", summary=f"Node.js {component.version} into {dirs['node']}", key=key,
            done=built_complete(layout, dirs["node"], key), restarts=(PROXY_UNIT,),
            directory=dirs["node"], artifact=file.artifact, top_dir=file.top_dir))
    proxy = lock.components.get(PROXY)
    if proxy is not None:
        steps.append(_proxy_step(lock, proxy, layout, dirs, interpreter.arch))
    if USER_ENV in lock.components:
        steps.append(_user_step(lock, layout, source, interpreter.arch, wheels.installer))
    steps += system_steps(layout, dirs)
    return Plan(lock_sha256, steps, dirs, compared_versions(lock))


def _proxy_step(lock: Lock, component: Component, layout: Layout, dirs: dict[str, str],
                arch: str) -> Step:
    if not isinstance(component, npm_lock.Component):
        raise InputError(f"component {PROXY!r} is a {component.kind} component, not npm")
    if "node" not in dirs:
        raise InputError(f"component {PROXY!r} needs Node.js: the lock has no {NODEJS!r}")
    project = tuple(sorted(export_package_lock.files(lock, PROXY).items()))
    tarballs = tuple(component.artifacts(lock.targets_for(arch), arch))
    key = hash_of("proxy", BUILD_VERSION, dirs["node"], *(text for _, text in project),
                  *(a.sha256 for a in tarballs))
    dirs["proxy"] = f"proxy.{key[:16]}"
    return ProxyBuild(
        id="proxy", summary=f"{component.summary()} into {dirs['proxy']}", key=key,
        done=built_complete(layout, dirs["proxy"], key), restarts=(PROXY_UNIT,),
        directory=dirs["proxy"], node_dir=dirs["node"], project=project, tarballs=tarballs)


def _user_step(lock: Lock, layout: Layout, source: ArtifactSource, arch: str,
               hub_installer: Artifact) -> Step:
    component = lock.components[USER_ENV]
    if not isinstance(component, pip_lock.Component):
        raise InputError(f"component {USER_ENV!r} is a {component.kind} component, not pip")
    installer = _release_file(lock, MINIFORGE, arch)
    if installer is None:
        raise InputError(f"component {USER_ENV!r} needs the {MINIFORGE!r} installer")
    # The env's python does not exist yet: its own targets name it, one per arch.
    targets = [t for t in component.applicable_targets(lock.targets) if t.arch == arch]
    if len(targets) != 1:
        raise InputError(f"component {USER_ENV!r} needs exactly one target for {arch}, the "
                         f"installer's python (it has {len(targets)})")
    wheels = wheel_set(component, targets[0], source, USER_ENV, fallback_installer=hub_installer)
    key = hash_of("user", BUILD_VERSION, installer[1].artifact.sha256, *wheels.key_material)
    return UserEnvStep(
        id="user-env", summary=f"user environment {L.USER}: Miniforge {installer[0].version}, "
        f"{len(wheels.wheels)} wheels for {targets[0].name}", key=key,
        done=_marker(layout, L.USER) == key, installer=installer[1].artifact,
        target=targets[0], wheels=wheels)


def _marker(layout: Layout, directory: str) -> str | None:
    try:
        return (layout.path(directory) / MARKER).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _release_file(
    lock: Lock, name: str, arch: str
) -> tuple[release_lock.Component, release_lock.ReleaseFile] | None:
    component = lock.components.get(name)
    if component is None:
        return None
    if not isinstance(component, release_lock.Component):
        raise InputError(f"component {name!r} is a {component.kind} component, not a release")
    file = component.file_for(arch)
    if file is None:
        raise InputError(f"component {name!r} has no file for {arch}",
                         hint="run `tljh-lock check`")
    return component, file


def system_steps(layout: Layout, dirs: dict[str, str]) -> list[Step]:
    """Groups, the proxy token, rendered files, TLJH's own files and links: what points at built
    directories. Without configurable-http-proxy, the layout is TLJH 2.0's own two units."""
    proxied = "proxy" in dirs
    steps: list[Step] = []
    for group in (L.USERS_GROUP, L.ADMINS_GROUP):
        steps.append(GroupStep(id=f"group:{group}", summary=f"group {group}",
                               key=hash_of("group", group),
                               done=system_files.group_complete(layout, group), name=group))
    steps.append(tljh.paths_step(layout))
    if proxied:
        token = layout.path(system_files.PROXY_ENV)
        steps.append(TokenStep(id="proxy-token", summary=f"proxy auth token "
                               f"{system_files.PROXY_ENV} (generated once, mode 0600)",
                               key=hash_of("token"), done=token.exists(),
                               restarts=(PROXY_UNIT, JUPYTERHUB_UNIT)))
    unit_hashes = []
    for file in system_files.render_all(proxied):
        digest = hashlib.sha256(file.data).hexdigest()
        if file.path.startswith(L.UNIT_DIR):
            unit_hashes.append(f"{file.path} {digest}")
        steps.append(FileStep(
            id=f"file:{file.path}", summary=f"{file.path} mode {file.mode:04o} sha256 {digest}",
            key=hash_of("file", digest, oct(file.mode)),
            done=system_files.file_matches(layout, file), restarts=_restarted_by(file.path),
            file=file))
    # before the links: a configuration TLJH refuses to render leaves the previous generation
    steps += tljh.steps(layout, dirs)
    links = {L.HUB: dirs["hub"], L.TLJH_CONFIG_LINK: f"{L.HUB}/bin/tljh-config"}
    if "node" in dirs:
        links[L.NODE] = dirs["node"]
    if proxied:
        links[L.PROXY] = dirs["proxy"]
    for link, target in sorted(links.items()):
        steps.append(LinkStep(
            id=f"link:{link}", summary=f"{link} -> {target}", key=hash_of("link", link, target),
            done=system_files.read_link(layout, link) == target,
            restarts=_restarted_by(link), link=link, target=target))
    units = system_files.units(proxied)
    steps.append(EnableStep(id="enable", summary=f"enable {', '.join(units)}",
                            key=hash_of("enable", *unit_hashes), done=_enabled(layout, units),
                            units=units))
    return steps


def _restarted_by(path: str) -> tuple[str, ...]:
    if path in (L.HUB,):
        return (JUPYTERHUB_UNIT, TRAEFIK_UNIT)
    if path in (L.NODE, L.PROXY) or path.endswith(PROXY_UNIT):
        return (PROXY_UNIT,)
    if path.endswith(JUPYTERHUB_UNIT) or path == system_files.HUB_CONFIG:
        return (JUPYTERHUB_UNIT,)
    if path.endswith(TRAEFIK_UNIT):
        return (TRAEFIK_UNIT,)
    return ()


def _enabled(layout: Layout, units: tuple[str, ...]) -> bool:
    wants = layout.path(f"{L.UNIT_DIR}/multi-user.target.wants")
    return all((wants / unit).is_symlink() for unit in units)


def compared_versions(lock: Lock) -> dict[str, str]:
    found: dict[str, str] = {}
    for component in lock.components.values():
        for name, versions in component.versions().items():
            if name not in COMPARED:
                continue
            for version in versions:
                version = version.split("@", 1)[0]  # source pins read "2.0.0@<commit>"
                if name not in found or _newer(version, found[name]):
                    found[name] = version
    return found


def _newer(a: str, b: str) -> bool:
    try:
        return Version(a) > Version(b)
    except InvalidVersion:
        return False


def downgrade_reasons(plan: Plan, state: State) -> list[str]:
    """Why applying this plan would go back in time; empty if it would not.

    A lock is older than the current one when a version the hub's users see (jupyterhub, TLJH,
    traefik, Node.js, configurable-http-proxy) is lower than in the current generation, or when
    it is the lock of an earlier generation (`rollback` is the way back to one of those)."""
    current = state.current_generation
    if current is None or current.lock_sha256 == plan.lock_sha256:
        return []
    reasons = []
    for name, old in sorted(current.versions.items()):
        new = plan.versions.get(name)
        if new is not None and _newer(old, new):
            reasons.append(f"{name} {old} -> {new}")
    for generation in state.generations:
        if generation.number < current.number and generation.lock_sha256 == plan.lock_sha256:
            reasons.append(f"this lock was generation {generation.number}, before the current "
                           f"generation {current.number}")
            break
    return reasons
