"""Exports of a lock in the formats other tools read (PEP 751, package-lock, conda-lock)."""
