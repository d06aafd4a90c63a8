"""The errors logpath raises across stage boundaries; the CLI turns each into one message."""

from __future__ import annotations


class LogpathError(Exception):
    """Base of every error logpath reports to the user instead of a traceback."""


class InputError(LogpathError):
    """An input file cannot be read at all (missing, a directory, unreadable)."""


class StoreError(LogpathError):
    """The hop store is missing, damaged, or held by another writer."""


class StoreLockedError(StoreError):
    """Another process is writing to the same store."""


class UnsupportedPythonError(LogpathError):
    """The running Python cannot run logpath correctly (its ``re`` misreads the grammar)."""


class RulesetError(LogpathError):
    """A ruleset file cannot be read at all."""


class NotFoundError(LogpathError):
    """A flow, packet or other item the user named does not exist."""


class UsageError(LogpathError):
    """Options that contradict each other or a value out of range."""
