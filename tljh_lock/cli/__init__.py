"""The `tljh-lock` command line: main.py builds the parser from the verb modules (inspect:
check, diff; bundle: fetch, bundle; server: apply, verify, status, rollback; maintainer: update,
export, offered only where the maintainer side is installed) and turns errors into one line
and an exit code; common.py holds the flags and defaults they share. The top: may import
every folder; only main imports maintainer.py, and only once it is known to be there."""
