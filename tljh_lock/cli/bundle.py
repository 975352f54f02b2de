"""`fetch` and `bundle`: the lock's artifacts into the store, and one file of them all."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tljh_lock.cli.common import (
    EPILOG,
    Subcommands,
    Verb,
    add_lock,
    add_mirrors,
    size_text,
)
from tljh_lock.core.errors import EXIT_OK
from tljh_lock.core.targets import PLATFORMS
from tljh_lock.lock import file as lockfile
from tljh_lock.store.cas import STORE_ENV, Store, default_path
from tljh_lock.upstream import mirrors

if TYPE_CHECKING:
    from tljh_lock.store.fetch import Fetcher


def _add_common(p: argparse.ArgumentParser) -> None:
    add_lock(p)
    add_mirrors(p)
    p.add_argument("--store", type=Path, metavar="DIR",
                   help=f"content-addressed store (default: ${STORE_ENV} or "
                        "~/.cache/tljh-lock/store)")
    p.add_argument("--store-mirror", action="append", default=[], metavar="URL",
                   help="a store or unpacked bundle served at URL (http(s):// or file://), "
                        "tried first for every file as URL/sha256/<hex> (repeatable)")
    p.add_argument("--jobs", type=int, default=4, metavar="N",
                   help="parallel downloads (default: 4)")
    p.add_argument("--stall-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="give up on a connection that sends nothing for this long "
                        "(default: 30); the transfer resumes from where it stopped")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    # SUPPRESS: a subcommand's default must not undo `tljh-lock -q fetch`.
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only errors")


def _parser(sub: Subcommands, name: str, help: str, description: str
            ) -> argparse.ArgumentParser:
    # -q comes last here (from _add_common), not from the shared parent, as it always has
    return sub.add_parser(name, help=help, description=description, epilog=EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_fetch(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = _parser(sub, "fetch", "download the lock's artifacts into the store",
                "Download every artifact of the lock for the chosen platforms into the "
                "content-addressed store, verified by size and sha256, in parallel, resuming "
                "interrupted transfers. Files already in the store are not downloaded again.")
    p.add_argument("--platform", choices=PLATFORMS, default="all",
                   help="fetch what an install on this platform needs (default: all)")
    _add_common(p)


def add_bundle(sub: Subcommands, common: argparse.ArgumentParser) -> None:
    p = _parser(sub, "bundle", "write one reproducible file for an air-gapped install",
                "Fetch what is missing, build wheels for sdist-only packages and source pins, "
                "and write one deterministic tar holding the lock, a manifest, the tool itself "
                "(tljh-lock.pyz) and every artifact of the platform. Prints the bundle's sha256 "
                "and the lock's. Unpacked, the bundle is a static mirror (--store-mirror).")
    p.add_argument("--platform", choices=PLATFORMS, required=True,
                   help="the servers' architecture (all: one bundle for both)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                   help="where to write the bundle (replaced only when complete)")
    _add_common(p)


# The network side is imported when a command needs it: urllib3 alone costs ~0.2 s of start-up,
# which every other command (a no-op apply) would pay.


def _fetcher(args: argparse.Namespace) -> Fetcher:
    from tljh_lock.store.fetch import Fetcher, progress_wanted

    return Fetcher(
        Store(args.store or default_path()),
        mirrors.from_options(args.mirror_config, args.mirror),
        args.store_mirror, jobs=args.jobs, stall_timeout=args.stall_timeout,
        progress=progress_wanted(args.quiet or args.json),
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    from tljh_lock.store.fetch import fetch_lock

    fetcher = _fetcher(args)
    arch = None if args.platform == "all" else args.platform
    report, records = fetch_lock(lockfile.load(args.lock), arch, fetcher)
    summary = {**report.to_dict(), "store": str(fetcher.store.root), "platform": args.platform,
               "sources": len(records)}
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    elif not args.quiet:
        print(f"fetched {report.downloaded} files ({size_text(report.bytes)}) in "
              f"{report.seconds:.1f} s; {report.present} already in {fetcher.store.root}")
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace) -> int:
    from tljh_lock.bundle.write import write_bundle

    result = write_bundle(args.lock, args.platform, args.output, _fetcher(args))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    elif not args.quiet:
        print(f"wrote {result.path} ({size_text(result.size)}, "
              f"{len(result.manifest.members) + 1} members, {len(result.manifest.built)} built "
              "wheels)")
        print(f"  bundle sha256 {result.sha256}")
        print(f"  lock sha256   {result.manifest.lock.sha256}")
    return EXIT_OK


VERBS = (Verb("fetch", add_fetch, cmd_fetch), Verb("bundle", add_bundle, cmd_bundle))
