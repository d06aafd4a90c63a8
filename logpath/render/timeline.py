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
    terms = legend_terms(*journeys)  # once, after them all: the words they used
    if terms:
        console.print(legend_table(terms))


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


# What the words and marks of a timeline, a diagram and a report mean: one place for the three.
LEGEND = {
    "nic": "the bridge acts as the host's network card: the packet goes up to the host's IP "
    "stack (routed, L3)",
    "bridge": "the bridge switches the frame between two of its ports (L2, not routed)",
    "⇄": "the bridge's role changes at this hop (bridge ⇄ nic)",
    "?": "table or hook not known: no LOG prefix, ruleset or TRACE line names it",
    "(guess)": "hook guessed from the interfaces alone",
    "·": "no interface on that side (IN= or OUT= empty)",
    "DNAT": "destination changed here by DNAT",
    "REDIRECT": "destination changed here by REDIRECT (to the host itself)",
    "SNAT": "source changed by SNAT or MASQUERADE",
    "DE-SNAT": "a reply's destination given back its original address (SNAT undone)",
    "DE-DNAT": "a reply's source given back the address the client asked for (DNAT undone)",
    "after": "that NAT acts after this hop: its line still shows the addresses NAT replaces",
    "translated": "the addresses shown are NAT's, not the connection's own for this direction",
    "quotes": "the packet an ICMP error is about, as the error carries it",
    "(ruleset)": "told by the ruleset given to ingest (--rules)",
    "(trace)": "told by a TRACE line of the kernel",
    "rule #N": "TRACE: the rule's number in its chain (iptables -L --line-numbers)",
}


def legend_terms(*journeys: Journey) -> list[str]:
    """The ``LEGEND`` words these journeys' timelines use, in ``LEGEND`` order."""
    used: set[str] = set()
    for packet in (packet for journey in journeys for packet in journey.packets):
        evidence = packet.verdict.get("evidence") if packet.verdict else None
        if f"({evidence})" in LEGEND and f"({evidence})" in fate_text(packet):
            used.add(f"({evidence})")
        for hop in packet.hops:
            used.update(_hop_terms(hop))
    return [term for term in LEGEND if term in used]


def _hop_terms(hop: JourneyHop) -> set[str]:
    """The ``LEGEND`` words one hop's line uses."""
    used = {mark.upper() for mark in hop.nat}
    if hop.role:
        used.add(hop.role)
    flags = {"⇄": hop.role_switch and bool(hop.role), "after": hop.nat_after and bool(hop.nat),
             "translated": hop.translated, "quotes": hop.quote is not None,
             "?": hop.table is None or hop.hook is None, "(guess)": hop.evidence == "guess",
             "·": not (hop.in_iface or hop.physin) or not (hop.out_iface or hop.physout),
             "rule #N": bool(hop.fields.get("trace"))}  # fmt: skip
    return used | {term for term, shown in flags.items() if shown}


def legend_table(terms: Sequence[str]) -> Group:
    """``legend`` then a row per word used: the word, then what it means (wrapped beside it)."""
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column("word", no_wrap=True, style="bold")
    table.add_column("meaning", style=STYLE["muted"])
    for term in terms:
        table.add_row(f"  {term}", LEGEND[term])
    return Group(Text("\nlegend", STYLE["muted"]), table)


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
        header.append(" (no answer)", STYLE["stopped"])  # as `flows` says it
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
            # the rule as written, when a ruleset or the trace has it
            written = f": {verdict['text']}" if verdict.get("text") else ""
            text += f" by {name}{written} ({evidence})"
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
    quoted = None
    for hop in packet.hops:
        host = [Text(visible(hop.host or "-"))] if with_host else []
        marks = hop_marks(hop)
        if (
            hop.quote is not None and hop.quote != quoted
        ):  # the quote where it first shows or changes
            marks.append(" " if marks else "").append_text(quote_text(hop))
        quoted = hop.quote
        if width >= WIDE:
            cells = [hop_place(hop, chain=True), hop_interfaces(hop), hop_addresses(hop)]
            rows.append([*host, *cells, _ttl(hop), marks])
        else:
            rows.append([*host, hop_place(hop, chain=False), hop_addresses(hop), _ttl(hop)])
            below = hop_interfaces(hop).append("  ").append_text(marks)
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
        if hop.nat_after:
            text.append(" after", STYLE["translated"])
    if hop.translated:
        text.append(" translated" if text else "translated", STYLE["translated"])
    trace = hop.fields.get("trace")
    if trace:
        text.append(" " if text else "")
        text.append(visible(_traced(trace, hop.rule)), STYLE["muted"])
    return text


def quote_text(hop: JourneyHop) -> Text:
    """``quotes udp 10.77.0.1:34834 → 10.77.0.2:9009 (SNAT)``: the packet an ICMP error is
    about, as this hop shows it, and the translations it shows done."""
    quote = hop.quote
    if quote is None:
        return Text()
    text = Text("quotes ", STYLE["muted"]).append(visible(str(quote)))
    if quote.nat:
        text.append(" (" + ", ".join(kind.upper() for kind in quote.nat) + ")", STYLE["nat"])
    return text


def _traced(trace: dict[str, Any], rule: str | None) -> str:
    """What a trace line says of its chain: a legacy TRACE line, the rule it names
    (``rule #2: -p tcp -j fmtchain``, the text with the ruleset; a policy as ``policy
    ACCEPT``); a visit of nft monitor trace or xtables-monitor, its verdict and the rule that
    gave it (``drop by handle 13: tcp dport 9052 drop``, ``policy accept``)."""
    if trace.get("verdict") is None:
        if trace.get("type") == "policy":  # its number only counts the rules before it
            return rule or "policy"
        named = f"{trace.get('type')} #{trace.get('rulenum')}"
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
