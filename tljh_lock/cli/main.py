"""The `tljh-lock` command line: the verbs of the other cli modules in one parser, and the one
place errors become a line on standard error and an exit code.

The maintainer verbs (cli/maintainer.py: update, export) are offered only where the maintainer
side is installed. The zipapp leaves it out; there they are not in `--help`, and asking for one
says what to install instead (exit code 2, a command this tljh-lock does not have).
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import logging
import sys
from collections.abc import Sequence

from tljh_lock import MAINTAINER_REQUIRES, MAINTAINER_SIDE, __version__
from tljh_lock.cli import bundle as bundle_verbs
from tljh_lock.cli import inspect as inspect_verbs
from tljh_lock.cli import server as server_verbs
from tljh_lock.cli.common import EPILOG, Verb, quiet_parent
from tljh_lock.core.errors import EXIT_FAILURE, TljhLockError, UsageError

# The order of `--help`.
ORDER = ("update", "check", "diff", "export", "fetch", "bundle", "apply", "verify", "status",
         "rollback")
MAINTAINER_VERBS = ("update", "export")
MAINTAINER_HINT = ("they run where tljh-lock is installed with its maintainer extra: "
                   "pip install 'tljh-lock[maintainer]'")


def missing_maintainer_modules() -> list[str]:
    """What the maintainer verbs need and this installation lacks (the zipapp: all of it). They
    are offered only when nothing is missing, rather than failing on an ImportError halfway."""
    return [name for name in (*MAINTAINER_SIDE, *MAINTAINER_REQUIRES)
            if importlib.util.find_spec(name) is None]


def verbs() -> dict[str, Verb]:
    found = {verb.name: verb for verb in (*inspect_verbs.VERBS, *bundle_verbs.VERBS,
                                          *server_verbs.VERBS)}
    if not missing_maintainer_modules():
        from tljh_lock.cli import maintainer

        found.update((verb.name, verb) for verb in maintainer.VERBS)
    return {name: found[name] for name in ORDER if name in found}


def build_parser(available: dict[str, Verb] | None = None) -> argparse.ArgumentParser:
    available = verbs() if available is None else available
    epilog = EPILOG
    absent = [name for name in MAINTAINER_VERBS if name not in available]
    if absent:
        epilog += (f"\nthe maintainer commands ({', '.join(absent)}) are not part of this "
                   f"tljh-lock;\n{MAINTAINER_HINT}\n")
    parser = argparse.ArgumentParser(
        prog="tljh-lock",
        description="Reproducible locks, bundles and a strict applier for The Littlest "
                    "JupyterHub.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tljh-lock {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = quiet_parent()
    for verb in available.values():
        verb.add(sub, common)
    return parser


def _absent_maintainer_verb(argv: Sequence[str], available: dict[str, Verb]) -> None:
    """Refuse a maintainer verb this tljh-lock lacks in words, not as an unknown choice."""
    for arg in argv:
        if not arg.startswith("-"):
            if arg in MAINTAINER_VERBS and arg not in available:
                raise UsageError(
                    f"`{arg}` is a maintainer command, and this tljh-lock has no maintainer "
                    f"side (missing: {', '.join(missing_maintainer_modules())})",
                    hint=MAINTAINER_HINT)
            return


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    available = verbs()
    try:
        _absent_maintainer_verb(arguments, available)
    except TljhLockError as exc:
        print(f"tljh-lock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = build_parser(available).parse_args(arguments)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="tljh-lock: %(levelname)s: %(message)s")
    # Retries are expected; their final failure is reported as our own error.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        try:
            return available[args.command].run(args)
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
