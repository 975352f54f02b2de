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
# which plugins' hooks ran last (the step's key)
PLUGINS_RAN = f"{L.STATE}/tljh-lock-plugins.key"

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

# run with the hub environment's python, the admins (admins.stdin_payload) on stdin: what
# TLJH's installer does for `--admin` (tljh.installer.ensure_admins), through TLJH's own
# config code and file format, except that the names are added to users.admin (TLJH's
# installer replaces the list; an admin's own entries stay) and that a password is hashed
# again only when the one kept does not match it (bcrypt, as TLJH and FirstUseAuthenticator).
PASSWORDS = f"{L.STATE}/passwords.dbm"
ADMINS = """\
import dbm, json, os, sys
import bcrypt
from tljh.config import (CONFIG_FILE, STATE_DIR, add_item_to_config, config_file_lock,
                         get_current_config)
from tljh.yaml import yaml

os.umask(0o077)
wanted = json.load(sys.stdin)
added = []
with config_file_lock(CONFIG_FILE):
    config = get_current_config(CONFIG_FILE) or {}
    for admin in wanted:
        present = (config.get("users") or {}).get("admin") or []
        if admin["name"] not in present:
            config = add_item_to_config(config, "users.admin", admin["name"])
            added.append(admin["name"])
    if added:
        with open(CONFIG_FILE, "w") as f:
            yaml.dump(config, f)
passwords = []
with dbm.open(os.path.join(STATE_DIR, "passwords.dbm"), "c", 0o600) as db:
    for admin in wanted:
        if admin["password"] is None:
            continue
        secret = admin["password"].encode()
        kept = db.get(admin["name"])
        if kept is None or not bcrypt.checkpw(secret, kept):
            db[admin["name"]] = bcrypt.hashpw(secret, bcrypt.gensalt())
            passwords.append(admin["name"])
print(json.dumps({"added": added, "passwords": passwords}))
"""

# run with the hub environment's python, in apply's working directory (TLJH's installer runs
# its hooks in its own; TLJH's test plugin writes there): the plugins' hooks that act on the
# server, as TLJH's installer runs them. tljh_config_post_install changes config.yaml as
# tljh.installer.ensure_config_yaml does (under TLJH's config lock; the file is written only
# when a hook changed it, and keeps its mode), then tljh_post_install runs.
PLUGIN_HOOKS = """\
import io, json, os
from tljh.config import CONFIG_FILE, config_file_lock
from tljh.utils import get_plugin_manager
from tljh.yaml import yaml

os.umask(0o077)
pm = get_plugin_manager()


def dumped(config):
    out = io.StringIO()
    yaml.dump(config, out)
    return out.getvalue()


with config_file_lock(CONFIG_FILE):
    config = {}
    if os.path.exists(CONFIG_FILE):
        with open(CONFIG_FILE) as f:
            config = yaml.load(f) or {}
    before = dumped(config)
    pm.hook.tljh_config_post_install(config=config)
    changed = dumped(config) != before
    if changed:
        with open(CONFIG_FILE, "w") as f:
            yaml.dump(config, f)
pm.hook.tljh_post_install()
print(json.dumps({"config": changed}))
"""
