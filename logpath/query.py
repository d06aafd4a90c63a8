"""Questions to a store: which connections match, and one connection's journey.

Everything is read from the tables assembly stored at ingest (``logpath.assembly``): a
question selects rows, it derives nothing. A store assembled by an older logpath, or under other
prefix conventions, is assembled again first (and kept, when the store can be written).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from logpath.assembly import TRACE_SCHEMA, Provenance, assemble_store, kept_ruleset
from logpath.clocks import Clocks
from logpath.errors import NotFoundError, StoreLockedError, StoreWriteError, UsageError
from logpath.flows import NAT_TYPES, Flow
from logpath.journeys import Journey, build_journeys, only_packet
from logpath.rules import Ruleset
from logpath.store import Store, hop_filter, to_frame
from logpath.summaries import FLOW_SCHEMA, flows_from_table

NAT_CHOICES = {"snat": ("snat",), "dnat": ("dnat", "redirect"), "any": NAT_TYPES}
# Flows read from the flows table at a time when they are streamed (``iter_flows``).
FLOW_BATCH = 8192


@dataclass(frozen=True)
class FlowQuery:
    """What ``logpath flows`` asks: a connection matches when one of its hops matches every hop
    filter given, and its NAT the ``nat`` filter."""

    port: int | None = None
    """Only flows with a hop to or from this port."""
    ident: int | None = None
    """Only flows with a hop with this port or ICMP echo id (the number in a flow id)."""
    host: str | None = None
    """Only flows with a hop from or to this address."""
    proto: str | None = None
    """Only flows of this protocol."""
    nat: str | None = None
    """Only flows with this kind of NAT: "snat", "dnat" (DNAT or REDIRECT) or "any"."""
    since: str | None = None
    """Only flows with a hop at or after this time (ISO 8601)."""
    until: str | None = None
    """Only flows with a hop at or before this time."""
    everything: bool = False
    """Accepted for scripts written when a big store needed ``--all``; it changes nothing."""

    def hop_filter(self) -> ds.Expression | None:
        """The hop filters as one expression on the trace table (None without any)."""
        if self.nat is not None and self.nat not in NAT_CHOICES:
            raise UsageError(f"--nat {self.nat!r}: use snat, dnat or any")
        return hop_filter(
            port=self.port,
            ident=self.ident,
            host=self.host,
            proto=self.proto,
            since=self.since,
            until=self.until,
        )


@dataclass(frozen=True)
class Tables:
    """A store's assembled tables, as datasets to scan with filters."""

    flows: ds.Dataset
    trace: ds.Dataset
    clocks: Clocks
    store: Store | None = None
    """The store whose files they are (None when assembled in memory)."""

    def scan(self, kind: str, **scan: Any) -> pa.Table:
        """Rows of the table ``kind`` ("flows" or "trace"): ``Dataset.to_table`` arguments."""
        with self._reading(kind) as dataset:
            return dataset.to_table(**scan)

    def batches(self, kind: str, **scan: Any) -> Iterator[pa.RecordBatch]:
        """``scan``, a batch at a time."""
        with self._reading(kind) as dataset:
            yield from dataset.to_batches(**scan)

    @contextmanager
    def _reading(self, kind: str) -> Iterator[ds.Dataset]:
        """The table's dataset, a damaged file named (its path is the dataset's one file)."""
        dataset = self.flows if kind == "flows" else self.trace
        if self.store is None:
            yield dataset
            return
        (path,) = dataset.files
        with self.store.reading(Path(path)):
            yield dataset


def assembled(store: Store) -> Tables:
    """The store's assembled tables, assembling them first when they are missing or were built
    from other hops, another ruleset or other prefix conventions.

    The new tables are kept in the store when it can be written; a read-only store, or one an
    ingest is writing, is assembled in memory for this question only.
    """
    manifest = store.require()
    if Provenance.now(manifest.parts, manifest.ruleset).matches(manifest.assembly):
        return _stored_tables(store)
    print(f"{store.path}: assembling the connections of the stored hops…", file=sys.stderr)
    try:
        with store.writer() as writer:
            assemble_store(store, writer)
    except (StoreWriteError, StoreLockedError):
        result = assemble_store(store)
        return Tables(ds.dataset(result.flows), ds.dataset(result.trace), result.clocks)
    return _stored_tables(store)


def _stored_tables(store: Store) -> Tables:
    flows, trace = store.assembled_dataset("flows"), store.assembled_dataset("trace")
    assembly = store.require().assembly
    assert flows is not None and trace is not None and assembly is not None
    return Tables(flows, trace, Clocks.from_json(assembly["clocks"]), store)


def store_ruleset(store: Store) -> Ruleset | None:
    """The ruleset kept in the store at ingest (``logpath ingest --rules``), if any."""
    return kept_ruleset(store.require().ruleset)


def store_clocks(store: Store) -> Clocks:
    """The hosts' boot times and clock offsets, learned from all the store's hops at assembly."""
    return assembled(store).clocks


def matching_flow_numbers(tables: Tables, query: FlowQuery) -> np.ndarray | None:
    """The ``flow_n`` of the connections with a hop matching the query's hop filters, sorted
    (None when it has none: every connection)."""
    condition = query.hop_filter()
    if condition is None:
        return None
    numbers = tables.scan("trace", columns=["flow_n"], filter=condition)["flow_n"]
    return np.unique(numbers.to_numpy())


