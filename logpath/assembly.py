"""Assembly: the hops of a store made into packets and connections once, when they are ingested.

Every stage after parsing runs here, in one pass, and its results are stored beside the hops
(``Store`` ``assembled/``): a flows table (one row per connection: tuples, NAT, state, counts,
time span) and a trace table (every hop with its hook, packet, connection, NAT mark, bridge
role and its packet's fate), sorted by connection. Commands read them (``logpath.query``); they
derive nothing.

Connections are local in time, so the hops are assembled in chunks, in time order: after each
chunk the connections that cannot grow any more (their last hop is older than the longest idle
timeout before the chunk's end) are kept, and the hops of the others are carried into the next
chunk. Time and memory grow with the chunk, not with the store. What the chunks share is
learned from the whole store first: the hosts' clocks. (The bridges' MACs are learned from each
chunk's hops: a chunk holds enough of them.)

The stored tables are a cache of the hops: ``assemble`` on the same hops gives the same tables
(``tests/test_assembly.py`` re-assembles a store from scratch and compares). They depend also on
the ruleset kept at ingest, on the prefix conventions in force and on this module's version
(``logpath.provenance``); a store whose tables depend on anything else is assembled again when read.

An ingest that only adds hops re-assembles only what they can touch (``assemble_added``): the
same argument as the chunks', with the new hops' earliest time in place of a chunk's end. The
stored connections that ended SETTLED_AFTER before it stay as they are; the others' hops are
taken back from the trace table and assembled with the new ones. Connections and packets are
numbered by time (``Kept.numbered``), so the tables are those of one assembly of every hop; the
stored connections that start before every one assembled again keep their rows as read, numbers
and files and all (``_settled_head``), and only those after them are numbered again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from logpath.bridge import READ_COLUMNS, TIMES, BridgeFacts, assign_roles, decided_bridges
from logpath.clocks import (
    CLOCK_COLUMNS,
    FINE_CLOCK_SLACK,
    BootCounts,
    Clocks,
    LinkCounts,
    boot_counts,
    clocks_counted,
    host_codes,
    host_groups_of,
    learn_clocks,
    link_counts,
    one_clock,
)
from logpath.fates import packet_fates
from logpath.flows import (
    DEFAULT_IDLE_TIMEOUT,
    IDLE_TIMEOUT,
    NODE_COLUMNS,
    assign_flows,
    distinct_ids,
    linked_by_tuples,
    tuple_node_codes,
    tuple_nodes,
)
from logpath.hooks import resolve_hooks
from logpath.hops import HOP_SCHEMA
from logpath.nat import applied_nat
from logpath.packets import (
    IDENTITY_COLUMNS,
    MAX_HOP_GAP,
    group_packets,
    identity_keys,
    refine_guessed_hooks,
)
from logpath.provenance import Provenance
from logpath.rowgroups import Where, one_dictionary
from logpath.rules import Ruleset
from logpath.runtime import (
    give_back_memory,
    handover,
    mapped,
    nulls_on,
    stop_deferred,
    streamed,
    taken,
    without_cyclic_gc,
    zeros_for,
)
from logpath.store import ASSEMBLED, Manifest, Store, StoreWriter, to_frame
from logpath.summaries import FLOW_COLUMNS, FLOW_SCHEMA, Summary, summarise

# Hops assembled at a time. 200,000 hops take ~1 GB while traced; fewer chunks cost the hops
# carried from one chunk into the next.
CHUNK_HOPS = 200_000
# A connection whose last hop is this much older than the newest hop read can grow no more:
# a later packet of its tuple would start a new connection (flows.IDLE_TIMEOUT), and a later
# hop cannot join one of its packets (packets.MAX_HOP_GAP).
SETTLED_AFTER = max(DEFAULT_IDLE_TIMEOUT, *IDLE_TIMEOUT.values()) + 4 * MAX_HOP_GAP
# A stored connection none of whose hops is within this of the new hops' earliest has no
# packet a new hop can join (packets.MAX_HOP_GAP, with the carry's margin): only its tuple can
# reach it (``_unreached``).
PACKET_REACH = 4 * MAX_HOP_GAP
# The hop columns the bridges' facts are learned from (``learned_bridges``)
BRIDGE_COLUMNS = [*READ_COLUMNS, "dst"]

# What the stages read of each hop: only these go through pandas. The trace's hop columns are
# taken from the Arrow table as they are (converting ~80 columns to pandas and back cost most
# of the assembly's time and memory).
PIPELINE_COLUMNS = ["source", "lineno", "host", "ts", "uptime", "kind", "prefix", "in_iface",
                    "out_iface", "physin", "physout", "macdst", "macsrc", "family", "src", "dst",
                    "len", "ttl", "id", "proto", "sport", "dport", "seq", "ack", "window", "flags",
                    "icmp_type", "icmp_code", "icmp_id", "icmp_seq", "inner_src", "inner_dst",
                    "inner_proto", "inner_sport", "inner_dport", "inner_icmp_id", "arp_opcode",
                    "arp_ipsrc", "arp_ipdst", "trace_table", "trace_chain", "trace_type",
                    "trace_rulenum", "trace_id", "trace_family", "trace_verdict", "trace_rule",
                    "trace_handle", "trace_from"]  # fmt: skip

# Rows per Parquet row group of the assembled tables: a journey reads one group of the trace.
ROW_GROUP_ROWS = 65_536
# The share of the hops (in time) an ingest assembles itself when a worker takes the rest: the
# two parts run side by side, the seam and the numbering after both (on the 2M-line replay, at
# 0.42 this process waited 3 s for the worker; per hop, both parts cost the same).
EARLIER_SHARE = 0.5
# A fleet's windows (``logpath.fleet``) span at least this many SETTLED_AFTER: the connections
# starting within one SETTLED_AFTER of a window's start are assembled twice (on the 36 minutes
# of the 200,000-line replay, with 20,000-hop chunks, two processes took twice as long as one).
# An ingest's two parts assemble again only the connections the seam's open ones reach
# (``_assemble_in_two``), however short their time.
SEAM_SHARE = 4

# What assembly adds to each hop (the hop's own columns come first, all but ``raw``).
TRACE_ADDED = pa.schema(
    [
        ("table", pa.string()),  # netfilter table, chain, hook and how the hook was found
        ("chain", pa.string()),
        ("hook", pa.string()),
        ("evidence", pa.string()),
        ("flow_n", pa.int64()),  # the connection's row in the flows table
        ("flow", pa.string()),
        ("packet", pa.int64()),  # unique in the store, in time order within a connection
        ("leg", pa.int64()),  # 0 on the first host of the packet's journey, 1 on the next...
        ("hop_n", pa.int64()),  # position in the packet's journey
        ("direction", pa.string()),  # orig or reply
        ("orig_key", pa.string()),  # the connection's tuples (records.key_tuple)
        ("reply_key", pa.string()),
        ("related", pa.bool_()),  # an ICMP error quoting a packet of the connection
        ("translated", pa.bool_()),  # shows NAT-translated addresses
        ("nat_mark", pa.string()),  # what NAT changed since the packet's previous hop
        ("applied_nat", pa.string()),  # where SNAT or de-DNAT is applied (after this hop)
        ("role", pa.string()),  # on a bridge: "bridge" or "nic"
        ("role_switch", pa.bool_()),
        ("fate", pa.string()),  # the packet's fate (fates.packet_fates), on each of its hops
        ("stopped_at", pa.string()),
        ("verdict", pa.string()),  # JSON: the rule that decided the fate (with a ruleset)
        ("rule", pa.string()),  # the rule a TRACE line names, as the ruleset writes it
    ]
)
TRACE_SCHEMA = pa.schema([f for f in HOP_SCHEMA if f.name != "raw"] + list(TRACE_ADDED))

# What the trace shows of a hop's connection, the same on each of its hops: held once per
# connection (its ``id`` as the trace's ``flow``), not per hop, until a file's rows are built.
# Per hop they were ~110 MiB of the 2M-line replay's 1.2M hops, at each of the ingest's three
# moments near its peak (and twice in the numbering's sort).
CONNECTION_TEXTS = {"flow": "id", "orig_key": "orig_key", "reply_key": "reply_key"}
KEY_COLUMNS = ["orig_key", "reply_key"]
# What assembly found of each hop but its connection's texts: a found table's columns (with
# ``assembly_row``, and ``flow_n`` the hop's connection's row in its table of connections).
# Its texts of a few values each (a hook, a fate...) are held as dictionaries of 16-bit codes
# and written as the trace's texts (``TraceRows._built``): as texts they were 76 of the 145 MiB
# the 2M-line replay's 1.2M hops found, held from the chunks' end to the last file written.
FEW_VALUES = pa.dictionary(pa.int16(), pa.string())
FOUND_FEW = {
    "table", "chain", "hook", "evidence", "direction", "nat_mark", "applied_nat", "role", "fate",
    "stopped_at",
}  # fmt: skip
FOUND = pa.schema(
    [
        f.with_type(FEW_VALUES) if f.name in FOUND_FEW else f
        for f in TRACE_ADDED
        if f.name not in CONNECTION_TEXTS
    ]
)


@dataclass(frozen=True)
class TraceRows:
    """The trace table before it is built: what assembly found of each hop (FOUND, with
    ``assembly_row``), in the trace's order, beside the hops whose own columns each row takes
    and the connections (``connections``: ``id`` and KEY_COLUMNS, row i connection
    ``first`` + i) whose texts each row takes by its ``flow_n``.

    Built whole, the trace is a second copy of every hop's columns beside ``hops``, at the
    peak of an ingest's assembly. The store writes it a file at a time (``slice``, ``take``),
    each file's rows built, written and let go: the 2M-line replay's ingest peaked at 1,829 MiB
    instead of 2,238 (farm-bench, 3 pairs), for the same CPU (1.004x). A file's rows are
    gathered from the chunks as they are (``runtime.taken`` first makes each column one array:
    for every file, a copy of every column, 3% more CPU)."""

    found: pa.Table
    hops: pa.Table
    connections: pa.Table
    first: int = 0
    """The flow_n of the first row of ``connections``."""
    head: pa.Table | None = None
    """Built rows (TRACE_SCHEMA) before those: a store's connections kept as they were read
    (``_after_head``)."""

    @property
    def num_rows(self) -> int:
        return self._headed + int(self.found.num_rows)

    @property
    def _headed(self) -> int:
        return int(self.head.num_rows) if self.head is not None else 0

    def __getitem__(self, name: str) -> pa.ChunkedArray:
        """A column of what assembly found (``flow_n``, ``packet``...), not a hop's own."""
        found = (
            self._connection_texts(self.found)[name]
            if name in CONNECTION_TEXTS
            else self.found[name].cast(TRACE_SCHEMA.field(name).type)
        )
        if self.head is None:
            return found
        return pa.chunked_array([*self.head[name].chunks, *found.chunks], found.type)

    @property
    def schema(self) -> pa.Schema:
        return TRACE_SCHEMA

    def slice(
        self, offset: int = 0, length: int | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        """These rows of the trace, built (only ``columns`` of them, in the trace's order,
        when given)."""
        columns = _in_trace_order(columns)
        end = self.num_rows if length is None else min(offset + length, self.num_rows)
        headed = self._headed
        parts = []
        if self.head is not None and offset < headed:
            head = self.head if columns is None else self.head.select(columns)
            parts.append(head.slice(offset, min(end, headed) - offset))
        if end > headed or not parts:
            start = max(offset, headed)
            found = self.found.slice(start - headed, max(end - start, 0))
            parts.append(self._built(found, columns))
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def take(self, rows: pa.Array | np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """These rows of the trace, built (only ``columns`` of them, in the trace's order,
        when given)."""
        columns = _in_trace_order(columns)
        rows = np.asarray(rows, dtype=np.int64)
        headed = self._headed
        if self.head is None or not len(rows):
            return self._built(self.found.take(pa.array(rows)), columns)
        early = rows < headed
        head = self.head if columns is None else self.head.select(columns)
        both = pa.concat_tables(
            [
                head.take(pa.array(rows[early])),
                self._built(self.found.take(pa.array(rows[~early] - headed)), columns),
            ]
        )
        if (np.diff(early.astype(np.int8)) <= 0).all():
            return both  # the head's rows first (as a file's are), or rows of one side only
        places = np.r_[np.flatnonzero(early), np.flatnonzero(~early)]
        return both.take(pa.array(np.argsort(places, kind="stable")))

    def table(self) -> pa.Table:
        built = self._built(self.found)
        return built if self.head is None else pa.concat_tables([self.head, built])

    def renumbered(self, connections: int, packets: int) -> TraceRows:
        head = _renumbered(self.head, connections, packets) if self.head is not None else None
        found = _renumbered(self.found, connections, packets)
        return replace(self, found=found, first=self.first + connections, head=head)

    def after(self, head: pa.Table) -> TraceRows:
        """These rows after ``head`` (the rows before, built: TRACE_SCHEMA)."""
        assert self.head is None
        return replace(self, head=head)

    def _connection_texts(self, found: pa.Table) -> dict[str, pa.ChunkedArray]:
        """Per row of ``found``, its connection's CONNECTION_TEXTS (null for a hop of none)."""
        at = pc.subtract(found["flow_n"], pa.scalar(self.first, pa.int64()))
        # a file's rows are sorted by connection: the take reads ``connections`` in order
        theirs = _gathered(self.connections, at)
        return {name: theirs[column] for name, column in CONNECTION_TEXTS.items()}

    @functools.cached_property
    def _shown(self) -> pa.Table:
        """The hops' columns that are not null on every row. The others (35 of the 2M-line
        replay's 84, 205 of its 518 MiB: TRACE, ARP, ICMP quotes...) are not taken for each
        file's rows: a column of nulls on a buffer of zeros stands for each."""
        names = self.hops.column_names
        return self.hops.select(
            [name for name in names if self.hops[name].null_count < self.hops.num_rows]
        )

    def _built(self, found: pa.Table, columns: list[str] | None = None) -> pa.Table:
        """These rows of the trace (TRACE_SCHEMA, or only its ``columns``, given in its
        order: ``_in_trace_order``): each hop's own columns beside ``found``."""
        schema = TRACE_SCHEMA
        if columns is not None:
            schema = pa.schema([TRACE_SCHEMA.field(name) for name in columns])
        rows = found["assembly_row"]
        wanted = set(schema.names)
        shown = [name for name in self._shown.column_names if name in wanted]
        own = _gathered(self._shown.select(shown), rows)
        added = {name: found[name] for name in FOUND.names if name in wanted}
        if wanted & CONNECTION_TEXTS.keys():
            added.update(self._connection_texts(found))
        taken_own = set(own.column_names)  # (column_names builds a list at each call)
        zeros = zeros_for(len(rows))
        built = [
            own[field.name]
            if field.name in taken_own
            else added[field.name]
            if field.name in added
            else nulls_on(zeros, field.type, len(rows))
            for field in schema
        ]
        return pa.Table.from_arrays(
            [c.cast(f.type) for c, f in zip(built, schema, strict=True)], schema=schema
        )


def _in_trace_order(columns: list[str] | None) -> list[str] | None:
    """These columns of the trace (None: all), in TRACE_SCHEMA's order."""
    if columns is None:
        return None
    asked = set(columns)
    return [name for name in TRACE_SCHEMA.names if name in asked]


# Rows gathered at once from fewer than 1/PART_OF_HOPS of a table's rows are gathered from its
# chunks as they are, more through ``runtime.taken`` (``_gathered``)
PART_OF_HOPS = 4


def _gathered(table: pa.Table, rows: pa.ChunkedArray | pa.Array) -> pa.Table:
    """``table.take(rows)`` (nulls in ``rows`` give null rows), from the run of ``table``'s
    rows between the least and the greatest of ``rows``.

    A trace file's rows are a slice of time's connections: their hops lie within a sixth of
    the 2M-line replay's 1.2M (each file's middle 98% within 1.05-1.25x its own count). Arrow's
    take on a column of many chunks first makes the whole column one array: each file copied
    every hop column whole, and ``malloc`` kept the copies' pages (the ingest's peak)."""
    least, greatest = pc.min_max(rows).values()
    if least.is_valid and (least.as_py() > 0 or greatest.as_py() < table.num_rows - 1):
        low = least.as_py()
        table = table.slice(low, greatest.as_py() + 1 - low)
        rows = pc.subtract(rows, pa.scalar(low, rows.type))
    if len(rows) * PART_OF_HOPS < table.num_rows:
        return table.take(rows)
    return taken(table, rows)


class Assembled:
    """The assembled tables of a store, and the clocks they were built on."""

    def __init__(
        self,
        flows: pa.Table,
        trace: pa.Table | TraceRows,
        clocks: Clocks,
        kept: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.flows = flows
        """One row per connection (FLOW_SCHEMA), in order of first appearance."""
        self.trace_rows = trace
        """The trace, built (a table) or not yet (``TraceRows``): what a writer takes."""
        self.clocks = clocks
        """The hosts' clocks learned from the hops."""
        self.kept = kept
        """The manifest's entries of the files that hold the first connections, kept as
        stored (``assemble_added``): ``flows`` and ``trace`` are then the rows after them."""

    @property
    def trace(self) -> pa.Table:
        """Every hop with what assembly found (TRACE_SCHEMA), sorted by flow_n, packet,
        hop_n (built on first use: see ``TraceRows``)."""
        if isinstance(self.trace_rows, TraceRows):
            self.trace_rows = self.trace_rows.table()
        return self.trace_rows


def assemble_store(
    store: Store,
    writer: StoreWriter | None = None,
    executor: Executor | None = None,
    *,
    from_scratch: Callable[[pa.Table, Ruleset | None], Assembled] | None = None,
) -> Assembled:
    """Assemble every hop of ``store`` (and of ``writer``'s run, if given); with a writer, the
    tables are written for its commit; with an ``executor``, on two cores (``assemble``);
    ``from_scratch`` assembles all hops otherwise (``fleet``: in windows on a cluster).

    When the hops only grew since the stored tables were built (same version, ruleset,
    conventions and clocks), only what the new hops can touch is assembled again
    (``assemble_added``); otherwise everything is, from scratch.
    """
    manifest = writer.manifest if writer else store.require()
    parts = writer.hop_parts() if writer else manifest.parts
    provenance = Provenance.now(parts, manifest.ruleset)
    ruleset = kept_ruleset(manifest.ruleset)
    read = writer.read_parts if writer else store.read_parts
    with without_cyclic_gc():
        assembled = assemble_added(
            store,
            manifest.assembly,
            provenance,
            ruleset,
            read=read,
            keep_files=writer is not None,
            executor=executor,
            chunk_hops=CHUNK_HOPS,
        )
        if assembled is None:
            hops = read(parts, HOP_COLUMNS)
            if from_scratch is not None:
                assembled = from_scratch(hops, ruleset)
            else:
                assembled = assemble(hops, ruleset, executor=executor, chunk_hops=CHUNK_HOPS)
    if writer is not None:
        give_back_memory()  # what the assembly let go of, before the tables' rows are built
        # the clocks are kept with it: questions put hops on them without learning again
        kept = {**asdict(provenance), "clocks": assembled.clocks.to_json()}
        tables = {"flows": assembled.flows, "trace": assembled.trace_rows}
        writer.add_assembled(
            tables,
            kept,
            ROW_GROUP_ROWS,
            assembled.clocks.links,
            kept=assembled.kept,
            notes=_clock_notes(assembled.clocks),
            noted=CLOCK_COLUMNS,
        )
    return assembled


# What a trace file's footer keeps of its hops, from which the clocks are learned again
# without reading the file (``_learned_again``): their ``clocks.boot_counts``, and the
# ``clocks.link_counts`` of the packets its hosts shared (with the boot times they were taken
# with: the clocks the file was assembled on; no pairs when it holds one host's hops).
BOOT_COUNTS_NOTE = b"logpath.boot_counts"
LINK_COUNTS_NOTE = b"logpath.link_counts"


def _clock_notes(clocks: Clocks) -> Callable[[pa.Table], dict[bytes, bytes]]:
    """The notes of a trace file of an assembly on ``clocks``."""

    def notes(trace: pa.Table) -> dict[bytes, bytes]:
        lines = to_frame(trace.select(["host", "ts", "uptime"]))
        counted = boot_counts(lines)
        boots = {host: [list(bins), list(bins.values())] for host, bins in counted.items()}
        shared = LinkCounts(clocks.boot, {})
        if len(host_codes(lines["host"])[1]) > 1:
            shared = link_counts(to_frame(trace.select(CLOCK_COLUMNS)), clocks.boot)
        return {
            BOOT_COUNTS_NOTE: json.dumps(boots, separators=(",", ":")).encode(),
            LINK_COUNTS_NOTE: json.dumps(shared.to_json(), separators=(",", ":")).encode(),
        }

    return notes


def _kept_counts(
    store: Store, entries: list[dict[str, Any]]
) -> tuple[list[BootCounts] | None, list[LinkCounts] | None]:
    """The ``boot_counts`` and ``link_counts`` of the hops of these trace files, from their
    footers (None: a file written before they were kept)."""
    notes = store.assembled_notes(entries, BOOT_COUNTS_NOTE)
    if notes is None:
        return None, None
    counted: list[BootCounts] = []
    for note in notes:
        hosts = json.loads(note)
        counted.append({h: dict(zip(ms, n, strict=True)) for h, (ms, n) in hosts.items()})
    links = store.assembled_notes(entries, LINK_COUNTS_NOTE)
    if links is None:
        return counted, None
    return counted, [LinkCounts.from_json(json.loads(note)) for note in links]


def assembled_apart(location: str, manifest: str, run: str) -> dict[str, Any]:
    """``assemble_store`` of the store at ``location`` as ``manifest`` (its ``dump``) names it,
    in another process than its writer's (``logpath follow``'s worker): the tables' files
    written under ``assembled/`` as run ``run``'s, and the manifest's ``assembly`` returned, for
    the writer to name them at a later commit (``StoreWriter.take_assembly``).

    The writer holds the store's lock and commits meanwhile; it adds parts after these, and
    changes neither these parts nor the stored tables this assembly starts from."""
    store = Store(location)
    writer = StoreWriter(store, Manifest.loads(manifest), run)
    assemble_store(store, writer)
    assert writer.manifest.assembly is not None
    return writer.manifest.assembly


# The bridges' facts (``logpath.bridge.learn_bridges``): per (host, bridge), what it is.
Bridges = dict[tuple[str | None, str], BridgeFacts]

# A hop's own columns: what the hop parts hold but ``raw`` (the trace table holds these too).
HOP_COLUMNS = [c for c in HOP_SCHEMA.names if c != "raw"]
_HOP_COLUMNS_SCHEMA = pa.schema([HOP_SCHEMA.field(c) for c in HOP_COLUMNS])

# How far clocks learned again (over the stored hops and the new ones) may be from the stored
# clocks for the stored connections to stand. Every new line moves its host's boot time (a median
# of stamp - uptime over its lines): by 50 ms when 164 lab lines join 156, by microseconds on a
# large store. Were they required equal, every ingest would assemble from scratch. The stored
# tables keep the clocks they were built on, and new hops are assembled on those, as long as
#  - every host's lines move together by at most BOOT_DRIFT: the stages compare one host's
#    lines with each other, and its fine time (boot + uptime) with its whole-second stamp
#    (within FINE_CLOCK_SLACK, 1.5 s, where a line's fine time lies 0-1 s after its stamp);
#  - hosts move against each other by at most PLACEMENT_DRIFT: packets are joined across
#    hosts, and their hops ordered, by time on the one clock.
# Beyond either, everything is assembled again, on the clocks learned again.
BOOT_DRIFT = 0.1
PLACEMENT_DRIFT = 0.001


def assemble_added(
    store: Store,
    stored: dict[str, Any] | None,
    provenance: Provenance,
    ruleset: Ruleset | None,
    *,
    chunk_hops: int = CHUNK_HOPS,
    read: Callable[[list[str], list[str]], pa.Table] | None = None,
    keep_files: bool = False,
    executor: Executor | None = None,
) -> Assembled | None:
    """The stored tables with what hops added since can touch assembled again, or None when
    they must be assembled from scratch (``read`` reads hop parts: a run's writer holds its
    own); with ``keep_files``, the files of the settled slices are not read: the tables are
    the rows after them, and ``Assembled.kept`` names those files (``_settled_files``); with an
    ``executor``, what is assembled again is, on two cores, when it makes two chunks or more
    (an ingest's stages, ``ingest.STAGE_HOPS``).

    The stored tables stand when they were built by this version, under the same ruleset and
    conventions, from parts that are all still there (the first of ``provenance.parts``), and
    when the clocks learned again from every hop agree with theirs (``BOOT_DRIFT``,
    ``PLACEMENT_DRIFT``). Every hop must have its wall-clock time (without it, a hop cannot be
    placed in time), and the trace must hold every stored hop.

    A stored connection whose last hop is older than the new hops' earliest by SETTLED_AFTER
    (on the one clock) cannot be joined by any of them: the argument by which a chunk settles
    its connections (``assemble``). It is kept as stored, with its id, hops and packets. The
    hops of every other stored connection are taken back from the trace table (it holds each
    hop's own columns) and assembled again with the new hops; the tables are then numbered as
    one assembly of every hop numbers them (``Kept.numbered``).
    """
    if not stored or any(
        stored.get(name) != getattr(provenance, name)
        for name in ("version", "ruleset", "conventions")
    ):
        return None
    before = list(stored.get("parts") or [])
    added = provenance.parts[len(before) :]
    if provenance.parts[: len(before)] != before or not added or not stored.get("clocks"):
        return None
    new = (read or store.read_parts)(added, HOP_COLUMNS)
    if new.num_rows == 0:
        return None
    clocks = Clocks.from_json(stored["clocks"])
    settled = _settled_files(store, stored, clocks, new) if keep_files else None
    if settled is None:
        trace, flows = (_stored_table(store, stored, kind) for kind in ("trace", "flows"))
    else:
        trace, flows = (
            store.assembled_files(settled.read[kind]).read() for kind in ("trace", "flows")
        )
    if trace.num_rows + (settled.hops if settled else 0) != store.count_parts(before):
        return None  # the trace is not every stored hop: it cannot stand for them
    hops = pa.concat_tables(
        [trace.select(HOP_COLUMNS).cast(_HOP_COLUMNS_SCHEMA), new.cast(_HOP_COLUMNS_SCHEMA)]
    )
    lines = to_frame(hops.select(["host", "ts", "uptime"]))
    if not _clocks_agree(_learned_again(store, settled, hops, lines, clocks), clocks):
        return None
    when = one_clock(lines, clocks)
    if np.isnan(when).any():
        return None
    if settled is not None:
        # every kept connection starts before every one read (numbered by first hop: only a
        # tie could break it), as ``_settled_head`` asks of the connections it keeps
        named = pc.is_valid(trace["flow_n"]).to_numpy(zero_copy_only=False)
        if not named.any() or not settled.last_start < when[: trace.num_rows][named].min():
            return None
        assembled = _assembled_tail(
            settled.numbered_from_zero(trace), settled.numbered_from_zero(flows),
            hops, new, when, ruleset, clocks, chunk_hops, executor,
        )  # fmt: skip
        return settled.after_kept(assembled) if assembled is not None else None
    return _assembled_tail(trace, flows, hops, new, when, ruleset, clocks, chunk_hops, executor)


@dataclass(frozen=True)
class _SettledFiles:
    """The files of a store's first slices, whose connections no new hop can join (by time,
    the argument of ``assemble_added``), left unread and kept as they are."""

    kept: dict[str, list[dict[str, Any]]]
    """The manifest's entries of the files kept, per table."""
    read: dict[str, list[dict[str, Any]]]
    """... and of the files read."""
    flows: int
    """The connections of the kept files: flow_n 0 to flows - 1."""
    hops: int
    """Their hops."""
    packets: int
    """Their packets: numbered 0 to packets - 1."""
    last_start: float
    """When the last of them (flow_n flows - 1) starts, on the one clock."""

    def numbered_from_zero(self, table: pa.Table) -> pa.Table:
        """The rows read, their connections (and packets) numbered as if they were all."""
        return _renumbered(table, -self.flows, -self.packets)

    def after_kept(self, assembled: Assembled) -> Assembled:
        """The tables assembled from the rows read, numbered after the kept files'."""
        flows = _renumbered(assembled.flows, self.flows, 0)
        trace = _renumbered_trace(assembled.trace_rows, self.flows, self.packets)
        return Assembled(flows, trace, assembled.clocks, self.kept)


def _renumbered(table: pa.Table, connections: int, packets: int) -> pa.Table:
    """``table`` with ``connections`` added to its flow_n, and ``packets`` to its packet."""
    for name, by in (("flow_n", connections), ("packet", packets)):
        if name in table.column_names and by:
            at = table.schema.get_field_index(name)
            table = table.set_column(at, name, pc.add(table[name], by).cast(pa.int64()))
    return table


def _renumbered_trace(
    rows: pa.Table | TraceRows, connections: int, packets: int
) -> pa.Table | TraceRows:
    """``_renumbered`` of a trace, built or not (``TraceRows``)."""
    if isinstance(rows, TraceRows):
        return rows.renumbered(connections, packets)
    return _renumbered(rows, connections, packets)


def _settled_files(
    store: Store, stored: dict[str, Any], clocks: Clocks, new: pa.Table
) -> _SettledFiles | None:
    """The first slices of the stored tables' files (``store.SLICE_SECONDS``) whose
    connections all ended SETTLED_AFTER before the ``new`` hops' earliest (by the files'
    entries: their ``last_seen``, a host's stamp, within FINE_CLOCK_SLACK and the hosts'
    offsets of the one clock), never the last slice; None when there are none, or the entries
    do not show the kept files to hold the first connections, numbered from 0.

    An assembly that adds hops read every stored connection: ~1 s a million hops to read,
    and as much to number, write and compare again, every 5 minutes of a follow that never
    pauses, the store growing all the while."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for kind in ASSEMBLED:
        listed = stored.get(kind)
        if not isinstance(listed, list) or not listed:
            return None  # one file named (a store written before the entries)
        entries[kind] = listed
    when = one_clock(to_frame(new.select(["host", "ts", "uptime"])), clocks)
    if np.isnan(when).any():
        return None
    offsets = [abs(ahead) for ahead in clocks.ahead.values()]
    limit = float(when.min()) - SETTLED_AFTER - 2 * FINE_CLOCK_SLACK - max(offsets, default=0.0)
    slices = sorted({int(entry["slice"]) for entry in entries["flows"]})
    kept_slices: set[int] = set()
    for slice_ in slices[:-1]:
        ends = [e["ranges"]["last_seen"][1] for e in entries["flows"] if e["slice"] == slice_]
        if any(end is None or end / 1e6 >= limit for end in ends):
            break
        kept_slices.add(slice_)
    if not kept_slices:
        return None
    kept = {kind: [e for e in entries[kind] if e["slice"] in kept_slices] for kind in ASSEMBLED}
    read = {kind: [e for e in entries[kind] if e["slice"] not in kept_slices] for kind in ASSEMBLED}
    flows = sum(int(entry["rows"]) for entry in kept["flows"])
    kept_numbers = [entry["ranges"]["flow_n"] for kind in ASSEMBLED for entry in kept[kind]]
    read_numbers = [entry["ranges"]["flow_n"] for kind in ASSEMBLED for entry in read[kind]]
    if any(low is None or low < 0 or high >= flows for low, high in kept_numbers) or any(
        low is not None and low < flows for low, _ in read_numbers
    ):
        return None
    last = store.assembled_files(kept["trace"]).read(
        ["flow_n", "packet", "host", "ts", "uptime"],
        Where(
            ranges=(("flow_n", flows - 1, flows - 1),),
            test=lambda rows: pc.equal(rows["flow_n"], flows - 1),
            needs=("flow_n",),
        ),
    )
    if not last.num_rows:
        return None
    starts = one_clock(to_frame(last.select(["host", "ts", "uptime"])), clocks)
    return _SettledFiles(
        kept,
        read,
        flows,
        sum(int(entry["rows"]) for entry in kept["trace"]),
        int(pc.max(last["packet"]).as_py()) + 1,
        float(np.nanmin(starts)),
    )


def _learned_again(
    store: Store,
    settled: _SettledFiles | None,
    hops: pa.Table,
    lines: pd.DataFrame,
    stored: Clocks,
) -> Clocks:
    """The clocks learned again from every hop: ``hops`` (their ``lines``), and the hops of
    the files ``settled`` leaves unread: from what their footers counted (``_clock_notes``),
    else from the columns the clocks are learned from, read."""
    if settled is None:
        return learn_hop_clocks(hops, lines)
    hosts = set(stored.boot) | set(host_codes(lines["host"])[1])  # a line of no host: ""
    columns = [c for c in CLOCK_COLUMNS if c in hops.column_names]
    if len(hosts) == 1:  # no packets shared: the boot time is all there is to learn
        columns = ["host", "ts", "uptime"]
    counted, shared = _kept_counts(store, settled.kept["trace"])
    if counted is not None and (shared is not None or len(hosts) == 1):
        read = lines if len(hosts) == 1 else to_frame(hops.select(columns))
        return clocks_counted(counted, shared, read)
    kept = store.assembled_files(settled.kept["trace"]).read(columns)
    schema = pa.schema([_HOP_COLUMNS_SCHEMA.field(c) for c in columns])
    every = pa.concat_tables([kept.cast(schema), hops.select(columns).cast(schema)])
    return learn_hop_clocks(every, to_frame(every.select(["host", "ts", "uptime"])))


def _assembled_tail(
    trace: pa.Table,
    flows: pa.Table,
    hops: pa.Table,
    new: pa.Table,
    when: np.ndarray,
    ruleset: Ruleset | None,
    clocks: Clocks,
    chunk_hops: int,
    executor: Executor | None = None,
) -> Assembled | None:
    """``assemble_added`` of the stored ``trace`` and ``flows`` (numbered from 0), ``hops``
    their hop columns and the ``new`` hops after them, ``when`` their times."""
    spans = _stored_spans(trace, when[: trace.num_rows])
    if spans is None:
        return None
    first, last, rows_of = spans
    if not pc.equal(flows["flow_n"], pa.array(np.arange(flows.num_rows))).to_numpy().all() or (
        flows.num_rows != len(first)
    ):
        return None  # not the flows of this trace, row i connection i
    # the earliest a new hop could join a stored connection, with the carry's margin
    earliest = float(when[trace.num_rows :].min())
    standing_flows = last < earliest - SETTLED_AFTER
    # of the others, those too old for a new hop to join one of their packets, which no new
    # hop's tuple reaches, stand too, when the bridges' facts hold (``_unreached``)
    since = when[: trace.num_rows] - earliest
    unreached = _unreached(trace, rows_of, new, standing_flows, since)
    if unreached is not None:
        bridges = learned_bridges([_rows_of_flows(trace, rows_of, ~standing_flows)])
        if bridges is not None:
            assembled = _assembled_after(
                trace, flows, hops, when, spans, standing_flows | unreached, earliest,
                ruleset, clocks, chunk_hops, bridges, executor,
            )  # fmt: skip
            if assembled is not None:
                return assembled
    return _assembled_after(
        trace, flows, hops, when, spans, standing_flows, earliest, ruleset, clocks, chunk_hops,
        executor=executor,
    )  # fmt: skip


def _assembled_after(
    trace: pa.Table,
    flows: pa.Table,
    hops: pa.Table,
    when: np.ndarray,
    spans: tuple[np.ndarray, np.ndarray, np.ndarray],
    standing_flows: np.ndarray,
    earliest: float,
    ruleset: Ruleset | None,
    clocks: Clocks,
    chunk_hops: int,
    bridges: Bridges | None = None,
    executor: Executor | None = None,
) -> Assembled | None:
    """``assemble_added``'s tables, the stored connections at ``standing_flows`` kept as they
    are and the others' hops assembled again with the new ones (``hops`` after the trace's),
    on two cores with an ``executor`` (``_assembled_part``); by ``bridges`` when given, and
    then None when the bridges' facts learned from the stored connections left open and those
    assembled again differ from them."""
    first, last, rows_of = spans
    # a hop of no connection (none in the stores seen) stands or falls on its own time
    standing = np.r_[
        np.repeat(standing_flows, rows_of),
        when[rows_of.sum() : trace.num_rows] < earliest - SETTLED_AFTER,
    ]
    # the stored connections before the first one reached keep their rows, numbers and all
    head = _settled_head(first, standing_flows, earliest)
    head_rows = int(rows_of[:head].sum())
    head_packets = _packets_before(trace, head_rows)
    if head_packets is None:
        head, head_rows, head_packets = 0, 0, 0
    old = np.arange(trace.num_rows, dtype=np.int64)
    later = standing.copy()
    later[:head_rows] = False
    kept = Kept()
    kept.add_stored(
        trace.filter(pa.array(later)),
        old[later],
        flows.take(pa.array(np.flatnonzero(standing_flows[head:]) + head)),
        first[head:][standing_flows[head:]],
    )
    stored_parts = len(kept.traces)
    again = np.concatenate([old[~standing], np.arange(trace.num_rows, hops.num_rows)])
    again = again[np.argsort(when[again], kind="stable")]
    run = AssemblyRun.of(hops, when, clocks, ruleset, judges(hops, ruleset), chunk_hops, bridges)
    kept.extend(_assembled_part(hops, again, run, executor))
    if bridges is not None:
        # the connections left open (stored and kept, or assembled again) show the same facts
        # the stored ones showed: the new hops changed none
        kept_open = standing_flows & (last >= earliest - SETTLED_AFTER)
        traced = [_hooked(hops, found) for found in kept.traces[stored_parts:]]
        if learned_bridges([_rows_of_flows(trace, rows_of, kept_open), *traced]) != bridges:
            return None
    tail = kept.numbered(hops, clocks)
    return _after_head(flows.slice(0, head), trace.slice(0, head_rows), head_packets, tail)


def _settled_head(first: np.ndarray, standing: np.ndarray, earliest: float) -> int:
    """How many stored connections, from flow_n 0, are left as they are by an assembly of
    new hops (``earliest``: the earliest new hop's time): connections are numbered by their
    first hop's time (ties by id), and so are their packets after them, so those that stand
    and start before every connection assembled again (or a piece of one: none starts before
    the connection it came from) and before the new hops (a new connection starts with one:
    an older file read after a newer one starts before the stored ones) keep their numbers;
    the rest are numbered again.

    Reading all of the stored tables and numbering them whole made an ingest of 40,000 lines
    into a store of 863,000 hops take 7 s and 2.2 GB, ~1.1 s of it assembling the new hops.
    At least one stored connection is left to number, with the hops of no connection (which
    ``Kept.numbered`` keeps only beside a connection)."""
    if not len(first):
        return 0
    # (a stored connection with a hop after the earliest new one is assembled again today:
    # the head does not rest on it)
    reached = np.flatnonzero(~standing | (first >= earliest))
    most = min(int(reached[0]) if len(reached) else len(first), len(first) - 1)
    # k splits where every connection before k starts before every one from k on
    before = np.maximum.accumulate(first)
    after = np.minimum.accumulate(first[::-1])[::-1]
    splits = np.flatnonzero(before[:most] < after[1 : most + 1]) + 1
    return int(splits[-1]) if len(splits) else 0


def _unreached(
    trace: pa.Table,
    rows_of: np.ndarray,
    new: pa.Table,
    standing: np.ndarray,
    since: np.ndarray,
) -> np.ndarray | None:
    """Which stored connections not ``standing`` (settled by time) no new hop can join
    (``since``: per stored hop, seconds since the earliest new hop); None when none.

    A new hop joins a stored connection through what assembly links hops by (the argument of
    follow's window, ``logpath.window``): a packet of it, or its conntrack tuple on its host
    (``flows.tuple_nodes``, an ICMP error's quoted tuple and NAT-translated ones alike). A
    packet takes a hop only alike in what it keeps on its host, or in what pass 2 joins it to
    the next host by (``packets.identity_texts``), and within MAX_HOP_GAP of its hops: the
    connections with a hop near the new ones and alike to one are reached, and those with a
    hop logged after the earliest new one (an older file read after a newer one, a host's
    clock behind: rare, and every such connection is assembled again). So are those whose
    tuples the new hops show, and every open one sharing a tuple with a connection reached,
    until none is added (a tuple used again is split into connections by time: the whole
    chain is assembled again).

    On the 2M-line replay a run's new hops reach a few connections of the ten minutes before
    them (SETTLED_AFTER); assembling all of those again was most of the cost of a run that
    adds hops, and of follow's commits (it adds a few seconds of lines each time)."""
    open_flows = ~standing
    flow_n = np.repeat(np.arange(len(rows_of)), rows_of)
    since = since[: len(flow_n)]
    near = np.flatnonzero((since >= -PACKET_REACH) & (since < 0) & open_flows[flow_n])
    alike = alike_hops(trace, near, new)
    recent = np.zeros(len(rows_of), dtype=bool)
    recent[flow_n[near[alike]]] = True
    recent[flow_n[since >= 0]] = True
    if not (open_flows & ~recent).any():
        return None
    rows = np.flatnonzero(open_flows[flow_n])
    flow_n = flow_n[rows]
    read = [c for c in NODE_COLUMNS if c in trace.column_names]
    nodes = pc.dictionary_encode(
        pa.concat_arrays([tuple_nodes(trace.select(read).take(pa.array(rows))), tuple_nodes(new)])
    )
    codes = nodes.indices.to_numpy(zero_copy_only=False)
    shown = np.zeros(len(nodes.dictionary), dtype=bool)
    shown[codes[len(rows) :]] = True  # the new hops' tuples
    reached = linked_by_tuples(flow_n, codes[: len(rows)], recent & open_flows, shown)
    unreached = open_flows & ~reached
    return unreached if unreached.any() else None


def alike_hops(hops: pa.Table, rows: np.ndarray, later: pa.Table) -> np.ndarray:
    """Per hop of ``hops`` at ``rows``, whether one of the ``later`` hops is alike to it in
    what a packet keeps on its host, or in what pass 2 joins a packet to the next host by
    (``packets.identity_keys``): only such a later hop can join its packet."""
    read = [c for c in IDENTITY_COLUMNS if c in hops.column_names]
    (local, cross), (later_local, later_cross) = identity_keys(
        hops.select(read).take(pa.array(rows, pa.int64())), later
    )
    alike: np.ndarray = np.isin(local, later_local) | np.isin(cross, later_cross)
    return alike


class _ChunkReach:
    """Which of a chunk's open connections the hops after it can join (``trace_in_chunks``).

    A connection whose last hop is within SETTLED_AFTER of a chunk's end may still grow, but
    only through what assembly links hops by (the argument of ``_unreached`` and of follow's
    window): a later hop alike to one of its hops within PACKET_REACH of the chunk's end (a
    packet of it going on), or a later hop showing a tuple one of its hops shows (a packet of
    it, a NAT-translated or ICMP-quoted one), and every open connection sharing a tuple with
    one reached (a tuple used again is split into connections by time). The others are kept
    at once. Carrying every open connection made a busy host's ingest trace each hop again in
    every chunk of the next ten minutes: 4.3M hops traced for 0.72M (the dense replay's two
    plans of a minute each, 20,000 lines/s).

    The hops' tuple nodes are numbered at each question, for the hops it asks about (those of
    the connections still growing at a chunk's end, and the hops of SETTLED_AFTER after it):
    numbered once for every hop, they were ~0.65 s of the 2M-line replay's ingest, in the
    process whose half of the assembly ends last, before its first chunk."""

    def __init__(self, hops: pa.Table, rows: np.ndarray, when: np.ndarray) -> None:
        self.hops, self.rows, self.times = hops, rows, when[rows]
        self.node_columns = hops.select([c for c in NODE_COLUMNS if c in hops.column_names])
        self.position = np.zeros(hops.num_rows, dtype=np.int64)
        self.position[rows] = np.arange(len(rows))

    def joinable(self, traced: pd.DataFrame, growing: set[str], end: int) -> set[str]:
        """Of the connections ``growing`` (their last hop within SETTLED_AFTER of the chunk's
        end), those the hops at ``rows[end:]`` can join: a packet of theirs going on near the
        chunk's end, or a tuple of theirs shown until none of them can be joined."""
        mine = _of_flows(traced, growing)
        hop_rows = traced["assembly_row"].to_numpy()[mine]
        newest = self.times[end - 1]
        near = np.flatnonzero(self.times[self.position[hop_rows]] >= newest - PACKET_REACH)
        packets = int(np.searchsorted(self.times, newest + PACKET_REACH, side="right"))
        tuples = int(np.searchsorted(self.times, newest + SETTLED_AFTER, side="right"))
        return self._reached(
            hop_rows, traced["flow"].to_numpy()[mine], near,
            self.rows[end:packets], self.rows[end:tuples],
        )  # fmt: skip

    def reached_after(self, open_rows: np.ndarray, kept: Kept, seam: float) -> set[str]:
        """The connections ``kept`` (assembled from the hops after ``seam`` alone) that
        the connections of the hops at ``open_rows`` (open at the seam) reach: one with a hop
        near the seam alike to one of theirs, or showing one of their tuples, and every one
        sharing a tuple with one reached."""
        if not len(open_rows) or not kept.traces:
            return set()
        trace = pa.concat_tables(
            [
                pa.table({"assembly_row": t["assembly_row"], "flow": kept.hop_flows(i)})
                for i, t in enumerate(kept.traces)
            ]
        )
        trace = trace.filter(pc.is_valid(trace["flow"]))  # (hops of no connection stay)
        hop_rows = trace["assembly_row"].to_numpy()
        near = np.flatnonzero(self.times[self.position[hop_rows]] < seam + PACKET_REACH)
        theirs = open_rows[self.times[self.position[open_rows]] >= seam - PACKET_REACH]
        flow = trace["flow"].to_numpy(zero_copy_only=False)
        return self._reached(hop_rows, flow, near, theirs, open_rows)

    def _reached(
        self,
        hop_rows: np.ndarray,
        flow: np.ndarray,
        near: np.ndarray,
        alike_to: np.ndarray,
        shown_by: np.ndarray,
    ) -> set[str]:
        """Of the connections of the hops at ``hop_rows`` (``flow``: each one's), those with a
        hop (at ``near`` of them) alike to a hop at ``alike_to``, or with a hop showing a tuple
        a hop at ``shown_by`` shows, and every one sharing a tuple with one of those."""
        connection, names = pd.factorize(flow)
        read = [c for c in IDENTITY_COLUMNS if c in self.hops.column_names]
        others = taken(self.hops.select(read), alike_to)
        recent = np.zeros(len(names), dtype=bool)
        recent[connection[near[alike_hops(self.hops, hop_rows[near], others)]]] = True
        # one numbering of the nodes of both: the same node, the same number
        codes, nodes = tuple_node_codes(
            taken(self.node_columns, np.concatenate([hop_rows, shown_by]))
        )
        node = codes[: len(hop_rows)]
        shown = np.zeros(nodes, dtype=bool)
        shown[codes[len(hop_rows) :]] = True
        reached = linked_by_tuples(connection, node, recent, shown)
        return set(names[reached].tolist())


def _rows_of_flows(trace: pa.Table, rows_of: np.ndarray, flows: np.ndarray) -> pa.Table:
    """The stored trace's rows of these connections (a mask by flow_n), the columns the
    bridges' facts are learned from."""
    mask = np.zeros(trace.num_rows, dtype=bool)
    mask[: int(rows_of.sum())] = np.repeat(flows, rows_of)
    read = [c for c in BRIDGE_COLUMNS if c in trace.column_names]
    return trace.select(read).filter(pa.array(mask))


def _hooked(hops: pa.Table, found: pa.Table) -> pa.Table:
    """The hops a chunk traced (``Kept.traces``: by ``assembly_row``) with the hook it found:
    what the bridges' facts are learned from."""
    wanted = [c for c in BRIDGE_COLUMNS if c in hops.column_names and c != "hook"]
    own = taken(hops.select(wanted), found["assembly_row"])
    return own.append_column("hook", found["hook"].cast(pa.string()))


def learned_bridges(tables: list[pa.Table]) -> Bridges | None:
    """The bridges' facts learned from these hops (with their hooks), None on a tie
    (``bridge.decided_bridges``)."""
    present = [t.select([c for c in BRIDGE_COLUMNS if c in t.column_names]) for t in tables]
    # the stored trace's rows and a chunk's traced hops each have their own dictionaries
    hops = one_dictionary(pa.concat_tables([t.cast(present[0].schema) for t in present]))
    # only the hops of a bridge are read: on no bridge, nothing to learn
    physin, physout = pc.is_valid(hops["physin"]), pc.is_valid(hops["physout"])
    names = pc.unique(
        pa.concat_arrays(
            [
                hops["in_iface"].filter(physin).combine_chunks().cast(pa.string()),
                hops["out_iface"].filter(physout).combine_chunks().cast(pa.string()),
            ]
        )
    )
    on_bridge = pc.or_(
        pc.or_(physin, physout), pc.is_in(hops["in_iface"].cast(pa.string()), value_set=names)
    )
    # each distinct row once, with the times it was seen: a busy window's ~100,000 hops on a
    # bridge are ~1,000 distinct rows of what the facts are learned from
    seen = hops.filter(on_bridge).group_by(hops.column_names, use_threads=False)
    counted = seen.aggregate([([], "count_all")])
    distinct = pa.table({**{c: counted[c] for c in hops.column_names}, TIMES: counted["count_all"]})
    return decided_bridges(to_frame(distinct))


def _packets_before(trace: pa.Table, rows: int) -> int | None:
    """How many packets the first ``rows`` of the stored trace hold, numbered 0, 1, 2... in
    its order (``Kept.numbered``); None when they are not so numbered."""
    if not rows:
        return 0
    packet = trace["packet"].slice(0, rows).to_numpy()
    steps = np.diff(packet)
    if packet[0] != 0 or ((steps != 0) & (steps != 1)).any():
        return None
    return int(packet[-1]) + 1


def _after_head(flows: pa.Table, trace: pa.Table, packets: int, tail: Assembled) -> Assembled:
    """The stored head (flows and trace rows as stored) and the tail numbered after it."""
    if not flows.num_rows:
        return tail
    head = trace.cast(TRACE_SCHEMA)
    after = _renumbered_trace(tail.trace_rows, len(flows), packets)
    # (not built: built a file at a time, as the tail's alone)
    after = after.after(head) if isinstance(after, TraceRows) else pa.concat_tables([head, after])
    return Assembled(
        pa.concat_tables([flows.cast(FLOW_SCHEMA), _renumbered(tail.flows, len(flows), 0)]),
        after,
        tail.clocks,
    )


def _stored_spans(
    trace: pa.Table, when: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Per stored connection (by flow_n), the times of its first and last hop, and its hops:
    the stored trace holds each connection's hops together, in flow_n order, and the hops of
    no connection last (``Kept.numbered``); None for a trace not in that order."""
    number = pc.fill_null(trace["flow_n"], -1).to_numpy()
    named = int((number >= 0).sum())
    ordered = number[:named]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if named else np.empty(0, int)
    # runs numbered 0, 1, 2...: each connection's hops together, in flow_n order
    if (number[named:] >= 0).any() or not np.array_equal(ordered[starts], np.arange(len(starts))):
        return None
    first = np.minimum.reduceat(when[:named], starts) if named else np.empty(0)
    last = np.maximum.reduceat(when[:named], starts) if named else np.empty(0)
    return first, last, np.diff(np.r_[starts, named])


def _stored_table(store: Store, stored: dict[str, Any], kind: str) -> pa.Table:
    """The assembled table ``kind`` that ``stored`` (a manifest's ``assembly``) names, whole
    and in its order: a writer's, which may name tables its commit will name (follow takes its
    worker's assembly and assembles on it in one commit), not the committed manifest's."""
    rows = store.assembled_rows(kind, stored)
    assert rows is not None
    return rows.read()


def _clocks_agree(learned: Clocks, stored: Clocks) -> bool:
    """The same hosts, linked as they were (packets join across the same pairs of hosts), each
    placed on the one clock (boot time less offset) where it was, give or take BOOT_DRIFT, and
    all of them moved by the same to within PLACEMENT_DRIFT."""
    if set(learned.boot) != set(stored.boot) or set(learned.ahead) != set(stored.ahead):
        return False
    if learned.links != stored.links:
        return False
    moved = [
        (learned.boot[h] - learned.ahead.get(h, 0.0)) - (stored.boot[h] - stored.ahead.get(h, 0.0))
        for h in learned.boot
    ]
    boots = [abs(learned.boot[h] - stored.boot[h]) for h in learned.boot]
    return max(boots, default=0.0) <= BOOT_DRIFT and (
        max(moved, default=0.0) - min(moved, default=0.0) <= PLACEMENT_DRIFT
    )


def kept_ruleset(kept: dict[str, Any] | str | None) -> Ruleset | None:
    """The ruleset a manifest keeps (``logpath ingest --rules``), if any."""
    if not kept:
        return None
    return Ruleset.from_json(kept if isinstance(kept, str) else json.dumps(kept))


def assemble(
    hops: pa.Table,
    ruleset: Ruleset | None = None,
    *,
    chunk_hops: int = CHUNK_HOPS,
    executor: Executor | None = None,
    links: frozenset[tuple[str, str]] = frozenset(),
    clocks: Clocks | None = None,
    bridges: Bridges | None = None,
) -> Assembled:
    """Packets, connections, NAT, bridge roles and fates of these hops, as tables.

    Args:
        hops: hop rows (columns of HOP_SCHEMA; ``raw`` is not needed).
        ruleset: the ruleset the logs were written under, if known.
        chunk_hops: hops assembled at a time (tests make it small to prove that chunks change
            nothing).
        executor: worker processes (an ingest's): with one, a store of two chunks or more is
            assembled on two cores (``_assemble_in_two``).
        links: pairs of hosts known to be linked beyond these hops (``Clocks.links``): follow's
            window of open connections may hold too few packets to learn a link again.
        clocks: the clocks to place the hops on, learned from more hops than these (follow
            assembles some connections of its window on the whole window's clocks); by
            default learned from these hops.
        bridges: the bridges' facts to give the hops their roles by, learned from more hops
            than these (follow's window); by default each chunk learns them from its hops.
            With an ``executor``, the worker is given them too.
    """
    lines = to_frame(hops.select(["host", "ts", "uptime"]))
    clocks = clocks if clocks is not None else learn_hop_clocks(hops, lines)
    if links:
        clocks = replace(clocks, links=(clocks.links or frozenset()) | links)
    when = one_clock(lines, clocks)
    judge = judges(hops, ruleset)
    kept = Kept()
    if np.isnan(when).any():
        # hops without wall-clock time cannot be placed among the others: one chunk, and
        # the connections in the order they appear
        rows = np.arange(len(when), dtype=np.int64)
        traced, summary = trace_chunk(
            _frame(hops, rows), ruleset, clocks, judge=judge, bridges=bridges
        )
        kept.add(traced, summary.table, when)
        return kept.numbered(hops, clocks, in_time_order=False)
    order = np.argsort(when, kind="stable")
    run = AssemblyRun.of(hops, when, clocks, ruleset, judge, chunk_hops, bridges)
    group = host_group_of_hops(hops["host"], clocks)[order] if "host" in hops.column_names else None
    if group is None or not len(group) or (group == group[0]).all():
        kept = _assembled_part(hops, order, run, executor)
    else:
        kept = _assembled_groups(hops, order, group, run, executor)
    return kept.numbered(hops, clocks)


def host_group_of_hops(host: pa.ChunkedArray, clocks: Clocks) -> np.ndarray:
    """Per hop, its group of hosts (``clocks.host_groups``): hosts in two groups share no
    packet (``logpath.packets`` joins packets only across ``Clocks.links``) and a tuple is a
    connection per host, so each group is assembled apart. One group for all when the links
    were not learned, or when some line names no host (it could be any)."""
    if clocks.links is None or host.null_count:
        return np.zeros(len(host), dtype=np.int64)
    return host_groups_of(host.combine_chunks().cast(pa.string()), clocks.links)


def _assembled_groups(
    hops: pa.Table,
    order: np.ndarray,
    group: np.ndarray,
    run: AssemblyRun,
    executor: Executor | None,
) -> Kept:
    """Each group of hosts apart (``order``: the rows by time, ``group``: theirs): the largest
    here (on two cores when it is big), the others in the executor's workers meanwhile.

    A fleet's hosts that no packet links were assembled as one, each chunk a mix of hosts: on
    four Docker hosts busy at once, 29.5 s and 41.8 CPU-s against 17.8 s and 28.7 CPU-s apart
    (the stages' cost grows faster than the hops of a chunk that mixes unrelated hosts)."""
    parts = [order[group == number] for number in dict.fromkeys(group.tolist())]
    largest = max(range(len(parts)), key=lambda i: len(parts[i]))
    kept = Kept()
    with contextlib.ExitStack() as handovers:
        elsewhere = []
        for i, rows in enumerate(parts):
            if i == largest:
                continue
            if executor is None:
                run.trace(hops, rows, kept)
                continue
            name = handovers.enter_context(handover())
            elsewhere.append((rows, name, _submitted(executor, name, run, rows)))
        kept.extend(_assembled_part(hops, parts[largest], run, executor))
        for rows, name, future in elsewhere:
            theirs = _taken_back(future.result(), name)
            theirs.renumber_rows(rows)
            kept.extend(theirs)
    return kept


def _assembled_part(
    hops: pa.Table,
    order: np.ndarray,
    run: AssemblyRun,
    executor: Executor | None,
) -> Kept:
    """The hops at ``order`` (by time) assembled: on two cores (``_assemble_in_two``) when
    an executor is given and they make two chunks or more."""
    when = run.when
    if executor is not None and len(order) >= 2 * run.chunk_hops:
        seam = when[order[int(len(order) * EARLIER_SHARE)]]
        if seam > when[order[0]]:  # (hops of one instant cannot be cut in time)
            return _assemble_in_two(hops, order, seam, run, executor)
    kept = Kept()
    run.trace(hops, order, kept)
    return kept


@dataclass(frozen=True)
class AssemblyRun:
    """What every part of one assembly shares: the hops' columns the stages read (the hop's
    other columns are only copied into the trace table, by the process that numbers it: 43 of
    78 columns are sent to a worker, not all), every hop's time on the one clock, the clocks,
    the ruleset and whether it judges, and the chunk size."""

    traced: pa.Table
    when: np.ndarray
    clocks: Clocks
    ruleset: Ruleset | None
    judge: bool
    chunk_hops: int
    # the clocks and the ruleset as a worker is sent them (a fleet sends them per window)
    clocks_json: dict[str, Any]
    ruleset_json: str | None
    # the bridges' facts given (follow's window, or the stored connections an ingest's stage
    # assembles again with its hops: ``_assembled_after``), None: each chunk learns them
    bridges: Bridges | None = None

    @classmethod
    def of(
        cls,
        hops: pa.Table,
        when: np.ndarray,
        clocks: Clocks,
        ruleset: Ruleset | None,
        judge: bool,
        chunk_hops: int,
        bridges: Bridges | None = None,
    ) -> AssemblyRun:
        present = set(hops.column_names)  # (column_names builds a list at each call)
        traced = hops.select([c for c in PIPELINE_COLUMNS if c in present])
        text = json.dumps(ruleset.to_json()) if ruleset is not None else None
        return cls(
            traced, when, clocks, ruleset, judge, chunk_hops, clocks.to_json(), text, bridges
        )

    def later(self, rows: np.ndarray) -> tuple[Any, ...]:
        """``assemble_later``'s arguments for the hops at ``rows`` (by time), in a worker.

        The hops as runs of rows (``_rows_of``): the later half of time is mostly the later
        half of the file, and gathering its 43 columns (``runtime.taken``) held up the worker's
        start, this process's other core idle (0.1-0.3 s of the 2M-line replay's)."""
        return (
            _rows_of(self.traced, rows),
            self.when[rows],
            self.ruleset_json,
            self.clocks_json,
            self.chunk_hops,
            self.judge,
            self.bridges,
        )

    def trace(
        self,
        hops: pa.Table,
        rows: np.ndarray,
        kept: Kept,
        *,
        settle: bool = True,
        reach: _ChunkReach | None = None,
    ) -> np.ndarray:
        """``trace_in_chunks`` of the hops at ``rows`` here."""
        return trace_in_chunks(
            hops, rows, self.when, self.ruleset, self.clocks, self.chunk_hops, kept,
            settle=settle, judge=self.judge, bridges=self.bridges, reach=reach,
        )  # fmt: skip


def judges(hops: pa.Table, ruleset: Ruleset | None) -> bool:
    """Whether the ruleset judges the packets (``logpath.verdicts``): a store keeps one
    ruleset, and when several hosts logged the hops nothing says whose it is (its verdicts on
    another host's packets would be guesses presented as facts); it still places their hops."""
    if ruleset is None:
        return False
    if "host" not in hops.column_names:
        return True
    return len(pc.unique(hops["host"].cast(pa.string())).drop_null()) <= 1


def trace_in_chunks(
    hops: pa.Table,
    rows: np.ndarray,
    when: np.ndarray,
    ruleset: Ruleset | None,
    clocks: Clocks,
    chunk_hops: int,
    kept: Kept,
    *,
    settle: bool = True,
    judge: bool = True,
    bridges: Bridges | None = None,
    reach: _ChunkReach | None = None,
) -> np.ndarray:
    """Trace the hops at ``rows`` (in time order) a chunk at a time into ``kept``,
    carrying the connections still open at a chunk's end into the next. Returns the rows of
    those still open after the last chunk: none when ``settle``, else those the hops after
    ``rows`` may still join (``bridges``: ``assemble``'s): with a ``reach`` over ``rows`` and
    the hops after them, only those these hops can join."""
    carried = np.empty(0, dtype=np.int64)
    # chunks of equal size, at most chunk_hops: each costs a fixed ~0.4 CPU-s besides its hops,
    # and the two halves of an ingest's assembly should make as many (a 660,000-hop half cut
    # into 200,000 x 3 + 60,000 took 1.2 s longer than a 540,000-hop one in three)
    chunk_hops = -(-len(rows) // max(1, -(-len(rows) // chunk_hops))) if len(rows) else 1
    if reach is None and len(rows) > chunk_hops:
        reach = _ChunkReach(hops, rows, when)
    for start in range(0, len(rows), chunk_hops):
        end = min(start + chunk_hops, len(rows))
        chunk = np.concatenate([carried, rows[start:end]])
        newest = when[rows[end - 1]]
        last = settle and end >= len(rows)
        traced, summary = trace_chunk(
            _frame(hops, chunk), ruleset, clocks, judge=judge, bridges=bridges
        )
        ended = _flow_ends(traced, when)
        growing = set() if last else set(ended.index[ended >= newest - SETTLED_AFTER])
        if growing and reach is not None and end < len(reach.rows):
            growing = reach.joinable(traced, growing, end)
        settled = summary.table.filter(
            pc.invert(pc.is_in(summary.table["id"], value_set=pa.array(list(growing), pa.string())))
        )
        open_hops = _of_flows(traced, growing)
        carried = np.sort(traced["assembly_row"].to_numpy()[open_hops])
        kept.add(traced[~open_hops], settled, when)
        # let go of this chunk's frames before the next chunk's are made: held by these names
        # until reassigned, the traced hops (~180 MiB of a 200,000-hop chunk's numpy and
        # Python objects) lived through the next chunk, at the peak of both halves
        del traced, summary, ended, settled, open_hops
    return carried


def _assemble_in_two(
    hops: pa.Table,
    order: np.ndarray,
    seam: float,
    run: AssemblyRun,
    executor: Executor,
) -> Kept:
    """``assemble`` on two cores: the later part of time in a worker process while this one
    does the earlier (``EARLIER_SHARE`` of the hops), then the seam between them again.

    The worker starts without the connections still open at the seam. The earlier part carries
    out those the later hops can join (``_ChunkReach``, as a chunk carries them into the next),
    and they are assembled again with every connection of the later part they reach: one with
    a hop alike to one of theirs near the seam, or showing one of their tuples, closed over
    shared tuples. No other later connection has a hop one of theirs could take, so the later
    part's other connections are what one process would have found. (Before, every later
    connection starting within SETTLED_AFTER of the seam was assembled again: a busy host's
    ten minutes, and a worker was not worth it on less than 40 minutes of hops.)
    """
    when = run.when
    later = order[np.searchsorted(when[order], seam, side="left") :]
    earlier = order[: len(order) - len(later)]
    with handover() as name:
        future = _submitted(executor, name, run, later)
        kept = Kept()
        reach = _ChunkReach(hops, order, when)
        open_rows = run.trace(hops, earlier, kept, settle=False, reach=reach)
        theirs = _taken_back(future.result(), name)
    theirs.renumber_rows(later)
    restarted = theirs.drop_flows(reach.reached_after(open_rows, theirs, seam))
    seam_rows = np.concatenate([open_rows, np.sort(restarted)])
    seam_rows = seam_rows[np.argsort(when[seam_rows], kind="stable")]
    run.trace(hops, seam_rows, kept)
    kept.extend(theirs)
    return kept


def assemble_later(
    hops: pa.Table,
    when: np.ndarray,
    ruleset: str | None,
    clocks: dict[str, Any],
    chunk_hops: int,
    judge: bool = True,
    bridges: Bridges | None = None,
) -> Kept:
    """The worker's half of ``_assemble_in_two`` (runs in an ingest's worker process): these
    hops assembled as if they were all there is (by ``bridges``' facts, when given), rows
    numbered within them."""
    kept = Kept()
    rows = np.arange(len(when), dtype=np.int64)
    known = Ruleset.from_json(ruleset) if ruleset is not None else None
    with without_cyclic_gc():
        trace_in_chunks(
            hops, rows, when, known, Clocks.from_json(clocks), chunk_hops, kept, judge=judge,
            bridges=bridges,
        )  # fmt: skip
    return kept


def _submitted(executor: Executor, name: str, run: AssemblyRun, rows: np.ndarray) -> Future[Any]:
    """``assemble_later_here`` of the hops at ``rows`` submitted to a worker process of this
    machine, the hops handed over in the file ``name.hops`` (in memory, ``handover``), which
    the worker maps without a copy: through the pool's pipe, pickled by this process's feeder
    thread while this process assembles its own part, the 600,000 hops of the 2M-line replay's
    later half reached the worker 0.8 s after they were sent. Through the pipe when the file
    cannot be written."""
    hops, *rest = run.later(rows)
    try:
        streamed(f"{name}.hops", [hops])
    except OSError:
        handed: pa.Table | str = hops
    else:
        handed = f"{name}.hops"
    with stop_deferred():  # the submit may fork a worker: whole, or not at all
        return executor.submit(assemble_later_here, name, handed, *rest)


def assemble_later_here(name: str, hops: pa.Table | str, *args: Any) -> Kept | None:
    """``assemble_later`` in a worker process of this machine, of ``hops`` or of those handed
    over in that file (``_submitted``); what it keeps handed over in files named ``name``...
    (``Kept.hand_over``), not through the pool's pipe; through the pipe (returned) when those
    files cannot be written (``/dev/shm`` full, say)."""
    kept = assemble_later(mapped(hops) if isinstance(hops, str) else hops, *args)
    try:
        kept.hand_over(name)
    except OSError:
        return kept
    del kept
    # malloc kept what the half's frames freed (~0.5 GB of the 2M-line replay's), and the
    # worker held it, idle, while the ingest's own process wrote the tables (its peak)
    give_back_memory()
    return None


def _taken_back(handed: Kept | None, name: str) -> Kept:
    """What ``assemble_later_here`` kept: returned, or handed over in the files ``name``..."""
    return handed if handed is not None else Kept.taken_over(name)


def trace_chunk(
    hops: pd.DataFrame,
    ruleset: Ruleset | None,
    clocks: Clocks | None,
    *,
    judge: bool = True,
    bridges: Bridges | None = None,
) -> tuple[pd.DataFrame, Summary]:
    """Every stage after parsing, once each, on one chunk of hops: hooks, packets, connections
    (their tuples kept for the summaries), bridge roles (by ``bridges``, else the bridges'
    MACs learned from the chunk's hops), fates (judged by the ruleset when ``judge``: see
    ``judges``), the connections' summaries, then the NAT marks journeys show."""
    traced = trace_hops(hops, ruleset, clocks=clocks, keep_tuples=True, bridges=bridges)
    evaluator = None
    if ruleset is not None and judge:  # imported only then: questions import this module too
        from logpath.evaluate import Evaluator

        evaluator = Evaluator(ruleset)
    fates = packet_fates(traced, evaluator)
    summary = summarise(traced, fates=fates)
    return with_journey_marks(traced, summary.nat, fates), summary


def trace_hops(
    hops: pd.DataFrame,
    ruleset: Ruleset | None = None,
    *,
    roles: bool = True,
    clocks: Clocks | None = None,
    keep_tuples: bool = False,
    bridges: Bridges | None = None,
) -> pd.DataFrame:
    """Every stage after parsing on a hop table, without storing: hooks, packets, flows and
    (with ``roles``) bridge roles added to each hop. What assembly does a chunk at a time, for
    a library user or a test holding hops in memory.

    Example:
        >>> traced = trace_hops(Store(path).read_hops())
    """
    resolved = hops if "hook" in hops.columns else resolve_hooks(hops, ruleset)
    # the hooks, tables, chains and evidence stay resolve_hooks' categoricals: made Python
    # objects for the stages, every comparison with a hook or "nat", every missing-value test
    # and every take of them went through an object per hop (~5% of the assembly)
    packets = refine_guessed_hooks(group_packets(resolved, clocks))
    flows = assign_flows(packets, keep_tuples=keep_tuples)
    return assign_roles(flows, bridges) if roles else flows


def _flow_ends(traced: pd.DataFrame, when: np.ndarray) -> pd.Series:
    """Per flow, the time of its last hop on the one clock (``clocks.one_clock``). Grouped by
    Arrow on the flows' ids (pandas' groupby on their texts: ~34 ms of a 200,000-hop chunk,
    Arrow ~16)."""
    flow = pa.array(traced["flow"].array)
    seconds = pa.array(when[traced["assembly_row"].to_numpy()], pa.float64())
    shown = pa.table({"flow": flow, "t": seconds}).filter(pc.is_valid(flow))
    ends = shown.group_by("flow", use_threads=False).aggregate([("t", "max")])
    index = ends["flow"].to_numpy(zero_copy_only=False)
    return pd.Series(ends["t_max"].to_numpy(), index=index, dtype="float64")


def _of_flows(traced: pd.DataFrame, ids: set[str]) -> np.ndarray:
    """Per hop, whether its flow is one of ``ids`` (Arrow's lookup: pandas' isin took ~23 ms of
    a 200,000-hop chunk, twice a chunk)."""
    found = pc.is_in(pa.array(traced["flow"].array), value_set=pa.array(list(ids), pa.string()))
    marked: np.ndarray = pc.fill_null(found, False).to_numpy(zero_copy_only=False)
    return marked


class Kept:
    """The settled connections of every chunk (and those a store keeps), numbered at the end.

    Per chunk: its connections (FLOW_COLUMNS and KEY_COLUMNS), the time of each one's first
    hop, and what assembly found of its hops (FOUND, with ``assembly_row``; ``flow_n`` the
    hop's connection's row in the chunk's connections, null for a hop of none)."""

    def __init__(self) -> None:
        self.flows: list[pa.Table] = []
        self.traces: list[pa.Table] = []
        self.starts: list[np.ndarray] = []
        self.packets = 0  # packet numbers used so far: each chunk numbers its own from 0

    def add(self, traced: pd.DataFrame, flows: pa.Table, when: np.ndarray) -> None:
        """Keep these connections (FLOW_COLUMNS) and their traced hops."""
        if not flows.num_rows:
            return
        # numbered past the chunks before (not with ``assign``: it copied every column)
        packet = traced["packet"].to_numpy() + self.packets
        self.packets = int(packet.max()) + 1
        count = flows.num_rows
        # each hop's connection, -1 for a hop of none: looked up by Arrow in the connections'
        # ids (pandas' get_indexer on the ids' texts took ~34 ms of a 200,000-hop chunk)
        connection = pc.index_in(pa.array(traced["flow"].array), value_set=flows["id"])
        connection = pc.fill_null(connection, -1).to_numpy().astype(np.int64)
        self.starts.append(_flow_starts(connection, traced["assembly_row"], count, when))
        # every hop of a connection shows its keys: its first hop's are taken (only those rows
        # made Python strings: every hop's took ~36 ms a chunk)
        first, missing = _first_hops(connection, count)
        keys = {
            key: pa.array(
                traced[key].iloc[first].to_numpy(dtype=object) if len(traced) else [None] * count,
                pa.string(),
                mask=missing,
                from_pandas=True,
            )
            for key in KEY_COLUMNS
        }
        self.flows.append(_with_columns(flows, keys))
        self.traces.append(_found(traced, packet, connection))

    def hand_over(self, name: str) -> None:
        """Write what is kept to files named ``name``... for another process of this machine
        (``taken_over``). A pool's pipe took 1.1-1.5 s for the 176 MB a worker keeps of the
        2M-line replay; a file in memory is written in a tenth of that and read without a
        copy."""
        flows = [
            table.append_column("start", pa.array(starts, pa.float64()))
            for table, starts in zip(self.flows, self.starts, strict=True)
        ]
        # written as one table: each chunk's hops point past the connections of those before
        firsts = np.cumsum([0, *(table.num_rows for table in self.flows)]).tolist()
        traces = [
            _renumbered(trace, first, 0) for trace, first in zip(self.traces, firsts, strict=False)
        ]
        for suffix, tables in (("flows", flows), ("trace", traces)):
            if tables:
                streamed(f"{name}.{suffix}", tables)
        with open(name, "w") as packets:
            packets.write(str(self.packets))

    @classmethod
    def taken_over(cls, name: str) -> Kept:
        """What ``hand_over`` wrote, mapped into memory (its files can go: a mapping outlives
        its file)."""
        kept = cls()
        with open(name) as packets:
            kept.packets = int(packets.read())
        if os.path.exists(f"{name}.flows"):
            flows = mapped(f"{name}.flows")
            kept.starts = [flows["start"].to_numpy()]
            kept.flows = [flows.drop_columns(["start"])]
            kept.traces = [mapped(f"{name}.trace")]
        return kept

    def renumber_rows(self, rows: np.ndarray) -> None:
        """What a worker kept of a part of the hops (``assemble_later``), its rows made rows
        of all hops (``rows[i]`` is the row of the part's i-th hop). The connections' first
        hops' times stand: the worker was given the part's times on the one clock
        (``AssemblyRun.later``)."""
        for i, trace in enumerate(self.traces):
            own = rows[trace["assembly_row"].to_numpy()]
            self.traces[i] = trace.set_column(
                trace.schema.get_field_index("assembly_row"), "assembly_row", pa.array(own)
            )

    def hop_flows(self, i: int) -> pa.ChunkedArray:
        """The id of each hop's connection in ``traces[i]`` (null for a hop of none)."""
        return self.flows[i]["id"].take(self.traces[i]["flow_n"])

    def last_hops(self, i: int, when: np.ndarray) -> np.ndarray:
        """Per connection of ``flows[i]``, the time of its last hop (on the one clock ``when``)."""
        trace = self.traces[i]
        seconds = when[trace["assembly_row"].to_numpy()]
        return _per_connection(_connection_of(trace), seconds, self.flows[i].num_rows, "max")

    def forget(self, i: int, mine: np.ndarray) -> np.ndarray:
        """Forget the connections of ``flows[i]`` at ``mine`` (a mask) and their hops; the rows
        of those hops."""
        self.flows[i] = self.flows[i].filter(pa.array(~mine))
        self.starts[i] = self.starts[i][~mine]
        trace = self.traces[i]
        connection = _connection_of(trace)
        named = connection >= 0
        theirs = np.zeros(len(connection), dtype=bool)
        theirs[named] = mine[connection[named]]
        dropped: np.ndarray = trace["assembly_row"].to_numpy()[theirs]
        # the connections left numbered again, from 0, in their order
        kept = _moved(connection, np.cumsum(~mine) - 1)[~theirs]
        trace = trace.filter(pa.array(~theirs))
        self.traces[i] = trace.set_column(
            trace.schema.get_field_index("flow_n"), "flow_n", _connection_column(kept)
        )
        return dropped

    def drop_flows(self, ids: set[str]) -> np.ndarray:
        """Forget these connections; the rows of their hops."""
        dropped = []
        value_set = pa.array(sorted(ids), pa.string())
        for i, flows in enumerate(self.flows):
            mine = pc.is_in(flows["id"], value_set=value_set).to_numpy(zero_copy_only=False)
            if mine.any():
                dropped.append(self.forget(i, mine))
        return np.concatenate(dropped) if dropped else np.empty(0, dtype=np.int64)

    def drop_started_before(self, limit: float) -> np.ndarray:
        """Forget the connections whose first hop is before ``limit``; the rows of their hops."""
        early = [
            flows["id"].filter(pa.array(starts < limit)).to_pylist()
            for flows, starts in zip(self.flows, self.starts, strict=True)
        ]
        return self.drop_flows({flow for ids in early for flow in ids})

    def extend(self, other: Kept) -> None:
        """Keep ``other``'s connections too (its packet numbers moved past ours)."""
        for trace in other.traces:
            packet = pc.add(trace["packet"], self.packets)
            self.traces.append(
                trace.set_column(trace.schema.get_field_index("packet"), "packet", packet)
            )
        self.flows += other.flows
        self.starts += other.starts
        self.packets += other.packets

    def add_stored(
        self, trace: pa.Table, rows: np.ndarray, flows: pa.Table, starts: np.ndarray
    ) -> None:
        """Stored trace rows (TRACE_SCHEMA), at ``rows`` of the hops, and the stored flows
        they belong to (FLOW_SCHEMA) with the times of their first hops, as they are."""
        if not trace.num_rows:
            return
        # the chunks traced after these number their packets above them
        self.packets = max(self.packets, int(pc.max(trace["packet"]).as_py()) + 1)
        self.starts.append(starts)
        connection = pc.index_in(trace["flow_n"], value_set=flows["flow_n"])
        connection = pc.fill_null(connection, -1).to_numpy()
        rows_of, missing = _first_hops(connection, flows.num_rows)
        first = pa.array(rows_of, pa.int64(), mask=missing)
        keys = {
            key: trace[key].take(first).combine_chunks().cast(pa.string()) for key in KEY_COLUMNS
        }
        self.flows.append(_with_columns(flows.drop_columns(["flow_n"]).cast(FLOW_COLUMNS), keys))
        found = trace.select(FOUND.names).cast(FOUND)
        found = found.set_column(
            FOUND.get_field_index("flow_n"), "flow_n", _connection_column(connection)
        )
        self.traces.append(found.add_column(0, "assembly_row", pa.array(rows, pa.int64())))

    def numbered(self, hops: pa.Table, clocks: Clocks, *, in_time_order: bool = True) -> Assembled:
        """The tables with ``flow_n``: connections by their first hop's time, ties by id
        (chunks settle them out of order, and a store assembled a run at a time keeps some),
        the trace sorted by connection, packet and hop, packets numbered from 0 in that order,
        each row the hop's own columns (from ``hops``) beside what assembly found. However the
        hops were cut into chunks or runs, the same connections get the same numbers, and so
        do their packets (in the order their chunk found them: by time)."""
        if not self.flows:
            empty = FLOW_SCHEMA.empty_table()
            return Assembled(empty, TRACE_SCHEMA.empty_table(), clocks)
        flows = pa.concat_tables(self.flows)
        order = np.arange(flows.num_rows)
        if in_time_order:
            ids = flows["id"].to_numpy(zero_copy_only=False)
            order = np.lexsort((ids, np.concatenate(self.starts)))
        # each chunk's connection j is the connection at ``rank[first + j]`` of all, sorted
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        firsts = np.cumsum([0, *(table.num_rows for table in self.flows)])
        # what is kept is handed over: the chunks' tables are not held beside their sorted copy
        traces, self.flows, self.starts, self.traces = self.traces, [], [], []
        flows = flows.take(pa.array(order))
        flows = _distinct_ids(flows)
        numbers = pa.array(np.arange(flows.num_rows, dtype=np.int64))
        connections = flows.select(["id", *KEY_COLUMNS])
        flows = flows.drop_columns(KEY_COLUMNS).add_column(0, "flow_n", numbers)
        found = pa.concat_tables(
            [
                trace.set_column(
                    trace.schema.get_field_index("flow_n"),
                    "flow_n",
                    _numbered_connections(trace, rank, first),
                )
                for trace, first in zip(traces, firsts.tolist(), strict=False)
            ]
        )
        del traces
        found = taken(
            found,
            pc.sort_indices(
                found, [("flow_n", "ascending"), ("packet", "ascending"), ("hop_n", "ascending")]
            ),
        )
        found = found.set_column(
            found.schema.get_field_index("packet"), "packet", _dense(found["packet"])
        )
        return Assembled(flows.cast(FLOW_SCHEMA), TraceRows(found, hops, connections), clocks)


def _distinct_ids(flows: pa.Table) -> pa.Table:
    """The connections with an id each (``flows.distinct_ids``): the trace takes its ids from
    this table by ``flow_n``, so the hops follow."""
    if len(pc.unique(flows["id"])) == flows.num_rows:  # the ids as text only when two clash
        return flows
    apart = distinct_ids(flows["id"].to_numpy(zero_copy_only=False), flows["hosts"].to_pylist())
    return flows.set_column(flows.schema.get_field_index("id"), "id", pa.array(apart, pa.string()))


def _connection_of(trace: pa.Table) -> np.ndarray:
    """Each hop's row in its chunk's connections (``Kept``), -1 for a hop of none."""
    connection: np.ndarray = pc.fill_null(trace["flow_n"], -1).to_numpy()
    return connection


def _connection_column(connection: np.ndarray) -> pa.Array:
    """A ``flow_n`` column of rows of connections, -1 made null (a hop of none)."""
    return pa.array(connection, pa.int64(), mask=connection < 0)


def _numbered_connections(trace: pa.Table, rank: np.ndarray, first: int) -> pa.Array:
    """``trace``'s ``flow_n`` (rows of its chunk's connections, from ``first`` of all) made
    the connections' numbers of all (``rank``)."""
    return _connection_column(_moved(_connection_of(trace), rank[first:]))


def _moved(connection: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Each hop's connection (-1 for none) made ``to[connection]`` (-1 stays)."""
    moved: np.ndarray = np.where(connection >= 0, to[np.maximum(connection, 0)], -1)
    return moved


def _first_hops(connection: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per connection 0..count-1, the row of its first hop (``connection``: each hop's, -1 for
    none), and where a connection has no hop here."""
    named = np.flatnonzero(connection >= 0)
    first = np.zeros(count, dtype=np.int64)
    found, at = np.unique(connection[named], return_index=True)
    first[found] = named[at]
    missing = np.ones(count, dtype=bool)
    missing[found] = False
    return first, missing


def _with_columns(table: pa.Table, columns: dict[str, pa.Array]) -> pa.Table:
    for name, values in columns.items():
        table = table.append_column(name, values)
    return table


def _flow_starts(connection: np.ndarray, rows: Any, count: int, when: np.ndarray) -> np.ndarray:
    """Per connection 0..count-1, the time of its first hop on the one clock (``connection``,
    ``rows``: each hop's connection, -1 for none, and row)."""
    return _per_connection(connection, when[np.asarray(rows, dtype=np.int64)], count, "min")


def _per_connection(connection: np.ndarray, values: np.ndarray, count: int, how: str) -> np.ndarray:
    """Per connection 0..count-1, the ``how`` ("min", "max") of its hops' ``values``, NaN for
    a connection of no hop here (``connection``: each hop's, -1 for none)."""
    named = connection >= 0
    grouped = pd.Series(values[named]).groupby(connection[named]).agg(how)
    per: np.ndarray = grouped.reindex(range(count)).to_numpy(dtype="float64")
    return per


def _dense(packet: pa.ChunkedArray) -> pa.Array:
    """Packet numbers in the order given, renumbered 0, 1, 2...: every chunk and every run
    numbers its own, the table shows one numbering."""
    values = packet.to_numpy()
    if not len(values):
        return pa.array(values, pa.int64())
    changed = np.r_[True, values[1:] != values[:-1]]
    return pa.array(np.cumsum(changed) - 1, pa.int64())


def with_journey_marks(
    traced: pd.DataFrame,
    nat: pd.DataFrame,
    fates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The traced hops with what a journey shows besides: where SNAT or a reply's de-DNAT is
    applied (``applied_nat``, from ``nat``: a table of translations, ``infer_translations``;
    ``nat.translation_table`` makes one of records) and each packet's
    ``fate`` and ``stopped_at`` (on each hop); ``fates`` is ``packet_fates`` of these hops when
    the caller has it."""
    hops = applied_nat(traced.reset_index(drop=True), nat)
    fates = packet_fates(hops) if fates is None else fates
    packets = hops["packet"].to_numpy()
    hops["fate"] = fates["fate"].reindex(packets).to_numpy()
    hops["stopped_at"] = fates["stopped_at"].reindex(packets).to_numpy()
    hops["verdict"] = fates["verdict"].reindex(packets).to_numpy()
    return hops


def _frame(hops: pa.Table, rows: np.ndarray) -> pd.DataFrame:
    """These rows of the hops as pandas (the columns the stages read), each with
    ``assembly_row`` (its row in ``hops``)."""
    present = set(hops.column_names)  # (column_names builds a list at each call)
    wanted = [c for c in PIPELINE_COLUMNS if c in present]
    frame = to_frame(_rows_of(hops.select(wanted), rows))
    frame["assembly_row"] = rows
    return frame


# A chunk's rows are taken as slices of the hops when they make at most one run per this many
# rows (``_rows_of``).
ROWS_PER_RUN = 4096


def _rows_of(hops: pa.Table, rows: np.ndarray) -> pa.Table:
    """``hops.take(rows)``; as slices when the rows are a few runs of consecutive rows: a
    chunk's rows are the hops in time order, mostly in file order, after the few carried from
    the chunk before (a 200,000-hop chunk of the 2M-line replay: 0 to 13 breaks). Gathering
    every column was ~60 ms of a chunk's ~1.5 CPU-s; a slice is no copy."""
    breaks = np.flatnonzero(rows[1:] != rows[:-1] + 1) + 1
    if len(rows) < ROWS_PER_RUN or (len(breaks) + 1) * ROWS_PER_RUN > len(rows):
        return hops.take(pa.array(rows))
    starts, ends = np.r_[0, breaks], np.r_[breaks, len(rows)]
    runs = [(int(rows[s]), int(e - s)) for s, e in zip(starts, ends, strict=True)]
    indices = pa.array(rows)
    # a dictionary column is taken: its categories are then the dictionaries of every chunk
    # unified, in their order, as the stages have always seen them (slices would show only
    # those of the chunks sliced, in another order); its indices are cheap to gather
    return pa.Table.from_arrays(
        [
            column.take(indices)
            if pa.types.is_dictionary(column.type)
            else pa.chunked_array(
                [c for at, length in runs for c in column.slice(at, length).chunks], column.type
            )
            for column in hops.columns
        ],
        schema=hops.schema,
    )


def _found(traced: pd.DataFrame, packet: np.ndarray, connection: np.ndarray) -> pa.Table:
    """What assembly found of each traced hop (FOUND), with ``assembly_row``; ``packet`` is
    each hop's packet number, ``connection`` its connection's row in the chunk's (-1: none)."""
    columns = {"assembly_row": pa.array(traced["assembly_row"].to_numpy(), pa.int64())}
    for field in FOUND:
        if field.name == "flow_n":  # numbered once every connection is known
            columns[field.name] = _connection_column(connection)
        elif field.name == "packet":
            columns[field.name] = pa.array(packet, pa.int64())
        elif field.name in traced.columns:
            columns[field.name] = _arrow(traced[field.name], field.type)
        else:
            columns[field.name] = pa.nulls(len(traced), field.type)
    return pa.table(columns)


def _arrow(values: pd.Series, type_: pa.DataType) -> pa.Array:
    """A pandas column as an Arrow array of the stored type (NaN and None become null: the
    column held as Python objects, copied to mark them first, cost three times the rest)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("object")
    if pa.types.is_dictionary(type_):
        plain = pa.array(values, pa.string(), from_pandas=True)
        return plain.dictionary_encode().cast(type_)
    return pa.array(values, type_, from_pandas=True)


def learn_hop_clocks(hops: pa.Table, lines: pd.DataFrame) -> Clocks:
    """The hosts' boot times and clock offsets, learned from every hop (``lines``: their host,
    ts and uptime): every chunk, and every question later, puts the hosts' lines on this one
    clock."""
    shared = lines.iloc[:0]
    if lines["host"].nunique() > 1:
        shared = to_frame(hops.select(CLOCK_COLUMNS).filter(pc.not_equal(hops["id"], 0)))
    return learn_clocks(lines, shared)
