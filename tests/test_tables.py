"""Terminal tables drawn a column at a time in Arrow read the same as the row-wise ones."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
from rich.console import Console

from logpath.flows import ConnTuple, Flow, Translation
from logpath.query import FlowQuery, find_flows, flow_rows
from logpath.render.tables import print_flows, print_table, text_columns, text_table
from logpath.store import Store
from logpath.summaries import flows_table

TITLES = ["name", "count", "last"]
# controls, bidi and zero-width marks, a wide character, NBSP (str.isspace, not escaped) at
# the end of a line, empty cells, a backslash
ROWS = [
    ["fw\x1b[2J", "1", "a\u202eb"],
    ["", "12345", "x\u00a0"],
    ["tab\there", "", ""],
    ["日本語\u200b", "7", "back\\slash"],
    ["plain", "42", "  "],
]


def _page() -> Console:
    return Console(file=io.StringIO(), width=1000)


def test_text_columns_equal_text_table() -> None:
    columns = [pa.array([row[i] for row in ROWS], pa.string()) for i in range(len(TITLES))]
    for right in ((), {"count"}, {"name", "last"}):
        assert text_columns(TITLES, columns, right).to_pylist() == text_table(TITLES, ROWS, right)


def test_text_columns_of_no_row_is_the_title_line() -> None:
    columns = [pa.array([], pa.string()) for _ in TITLES]
    assert text_columns(TITLES, columns).to_pylist() == text_table(TITLES, [])


def _row_wise(console: Console, flows: list[Flow]) -> None:
    """The flows table as it was drawn a Flow record at a time."""
    titles = ["id", "proto", "orig", "reply", "nat", "pkts", "hops", "first seen", "state"]
    rows = (
        [
            flow.id,
            flow.proto,
            str(flow.orig),
            str(flow.reply),
            ", ".join(f"{t.type} {t.from_addr}→{t.to_addr}" for t in flow.nat),
            str(flow.packets),
            str(flow.hops),
            flow.first_seen.isoformat(sep=" ", timespec="seconds")[:19] if flow.first_seen else "",
            flow.state + ("" if flow.answered else " (no answer)"),
        ]
        for flow in flows
    )
    print_table(console, titles, rows, right={"pkts", "hops"})
    console.out(f"{len(flows):,} flow(s)", highlight=False)


def _drawn(flows: list[Flow], table: pa.Table) -> tuple[str, str]:
    expected, got = _page(), _page()
    _row_wise(expected, flows)
    print_flows(got, table)
    assert isinstance(expected.file, io.StringIO) and isinstance(got.file, io.StringIO)
    return got.file.getvalue(), expected.file.getvalue()


def test_the_flows_table_reads_as_drawn_row_by_row(seed_store: Store) -> None:
    for query in (FlowQuery(), FlowQuery(nat="any"), FlowQuery(proto="icmp")):
        got, expected = _drawn(find_flows(seed_store, query), flow_rows(seed_store, query))
        assert got == expected


def test_the_flows_table_of_every_kind_of_cell() -> None:
    when = datetime(2026, 1, 9, 0, 56, 14, 999_999, tzinfo=UTC)
    flows = [
        Flow(
            id="0123456789-443", proto="tcp", family=6,
            orig=ConnTuple("2001:db8::1", 50000, "2001:db8::2", 443),
            reply=ConnTuple("2001:db8::2", 443, "2001:db8::1", 50000),
            nat=(
                Translation("dnat", "[2001:db8::2]:443", "[fd00::2]:8443", "PREROUTING"),
                Translation("snat", "[2001:db8::1]:50000", "[fd00::1]:50000", "POSTROUTING"),
            ),
            packets=3, hops=12345, first_seen=when, last_seen=when, state="established",
            progression=("SYN",), answered=True, hosts=("a",), stopped=0,
        ),
        Flow(
            id="abcdef0123-7", proto="icmp", family=4,
            orig=ConnTuple("10.0.0.1", 7, "10.0.0.2", None),
            reply=ConnTuple("10.0.0.2", None, "10.0.0.1", 7),
            nat=(), packets=1, hops=1, first_seen=None, last_seen=None, state="unreplied",
            progression=(), answered=False, hosts=(), stopped=1,
        ),
        Flow(
            id="fedcba9876-0", proto="47", family=4,
            orig=ConnTuple("10.0.0.3", None, "10.0.0.4", None),
            reply=ConnTuple("10.0.0.4", None, "10.0.0.3", None),
            nat=(Translation("snat", "10.0.0.3", "192.0.2.1", "POSTROUTING"),),
            packets=2, hops=4, first_seen=datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),
            last_seen=None, state="replied", progression=(), answered=True, hosts=(), stopped=0,
        ),
    ]  # fmt: skip
    got, expected = _drawn(flows, flows_table(flows))
    assert got == expected
    assert "[2001:db8::1]:50000 → [2001:db8::2]:443" in got
    assert "1969-12-31 23:59:59" in got
