"""The `tljh-lock` command line."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tljh_lock import __version__
from tljh_lock.cli import bundle as cli_bundle
from tljh_lock.cli import server as cli_apply
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_OK, TljhLockError
from tljh_lock.core.files import file_sha256
from tljh_lock.inspect.export.formats import FORMATS as export_formats
from tljh_lock.lock import file as lockfile
from tljh_lock.upstream import mirrors

DEFAULT_LOCK = Path("locks/tljh.lock.toml")
DEFAULT_RECIPES = Path("recipes")

EPILOG = """\
exit codes:
  0  success
  1  the command ran and found a problem (stale lock, failed check, drift)
  2  bad command line
  3  malformed input: recipe, lock, bundle or mirror map
  4  an upstream or mirror failed or served something unexpected
  5  a hash or size did not match
"""


def _add_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK,
                        help=f"lock file (default: {DEFAULT_LOCK})")


def _add_recipes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipes", type=Path, default=DEFAULT_RECIPES,
                        help=f"recipe directory (default: {DEFAULT_RECIPES})")


def _add_mirrors(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror", action="append", default=[], metavar="CANONICAL=MIRROR",
        help="fetch URLs starting with CANONICAL from MIRROR instead (repeatable); the lock "
             "keeps canonical URLs",
    )
    parser.add_argument(
        "--mirror-config", metavar="FILE",
        help=f"TOML file with a [mirrors] table (default: ${mirrors.CONFIG_ENV} or "
             f"{mirrors.DEFAULT_CONFIG} if present)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tljh-lock",
        description="Reproducible locks, bundles and a strict applier for The Littlest "
                    "JupyterHub.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tljh-lock {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # `-q` is accepted after the subcommand too; SUPPRESS keeps a global `-q` from being reset.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only errors")

    p = sub.add_parser("update", parents=[common], help="resolve recipes/ into the lock",
                       description="Resolve the recipes into exact versions and hashes for every "
                       "target and write the lock. Components whose recipe did not change keep "
                       "their pins.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipes(p)
    _add_lock(p)
    _add_mirrors(p)
    p.add_argument("-P", "--upgrade-package", action="append", default=[], metavar="NAME",
                   help="let NAME move to its newest allowed version (repeatable)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = sub.add_parser("check", parents=[common],
                       help="prove the lock fresh and installable (offline)",
                       description="Offline, without resolving: fail if a recipe changed since "
                       "the lock was made, and prove that on every target every reachable "
                       "requirement has a pinned version and a compatible hashed file.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_recipes(p)
    _add_lock(p)
    p.add_argument("--no-recipes", action="store_true",
                   help="skip the freshness check (e.g. on a server, which has no recipes)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("diff", parents=[common], help="what changed between two locks",
                       description="List per component what was added, removed, upgraded or "
                       "downgraded; a changed hash for an unchanged version is a warning.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")

    p = sub.add_parser("export", parents=[common],
                       help="write the lock in another tool's format",
                       description="Export the lock in a standard format that the ecosystem's "
                       "own tools read.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_lock(p)
    p.add_argument("--format", choices=sorted(export_formats), required=True)
    p.add_argument("--component", help="component to export, for formats that take one "
                   "(pylock: default hub)")
    p.add_argument("-o", "--output", type=Path,
                   help="output file (default: standard output); for package-lock an existing "
                        "directory gets both package.json and package-lock.json")

    cli_bundle.add_fetch_parser(sub)
    cli_bundle.add_bundle_parser(sub)
    cli_apply.add_apply_parser(sub)
    cli_apply.add_verify_parser(sub)
    cli_apply.add_status_parser(sub)
    cli_apply.add_rollback_parser(sub)
    return parser


def cmd_update(args: argparse.Namespace) -> int:
    from tljh_lock.resolve.update import update
    from tljh_lock.upstream.http import Client

    client = Client(mirrors.from_options(args.mirror_config, args.mirror))
    started = time.monotonic()
    lock, resolved = update(args.recipes, args.lock, client, args.upgrade_package)
    elapsed = time.monotonic() - started
    summary = {
        "lock": str(args.lock),
        "sha256": file_sha256(args.lock),
        "resolved": resolved,
        "components": {name: c.summary() for name, c in sorted(lock.components.items())},
        "seconds": round(elapsed, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    elif not args.quiet:
        print(f"wrote {args.lock} (sha256 {summary['sha256']}) in {elapsed:.1f} s")
        for name, text in summary["components"].items():
            mark = "resolved" if name in resolved else "kept"
            print(f"  {name} [{mark}]: {text}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from tljh_lock.inspect.check import check
    from tljh_lock.lock import recipes

    lock = lockfile.load(args.lock)
    recipe_set = None if args.no_recipes else recipes.load(args.recipes)
    report = check(lock, recipe_set)
    if args.json:
        print(json.dumps({"ok": report.ok, "stale": report.stale, "problems": report.problems,
                          "proven": report.proven}, indent=2))
    else:
        for line in report.stale:
            print(f"stale: {line}", file=sys.stderr)
        for line in report.problems:
            print(f"problem: {line}", file=sys.stderr)
        if report.stale:
            print("  hint: run `tljh-lock update` and commit the new lock", file=sys.stderr)
        if report.ok and not args.quiet:
            print(f"{args.lock}: fresh and installable on {len(lock.targets)} targets "
                  f"({len(report.proven)} component-target proofs)")
    return EXIT_OK if report.ok else EXIT_FAILURE


def cmd_diff(args: argparse.Namespace) -> int:
    from tljh_lock.inspect.diff import diff_locks, render

    changes = diff_locks(lockfile.load(args.old), lockfile.load(args.new))
    print(render(changes, args.format), end="")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from tljh_lock.inspect.export.formats import export, export_files

    lock = lockfile.load(args.lock)
    if args.output and args.output.is_dir():
        for name, text in export_files(lock, args.format, args.component).items():
            (args.output / name).write_text(text, encoding="utf-8")
        return EXIT_OK
    text = export(lock, args.format, args.component)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


COMMANDS = {
    "update": cmd_update, "check": cmd_check, "diff": cmd_diff, "export": cmd_export,
    "fetch": cli_bundle.cmd_fetch, "bundle": cli_bundle.cmd_bundle,
    "apply": cli_apply.cmd_apply, "verify": cli_apply.cmd_verify,
    "status": cli_apply.cmd_status, "rollback": cli_apply.cmd_rollback,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="tljh-lock: %(levelname)s: %(message)s")
    # Retries are expected; their final failure is reported as our own error.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        try:
            return COMMANDS[args.command](args)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            # Any write may meet a full disk; the steps before it are kept or undone.
            where = f" writing {exc.filename}" if exc.filename else ""
            raise TljhLockError(f"no space left on the device{where}",
                                hint="free some space, then run this command again") from None
    except TljhLockError as exc:
        print(f"tljh-lock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tljh-lock: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_FAILURE
