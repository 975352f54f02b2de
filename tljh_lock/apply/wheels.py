"""Which locked wheels an environment gets, and on which of the lock's targets: pure, from the
lock, the server's python and the list of wheels built from sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tljh_lock.apply.observe import Interpreter
from tljh_lock.core.errors import InputError
from tljh_lock.core.targets import Target
from tljh_lock.lock.kinds import pip as pip_lock
from tljh_lock.lock.model import Artifact


class BuiltWheels(Protocol):
    """The wheels built from sdists and source pins (a bundle's, or the store's records)."""

    def built_wheel(self, input_sha256: str, what: str) -> Artifact: ...

    def built_from_source(self, pin: pip_lock.Source, what: str) -> Artifact: ...


def target_for(targets: list[Target], interp: Interpreter, what: str) -> Target:
    """The lock's target this interpreter is: same python X.Y and arch, the newest glibc that
    is not newer than the server's (wheels for a newer glibc would not load)."""
    fitting = [t for t in targets if t.arch == interp.arch and t.python_minor == interp.minor
               and _glibc(t.glibc) <= _glibc(interp.glibc)]
    if not fitting:
        have = ", ".join(f"{t.name} (python {t.python}, glibc {t.glibc})" for t in targets)
        raise InputError(
            f"{what}: the lock has no target for python {interp.version} on {interp.arch} with "
            f"glibc {interp.glibc} ({interp.path}); it has: {have}",
            hint="add this distribution to recipes/targets.toml and update the lock",
        )
    return max(fitting, key=lambda t: _glibc(t.glibc))


def _glibc(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


@dataclass(frozen=True)
class WheelSet:
    """What goes into an environment: wheel file name -> artifact."""

    wheels: tuple[tuple[str, Artifact], ...]

    @property
    def key_material(self) -> list[str]:
        return sorted(f"{name} {a.sha256}" for name, a in self.wheels)


def wheel_set(component: pip_lock.Component, target: Target, built: BuiltWheels,
              what: str, *, with_pip: bool = False) -> WheelSet:
    """The locked files for `target`, with sdists and source pins replaced by the wheels
    built from them. `with_pip`: the set must hold pip, for admins to manage the environment
    with (TLJH's docs have them `pip install` into the hub)."""
    chosen: list[tuple[str, Artifact]] = []
    has_pip = False
    for package in component.packages:
        if not package.applies_to(target):
            continue
        artifact = package.install_artifact(target)
        if artifact is None:
            raise InputError(f"{what}: {package.name} {package.version} has no file for "
                             f"{target.name}", hint="run `tljh-lock check`")
        if artifact is package.sdist:
            artifact = built.built_wheel(artifact.sha256, f"{what}: {artifact.name}")
        chosen.append((artifact.name, artifact))
        has_pip = has_pip or package.name == "pip"
    for pin in component.sources:
        wheel = built.built_from_source(pin, f"{what}: source {pin.name} {pin.version}")
        chosen.append((wheel.name, wheel))
    if with_pip and not has_pip:
        raise InputError(
            f"{what}: the locked set has no pip wheel, and admins manage the environment with "
            "pip (TLJH's `pip install` into it)",
            hint="add `pip` to the recipe's requirements and update the lock",
        )
    return WheelSet(tuple(sorted(chosen)))
