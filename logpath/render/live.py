"""The live view of ``logpath follow``: one plain line per event when the output is a pipe, and
in a terminal the open connections in a table under the finished ones, which scroll above it.

Renderers take the events and a rich ``Console``; they never look at the terminal themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from logpath.follow import Event
from logpath.records import Flow
from logpath.render.output import visible

# Colours: what went wrong stands out, NAT is marked
_STATE_STYLES = {"reset": "red", "unreplied": "yellow", "syn-sent": "yellow", "closed": "dim"}


def nat_text(flow: Flow) -> str:
    """The connection's translations as ``flows`` shows them: ``dnat 10.77.0.1:8080→...``."""
    return ", ".join(f"{t.type} {t.from_addr}→{t.to_addr}" for t in flow.nat)


def event_line(event: Event) -> str:
    """One event as a plain line (output to a pipe or a file)."""
    flow = event.flow
    parts = [
        f"{event.kind:<6}",
        flow.id,
        flow.proto,
        f"{flow.orig}",
        f"reply {flow.reply}",
    ]
    if flow.nat:
        parts.append(nat_text(flow))
    parts.append(f"{flow.state} {flow.packets} pkts {flow.hops} hops")
    if flow.dropped or flow.lost or flow.stopped:
        parts.append(f"dropped {flow.dropped} lost {flow.lost} stopped {flow.stopped}")
    if event.last_hop:
        parts.append(f"last {event.last_hop}")
    return visible("  ".join(parts))


def event_json(event: Event) -> str:
    """One event as a line of JSON: the ``flows --json`` object with ``event``."""
    # ASCII, as every --json of logpath: a bidi or invisible character of a log as a \u escape
    return json.dumps(event.to_json())


def _style(flow: Flow) -> str:
    if flow.dropped or flow.lost:
        return "bold red"
    return _STATE_STYLES.get(flow.state, "")


def nat_short(flow: Flow) -> str:
    """The translations by what they translate to (the table's room is short): ``snat
    →10.77.0.1:49438``."""
    return ", ".join(f"{t.type} →{t.to_addr}" for t in flow.nat)


def open_table(open_events: Iterable[Event]) -> Table:
    """The open connections, each with its NAT, state and where its last hop was logged."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("id", "proto", "orig", "nat", "pkts", "state", "last hop"):
        table.add_column(name, no_wrap=name != "last hop")
    for event in open_events:
        flow = event.flow
        table.add_row(
            flow.id,
            flow.proto,
            str(flow.orig),
            Text(nat_short(flow), style="magenta"),
            str(flow.packets),
            Text(flow.state, style=_style(flow)),
            # a chain's name comes from a LOG prefix: text, never markup or a terminal escape
            Text(visible(event.last_hop)),
        )
    return table


class LiveView:
    """The terminal view: a table of the open connections, the ended ones printed above it.
    The last table stays on the screen when follow stops: what was still open."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.open: dict[str, Event] = {}
        self.live = Live(self._render(), console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *args: object) -> None:
        self.live.__exit__(None, None, None)

    def show(self, events: Iterable[Event]) -> None:
        """Take these events in: an ended connection scrolls above the table."""
        changed = False
        for event in events:
            changed = True
            if event.kind == "end":
                last = self.open.pop(event.flow.id, event)
                ended = Event("end", event.flow, last.last_hop)
                self.live.console.print(Text(event_line(ended), style=_style(event.flow)))
            else:
                self.open[event.flow.id] = event
        if changed:
            self.live.update(self._render(), refresh=True)

    def _render(self) -> RenderableType:
        return open_table(self.open.values())
