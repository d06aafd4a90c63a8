"""HTML report: a small index page, one page per connection, diagrams for those that matter.

``index.html`` holds the filter used, a summary with the problems first (connections nothing
answered, connections with packets stopped where a later hook was expected, reset ones, NAT'd
ones), a table of the connections, sortable and filterable by a small inline script (no file
beside it, no network: it works offline and from ``file://``), a NAT table, hop counts per hook
and per interface, and what ingest skipped or rejected. Each connection has its own page,
``flows/<flow id>.html``: its facts, its timeline (rich's HTML export of the terminal timeline),
its log lines and its sequence diagram, drawn for the first ``diagram_limit`` connections in
the table's order (problems first), or the ``logpath render`` command that draws it.

Every piece of text goes through ``html_text`` (control characters made visible, then
HTML-escaped) a line at a time; the timelines are made visible as they are built, and rich
escapes what it exports. A page's file name is built from the flow id only when the id has the
shape logpath gives it (hex hash, dash, digits), else from a hash of it.

On the replayed Docker host's store a page takes ~6 ms (its timeline, mostly) and a diagram
~0.1-0.25 s: 1,060 connections with 50 diagrams are ~10 s of writing, in this one process (a
pool of two workers measured no faster on the shared 2-CPU machine, and needs its own cleanup
on a signal).
"""

from __future__ import annotations

import hashlib
import io
import re
import shlex
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from rich.console import Console

from logpath.analysis import Hint, analyse, rule_name
from logpath.flows import Flow
from logpath.journeys import Journey, build_journeys
from logpath.netfilter import NAT_PRIORITY, TABLE_PRIORITY, traversal_rank
from logpath.query import FlowQuery, select_flows
from logpath.render import DIAGRAM_LIMIT
from logpath.render.output import html_text, visible
from logpath.render.timeline import print_timeline
from logpath.store import Store, default_store

