"""``python -m tests.upstream serve DIR [--port N] [--pidfile F]`` / ``generate DIR``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Optional

from .scenarios import generate_hub_scenario
from .server import FixtureUpstream


def _serve(root: Path, port: int, pidfile: Optional[Path]) -> int:
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with FixtureUpstream(root, port) as upstream:
        if pidfile is not None:
            pidfile.write_text(f"{os.getpid()}\n")
        try:
            print(upstream.base_url)
            print()
            print("[mirrors]")
            for canonical, served in upstream.mirror_map().items():
                print(f"{json.dumps(canonical)} = {json.dumps(served)}")
            sys.stdout.flush()
            # A timeout keeps the main thread responsive to signals.
            while not done.wait(1.0):
                pass
        finally:
            if pidfile is not None:
                pidfile.unlink(missing_ok=True)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.upstream")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve DIR on 127.0.0.1 until SIGTERM/SIGINT")
    serve.add_argument("root", type=Path, metavar="DIR")
    serve.add_argument("--port", type=int, default=0, help="default: any free port")
    serve.add_argument("--pidfile", type=Path, help="write the server's pid here while serving")
    generate = sub.add_parser("generate", help="write the hub scenario into DIR, print its facts")
    generate.add_argument("root", type=Path, metavar="DIR")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args.root, args.port, args.pidfile)
    args.root.mkdir(parents=True, exist_ok=True)
    facts = generate_hub_scenario(args.root)
    print(json.dumps(facts, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
