"""`update` against the anchors, on the same input in the same run: the real hub recipe
against the real PyPI, every tool with a cold cache of its own.

- tljh-lock update (fresh lock): resolution for every target plus every file's hash and size
  and every version's dependencies;
- pip-compile --generate-hashes (pip-tools): one interpreter's resolution, with hashes;
- uv pip compile --universal --generate-hashes: every python at once, with hashes.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from tljh_lock.core import runner
from tljh_lock.lock.recipes import load
from tljh_lock.resolve.pip import PipRecipe, uv_binary

REPO = Path(__file__).resolve().parents[2]


def timed(argv: list[str | Path], env: dict[str, str], what: str) -> float:
    started = time.monotonic()
    runner.run(argv, env=env, what=what, timeout=1800)
    return time.monotonic() - started


def main() -> list[tuple[str, float]]:
    recipe = PipRecipe.from_recipe(load(REPO / "recipes").recipes["hub"])
    requirements = [*recipe.requirements, *(r for s in recipe.sources for r in s.requires)]
    bindir = Path(sys.executable).parent
    rows = []
    with tempfile.TemporaryDirectory(prefix="tljh-bench-") as tmp:
        work = Path(tmp)
        (work / "requirements.in").write_text("\n".join(requirements) + "\n")
        (work / "constraints.txt").write_text("\n".join(recipe.constraints) + "\n")
        recipes = work / "recipes"
        recipes.mkdir()
        for name in ("targets.toml", "hub.toml"):
            shutil.copyfile(REPO / "recipes" / name, recipes / name)
        home = {"HOME": str(work)}
        rows.append(("tljh-lock update (10 targets, all files hashed)", timed(
            [sys.executable, "-m", "tljh_lock", "-q", "update", "--recipes", recipes,
             "--lock", work / "tljh.lock.toml"], {**home, "PYTHONPATH": str(REPO)},
            "tljh-lock update")))
        rows.append(("pip-compile --generate-hashes (python 3.11 only)", timed(
            [bindir / "pip-compile", "--quiet", "--generate-hashes", "--no-header",
             "--cache-dir", work / "pip-cache", "-c", work / "constraints.txt",
             "-o", work / "pip-tools.txt", work / "requirements.in"],
            # pip's own CA bundle does not know this site's TLS-intercepting proxy
            {**home, "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}, "pip-compile")))
        rows.append(("uv pip compile --universal --generate-hashes", timed(
            [uv_binary(), "pip", "compile", "--quiet", "--no-config", "--universal",
             "--generate-hashes", "--python-version", "3.9", "--no-python-downloads",
             "-c", work / "constraints.txt", "-o", work / "uv.txt", work / "requirements.in"],
            {**home, "UV_CACHE_DIR": str(work / "uv-cache")}, "uv pip compile")))
    return rows


def report(rows: list[tuple[str, float]]) -> str:
    base = rows[0][1]
    lines = ["| command | seconds | time relative to tljh-lock update |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {secs:.1f} | {secs / base:.2f}x |" for name, secs in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(main()))
