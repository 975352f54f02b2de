"""The `tljh-lock` command line."""
