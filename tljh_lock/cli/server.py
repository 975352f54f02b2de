"""The server admin's commands: apply, verify, status, rollback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tljh_lock.apply import admins as A
from tljh_lock.apply import engine
from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import ArtifactSource, BundleSource
from tljh_lock.apply.verify import admin_installed, managed, verify
from tljh_lock.cli.common import DEFAULT_LOCK, Subcommands, Verb, progress_log, quiet
from tljh_lock.core.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    InputError,
    TljhLockError,
    UpstreamError,
    UsageError,
)
from tljh_lock.lock import file as lockfile
from tljh_lock.store.cas import Store, default_path

if TYPE_CHECKING:
    from tljh_lock.lock.model import Artifact
    from tljh_lock.store.fetch import Fetcher


def _absolute(path: str) -> Path:
    # the applier's tools run in other directories: a relative root would move with them
    return Path(path).absolute()


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=_absolute, default=Path("/"),
                        help="install below this directory instead of / (default: /)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_apply(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "apply", help="install TLJH strictly from the lock",
        description="Plan, then install the hub environment, traefik, Node.js, the proxy, the "
        "systemd units, groups, sudoers file and tljh-config link from the lock and verified "
        "artifacts only. Re-running is a no-op; a failed run leaves the previous generation "
        "in use. What verify reports, apply repairs: a rendered file is rewritten, a built "
        "directory whose contents changed is built again beside it (a new generation; the "
        "changed one stays as the previous), a locked distribution missing from the user "
        "environment is installed again. What an admin installed into the user environment "
        "stays; TLJH's own files (config.yaml, traefik.toml, rules/) are never touched.")
    _add_root(p)
    p.add_argument("--bundle", type=Path, metavar="FILE",
                   help="install from this bundle (its lock and artifacts) without any network")
    p.add_argument("--lock", type=Path, default=DEFAULT_LOCK,
                   help=f"lock file, when not applying a bundle (default: {DEFAULT_LOCK})")
    p.add_argument("--store", type=Path, metavar="DIR",
                   help="content-addressed store holding the artifacts (default: "
                   "$TLJH_LOCK_STORE or ~/.cache/tljh-lock/store)")
    p.add_argument("--mirror", action="append", default=[], metavar="CANONICAL=MIRROR",
                   help="fetch what the store lacks first, from MIRROR for URLs starting with "
                   "CANONICAL (repeatable)")
    p.add_argument("--mirror-config", metavar="FILE", help="TOML file with a [mirrors] table")
    p.add_argument("--store-mirror", action="append", default=[], metavar="URL",
                   help="fetch what the store lacks first, from a store or unpacked bundle "
                   "served at URL (repeatable): how a fleet installs from one cache")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="the system python3 the hub environment is made from "
                   "(default: /usr/bin/python3)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan, with the hash of every rendered file; change nothing")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="apply a lock older than the current one (lower jupyterhub, TLJH, "
                   "traefik, Node.js or proxy version, or an earlier generation's lock)")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild a changed hub environment that holds distributions the lock "
                   "does not (a pip install into it), which apply otherwise refuses (exit "
                   "code 1); the changed one stays, as the previous generation")
    p.add_argument("--admin", action="append", default=[], metavar="NAME[:PASSWORD]",
                   help="a TLJH admin, as TLJH's installer --admin sets one up: NAME added to "
                   "users.admin of config.yaml, PASSWORD (bcrypt) for FirstUseAuthenticator "
                   "(repeatable; a command line is readable by every user: prefer "
                   "--admins-from for passwords)")
    p.add_argument("--admins-from", metavar="FILE|-",
                   help="admins read from FILE (- for standard input), one NAME or "
                   "NAME:PASSWORD a line; blank lines and # comments are skipped")


def add_verify(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", help="report drift from what was applied",
                       description="Rehash the rendered files and built directories, check "
                       "that every locked distribution is installed at its version (and that "
                       "the hub environment holds no other), check groups, links and TLJH's "
                       "modes; exit 1 on any drift, which a plain `tljh-lock apply` repairs "
                       "or refuses, naming how. The files TLJH manages (traefik.toml, "
                       "state/rules/ but tljh-lock's route, config/, acme.json) and what an "
                       "admin installed into the user environment are the admin's: listed, "
                       "not compared. --json gives each drift as fields (kind, path, "
                       "component, package, version, expected, actual, repair).")
    _add_root(p)


def add_status(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", help="show the applied lock and the generation history")
    _add_root(p)


def add_rollback(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("rollback", help="return to the previous generation",
                       description="Point the hub, Node.js and proxy links back at the previous "
                       "generation's directories, re-render the files and restart the services.")
    _add_root(p)


def _source(args: argparse.Namespace) -> tuple[Path | None, ArtifactSource]:
    """(the lock, where its artifacts come from) for these options."""
    if args.bundle:
        if args.mirror or args.store_mirror or args.store:
            raise UsageError("--bundle holds everything: it takes no --store or mirrors")
        source = BundleSource(args.bundle)  # its manifest only: nothing is unpacked yet
        arch = os.uname().machine
        if source.manifest.platform not in ("all", arch):
            raise InputError(f"{args.bundle}: a bundle for {source.manifest.platform}, and "
                             f"this machine is {arch}",
                             hint=f"make one for it: tljh-lock bundle --platform {arch}")
        return None, source
    store = Store(args.store or default_path())
    if args.mirror or args.mirror_config or args.store_mirror:
        # Imported only here: urllib3 alone costs a no-op apply ~0.2 s of start-up.
        from tljh_lock.store import build_wheels
        from tljh_lock.store.fetch import Fetcher, fetch_lock, progress_wanted
        from tljh_lock.upstream import mirrors

        lock = lockfile.load(args.lock)
        arch = os.uname().machine
        fetcher = Fetcher(store, mirrors.from_options(args.mirror_config, args.mirror),
                          args.store_mirror, progress=progress_wanted(args.json))
        _, records = fetch_lock(lock, arch, fetcher)
        build_wheels.build(lock, arch, fetcher, records, _mirror_builds(fetcher))
    return args.lock, ArtifactSource.from_store(store.root)


def _mirror_builds(fetcher: Fetcher) -> dict[str, tuple[str, Artifact]]:
    """input sha256 -> (store mirror, wheel) for the wheels that the store mirrors which are
    unpacked bundles list in their manifest as built (the first mirror listing one wins)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from tljh_lock.bundle import safe_archive
    from tljh_lock.lock.model import Artifact
    from tljh_lock.store.fetch import mirror_document

    found = {}
    for mirror in reversed(fetcher.store_mirrors):
        try:
            data = mirror_document(fetcher, mirror, safe_archive.MANIFEST_NAME,
                                   safe_archive.MAX_MANIFEST_BYTES)
        except UpstreamError:
            continue  # a store rather than an unpacked bundle: nothing is listed as built
        where = f"{mirror}/{safe_archive.MANIFEST_NAME}"
        manifest = safe_archive.parse_manifest(data, where)
        for key, entry in manifest.built.items():
            try:
                parse_wheel_filename(entry.name)
            except InvalidWheelFilename:
                raise InputError(f"{where}: built[{key}]: {entry.name!r} is not a wheel's name",
                                 hint="the mirror is damaged: unpack its bundle again") from None
            found[key] = (mirror, Artifact(entry.name, "", entry.size, entry.sha256))
    return found


