"""``logpath instrument``: print the LOG rules for a case (and what removes them)."""

from __future__ import annotations

from typing import Annotated

import typer

from logpath.cli.app import command


@command("instrument")
def instrument(
    port: Annotated[
        list[str] | None,
        typer.Option("--port", help="Port or range LOW-HIGH, source or destination; repeatable."),
    ] = None,
    addr: Annotated[
        str | None, typer.Option("--addr", help="Address or network, source or destination.")
    ] = None,
    proto: Annotated[
        list[str] | None,
        typer.Option("--proto", help="tcp, udp or icmp; repeatable (default: tcp and udp)."),
    ] = None,
    bridge: Annotated[
        str | None, typer.Option("--bridge", help="Only packets entering or leaving this bridge.")
    ] = None,
    hooks: Annotated[
        str,
        typer.Option(
            "--hooks",
            help="all, TABLE, HOOK or TABLE:HOOK, comma-separated (e.g. raw:pre,nat,fwd).",
        ),
    ] = "all",
    tag: Annotated[
        str | None, typer.Option("--tag", help="1-8 of [A-Za-z0-9_-] added to every prefix.")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="iptables (iptables-restore --noflush) or nft.")
    ] = "iptables",
    family: Annotated[str, typer.Option("--family", help="4, 6 or both.")] = "4",
    rate: Annotated[
        str | None, typer.Option("--rate", help="Log at most N/second (minute, hour, day).")
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Print what deletes these rules instead.")
    ] = False,
) -> None:
    """Print LOG rules whose prefixes logpath reads without a ruleset.

    After raw, --port matches the connection's ports: a published port logs past its DNAT.

    Example: logpath instrument --port 8080 | iptables-restore --noflush
    """
    # imported here: logpath.netfilter loads pandas (see logpath.cli.flows)
    from logpath.instrument import Plan, Selection, parse_places, render

    selection = Selection(
        ports=tuple(port or ()),
        addr=addr,
        protos=tuple(p.lower() for p in proto or ()),
        bridge=bridge,
    )
    plan = Plan(selection, parse_places(hooks), tag=tag, family=family, rate=rate)
    typer.echo(render(plan, output_format, remove), nl=False)
