"""TLJH admins as its installer's `--admin NAME[:PASSWORD]` takes them, read from apply's
options or from a file (`--admins-from`, one entry a line, `-` for standard input, which is how
Ansible hands them over). A password is kept in memory only: never in a repr, an error, the
plan's description, the state or a command line (the hub's python reads it on stdin)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from tljh_lock.core.errors import InputError


@dataclass(frozen=True)
class Admin:
    name: str
    password: str | None = field(default=None, repr=False)


def parse(entry: str, where: str) -> Admin:
    """`NAME` or `NAME:PASSWORD` (the password may hold colons). Errors name `where`, never the
    entry: it may hold a password."""
    name, colon, password = entry.partition(":")
    if not name:
        raise InputError(f"{where}: an admin has no name", hint="write NAME or NAME:PASSWORD")
    if any(c.isspace() or not c.isprintable() or c == "/" for c in name):
        raise InputError(f"{where}: an admin's name has a space, a slash or a control "
                         "character", hint="write NAME or NAME:PASSWORD, one a line")
    if colon and not password:
        raise InputError(f"{where}: admin {name!r} has an empty password",
                         hint=f"write {name} alone for an admin without a password")
    return Admin(name, password if colon else None)


def read(text: str, where: str) -> list[Admin]:
    """One entry a line; blank lines and lines starting with `#` are skipped."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            found.append(parse(entry, f"{where} line {number}"))
    return found


def merged(admins: Iterable[Admin]) -> tuple[Admin, ...]:
    """One entry a name, in the order given; two different passwords for one name are an
    error (which one TLJH should keep is not ours to guess)."""
    by_name: dict[str, Admin] = {}
    for admin in admins:
        known = by_name.get(admin.name)
        if known is not None and known.password is not None and admin.password is not None \
                and known.password != admin.password:
            raise InputError(f"admin {admin.name!r} is given two different passwords",
                             hint="give each admin one password")
        if known is None or admin.password is not None:
            by_name[admin.name] = admin
    return tuple(by_name.values())


def stdin_payload(admins: Iterable[Admin]) -> str:
    """What the hub's python reads on stdin (tljh.py's ADMINS)."""
    return json.dumps([{"name": a.name, "password": a.password} for a in admins])
