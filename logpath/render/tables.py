"""Plain tables for the terminal: the ingest summary, hops, rejected lines, any text table.

Every piece of text here may come from a log line or a file name: it is printed with
``console.out`` (no rich markup, no emoji codes) after ``visible`` (no control character).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console

from logpath.render.output import visible, visible_array
from logpath.rowgroups import arrow_array, literal

if TYPE_CHECKING:  # pandas: only the hops table (print_hops) has it, and imports it
    import pandas as pd

    from logpath.ingest import IngestSummary
    from logpath.objectstore import StoreURL

HOP_COLUMNS = [
    ("ts", "time"),
    ("host", "host"),
    ("prefix", "prefix"),
    ("in_iface", "in"),
    ("out_iface", "out"),
    ("physin", "physin"),
    ("physout", "physout"),
    ("src", "src"),
    ("sport", "sport"),
    ("dst", "dst"),
    ("dport", "dport"),
    ("proto", "proto"),
    ("ttl", "ttl"),
    ("id", "id"),
    ("flags", "flags"),
    ("hook", "hook"),  # where assembly placed the hop (logpath.query.HopPlaces)
    ("flow", "flow"),
]


def print_summary(console: Console, summary: IngestSummary, store: Path | StoreURL) -> None:
    """What an ingest run did, with skipped and rejected lines by reason."""
    lines = [
        f"{summary.files} file(s), {summary.lines:,} new line(s): {summary.hops:,} hop(s) stored "
        f"in {visible(str(store))}, {summary.rejected:,} rejected, {summary.skipped:,} skipped"
        + (f", {summary.already_stored:,} already stored" if summary.already_stored else "")
        + (f", {summary.held_back:,} held back" if summary.held_back else "")
    ]
    # a reason may quote what a line held
    for reason, count in summary.skipped_by_reason.most_common():
        lines.append(f"  skipped  {count:>9,}  {visible(reason)}")
    for reason, count in summary.rejected_by_reason.most_common(10):
        lines.append(f"  rejected {count:>9,}  {visible(reason)}")
    if summary.rejected:
        lines.append("  (`logpath rejected` lists the rejected lines)")
    for reason, count in summary.held_back_by_reason.most_common():
        lines.append(f"  held back {count:>8,}  {visible(reason)}")
    for seen in summary.recognised:  # a rotated, renamed or copied file
        name, earlier = visible(seen.name), visible(seen.read_as)
        lines.append(
            f"  {name}: the same lines as {earlier}, already stored"
            if not seen.new_lines
            else f"  {name}: continues {earlier}, whose {seen.lines:,} line(s) were read before"
        )
    console.out("\n".join(lines), highlight=False)


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, datetime):  # pandas' Timestamp too
        # at the log's precision: a syslog header's whole seconds get no invented .000000
        return value.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if value.microsecond else ""))
    return str(value)


def print_hops(console: Console, hops: pd.DataFrame) -> None:
    """One row per hop, the columns that tell where a packet was."""
    columns = [(name, title) for name, title in HOP_COLUMNS if name in hops.columns]
    shown = hops[[name for name, _ in columns]]
    rows = shown.astype(object).where(shown.notna(), None).itertuples(index=False)
    print_table(
        console,
        [title for _, title in columns],
        ([_cell(v) for v in row] for row in rows),
        right={"sport", "dport", "ttl", "id"},
    )
    console.out(f"{len(hops):,} hop(s)", highlight=False)


def text_table(
    titles: Sequence[str], rows: Iterable[Sequence[str]], right: Collection[str] = ()
) -> list[str]:
    """Rows as lines of columns two spaces apart, the titles first; the columns named in
    ``right`` (numbers) align right.

    Plain fixed-width text, like ``ss`` or ``conntrack -L``: greps, cuts and sorts, and takes
    milliseconds for thousands of rows where rich's Table took 0.5 ms a row (0.7 s for the
    1,393 flows of the benchmark). Each cell is ``visible``: one row a line, whatever a log
    put in it, and its width is the width shown.
    """
    cells = [list(titles), *([visible(str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(titles))]
    aligned = [str.rjust if t in right else str.ljust for t in titles]
    return [
        "  ".join(align(c, w) for align, c, w in zip(aligned, row, widths, strict=True)).rstrip()
        for row in cells
    ]


def print_table(
    console: Console,
    titles: Sequence[str],
    rows: Iterable[Sequence[str]],
    right: Collection[str] = (),
) -> None:
    """``text_table`` on the console, its title line in bold on a terminal.

    Into a pipe or a file the rows are written as they are: they are plain text already, and
    rich's rendering of them cost 4 s for the 47,606 flows of one port on the 2M-line store.
    """
    _print_lines(console, text_table(titles, rows, right))


def _print_lines(console: Console, lines: list[str]) -> None:
    title, *body = lines
    console.out(title, style="bold" if console.is_terminal else None, highlight=False)
    if not body:
        return
    if console.is_terminal or console.record:
        console.out("\n".join(body), highlight=False)
    else:
        console.file.write("\n".join(body) + "\n")


def text_columns(
    titles: Sequence[str], columns: Sequence[pa.Array], right: Collection[str] = ()
) -> pa.Array:
    """``text_table`` of Arrow string columns (no null cell): the same lines, the title's
    first, as one string array, computed a column at a time (for tens of thousands of rows:
    ``text_table`` took 1.2 s of the 47,606 flows of one port on the 2M-line store)."""
    padded = []
    for title, column in zip(titles, columns, strict=True):
        cells = visible_array(pa.concat_arrays([arrow_array([title], pa.string()), column]))
        width = pc.max(pc.utf8_length(cells)).as_py()
        pad = pc.utf8_lpad if title in right else pc.utf8_rpad
        padded.append(pad(cells, width=width, padding=" "))
    # str.rstrip: the padding of the last columns, and whitespace a last cell ends with
    return pc.utf8_rtrim_whitespace(pc.binary_join_element_wise(*padded, literal("  ")))


def print_columns(
    console: Console,
    titles: Sequence[str],
    columns: Sequence[pa.Array],
    right: Collection[str] = (),
) -> None:
    """``print_table`` of Arrow string columns (``text_columns``)."""
    _print_lines(console, text_columns(titles, columns, right).to_pylist())


def print_flows(console: Console, flows: pa.Table) -> None:
    """A readable table of flows (flows-table rows), one line each: id, proto, orig and reply
    tuples, NAT, packets, hops, first seen, state (with the packets the ruleset says were
    dropped or lost, when there are)."""
    # every literal an Arrow one (``literal``): a Python one is converted by pa.scalar, which
    # imports pandas (0.45 s of a 20-second window's 1 s)
    state = pc.if_else(
        pc.fill_null(flows["answered"].combine_chunks(), literal(False)),
        flows["state"].combine_chunks(),
        pc.binary_join_element_wise(
            flows["state"].combine_chunks(), literal(" (no answer)"), literal("")
        ),
    )
    for verdict in ("dropped", "lost"):
        if verdict in flows.column_names:
            count = pc.fill_null(flows[verdict].combine_chunks(), literal(0))
            told = pc.binary_join_element_wise(
                pc.cast(count, pa.string()), literal(verdict), literal(" ")
            )
            state = pc.if_else(
                pc.greater(count, literal(0)),
                pc.binary_join_element_wise(state, told, literal(", ")),
                state,
            )
    columns = [
        flows["id"].combine_chunks(),
        flows["proto"].combine_chunks(),
        _tuple_texts(flows, "orig"),
        _tuple_texts(flows, "reply"),
        _nat_texts(flows["nat"].combine_chunks()),
        _integer_texts(flows["packets"]),
        _integer_texts(flows["hops"]),
        _second_texts(flows["first_seen"]),
        state,
    ]
    titles = ["id", "proto", "orig", "reply", "nat", "pkts", "hops", "first seen", "state"]
    print_columns(console, titles, columns, right={"pkts", "hops"})
    console.out(f"{flows.num_rows:,} flow(s)", highlight=False)


def _tuple_texts(flows: pa.Table, side: str) -> pa.Array:
    """``str(ConnTuple)`` of each row: ``src:sport → dst:dport`` (``format_endpoint``)."""
    ends = [
        _endpoint_texts(flows[f"{side}_{addr}"], flows[f"{side}_{port}"])
        for addr, port in (("src", "sport"), ("dst", "dport"))
    ]
    return pc.binary_join_element_wise(*ends, literal(" → "))


def _endpoint_texts(addr: pa.ChunkedArray, port: pa.ChunkedArray) -> pa.Array:
    """``format_endpoint`` of each row: ``addr``, ``addr:port``, ``[v6addr]:port``."""
    address, number = addr.combine_chunks(), port.combine_chunks()
    bracketed = pc.if_else(
        pc.match_substring(address, ":"),
        pc.binary_join_element_wise(literal("["), address, literal("]"), literal("")),
        address,
    )
    with_port = pc.binary_join_element_wise(bracketed, pc.cast(number, pa.string()), literal(":"))
    return pc.if_else(pc.is_null(number), address, with_port)


def _nat_texts(nat: pa.Array) -> pa.Array:
    """Each row's translations (its JSON list) as ``type from→to, ...``; each distinct list
    is decoded once."""
    distinct = pc.unique(nat)
    texts = [
        ", ".join(f"{t['type']} {t['from']}→{t['to']}" for t in json.loads(value))
        for value in distinct.to_pylist()
    ]
    return arrow_array(texts, pa.string()).take(pc.index_in(nat, value_set=distinct))


def _integer_texts(numbers: pa.ChunkedArray) -> pa.Array:
    return pc.cast(numbers.combine_chunks(), pa.string())


def _second_texts(times: pa.ChunkedArray) -> pa.Array:
    """UTC times as ``YYYY-MM-DD HH:MM:SS`` (``isoformat(sep=" ", timespec="seconds")``: cut,
    not rounded), "" for none. Formatted without a time zone: through Arrow's time zone
    database it cost seconds."""
    micros = pc.cast(pc.cast(times.combine_chunks(), pa.int64()), pa.timestamp("us"))
    # floored (a cast cuts towards 1970: 1969-12-31 23:59:59.999999 would show as 1970)
    floored = pc.floor_temporal(micros, unit="second")
    seconds = pc.cast(floored, options=pc.CastOptions(pa.timestamp("s"), allow_time_truncate=True))
    return pc.fill_null(pc.strftime(seconds, "%Y-%m-%d %H:%M:%S"), literal(""))


def print_rejected(console: Console, rejected: pd.DataFrame) -> None:
    """Each rejected line with a caret under the column where the grammar gave up.

    The line is shown ``visible``; the caret stands under the same character of the escaped
    line (an escape before it, ``\\x1b`` for one ESC, moves it right).
    """
    for row in rejected.to_dict("records"):
        source, text, column = str(row["source"]), str(row["text"] or ""), int(row["column"])
        found = visible(str(row["found"]))
        message = (
            f"{visible(source)}:{row['lineno']}:{column}: "
            f"expected {visible(str(row['expected']))}, found '{found}'"
        )
        console.out(message, highlight=False)
        if text:
            caret = len(visible(text[: column - 1]))
            console.out(f"  {visible(text)}\n  {' ' * caret}^", highlight=False)
    console.out(f"{len(rejected):,} rejected line(s)", highlight=False)
