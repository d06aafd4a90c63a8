"""HTML report: one self-contained page, with the connections' diagrams as PNGs beside it.

The page holds the filter used, a summary table of the connections, per connection its
timeline (rich's own HTML export of the terminal timeline), its diagram and its log lines, a NAT
table, hop counts per hook and per interface, and what ingest skipped or rejected. Every piece
of text goes through ``html_text`` (control characters made visible, then HTML-escaped) a line
at a time; the timelines are made visible as they are built, and rich escapes what it exports.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from rich.console import Console

from logpath.flows import Flow
from logpath.journeys import FlowQuery, Journey, build_journeys, select_flows
from logpath.render import DIAGRAM_LIMIT
from logpath.render.diagram import save_diagram
from logpath.render.output import html_text, visible
from logpath.render.timeline import print_timeline
from logpath.store import Store

# Rejected lines shown in full (all are counted).
REJECTED_SHOWN = 20
TIMELINE_WIDTH = 140
PAGE = "index.html"
CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; }
pre { font-size: 0.8em; background: #fafafa; border: 1px solid #ddd; padding: 0.5em;
      overflow-x: auto; }
section.flow { border-top: 2px solid #888; margin-top: 2em; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; font-style: italic; }
"""


@dataclass(frozen=True)
class ReportResult:
    """What ``write_report`` wrote."""

    page: Path
    """The HTML page."""
    flows: int
    """Connections in the report."""
    diagrams: int
    """Diagrams drawn (the first ``diagram_limit`` connections)."""


def write_report(
    store: Store,
    query: FlowQuery,
    out_dir: Path,
    generated: datetime,
    diagram_limit: int = DIAGRAM_LIMIT,
) -> ReportResult:
    """Write ``out_dir/index.html`` and one PNG per connection (up to ``diagram_limit``).

    Args:
        store: the hop store.
        query: the flows filter (as ``logpath flows`` takes it).
        out_dir: the directory to write (created when missing).
        generated: when the report is made (written on the page).
        diagram_limit: connections beyond this many get no diagram (the page says so).

    Example:
        >>> write_report(Store(path), FlowQuery(port=12580), Path("reports/x"), now)
    """
    traced, flows = select_flows(store, query)
    journeys = build_journeys(traced, flows)
    raw = raw_lines(store, traced)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    for journey in journeys[:diagram_limit]:
        name = image_name(journey.flow)
        save_diagram(journey, out_dir / name)
        images[journey.flow.id] = name
    sections = [
        f"<h1>logpath report</h1>\n<p>Generated {_e(generated.isoformat(timespec='seconds'))} "
        f"from the store {_e(str(store.path))}.</p>",
        filter_section(query, len(flows)),
        summary_section(flows),
        nat_section(flows),
        hop_count_section(traced),
        ingest_section(store),
        connections_section(journeys, images, diagram_limit, raw),
    ]
    page = out_dir / PAGE
    page.write_text(_page("logpath report", sections), encoding="utf-8")
    return ReportResult(page=page, flows=len(flows), diagrams=len(images))


def raw_lines(store: Store, traced: pd.DataFrame) -> dict[tuple[str, int], str]:
    """The log line of every selected hop, keyed by (source, lineno): the flows selection
    leaves the raw text out, so it is read here for those lines only."""
    if traced.empty:
        return {}
    numbers = pa.array(sorted({int(n) for n in traced["lineno"]}), pa.int64())
    wanted = set(zip(traced["source"], traced["lineno"].astype(int), strict=True))
    table = store.read_table(ds.field("lineno").isin(numbers), ["source", "lineno", "raw"])
    found = zip(*(table.column(c).to_pylist() for c in ("source", "lineno", "raw")), strict=True)
    return {(src, n): text for src, n, text in found if (src, n) in wanted}


