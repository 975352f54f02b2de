"""Maintainer only (the zipapp leaves it out): recipes resolved into lock components, with uv
(pip sets and source pins), npm (npm trees), py-rattler (conda) and the upstreams' release
lists; `update` keeps what did not change and writes the lock as TOML (tomli-w). May import
upstream/, lock/ and core/, never a server module beside it."""
