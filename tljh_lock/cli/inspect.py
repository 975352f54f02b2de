"""`check` and `diff`: reading locks, offline (server side: the zipapp has them)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tljh_lock.cli.common import Subcommands, Verb, add_lock, add_parser, add_recipes, quiet
from tljh_lock.core.errors import EXIT_FAILURE, EXIT_OK
from tljh_lock.inspect.check import check
from tljh_lock.inspect.diff import diff_locks, render
from tljh_lock.lock import file as lockfile
from tljh_lock.lock import recipes


def add_check(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = add_parser(sub, "check", [common], help="prove the lock fresh and installable (offline)",
                   description="Offline, without resolving: fail if a recipe changed since the "
                   "lock was made, and prove that on every target every reachable requirement "
                   "has a pinned version and a compatible hashed file.")
    add_recipes(p)
    add_lock(p)
    p.add_argument("--no-recipes", action="store_true",
                   help="skip the freshness check (e.g. on a server, which has no recipes)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_check(args: argparse.Namespace) -> int:
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
        if report.ok and not quiet(args):
            print(f"{args.lock}: fresh and installable on {len(lock.targets)} targets "
                  f"({len(report.proven)} component-target proofs)")
    return EXIT_OK if report.ok else EXIT_FAILURE


def add_diff(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = add_parser(sub, "diff", [common], help="what changed between two locks",
                   description="List per component what was added, removed, upgraded or "
                   "downgraded; a changed hash for an unchanged version is a warning.")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")


def cmd_diff(args: argparse.Namespace) -> int:
    changes = diff_locks(lockfile.load(args.old), lockfile.load(args.new))
    print(render(changes, args.format), end="")
    return EXIT_OK


VERBS = (Verb("check", add_check, cmd_check), Verb("diff", add_diff, cmd_diff))
