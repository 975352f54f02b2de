"""What an action works with: the layout, the artifacts, the log, the run's scratch and the lock
being applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tljh_lock.apply.layout import Layout
from tljh_lock.apply.source import ArtifactSource
from tljh_lock.apply.tree import Seen
from tljh_lock.core.errors import TljhLockError
from tljh_lock.lock.model import Artifact


@dataclass
class Context:
    layout: Layout
    source: ArtifactSource | None
    log: Callable[[str], None]
    # The run's temporary files, and the TMPDIR of what it runs: below the state directory
    # (cleared under the apply lock), not a small /tmp. None: this process's temporary dir.
    scratch: Path | None = None
    trees: dict[str, Seen] = field(default_factory=dict)  # directories built in this run
    lock_bytes: bytes = b""  # the lock being applied, for its kept copy

    def artifact(self, artifact: Artifact) -> Path:
        """The verified file of `artifact`."""
        if self.source is None:
            raise TljhLockError(f"{artifact.name} is needed, and this command has no artifacts",
                                hint="apply the lock again from a bundle or a store")
        return self.source.path(artifact, self.scratch)
