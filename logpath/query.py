"""Questions to a store: which connections match, and one connection's journey.

Everything is read from the tables assembly stored at ingest (``logpath.assembly``): a
question selects rows, it derives nothing. A store assembled by an older logpath, or under other
prefix conventions, is assembled again first (and kept, when the store can be written).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from logpath.errors import NotFoundError, StoreLockedError, StoreWriteError, UsageError
from logpath.journeys import Journey, journeys_from_rows, only_packet
from logpath.provenance import Provenance
from logpath.records import FLOW_SCHEMA, NAT_TYPES, Flow, flows_from_table
from logpath.rowgroups import MemoryRows, Rows, Where, arrow_array, python_rows
from logpath.store import Store, hop_filter

# A question that reads a few rows (``journey``, a window of ``flows``) imports no pandas: the
# stored tables are read by row group (``logpath.rowgroups``), and pandas, with what assembles a
# store, is imported by the questions that need it (``traced_hops``, an unassembled store).
if TYPE_CHECKING:
    import pandas as pd

    from logpath.clocks import Clocks
    from logpath.rules import Ruleset

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

    def hop_filter(self) -> Where | None:
        """The hop filters, over rows of the trace table (None without any)."""
        if self.nat is not None and self.nat not in NAT_CHOICES:
            raise UsageError(f"--nat {self.nat!r}: use snat, dnat or any")
        chosen = hop_filter(
            port=self.port,
            ident=self.ident,
            host=self.host,
            proto=self.proto,
            since=self.since,
            until=self.until,
        )
        return None if chosen is None else chosen.where()


@dataclass(frozen=True)
class Tables:
    """A store's assembled tables, to read rows of."""

    flows: Rows
    trace: Rows
    clocks: dict[str, Any]
    """The hosts' clocks the tables were built on (``Clocks.to_json``)."""

    def read(
        self, kind: str, columns: list[str] | None = None, where: Where | None = None
    ) -> pa.Table:
        """Rows of the table ``kind`` ("flows" or "trace")."""
        return self._rows(kind).read(columns, where)

    def batches(
        self, kind: str, columns: list[str] | None, where: Where | None, batch_size: int
    ) -> Iterator[pa.Table]:
        """``read``, a batch at a time."""
        return self._rows(kind).batches(columns, where, batch_size)

    def locate(
        self, kind: str, columns: list[str], where: Where
    ) -> tuple[pa.Table, frozenset[int] | None]:
        """``read``, and the partitions of the files that held the rows (``Rows.locate``): the
        other table's rows of the same connections are in the same partitions."""
        return self._rows(kind).locate(columns, where)

    def _rows(self, kind: str) -> Rows:
        return self.flows if kind == "flows" else self.trace


def assembled(store: Store) -> Tables:
    """The store's assembled tables, assembling them first when they are missing or were built
    from other hops, another ruleset or other prefix conventions.

    The new tables are kept in the store when it can be written; a read-only store, or one an
    ingest is writing, is assembled in memory for this question only.
    """
    manifest = store.require()
    if Provenance.now(manifest.parts, manifest.ruleset).matches(manifest.assembly):
        return _stored_tables(store)
    from logpath.assembly import assemble_store

    print(f"{store.path}: assembling the connections of the stored hops…", file=sys.stderr)
    try:
        with store.writer() as writer:
            assemble_store(store, writer)
    except (StoreWriteError, StoreLockedError):
        result = assemble_store(store)
        return Tables(MemoryRows(result.flows), MemoryRows(result.trace), result.clocks.to_json())
    return _stored_tables(store)


def _stored_tables(store: Store) -> Tables:
    flows, trace = store.assembled_rows("flows"), store.assembled_rows("trace")
    assembly = store.require().assembly
    assert flows is not None and trace is not None and assembly is not None
    return Tables(flows, trace, assembly["clocks"])


def store_ruleset(store: Store) -> Ruleset | None:
    """The ruleset kept in the store at ingest (``logpath ingest --rules``), if any."""
    from logpath.assembly import kept_ruleset

    return kept_ruleset(store.require().ruleset)


