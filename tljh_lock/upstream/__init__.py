"""Readers of the upstreams: one HTTP client (file:// and HTTP), mirrors, PyPI, GitHub, Node.js."""
