"""Terminal timeline of a journey: a header per connection, a block per packet, a line per hop.

Drawn with rich on a Console the caller gives: colour when that console supports it, plain text
under NO_COLOR or when piped (rich decides from the console, never from the terminal itself), and
columns fitted to the console's width. Role switches (bridge ⇄ nic) and NAT stand out. Text
from the log (host names, interfaces, chains, ...) is ``visible``: no control character of it
reaches the terminal or the report.

    python -m logpath.render.timeline STORE FLOW_ID
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from logpath.analysis import Analysis, analyse, rule_name
from logpath.journeys import Journey, JourneyHop, Packet
from logpath.records import ConnTuple, Flow, format_endpoint
from logpath.render.output import visible

# Styles: one place, so the HTML report (rich's export) and the terminal agree.
STYLE = {
    "flow": "bold",
    "orig": "bold cyan",
    "reply": "bold magenta",
    "nat": "bold black on yellow",
    "translated": "yellow",
    "switch": "bold white on blue",
    "bridge": "blue",
    "nic": "green",
    "guess": "dim",
    "fate": "bold",
    "stopped": "bold white on red",
    "muted": "dim",
    "analysis": "bold red",
    "hint": "bold yellow",
}
ARROW = {"orig": "→", "reply": "←"}


def print_timeline(console: Console, journeys: Sequence[Journey]) -> None:
    """Print each journey: its connection header, then its packets and their hops.

    Example:
        >>> print_timeline(Console(width=120, no_color=True), [journey])
    """
    for number, journey in enumerate(journeys):
        if number:
            console.print()
        console.print(timeline(journey, console.width))


def timeline(journey: Journey, width: int) -> Group:
    """One journey as a rich renderable (the header line, then one block per packet), laid out
    for a console ``width`` columns wide."""
    parts: list[Text | Table | Group] = [flow_header(journey.flow)]
    many_hosts = len({hop.host for packet in journey.packets for hop in packet.hops}) > 1
    for packet in journey.packets:
        parts.append(packet_header(packet))
        parts.append(hop_table(packet, width, many_hosts))
    parts.extend(analysis_lines(analyse(journey)))
    return Group(*parts)


def analysis_lines(analysis: Analysis) -> list[Text]:
    """What went wrong, after the packets: ``analysis: ...`` and a ``hint (chain): ...`` per
    well-known chain; nothing when all went well."""
    if not analysis.findings:
        return []
    lines = [Text("\n").append("analysis: ", STYLE["analysis"]).append(visible(analysis.text))]
    for hint in analysis.hints:
        where = visible(f"{hint.table or '?'} {hint.chain}")
        lines.append(Text("hint ", STYLE["hint"]).append(f"({where}): ").append(hint.text))
    return lines


def flow_header(flow: Flow) -> Text:
    """One line: id, protocol, orig and reply tuples, NAT, state."""
    header = Text()
    header.append(f"flow {flow.id} ", STYLE["flow"])
    header.append(visible(f"{flow.proto}  "))
    header.append("orig ", STYLE["orig"])
    header.append(f"{_tuple(flow.orig)}  ")
    header.append("reply ", STYLE["reply"])
    header.append(f"{_tuple(flow.reply)}  ")
    for translation in flow.nat:
        mark = f"{translation.type.upper()} {translation.from_addr}→{translation.to_addr}"
        header.append(visible(mark), STYLE["nat"])
        header.append(visible(f" @{translation.hook}  "))
    header.append(f"state {flow.state}", STYLE["fate"])
    if not flow.answered:
        header.append(" (unanswered)", STYLE["stopped"])
    if flow.stopped:
        header.append(f"  {flow.stopped} packet(s) stopped", STYLE["translated"])
    return header


def _tuple(side: ConnTuple) -> str:
    return visible(
        f"{format_endpoint(side.src, side.sport)}→{format_endpoint(side.dst, side.dport)}"
    )


def stopped_note(packet: Packet) -> str:
    """What the next packet tells of one whose logs end early ("" when it tells nothing)."""
    if packet.sent_again_as is not None:
        return f"sent again as #{packet.sent_again_as}: this one was dropped or lost here"
    if packet.answered_by is not None:
        return f"answered by #{packet.answered_by}: it went on, its later hooks not logged"
    return ""


# Fates drawn as a packet's journey ending in trouble.
TROUBLE = frozenset({"stopped", "dropped", "rejected", "lost"})


def fate_text(packet: Packet) -> str:
    """A packet's fate as the timeline and the diagram write it, with its evidence:
    ``dropped by filter FORWARD #4: -o docker0 -j DROP (ruleset)``, ``stopped after PREROUTING
    (sent again as #2: ...)``, ``unknown: logs end after PREROUTING (answered by #2: ...)``."""
    verdict = packet.verdict
    if packet.fate == "stopped":
        text = f"stopped after {packet.stopped_at}"
    elif packet.fate == "unknown" and packet.stopped_at and verdict is None:
        text = f"unknown: logs end after {packet.stopped_at}"
    else:
        text = packet.fate
    if verdict is not None:
        name = rule_name(verdict, with_hook=False)
        evidence = verdict.get("evidence")
        if packet.fate in ("dropped", "rejected"):
            text += f" by {name}: {verdict.get('text')} ({evidence})"
        elif packet.fate in ("lost", "unknown"):
            text += f": {verdict.get('reason')} ({evidence})"
        elif packet.fate == "unlogged":
            text += f": accepted by {name}, no LOG rule on its way ({evidence})"
        # an ended journey the rules confirm reads as it did without them
        return text
    note = stopped_note(packet) if packet.stopped_at else ""
    return f"{text} ({note})" if note else text


def packet_header(packet: Packet) -> Text:
    """``#2 ← reply SYN-ACK len 60 → forwarded``: number, direction, TCP summary, fate (and
    for a stopped packet, what the next packet tells of it)."""
    first = packet.hops[0].fields if packet.hops else {}
    text = Text("\n")
    text.append(f"#{packet.n} {ARROW.get(packet.direction, '?')} {packet.direction} ", "bold")
    text.append(visible(packet.summary), STYLE.get(packet.direction, ""))
    details = [f"{key} {first[key]}" for key in ("len", "id", "seq") if first.get(key) is not None]
    if details:
        text.append("  " + " ".join(details), STYLE["muted"])
    text.append("  ⇒ ")
    if packet.answered_by is not None and packet.verdict is None:
        style = STYLE["translated"]
    elif packet.fate in TROUBLE:
        style = STYLE["stopped"]
    else:
        style = STYLE["fate"]
    text.append(visible(fate_text(packet)), style)
    return text


# Below this width a hop takes two lines: place, addresses, TTL; then interfaces and marks.
WIDE = 110


def hop_table(packet: Packet, width: int, with_host: bool = False) -> Table | Group:
    """One row per hop (two on a narrow console): hook, table/chain, interfaces, addresses,
    TTL, role, NAT marks."""
    rows: list[list[Text]] = []
    for hop in packet.hops:
        host = [Text(visible(hop.host or "-"))] if with_host else []
        if width >= WIDE:
            cells = [hop_place(hop, chain=True), hop_interfaces(hop), hop_addresses(hop)]
            rows.append([*host, *cells, _ttl(hop), hop_marks(hop)])
        else:
            rows.append([*host, hop_place(hop, chain=False), hop_addresses(hop), _ttl(hop)])
            below = hop_interfaces(hop).append("  ").append_text(hop_marks(hop))
            chain = Text(visible(f"    {hop.chain}") if _own_chain(hop) else "", STYLE["muted"])
            rows.append([*([Text("")] if with_host else []), chain, below])
    if not rows:
        return Group()
    ttl_column = len(rows[0]) - (2 if width >= WIDE else 1)
    widths = [max(row[i].cell_len for row in rows if i < len(row)) for i in range(len(rows[0]))]
    if sum(w + 1 for w in widths) <= width:
        # the columns fit: line them up directly (a rich Table measured every cell again and
        # again: 13 ms a connection, most of the time of a 1,000-connection report)
        return Group(*(_line_up(row, widths, ttl_column) for row in rows))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 0))
    if with_host:
        table.add_column("host", no_wrap=True)
    table.add_column("where", no_wrap=True)
    if width >= WIDE:
        table.add_column("interfaces", no_wrap=True)
    table.add_column("addresses", no_wrap=True)
    table.add_column("ttl", no_wrap=True, justify="right")
    if width >= WIDE:
        table.add_column("marks", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _line_up(cells: list[Text], widths: list[int], right: int) -> Text:
    """One row of cells padded to their columns' widths (and one space), as rich's Table with
    ``padding=(0, 1, 0, 0)`` lays them out when they fit; column ``right`` aligns right."""
    line = Text()
    for i, cell in enumerate(cells):
        gap = Text(" " * (widths[i] - cell.cell_len), cell.style)  # the cell's own style
        if i == right:
            line.append_text(gap).append_text(cell).append(" ")
        else:
            line.append_text(cell).append_text(gap).append(" ")
    return line


def hop_place(hop: JourneyHop, chain: bool) -> Text:
    """``raw PREROUTING`` (+ the user chain when it is not the hook's own, ``?`` for a guess)."""
    text = Text(visible(f"  {hop.table or '?'} {hop.hook or '?'}"))
    if chain and _own_chain(hop):
        text.append(visible(f" ({hop.chain})"), STYLE["muted"])
    if hop.evidence == "guess":
        text.append(" (guess)", STYLE["guess"])
    return text


def _own_chain(hop: JourneyHop) -> bool:
    """True when the LOG rule sits in a chain not named after its hook (a user chain)."""
    return bool(hop.chain) and hop.chain != hop.hook


def hop_interfaces(hop: JourneyHop) -> Text:
    """``docker0[vethd9f6465] → eth0``: IN and OUT, each with its bridge port in brackets."""
    entered = (hop.in_iface or "") + (f"[{hop.physin}]" if hop.physin else "")
    left = (hop.out_iface or "") + (f"[{hop.physout}]" if hop.physout else "")
    return Text(visible(f"{entered or '·'} → {left or '·'}"))


def hop_addresses(hop: JourneyHop) -> Text:
    """``src:sport → dst:dport`` as this hop shows them (highlighted when translated)."""
    text = f"{_endpoint(hop.src, hop.sport)} → {_endpoint(hop.dst, hop.dport)}"
    return Text(visible(text), STYLE["translated"] if hop.translated else "")


def _endpoint(addr: str | None, port: int | None) -> str:
    return format_endpoint(addr or "?", port)


def _ttl(hop: JourneyHop) -> Text:
    return Text(f"TTL {hop.ttl}" if hop.ttl is not None else "")


def hop_marks(hop: JourneyHop) -> Text:
    """The bridge role (``⇄ nic`` where it switches), NAT marks, ``translated``; for a TRACE
    line, the rule it names (``rule 2: -p tcp -j fmtchain``, with the ruleset)."""
    text = Text()
    if hop.role_switch and hop.role:
        text.append(f"⇄ {hop.role}", STYLE["switch"])
    elif hop.role:
        text.append(hop.role, STYLE.get(hop.role, ""))
    for mark in hop.nat:
        text.append(" " if text else "")
        text.append(mark.upper(), STYLE["nat"])
    if hop.translated:
        text.append(" translated" if text else "translated", STYLE["translated"])
    trace = hop.fields.get("trace")
    if trace:
        text.append(" " if text else "")
        text.append(visible(_traced(trace, hop.rule)), STYLE["muted"])
    return text


def _traced(trace: dict[str, Any], rule: str | None) -> str:
    """What a trace line says of its chain: a legacy TRACE line, the rule it names
    (``rule 2: -p tcp -j fmtchain``, the text with the ruleset); a visit of nft monitor trace
    or xtables-monitor, its verdict and the rule that gave it (``drop by handle 13: tcp dport
    9052 drop``, ``policy accept``)."""
    if trace.get("verdict") is None:
        named = f"{trace.get('type')} {trace.get('rulenum')}"
        return f"{named}: {rule}" if rule else named
    if trace.get("type") == "policy":
        return f"policy {trace['verdict']}"
    by = f" by handle {trace['handle']}" if trace.get("handle") is not None else ""
    return f"{trace['verdict']}{by}: {trace['rule']}" if trace.get("rule") else trace["verdict"]


def _demo(argv: list[str]) -> int:
    """``python -m logpath.render.timeline STORE FLOW_ID``: print one journey's timeline."""
    from logpath.query import load_journey
    from logpath.store import Store

    if len(argv) != 2:
        print("usage: python -m logpath.render.timeline STORE FLOW_ID", file=sys.stderr)
        return 2
    print_timeline(Console(), [load_journey(Store(Path(argv[0])), argv[1])])
    return 0


if __name__ == "__main__":
    raise SystemExit(_demo(sys.argv[1:]))
