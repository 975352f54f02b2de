"""The pure-Python match specs of `check` give py-rattler's answers: on the forms conda-forge's
`depends` use, on conda's documented version order, and on thousands of generated cases."""

from __future__ import annotations

import itertools
import random

import pytest
from rattler import BuildString, MatchSpec, PackageRecord
from rattler import Version as RattlerVersion

from tljh_lock.lock.kinds import conda_spec
from tljh_lock.lock.kinds.conda_spec import SpecError, Version

VERSIONS = [
    "0", "1", "1.0", "1.0.0", "1.0.1", "1.1", "1.1_", "1.1a1", "1.1.0dev1", "1.1dev1", "1.1.0",
    "1.1.0post1", "1.2", "1.2.0", "1.2.3", "1.2.9", "1.2a", "1.20", "1.2rc1", "1.2.3.4", "2",
    "2.0", "2.36", "3.0", "3.12.5", "3.13.0rc1", "3.13.0a0", "1!1.0", "1.0+a", "1.0+b1",
    "2024.1.31", "1.0_1", "0.4.1.RC", "1.01", "1.2.dev", "1.2post", "11", "1.10", "9.9.9",
]
SPECS = [
    "x", "x *", "x 1", "x 1.2", "x =1.2", "x ==1.2", "x 1.2.*", "x 1.2*", "x >=1.2.*",
    "x ==1.2.*", "x !=1.2.*", "x ~=1.2.3", "x ~=1.2", "x >=3.12,<3.13.0a0", "x <1.1",
    "x <1.1a1", "x >=1.0|<0.5", "x 1.0-1", "x >1.2post1", "x >1.2", "x <1.2", "x >=1!1",
    "x 1.0+a", "x 1.0", "x >=1.0,(<2|>3)", "x =1", "x 1.0.*", "x 2024.1.*", "x >=2.17,<3.0.a0",
    "x <3.0.a0", "x 1.2.3.*", "x 1.*", "x >1.0.*", "x 1.01", "x <=1.2", "x 1.2.3,1.2.*",
    "x !=1.2", "x 1.1_", "x >=1.1_", "x 1.2a*", "x =1.2a", "x 1.10", "x <=1.1dev1",
    "x >=1.0 h1", "x 1.2 *_cp312", "x * *_0", "x 1.2 h1", "x =1.2 h1", "x ==1.2 h1",
    "x (>=1|<0)", "x 1|2", "x >=1.0,<2.0|>=3.0", "x 1.0+a.*", "x >0,<1.1_", "x <1.0.*",
    "x <=1.0.*", "x >1.0*", "x ~=1.0.*", "x !=1.0*", "x ==1.0*", "x 1.0.0.*", "x 1.0A",
    "x 1.0dev1", "x 1.0.dev*",
]
BUILDS = ["h1", "h1_cp312", "a_0", "0"]

# Real `depends` entries, with a version and build they meet and one they do not.
CONDA_FORGE = [
    ("python >=3.12,<3.13.0a0", ("3.12.5", "h5d6e7f8_0_cpython"), ("3.13.0", "h1_cp313")),
    ("python_abi 3.12.* *_cp312", ("3.12", "5_cp312"), ("3.12", "5_cp313")),
    ("libzlib 1.3.1 hb9d3cd8_2", ("1.3.1", "hb9d3cd8_2"), ("1.3.1", "hb9d3cd8_1")),
    ("libgcc >=13", ("14.2.0", "h767d61c_2"), ("12.4.0", "h1_0")),
    ("openssl >=3.3.2,<4.0a0", ("3.4.0", "h1_0"), ("4.0.0", "h1_0")),
    ("__glibc >=2.17,<3.0.a0", ("2.36", "0"), ("2.12", "0")),
    ("_openmp_mutex >=4.5", ("4.5", "2_gnu"), ("4.4", "2_gnu")),
    ("ncurses >=6.5,<7.0a0", ("6.5", "h2d0b736_3"), ("7.0", "h1")),
    ("pip", ("24.3.1", "pyh8b19718_2"), None),
]


def rattler_matches(spec: str, version: str, build: str) -> bool | str:
    record = PackageRecord(name="x", version=version, build=BuildString(build), build_number=0,
                           subdir="noarch")
    try:
        return bool(MatchSpec(spec).matches(record))
    except Exception:  # rattler refuses the spec
        return "refused"


def ours(spec: str, version: str, build: str) -> bool | str:
    try:
        return conda_spec.matches(spec, version, build)
    except SpecError:
        return "refused"


