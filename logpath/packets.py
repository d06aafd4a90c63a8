"""Packets: the hops that are one packet seen at successive hooks, on one host or several.

A packet keeps, between the hooks of one host, its source address and port (SNAT happens after
the last LOG rule of POSTROUTING, so it is never visible on the host that applies it), its IP ID,
LEN, TCP flags, SEQ/ACK and window; its destination may change once (DNAT, or the de-SNAT of a
reply, both in nat PREROUTING/OUTPUT) and its TTL drops by one when it is routed
(NETFILTER_LOG_FORMATS.md §7). Hops are grouped in two passes:

1. per host, by that invariant identity, in time and hook order (vectorised; only the few
   candidate groups where two packets interleave are untangled one hop at a time);
2. across hosts (or on re-entering the same host, e.g. loopback or a container's namespace): a
   packet that leaves by FORWARD/OUTPUT/POSTROUTING joins the packet that enters the next
   PREROUTING with the same identity, destination and TTL, moments later; on another host that
   logs no PREROUTING hop, the packet first seen there at INPUT or FORWARD. Where alike
   packets (IPv6: no IP ID) could pair several ways, in the order they crossed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from logpath.clocks import (
    Clocks,
    fine_wall_clock,
    host_groups,
    linked_pairs,
    offsets_of,
    solve,
    walk,
)
from logpath.errors import LogpathError
from logpath.netfilter import (
    HOOK_STAGE,
    LATER_HOOK,
    NAT_PRIORITY,
    TABLE_PRIORITY,
    guess_hooks,
)

# The identity a packet keeps between the hooks of one host (ports and addresses of the
# destination side may be DNATed, so they are compared later, hop by hop).
IDENTITY = [
    "kind",
    "family",
    "proto",
    "len",
    "id",
    "flags",
    "window",
    "icmp_type",
    "icmp_code",
    "icmp_id",
    "icmp_seq",
    # not inner_src/inner_dst: conntrack de-NATs the packet an ICMP error quotes, too
    "inner_sport",
    "inner_dport",
    "arp_opcode",
    "arp_ipsrc",
    "arp_ipdst",
]
LOCAL_KEY = ["host", *IDENTITY, "src", "sport"]
# Fields a LOG rule prints only when asked (``--log-tcp-sequence``; a legacy TRACE line always
# prints them): where a hop does not show one it is unknown, not different. Two hops are one
# packet only if they agree on those both show; they are compared hop by hop, never made part of
# a key (a packet logged with and without the option was two packets, the first "stopped").
PRINTED_IF_ASKED = {"seq": "_seq", "ack": "_ack"}
ASKED = list(PRINTED_IF_ASKED.values())  # their helper columns
# Across hosts, not inner_dport either: the host that DNATed the packet an ICMP error quotes
# de-NATs the quote with the error's source, in POSTROUTING after its last LOG rule, so the next
# host logs the published port where the first logged the server's (a port unreachable from a
# published UDP port was two packets, one per host: tests/test_two_hosts.py, udp-icmp-ipv6).
CROSS_HOST_IDENTITY = [c for c in IDENTITY if c != "inner_dport"]

# Hops further apart than this are not one packet (syslog without [uptime] has 1 s resolution).
MAX_HOP_GAP = 2.0


# What identity_texts joins across hosts, and every hop column it reads
CROSS_KEY = [*CROSS_HOST_IDENTITY, "dst", "dport", "ttl"]
IDENTITY_COLUMNS = list(dict.fromkeys([*LOCAL_KEY, *CROSS_KEY]))


def identity_texts(hops: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Per hop, as text, what a packet keeps on one host (LOCAL_KEY: pass 1 groups only hops
    alike in it) and what pass 2 joins a packet leaving a host to one entering it again by
    (``_exit_entry_pairs``' keys: CROSS_HOST_IDENTITY, destination and TTL): the hops of one
    packet on one host share the first, a leaving hop and the entering hop it is joined to
    share the second. Follow's window tells by them which of its connections a new hop may
    join."""

    def text(columns: list[str]) -> pa.Array:
        cells = [
            pc.fill_null(pc.cast(hops[c], pa.string()), "\x1f")
            if c in hops.column_names
            else pa.array(["\x1f"] * hops.num_rows, pa.string())
            for c in columns
        ]
        joined: pa.Array = pc.binary_join_element_wise(*cells, "|")
        return joined

    return text(LOCAL_KEY), text(CROSS_KEY)


