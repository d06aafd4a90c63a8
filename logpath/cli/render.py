"""`logpath render` (a journey's sequence diagram) and `logpath report` (the HTML report)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from logpath.cli.app import (
    HostOption,
    PortOption,
    SchedulerOption,
    SinceOption,
    StoreOption,
    UntilOption,
    command,
)
from logpath.cli.flows import AllOption, NatOption, ProtoOption, assemble_on_cluster
from logpath.render import DIAGRAM_LIMIT
from logpath.render.output import check_output, visible, writing_to

# The library is imported by the command that runs (see logpath.cli.flows).


@command("render")
def render_command(
    flow_id: Annotated[str, typer.Argument(help="A flow id from `logpath flows`.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="The picture to write: FILE.png or FILE.svg.")
    ],
    store: StoreOption = None,
    packets: Annotated[
        str | None,
        typer.Option("--packets", help="Draw only these packets: numbers and ranges, e.g. 1-3,7."),
    ] = None,
    handshake: Annotated[
        bool, typer.Option("--handshake", help="Draw only the TCP handshake and first data.")
    ] = False,
    unfold: Annotated[
        bool,
        typer.Option(
            "--unfold", help="Draw every hop and packet (by default repeats fold into one row)."
        ),
    ] = False,
) -> None:
    """Draw a connection's journey as a sequence diagram (PNG, SVG).

    Example: logpath render 217a626eb5-55148 -o masquerade.png --handshake
    """
    # matplotlib loads here, not when any command starts (it costs every command 0.3 s)
    from logpath.query import load_journey
    from logpath.render import diagram as drawing
    from logpath.store import Store

    drawing.picture_format(output)  # a wrong name fails before the store is read
    check_output(output)  # as does a directory that is missing or not writable
    numbers = drawing.packet_numbers(packets) if packets is not None else None
    journey = load_journey(Store(store), flow_id)
    bridges = drawing.bridges_seen(Store(store), journey)
    if numbers is not None:
        journey = drawing.pick_packets(journey, numbers)
    if handshake:
        journey = drawing.handshake(journey)
    with writing_to(output):
        diagram = drawing.save_diagram(journey, output, fold=not unfold, bridges=bridges)
    hops = [arrow for arrow in diagram.arrows if arrow.kind == "hop"]
    folded = len(journey.packets) - len(diagram.packets)
    typer.echo(
        f"{visible(str(output))}: {len(journey.packets)} packet(s)"
        + (f" ({folded} folded: same way as one drawn)" if folded else "")
        + f", {sum(arrow.count for arrow in hops)} hop(s) in {len(hops)} arrow(s), "
        f"{len(diagram.lifelines)} lifeline(s)"
    )


@command("report")
def report_command(
    store: StoreOption = None,
    port: PortOption = None,
    host: HostOption = None,
    proto: ProtoOption = None,
    nat: NatOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Directory to write (default: reports/<UTC timestamp>/)."
        ),
    ] = None,
    everything: AllOption = False,
    diagrams: Annotated[
        int,
        typer.Option(
            "--diagrams", help="Draw diagrams for the first N connections (problems first).", min=0
        ),
    ] = DIAGRAM_LIMIT,
    scheduler: SchedulerOption = None,
) -> None:
    """Write an HTML report of the connections, with a page for each.

    With the filters of `logpath flows`; index.html has a summary and a table to sort.

    Example: logpath report --port 12580 -o reports/seed
    """
    from logpath.query import FlowQuery
    from logpath.render.report import write_report
    from logpath.store import Store

    now = datetime.now(UTC)
    out_dir = output or Path("reports") / now.strftime("%Y%m%dT%H%M%SZ")
    query = FlowQuery(
        port=port, host=host, proto=proto, nat=nat, since=since, until=until, everything=everything
    )
    check_output(out_dir, directory=True)
    assemble_on_cluster(Store(store), scheduler)
    with writing_to(out_dir):
        result = write_report(Store(store), query, out_dir, now, diagrams)
    page = visible(str(result.page))
    typer.echo(f"{page}: {result.flows:,} connection(s), {result.diagrams:,} diagram(s)")
