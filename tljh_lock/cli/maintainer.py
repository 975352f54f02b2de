"""Maintainer only: `update` (resolving, with uv, npm and py-rattler) and `export` (other tools'
formats; pylock is TOML, written with tomli-w). The zipapp leaves this module out, and `main`
offers these verbs only where the maintainer side is installed."""

from __future__ import annotations

import argparse
import json
import sys
import time

from tljh_lock.cli.common import (
    Subcommands,
    Verb,
    add_lock,
    add_mirrors,
    add_parser,
    add_recipes,
    output_path,
    progress_log,
    quiet,
)
from tljh_lock.core.errors import EXIT_OK
from tljh_lock.core.files import file_sha256
from tljh_lock.export.formats import FORMATS, export, export_files
from tljh_lock.lock import file as lockfile
from tljh_lock.upstream import mirrors


def add_update(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = add_parser(sub, "update", [common], help="resolve recipes/ into the lock", description=(
        "Resolve the recipes into exact versions and hashes for every target and write the "
        "lock. Components whose recipe did not change keep their pins."))
    add_recipes(p)
    add_lock(p)
    add_mirrors(p)
    p.add_argument("-P", "--upgrade-package", action="append", default=[], metavar="NAME",
                   help="let NAME move to its newest allowed version (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def cmd_update(args: argparse.Namespace) -> int:
    # Imported when used: `main` imports this module for every command, and urllib3 alone
    # costs ~0.2 s of start-up.
    from tljh_lock.resolve.update import update
    from tljh_lock.store.fetch import progress_wanted
    from tljh_lock.upstream.http import Client

    client = Client(mirrors.from_options(args.mirror_config, args.mirror),
                    progress=progress_wanted(args.json or quiet(args)))
    started = time.monotonic()
    lock, resolved = update(args.recipes, args.lock, client, args.upgrade_package,
                            log=progress_log(args))
    elapsed = time.monotonic() - started
    components = {name: c.summary() for name, c in sorted(lock.components.items())}
    sha256 = file_sha256(args.lock)
    if args.json:
        print(json.dumps({"lock": str(args.lock), "sha256": sha256, "resolved": resolved,
                          "components": components, "seconds": round(elapsed, 2)},
                         indent=2, sort_keys=True))
    elif not quiet(args):
        print(f"wrote {args.lock} (sha256 {sha256}) in {elapsed:.1f} s")
        for name, text in components.items():
            mark = "resolved" if name in resolved else "kept"
            print(f"  {name} [{mark}]: {text}")
    return EXIT_OK


def add_export(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = add_parser(sub, "export", [common], help="write the lock in another tool's format",
                   description="Export the lock in a standard format that the ecosystem's own "
                   "tools read.")
    add_lock(p)
    p.add_argument("--format", choices=sorted(FORMATS), required=True)
    p.add_argument("--component", help="component to export, for formats that take one "
                   "(pylock: default hub)")
    p.add_argument("-o", "--output", type=output_path,
                   help="output file (default: standard output); for package-lock an existing "
                        "directory gets both package.json and package-lock.json")
    # Only the flags: an exported file does not depend on the machine's mirror configuration.
    p.add_argument("--mirror", action="append", default=[], metavar="CANONICAL=MIRROR",
                   help="pylock: write URLs starting with CANONICAL as starting with MIRROR "
                        "(repeatable), for installers that reach the files only there")


def cmd_export(args: argparse.Namespace) -> int:
    mirror_map = mirrors.MirrorMap.from_pairs([mirrors.parse_flag(flag) for flag in args.mirror])
    lock = lockfile.load(args.lock)
    if args.output and args.output.is_dir():
        for name, text in export_files(lock, args.format, args.component, mirror_map).items():
            (args.output / name).write_text(text, encoding="utf-8")
        return EXIT_OK
    text = export(lock, args.format, args.component, mirror_map)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


VERBS = (Verb("update", add_update, cmd_update), Verb("export", add_export, cmd_export))
