"""conda's match specs as `depends` lists write them (`name [version [build]]`), matched as
py-rattler (the solver `update` uses) matches them, in plain Python: so that `check` proves a
conda solution on a server, which has no py-rattler, exactly as on the maintainer's side.
tests/lock/kinds/test_conda_spec.py holds it to py-rattler's answers.

Versions: an optional `N!` epoch, then components split at `.`, `_` and `-` (a trailing `_` is
a word of its own), each a run of numbers and words compared piece by piece: numbers above
words, `dev` below every other word, `post` above everything, missing pieces as 0, case
ignored; a `+local` part is compared last. Version specs: `,` (and) binds closer than `|` (or),
parentheses group; `==`, `!=`, `<`, `<=`, `>`, `>=`, `~=` (at least, on the same line), `=`
and a bare `1.2*` or `1.2.*` (a prefix), `*` (anything); after an operator other than `=` and
`!=` a trailing `*` is dropped. A build is a string, or a glob with `*`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import zip_longest
from typing import Union

Atom = Union[int, float, str]  # a number, `post` (inf), or a word ("" sorts as `dev`)
Components = list[list[Atom]]

_RUN = re.compile(r"[0-9]+|[^0-9]+")
_OPERATOR = re.compile(r"^(==|!=|<=|>=|~=|<|>|=)?(.*)$")
_VERSION_CHARS = re.compile(r"^[0-9a-z._+!-]+$")
_DEV = ""  # below every other word


class SpecError(ValueError):
    """Not a version or match spec this module (or conda) reads."""


def _atom_key(atom: Atom) -> tuple[int, float, str]:
    if isinstance(atom, str):
        return (0, 0, "") if atom == _DEV else (1, 0, atom)
    return (2, atom, "")  # post is float("inf")


def _split(text: str) -> Components:
    """Components at `.`, `_` and `-`, each a list of atoms; a trailing `_` is an atom of its
    own on the last component (openssl's `1.1_`, which sorts before 1.1)."""
    text = text.replace("-", "_")
    trailing = text.endswith("_")
    found: Components = []
    for part in (text[:-1] if trailing else text).replace("_", ".").split("."):
        runs = _RUN.findall(part)
        if not runs:
            raise SpecError(f"empty version component in {text!r}")
        atoms: list[Atom] = []
        for run in runs:
            if run.isdigit():
                atoms.append(int(run))
            elif run == "post":
                atoms.append(float("inf"))
            else:
                atoms.append(_DEV if run == "dev" else run)
        found.append(atoms if isinstance(atoms[0], int) else [0, *atoms])
    if trailing:
        found[-1].append("_")
    return found


class Version:
    def __init__(self, text: str) -> None:
        value = text.strip().lower()
        if not value or not _VERSION_CHARS.match(value):
            raise SpecError(f"{text!r} is not a conda version")
        epoch, bang, rest = value.partition("!")
        if not bang:
            epoch, rest = "0", value
        if not epoch.isdigit() or "!" in rest:
            raise SpecError(f"{text!r} has a malformed epoch")
        main, plus, local = rest.partition("+")
        self.text = text
        self.release: Components = [[int(epoch)], *_split(main)]
        self.local: Components = _split(local) if plus else []

    def parent(self) -> Version:
        """This version without its last component (and local part): the line it is on (for
        a version of one component, its epoch)."""
        line = Version.__new__(Version)
        line.text, line.release, line.local = self.text, self.release[:-1], []
        return line

    def _parts(self) -> tuple[Components, Components]:
        return self.release, self.local

    def compare(self, other: Version) -> int:
        for mine, theirs in zip(self._parts(), other._parts()):
            order = _compare(mine, theirs)
            if order:
                return order
        return 0

    def startswith(self, prefix: Version) -> bool:
        """Whether this version continues `prefix` (what `1.2.*` asks): the same epoch, and
        release and local parts each continuing the prefix's."""
        return (self.release[0] == prefix.release[0]
                and _continues(self.release[1:], prefix.release[1:])
                and _continues(self.local, prefix.local))


def _continues(mine: Components, prefix: Components) -> bool:
    """Each of the prefix's components equals this one's, missing ones counting as 0, except
    that this one may go on where the prefix stops: past its last component (1.2.3 continues
    1.2), or within it (1.2a.5 continues 1.2); within an earlier one only if this version ends
    there and nothing but zeros follows in the prefix (1.2a continues 1.2.0, 1.2a.5 does not)."""
    for index, wanted in enumerate(prefix):
        if index >= len(mine):
            return all(atom == 0 for component in prefix[index:] for atom in component)
        component = mine[index]
        if component[:len(wanted)] != wanted:
            return False
        if len(component) > len(wanted):
            return index == len(prefix) - 1 or index == len(mine) - 1 and all(
                atom == 0 for rest in prefix[index + 1:] for atom in rest)
    return True


def _compare(mine: Components, theirs: Components) -> int:
    missing: list[Atom] = []
    for a, b in zip_longest(mine, theirs, fillvalue=missing):
        for x, y in zip_longest(a, b, fillvalue=0):
            kx, ky = _atom_key(x), _atom_key(y)
            if kx != ky:
                return -1 if kx < ky else 1
    return 0


Test = Callable[[Version], bool]


def _term(text: str) -> Test:
    """One constraint: an operator and a version, or a prefix with `*`."""
    if text == "*":
        return lambda _: True
    match = _OPERATOR.match(text)
    assert match is not None
    operator, rest = match.group(1), match.group(2)
    prefix = rest.endswith("*")
    rest = rest[:-2] if rest.endswith(".*") else rest.rstrip("*") if prefix else rest
    if not rest or "*" in rest:
        raise SpecError(f"{text!r}: only a trailing * is understood")
    reference = Version(rest)
    if operator == "=" or (operator is None and prefix):
        return lambda v: v.startswith(reference)
    if operator == "!=" and prefix:
        return lambda v: not v.startswith(reference)
    # With an operator the `*` is dropped, as py-rattler (the solver) reads it: `==1.2.*` is
    # 1.2 exactly, and `>1.2.*` admits 1.2 itself.
    if operator == ">" and prefix:
        operator = ">="
    if operator == "~=":  # at least this version, on its line: ~=1.2.3 is >=1.2.3,1.2.*
        if reference.local:
            raise SpecError(f"{text!r}: ~= with a local version is not understood")
        line = reference.parent()
        return lambda v: v.compare(reference) >= 0 and v.startswith(line)
    compare: dict[str | None, Callable[[int], bool]] = {
        None: lambda c: c == 0, "==": lambda c: c == 0, "!=": lambda c: c != 0,
        "<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0,
    }
    check = compare[operator]
    return lambda v: check(v.compare(reference))


class _Parser:
    """`a,b|c,(d|e)`: `|` of `,` of terms, parentheses grouping."""

    def __init__(self, text: str) -> None:
        self.tokens = re.findall(r"[(),|]|[^(),|]+", text.replace(" ", ""))
        self.text = text
        self.at = 0

    def parse(self) -> Test:
        test = self._any()
        if self.at != len(self.tokens):
            raise SpecError(f"{self.text!r}: unexpected {self.tokens[self.at]!r}")
        return test

    def _next(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _any(self) -> Test:
        options = self._joined("|", self._all)
        return lambda v: any(option(v) for option in options)

    def _all(self) -> Test:
        parts = self._joined(",", self._one)
        return lambda v: all(part(v) for part in parts)

    def _joined(self, separator: str, part: Callable[[], Test]) -> list[Test]:
        found = [part()]
        while self._next() == separator:
            self.at += 1
            found.append(part())
        return found

    def _one(self) -> Test:
        token = self._next()
        if token is None or token in ",|)":
            raise SpecError(f"{self.text!r}: a constraint is missing")
        self.at += 1
        if token != "(":
            return _term(token)
        inner = self._any()
        if self._next() != ")":
            raise SpecError(f"{self.text!r}: unbalanced parentheses")
        self.at += 1
        return inner


def version_test(text: str) -> Test:
    return _Parser(text).parse()


def _build_test(text: str) -> Callable[[str], bool]:
    if "*" not in text:
        return lambda build: build == text
    pattern = re.compile(".*".join(re.escape(part) for part in text.split("*")) + r"\Z")
    return lambda build: pattern.match(build) is not None


def matches(spec: str, version: str, build: str) -> bool:
    """Whether a package at `version` and `build` meets the match spec `spec` (its name aside:
    the caller looked the package up by name)."""
    parts = spec.split()
    if not parts or len(parts) > 3 or any(c in spec for c in "[]:"):
        raise SpecError(f"{spec!r} is not a match spec of the form `name [version [build]]`")
    wanted = parts[1] if len(parts) > 1 else "*"
    wanted_build = parts[2] if len(parts) > 2 else None
    # As conda reads `depends`: `=1.2` alone is the prefix 1.2*; `==1.2` alone is exact.
    if wanted.startswith("==") and wanted_build is None:
        wanted = wanted[2:]
    elif wanted.startswith("=") and not wanted.startswith("==") and not any(
            c in wanted[1:] for c in "=,|"):
        wanted = wanted[1:] + ("*" if wanted_build is None and not wanted.endswith("*") else "")
    if not version_test(wanted)(Version(version)):
        return False
    return wanted_build is None or _build_test(wanted_build)(build)
