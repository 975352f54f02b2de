"""The fixture upstream: a local stand-in for PyPI, GitHub, nodejs.org, npm and conda.

See ``server`` for the URL layout, ``artifacts`` for the generated packages and ``scenarios``
for ready-made upstreams. Stdlib and ``packaging`` only: it also runs ``make demo``.
"""

from .artifacts import (
    build_fixture_backend_wheel,
    build_sdist,
    build_wheel,
    make_source_archive,
    publish_to_index,
    sha256_file,
)
from .scenarios import archive_tree_hash, dirhash_h1, generate_hub_scenario
from .server import FAULTS, HOSTS, FixtureUpstream

__all__ = [
    "FAULTS",
    "HOSTS",
    "FixtureUpstream",
    "archive_tree_hash",
    "build_fixture_backend_wheel",
    "build_sdist",
    "build_wheel",
    "dirhash_h1",
    "generate_hub_scenario",
    "make_source_archive",
    "publish_to_index",
    "sha256_file",
]
