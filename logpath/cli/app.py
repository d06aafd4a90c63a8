"""The typer application, the options shared by several commands, and exit codes.

Each command module (ingest, hops, flows, ...) registers itself on ``app``; a command reads its
options, calls one library function and hands the result to a renderer.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from logpath.errors import LogpathError, NotFoundError, StoreLockedError, UsageError
from logpath.render.output import visible_lines

app = typer.Typer(
    name="logpath",
    help="Reconstruct packet journeys from netfilter LOG lines (syslog, journald, dmesg).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class ExitStatus(enum.IntEnum):
    """Process exit codes."""

    OK = 0  # done; skipped/rejected lines are reported, not failures
    ERROR = 1  # a LogpathError: nothing (or not everything asked for) could be done
    USAGE = 2  # bad options (typer/click uses 2 as well)
    NOT_FOUND = 3  # the flow/packet asked for does not exist
    LOCKED = 4  # another process holds the store


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Hop store directory (default: $LOGPATH_STORE, else the user's data directory).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]
PortOption = Annotated[
    int | None, typer.Option("--port", help="Only traffic to or from this port.", min=0, max=65535)
]
HostOption = Annotated[
    str | None, typer.Option("--host", help="Only traffic from or to this address.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only hops at or after this time (ISO 8601).")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Only hops at or before this time (ISO 8601).")
]


F = TypeVar("F", bound=Callable[..., Any])


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
                return func(*args, **kwargs)
            except LogpathError as error:
                if os.environ.get("LOGPATH_TRACEBACK"):
                    raise
                # the message may quote a file name or a line: shown, never obeyed
                typer.echo(f"logpath: {visible_lines(str(error))}", err=True)
                raise typer.Exit(exit_status(error)) from None

        app.command(name)(run)
        return func

    return register
