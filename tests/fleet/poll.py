"""Poll hubs' /hub/api and print, a few times a second, which of them answered.

    python -m tests.fleet.poll URL...          one JSON line per round until SIGTERM
    python -m tests.fleet.poll --once URL...   one round

Each line is {"t": seconds since start, "up": [bool per URL]}. A hub answers when GET returns
200 with JSON that has a "version" (JupyterHub's API root, through traefik and the proxy).
The fleet test runs this in the bridge's network namespace, during a roll-out.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

INTERVAL = 0.25
TIMEOUT = 2.0


def answers(url: str, timeout: float = TIMEOUT) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http only
            return response.status == 200 and "version" in json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet.poll")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    with ThreadPoolExecutor(len(args.urls)) as pool:
        while True:
            began = time.monotonic()
            up = list(pool.map(answers, args.urls))
            print(json.dumps({"t": round(began - started, 2), "up": up}), flush=True)
            if args.once:
                return 0
            time.sleep(max(0.0, INTERVAL - (time.monotonic() - began)))


if __name__ == "__main__":
    sys.exit(main())