def iter_flows(store: Store, query: FlowQuery) -> Iterator[Flow]:
    """The connections matching ``query``, in order of first appearance, read a batch at a
    time: memory follows the batch, not the store."""
    for rows in _flow_batches(store, query):
        yield from flows_from_table(rows)


def flow_rows(store: Store, query: FlowQuery, columns: list[str] | None = None) -> pa.Table:
    """The flows-table rows (FLOW_SCHEMA: ``columns``, or all) of the connections matching
    ``query``, in order of first appearance: what a table of them is drawn from, a column at a
    time (a Flow record per row cost 3.1 s of the 4.7 s of `flows --port` on 47,606 flows)."""
    wanted = columns or FLOW_SCHEMA.names
    batches = list(_flow_batches(store, query, wanted))
    if not batches:
        return pa.schema([FLOW_SCHEMA.field(c) for c in wanted]).empty_table()
    return pa.concat_tables(batches)


def _flow_batches(
    store: Store, query: FlowQuery, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """``flow_rows`` a batch (FLOW_BATCH rows read) at a time."""
    tables = assembled(store)
    numbers = matching_flow_numbers(tables, query)
    if numbers is not None and not len(numbers):
        return
    condition = None if numbers is None else _numbered(numbers)
    kinds = NAT_CHOICES[query.nat] if query.nat is not None else None
    read = columns if columns is None or kinds is None or "nat" in columns else [*columns, "nat"]
    for batch in tables.batches("flows", columns=read, filter=condition, batch_size=FLOW_BATCH):
        rows = pa.Table.from_batches([batch])
        if kinds is not None:
            rows = rows.filter(_translated(rows["nat"], kinds))
            if columns is not None and "nat" not in columns:
                rows = rows.drop_columns(["nat"])
        yield rows


def _translated(nat: pa.ChunkedArray, kinds: tuple[str, ...]) -> pa.Array:
    """For each row's ``nat`` (a JSON list of translations): has it one of these kinds?
    Each distinct list is decoded once (most connections share one)."""
    plain = nat.combine_chunks()
    distinct = pc.unique(plain)
    found = [any(t["type"] in kinds for t in json.loads(v)) for v in distinct.to_pylist()]
    return pa.array(found, pa.bool_()).take(pc.index_in(plain, value_set=distinct))


def _numbered(numbers: np.ndarray) -> ds.Expression:
    """Rows whose ``flow_n`` is one of ``numbers`` (sorted): the range lets the scan skip the
    row groups outside it by their statistics."""
    flow_n = ds.field("flow_n")
    inside = (flow_n >= int(numbers[0])) & (flow_n <= int(numbers[-1]))
    return inside & flow_n.isin(pa.array(numbers, pa.int64()))


def find_flows(store: Store, query: FlowQuery) -> list[Flow]:
    """The connections matching ``query``, in order of first appearance.

    Example:
        >>> flows = find_flows(Store(path), FlowQuery(port=12580))
    """
    return list(iter_flows(store, query))


def select_flows(
    store: Store, query: FlowQuery, columns: list[str] | None = None
) -> tuple[pd.DataFrame, list[Flow]]:
    """The connections matching ``query`` and their traced hops (journeys' rows).

    Example:
        >>> traced, flows = select_flows(Store(path), FlowQuery(port=12580))
    """
    flows = find_flows(store, query)
    return traced_hops(store, flows, columns), flows


def traced_hops(store: Store, flows: list[Flow], columns: list[str] | None = None) -> pd.DataFrame:
    """The stored trace of these connections (TRACE_SCHEMA columns, or ``columns``)."""
    tables = assembled(store)
    wanted = columns or TRACE_SCHEMA.names
    if not flows:
        return to_frame(pa.schema([TRACE_SCHEMA.field(c) for c in wanted]).empty_table())
    numbers = _flow_numbers(tables, [flow.id for flow in flows])
    if not len(numbers):
        return to_frame(pa.schema([TRACE_SCHEMA.field(c) for c in wanted]).empty_table())
    table = tables.scan("trace", columns=wanted, filter=_numbered(numbers))
    return to_frame(table)


def _flow_numbers(tables: Tables, ids: list[str]) -> np.ndarray:
    """The ``flow_n`` of these flow ids, sorted."""
    found = tables.scan(
        "flows", columns=["flow_n"], filter=ds.field("id").isin(pa.array(ids, pa.string()))
    )
    return np.sort(found["flow_n"].to_numpy())


def load_journey(store: Store, flow_id: str, packet: int | None = None) -> Journey:
    """The journey of flow ``flow_id`` (as ``logpath flows`` named it) from the store.

    Reads the connection's row and its hops' rows (one row group of the trace, found by the
    statistics of ``flow_n``): nothing is derived again.

    Raises:
        NotFoundError: no such flow, or no such packet in it.
    """
    tables = assembled(store)
    # the id's number first, from two columns; then its row, from the one row group the
    # statistics of the sorted ``flow_n`` leave (every column of every row group: 2.5x longer)
    found = tables.scan("flows", columns=["flow_n"], filter=ds.field("id") == flow_id)
    if not found.num_rows:
        raise NotFoundError(f"no flow {flow_id!r} in the store (see `logpath flows`)")
    number = found["flow_n"][0].as_py()
    row = tables.scan("flows", filter=ds.field("flow_n") == number)
    (flow,) = flows_from_table(row.cast(FLOW_SCHEMA))
    traced = to_frame(tables.scan("trace", filter=ds.field("flow_n") == number))
    (journey,) = build_journeys(traced, [flow])
    return only_packet(journey, packet)
