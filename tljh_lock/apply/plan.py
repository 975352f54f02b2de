"""Plan an apply: from the lock and what `observe` saw on the server, the steps to run, each
keyed by the hash of its inputs and judged done by what is on disk (a marker written last into
a built directory and its tree as built, a file's hash, a link's target), which cannot disagree
with a lost or stale state file. Pure: it reads nothing and changes nothing; `--dry-run` prints
the plan.

A built directory whose tree changed since it was built (what `verify` reports) is not reused:
the build is made again beside it as `<role>.<key>.<n>`, and the changed one stays, in use by
the previous generation, until garbage collection. A changed hub environment that holds
distributions the lock does not (an admin's `pip install`) is not replaced silently: the plan
names it in `refusals`, and apply refuses unless told to rebuild."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tljh_lock.apply import layout as L
from tljh_lock.apply import render, tljh
from tljh_lock.apply.admins import Admin
from tljh_lock.apply.observe import Interpreter, Observed
from tljh_lock.apply.state import State
from tljh_lock.apply.steps import (
    AdminsStep,
    EnableStep,
    FileStep,
    GroupStep,
    HubBuild,
    LinkStep,
    LockCopyStep,
    PathsStep,
    PluginsStep,
    ProxyBuild,
    RetireProxyStep,
    Step,
    TokenStep,
    TraefikConfigStep,
    UnpackBuild,
    UserEnvStep,
)
from tljh_lock.apply.wheels import BuiltWheels, target_for, wheel_set
from tljh_lock.core.errors import InputError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.kinds import release as release_lock
from tljh_lock.lock.model import Component, Lock

# Bump when the way a directory is built changes, so that existing ones are rebuilt.
BUILD_VERSION = "2"  # 2: wheels installed in-process, not by the locked pip

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


def hash_of(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@dataclass
class Plan:
    lock_sha256: str
    steps: list[Step]
    dirs: dict[str, str]  # role -> directory below /opt/tljh
    versions: dict[str, str]
    # why this plan would discard what someone installed (apply refuses unless rebuilding)
    refusals: list[str] = field(default_factory=list)

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


def plan(lock: Lock, lock_sha256: str, observed: Observed, interpreter: Interpreter,
         built: BuiltWheels, admins: tuple[Admin, ...] = ()) -> Plan:
    """The steps that install `lock` (whose file has `lock_sha256`) with `interpreter`, the
    wheels built from its sources taken from `built`, and set up `admins` as TLJH's installer
    does."""
    hub = lock.components.get(HUB)
    if not isinstance(hub, pip_lock.Component):
        raise InputError(f"the lock has no pip component {HUB!r} (the hub environment)")
    target = target_for(hub.applicable_targets(lock.targets), interpreter, HUB)
    wheels = wheel_set(hub, target, built, HUB, with_pip=True)
    traefik = _release_file(lock, TRAEFIK, interpreter.arch)
    traefik_input = None
    if traefik is not None:
        component, file = traefik
        traefik_input = (file.artifact, component.binary or "traefik")
    hub_key = hash_of("hub", BUILD_VERSION, interpreter.path, "{}.{}".format(*interpreter.minor),
                      *wheels.key_material,
                      *([f"traefik {traefik_input[0].sha256} {traefik_input[1]}"]
                        if traefik_input else []))
    hub_dir, hub_done, changed = built_dir(observed, "hub", hub_key)
    dirs = {"hub": hub_dir}
    refusals = [refusal for name in changed
                for refusal in [_unlocked_refusal(observed, name, locked(hub, target))]
                if refusal and not hub_done]
    reuse = _reusable(observed, hub_dir) if not hub_done else ""
    steps: list[Step] = [HubBuild(
        id="hub", summary=f"hub environment {dirs['hub']}: {len(wheels.wheels)} wheels for "
        f"{target.name}" + (f", traefik {traefik[0].version}" if traefik else "")
        + _rebuilt(changed, hub_done) + (f", what is unchanged linked from {reuse}"
                                         if reuse else ""),
        key=hub_key, done=hub_done,
        restarts=(JUPYTERHUB_UNIT, TRAEFIK_UNIT), directory=dirs["hub"],
        python=interpreter.path, wheels=wheels, traefik=traefik_input,
        plugins=hub.plugins, hub_versions=_locked_versions(hub, target) if hub.plugins else (),
        user_versions=_user_versions(lock, interpreter.arch) if hub.plugins else None,
        reuse_from=reuse)]
    node = _release_file(lock, NODEJS, interpreter.arch)
    if node is not None:
        component, file = node
        key = hash_of("node", BUILD_VERSION, file.artifact.sha256, file.top_dir or "")
        dirs["node"], done, changed = built_dir(observed, "node", key)
        steps.append(UnpackBuild(
            id="node", summary=f"Node.js {component.version} into {dirs['node']}"
            + _rebuilt(changed, done), key=key, done=done, restarts=(PROXY_UNIT,),
            directory=dirs["node"], artifact=file.artifact, top_dir=file.top_dir))
    proxy = lock.components.get(PROXY)
    if proxy is not None:
        steps.append(_proxy_step(lock, proxy, observed, dirs, interpreter.arch))
    if USER_ENV in lock.components:
        steps.append(_user_step(lock, observed, built, interpreter.arch))
    steps += system_steps(observed, dirs)
    current = observed.state.current_generation
    # Planned only when the copy is damaged: a no-op apply records nothing new in the state.
    if current is not None and current.lock_sha256 == lock_sha256 != observed.lock_copy:
        copy = f"{L.STATE}/generations/{current.number}.lock.toml"
        steps.append(LockCopyStep(
            id="lock-copy", summary=f"{copy}: the kept copy of generation {current.number}'s "
            "lock, missing or changed", key=hash_of("lock-copy", lock_sha256), done=False,
            number=current.number))
    # before the links: a failure leaves the previous generation in use
    first_link = next(i for i, step in enumerate(steps) if isinstance(step, LinkStep))
    if hub.plugins:
        steps.insert(first_link, _plugins_step(hub, observed, dirs))
    if admins:
        steps.insert(first_link, _admins_step(admins, dirs))
    return Plan(lock_sha256, steps, dirs, compared_versions(lock), refusals)


def built_dir(observed: Observed, role: str, key: str) -> tuple[str, bool, list[str]]:
    """(directory, done, the changed builds of `key`) for the build of `role` keyed `key`:
    one built before whose tree is as built (the current generation's first; one whose tree
    was never recorded, its state lost, counts as built), else a new name beside the changed
    ones, `<role>.<key>` for the first."""
    base = f"{role}.{key[:16]}"
    built = sorted((name for name, marker in observed.markers.items()
                    if marker == key and (name == base or name.startswith(base + "."))),
                   key=lambda name: _suffix(name, base))
    recorded = observed.state.trees
    intact = [name for name in built
              if name not in observed.trees
              or recorded.get(name, observed.trees[name].tree) == observed.trees[name].tree]
    changed = [name for name in built if name not in intact]
    current = observed.state.current_generation
    in_use = current.dirs.get(role) if current is not None else None
    if intact:
        return (in_use if in_use in intact else intact[-1]), True, changed
    if not built:
        return base, False, []
    return f"{base}.{_suffix(built[-1], base) + 1}", False, changed


def hub_in_use(observed: Observed) -> str | None:
    """The current generation's hub directory, when it is there and marked complete."""
    current = observed.state.current_generation
    name = current.dirs.get("hub") if current is not None else None
    return name if name in observed.markers else None


