"""The steps of an apply, as data: what each does, its input hash (`key`), whether it is done
already, the units to restart when it ran. `actions` makes a step done; `plan` lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tljh_lock.apply.admins import Admin
from tljh_lock.apply.render import RenderedFile
from tljh_lock.apply.wheels import WheelSet
from tljh_lock.core.targets import Target
from tljh_lock.lock.model import Artifact
from tljh_lock.lock.plugins import Plugin


@dataclass
class Step:
    id: str
    summary: str
    key: str
    done: bool
    # units to restart when this step ran on a live system
    restarts: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "action": "keep" if self.done else "run",
                "summary": self.summary, "key": self.key}


@dataclass
class BuildStep(Step):
    """A directory built beside the one in use, named by its key, complete once marked."""

    directory: str = ""


@dataclass
class HubBuild(BuildStep):
    python: str = ""
    wheels: WheelSet | None = None
    traefik: tuple[Artifact, str] | None = None  # release tarball, the binary inside
    # TLJH plugins: the built environment's are asked what they want, and refused what the
    # locked sets (name -> version; the user's None without a user environment) lack
    plugins: tuple[Plugin, ...] = ()
    hub_versions: tuple[tuple[str, str], ...] = ()
    user_versions: tuple[tuple[str, str], ...] | None = None
    # the hub directory in use, its tree as built: what it has of the same files is linked
    reuse_from: str = ""


@dataclass
class UnpackBuild(BuildStep):
    """A relocatable release tree (Node.js), unpacked as published."""

    artifact: Artifact | None = None
    top_dir: str | None = None


@dataclass
class ProxyBuild(BuildStep):
    """configurable-http-proxy: `npm ci --offline` of the locked package-lock, from an npm
    cache that holds only the locked tarballs."""

    node_dir: str = ""  # the Node.js directory (below /opt/tljh) whose npm installs
    project: tuple[tuple[str, str], ...] = ()  # package.json, package-lock.json
    tarballs: tuple[Artifact, ...] = ()


@dataclass
class UserEnvStep(Step):
    """The user environment, in place as TLJH keeps it (admins install packages into it): the
    verified Miniforge installer, then the locked pip set."""

    installer: Artifact | None = None
    target: Target | None = None
    wheels: WheelSet | None = None


@dataclass
class FileStep(Step):
    file: RenderedFile | None = None


@dataclass
class GroupStep(Step):
    name: str = ""


@dataclass
class TokenStep(Step):
    pass


@dataclass
class LinkStep(Step):
    link: str = ""
    target: str = ""


@dataclass
class EnableStep(Step):
    units: tuple[str, ...] = ()


@dataclass
class PathsStep(Step):
    """TLJH's directories and files with TLJH's modes (tljh.py)."""


@dataclass
class TraefikConfigStep(Step):
    """TLJH renders traefik's configuration, with the hub environment's python."""

    python: str = ""  # below --root


@dataclass
class RetireProxyStep(Step):
    """Leaving the three-unit layout: configurable-http-proxy's unit goes, as TLJH's installer
    removes it."""


@dataclass
class AdminsStep(Step):
    """TLJH admins set up as TLJH's installer does (`--admin`), with the hub's TLJH. Done only
    once it ran: whether a password matches is bcrypt's to tell, on the server."""

    admins: tuple[Admin, ...] = ()
    python: str = ""  # below --root


@dataclass
class LockCopyStep(Step):
    """The kept copy of the current generation's lock (`status`, `rollback`, `verify` read
    it), written again when it is missing or not that lock."""

    number: int = 0


@dataclass
class PluginsStep(Step):
    """The TLJH plugins' hooks that act on the server, run from the hub environment as TLJH's
    installer runs them: tljh_config_post_install on config.yaml, then tljh_post_install.
    Done once per set of plugins: a re-apply does not undo what an admin changed since."""

    plugins: tuple[Plugin, ...] = ()
    python: str = ""  # below --root