def image_name(flow: Flow) -> str:
    """A file name for the flow's diagram (its id, kept to safe characters)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", flow.id) + ".png"


def _e(text: object) -> str:
    return html_text(text)


def _pre(lines: Iterable[str]) -> str:
    """Lines in a ``<pre>``, each escaped on its own (a newline inside one is shown as
    ``\\n``, not kept)."""
    return "<pre>" + "\n".join(_e(line) for line in lines) + "</pre>"


def _page(title: str, sections: Iterable[str]) -> str:
    body = "\n".join(sections)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], numeric: int = 0) -> str:
    """An HTML table; the last ``numeric`` columns are right-aligned. Every cell is escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for row in rows:
        cells = [
            f'<td class="n">{_e(v)}</td>' if i >= len(row) - numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(lines) + "\n</table>"


def filter_section(query: FlowQuery, count: int) -> str:
    """The filter used (``logpath flows`` options) and how many connections it selected."""
    used = [
        f"--{name} {value}"
        for name, value in vars(query).items()
        if value is not None and name not in ("everything", "ident")
    ]
    if query.everything:
        used.append("--all")
    words = " ".join(used) or "(none: every connection)"
    return f"<h2>Filter</h2>\n<p><code>{_e(words)}</code>: {count:,} connection(s).</p>"


def summary_section(flows: Sequence[Flow]) -> str:
    """One row per connection, linking to its section."""
    if not flows:
        return "<h2>Connections</h2>\n<p>No connection matches the filter.</p>"
    header = ["id", "proto", "orig", "reply", "nat", "first seen", "state", "packets", "hops"]
    rows = [
        [
            flow.id,
            flow.proto,
            str(flow.orig),
            str(flow.reply),
            ", ".join(t.type for t in flow.nat),
            flow.first_seen.isoformat(sep=" ", timespec="seconds")[:19] if flow.first_seen else "",
            flow.state + ("" if flow.answered else " (no answer)"),
            flow.packets,
            flow.hops,
        ]
        for flow in flows
    ]
    table = _table(header, rows, numeric=2)
    # link each id to its section (ids are escaped; the anchor is built from the escaped id)
    for flow in flows:
        cell = f"<td>{_e(flow.id)}</td>"
        table = table.replace(cell, f'<td><a href="#flow-{_e(flow.id)}">{_e(flow.id)}</a></td>', 1)
    return "<h2>Connections</h2>\n" + table


def nat_section(flows: Sequence[Flow]) -> str:
    """Every NAT translation of the selected connections."""
    rows = [
        [flow.id, t.type.upper(), t.from_addr, t.to_addr, t.hook, t.host or "", t.evidence]
        for flow in flows
        for t in flow.nat
    ]
    if not rows:
        return "<h2>NAT</h2>\n<p>No translation in the selected connections.</p>"
    header = ["flow", "type", "from", "to", "hook", "host", "evidence"]
    return "<h2>NAT</h2>\n" + _table(header, rows)


def hop_count_section(traced: pd.DataFrame) -> str:
    """Hops of the selected connections per hook (and table) and per interface."""
    if traced.empty:
        return "<h2>Hops</h2>\n<p>No hop.</p>"
    where = traced[["hook", "table"]].astype("object").fillna("?")
    pairs = Counter(zip(where["hook"], where["table"], strict=True))
    hook_rows = [[hook, table, count] for (hook, table), count in sorted(pairs.items(), key=_order)]
    columns = {"in_iface": "IN", "out_iface": "OUT", "physin": "PHYSIN", "physout": "PHYSOUT"}
    counts = pd.DataFrame({title: traced[c].value_counts() for c, title in columns.items()})
    counts = counts.fillna(0).astype(int).sort_index()
    iface_rows = [[name, *row] for name, row in zip(counts.index, counts.to_numpy(), strict=True)]
    return (
        f"<h2>Hops</h2>\n<p>{len(traced):,} hop(s) in the selected connections.</p>\n"
        "<h3>Per hook</h3>\n" + _table(["hook", "table", "hops"], hook_rows, numeric=1) + "\n"
        "<h3>Per interface</h3>\n" + _table(["interface", *columns.values()], iface_rows, numeric=4)
    )


HOOK_ORDER = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")


def _order(item: tuple[tuple[str, str], int]) -> tuple[int, int, str]:
    """Hooks in the kernel's order, tables in priority order within a hook."""
    (hook, table), _ = item
    rank = HOOK_ORDER.index(hook) if hook in HOOK_ORDER else len(HOOK_ORDER)
    within = TABLE_ORDER.index(table) if table in TABLE_ORDER else len(TABLE_ORDER)
    return rank, within, f"{hook} {table}"


def ingest_section(store: Store) -> str:
    """What ingest skipped (counts by reason) and rejected (by what was expected, with lines).

    These are for the whole store, not only the selected connections.
    """
    skipped = store.require().skipped
    rejected = store.read_rejected()
    parts = ["<h2>Ingest: skipped and rejected lines (whole store)</h2>"]
    if skipped:
        rows = sorted(skipped.items(), key=lambda item: -item[1])
        parts.append(_table(["skipped because", "lines"], rows, numeric=1))
    else:
        parts.append("<p>No line skipped.</p>")
    if rejected.empty:
        parts.append("<p>No line rejected.</p>")
        return "\n".join(parts)
    by_reason = rejected["expected"].value_counts()
    parts.append(_table(["rejected: expected", "lines"], by_reason.items(), numeric=1))
    shown = rejected.head(REJECTED_SHOWN)
    lines = [
        line
        for row in shown.itertuples(index=False)
        for line in (
            f"{row.source}:{row.lineno}:{row.column}: expected {row.expected}, "
            f"found '{visible(str(row.found))}'",
            f"  {row.text}",
        )
    ]
    more = len(rejected) - len(shown)
    parts.append(_pre(lines))
    if more:
        parts.append(f'<p class="note">… and {more:,} more (`logpath rejected` lists them).</p>')
    return "\n".join(parts)


def connections_section(
    journeys: Sequence[Journey],
    images: dict[str, str],
    diagram_limit: int,
    raw: dict[tuple[str, int], str],
) -> str:
    """Per connection: its timeline, its diagram (for the first ``diagram_limit``), its lines."""
    if not journeys:
        return ""
    parts = ["<h2>Journeys</h2>"]
    if len(journeys) > diagram_limit:
        parts.append(
            f'<p class="note">Diagrams are drawn for the first {diagram_limit:,} of '
            f"{len(journeys):,} connections (to keep the report quick to make); "
            "`logpath render FLOW_ID -o FILE.png` draws any other.</p>"
        )
    parts += [connection_section(j, images.get(j.flow.id), raw) for j in journeys]
    return "\n".join(parts)


def connection_section(journey: Journey, image: str | None, raw: dict[tuple[str, int], str]) -> str:
    """One connection: heading, timeline, diagram, the log lines of its hops."""
    flow_id = _e(journey.flow.id)
    picture = (
        f'<p><img src="{_e(image)}" alt="sequence diagram of flow {flow_id}"></p>'
        if image
        else '<p class="note">(no diagram: beyond the diagram limit)</p>'
    )
    places = [(str(h.fields.get("source")), int(h.fields.get("lineno") or 0))
              for packet in journey.packets for h in packet.hops]  # fmt: skip
    lines = [f"{source}:{lineno}: {raw.get((source, lineno), '?')}" for source, lineno in places]
    return (
        f'<section class="flow" id="flow-{flow_id}">\n<h3>flow {flow_id}</h3>\n'
        f"{timeline_html(journey)}\n{picture}\n"
        f"<details><summary>log lines ({len(lines)})</summary>\n{_pre(lines)}\n</details>\n"
        "</section>"
    )


def timeline_html(journey: Journey, width: int = TIMELINE_WIDTH) -> str:
    """The terminal timeline as coloured, escaped HTML (rich's export with inline styles)."""
    console = Console(
        record=True, file=io.StringIO(), width=width, force_terminal=True, color_system="truecolor"
    )
    print_timeline(console, [journey])
    return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
