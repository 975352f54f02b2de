"""Where an install lives, below `--root`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREFIX = "/opt/tljh"
HUB = f"{PREFIX}/hub"  # symlink to the current hub generation directory
NODE = f"{PREFIX}/node"  # symlink to the current Node.js directory
PROXY = f"{PREFIX}/proxy"  # symlink to the current configurable-http-proxy directory
USER = f"{PREFIX}/user"
STATE = f"{PREFIX}/state"
SCRATCH = f"{STATE}/tmp"  # emptied by every apply, under its lock
CONFIG = f"{PREFIX}/config"
UNIT_DIR = "/etc/systemd/system"
SUDOERS = "/etc/sudoers.d/jupyterhub-admins"
TLJH_CONFIG_LINK = "/usr/bin/tljh-config"

# Ports of the 2019 TLJH design; all but traefik's are bound to 127.0.0.1 only.
HTTP_PORT = 80
PROXY_PORT = 15003
PROXY_API_PORT = 15002
HUB_PORT = 15001

USERS_GROUP = "jupyterhub-users"
ADMINS_GROUP = "jupyterhub-admins"
UNITS = ("configurable-http-proxy.service", "jupyterhub.service", "traefik.service")


@dataclass(frozen=True)
class Layout:
    root: Path

    def path(self, absolute: str) -> Path:
        """The file at `absolute` on the installed system, seen from here."""
        assert absolute.startswith("/"), absolute
        return self.root / absolute.lstrip("/")

    @property
    def is_live(self) -> bool:
        """True when installing into the running system (services may be restarted)."""
        return self.root.resolve() == Path("/")

    @property
    def state_dir(self) -> Path:
        return self.path(STATE)
