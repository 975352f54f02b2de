"""What the verbs of the command line share: default paths, the exit code table, common flags,
and `Verb`, how each verb module offers its subcommands to `main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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

# What verbs add their subcommands to. argparse keeps the class private, and it cannot be
# subscripted at run time.
if TYPE_CHECKING:
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subcommands = argparse._SubParsersAction


@dataclass(frozen=True)
class Verb:
    name: str
    add: Callable[[Subcommands, argparse.ArgumentParser], None]  # (subcommands, -q parent)
    run: Callable[[argparse.Namespace], int]


def quiet_parent() -> argparse.ArgumentParser:
    """`-q` accepted after the subcommand too; SUPPRESS keeps a global `-q` from being reset."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only errors")
    return common


def add_parser(sub: Subcommands, name: str, parents: list[argparse.ArgumentParser], *,
               help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand with the exit code table under its help."""
    return sub.add_parser(name, parents=parents, help=help, description=description,
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK,
                        help=f"lock file (default: {DEFAULT_LOCK})")


def add_recipes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipes", type=Path, default=DEFAULT_RECIPES,
                        help=f"recipe directory (default: {DEFAULT_RECIPES})")


def add_mirrors(parser: argparse.ArgumentParser) -> None:
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


def quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def progress_log(args: argparse.Namespace) -> Callable[[str], None]:
    """Where a long command says what it is doing: standard error, unless asked for quiet."""
    if args.json or quiet(args):
        return lambda _: None
    return lambda line: print(line, file=sys.stderr)


def size_text(count: int) -> str:
    return f"{count} bytes" if count < 1024 * 1024 else f"{count / 1024 / 1024:.1f} MiB"