def store_clocks(store: Store) -> Clocks:
    """The hosts' boot times and clock offsets, learned from all the store's hops at assembly."""
    from logpath.clocks import Clocks

    return Clocks.from_json(assembled(store).clocks)


def matching_flow_numbers(tables: Tables, query: FlowQuery) -> pa.Array | None:
    """The ``flow_n`` of the connections with a hop matching the query's hop filters, sorted
    (None when it has none: every connection)."""
    found = _matching_flows(tables, query)
    return None if found is None else found[0]


def _matching_flows(
    tables: Tables, query: FlowQuery
) -> tuple[pa.Array, frozenset[int] | None] | None:
    """``matching_flow_numbers``, and the partitions that hold those connections."""
    condition = query.hop_filter()
    if condition is None:
        return None
    rows, partitions = tables.locate("trace", ["flow_n"], condition)
    return _sorted(pc.unique(rows["flow_n"])), partitions


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
    found = _matching_flows(tables, query)
    if found is not None and not len(found[0]):
        return
    condition = None if found is None else _numbered(*found)
    kinds = NAT_CHOICES[query.nat] if query.nat is not None else None
    read = columns if columns is None or kinds is None or "nat" in columns else [*columns, "nat"]
    for rows in tables.batches("flows", read, condition, FLOW_BATCH):
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
    return arrow_array(found, pa.bool_()).take(pc.index_in(plain, value_set=distinct))


def _numbered(numbers: pa.Array, partitions: frozenset[int] | None = None) -> Where:
    """Rows whose ``flow_n`` is one of ``numbers`` (sorted), in the files of ``partitions``
    (where they were found; None: anywhere): the tables are sorted by ``flow_n``, so the range
    leaves only the row groups that hold them."""
    return Where(
        ranges=(("flow_n", numbers[0].as_py(), numbers[-1].as_py()),),
        test=lambda rows: pc.is_in(rows["flow_n"], value_set=numbers),
        needs=("flow_n",),
        partitions=partitions,
    )


def _sorted(numbers: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.take(numbers, pc.sort_indices(numbers))


def _with_id(ids: list[str]) -> Where:
    """Rows of the flows table whose ``id`` is one of ``ids``."""
    wanted = arrow_array(ids, pa.string())
    return Where(test=lambda rows: pc.is_in(rows["id"], value_set=wanted), needs=("id",))


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
    from logpath.assembly import TRACE_SCHEMA
    from logpath.store import to_frame

    tables = assembled(store)
    wanted = columns or TRACE_SCHEMA.names
    numbers, partitions = _flow_numbers(tables, [flow.id for flow in flows])
    if not len(numbers):
        return to_frame(pa.schema([TRACE_SCHEMA.field(c) for c in wanted]).empty_table())
    return to_frame(tables.read("trace", wanted, _numbered(numbers, partitions)))


def _flow_numbers(tables: Tables, ids: list[str]) -> tuple[pa.Array, frozenset[int] | None]:
    """The ``flow_n`` of these flow ids, sorted, and the partitions that hold them."""
    if not ids:
        return arrow_array([], pa.int64()), frozenset()
    found, partitions = tables.locate("flows", ["flow_n"], _with_id(ids))
    return _sorted(found["flow_n"]), partitions


def _numbers_by_prefix(tables: Tables, prefix: str) -> tuple[pa.Array, frozenset[int] | None]:
    """The ``flow_n`` of the one flow whose id starts with ``prefix`` (as git takes a commit's
    short hash: ``3f5d7f1cd6`` for ``3f5d7f1cd6-55148``), none when no id does, and the
    partition that holds it.

    Raises:
        UsageError: several flows' ids start with it (some of them named).
    """
    found, partitions = tables.locate(
        "flows",
        ["flow_n", "id"],
        Where(test=lambda rows: pc.starts_with(rows["id"], pattern=prefix), needs=("id",)),
    )
    if found.num_rows > 1:
        ids = found["id"].to_pylist()
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5:,} more" if len(ids) > 5 else "")
        raise UsageError(
            f"flow id {prefix!r} is ambiguous: {len(ids):,} flows start with it ({shown}); "
            "give more of it"
        )
    return _sorted(found["flow_n"]), partitions


