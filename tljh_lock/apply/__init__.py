"""The applier: turn a lock (and the verified artifacts it names) into an installed TLJH. It
observes, plans purely, then executes: `observe` reads everything of the server that planning
needs; `plan` (pure) lists the steps, each keyed by the hash of its inputs and judged done by
what was observed; `steps` are data; `actions/` make them done (the only side effects);
`engine` runs the steps that are not done under an exclusive flock, saving the state after
each one, then commits the generation, restarts what changed and collects garbage; `verify`
reports drift. Every path goes through a `Layout` (the `--root` prefix), every subprocess
through core/runner.py. May import store/ (the store's records), bundle/safe_archive.py (to
open a bundle), lock/ and core/.

What goes where (below --root):

    /opt/tljh/hub -> hub.<key>      venv of the system python3 + the locked hub set + traefik
    /opt/tljh/node -> node.<key>    Node.js, unpacked from the verified release tarball
    /opt/tljh/proxy -> proxy.<key>  configurable-http-proxy, `npm ci --offline`
    /opt/tljh/user                  Miniforge (in place, as TLJH keeps it) + the user pip set
    /opt/tljh/state/ (0700)         state.json, generations/<n>.lock.toml, apply.lock,
                                    proxy.env (0600), jupyterhub_config.py; TLJH's own
                                    traefik.toml, rules/ (0700), acme.json, rendered by TLJH's
                                    tljh.traefik (tljh.py), and tljh-lock's route in rules/
    /opt/tljh/config/ (0700)        TLJH's config.yaml (0600), the admin's: never rewritten
    /opt/tljh/installer.log (0500)  as TLJH's bootstrap leaves it
    /opt/tljh/state/tmp/            the run's temporary files (TMPDIR of what it runs),
                                    emptied under the lock at its start and end
    /etc/systemd/system/{jupyterhub,configurable-http-proxy,traefik}.service (enabled)
    /etc/sudoers.d/jupyterhub-admins, /usr/bin/tljh-config -> /opt/tljh/hub/bin/tljh-config
    groups jupyterhub-users, jupyterhub-admins

A built directory is named by its key and marked complete last (`.tljh-lock-key`), so an
interrupted build is redone and a finished one reused; the links switch with one rename
each, after everything is built, so a failed apply leaves the previous generation in use.

Generations: an apply that changes the lock or a directory records generation n+1; `rollback`
makes the previous one current again (its directories are kept: the last three generations'
survive garbage collection). Downgrades: a lock is older than the current one when a version
that users see (jupyterhub, the-littlest-jupyterhub, traefik, nodejs, configurable-http-proxy)
is lower than in the current generation, or when it is the lock of an earlier generation; such
an apply is refused without `--allow-downgrade`.
"""