def _reusable(observed: Observed, building: str) -> str:
    """The hub directory in use, when its tree is the one recorded when it was built (an
    admin's change there must not reach the next generation), for the new one to link from."""
    name = hub_in_use(observed)
    if name is None or name == building or name not in observed.trees:
        return ""
    return name if observed.state.trees.get(name) == observed.trees[name].tree else ""


def _suffix(name: str, base: str) -> int:
    rest = name[len(base) + 1:]
    return int(rest) if rest.isdigit() else 0


def _rebuilt(changed: list[str], done: bool) -> str:
    if done or not changed:
        return ""
    return f" (rebuilt: {', '.join(changed)} changed since built)"


def locked(component: pip_lock.Component, target: Target) -> dict[str, str]:
    """Canonical name -> version of what the component installs on `target`."""
    found: dict[str, str] = {canonicalize_name(p.name): p.version
                             for p in component.packages if p.applies_to(target)}
    found.update({canonicalize_name(s.name): s.version for s in component.sources})
    return found


def unlocked(have: dict[str, str], expected: dict[str, str]) -> dict[str, str]:
    """What an environment holds (`have`) that the lock does not put there."""
    return {dist: version for dist, version in sorted(have.items()) if dist not in expected}


def _unlocked_refusal(observed: Observed, name: str, expected: dict[str, str]) -> str | None:
    extra = unlocked(observed.installed.get(name, {}), expected)
    if not extra:
        return None
    return (f"{L.PREFIX}/{name} holds {', '.join(f'{d} {v}' for d, v in extra.items())}, which "
            "the lock does not (a pip install into the hub environment?); rebuilding it from "
            "the lock would leave them out")


def _locked_versions(component: pip_lock.Component, target: Target
                     ) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(locked(component, target).items()))


