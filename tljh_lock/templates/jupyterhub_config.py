# Rendered by tljh-lock apply. TLJH's own hub configuration, from the hub environment (it loads
# /opt/tljh/config/jupyterhub_config.d/*.py last).
import importlib.util
import os

_tljh = importlib.util.find_spec("tljh")
if _tljh is not None and _tljh.origin:
    _tljh_config = os.path.join(os.path.dirname(_tljh.origin), "jupyterhub_config.py")
    if os.path.exists(_tljh_config):
        load_subconfig(_tljh_config)  # noqa: F821 - provided by traitlets when loading
