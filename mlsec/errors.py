"""The one error type mlsec raises for problems the user can act on.

Every error carries a user-facing diagnostic (what went wrong) and, where we know it, a hint
(what to do). The CLI catches :class:`MlsecError` once, prints both and exits 2. Anything else
that escapes is a bug.
"""

from __future__ import annotations


class MlsecError(Exception):
    """An error the user can act on: bad flags, unreadable PATH, invalid configuration."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostic(self) -> str:
        """The full text shown to the user."""
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(MlsecError):
    """Invalid configuration (a file, a key or a value)."""


class RuleError(MlsecError):
    """A rule data file is missing a field or is malformed (a packaging bug)."""
