"""The errors logpath raises across stage boundaries; the CLI turns each into one message."""

from __future__ import annotations

import signal


class LogpathError(Exception):
    """Base of every error logpath reports to the user instead of a traceback."""


class InputError(LogpathError):
    """An input file cannot be read at all (missing, a directory, unreadable)."""


class OutputError(LogpathError):
    """An output the user named (a picture, a report directory) cannot be written."""


class StoreError(LogpathError):
    """The hop store is missing, damaged, or held by another writer."""


class StoreLockedError(StoreError):
    """Another process is writing to the same store."""


class StoreWriteError(StoreError):
    """The store cannot be written (read-only, full disk): the run stored nothing."""


class WorkerError(LogpathError):
    """A parse worker process died (killed, out of memory): the run stored nothing."""


class UnsupportedPythonError(LogpathError):
    """The running Python cannot run logpath correctly (its ``re`` misreads the grammar)."""


class RulesetError(LogpathError):
    """A ruleset file cannot be read at all."""


class NotFoundError(LogpathError):
    """A flow, packet or other item the user named does not exist."""


class UsageError(LogpathError):
    """Options that contradict each other or a value out of range."""


# The signals that end a run which must clean up after itself (ingest: its parts, its workers):
# the command turns them into ``Stopped`` (``cli.app.stopped_by_signals``), and the workers and
# their server, in the same process group, leave them to it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):  # a stop, not an error: like KeyboardInterrupt
    """A signal (SIGTERM, SIGINT) ended the run; what it wrote was removed, unless it was
    already committed (``stored``).

    Not a LogpathError, nor an Exception at all: no ``except Exception`` on the way may take it
    for a failure to report and carry on.
    """

    def __init__(self, signal: int) -> None:
        super().__init__(signal)
        self.signal = signal
        self.stored = False  # the run had committed when the signal came (set by the store)
