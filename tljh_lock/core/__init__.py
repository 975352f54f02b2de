"""The ground floor, server side: errors and their exit codes, install targets, typed access
to untrusted TOML (read with tomllib or tomli), content hashes of source trees, atomic file
writes and hashes (files.py), and runner.py, where every subprocess starts with a clean
environment. Imports nothing of tljh_lock; only the stdlib and packaging."""
