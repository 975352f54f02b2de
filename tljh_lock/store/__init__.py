"""The content-addressed store, verified downloads into it, and wheels built for it."""
