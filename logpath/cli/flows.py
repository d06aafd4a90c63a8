"""`logpath flows` and `logpath journey`: connections and the packets' journeys through them."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from logpath.cli.app import (
    CsvOption,
    HostOption,
    JsonOption,
    PortOption,
    SchedulerOption,
    SinceOption,
    StoreOption,
    UntilOption,
    command,
    exit_when_nothing_matched,
    scheduler_address,
)
from logpath.errors import UsageError

# The library (pandas, Arrow, rich) is imported by the command that runs, not when the CLI
# starts: every command module is imported to list the commands, and importing all of them
# took 1.2 s of the 1.4 s of `logpath journey`.
if TYPE_CHECKING:
    from rich.console import Console

    from logpath.flows import Flow
    from logpath.store import Store

T = TypeVar("T")
ProtoOption = Annotated[
    str | None, typer.Option("--proto", help="Only this protocol (tcp, udp, icmp, icmpv6, ...).")
]
NatOption = Annotated[
    str | None,
    typer.Option("--nat", help="Only flows with NAT: snat, dnat (DNAT or REDIRECT) or any."),
]
AllOption = Annotated[
    bool,
    typer.Option(
        "--all", help="Every connection (the default without a filter; kept for old scripts)."
    ),
]
# The flows-table columns the table shows.
TABLE_COLUMNS = (
    "id proto orig_src orig_sport orig_dst orig_dport reply_src reply_sport reply_dst "
    "reply_dport nat packets hops first_seen state answered dropped lost"
).split()
CSV_COLUMNS = (
    "id proto family orig_src orig_sport orig_dst orig_dport reply_src reply_sport reply_dst "
    "reply_dport nat packets hops first_seen last_seen state answered stopped dropped lost"
).split()


@command("flows")
def flows_command(
    store: StoreOption = None,
    port: PortOption = None,
    host: HostOption = None,
    proto: ProtoOption = None,
    nat: NatOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    everything: AllOption = False,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
    scheduler: SchedulerOption = None,
) -> None:
    """Connections as conntrack sees them: orig and reply, NAT, state.

    Exit code 1 when no connection matched (as grep).

    Example: logpath flows --port 12580 --nat snat
    """
    from logpath.hops import json_array_parts
    from logpath.query import FlowQuery, flow_rows, iter_flows
    from logpath.render.tables import print_flows
    from logpath.store import Store

    if as_json and as_csv:
        raise UsageError("--json and --csv exclude each other: choose one")
    query = FlowQuery(
        port=port, host=host, proto=proto, nat=nat, since=since, until=until, everything=everything
    )
    assemble_on_cluster(Store(store), scheduler)
    listed = Counted()
    if as_json:
        flows = listed.count(iter_flows(Store(store), query))
        # a write per 1,000 flows, not per flow (a tenth of `flows --all --json`)
        pieces = json_array_parts(f.to_json() for f in flows)
        while batch := "".join(itertools.islice(pieces, 1000)):
            typer.echo(batch, nl=False)
        typer.echo("")
    elif as_csv:
        for piece in flows_csv(listed.count(iter_flows(Store(store), query))):
            typer.echo(piece, nl=False)
    else:
        console = _console()
        rows = flow_rows(Store(store), query, TABLE_COLUMNS)
        print_flows(console, rows)
        listed.items = rows.num_rows
        if proto is not None:
            _say_why_other_protocols(console, proto, rows["proto"].to_pylist())
    exit_when_nothing_matched(listed.items)


def assemble_on_cluster(store: Store, scheduler: str | None) -> None:
    """With a scheduler, a store whose connections must be assembled again (an older
    logpath's, another ruleset's) is assembled on the cluster before the question reads it
    (flows, journey, report); without one, nothing: the question assembles it here."""
    address = scheduler_address(scheduler)
    if address is not None:
        from logpath.fleet import assemble_stale_on, connected

        with connected(address) as cluster:
            assemble_stale_on(cluster, store)


def _say_why_other_protocols(console: Console, proto: str, listed: list[str]) -> None:
    """``--proto icmp`` lists the connections an ICMP error is about (a UDP flow and the port
    unreachable it met): say so, rather than leave a UDP row unexplained."""
    from logpath.store import logged_protocol

    wanted = logged_protocol(proto)
    others = sum(1 for p in listed if p != wanted)
    if others:
        console.out(
            f"({others:,} of them not {wanted} connections: listed for the {wanted} errors "
            "about them)",
            highlight=False,
        )


@command("journey")
def journey_command(
    flow_id: Annotated[str, typer.Argument(help="A flow id from `logpath flows`.")],
    store: StoreOption = None,
    packet: Annotated[
        int | None, typer.Option("--packet", help="Only packet N of the flow (1-based).", min=1)
    ] = None,
    as_json: JsonOption = False,
    scheduler: SchedulerOption = None,
) -> None:
    """One connection's packets, hop by hop: hooks, NAT, verdicts.

    Then what went wrong, with hints for well-known chains.

    Example: logpath journey 3f5d7f1cd6 --packet 2
    """
    from logpath.analysis import analyse
    from logpath.query import load_journey
    from logpath.render.timeline import print_timeline
    from logpath.store import Store

    assemble_on_cluster(Store(store), scheduler)
    journey = load_journey(Store(store), flow_id, packet)
    if as_json:
        data = {**journey.to_json(), "analysis": analyse(journey).to_json()}
        typer.echo(json.dumps(data, indent=1))
    else:
        print_timeline(_console(), [journey])


class Counted:
    """How many items went by, counted as they are streamed."""

    def __init__(self) -> None:
        self.items = 0

    def count(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            self.items += 1
            yield item


def _console() -> Console:
    """The terminal, or a wide page when the output goes to a pipe or file (no wrapping)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=1000)


def flows_csv(flows: Iterable[Flow]) -> Iterator[str]:
    """Flows as CSV, one row each, a piece at a time; NAT translations joined by ``;``; each
    cell ``csv_cell``."""
    from logpath.render.output import csv_row

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for n, flow in enumerate(flows, start=1):
        data = flow.to_json()
        row = (
            [data["id"], data["proto"], data["family"]]
            + [data["orig"][k] for k in ("src", "sport", "dst", "dport")]
            + [data["reply"][k] for k in ("src", "sport", "dst", "dport")]
            + [";".join(f"{t['type']} {t['from']}>{t['to']} {t['hook']}" for t in data["nat"])]
            + [data[k] for k in ("packets", "hops", "first_seen", "last_seen", "state")]
            + [data["answered"], data["stopped"], data["dropped"], data["lost"]]
        )
        writer.writerow(csv_row(row))
        if n % 1024 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