# Rejected lines shown in full (all are counted).
REJECTED_SHOWN = 20
TIMELINE_WIDTH = 140
PAGE = "index.html"
FLOWS_DIR = "flows"
# Beyond this many connections only the first PAGE_LIMIT (problems first) get a page of their
# own; the table lists the others with the `logpath journey` command that shows them (20,000
# pages take ~100 CPU-s and ~1 GB of disk).
PAGE_LIMIT = 20_000
# Diagrams are SVG with their text kept as text: 0.16 s to write one, where a PNG took 0.8-1.0 s
# (glyph rasterising) and 50 of them alone missed issue 10's 20 s for a report.
DIAGRAM_SUFFIX = ".svg"
# A flow id as logpath makes it: a short hex hash, a dash, a port or ICMP id.
SAFE_ID = re.compile(r"[0-9a-f]{1,40}(?:-[0-9]{1,10})?")
CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.n { text-align: right; }
pre { font-size: 0.8em; background: #fafafa; border: 1px solid #ddd; padding: 0.5em;
      overflow-x: auto; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #555; font-style: italic; }
.problem { color: #a00; }
#flows th { cursor: pointer; user-select: none; }
#flows th[aria-sort=ascending]::after { content: " \\25B2"; }
#flows th[aria-sort=descending]::after { content: " \\25BC"; }
#filter { width: 30em; }
#flows td:first-child, #flows td:nth-child(11) { white-space: nowrap; }
"""
# Sorts and filters the connection table. State in the URL fragment, read at load and on every
# change of it: #filter=TEXT&sort=COLUMN&desc=1 (summary links use it; so do the browser tests).
# Rows are shown or hidden, never rebuilt from text: nothing from a log reaches innerHTML.
SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("flows");
  if (!table) { return; }
  var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
  var rows = Array.prototype.slice.call(body.rows);
  var text = rows.map(function (r) { return r.textContent.toLowerCase(); });
  rows.forEach(function (r, i) { r.setAttribute("data-i", i); });
  var input = document.getElementById("filter"), shown = document.getElementById("shown");
  var state = { filter: "", sort: -1, desc: false };
  function column(name) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === name) { return i; }
    }
    return -1;
  }
  function read() {
    var p = new URLSearchParams(location.hash.slice(1));
    state.filter = p.get("filter") || "";
    state.sort = column(p.get("sort") || "");
    state.desc = p.get("desc") === "1";
    input.value = state.filter;
  }
  function write() {
    var p = new URLSearchParams();
    if (state.filter) { p.set("filter", state.filter); }
    if (state.sort >= 0) { p.set("sort", heads[state.sort].getAttribute("data-key")); }
    if (state.desc) { p.set("desc", "1"); }
    try { history.replaceState(null, "", "#" + p.toString()); } catch (e) { /* file:// */ }
  }
  function value(row, c, numeric) {
    var t = row.cells[c].textContent;
    return numeric ? (parseFloat(t) || 0) : t;
  }
  function apply() {
    var order = rows.slice(), f = state.filter.toLowerCase(), n = 0, c = state.sort;
    if (c >= 0) {
      var numeric = heads[c].getAttribute("data-type") === "num", d = state.desc ? -1 : 1;
      var keys = rows.map(function (r) { return value(r, c, numeric); });
      order.sort(function (a, b) {
        var i = +a.getAttribute("data-i"), j = +b.getAttribute("data-i");
        if (keys[i] === keys[j]) { return i - j; }
        return (keys[i] < keys[j] ? -1 : 1) * d;
      });
    }
    var fragment = document.createDocumentFragment();
    order.forEach(function (r) {
      var visible = !f || text[+r.getAttribute("data-i")].indexOf(f) >= 0;
      r.hidden = !visible;
      if (visible) { n++; }
      fragment.appendChild(r);
    });
    body.appendChild(fragment);
    for (var i = 0; i < heads.length; i++) {
      var sort = i !== c ? "none" : state.desc ? "descending" : "ascending";
      heads[i].setAttribute("aria-sort", sort);
    }
    shown.textContent = n + " of " + rows.length + " connection(s) shown";
    table.setAttribute("data-shown", n);
  }
  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener("click", (function (c) {
      return function () {
        state.desc = state.sort === c ? !state.desc : false;
        state.sort = c;
        write(); apply();
      };
    })(i));
  }
  input.addEventListener("input", function () { state.filter = input.value; write(); apply(); });
  window.addEventListener("hashchange", function () { read(); apply(); });
  read(); apply();
})();
"""


@dataclass(frozen=True)
class ReportResult:
    """What ``write_report`` wrote."""

    page: Path
    """The index page."""
    flows: int
    """Connections in the report."""
    diagrams: int
    """Diagrams drawn (for the first ``diagram_limit`` connections, problems first)."""
    pages: int = 0
    """Connection pages written (all of them, or the first ``page_limit``)."""


@dataclass(frozen=True)
class FlowPage:
    """What one connection's page shows."""

    journey: Journey
    """The connection and its packets."""
    name: str
    """The file name without suffix (``page_name``): the page and its diagram."""
    lines: tuple[str, ...]
    """Its log lines, ``source:lineno: text``."""
    diagram: bool
    """True when its diagram is drawn beside it."""
    render: str
    """The command that draws its diagram (shown when it is not drawn)."""


def write_report(
    store: Store,
    query: FlowQuery,
    out_dir: Path,
    generated: datetime,
    diagram_limit: int = DIAGRAM_LIMIT,
    *,
    page_limit: int = PAGE_LIMIT,
) -> ReportResult:
    """Write ``out_dir/index.html``, ``out_dir/flows/<id>.html`` per connection (up to
    ``page_limit``) and a diagram beside the first ``diagram_limit`` of them.

    Args:
        store: the hop store.
        query: the flows filter (as ``logpath flows`` takes it).
        out_dir: the directory to write (created when missing).
        generated: when the report is made (written on the page).
        diagram_limit: connections beyond this many (problems first) get no diagram, only the
            command that draws one.
        page_limit: connections beyond this many get no page, only the command that shows them.

    Example:
        >>> write_report(Store(path), FlowQuery(port=12580), Path("reports/x"), now)
    """
    traced, flows = select_flows(store, query)
    ordered = problems_first(flows)
    paged = ordered[:page_limit]
    paged_hops = traced if len(paged) == len(flows) else traced[_of(traced, paged)]
    journeys = build_journeys(paged_hops, paged)
    raw = raw_lines(store, paged_hops)
    pages = [
        flow_page(journey, raw, n < diagram_limit, store) for n, journey in enumerate(journeys)
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_flow_pages(pages, out_dir / FLOWS_DIR)
    names = {page.journey.flow.id: page.name for page in pages}
    sections = [
        f"<h1>logpath report</h1>\n<p>Generated {_e(generated.isoformat(timespec='seconds'))} "
        f"from the store {_e(str(store.path))}.</p>",
        filter_section(query, len(flows)),
        summary_section(ordered),
        connections_section(ordered, names, sum(p.diagram for p in pages), store),
        nat_section(flows),
        hop_count_section(traced),
        ingest_section(store),
    ]
    page = out_dir / PAGE
    page.write_text(_page("logpath report", sections, SCRIPT), encoding="utf-8")
    drawn = sum(p.diagram for p in pages)
    return ReportResult(page=page, flows=len(flows), diagrams=drawn, pages=len(pages))


def _of(traced: pd.DataFrame, flows: Sequence[Flow]) -> pd.Series:
    """Which traced hops belong to these flows."""
    return traced["flow"].isin({flow.id for flow in flows})


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


# Problems in the order the report shows them; a connection is ranked by its first.
PROBLEMS = ("no answer", "dropped", "lost", "stopped", "reset", "nat")


def problems(flow: Flow) -> list[str]:
    """What is wrong with a connection, as the table's "problem" column says it: nothing
    answered, packets stopped where a later hook was expected (dropped, or lost to the logs),
    reset."""
    found = []
    if not flow.answered:
        found.append("no answer")
    if flow.dropped:
        found.append(f"{flow.dropped} dropped")
    if flow.lost:
        found.append(f"{flow.lost} lost")
    if flow.stopped:
        found.append(f"{flow.stopped} stopped")
    if flow.state == "reset":
        found.append("reset")
    return found


def rank(flow: Flow) -> int:
    """0 nothing answered, 1 packets dropped, lost or stopped, 2 reset, 3 NAT'd, 4 nothing to
    remark."""
    if not flow.answered:
        return 0
    if flow.dropped or flow.lost or flow.stopped:
        return 1
    if flow.state == "reset":
        return 2
    return 3 if flow.nat else 4


def problems_first(flows: Sequence[Flow]) -> list[Flow]:
    """The connections by ``rank``, each rank in the selection's order (time)."""
    return sorted(flows, key=rank)  # sorted is stable


def page_name(flow_id: str) -> str:
    """The file name (without suffix) of a connection's page and diagram: the id when it has
    logpath's shape, else ``flow-`` and a hash of it (an id read from a store is not trusted)."""
    if SAFE_ID.fullmatch(flow_id):
        return flow_id
    return "flow-" + hashlib.sha256(flow_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def command(words: Sequence[str], store: Store) -> str:
    """A logpath command line, quoted for a shell, with ``--store`` when not the default."""
    if store.path != default_store():
        words = [*words, "--store", str(store.path)]
    return shlex.join(["logpath", *words])


def flow_page(
    journey: Journey, raw: dict[tuple[str, int], str], diagram: bool, store: Store
) -> FlowPage:
    """What a connection's page shows, with its log lines looked up."""
    flow_id = journey.flow.id
    places = [(str(h.fields.get("source")), int(h.fields.get("lineno") or 0))
              for packet in journey.packets for h in packet.hops]  # fmt: skip
    lines = tuple(f"{source}:{n}: {raw.get((source, n), '?')}" for source, n in places)
    name = page_name(flow_id)
    render = command(["render", flow_id, "-o", f"{name}.png"], store)
    return FlowPage(journey=journey, name=name, lines=lines, diagram=diagram, render=render)


def write_flow_pages(pages: Sequence[FlowPage], folder: Path) -> None:
    """Write each page (and its diagram, when drawn) into ``folder``."""
    if not pages:
        return
    from logpath.render.diagram import bridges_shown

    folder.mkdir(parents=True, exist_ok=True)
    # a device one connection shows to be a bridge is drawn as one in every diagram
    bridges = bridges_shown(page.journey for page in pages if page.diagram)
    for page in pages:
        if page.diagram:
            draw_diagram(page.journey, folder / (page.name + DIAGRAM_SUFFIX), bridges)
        text = _page(f"flow {page.journey.flow.id}", flow_sections(page))
        (folder / f"{page.name}.html").write_text(text, encoding="utf-8")


def draw_diagram(
    journey: Journey, path: Path, bridges: Collection[tuple[str | None, str]] = ()
) -> None:
    """A connection's sequence diagram as SVG, its text kept as text (DIAGRAM_SUFFIX), with
    the ``bridges`` other connections show."""
    import matplotlib

    from logpath.render.diagram import save_diagram

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "logpath"}):
        save_diagram(journey, path, bridges=bridges)


def flow_sections(page: FlowPage) -> list[str]:
    """One connection's page: its facts, diagram, timeline and log lines."""
    flow = page.journey.flow
    if page.diagram:
        picture = (
            f'<p><img src="{_href(page.name + DIAGRAM_SUFFIX)}" '
            f'alt="sequence diagram of flow {_e(flow.id)}"></p>'
        )
    else:
        picture = (
            '<p class="note">Not drawn (the report draws the first connections only, problems '
            f"first). To draw it:</p>\n<pre>{_e(page.render)}</pre>"
        )
    return [
        '<p><a href="../index.html">← the report</a></p>',
        f"<h1>flow {_e(flow.id)}</h1>",
        facts_table(flow),
        analysis_section(page.journey),
        verdicts_section(page.journey),
        "<h2>Diagram</h2>\n" + picture,
        "<h2>Timeline</h2>\n" + timeline_html(page.journey),
        f"<h2>Log lines ({len(page.lines)})</h2>\n" + _pre(page.lines),
    ]


def facts_table(flow: Flow) -> str:
    """A connection's summary: one row a fact, its name first."""
    rows = [
        ("problem", ", ".join(problems(flow)) or "none"),
        ("proto", flow.proto),
        ("orig", str(flow.orig)),
        ("reply", str(flow.reply)),
        ("nat", _nat(flow) or "none"),
        ("state", flow.state),
        ("progression", " ".join(flow.progression)),
        ("packets", flow.packets),
        ("dropped", f"{flow.dropped} (dropped or rejected by a rule)"),
        ("lost", f"{flow.lost} (a later LOG rule matches, no line shows them)"),
        ("hops", flow.hops),
        ("first seen", _when(flow.first_seen)),
        ("last seen", _when(flow.last_seen)),
        ("hosts", ", ".join(flow.hosts)),
    ]
    lines = [f"<tr><th>{_e(name)}</th><td>{_e(value)}</td></tr>" for name, value in rows]
    return "<table>\n" + "\n".join(lines) + "\n</table>"


def analysis_section(journey: Journey) -> str:
    """What went wrong (``logpath.analysis``), with the hints for well-known chains."""
    analysis = analyse(journey)
    if not analysis.findings:
        return (
            "<h2>What went wrong</h2>\n<p>Nothing: no packet was dropped, lost or stopped, "
            "and an answer came back.</p>"
        )
    found = "".join(f"<li>{_e(finding)}</li>" for finding in analysis.findings)
    hints = "".join(_hint_item(hint) for hint in analysis.hints)
    hinted = f"\n<h3>Hints</h3>\n<ul>{hints}</ul>" if hints else ""
    return f'<h2>What went wrong</h2>\n<ul class="problem">{found}</ul>{hinted}'


def _hint_item(hint: Hint) -> str:
    """``<li><b>filter DOCKER-USER</b> (packets #1): ...</li>``, every piece escaped."""
    chain = f"{hint.table or '?'} {hint.chain}"
    packets = ", ".join(f"#{n}" for n in hint.packets)
    return f"<li><b>{_e(chain)}</b> (packets {_e(packets)}): {_e(hint.text)}</li>"


# The verdicts table's columns.
VERDICT_COLUMNS = ("packet", "direction", "summary", "fate", "rule", "rule text", "evidence",
                   "reason")  # fmt: skip


def verdicts_section(journey: Journey) -> str:
    """Each packet's fate and the rule that decided it, as the ruleset writes the rule."""
    packets = journey.packets
    if not any(packet.verdict for packet in packets):
        return (
            "<h2>Verdicts</h2>\n<p>No packet has a verdict: a verdict needs the ruleset the "
            "lines were written under (<code>logpath ingest --rules FILE</code>).</p>"
        )
    rows = [
        [f"#{p.n}", p.direction, p.summary, p.fate, *_verdict_cells(p.verdict)] for p in packets
    ]
    return "<h2>Verdicts</h2>\n" + _table(VERDICT_COLUMNS, rows)


def _verdict_cells(verdict: dict[str, Any] | None) -> list[str]:
    """Rule, its text, evidence, reason; empty cells without a verdict."""
    if verdict is None:
        return ["", "", "", ""]
    fields = ("text", "evidence", "reason")
    return [rule_name(verdict), *(str(verdict.get(k) or "") for k in fields)]


def _nat(flow: Flow) -> str:
    return ", ".join(f"{t.type.upper()} {t.from_addr} → {t.to_addr}" for t in flow.nat)


def _when(when: datetime | None) -> str:
    return when.isoformat(sep=" ", timespec="seconds")[:19] if when else ""


def _e(text: object) -> str:
    return html_text(text)


def _href(name: str) -> str:
    """A relative URL to a file named by ``page_name`` (quoted all the same), for an attribute."""
    return _e(quote(name))


def _pre(lines: Iterable[str]) -> str:
    """Lines in a ``<pre>``, each escaped on its own (a newline inside one is shown as
    ``\\n``, not kept)."""
    return "<pre>" + "\n".join(_e(line) for line in lines) + "</pre>"


def _page(title: str, sections: Iterable[str], script: str = "") -> str:
    body = "\n".join(sections)
    code = f"<script>{script}</script>\n" if script else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"{code}</body>\n</html>\n"
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
    """How many connections have each problem, each a link that filters the table to them."""
    if not flows:
        return "<h2>Summary</h2>\n<p>No connection matches the filter.</p>"
    nat = Counter(t.type for flow in flows for t in {t.type: t for t in flow.nat}.values())
    rows = [
        ("no answer", "nothing came back", sum(not f.answered for f in flows)),
        ("dropped", "packets a rule dropped or rejected (ruleset)",
         sum(bool(f.dropped) for f in flows)),
        ("lost", "packets a later LOG rule matches that no line shows (ruleset)",
         sum(bool(f.lost) for f in flows)),
        ("stopped", "packets stopped where a later hook was expected: dropped, or lost to "
         "the logs", sum(bool(f.stopped) for f in flows)),
        ("reset", "ended by a TCP reset", sum(f.state == "reset" for f in flows)),
        *((kind, f"NAT: {kind.upper()}", count) for kind, count in sorted(nat.items())),
        ("", "all connections", len(flows)),
    ]  # fmt: skip
    lines = [
        f'<tr><td><a href="#{_e(_fragment(word))}">{_e(what)}</a></td>'
        f'<td class="n">{count:,}</td></tr>'
        for word, what, count in rows
    ]
    return (
        "<h2>Summary</h2>\n<table>\n<tr><th>connections</th><th>count</th></tr>\n"
        + "\n".join(lines)
        + "\n</table>"
    )


def _fragment(word: str) -> str:
    """The URL fragment that filters the connection table on ``word``."""
    return "filter=" + quote(word) if word else ""


# The connection table's columns: title, key (in the URL fragment), numeric.
COLUMNS = (("id", "id", False), ("problem", "problem", False), ("proto", "proto", False),
           ("orig", "orig", False), ("reply", "reply", False), ("nat", "nat", False),
           ("packets", "packets", True), ("hops", "hops", True),
           ("dropped", "dropped", True), ("lost", "lost", True),
           ("first seen", "first", False), ("state", "state", False))  # fmt: skip


def connections_section(
    flows: Sequence[Flow], names: dict[str, str], diagrams: int, store: Store
) -> str:
    """The connection table, problems first; each id links to its page (or, beyond the page
    limit, is followed by the command that shows it)."""
    if not flows:
        return ""
    head = "".join(
        f'<th data-key="{key}"{" data-type=num" if numeric else ""}>{_e(title)}</th>'
        for title, key, numeric in COLUMNS
    )
    rows = "\n".join(_row(flow, names.get(flow.id), store) for flow in flows)
    notes = [
        f'<p class="note">Diagrams are drawn for the first {diagrams:,} of {len(flows):,} '
        "connections, problems first (to keep the report quick to make); each other page gives "
        "the command that draws it.</p>"
    ]
    if len(names) < len(flows):
        notes.append(
            f'<p class="note">Pages are written for the first {len(names):,} of '
            f"{len(flows):,} connections, problems first; the others show the "
            "<code>logpath journey</code> command that prints them.</p>"
        )
    return (
        "<h2>Connections</h2>\n" + "\n".join(notes) + "\n"
        '<p><label>Filter: <input id="filter" type="search" '
        'placeholder="any text of a row, e.g. no answer, snat, 12580"></label> '
        '<span id="shown"></span> (click a column title to sort)</p>\n'
        f'<table id="flows">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'
    )


def _row(flow: Flow, name: str | None, store: Store) -> str:
    if name is not None:
        link = f'<a href="{FLOWS_DIR}/{_href(name + ".html")}">{_e(flow.id)}</a>'
    else:
        link = f"{_e(flow.id)} <code>{_e(command(['journey', flow.id], store))}</code>"
    cells = [
        ", ".join(problems(flow)),
        flow.proto,
        str(flow.orig),
        str(flow.reply),
        ", ".join(t.type for t in flow.nat),
    ]
    numbers = "".join(
        f'<td class="n">{n}</td>' for n in (flow.packets, flow.hops, flow.dropped, flow.lost)
    )
    after = [_when(flow.first_seen), flow.state]
    return (
        f'<tr><td>{link}</td><td class="problem">{_e(cells[0])}</td>'
        + "".join(f"<td>{_e(c)}</td>" for c in cells[1:])
        + numbers
        + "".join(f"<td>{_e(c)}</td>" for c in after)
        + "</tr>"
    )


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


def _order(item: tuple[tuple[str, str], int]) -> tuple[int, bool, int, str]:
    """Hooks in the kernel's order, tables in priority order within a hook (the nat table's
    depends on the hook; an unknown table last)."""
    (hook, table), _ = item
    priority = NAT_PRIORITY.get(hook) if table == "nat" else TABLE_PRIORITY.get(table)
    return traversal_rank(hook), priority is None, priority or 0, f"{hook} {table}"


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


def timeline_html(journey: Journey, width: int = TIMELINE_WIDTH) -> str:
    """The terminal timeline as coloured, escaped HTML (rich's export with inline styles).

    Soft wrap: a long line stays one line (the page scrolls it), and rich skips wrapping it,
    which was half the time of a timeline (1.7 s for 300 of them, 0.9 s soft)."""
    console = Console(
        record=True,
        file=io.StringIO(),
        width=width,
        force_terminal=True,
        color_system="truecolor",
        soft_wrap=True,
    )
    print_timeline(console, [journey])
    return console.export_html(inline_styles=True, code_format="<pre>{code}</pre>")
