"""The user environment's pip set as fake wheels, published next to the hub scenario.

Call after :func:`generate_hub_scenario` on the same root: the user set depends on ``fx-hub``
and its dependencies from there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Union

from .artifacts import build_wheel, publish_to_index, sha256_file

__all__ = ["generate_user_env_scenario", "publish_newer_hub"]

HUB_REQUIRES = ("fx-web>=1", 'fx-backport>=1 ; python_version < "3.11"', "fx-speedups>=2")

CP311_X86_64 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
CP311_AARCH64 = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"
CP312_X86_64 = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"
# Needs a newer C library than the user env's oldest target (glibc 2.31) has.
CP311_X86_64_GLIBC_2_34 = "cp311-cp311-manylinux_2_34_x86_64"


def generate_user_env_scenario(root: Union[str, Path]) -> dict[str, Any]:
    """Adds to the index under ``root``:

    * ``fx-notebook`` 7.2.2 -> ``fx-lab>=4.2``, ``fx-hub``
    * ``fx-lab`` 4.2.5 (pure Python)
    * ``fx-widgets`` 8.1.5: cp311 wheels for manylinux x86_64 and aarch64, plus a cp312 wheel and
      a manylinux_2_34 one that a lock for the installer's Python 3.11 and glibc 2.31 leaves out
    """
    root = Path(root)
    with tempfile.TemporaryDirectory(prefix="fixture-build-") as tmp:
        out = Path(tmp)
        dists = [
            build_wheel(out, "fx-notebook", "7.2.2", requires_dist=("fx-lab>=4.2", "fx-hub")),
            build_wheel(out, "fx-lab", "4.2.5", requires_python=">=3.8"),
        ]
        for tag in (CP311_X86_64, CP311_AARCH64, CP312_X86_64, CP311_X86_64_GLIBC_2_34):
            dists.append(build_wheel(out, "fx-widgets", "8.1.5", tag=tag, requires_python=">=3.9"))
        published = publish_to_index(root, dists)
    return {
        "requirements": ["fx-hub>=1.0,<2", "fx-notebook>=7.2.2,<8", "fx-lab>=4.2.5,<5",
                         "fx-widgets>=8.1.5,<9"],
        "foreign_files": [f"fx_widgets-8.1.5-{tag}.whl"
                          for tag in (CP312_X86_64, CP311_X86_64_GLIBC_2_34)],
        "files": {p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
                  for p in published},
    }


def publish_newer_hub(root: Union[str, Path]) -> str:
    """Release ``fx-hub`` 1.2.0: a hub lock made before keeps 1.1.0 (pins stay until
    upgraded), while a user set resolved afresh would take 1.2.0. Returns the new version."""
    with tempfile.TemporaryDirectory(prefix="fixture-build-") as tmp:
        wheel = build_wheel(Path(tmp), "fx-hub", "1.2.0", requires_dist=HUB_REQUIRES)
        publish_to_index(root, [wheel])
    return "1.2.0"
