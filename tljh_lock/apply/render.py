"""The files around the installed environments, rendered from `tljh_lock/templates/`: the
systemd units, the hub's configuration, tljh-lock's route to configurable-http-proxy in TLJH's
traefik rules directory, the sudoers file. traefik's own configuration is TLJH's (tljh.py)."""

from __future__ import annotations

import functools
import pkgutil
import string
from dataclasses import dataclass

from tljh_lock.apply import layout as L

PROXY_ENV = f"{L.STATE}/proxy.env"
HUB_CONFIG = f"{L.STATE}/jupyterhub_config.py"
TRAEFIK_STATIC = f"{L.STATE}/traefik.toml"  # TLJH's, rendered by its tljh.traefik
# tljh-lock's route to configurable-http-proxy, in the directory TLJH's traefik.toml watches
TRAEFIK_ROUTE = f"{L.STATE}/rules/tljh-lock-proxy.toml"
# TLJH 2.0's own layout, where the hub drives traefik and there is no proxy of ours
TWO_UNITS = ("jupyterhub.service", "traefik.service")


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


def units(proxied: bool) -> tuple[str, ...]:
    """The units of the layout: with configurable-http-proxy behind traefik (the seed's three),
    or TLJH 2.0's two."""
    return L.UNITS if proxied else TWO_UNITS


@functools.cache
def render_all(proxied: bool = True) -> tuple[RenderedFile, ...]:
    """Every rendered file. They name only the stable paths (/opt/tljh/hub, ...), so that a new
    generation changes them only when the templates change."""
    values = {
        "prefix": L.PREFIX, "state": L.STATE, "hub": L.HUB, "node": L.NODE, "proxy": L.PROXY,
        "proxy_env": PROXY_ENV, "hub_config": HUB_CONFIG, "traefik_static": TRAEFIK_STATIC,
        "http_port": str(L.HTTP_PORT), "proxy_port": str(L.PROXY_PORT),
        "proxy_api_port": str(L.PROXY_API_PORT), "hub_port": str(L.HUB_PORT),
        "admins": L.ADMINS_GROUP,
    }

    def render(name: str) -> bytes:
        return string.Template(_template(name)).substitute(values).encode("utf-8")

    if proxied:
        files = [RenderedFile(f"{L.UNIT_DIR}/{unit}", render(unit), 0o644) for unit in L.UNITS]
        files.append(RenderedFile(TRAEFIK_ROUTE, render("traefik-rules.toml"), 0o600))
        hub_config = render("jupyterhub_config.py") + render("jupyterhub_config-chp.py")
    else:
        files = [RenderedFile(f"{L.UNIT_DIR}/jupyterhub.service",
                              render("jupyterhub.traefik_file.service"), 0o644),
                 RenderedFile(f"{L.UNIT_DIR}/traefik.service", render("traefik.service"),
                              0o644)]
        hub_config = render("jupyterhub_config.py")
    files += [
        RenderedFile(HUB_CONFIG, hub_config, 0o644),
        RenderedFile(L.SUDOERS, render("sudoers"), 0o440, check="sudoers"),
    ]
    return tuple(sorted(files, key=lambda f: f.path))
