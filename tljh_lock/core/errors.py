"""Errors a user can act on, each with the exit code scripts can rely on."""

from __future__ import annotations

# Exit codes, documented in `tljh-lock --help`.
EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and found a problem (stale lock, failed check, drift)
EXIT_USAGE = 2  # bad command line (argparse's own code), or a command this tljh-lock lacks
EXIT_INPUT = 3  # malformed recipe, lock, bundle or mirror map
EXIT_UPSTREAM = 4  # an upstream or mirror failed or served something unexpected
EXIT_INTEGRITY = 5  # a hash or size did not match


class TljhLockError(Exception):
    """An error with a message for the user and, optionally, the next step to take."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(TljhLockError):
    exit_code = EXIT_USAGE


class InputError(TljhLockError):
    exit_code = EXIT_INPUT


class UpstreamError(TljhLockError):
    exit_code = EXIT_UPSTREAM


class IntegrityError(TljhLockError):
    exit_code = EXIT_INTEGRITY

