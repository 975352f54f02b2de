"""Maintainer only: recipes resolved into lock components (uv, npm, rattler)."""