def load_journey(store: Store, flow_id: str, packet: int | None = None) -> Journey:
    """The journey of flow ``flow_id`` (as ``logpath flows`` named it) from the store.

    Reads the connection's row and its hops' rows (one row group of the trace, found by the
    statistics of ``flow_n``): nothing is derived again.

    Raises:
        NotFoundError: no such flow, or no such packet in it.
    """
    tables = assembled(store)
    # the id's number first, from two columns; then its row and its hops, from the one row
    # group of each table the statistics of the sorted ``flow_n`` leave
    numbers, partitions = _flow_numbers(tables, [flow_id] if flow_id else [])
    if not len(numbers) and flow_id:
        numbers, partitions = _numbers_by_prefix(tables, flow_id)
    if not len(numbers):
        raise NotFoundError(f"no flow {flow_id!r} in the store (see `logpath flows`)")
    (flow,) = flows_from_table(tables.read("flows", where=_numbered(numbers, partitions)))
    traced = tables.read("trace", where=_numbered(numbers, partitions))
    (journey,) = journeys_from_rows(python_rows(traced), [flow])
    return only_packet(journey, packet)


# What assembly found of each hop, which ``logpath hops`` shows beside the hop's own fields: a
# line can be followed to its connection's journey.
PLACE_COLUMNS = ["flow", "packet", "table", "chain", "hook"]
PLACE_SCHEMA = pa.schema(
    [("flow", pa.string()), ("packet", pa.int64()), ("table", pa.string()),
     ("chain", pa.string()), ("hook", pa.string())]
)  # fmt: skip


class HopPlaces:
    """Each stored hop's place (PLACE_COLUMNS), found by its file and line in the trace table.

    The trace is sorted by connection, the hop parts by file and line: a lookup per file, from
    line number to trace row (an array as long as the file), joins them batch by batch, so that
    ``hops --json`` still streams (the trace's five columns are held, not its hops).
    """

    def __init__(self, store: Store) -> None:
        import numpy as np

        rows = assembled(store).read("trace", ["source", "lineno", *PLACE_COLUMNS])
        self._places = rows.select(PLACE_COLUMNS).combine_chunks()
        encoded = pc.dictionary_encode(rows["source"]).combine_chunks()
        self._sources = encoded.dictionary
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        lines = rows["lineno"].to_numpy()
        self._rows: list[np.ndarray] = []
        for code in range(len(self._sources)):
            mine = np.flatnonzero(codes == code)
            lookup = np.full(int(lines[mine].max()) + 1 if len(mine) else 0, -1, np.int64)
            lookup[lines[mine]] = mine
            self._rows.append(lookup)

    def beside(self, hops: pa.Table) -> pa.Table:
        """``hops`` (with their ``source`` and ``lineno``) and their places, null where the
        trace has none (a hop ingested after the tables were assembled cannot be: a question
        assembles first)."""
        import numpy as np

        codes = pc.index_in(hops["source"], value_set=self._sources).to_numpy(zero_copy_only=False)
        lines = hops["lineno"].to_numpy()
        found = np.full(len(lines), -1, np.int64)
        for code, lookup in enumerate(self._rows):
            mine = (codes == code) & (lines < len(lookup))
            found[mine] = lookup[lines[mine]]
        taken = self._places.take(pa.array(np.where(found < 0, 0, found)))
        missing = pa.array(found < 0)
        for name in PLACE_COLUMNS:
            column = pc.if_else(missing, pa.nulls(len(found), PLACE_SCHEMA.field(name).type),
                                taken[name])  # fmt: skip
            hops = hops.append_column(PLACE_SCHEMA.field(name), column)
        return hops