def _user_versions(lock: Lock, arch: str) -> tuple[tuple[str, str], ...] | None:
    component = lock.components.get(USER_ENV)
    if not isinstance(component, pip_lock.Component):
        return None
    targets = [t for t in component.applicable_targets(lock.targets) if t.arch == arch]
    return _locked_versions(component, targets[0]) if targets else None


def _plugins_step(hub: pip_lock.Component, observed: Observed, dirs: dict[str, str]) -> Step:
    """Keyed by the plugins' pins and answers, not by the hub environment: another lock with
    the same plugins does not run their hooks on config.yaml again."""
    pins = sorted(f"{s.name} {s.commit} {s.tree_hash} {s.subdirectory or ''}"
                  for s in hub.sources if s.name in {p.name for p in hub.plugins})
    key = hash_of("tljh-plugins", *pins, *(repr(p.to_dict()) for p in hub.plugins))
    return PluginsStep(
        id="tljh-plugins", summary=f"TLJH plugins {', '.join(p.name for p in hub.plugins)}: "
        f"tljh_config_post_install on {tljh.CONFIG_FILE}, then tljh_post_install (from "
        f"{L.PREFIX}/{dirs['hub']})", key=key, done=observed.plugins_done == key,
        restarts=(JUPYTERHUB_UNIT,), plugins=hub.plugins,
        python=f"{L.PREFIX}/{dirs['hub']}/bin/python3")


def _admins_step(admins: tuple[Admin, ...], dirs: dict[str, str]) -> Step:
    """Keyed by the names only: a password's hash, even, stays out of the state."""
    names = [admin.name for admin in admins]
    with_password = [admin.name for admin in admins if admin.password is not None]
    return AdminsStep(
        id="tljh-admins", summary=f"TLJH admins {', '.join(names)} in users.admin of "
        f"{tljh.CONFIG_FILE}" + (f"; the password of {', '.join(with_password)} in "
                                 f"{tljh.PASSWORDS}" if with_password else ""),
        key=hash_of("admins", *names), done=False, restarts=(JUPYTERHUB_UNIT,),
        admins=admins, python=f"{L.PREFIX}/{dirs['hub']}/bin/python3")


def _proxy_step(lock: Lock, component: Component, observed: Observed, dirs: dict[str, str],
                arch: str) -> Step:
    if not isinstance(component, npm_lock.Component):
        raise InputError(f"component {PROXY!r} is a {component.kind} component, not npm")
    if "node" not in dirs:
        raise InputError(f"component {PROXY!r} needs Node.js: the lock has no {NODEJS!r}")
    project = tuple(sorted(component.project_files().items()))
    tarballs = tuple(component.artifacts(lock.targets_for(arch), arch))
    key = hash_of("proxy", BUILD_VERSION, dirs["node"], *(text for _, text in project),
                  *(a.sha256 for a in tarballs))
    dirs["proxy"], done, changed = built_dir(observed, "proxy", key)
    return ProxyBuild(
        id="proxy", summary=f"{component.summary()} into {dirs['proxy']}"
        + _rebuilt(changed, done), key=key, done=done, restarts=(PROXY_UNIT,),
        directory=dirs["proxy"], node_dir=dirs["node"], project=project, tarballs=tarballs)


def _user_step(lock: Lock, observed: Observed, built: BuiltWheels, arch: str) -> Step:
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
    wheels = wheel_set(component, targets[0], built, USER_ENV)
    key = hash_of("user", BUILD_VERSION, installer[1].artifact.sha256, *wheels.key_material)
    # What an admin installed besides the lock is theirs, and stays; a locked distribution
    # missing or at another version is installed again at the lock's.
    moved = not_as_locked(observed.installed.get("user", {}), locked(component, targets[0]))
    return UserEnvStep(
        id="user-env", summary=f"user environment {L.USER}: Miniforge {installer[0].version}, "
        f"{len(wheels.wheels)} wheels for {targets[0].name}"
        # "again" only where there is an environment: a first install installs them all
        + (f" (again: {', '.join(moved)})" if moved and observed.installed.get("user")
           else ""), key=key,
        done=observed.markers.get(L.USER.rsplit("/", 1)[1]) == key and not moved,
        installer=installer[1].artifact,
        target=targets[0], wheels=wheels)


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def not_as_locked(have: dict[str, str], expected: dict[str, str]) -> list[str]:
    """The locked distributions missing from `have` or at another version, as `name
    version` (what the lock has)."""
    return [f"{name} {version}" for name, version in sorted(expected.items())
            if have.get(name) is None or not _same(have[name], version)]


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


def group_complete(observed: Observed, name: str) -> bool:
    """In /etc/group, in /etc/gshadow where the system keeps one, and no residue of a killed
    groupadd."""
    return (name in observed.groups and (observed.gshadow is None or name in observed.gshadow)
            and not observed.residue)


