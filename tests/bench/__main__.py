"""`make bench`: every benchmark, each against its anchors in the same run."""

from __future__ import annotations

import platform
import subprocess

from tests.bench import bench_apply, bench_fetch, bench_update


def main() -> None:
    print(f"# benchmarks on {platform.node()}: {subprocess.getoutput('nproc')} cores, "
          f"python {platform.python_version()}\n")
    print("## update: the real hub recipe against the real PyPI, cold caches\n")
    print(bench_update.report(bench_update.main()))
    print("\n## fetch: from a local mirror, against curl copying the same bytes\n")
    print(bench_fetch.report(bench_fetch.main()))
    print("\n## apply: from a real bundle, against pip and uv installing the same hub set\n")
    print(bench_apply.report(bench_apply.main()))


if __name__ == "__main__":
    main()
