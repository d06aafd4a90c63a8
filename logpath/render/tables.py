"""Plain tables for the terminal: the ingest summary, hops, rejected lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from logpath.ingest import IngestSummary

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
]


def print_summary(console: Console, summary: IngestSummary, store: Path) -> None:
    """What an ingest run did, with skipped and rejected lines by reason."""
    console.print(
        f"{summary.files} file(s), {summary.lines:,} new line(s): {summary.hops:,} hop(s) stored "
        f"in {escape(str(store))}, {summary.rejected:,} rejected, {summary.skipped:,} skipped"
        + (f", {summary.already_stored:,} already stored" if summary.already_stored else "")
    )
    for reason, count in summary.skipped_by_reason.most_common():
        console.print(f"  skipped  {count:>9,}  {escape(reason)}")
    for reason, count in summary.rejected_by_reason.most_common(10):
        console.print(f"  rejected {count:>9,}  {escape(reason)}")
    if summary.rejected:
        console.print("  (`logpath rejected` lists the rejected lines)")


def _cell(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def print_hops(console: Console, hops: pd.DataFrame) -> None:
    """One row per hop, the columns that tell where a packet was."""
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for _, title in HOP_COLUMNS:
        table.add_column(title, overflow="fold")
    for row in hops[[name for name, _ in HOP_COLUMNS]].itertuples(index=False):
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)
    console.print(f"{len(hops):,} hop(s)")


def print_rejected(console: Console, rejected: pd.DataFrame) -> None:
    """Each rejected line with a caret under the column where the grammar gave up."""
    for row in rejected.to_dict("records"):
        source, text, column = str(row["source"]), str(row["text"] or ""), int(row["column"])
        console.print(
            f"{escape(source)}:{row['lineno']}:{column}: expected {escape(str(row['expected']))}, "
            f"found {escape(repr(str(row['found'])))}",
            highlight=False,
            emoji=False,
            soft_wrap=True,
        )
        if text:
            console.print("  " + escape(text), highlight=False, emoji=False, soft_wrap=True)
            console.print(
                "  " + " " * (column - 1) + "^", highlight=False, emoji=False, soft_wrap=True
            )
    console.print(f"{len(rejected):,} rejected line(s)")
