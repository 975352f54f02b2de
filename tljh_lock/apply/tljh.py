"""What TLJH itself keeps below /opt/tljh, made the way TLJH's installer makes it, so that TLJH's
own tools (`tljh-config`, `tljh-config reload proxy`) find the server they expect:

- TLJH's directories with TLJH's modes: state/ and config/ 0700 (the hub's database, its
  secrets and the admin's settings live there), config/jupyterhub_config.d,
  config/traefik_config.d and state/rules 0700;
- installer.log 0500 (as TLJH's bootstrap leaves it; tljh-config's logger appends to it);
- config/config.yaml, written `{}` with mode 0600 when there is none: tljh-config rewrites the
  file in place, so what an admin sets there (authenticator secrets) stays root's;
- state/traefik-api.secret, the traefik API password TLJH's hub configuration reads, made once
  (in TLJH 2.0's two-unit layout the hub gives it to traefik);
- traefik's configuration, rendered by TLJH's own `tljh.traefik.ensure_traefik_config` run
  with the hub environment's python, exactly as TLJH's installer and `tljh-config reload proxy`
  render it (state/traefik.toml, state/rules/dynamic.toml and rules.toml, state/acme.json);
- with configurable-http-proxy, tljh-lock's own route to it is a rendered file of state/rules
  (render.py; traefik watches the directory, TLJH's reload leaves the file alone).

What TLJH manages (traefik.toml, the rest of rules/, config/, acme.json) is TLJH's and the
admin's: apply creates what is missing and never rewrites it, `verify` does not compare it.
A layout without configurable-http-proxy is TLJH 2.0's own: two units, the hub driving traefik
(`proxy_class = "traefik_file"`); moving to it retires the proxy's unit, as TLJH's installer
does. Data only: `observe` reads these paths, `actions/tljh.py` makes them.
"""

from __future__ import annotations

from tljh_lock.apply import layout as L

INSTALLER_LOG = f"{L.PREFIX}/installer.log"
CONFIG_FILE = f"{L.CONFIG}/config.yaml"
RULES = f"{L.STATE}/rules"
TRAEFIK_CONFIG = f"{L.STATE}/traefik.toml"
ACME = f"{L.STATE}/acme.json"
API_SECRET = f"{L.STATE}/traefik-api.secret"
# which hub environment's TLJH rendered traefik's configuration (the step's key)
RENDERED_BY = f"{L.STATE}/tljh-lock-traefik.key"
PROXY_UNIT = "configurable-http-proxy.service"

# TLJH's modes (its installer, bootstrap and tljh.traefik)
DIRECTORIES = {L.STATE: 0o700, L.CONFIG: 0o700, f"{L.CONFIG}/jupyterhub_config.d": 0o700,
               f"{L.CONFIG}/traefik_config.d": 0o700, RULES: 0o700}
INSTALLER_LOG_MODE = 0o500
PRIVATE = 0o600  # config.yaml, the API secret, traefik's files
# created when missing, never rewritten: what TLJH's installer writes at first, the API secret
CREATED = (CONFIG_FILE, API_SECRET)

# run with the hub environment's python: TLJH's own render, as its installer calls it
RENDER = ("import sys\n"
          "from tljh.traefik import ensure_traefik_config\n"
          "ensure_traefik_config(sys.argv[1])\n")
