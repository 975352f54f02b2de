"""Maintainer only: the lock exported in the formats other tools read (PEP 751 pylock,
npm's package-lock, conda-lock)."""