def identity_keys(
    hops: pa.Table, later: pa.Table
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``identity_texts`` of two tables of hops, as 64-bit hashes (each column coded as an
    integer, the same in both tables, and the codes mixed): for each table, per hop, the
    hash of its LOCAL_KEY and of its CROSS_KEY. Hops alike in a key have the same hash; two
    hops unlike in it have the same one by chance only (one pair in ~2**64): a caller asks
    which hops may be joined by the other table's, where a false "alike" costs work, never
    a wrong answer. The texts (every column cast to text, then joined) took twice the time:
    ``assembly.alike_hops`` of 960,000 hops against 240,000, 1.05-1.14 CPU-s against 0.52,
    8% of the main process of a busy host's 9.6M-line ingest assembled in stages."""
    codes = {column: _identity_codes(hops, later, column) for column in IDENTITY_COLUMNS}

    def mixed(columns: list[str], first: bool) -> np.ndarray:
        # a polynomial over the codes, modulo 2**64 (numpy's unsigned arithmetic wraps)
        key = np.zeros(hops.num_rows if first else later.num_rows, dtype=np.uint64)
        for column in columns:
            key *= np.uint64(0x100000001B3)  # FNV's 64-bit prime
            key += codes[column][: hops.num_rows] if first else codes[column][hops.num_rows :]
        return key

    return (
        (mixed(LOCAL_KEY, True), mixed(CROSS_KEY, True)),
        (mixed(LOCAL_KEY, False), mixed(CROSS_KEY, False)),
    )


def _identity_codes(hops: pa.Table, later: pa.Table, column: str) -> np.ndarray:
    """One identity column of both tables (``hops``' rows, then ``later``'s) as uint64 codes,
    equal where the values are: an integer as itself, a text by its index among the texts of
    both, a missing value (or column) as a code no value has."""
    cells = [
        table[column] if column in table.column_names else pa.chunked_array([pa.nulls(0)])
        for table in (hops, later)
    ]
    text = any(pa.types.is_dictionary(c.type) or pa.types.is_string(c.type) for c in cells)
    type_ = pa.string() if text else pa.int64()
    joined = pa.chunked_array(
        [
            chunk
            for c, rows in zip(cells, (hops.num_rows, later.num_rows), strict=True)
            for chunk in (c.cast(type_).chunks if len(c) else [pa.nulls(rows, type_)])
        ],
        type_,
    ).combine_chunks()
    if text:
        values = pc.fill_null(joined.dictionary_encode().indices.cast(pa.int64()), -1)
    else:
        values = pc.fill_null(joined, np.iinfo(np.int64).min)
    codes: np.ndarray = values.to_numpy(zero_copy_only=False).view(np.uint64)
    return codes


COLUMNS = ("packet", "leg", "hop_n", "clock")
"""Columns group_packets adds: ``packet`` (int64, numbered by first hop in time), ``leg`` (int64,
0 on the first host, 1 on the next...), ``hop_n`` (int64, 0-based position of the hop in its
packet's journey) and ``clock`` (float64 seconds on one clock for all hosts: the wall clock made
precise by the kernel's uptime and set back by the host's offset, else the uptime)."""


class PacketError(LogpathError):
    """The hop table lacks what packet grouping needs."""


def missing(value: object) -> bool:
    """True for a missing cell: None, NaN, pd.NA or NaT."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def group_packets(hops: pd.DataFrame, clocks: Clocks | None = None) -> pd.DataFrame:
    """Number the packets: hops that are one packet seen at successive hooks get one ``packet``.

    Args:
        hops: the hop table with ``hook`` (and ``table``) resolved, e.g. by
            ``logpath.hooks.resolve_hooks``.
        clocks: the hosts' boot times and clock offsets (``logpath.clocks``), learned from more
            than these hops (a store); by default learned from these hops.

    Returns:
        A copy sorted by packet and hop order, with the COLUMNS added.

    Example:
        >>> packets = group_packets(resolve_hooks(store.read_hops(port=12580), ruleset))
    """
    missing = {"hook", "src", "dst", "lineno"} - set(hops.columns)
    if missing:
        raise PacketError(f"the hop table lacks the columns {sorted(missing)} needed for packets")
    frame = _prepare(hops, clocks.boot if clocks else None)
    if frame.empty:
        return _finish(frame.assign(_segment=0, _packet=0, _leg=0, clock=0.0))
    frame["_segment"] = _local_packets(frame)
    packet, leg, ahead = _join_across_hosts(frame, clocks)
    frame["_packet"] = packet[frame["_segment"].to_numpy()]
    frame["_leg"] = leg[frame["_segment"].to_numpy()]
    if ahead:  # from here on, every host's lines on one clock
        frame["_ts"] = frame["_ts"] - offsets_of(frame["host"], ahead)
    frame["clock"] = frame["_ts"].fillna(frame["_t"])
    return _finish(frame)


def stage_and_rank(hook: pd.Series, table: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per hop, its hook's stage (HOOK_STAGE, 0 where unknown) and its order within one host's
    traversal: the stage, then the table's priority. Each column factorised once and the few
    distinct values looked up (a million hops show a few hooks and tables)."""
    hook_code, hooks = pd.factorize(hook)
    table_code, tables = pd.factorize(table)
    stage = np.nan_to_num(_looked_up(hook_code, hooks, HOOK_STAGE), nan=0.0)
    priority = _looked_up(table_code, tables, TABLE_PRIORITY)
    is_nat = np.append(np.asarray(tables, dtype=object) == "nat", False)[table_code]
    nat = np.where(is_nat, _looked_up(hook_code, hooks, NAT_PRIORITY), np.nan)
    # an unknown table (nft chains live in user-named tables) ranks with filter
    tie = np.where(np.isnan(priority), np.nan_to_num(nat, nan=0.0), priority)
    return stage, stage * 1000.0 + tie


def _looked_up(code: np.ndarray, distinct: Any, mapping: Mapping[str, float]) -> np.ndarray:
    """Per row, ``mapping`` of its value given as ``code`` into ``distinct`` (-1: missing),
    as float64, NaN where unmapped."""
    mapped = np.array([mapping.get(value, np.nan) for value in distinct] + [np.nan])
    found: np.ndarray = mapped[code].astype("float64")
    return found


def map_few(values: pd.Series, mapping: Mapping[str, float]) -> pd.Series:
    """``values.map(mapping)`` as float64 (NaN where unmapped), looked up once per distinct
    value: a million hops show a few hooks and tables."""
    code, distinct = pd.factorize(values)
    return pd.Series(_looked_up(code, distinct, mapping), index=values.index)


def _prepare(hops: pd.DataFrame, boot: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Copy with every identity column present and the helper columns (named ``_...``)."""
    frame = hops.reset_index(drop=True)
    absent = [
        c
        for c in [
            *LOCAL_KEY,
            "table",
            "uptime",
            "ts",
            "ttl",
            "dport",
            "prefix",
            "in_iface",
            "out_iface",
            "physout",
            *PRINTED_IF_ASKED,
        ]
        if c not in frame.columns
    ]
    frame = frame.assign(**dict.fromkeys(absent))
    for column, helper in PRINTED_IF_ASKED.items():
        frame[helper] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    # a hop's hook, else the one its IN=/OUT= point to: guessed only where none is known
    # (a Series' fillna aligned a whole guessed column by index: 0.3 CPU-s a million hops)
    hook_values = frame["hook"].to_numpy(dtype=object)
    unknown = pd.isna(hook_values)
    if unknown.any():
        hook_values = hook_values.copy()
        hook_values[unknown] = guess_hooks(
            frame.loc[unknown, "in_iface"], frame.loc[unknown, "out_iface"]
        ).to_numpy()
    hook = pd.Series(hook_values, index=frame.index, dtype=object)
    frame["_hook"] = hook
    frame["_stage"], frame["_rank"] = stage_and_rank(hook, frame["table"])
    if "trace_id" in frame and frame["trace_id"].notna().any():
        # a trace lists a packet's chains in the order it passed them (an nft chain may hook
        # before raw, at any priority): its visits are ordered by line
        visits = frame["trace_id"].notna()
        frame.loc[visits, "_rank"] = frame.loc[visits, "lineno"].astype("float64")
    stamps = _epoch_seconds(frame["ts"])
    uptime = pd.to_numeric(frame["uptime"], errors="coerce").astype("float64")
    # one clock per host for ordering: uptime when logged, else wall-clock seconds
    frame["_t"] = uptime.fillna(stamps).fillna(0.0)
    frame["_ts"] = fine_wall_clock(stamps, uptime, frame["host"], boot)
    frame["_prefix"] = text_codes(frame["prefix"])  # none and "" alike
    # a hook guessed from IN/OUT may be the later hook of its pattern: it may follow any hop
    guessed = frame["evidence"].eq("guess") if "evidence" in frame else False
    frame["_guess"] = np.asarray(guessed | frame["hook"].isna(), dtype=bool)
    frame["_ttl"] = pd.to_numeric(frame["ttl"], errors="coerce").astype("float64")
    return frame


def text_codes(column: pd.Series, missing: str = "") -> np.ndarray:
    """Per row, a number for its text (a missing one taken as ``missing``), for columns only
    ever compared and grouped: a categorical's few categories numbered, not its rows (made
    objects and hashed, a host or prefix column cost ~50 ms a million hops each time)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        texts = np.array([*column.cat.categories.astype(object), missing], dtype=object)
        code: np.ndarray = pd.factorize(texts)[0][column.cat.codes.to_numpy()]
        return code.astype(np.int64)
    return pd.factorize(column.astype("object").fillna(missing))[0].astype(np.int64)


def _epoch_seconds(ts: pd.Series) -> pd.Series:
    """Seconds since the epoch as float (NaN where the hop has no wall-clock time)."""
    stamps = pd.to_datetime(ts, utc=True)
    if stamps.isna().all():
        return pd.Series(np.nan, index=ts.index)
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.astype("float64")


def _local_packets(frame: pd.DataFrame) -> np.ndarray:
    """Segment id per hop: one packet on one host (pass 1). The chain visits of an nf_tables
    trace are grouped by their own rule (``_visit_packets``), the logged hops by time."""
    visits = frame["trace_id"].notna().to_numpy() if "trace_id" in frame else None
    if visits is None or not visits.any():
        return _logged_packets(frame)
    segment = np.zeros(len(frame), dtype=np.int64)
    if not visits.all():
        segment[~visits] = _logged_packets(frame[~visits].reset_index(drop=True))
    segment[visits] = _visit_packets(frame[visits]) + int(segment.max()) + 1
    return _dense(segment)


# What a trace visit keeps on its way through one host, besides LOCAL_KEY: where it came from
VISIT_COLUMNS = ["source", "trace_from", "trace_family", "trace_table", "trace_chain", "_ttl"]


def _visit_packets(visits: pd.DataFrame) -> np.ndarray:
    """Packet per trace visit, in line order: a visit joins the packet last seen with its
    identity (LOCAL_KEY, in the same file) unless that packet entered this base chain already
    (a packet passes each hook once: the next packet alike, an IPv6 ACK say, starts there) or
    its TTL went up. The trace id does not decide: the kernel changes it between hooks and
    reuses it (``logpath.nftrace``). Trace output has no time, so line order is the order."""
    order = np.lexsort((visits["lineno"].to_numpy(), visits["source"].astype(str).to_numpy()))
    keys = _group_numbers(visits, [*LOCAL_KEY, "source"])
    columns = [visits[c].astype("object").where(visits[c].notna(), None).tolist()
               for c in VISIT_COLUMNS]  # fmt: skip
    packet = np.empty(len(visits), dtype=np.int64)
    open_packets: dict[int, tuple[int, set[tuple[Any, ...]], float]] = {}
    count = 0
    for row in order.tolist():
        _, came_from, family, table, chain, ttl = (column[row] for column in columns)
        found = open_packets.get(int(keys[row]))
        entered = (family, table, chain) if came_from is None else None
        if found is None or entered in found[1] or not _ttl_kept(found[2], ttl):
            found, count = (count, set(), math.nan), count + 1
        if entered is not None:
            found[1].add(entered)
        open_packets[int(keys[row])] = (found[0], found[1], ttl if ttl is not None else found[2])
        packet[row] = found[0]
    return _dense(packet)


def _ttl_kept(before: float, now: float | None) -> bool:
    """A packet's TTL stays, or drops by one when it is routed."""
    if now is None or math.isnan(before) or math.isnan(now):
        return True
    return 0 <= before - now <= 1


def _logged_packets(frame: pd.DataFrame) -> np.ndarray:
    """Segment id per logged hop: one packet on one host."""
    frame["_key"] = _group_numbers(frame, LOCAL_KEY)
    order = np.lexsort(
        (
            frame["lineno"].to_numpy(),
            frame["_rank"].to_numpy(),
            frame["_t"].to_numpy(),
            frame["_key"].to_numpy(),
        )
    )
    segment = np.empty(len(frame), dtype=np.int64)
    compared = frame[["_key", "_t", "_rank", "_prefix", "_ttl", "_guess", *ASKED]]
    segment[order] = np.cumsum(~_continues(compared.iloc[order])) - 1
    tangled = _tangled_keys(frame)
    if tangled.size:
        _untangle(frame, segment, tangled)
    return _dense(segment)


def _group_numbers(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Per row, its group of equal ``columns`` (null equal to null), numbered in order of first
    appearance. Grouped by the columns some row shows: a column null on every row (most of
    the identity, on one protocol's hops) is one value that splits nothing, and cost a
    factorisation."""
    shown = [c for c in columns if frame[c].notna().any()] or columns[:1]
    return row_groups([frame[c] for c in shown])


def row_groups(columns: Sequence[pd.Series | np.ndarray]) -> np.ndarray:
    """Per row, its group of equal values in ``columns`` (null equal to null), numbered in
    order of first appearance: what ``groupby(..., dropna=False, sort=False).ngroup()`` gives.
    Each column factorised once and the codes combined as one integer (a quarter of the
    groupby's cost on a million hops)."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    size = 1
    for column in columns:
        code, distinct = _codes(column)
        if size * distinct >= 2**62:  # the combined codes would overflow: numbered densely
            key, found = pd.factorize(key)
            size = len(found)
        key = key * distinct + code
        size *= distinct
    numbers: np.ndarray = pd.factorize(key)[0].astype(np.int64)
    return numbers


def _codes(column: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """A column's values as codes 0..n-1 (null one of them), and n. Numbers that already are
    such codes (a group or prefix number, at most one per row) are taken as they are: hashing
    them again was most of grouping the hops by key, hook and prefix."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "iu" and len(column):
        low, high = int(column.min()), int(column.max())
        if low >= 0 and high < len(column):
            return column.astype(np.int64, copy=False), high + 1
    code, distinct = pd.factorize(column, use_na_sentinel=False)
    return code, len(distinct)


def _continues(ordered: pd.DataFrame) -> np.ndarray:
    """For hops sorted by key and time: does each hop continue the previous hop's packet?"""
    key, t, rank = (ordered[c].to_numpy() for c in ("_key", "_t", "_rank"))
    prefix, ttl = ordered["_prefix"].to_numpy(), ordered["_ttl"].to_numpy()
    guess = ordered["_guess"].to_numpy()
    continues = np.zeros(len(ordered), dtype=bool)
    if len(ordered) < 2:
        return continues
    gap = t[1:] - t[:-1]
    same_rank = (rank[1:] == rank[:-1]) | guess[1:] | guess[:-1]
    later_hook = (rank[1:] > rank[:-1]) | (same_rank & (prefix[1:] != prefix[:-1]))
    drop = ttl[:-1] - ttl[1:]
    ttl_ok = np.isnan(drop) | ((drop >= 0) & (drop <= 1))
    shown_alike = np.ones(len(ordered) - 1, dtype=bool)
    for helper in ASKED:
        value = ordered[helper].to_numpy()
        shown_alike &= _agree(value[:-1], value[1:])
    continues[1:] = (key[1:] == key[:-1]) & (gap >= 0) & (gap <= MAX_HOP_GAP) & later_hook & ttl_ok
    continues[1:] &= shown_alike
    return continues


def _agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise: equal, or not shown by one of the two (NaN)."""
    agree: np.ndarray = np.isnan(a) | np.isnan(b) | (a == b)
    return agree


def _tangled_keys(frame: pd.DataFrame) -> np.ndarray:
    """Keys where two packets may interleave: one hook (and prefix) logged more than once."""
    logged_at = row_groups([frame[c].to_numpy() for c in ("_key", "_rank", "_prefix")])
    again = np.bincount(logged_at)[logged_at] > 1
    return np.unique(frame["_key"].to_numpy()[again])


def _untangle(frame: pd.DataFrame, segment: np.ndarray, tangled: np.ndarray) -> None:
    """Reassign the hops of tangled keys, one at a time, to the open packet they continue best.

    A key's hops more than MAX_HOP_GAP apart share no packet (``_match_hops`` closes a
    packet that far behind), so each run of hops closer than that (a cluster) is matched on
    its own. A cluster whose every hop can continue the one before it (``_one_packet``) is one
    packet, as ``_match_hops`` finds it: only one packet is ever open there. The others are
    matched hop by hop: on the 2M-line replay, 64,000 of the 212,000 hops of tangled keys
    (matching all of them, a hop at a time, was a third of grouping the packets)."""
    next_id = int(segment.max()) + 1
    tangled_rows = frame["_key"].isin(tangled).to_numpy()
    rows = frame.loc[tangled_rows, ["_key", "lineno", *MATCH_COLUMNS, *ASKED]]
    rows = rows.sort_values(["_key", "_t", "_rank", "lineno"])
    index = rows.index.to_numpy()
    keys, t = rows["_key"].to_numpy(), rows["_t"].to_numpy(dtype="float64")
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (t[1:] - t[:-1] > MAX_HOP_GAP)])
    bounds = np.r_[starts, len(rows)]
    cluster = np.repeat(np.arange(len(starts)), np.diff(bounds))
    single = _one_packet(rows, cluster, starts)
    # per cluster, its packets numbered in order of their first hop (0 for one packet)
    matched = np.zeros(len(rows), dtype=np.int64)
    packets = np.ones(len(starts), dtype=np.int64)
    matching = np.flatnonzero(~single[cluster])
    if len(matching):
        part = rows.iloc[matching]
        # column by column, a tuple per hop: to_dict("records") boxed every cell one at a
        # time, and a dict per hop cost as much as the matching
        asked = zip(*(part[c].tolist() for c in ASKED), strict=True)
        hops = list(map(_Hop, *(part[c].tolist() for c in MATCH_COLUMNS), asked))
        within: list[int] = []
        ends = np.flatnonzero(np.r_[True, np.diff(cluster[matching]) != 0, True])
        for start, end in itertools.pairwise(ends.tolist()):
            found = _match_hops(hops[start:end])
            within += found
            packets[cluster[matching[start]]] = max(found) + 1
        matched[matching] = within
    # numbered after the others, key after key, cluster after cluster (as one key's hops
    # matched at once number them: its clusters' packets never mix)
    first_number = next_id + np.r_[0, np.cumsum(packets)[:-1]]
    segment[index] = matched + first_number[cluster]


def _one_packet(rows: pd.DataFrame, cluster: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per cluster of ``_untangle`` (``rows`` sorted as ``_match_hops`` takes them), whether
    ``_match_hops`` makes it one packet: no LOG prefix shown twice (a packet is logged once at
    each), and each hop one that packet can take after the hop before it (``can_take``: a
    later hook, or a guessed one; the TTL kept or one less; every ASKED field agreeing with
    the last one the packet showed). Times and hook ranks must be known."""
    t, rank = rows["_t"].to_numpy(dtype="float64"), rows["_rank"].to_numpy(dtype="float64")
    ttl, guess = rows["_ttl"].to_numpy(dtype="float64"), rows["_guess"].to_numpy(dtype=bool)
    fits = np.ones(len(rows), dtype=bool)
    fits[1:] = (rank[1:] >= rank[:-1]) | guess[1:] | guess[:-1]
    drop = ttl[:-1] - ttl[1:]
    fits[1:] &= np.isnan(drop) | ((drop >= 0) & (drop <= 1))
    position = np.arange(len(rows))
    first_of = starts[cluster]
    for helper in ASKED:
        value = rows[helper].to_numpy(dtype="float64")
        # the packet's last shown value: the cluster's latest hop before this one showing it
        shown = np.maximum.accumulate(np.where(np.isnan(value), -1, position))
        last = np.r_[-1, shown[:-1]]
        known = last >= first_of
        before = np.where(known, value[np.maximum(last, 0)], np.nan)
        fits &= _agree(before, value)
    fits[starts] = True  # a cluster's first hop opens its packet, whatever came before
    fits &= ~(np.isnan(t) | np.isnan(rank))
    prefix = row_groups([cluster, rows["_prefix"].to_numpy()])
    fits &= np.bincount(prefix)[prefix] == 1
    single: np.ndarray = np.logical_and.reduceat(fits, starts) if len(starts) else fits[:0]
    return single


# What _match_hops reads of each hop, besides the helpers of PRINTED_IF_ASKED.
MATCH_COLUMNS = ["_t", "_rank", "_prefix", "_ttl", "_guess", "dst", "dport"]


class _Hop(NamedTuple):
    """What _match_hops reads of a hop (MATCH_COLUMNS, then the ASKED helpers)."""

    t: float
    rank: float
    prefix: int  # text_codes
    ttl: float
    guess: bool
    dst: object
    dport: object
    asked: tuple[float, ...]  # NaN where the hop does not show the field


class _OpenPacket:
    """The last hop of a packet still being assembled by ``_match_hops``."""

    __slots__ = ("asked", "dport", "dst", "guess", "number", "rank", "t", "ttl")

    def __init__(self, number: int) -> None:
        self.number = number
        # what its hops showed of PRINTED_IF_ASKED (NaN: none showed it yet)
        self.asked = [math.nan] * len(ASKED)

    def can_take(self, hop: _Hop) -> bool:
        """Could ``hop``, at a hook (and prefix) this packet was not logged at yet, be its next
        hop (later hook, moments later, TTL kept or -1)?"""
        gap = hop.t - self.t
        if not 0 <= gap <= MAX_HOP_GAP:
            return False
        if hop.rank < self.rank and not (hop.guess or self.guess):
            return False
        drop = self.ttl - hop.ttl
        if not (math.isnan(drop) or 0 <= drop <= 1):
            return False
        # a field both show must agree; one that either does not show may be anything
        return all(
            math.isnan(shown) or math.isnan(value) or shown == value
            for shown, value in zip(self.asked, hop.asked, strict=True)
        )

    def score(self, hop: _Hop) -> tuple[int, float]:
        """Prefer the packet with the same destination (no NAT between), then the latest."""
        same = int(_same(self.dst, hop.dst)) + int(_same(self.dport, hop.dport))
        return same, self.t

    def take(self, hop: _Hop) -> None:
        """Make ``hop`` this packet's last hop."""
        self.t, self.rank, self.ttl = hop.t, hop.rank, hop.ttl
        self.guess = bool(hop.guess)
        self.dst, self.dport = hop.dst, hop.dport
        self.asked = [
            shown if math.isnan(value) else value
            for shown, value in zip(self.asked, hop.asked, strict=True)
        ]


def _same(a: object, b: object) -> bool:
    """Equality where two missing values are equal."""
    if missing(a) or missing(b):
        return missing(a) and missing(b)
    return bool(a == b)


def _match_hops(hops: list[_Hop]) -> list[int]:
    """Greedy matching in time order: each hop joins the open packet it continues best. Returns
    each hop's packet, numbered 0.. in order of their first hop.

    Hops come sorted by ``t``, and a packet takes no hop more than MAX_HOP_GAP after its last
    one: a packet that fell that far behind is closed for good and no longer scanned. Without
    this, every SYN-ACK of one listener (IP ID 0, one window: one identity key) was compared
    with every packet of that key before it, quadratic in the listener's connections.
    """
    # the open packets not logged at each prefix yet, by number ascending (a dict keeps the
    # order they were opened in): a packet passes a hook once, so a hop scans only those. On a
    # busy host's log, scanning every open packet of a tangled key (the SYN-ACKs of one
    # listener) was 8.5% of the ingest's CPU, most of them logged at the hop's hook already
    waiting: dict[int, dict[int, _OpenPacket]] = {hop.prefix: {} for hop in hops}
    assigned = []
    count = 0
    for hop in hops:
        now = hop.t
        lacking = waiting[hop.prefix]
        closed = []
        best: _OpenPacket | None = None
        best_score = (0, 0.0)
        for number, packet in lacking.items():
            if now - packet.t > MAX_HOP_GAP:  # (closed for good: the hops come in time order)
                closed.append(number)
                continue
            if not packet.can_take(hop):
                continue
            # the tie-break: the latest opened of equal scores (the last one scanned)
            score = packet.score(hop)
            if best is None or score >= best_score:
                best, best_score = packet, score
        for number in closed:
            del lacking[number]
        if best is None:
            best = _OpenPacket(count)
            count += 1
            for others in waiting.values():
                others[best.number] = best
        best.take(hop)
        del lacking[best.number]
        assigned.append(best.number)
    return assigned


def _dense(ids: np.ndarray) -> np.ndarray:
    """Renumber ids 0..n-1 (keeping their order). Ids at most a few times their count (a
    chunk's segments and packets) are ranked by a table of those used, without a sort."""
    if len(ids) and ids.min() >= 0 and ids.max() <= 4 * len(ids):
        used = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        used[ids] = 1
        rank: np.ndarray = (np.cumsum(used) - 1)[ids]
        return rank.astype(np.int64, copy=False)
    return np.unique(ids, return_inverse=True)[1].astype(np.int64)


def _join_across_hosts(
    frame: pd.DataFrame, clocks: Clocks | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Pass 2: per segment, its packet id and its leg (0 = first host on the journey); and how
    far each host's clock runs ahead ({} with one host, or when no packet shows it).

    A packet is joined between two hosts only where ``clocks`` (or, without them, these hops)
    show a link: packets with an IP ID that both hosts logged (``logpath.clocks``). A fleet's
    Docker hosts number their containers alike and reuse each other's ports; a SYN-ACK (IP ID
    0) from one container's port 80 matched another host's, and ~5% of three busy Docker
    hosts' connections took packets of the others (benchmarks/generate_fleet.py --stagger 0).
    """
    # each segment's first and last hop found on the sort columns, then only those rows taken
    # of the columns read below (sorting the columns, then dropping duplicates, moved every
    # hop's cells three times: half of this pass on a million hops)
    read = frame[[c for c in JOIN_COLUMNS if c in frame.columns]]
    first_rows, last_rows = _segment_ends(frame)
    exits = read.take(last_rows[frame["out_iface"].notna().to_numpy()[last_rows]])
    first = read.take(first_rows)
    entering = first["in_iface"].notna()
    ahead: dict[str, float] = {}
    several_hosts = first["host"].nunique() > 1
    crossing = several_hosts  # hosts a packet may pass between (late entries: below)
    if several_hosts:
        if clocks is None or (clocks.links is None and not clocks.ahead):
            learned = _clock_links(exits, first[entering])
            clocks = Clocks(ahead=walk(learned), links=linked_pairs(learned))
        # compare hosts' lines on one clock: each host's wall clock set back by its offset
        ahead = dict(clocks.ahead)
        if ahead:
            exits = exits.assign(_ts=exits["_ts"] - offsets_of(exits["host"], ahead))
            first = first.assign(_ts=first["_ts"] - offsets_of(first["host"], ahead))
        if clocks.links is not None and first["host"].notna().all():
            # hosts no link joins are never paired: not made candidates, then dropped (a
            # fleet's Docker hosts' SYN-ACKs from port 80 paired with each other by the
            # thousand; a 4-Docker-host fleet's ingest took 0.90 of the CPU without them)
            exits = exits.assign(_group=_groups_of(exits["host"], clocks.links))
            first = first.assign(_group=_groups_of(first["host"], clocks.links))
            # each host its own group: a late entry (on another host) pairs with no exit, and
            # finding none cost a third of a busy two-host follow's loop
            hosts = pd.concat([exits[["host", "_group"]], first[["host", "_group"]]])
            crossing = bool(hosts.drop_duplicates()["_group"].duplicated().any())
    pairs = _exit_entry_pairs(
        exits, first[entering & (first["_stage"] == 0) & first["out_iface"].isna()]
    )
    pairs = pairs[~_passes_again(frame, pairs)]
    if crossing:
        # A host that logs only in filter INPUT/FORWARD (the usual setup) first shows an
        # arriving packet there, not at PREROUTING: without these entries each host's hops of
        # a connection made a packet, and a flow, of their own (tests/test_two_hosts.py).
        late = first[entering & (first["_stage"] == 1) & first["host"].notna()]
        if not late.empty:
            pairs = pd.concat([pairs, _late_entry_pairs(exits, late)])
    if several_hosts and clocks is not None and not pairs.empty:
        pairs = pairs[clocks.linked(pairs["host_exit"].to_numpy(), pairs["host_entry"].to_numpy())]
    links = _one_to_one(pairs)
    count = int(frame["_segment"].max()) + 1
    parent = np.arange(count, dtype=np.int64)
    entry = links["_segment_entry"].to_numpy(dtype=np.int64)
    parent[entry] = links["_segment_exit"].to_numpy(dtype=np.int64)
    packet, leg = _roots_and_depths(parent)
    return packet, leg, ahead


def _one_to_one(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs joined: each exit to one entry at most, each entry to one exit at most.

    An exit and an entry that are each other's only candidate are joined. Where alike packets
    compete (IPv6 has no IP ID: a connection's bare ACKs are alike in length, window and
    flags), their order decides, not the closest time alone: alike packets leave a host and
    enter the next in the order they left (a link does not reorder one flow's packets), so
    of the joins without crossings the most, then the closest, are kept (``_in_order``).
    Taking each exit's closest entry joined a second ACK to the first's entry when the first
    was slow to arrive, and left both ends of the first and the second's entry a packet of
    their own (a live two-host run under load: 11 packets where hosta forwarded 10).

    The order binds the packets of one link only (from one host to one other): alike packets
    from two gateways to one server cross in time as their links' delays have it. An entry
    two links chose goes to the closer exit, and the pairs left are chosen again, none
    crossing one kept on its link.
    """
    if pairs.empty:
        return pairs
    # a pair found twice (a late entry sharing both ports) counts once, at its smallest gap
    pairs = pairs.sort_values("_gap", kind="stable").drop_duplicates(
        ["_segment_exit", "_segment_entry"]
    )
    exit_, entry = pairs["_segment_exit"].to_numpy(), pairs["_segment_entry"].to_numpy()
    contested = _repeated(exit_) | _repeated(entry)
    if not contested.any():
        return pairs
    rivals = pairs[contested]
    exits, entries = _order(rivals, "exit"), _order(rivals, "entry")
    exit_, entry = exit_[contested], entry[contested]
    gap = rivals["_gap"].to_numpy(dtype="float64")
    link = row_groups([rivals["host_exit"], rivals["host_entry"]])
    group = row_groups([_components(rivals), link])
    kept = np.zeros(len(rivals), dtype=bool)
    open_ = np.ones(len(rivals), dtype=bool)
    while open_.any():
        rows = np.flatnonzero(open_)
        chosen = rows[_in_order(group[rows], exits[rows], entries[rows], gap[rows])]
        # an exit or an entry chosen on two links: the closer pair takes it
        chosen = chosen[np.argsort(gap[chosen], kind="stable")]
        chosen = chosen[_first_of(exit_[chosen])]
        chosen = chosen[_first_of(entry[chosen])]
        kept[chosen] = True
        open_ &= ~np.isin(exit_, exit_[chosen]) & ~np.isin(entry, entry[chosen])
        rows = np.flatnonzero(open_)
        open_[rows] = ~_crossing(rows, group, exits, entries, np.flatnonzero(kept))
    keep = ~contested
    keep[np.flatnonzero(contested)[kept]] = True
    joined: pd.DataFrame = pairs[keep]
    return joined


def _first_of(values: np.ndarray) -> np.ndarray:
    """Per value, whether no earlier row holds it."""
    first = np.zeros(len(values), dtype=bool)
    first[np.unique(values, return_index=True)[1]] = True
    return first


def _crossing(
    rows: np.ndarray, group: np.ndarray, exits: np.ndarray, entries: np.ndarray, kept: np.ndarray
) -> np.ndarray:
    """Per row of ``rows``, whether its pair crosses a ``kept`` pair of its group: the kept
    pairs of a group follow one order, so the kept pairs on either side of its exit tell."""
    if not len(kept) or not len(rows):
        return np.zeros(len(rows), dtype=bool)
    span = int(exits.max()) + 1
    order = np.argsort(group[kept] * span + exits[kept], kind="stable")
    kept = kept[order]
    keys = group[kept] * span + exits[kept]
    at = np.searchsorted(keys, group[rows] * span + exits[rows])
    before, after = np.maximum(at - 1, 0), np.minimum(at, len(kept) - 1)
    crosses_before = (at > 0) & (group[kept[before]] == group[rows])
    crosses_before &= entries[kept[before]] > entries[rows]
    crosses_after = (at < len(kept)) & (group[kept[after]] == group[rows])
    crosses_after &= entries[kept[after]] < entries[rows]
    crossing: np.ndarray = crosses_before | crosses_after
    return crossing


def _repeated(values: np.ndarray) -> np.ndarray:
    """Per value, whether it occurs more than once."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    repeated: np.ndarray = counts[inverse] > 1
    return repeated


def _components(pairs: pd.DataFrame) -> np.ndarray:
    """Per pair, a number shared by the pairs linked through a common exit or entry.

    Each pass hooks the root of every pair's larger label under the smaller, then points
    every end at its root: a few passes, where spreading labels one pair a pass took 2,812
    passes (2.2 s) for one chain of 20,000 alike packets."""
    exit_, exits = pd.factorize(pairs["_segment_exit"])
    entry, _ = pd.factorize(pairs["_segment_entry"])
    entry = entry + len(exits)  # one numbering for both ends
    root = np.arange(entry.max() + 1)
    while True:
        low = np.minimum(root[exit_], root[entry])
        high = np.maximum(root[exit_], root[entry])
        if np.array_equal(low, high):
            component: np.ndarray = root[exit_]
            return component
        np.minimum.at(root, high, low)
        while True:  # every node pointed at its root
            above = root[root]
            if np.array_equal(above, root):
                break
            root = above


def _order(pairs: pd.DataFrame, side: str) -> np.ndarray:
    """Per pair, the rank of its exit (or entry) among all, by time then segment."""
    time = pairs[f"_ts_{side}"].fillna(pairs[f"_t_{side}"]).to_numpy(dtype="float64")
    segment = pairs[f"_segment_{side}"].to_numpy()
    keys = np.lexsort((segment, time))
    fresh = np.r_[
        True, (time[keys][1:] != time[keys][:-1]) | (segment[keys][1:] != segment[keys][:-1])
    ]
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[keys] = np.cumsum(fresh) - 1
    return rank


def _in_order(
    component: np.ndarray, exits: np.ndarray, entries: np.ndarray, gap: np.ndarray
) -> np.ndarray:
    """Per pair, whether it is kept: in each component, the matching in which exits and
    entries follow the same order (their ranks), the largest, then the one with the smallest
    sum of gaps. Sparse dynamic programming over a component's pairs by exit rank, a chain's
    best end below each entry rank in a Fenwick tree (prefix maxima). Arrays, not a frame
    per component: a busy IPv6 store has a component per connection's alike ACKs."""
    by = np.lexsort((-entries, exits, component))
    bounds = np.flatnonzero(np.r_[True, component[by][1:] != component[by][:-1], True])
    local = _ranks_within(component, entries)
    # lists sliced per component: numpy's calls per slice were half the time of 50,000 small
    # components
    exit_list, local_list, gap_list = (a[by].tolist() for a in (exits, local, gap))
    chosen = [
        start + at
        for start, end in itertools.pairwise(bounds.tolist())
        for at in _chain(exit_list[start:end], local_list[start:end], gap_list[start:end])
    ]
    kept = np.zeros(len(component), dtype=bool)
    kept[by[np.array(chosen, dtype=np.int64)]] = True
    return kept


def _ranks_within(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, the dense rank of its value among its group's (0 for each group's least)."""
    by = np.lexsort((values, group))
    first = np.r_[True, group[by][1:] != group[by][:-1]]
    dense = np.cumsum(first | np.r_[True, values[by][1:] != values[by][:-1]]) - 1
    ranks = np.empty(len(group), dtype=np.int64)
    ranks[by] = dense - np.maximum.accumulate(np.where(first, dense, 0))
    return ranks


def _chain(exits: list[int], entries: list[int], gap: list[float]) -> list[int]:
    """The positions of the best chain of pairs (``_in_order``), given in exit order, later
    entries first within an exit; ``entries`` ranked 0.. within the component."""
    tree: list[tuple[int, float, int]] = [(0, 0.0, -1)] * (max(entries) + 2)
    best: list[tuple[int, float, int]] = []
    back: list[int] = []
    pending: list[int] = []
    for at, (exit_, entry) in enumerate(zip(exits, entries, strict=True)):
        if pending and exits[pending[0]] != exit_:  # chains of an earlier exit may now grow
            for done in pending:
                _raise(tree, entries[done] + 1, best[done])
            pending = []
        count, cost, last = _prefix_best(tree, entry)
        best.append((count + 1, cost - gap[at], at))
        back.append(last)
        pending.append(at)
    end = max(range(len(best)), key=lambda at: best[at][:2])
    chain = []
    while end >= 0:
        chain.append(end)
        end = back[end]
    return chain


def _prefix_best(tree: list[tuple[int, float, int]], below: int) -> tuple[int, float, int]:
    """The best chain end among entries ranked below ``below`` (0-based ranks)."""
    found = (0, 0.0, -1)
    while below > 0:
        if tree[below][:2] > found[:2]:
            found = tree[below]
        below -= below & -below
    return found


def _raise(tree: list[tuple[int, float, int]], at: int, value: tuple[int, float, int]) -> None:
    """Offer ``value`` as a chain end at 1-based position ``at`` and every range holding it."""
    while at < len(tree):
        if value[:2] > tree[at][:2]:
            tree[at] = value
        at += at & -at


def _segment_ends(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each segment's first and last hop (by time, hook rank and line), segments
    in order of their number."""
    order = np.lexsort(
        (
            frame["lineno"].to_numpy(dtype="float64", na_value=np.inf),
            frame["_rank"].to_numpy(dtype="float64"),
            frame["_t"].to_numpy(dtype="float64"),
            frame["_segment"].to_numpy(),
        )
    )
    segment = frame["_segment"].to_numpy()[order]
    starts = np.r_[True, segment[1:] != segment[:-1]]
    return order[starts], order[np.r_[starts[1:], True]]


def _groups_of(hosts: pd.Series, links: frozenset[tuple[str, str]]) -> np.ndarray:
    """Per row, its host's group (``clocks.host_groups``)."""
    code, names = pd.factorize(hosts.astype("object"))
    groups: np.ndarray = np.array(host_groups([str(n) for n in names], links), dtype=np.int64)
    return groups[code]


def _passes_again(frame: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    """Per pair, whether its entry segment was logged on the same host by a LOG rule (prefix)
    at a hook where its exit segment was logged too: a packet passes each hook once, so that is
    another packet with the same identity (IPv6 has no IP ID: the ACKs of one bridged
    connection, alike in length and flags, once all joined into one). A packet re-entering its
    host through loopback or a veth shows other hooks (OUTPUT, POSTROUTING; then PREROUTING)."""
    if pairs.empty:
        return np.zeros(0, dtype=bool)
    seen = frame[["_segment", "_prefix", "_hook", "host"]].drop_duplicates()
    seen = seen.assign(host=seen["host"].astype("object").fillna(""))
    candidates = pairs[["_segment_exit", "_segment_entry"]].reset_index(drop=True)
    candidates["_pair"] = np.arange(len(candidates))
    exits = candidates.merge(seen, left_on="_segment_exit", right_on="_segment")
    both = exits.merge(
        seen,
        left_on=["_segment_entry", "_prefix", "_hook", "host"],
        right_on=["_segment", "_prefix", "_hook", "host"],
    )
    again = np.zeros(len(candidates), dtype=bool)
    again[both["_pair"].to_numpy()] = True
    return again


# What _join_across_hosts and its helpers read of each hop.
JOIN_COLUMNS = list(
    dict.fromkeys(
        [
            *CROSS_HOST_IDENTITY,
            *("id", "dst", "dport", "src", "sport", "host", "in_iface", "out_iface", "physout"),
            *("_segment", "_t", "_ts", "_rank", "_stage", "_hook", "_ttl", "lineno"),
            *ASKED,
        ]
    )
)


def _clock_links(exits: pd.DataFrame, entries: pd.DataFrame) -> dict[tuple[str, str], float]:
    """The links between hosts (``clocks.solve``), learned from the packets seen leaving one
    host and entering another; {} when no packet links two hosts.

    Hosts without NTP, or logging local time in different zones, disagree by seconds to hours,
    and packets are joined across hosts by wall-clock time. A packet with a non-zero IP ID shows
    the same identity on both hosts (same IP ID, length, flags, TCP window...) and arrives with
    the TTL it left with (one more than a routed FORWARD hop shows), whatever the clocks say:
    the median time difference of such pairs between two hosts is their offset (the transit
    itself takes microseconds). A link between two hosts counts when at least
    clocks.MIN_CLOCK_PAIRS pairs give it and most of them agree with their median within
    MAX_HOP_GAP, so a chance match of identities does not move a clock.
    """
    routed = entries["_hook"].eq("FORWARD") & entries["physout"].isna()
    entries = entries.assign(_ttl=entries["_ttl"] + routed.astype("float64"))
    keys = [*CROSS_HOST_IDENTITY, "_ttl"]
    strong = exits[pd.to_numeric(exits["id"], errors="coerce").fillna(0).ne(0)]
    pairs = strong[[*keys, "host", "_ts"]].merge(
        entries[[*keys, "host", "_ts"]], on=keys, suffixes=("_exit", "_entry")
    )
    pairs = pairs[
        pairs["host_exit"].notna()
        & pairs["host_entry"].notna()
        & (pairs["host_exit"] != pairs["host_entry"])
    ]
    if pairs.empty:
        return {}
    later = pairs["_ts_entry"] - pairs["_ts_exit"]
    return solve(
        pairs["host_exit"].astype(str), pairs["host_entry"].astype(str), later, MAX_HOP_GAP
    )


def _exit_entry_pairs(
    exits: pd.DataFrame, entries: pd.DataFrame, keys: list[str] | None = None
) -> pd.DataFrame:
    """Pairs (exit segment, entry segment) that may be one packet passing from one host to the
    next, with ``_gap`` (seconds apart); ``_one_to_one`` chooses among them.

    By default, same identity, destination, destination port and TTL (the next host sees the
    TTL the packet left with); the source may differ only by SNAT; moments apart.
    """
    keys = keys or [*CROSS_HOST_IDENTITY, "dst", "dport", "_ttl"]
    if "_group" in exits.columns:  # hosts' groups (_join_across_hosts)
        keys = [*keys, "_group"]
    columns = [c for c in ["_segment", "_t", "_ts", "host", "src", "sport", "dst", *ASKED]
               if c not in keys]  # fmt: skip
    # joined on the keys some hop shows: one no hop of either side shows (ICMP's fields on TCP
    # traffic, ARP's...) is null on every row, and null matches null; its column still comes
    # from the exits, where the join would have taken it
    shown = [k for k in keys if exits[k].notna().any() or entries[k].notna().any()] or keys[:1]
    prefilter = [k for k in PREFILTER_KEYS if k in shown]
    exits, entries = _sharing(exits[[*keys, *columns]], entries[[*shown, *columns]], prefilter)
    pairs = exits.merge(entries, on=shown, suffixes=("_exit", "_entry"))
    same_host = pairs["host_exit"].isna() & pairs["host_entry"].isna() | (
        pairs["host_exit"] == pairs["host_entry"]
    )
    # the same host (or one log without host names) shares one clock; others share wall time
    gap = (pairs["_t_entry"] - pairs["_t_exit"]).where(
        same_host, pairs["_ts_entry"] - pairs["_ts_exit"]
    )
    low = np.where(same_host, 0.0, -MAX_HOP_GAP)
    same_src = pairs["src_exit"] == pairs["src_entry"]
    port_kept = pairs["sport_exit"].isna() & pairs["sport_entry"].isna() | (
        pairs["sport_exit"] == pairs["sport_entry"]
    )
    fits = (gap >= low) & (gap <= MAX_HOP_GAP) & (~same_src | port_kept.fillna(False))
    fits &= pairs["_segment_exit"] != pairs["_segment_entry"]
    for helper in ASKED:
        fits &= _agree(pairs[f"{helper}_exit"].to_numpy(), pairs[f"{helper}_entry"].to_numpy())
    pairs = pairs.assign(_gap=gap.abs())[fits.fillna(False).to_numpy(dtype=bool)]
    return pairs.sort_values("_gap")


# Keys of ``_exit_entry_pairs``' join with many values and cheap to factorise (integers): the
# rows whose values of these no row of the other side shares are dropped before the join.
PREFILTER_KEYS = ["id", "len", "_ttl"]


def _sharing(
    exits: pd.DataFrame, entries: pd.DataFrame, keys: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exits and entries whose ``keys`` (null equal to null, as the join takes them) some
    row of the other side shows too: the join's pairs are those of these rows alone, in the
    same order. The join factorised its dozen keys on every row (~55 ms of a 200,000-hop chunk
    of one host, to find no pair); these few integers sort out most rows first."""
    if not keys:
        return exits, entries
    both = row_groups([pd.concat([exits[k], entries[k]], ignore_index=True) for k in keys])
    of_exits, of_entries = both[: len(exits)], both[len(exits) :]
    return (
        exits[np.isin(of_exits, of_entries)],
        entries[np.isin(of_entries, of_exits)],
    )


def _late_entry_pairs(exits: pd.DataFrame, entries: pd.DataFrame) -> pd.DataFrame:
    """Exit-entry pairs where the entry, on another host, is first seen at INPUT or FORWARD.

    Its PREROUTING (unlogged) may have changed its destination: DNAT, or the de-SNAT of a
    reply. NAT keeps the client's port unless it is taken, so an orig packet still has its
    source port and a reply its destination port: the pair must share one of them (an ICMP
    echo its id, an ICMP error the source port of the packet it quotes; without any, the
    destination). A routed FORWARD hop shows the TTL already lowered; a bridged one
    (PHYSOUT) does not. Hosts' clocks differ, so they are compared by wall-clock time, in
    neighbouring buckets of MAX_HOP_GAP seconds (a join on ports alone would pair, say, every
    SYN-ACK a server port sent with IP ID 0 with every other).
    """
    routed = entries["_hook"].eq("FORWARD") & entries["physout"].isna()
    entries = entries.assign(
        _ttl=entries["_ttl"] + routed.astype("float64"),
        _bucket=np.floor(entries["_ts"] / MAX_HOP_GAP),
    )
    bucket = np.floor(exits["_ts"] / MAX_HOP_GAP)
    exits = pd.concat([exits.assign(_bucket=bucket + step) for step in (-1.0, 0.0, 1.0)])
    keys = [*CROSS_HOST_IDENTITY, "_ttl", "_bucket", "_port"]
    found = [
        _exit_entry_pairs(
            exits.assign(_port=exits[port]), entries.assign(_port=entries[port]), keys
        )
        for port in ("sport", "dport")
    ]
    pairs = pd.concat(found)
    other_host = pairs["host_exit"] != pairs["host_entry"]
    # An ICMP echo's id and the source port of the packet an ICMP error quotes are kept by NAT
    # like a port, and the pair shares them already (identity): without them, an echo reply
    # or an error arriving de-SNATed (new destination) stayed a packet of its own on each host
    # (tests/test_two_hosts.py, udp-icmp-ipv6 without PREROUTING lines).
    ported = pairs["_port"].notna() | pairs["icmp_id"].notna() | pairs["inner_sport"].notna()
    return pairs[other_host & (ported | (pairs["dst_exit"] == pairs["dst_entry"]))]


def _roots_and_depths(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointer jumping: the first segment of each chain and each segment's position in it."""
    depth = (parent != np.arange(parent.size)).astype(np.int64)
    for _ in range(64):  # 2**64 hosts deep: ends even if a clock skew made a cycle
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        depth = depth + depth[parent]
        parent = grand
    return parent, depth


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Renumber packets by the time of their first hop, order the hops, drop helper columns.

    The order is found on the few sort columns and the hop table taken once in it: sorting the
    whole table (every hop column) twice was most of this step on a million hops.
    """
    hop_order = _hop_order(frame)
    # per packet (its hops are together, in hop order): its earliest wall-clock time, its first
    # hop's clock and line (the first known: NaN where none is); numpy, not a groupby, a sort
    # and a reindex of pandas
    was = frame["_packet"].to_numpy()[hop_order]
    first_hop = np.r_[True, was[1:] != was[:-1]] if len(was) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(first_hop)
    group = np.cumsum(first_hop) - 1
    ts = frame["_ts"].to_numpy(dtype="float64", na_value=np.nan)[hop_order]
    earliest = np.fmin.reduceat(ts, starts) if len(starts) else ts[:0]
    t = _first_known(frame["_t"].to_numpy(dtype="float64", na_value=np.nan)[hop_order], starts)
    line = frame["lineno"].to_numpy(dtype="float64", na_value=np.nan)[hop_order]
    order = np.lexsort((_first_known(line, starts), t, earliest))  # stable, NaN last
    number = np.empty(len(order), dtype=np.int64)
    number[order] = np.arange(len(order), dtype=np.int64)
    packet = number[group]
    # hops already in (packet, leg, time, hook, line) order within a packet: only the packets
    # move, to their new numbers (a stable sort keeps each packet's hops in order)
    regroup = np.argsort(packet, kind="stable")
    taken = hop_order[regroup]
    packet = packet[regroup]
    helpers = [c for c in frame.columns if c.startswith("_")]
    result = frame.drop(columns=helpers).take(taken).reset_index(drop=True)
    result["packet"] = packet
    result["leg"] = frame["_leg"].to_numpy()[taken].astype("int64")
    first_hop = np.ones(len(packet), dtype=bool)
    first_hop[1:] = packet[1:] != packet[:-1]
    start_of = np.maximum.accumulate(np.where(first_hop, np.arange(len(packet)), 0))
    result["hop_n"] = (np.arange(len(packet)) - start_of).astype("int64")
    return result


def _first_known(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group of ``values`` (the groups begin at ``starts``), its first value that is not
    NaN, NaN when there is none (what pandas' ``first`` takes)."""
    known = np.where(np.isnan(values), len(values), np.arange(len(values)))
    if not len(starts):
        return values[:0]
    at = np.minimum.reduceat(known, starts)
    ends = np.r_[starts[1:], len(values)]
    inside = at < ends
    found = np.full(len(starts), np.nan)
    found[inside] = values[at[inside]]
    return found


def _hop_order(frame: pd.DataFrame) -> np.ndarray:
    """Positions of the hops sorted by packet, leg, time, hook rank and line (stable)."""
    return np.lexsort(
        (
            frame["lineno"].to_numpy(dtype="float64", na_value=np.inf),
            frame["_rank"].to_numpy(dtype="float64"),
            frame["_t"].to_numpy(dtype="float64"),
            frame["_leg"].to_numpy(),
            frame["_packet"].to_numpy(),
        )
    )


def refine_guessed_hooks(packets: pd.DataFrame) -> pd.DataFrame:
    """Correct hooks guessed from IN/OUT by the packet's hop order (evidence stays "guess").

    A guessed hook is moved to the later hook its IN/OUT pattern allows when an earlier hop of
    the packet on the same host already reached that later stage, or when the destination
    changed since the packet's first hop there (DNAT happens between the two hooks).
    """
    if "evidence" not in packets.columns or not packets["evidence"].eq("guess").any():
        return packets
    frame = packets.copy()
    hook = frame["hook"].astype("object")
    stage = hook.map(HOOK_STAGE).astype("float64")
    leg = [frame["packet"].to_numpy(), frame["leg"].to_numpy()]
    reached = stage.groupby(leg).cummax().groupby(leg).shift(1)
    first_dst = frame["dst"].astype("object").groupby(leg).transform("first")
    later = hook.map(LATER_HOOK)
    moved = frame["dst"].astype("object").ne(first_dst) & hook.isin(["PREROUTING", "OUTPUT"])
    refine = frame["evidence"].eq("guess") & later.notna()
    refine &= (reached >= later.map(HOOK_STAGE)).fillna(False) | moved
    frame["hook"] = hook.where(~refine, later)
    return frame