def system_steps(observed: Observed, dirs: dict[str, str]) -> list[Step]:
    """Groups, TLJH's paths, the proxy token, rendered files, traefik's configuration and
    links: what points at built directories. Without configurable-http-proxy, the layout is
    TLJH 2.0's own two units."""
    proxied = "proxy" in dirs
    steps: list[Step] = []
    for group in (L.USERS_GROUP, L.ADMINS_GROUP):
        steps.append(GroupStep(id=f"group:{group}", summary=f"group {group}",
                               key=hash_of("group", group),
                               done=group_complete(observed, group), name=group))
    # first: what apply writes below TLJH's directories gets their modes
    steps.append(PathsStep(
        id="tljh-paths", summary="TLJH's directories and files with TLJH's modes (state and "
        "config 0700, installer.log 0500, config.yaml and traefik-api.secret 0600)",
        key=hash_of("tljh-paths", *(f"{d} {m:o}" for d, m in sorted(tljh.DIRECTORIES.items()))),
        done=not observed.tljh_paths))
    if proxied:
        steps.append(TokenStep(id="proxy-token", summary=f"proxy auth token {render.PROXY_ENV}"
                               " (generated once, mode 0600)", key=hash_of("token"),
                               done=observed.token, restarts=(PROXY_UNIT, JUPYTERHUB_UNIT)))
    unit_hashes = []
    for file in render.render_all(proxied):
        digest = hashlib.sha256(file.data).hexdigest()
        if file.path.startswith(L.UNIT_DIR):
            unit_hashes.append(f"{file.path} {digest}")
        steps.append(FileStep(
            id=f"file:{file.path}", summary=f"{file.path} mode {file.mode:04o} sha256 {digest}",
            key=hash_of("file", digest, oct(file.mode)),
            done=observed.files.get(file.path) == (digest, file.mode),
            restarts=_restarted_by(file.path), file=file))
    # before the links: a configuration TLJH refuses to render leaves the previous generation
    steps += _tljh_steps(observed, dirs)
    links = {L.HUB: dirs["hub"], L.TLJH_CONFIG_LINK: f"{L.HUB}/bin/tljh-config"}
    if "node" in dirs:
        links[L.NODE] = dirs["node"]
    if proxied:
        links[L.PROXY] = dirs["proxy"]
    for link, target in sorted(links.items()):
        steps.append(LinkStep(
            id=f"link:{link}", summary=f"{link} -> {target}", key=hash_of("link", link, target),
            done=observed.links.get(link) == target,
            restarts=_restarted_by(link), link=link, target=target))
    units = render.units(proxied)
    steps.append(EnableStep(id="enable", summary=f"enable {', '.join(units)}",
                            key=hash_of("enable", *unit_hashes),
                            done=set(units) <= observed.enabled, units=units))
    return steps


def _tljh_steps(observed: Observed, dirs: dict[str, str]) -> list[Step]:
    """traefik's configuration rendered by TLJH; the proxy's unit retired without the proxy."""
    render_key = hash_of("tljh-traefik", dirs["hub"])
    found: list[Step] = [TraefikConfigStep(
        id="tljh-traefik", summary=f"traefik's configuration rendered by TLJH "
        f"(tljh.traefik of {L.PREFIX}/{dirs['hub']})", key=render_key,
        done=observed.traefik_rendered_by == render_key,
        # TLJH's render empties rules/rules.toml, where its hub keeps its routes: without the
        # proxy the hub restarts too and writes them again, as after TLJH's installer
        restarts=(TRAEFIK_UNIT,) if "proxy" in dirs else (TRAEFIK_UNIT, JUPYTERHUB_UNIT),
        python=f"{L.PREFIX}/{dirs['hub']}/bin/python3")]
    if "proxy" not in dirs and observed.proxy_unit:
        found.append(RetireProxyStep(
            id=f"retire:{PROXY_UNIT}", summary=f"remove {PROXY_UNIT} (TLJH's two-unit layout "
            "has no proxy of its own)", key=hash_of("retire", PROXY_UNIT), done=False))
    return found


def _restarted_by(path: str) -> tuple[str, ...]:
    if path in (L.HUB,):
        return (JUPYTERHUB_UNIT, TRAEFIK_UNIT)
    if path in (L.NODE, L.PROXY) or path.endswith(PROXY_UNIT):
        return (PROXY_UNIT,)
    if path.endswith(JUPYTERHUB_UNIT) or path == render.HUB_CONFIG:
        return (JUPYTERHUB_UNIT,)
    if path.endswith(TRAEFIK_UNIT):
        return (TRAEFIK_UNIT,)
    return ()


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
