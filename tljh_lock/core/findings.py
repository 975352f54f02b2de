"""What `check` and `verify` report, as fields a script can read (`--json`) beside the line
for people (`str()`): both report classes derive from `Fields`."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Fields:
    def to_dict(self) -> dict[str, str]:
        """The fields that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}
