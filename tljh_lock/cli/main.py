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
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence

from tljh_lock import MAINTAINER_REQUIRES, MAINTAINER_SIDE, __version__
from tljh_lock.cli import bundle as bundle_verbs
from tljh_lock.cli import inspect as inspect_verbs
from tljh_lock.cli import server as server_verbs
from tljh_lock.cli.common import EPILOG, Verb, quiet_parent
from tljh_lock.core.errors import (
    EXIT_BUG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    TljhLockError,
    UsageError,
)

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
    """Run one command; whatever happens, at most one line on standard error, never a
    traceback (an unexpected exception's goes to a file, see `_report_bug`)."""
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except TljhLockError as exc:
        print(f"tljh-lock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tljh-lock: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE
    except Exception as exc:  # the one place every other failure ends: a bug of ours
        print(f"tljh-lock: error: {_report_bug(exc)}", file=sys.stderr)
        return EXIT_BUG


def _run(arguments: list[str]) -> int:
    available = verbs()
    _absent_maintainer_verb(arguments, available)
    args = build_parser(available).parse_args(arguments)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING,
                        format="tljh-lock: %(levelname)s: %(message)s")
    # Retries are expected; their final failure is reported as our own error.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        return available[args.command].run(args)
    except OSError as exc:
        raise _os_error(exc) from None


def _os_error(exc: OSError) -> Exception:
    """The system's refusals a user causes and can fix, in words; any other OSError is ours."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # Any write may meet a full disk; the steps before it are kept or undone.
        where = f" writing {exc.filename}" if exc.filename else ""
        return TljhLockError(f"no space left on the device{where}",
                             hint="free some space, then run this command again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        refusal = (exc.strerror or "not permitted").lower()
        return TljhLockError(f"{exc.filename or 'a file'}: {refusal}",
                             hint="run it as a user who may (root, for a system path), or "
                                  "point the command at a path of your own")
    return exc


def _without_passwords(argv: list[str]) -> list[str]:
    """The command line for a bug report, with `--admin NAME:PASSWORD`'s passwords cut out."""
    shown = []
    for before, arg in zip(["", *argv], argv):
        if before == "--admin" or arg.startswith("--admin="):
            head, colon, _ = arg.partition(":")
            arg = head + (colon and ":<password>")
        shown.append(arg)
    return shown


def _report_bug(exc: BaseException) -> str:
    """Save the traceback of an unexpected exception where the user can attach it to a bug
    report, and say so in one line."""
    lines = str(exc).splitlines()
    summary = type(exc).__name__ + (f": {lines[0]}" if lines else "")
    try:
        fd, path = tempfile.mkstemp(prefix="tljh-lock-bug-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(f"tljh-lock {__version__}, python {sys.version.split()[0]}\n")
            out.write(f"argv: {_without_passwords(sys.argv)!r}\n\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=out)
    except OSError as saving:
        saved = f"the traceback could not be saved ({saving.strerror})"
    else:
        saved = f"the traceback is in {path}"
    return f"unexpected {summary}: this is a bug in tljh-lock; {saved}, please report it"
