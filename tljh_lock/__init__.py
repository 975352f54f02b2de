"""tljh-lock: reproducible lockfiles, bundles and a strict applier for The Littlest JupyterHub.

The package has two sides. The maintainer side resolves recipes into locks and exports them
(`MAINTAINER_SIDE`, with the heavier tools of `MAINTAINER_REQUIRES`). Everything else runs on
a server's bare python3 >= 3.9 with only packaging, urllib3, tqdm, tomli and installer
(pypa/installer, which unpacks the locked wheels); the bundle's zipapp carries exactly that,
and tests/test_layers.py proves it imports without the rest.
"""

__version__ = "0.1.0"

MAINTAINER_SIDE = ("tljh_lock.resolve", "tljh_lock.export", "tljh_lock.cli.maintainer")
MAINTAINER_REQUIRES = ("uv", "rattler", "tomli_w")
