"""`make bench`: every benchmark, each against its anchors in the same run.

`python -m tests.bench [SECTION...]` runs only those sections (update, fetch, apply, machine),
in that order; apply and machine share one build of the real bundles.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench import bench_apply, bench_fetch, bench_machine, bench_update

SECTIONS = ("update", "fetch", "apply", "machine")


def main(sections: list[str]) -> None:
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        sys.exit(f"unknown section {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    wanted = sections or list(SECTIONS)
    print(f"# benchmarks on {platform.node()}: {subprocess.getoutput('nproc')} cores, "
          f"python {platform.python_version()}\n")
    if "update" in wanted:
        print("## update: the real hub recipe against the real PyPI, cold caches\n")
        print(bench_update.report(bench_update.main()))
    if "fetch" in wanted:
        print("\n## fetch: from a local mirror, against curl copying the same bytes\n")
        print(bench_fetch.report(bench_fetch.main()))
    if "apply" not in wanted and "machine" not in wanted:
        return
    with tempfile.TemporaryDirectory(prefix="tljh-bench-apply-") as tmp:
        work = Path(tmp)
        built = bench_apply.build(work)
        hub = bench_apply.HubSet.of(built, work)
        if "apply" in wanted:
            print("\n## apply: from a real bundle, against pip and uv installing the same hub "
                  "set\n")
            print(bench_apply.report(bench_apply.main(hub, work)))
        if "machine" in wanted:
            print("\n## apply on booted Debian 12 machines, against a TLJH-style online "
                  "install\n")
            print(bench_machine.report(bench_machine.main(built, hub, work)))


if __name__ == "__main__":
    main(sys.argv[1:])
