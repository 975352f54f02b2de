"""The files around the installed environments, rendered from `tljh_lock/templates/`: the
systemd units, the hub's and traefik's configuration, the sudoers file."""

from __future__ import annotations

import functools
import pkgutil
import string
from dataclasses import dataclass

from tljh_lock.apply import layout as L

PROXY_ENV = f"{L.STATE}/proxy.env"
HUB_CONFIG = f"{L.STATE}/jupyterhub_config.py"
TRAEFIK_STATIC = f"{L.STATE}/traefik.toml"
TRAEFIK_DYNAMIC = f"{L.STATE}/traefik-dynamic.toml"


@dataclass(frozen=True)
class RenderedFile:
    path: str  # absolute, on the installed system
    data: bytes
    mode: int
    check: str | None = None  # "sudoers": validated with visudo before it is moved into place


def _template(name: str) -> str:
    data = pkgutil.get_data("tljh_lock", f"templates/{name}")  # works from the zipapp too
    assert data is not None, name
    return data.decode("utf-8")


@functools.cache
def render_all() -> tuple[RenderedFile, ...]:
    """Every rendered file. They name only the stable paths (/opt/tljh/hub, ...), so that a new
    generation changes them only when the templates change."""
    values = {
        "prefix": L.PREFIX, "state": L.STATE, "hub": L.HUB, "node": L.NODE, "proxy": L.PROXY,
        "proxy_env": PROXY_ENV, "hub_config": HUB_CONFIG, "traefik_static": TRAEFIK_STATIC,
        "traefik_dynamic": TRAEFIK_DYNAMIC, "http_port": str(L.HTTP_PORT),
        "proxy_port": str(L.PROXY_PORT), "proxy_api_port": str(L.PROXY_API_PORT),
        "hub_port": str(L.HUB_PORT), "admins": L.ADMINS_GROUP,
    }

    def render(name: str) -> bytes:
        return string.Template(_template(name)).substitute(values).encode("utf-8")

    files = [RenderedFile(f"{L.UNIT_DIR}/{unit}", render(unit), 0o644) for unit in L.UNITS]
    files += [
        RenderedFile(HUB_CONFIG, render("jupyterhub_config.py"), 0o644),
        RenderedFile(TRAEFIK_STATIC, render("traefik.toml"), 0o644),
        RenderedFile(TRAEFIK_DYNAMIC, render("traefik-dynamic.toml"), 0o644),
        RenderedFile(L.SUDOERS, render("sudoers"), 0o440, check="sudoers"),
    ]
    return tuple(sorted(files, key=lambda f: f.path))