def disagreements(cases: list[tuple[str, str, str]]) -> list[str]:
    return [f"{case}: py-rattler {want}, ours {got}" for case in cases
            for want, got in [(rattler_matches(*case), ours(*case))] if want != got]


def test_the_depends_conda_forge_writes() -> None:
    for spec, good, bad in CONDA_FORGE:
        name = spec.split()[0]
        assert conda_spec.matches(spec, *good), spec
        assert rattler_matches(spec.replace(name, "x", 1), *good) is True
        if bad is not None:
            assert not conda_spec.matches(spec, *bad), spec
            assert rattler_matches(spec.replace(name, "x", 1), *bad) is False


def test_the_documented_order() -> None:
    """conda's documented order, lowest first; 0.4 equals 0.4.0, and case does not count."""
    order = ["0.4", "0.4.0", "0.4.1.rc", "0.4.1.RC", "0.4.1", "0.5a1", "0.5b3", "0.5C1", "0.5",
             "0.9.6", "0.960923", "1.0", "1.1dev1", "1.1_", "1.1a1", "1.1.0dev1", "1.1.0rc1",
             "1.1.0", "1.1.0post1", "1.1post1", "1.2", "1996.07.12", "1!0.4.1", "1!3.1.1.6",
             "2!0.4.1"]
    for low, high in zip(order, order[1:]):
        expected = 0 if (low, high) in {("0.4", "0.4.0"), ("0.4.1.rc", "0.4.1.RC")} else -1
        assert Version(low).compare(Version(high)) == expected, (low, high)
        assert (RattlerVersion(low) > RattlerVersion(high)) - (
            RattlerVersion(low) < RattlerVersion(high)) == expected


def test_a_grid_of_specs_versions_and_builds() -> None:
    assert disagreements(list(itertools.product(SPECS, VERSIONS, BUILDS))) == []


def _version(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        part = rng.choice(["0", "1", "2", "10", "01"])
        if rng.random() < 0.3:
            part += rng.choice(["a", "b", "rc", "dev", "post"]) + rng.choice(["", "1", "2"])
        parts.append(part)
    text = rng.choice([".", "_"]).join(parts) if rng.random() < 0.2 else ".".join(parts)
    if rng.random() < 0.05:
        text = "1!" + text
    if rng.random() < 0.05:
        text += "+" + rng.choice(["a", "1", "b2"])
    return text + ("_" if rng.random() < 0.05 else "")


def _spec(rng: random.Random, depth: int = 0) -> str:
    def term() -> str:
        operator = rng.choice(["", "", "==", "!=", "<", "<=", ">", ">=", "~=", "="])
        version = _version(rng).split("+")[0] if operator == "~=" else _version(rng)
        if rng.random() < 0.2 and operator != "~=":
            version += rng.choice(["*", ".*"])
        return operator + version

    spec = ",".join(term() if depth or rng.random() < 0.85 else f"({_spec(rng, 1)})"
                    for _ in range(rng.randint(1, 3)))
    return spec + ("|" + term() if rng.random() < 0.2 else "")


@pytest.mark.parametrize("seed", range(4))
def test_generated_cases(seed: int) -> None:
    rng = random.Random(seed)
    cases = []
    for _ in range(2500):
        build = rng.choice(["", " h1", " *_0", " h*", " *"]) if rng.random() < 0.2 else ""
        cases.append((f"x {_spec(rng)}{build}", _version(rng), rng.choice(["h1", "py_0"])))
    assert disagreements(cases) == []


@pytest.mark.parametrize("seed", range(2))
def test_generated_versions_order_and_prefixes(seed: int) -> None:
    rng = random.Random(100 + seed)
    wrong = []
    for _ in range(5000):
        a = _version(rng)
        b = a.rsplit(".", 1)[0] if rng.random() < 0.3 else _version(rng)
        theirs_a, theirs_b = RattlerVersion(a), RattlerVersion(b)
        order = (theirs_a > theirs_b) - (theirs_a < theirs_b)
        if Version(a).compare(Version(b)) != order:
            wrong.append(f"{a} vs {b}: order {order}")
        if Version(a).startswith(Version(b)) != theirs_a.starts_with(theirs_b):
            wrong.append(f"{a} starts with {b}: {theirs_a.starts_with(theirs_b)}")
    assert wrong == []


@pytest.mark.parametrize("spec", ["x 1.*.3", "x >=1,", "x (>=1", "x ~=1.2+a", "x [version=1]",
                                  "conda-forge::x 1", "x 1 h1 extra"])
def test_what_it_does_not_read_is_refused(spec: str) -> None:
    with pytest.raises(SpecError):
        conda_spec.matches(spec, "1.2", "h1")
