"""tljh-lock: reproducible lockfiles, bundles and a strict applier for The Littlest JupyterHub."""

__version__ = "0.1.0"
