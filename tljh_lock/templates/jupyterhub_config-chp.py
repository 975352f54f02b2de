
# Then the proxy of the 2019 design: configurable-http-proxy, started by its own unit, never by
# JupyterHub; traefik routes to it (/opt/tljh/state/rules/tljh-lock-proxy.toml).
c = get_config()  # noqa: F821
c.JupyterHub.proxy_class = "configurable-http-proxy"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:${proxy_api_port}"
# The token comes from CONFIGPROXY_AUTH_TOKEN, set by the unit's EnvironmentFile.
c.JupyterHub.bind_url = "http://127.0.0.1:${proxy_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = ${hub_port}
