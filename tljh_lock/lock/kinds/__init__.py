"""The component kinds, one module each (pip, npm, conda, release): how a component of that
kind is locked, read from the lock, proven complete by `check`, and what it installs. Each
imports only lock.model and core/; `KINDS` is the one list of them."""

from __future__ import annotations

from tljh_lock.lock.kinds import conda, npm, pip, release
from tljh_lock.lock.model import Component

KINDS: dict[str, type[Component]] = {
    kind.kind: kind for kind in (pip.Component, release.Component, conda.Component, npm.Component)
}
