"""What has been applied: `/opt/tljh/state/state.json`, kept with an exclusive lock.

state.json holds
- `steps`: step id -> the input hash of its last successful run (what makes re-runs no-ops);
- `files`: installed path -> sha256 and mode of every rendered file (what `verify` checks);
- `trees`: built directory (`hub.<key>`, ...) -> the hash of its contents when it was built;
- `generations`: every applied lock, oldest first, with the directories it uses;
- `current`: the number of the generation in use.
The applied locks themselves are kept as `generations/<n>.lock.toml` for `status` and `rollback`.
`trees-seen.json` remembers each built directory's tree hash with the stat signature it was
computed at (tree.py): a cache, rebuilt from the directories when it is lost or unreadable.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tljh_lock.apply.tree import Seen
from tljh_lock.core.errors import InputError, TljhLockError
from tljh_lock.core.files import write_atomic

STATE_VERSION = 1


@dataclass
class Generation:
    number: int
    lock_sha256: str
    dirs: dict[str, str]  # role ("hub", "node", "proxy") -> directory name below /opt/tljh
    versions: dict[str, str]  # the versions the downgrade rule compares
    applied_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "lock-sha256": self.lock_sha256, "dirs": self.dirs,
                "versions": self.versions, "applied-at": self.applied_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Generation:
        return cls(number=int(data["number"]), lock_sha256=str(data["lock-sha256"]),
                   dirs=dict(data["dirs"]), versions=dict(data["versions"]),
                   applied_at=str(data["applied-at"]))


@dataclass
class State:
    steps: dict[str, str] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> sha256, mode
    trees: dict[str, str] = field(default_factory=dict)  # directory below /opt/tljh -> hash
    generations: list[Generation] = field(default_factory=list)
    current: int | None = None

    @property
    def current_generation(self) -> Generation | None:
        return self.generation(self.current) if self.current is not None else None

    def generation(self, number: int) -> Generation | None:
        return next((g for g in self.generations if g.number == number), None)

    def to_dict(self) -> dict[str, Any]:
        return {"state-version": STATE_VERSION, "current": self.current,
                "generations": [g.to_dict() for g in self.generations],
                "steps": dict(sorted(self.steps.items())),
                "files": dict(sorted(self.files.items())),
                "trees": dict(sorted(self.trees.items()))}


def state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def lock_copy(state_dir: Path, number: int) -> Path:
    return state_dir / "generations" / f"{number}.lock.toml"


def load(state_dir: Path) -> State:
    path = state_file(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable state: {exc}") from None
    if data.get("state-version") != STATE_VERSION:
        raise InputError(f"{path}: state-version {data.get('state-version')!r} is not "
                         f"{STATE_VERSION}; this tljh-lock cannot read it")
    try:
        return State(steps=dict(data["steps"]), files=dict(data["files"]),
                     trees=dict(data["trees"]),
                     generations=[Generation.from_dict(g) for g in data["generations"]],
                     current=data["current"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed state: {exc!r}") from None


def seen_file(state_dir: Path) -> Path:
    return state_dir / "trees-seen.json"


def load_seen(state_dir: Path) -> dict[str, Seen]:
    try:
        data = json.loads(seen_file(state_dir).read_text(encoding="utf-8"))
        return {str(name): Seen(str(entry["signature"]), str(entry["tree"]))
                for name, entry in data.items()}
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return {}  # a cache: what it held is hashed again


def save_seen(state_dir: Path, seen: dict[str, Seen]) -> None:
    if seen == load_seen(state_dir):
        return  # a no-op apply writes nothing
    write_atomic(seen_file(state_dir), (json.dumps(
        {name: entry.to_dict() for name, entry in sorted(seen.items())}, indent=2) + "\n"
    ).encode(), 0o600, exclusive=True)


def save(state_dir: Path, state: State) -> None:
    write_atomic(state_file(state_dir),
                 (json.dumps(state.to_dict(), indent=2) + "\n").encode(), exclusive=True)


@contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """Hold the apply lock; a second apply (or rollback) refuses instead of interleaving."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # TLJH's: the hub's secrets
    fd = os.open(state_dir / "apply.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise TljhLockError(
                f"another tljh-lock apply is running on {state_dir} (pid {holder})",
                hint="wait for it to finish, then run this command again",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