def _refuse_unprivileged(args: argparse.Namespace) -> None:
    """Changing the running system takes root: refused before anything is read or written,
    not at the first file an unprivileged user may not write."""
    if Layout(args.root).is_live and os.geteuid() != 0:
        raise TljhLockError(f"{args.command} on / changes the system and needs root (this is "
                            f"uid {os.geteuid()})",
                            hint="run it with sudo, or below a directory of your own with "
                                 "--root DIR")


def _admins(args: argparse.Namespace) -> tuple[A.Admin, ...]:
    """Read before anything else happens: bad input changes nothing."""
    found = [A.parse(entry, f"--admin #{n}") for n, entry in enumerate(args.admin, 1)]
    if args.admins_from == "-":
        found += A.read(sys.stdin.read(), "standard input (--admins-from -)")
    elif args.admins_from:
        try:
            text = Path(args.admins_from).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--admins-from {args.admins_from}: cannot be read "
                             f"({getattr(exc, 'strerror', None) or exc.__class__.__name__})",
                             hint="name a readable UTF-8 file, or - for standard input"
                             ) from None
        found += A.read(text, args.admins_from)
    return A.merged(found)


def cmd_apply(args: argparse.Namespace) -> int:
    admins = _admins(args)
    if not args.dry_run:
        _refuse_unprivileged(args)
    if not args.bundle:  # a missing or unreadable lock is said before the plan is made
        lockfile.read(args.lock, missing_hint="run apply in the directory holding locks/, or "
                      "pass --lock FILE, or --bundle FILE to install from a bundle")
    lock_path, source = _source(args)
    try:
        outcome = engine.apply(Layout(args.root), lock_path, source, args.python,
                               dry_run=args.dry_run, allow_downgrade=args.allow_downgrade,
                               rebuild=args.rebuild, admins=admins, log=progress_log(args))
    finally:
        source.close()
    layout = Layout(args.root)
    if args.json:
        print(json.dumps({"dry-run": args.dry_run, **outcome.to_dict()}, indent=2))
        return EXIT_OK
    if args.dry_run:
        print(f"plan for lock sha256 {outcome.plan.lock_sha256} into {layout.root}:")
        for step in outcome.plan.steps:
            mark = "keep" if step.done else "run "
            print(f"  [{mark}] {step.id}: {step.summary} (key {step.key[:16]})")
        print(f"{len(outcome.plan.pending)} of {len(outcome.plan.steps)} steps would run")
    elif not quiet(args):
        what = f"{len(outcome.ran)} steps ran" if outcome.ran else "nothing to do"
        print(f"generation {outcome.generation} (lock sha256 {outcome.plan.lock_sha256}): "
              f"{what} in {outcome.seconds:.2f} s")
        if outcome.restarted:
            print(f"restarted {', '.join(outcome.restarted)}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    layout = Layout(args.root)
    problems = verify(layout)
    tljh_managed = managed(layout)  # TLJH's and the admin's: not drift
    admins_own = admin_installed(layout)  # the admin's too
    if args.json:
        print(json.dumps({"ok": not problems, "drift": [p.to_dict() for p in problems],
                          "tljh-managed": tljh_managed,
                          "admin-installed": [{"path": "/opt/tljh/user", "package": name,
                                               "version": version}
                                              for name, version in admins_own.items()]},
                         indent=2))
    else:
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        for repair in dict.fromkeys(p.repair for p in problems if p.repair):
            print(f"  hint: {repair}", file=sys.stderr)
        if not quiet(args):
            if not problems:
                print(f"{args.root}: as applied")
            if tljh_managed:
                print(f"managed by TLJH (tljh-config), not compared: {', '.join(tljh_managed)}")
            if admins_own:
                print("installed into /opt/tljh/user by an admin, kept: "
                      + ", ".join(f"{name} {version}" for name, version in admins_own.items()))
    return EXIT_FAILURE if problems else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    info = engine.status(Layout(args.root))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    current = info["current"]
    if current is None:
        print(f"{args.root}: nothing applied")
        return EXIT_OK
    print(f"generation {current['number']} since {current['applied-at']}, lock sha256 "
          f"{current['lock-sha256']}")
    for name, version in sorted(current["versions"].items()):
        print(f"  {name} {version}")
    for role, directory in sorted(current["dirs"].items()):
        print(f"  {role}: /opt/tljh/{directory}")
    print("generations:")
    for generation in info["generations"]:
        mark = "*" if generation["number"] == current["number"] else " "
        print(f" {mark} {generation['number']}  {generation['applied-at']}  "
              f"{generation['lock-sha256'][:16]}")
    print(f"{len(info['files'])} rendered files recorded")
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    _refuse_unprivileged(args)
    generation = engine.rollback(Layout(args.root), log=progress_log(args))
    if args.json:
        print(json.dumps(generation.to_dict(), indent=2))
    elif not quiet(args):
        print(f"rolled back to generation {generation.number} (lock sha256 "
              f"{generation.lock_sha256})")
    return EXIT_OK


VERBS = (Verb("apply", add_apply, cmd_apply), Verb("verify", add_verify, cmd_verify),
         Verb("status", add_status, cmd_status), Verb("rollback", add_rollback, cmd_rollback))
