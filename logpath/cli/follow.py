"""`logpath follow`: each connection's journey shown while its lines are being written."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from logpath.cli.app import (
    HostOption,
    JsonOption,
    PortOption,
    SinceOption,
    StoreOption,
    UntilOption,
    command,
)
from logpath.cli.flows import NatOption, ProtoOption

# Seconds between two warnings that follow is falling behind
BEHIND_SAID_EVERY = 10.0

if TYPE_CHECKING:
    from logpath.follow import Event, Follower


@command("follow")
def follow_command(
    paths: Annotated[
        list[str],
        typer.Argument(help="Log files to follow (as tail -F does); - reads standard input."),
    ],
    store: StoreOption = None,
    port: PortOption = None,
    host: HostOption = None,
    proto: ProtoOption = None,
    nat: NatOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    rules: Annotated[
        str | None,
        typer.Option("--rules", help="The ruleset the logs are written under (as ingest)."),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Read the files from their start, not their end.")
    ] = False,
    idle: Annotated[
        float | None,
        typer.Option(
            "--idle",
            help="Seconds without a hop after which a connection ends (default: 10 unanswered, "
            "120 TCP, 30 UDP, 10 ICMP).",
            min=0.1,
        ),
    ] = None,
    year: Annotated[
        int | None,
        typer.Option("--year", help="Year of timestamps that carry none (RFC 3164)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show each connection live, as its log lines are written.

    A connection is printed when first seen, when it changes and when it ends.
    The lines are added to the store as they come (committed every 2 s).

    Ctrl-C (exit 130) or SIGTERM (exit 0) commits, prints a summary and stops.
    A later run reads on from where it stopped.

    Example: logpath follow /var/log/kern.log --port 8080 (or: dmesg -w | logpath follow -)
    """
    from rich.console import Console

    from logpath.cli.ingest import rules_option
    from logpath.follow import Follower, stop_on_signals
    from logpath.query import FlowQuery
    from logpath.render.live import LiveView, event_json, event_line
    from logpath.render.output import visible
    from logpath.store import Store

    query = FlowQuery(port=port, host=host, proto=proto, nat=nat, since=since, until=until)
    ruleset = rules_option(rules) if rules else None
    console = Console()
    stopped: list[int] = []
    restore = stop_on_signals(stopped.append)
    try:
        with Follower(
            paths, Store(store), query=query, from_start=from_start, year=year,
            ruleset=ruleset, idle=idle,
        ) as follower:  # fmt: skip
            for source in follower.inputs:
                typer.echo(f"logpath follow: reading {visible(source.where())}", err=True)
            if as_json or not console.is_terminal:
                write = event_json if as_json else event_line
                _run(follower, stopped, lambda events: _print(events, write))
            else:
                with LiveView(console) as view:
                    _run(follower, stopped, view.show)
    finally:
        restore()
    typer.echo(f"logpath follow: {visible(follower.summary.line())}", err=True)
    if follower.summary.behind:
        typer.echo(
            f"logpath follow: fell behind its writers after {follower.summary.behind:,} polls "
            "(8 MiB or more unread)",
            err=True,
        )
    if stopped and stopped[0] == signal.SIGINT:
        raise typer.Exit(128 + signal.SIGINT)


def _print(events: list[Event], write: Callable[[Event], str]) -> None:
    for event in events:
        typer.echo(write(event))


def _run(follower: Follower, stopped: list[int], show: Callable[[list[Event]], None]) -> None:
    """Poll until a signal asks to stop or standard input ends; then what came last."""
    from logpath.follow import BEHIND_BYTES

    warned = 0.0
    told: set[int] = set()
    while not stopped and not follower.ended:
        started = time.monotonic()
        show(follower.step())
        _tell_once(follower, told)
        if follower.unread >= BEHIND_BYTES and started - warned >= BEHIND_SAID_EVERY:
            warned = started
            typer.echo(
                f"logpath follow: falling behind its writers: {follower.unread / 2**20:,.0f} MiB "
                "not read yet",
                err=True,
            )
        time.sleep(follower.wait(time.monotonic() - started))
    show(follower.step())
    _tell_once(follower, told)


def _tell_once(follower: Follower, told: set[int]) -> None:
    """Say once that the worker's assembly of the store failed (follow goes on), and that
    standard input started with what an earlier run read (it is told only once its first
    lines arrived)."""
    from logpath.render.output import visible
    from logpath.tail import FollowedStdin

    if follower.summary.worker_failed and -1 not in told:
        told.add(-1)
        typer.echo(
            "logpath follow: the store's assembly by a worker process failed "
            f"({visible(follower.summary.worker_failed)}); reading on: every hop read is "
            "stored, and the store's connections are assembled when the input pauses and at "
            "the end",
            err=True,
        )
    for n, source in enumerate(follower.inputs):
        if isinstance(source, FollowedStdin) and source.continued and n not in told:
            told.add(n)
            typer.echo(
                f"logpath follow: standard input starts with the {source.continued:,} lines an "
                f"earlier run read: reading on from line {source.continued + 1:,}",
                err=True,
            )
