"""The hop store's files: how ingest blocks become Parquet row groups."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from logpath.hops import HOP_SCHEMA, TEXTS_AS_DICTIONARIES
from logpath.store import ROW_GROUP_ROWS, Store


def hop_block(first: int, count: int) -> pa.Table:
    """A block of hops as one ingest worker hands it over: line numbers first..first+count-1."""
    columns = {field.name: pa.nulls(count, field.type) for field in HOP_SCHEMA}
    columns["lineno"] = pa.array(range(first, first + count), pa.int64())
    columns["source"] = pa.array(["syslog"] * count).dictionary_encode()
    return pa.table(columns, schema=HOP_SCHEMA)


def test_small_blocks_are_gathered_into_large_row_groups(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    block = 5_000
    blocks = 2 * ROW_GROUP_ROWS // block + 3  # two full groups and a remainder
    with store.writer() as writer:
        for n in range(blocks):
            writer.add_hops(hop_block(n * block, block))
    (part,) = (tmp_path / "store" / "hops").glob("*.parquet")
    groups = [
        pq.ParquetFile(part).metadata.row_group(i).num_rows
        for i in range(pq.ParquetFile(part).metadata.num_row_groups)
    ]
    assert len(groups) == 3
    assert all(rows >= ROW_GROUP_ROWS for rows in groups[:-1])
    assert sum(groups) == blocks * block
    # nothing lost or reordered on the way
    assert store.read_hops(columns=["lineno"])["lineno"].tolist() == list(range(blocks * block))


def test_hop_batches_skip_row_groups_outside_the_time_span(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    days = [datetime(2026, 1, day, 12, tzinfo=UTC) for day in (8, 9, 10)] + [None]
    with store.writer() as writer:
        for n, day in enumerate(days):  # one row group a day, the last without wall-clock time
            block = hop_block(n * ROW_GROUP_ROWS, ROW_GROUP_ROWS)
            stamps = pa.array([day] * ROW_GROUP_ROWS, HOP_SCHEMA.field("ts").type)
            writer.add_hops(block.set_column(block.schema.get_field_index("ts"), "ts", stamps))
    ts = ds.field("ts")
    span = (ts >= datetime(2026, 1, 9, tzinfo=UTC)) & (ts < datetime(2026, 1, 10, tzinfo=UTC))
    read = [b for b in store.hop_batches(["lineno", "ts"], within=span | ts.is_null())]
    lines = pa.concat_arrays([b.column("lineno") for b in read]).to_pylist()
    second, untimed = (
        range(ROW_GROUP_ROWS, 2 * ROW_GROUP_ROWS),
        range(3 * ROW_GROUP_ROWS, 4 * ROW_GROUP_ROWS),
    )
    assert lines == [*second, *untimed]
    assert sum(b.num_rows for b in store.hop_batches(["lineno"])) == 4 * ROW_GROUP_ROWS


LAB = Path(__file__).parent.parent / "samples" / "lab"
LAB_LOGS = [LAB / name for name in ("dnat.log", "icmp-error.log", "c2c.log")]


def lab_store(tmp_path: Path) -> Store:
    """A store of three lab captures (DNAT, an ICMP error, container to container)."""
    from logpath.ingest import ingest

    store = Store(tmp_path / "store")
    ingest([str(path) for path in LAB_LOGS], store)
    return store


def test_hops_as_pandas_share_one_string_per_text_and_equal_arrows_conversion(
    tmp_path: Path,
) -> None:
    # genuine lab hops, a table of two chunks (as a store's batches are): addresses repeated,
    # MACs missing on some hops, ARP's columns null on every one
    from logpath.store import _pandas_types, to_frame

    read = lab_store(tmp_path).read_table(None, None)
    table = pa.concat_tables([read.slice(0, 100), read.slice(100)])
    assert table["src"].num_chunks > 1 and table["macsrc"].null_count > 0
    assert table["arp_ipsrc"].null_count == table.num_rows

    frame = to_frame(table)
    # the MACs, kept as dictionaries for their size, are read as text as the others are
    as_text = pa.schema(
        [
            pa.field(f.name, pa.string()) if f.name in TEXTS_AS_DICTIONARIES else f
            for f in table.schema
        ]
    )
    assert all(pa.types.is_dictionary(table[name].type) for name in TEXTS_AS_DICTIONARIES)
    expected = table.cast(as_text).to_pandas(types_mapper=_pandas_types().get)
    assert frame.equals(expected)
    assert frame["macsrc"].dtype == frame["src"].dtype != "category"
    assert list(frame.columns) == list(expected.columns)
    assert (frame.dtypes == expected.dtypes).all()
    # one Python object per distinct address, not one per hop
    addresses = frame["src"].dropna().tolist()
    assert len({id(a) for a in addresses}) == len(set(addresses)) < len(addresses)
    assert to_frame(table.slice(0, 0)).dtypes.equals(expected.dtypes)
    # a column of distinct texts (a line each) is converted as it is
    assert frame["raw"].nunique() == len(frame) and len({id(r) for r in frame["raw"]}) == len(frame)


def dictionary_columns(path: Path) -> set[str]:
    """The columns of a Parquet file written with a dictionary page (its first row group's)."""
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    return {
        meta.schema.column(i).name
        for i in range(meta.num_columns)
        if group.column(i).has_dictionary_page
    }


def test_the_texts_are_written_by_dictionary_and_the_numbers_and_lines_plain(
    tmp_path: Path,
) -> None:
    # genuine lab hops: their addresses and interfaces repeat, their IDs and line numbers do not
    store = lab_store(tmp_path)
    (part,) = (tmp_path / "store" / "hops").glob("*.parquet")
    texts = {
        f.name for f in HOP_SCHEMA if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
    }
    assert {"src", "in_iface", "prefix", "raw"} <= texts
    assert dictionary_columns(part) == texts - {"raw"}
    # what is written plain reads back as it was
    hops = store.read_table(None, None)
    lines = [line for path in LAB_LOGS for line in path.read_text().splitlines()]
    assert sorted(hops["raw"].to_pylist()) == sorted(lines)
    assert hops["id"].null_count < hops.num_rows and hops["lineno"].null_count == 0
