"""The ground floor: errors and exit codes, targets, typed TOML access, the subprocess runner."""
