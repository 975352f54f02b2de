"""`export --format package-lock`: npm's own package-lock.json (lockfileVersion 3) of one npm
component, with canonical `resolved` URLs and sha512 `integrity`.

`npm ci --offline` installs exactly the locked tree from it, from a cache that holds only the
locked tarballs (`npm cache add`), once the root package.json sits next to it (`files` gives
both by name). The rendering is the npm kind's own (apply installs from it too).
"""

from __future__ import annotations

from tljh_lock.core.errors import InputError
from tljh_lock.lock.kinds import npm as npm_lock
from tljh_lock.lock.model import Lock


def npm_component(lock: Lock, name: str | None) -> npm_lock.Component:
    """The named npm component, or the only one when no name is given."""
    known = sorted(n for n, c in lock.components.items() if isinstance(c, npm_lock.Component))
    if name is None and len(known) == 1:
        name = known[0]
    component = lock.components.get(name) if name else None
    if not isinstance(component, npm_lock.Component):
        raise InputError(f"no npm component {name!r} in the lock (npm components: "
                         f"{', '.join(known) or 'none'}; choose one with --component)")
    return component


def files(lock: Lock, component: str | None) -> dict[str, str]:
    """`package.json` and `package-lock.json`: what `npm ci` reads from the project folder."""
    return npm_component(lock, component).project_files()


def export(lock: Lock, component: str | None) -> str:
    return npm_lock.json_text(npm_component(lock, component).package_lock())
