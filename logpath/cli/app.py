"""The typer application, the options shared by several commands, and exit codes.

Each command module (ingest, hops, flows, ...) registers itself on ``app``; a command reads its
options, calls one library function and hands the result to a renderer.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer

from logpath.cli.pager import paged
from logpath.errors import (
    STOP_SIGNALS,
    LogpathError,
    NotFoundError,
    Stopped,
    StoreLockedError,
    UsageError,
)
from logpath.render.output import visible_lines


class ExitStatus(enum.IntEnum):
    """Process exit codes (EXIT_CODES says them to the user)."""

    OK = 0  # done; skipped/rejected lines are reported, not failures
    ERROR = 1  # an input, the store or an output could not be read or written (ingest: the
    # others' lines are stored)
    NOTHING_MATCHED = 1  # a query (flows, hops) matched nothing, as grep says it: an empty
    # answer is no failure of the run, but a script asks "was there any?" by the exit code
    USAGE = 2  # bad options (typer/click uses 2 as well)
    NOT_FOUND = 3  # the flow/packet asked for does not exist
    LOCKED = 4  # another process holds the store
    NOTHING_PARSED = 5  # ingest read new lines but stored no hop from them
    # 128 + N: stopped by signal N (SIGINT 130, SIGTERM 143), what the run wrote removed


# What each exit code means, for `logpath --help`; the README's "Exit codes" says the same.
EXIT_CODES = """\
Exit codes:
  0  done (skipped and rejected lines are reported, not failures)
  1  an input, the store or an output could not be read or written
     (ingest still stores the lines of the inputs it could read);
     or flows/hops matched nothing, as grep
  2  usage error
  3  the flow or packet asked for does not exist
  4  another ingest is writing to the store
  5  ingest read new lines but stored no hop: none was a netfilter line,
     or every one was rejected (`logpath rejected` says why)
  128+N  stopped by signal N (130 Ctrl-C, 143 SIGTERM): the run stored nothing"""

app = typer.Typer(
    name="logpath",
    help="Reconstruct packet journeys from netfilter LOG lines (syslog, journald, dmesg).",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"logpath {version('logpath')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print logpath's version.", callback=_print_version, is_eager=True
        ),
    ] = False,
    no_pager: Annotated[
        bool,
        typer.Option(
            "--no-pager",
            help="Never page. Long output to a terminal goes through $LOGPATH_PAGER, else "
            "$PAGER, else less -FRX.",
        ),
    ] = False,
) -> None:
    # set on every run, before its command: one process may run several (the tests do)
    _run_options["no_pager"] = no_pager


# The options of the run that every command obeys, set by ``_options``.
_run_options = {"no_pager": False}


def paging_wanted() -> bool:
    """False when ``--no-pager`` was given before the command."""
    return not _run_options["no_pager"]


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Hop store: a directory, or an object-store URL (s3://bucket/prefix, "
        "gs://bucket/prefix); default: $LOGPATH_STORE, else the user's data directory.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Only traffic to or from this port.", min=0, max=65535)
]
HostOption = Annotated[
    str | None,
    typer.Option("--host", help="Only traffic from or to this address or network (10.0.0.0/8)."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only hops at or after this time: ISO 8601 (UTC), -2h, yesterday, today 09:00.",
    ),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="Only hops at or before this time (as --since)."),
]
# The commands that do a fleet's heavy work (ingest, flows, journey, report) take it.
SchedulerOption = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Run on this Dask scheduler (tcp://HOST:PORT; `local`: a cluster on this "
        "machine's cores); default: $DASK_SCHEDULER_ADDRESS, else no Dask. Needs "
        "logpath\\[dask] (pip install 'logpath\\[dask]').",
    ),
]
# The variable dask itself reads for a scheduler's address.
SCHEDULER_VARIABLE = "DASK_SCHEDULER_ADDRESS"


def scheduler_address(option: str | None) -> str | None:
    """The scheduler a command runs on: its ``--scheduler``, else $DASK_SCHEDULER_ADDRESS,
    else None (this machine: then neither dask nor ``logpath.fleet`` is imported, and a
    question imports no assembly stage)."""
    return option or os.environ.get(SCHEDULER_VARIABLE) or None


F = TypeVar("F", bound=Callable[..., Any])


def exit_when_nothing_matched(count: int) -> None:
    """End a query that listed nothing with ExitStatus.NOTHING_MATCHED, as grep does; what it
    printed (an empty table's count, ``[]``, a CSV header) stands."""
    if count == 0:
        raise typer.Exit(ExitStatus.NOTHING_MATCHED)


# Said in the help of each query command.
NOTHING_MATCHED_HELP = "Exit code 1 when nothing matched (as grep)."


def exit_status(error: LogpathError) -> ExitStatus:
    """The exit code that tells a script what kind of failure this was."""
    if isinstance(error, StoreLockedError):
        return ExitStatus.LOCKED
    if isinstance(error, NotFoundError):
        return ExitStatus.NOT_FOUND
    if isinstance(error, UsageError):
        return ExitStatus.USAGE
    return ExitStatus.ERROR


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a command whose LogpathErrors become one message on stderr and an exit code.

    Set LOGPATH_TRACEBACK=1 (or pass --traceback before the command) to see the traceback.
    """

    def register(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                with paged(paging_wanted()):
                    return func(*args, **kwargs)
            except LogpathError as error:
                if os.environ.get("LOGPATH_TRACEBACK"):
                    raise
                # the message may quote a file name or a line: shown, never obeyed
                typer.echo(f"logpath: {visible_lines(str(error))}", err=True)
                raise typer.Exit(exit_status(error)) from None
            except OSError as error:
                # an output that cannot be written (a full disk, /dev/full): one line, not a
                # traceback; a reader that quit (a closed pipe) is no error to report
                if os.environ.get("LOGPATH_TRACEBACK") or isinstance(error, BrokenPipeError):
                    raise
                typer.echo(f"logpath: {visible_lines(_unwritable(error))}", err=True)
                raise typer.Exit(ExitStatus.ERROR) from None
            except Stopped as stop:
                name = signal.Signals(stop.signal).name
                done = "the run was stored" if stop.stored else "nothing of this run was stored"
                typer.echo(f"logpath: stopped by {name}; {done}", err=True)
                raise typer.Exit(128 + stop.signal) from None

        app.command(name)(run)
        return func

    return register


def _unwritable(error: OSError) -> str:
    """What could not be written, and why. Without a file name it was standard output, whose
    text still held would fail again as the interpreter exits: it is dropped."""
    reason = error.strerror or str(error)
    if error.filename is not None:
        return f"{error.filename}: cannot be written ({reason})"
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return f"the output could not be written ({reason})"


@contextmanager
def stopped_by_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into ``Stopped`` in this (the main) thread, so that the
    run unwinds: its ``finally`` and ``except BaseException`` clauses remove what it wrote and
    shut its workers down. A second signal while that runs is ignored (kill -9 remains)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        raise Stopped(signum)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
