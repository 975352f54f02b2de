# Rendered by tljh-lock apply. TLJH's own configuration first, then the proxy of the 2019 design:
# configurable-http-proxy, started by its own unit, never by JupyterHub.
import importlib.util
import os

_tljh = importlib.util.find_spec("tljh")
if _tljh is not None and _tljh.origin:
    _tljh_config = os.path.join(os.path.dirname(_tljh.origin), "jupyterhub_config.py")
    if os.path.exists(_tljh_config):
        load_subconfig(_tljh_config)  # noqa: F821 - provided by traitlets when loading

c = get_config()  # noqa: F821
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:${proxy_api_port}"
# The token comes from CONFIGPROXY_AUTH_TOKEN, set by the unit's EnvironmentFile.
c.JupyterHub.bind_url = "http://127.0.0.1:${proxy_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = ${hub_port}
