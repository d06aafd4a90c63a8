"""Connections as conntrack sees them: packets grouped into flows, orig/reply, NAT, TCP state.

A flow is one conntrack entry: an original tuple (as the first packet showed it before any NAT)
and a reply tuple (as the answers arrive, before they are de-NATed). Every packet is marked orig
or reply, and every hop whether the addresses it shows are the original or the translated ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from logpath.nat import FEW_ROWS, nat_marks
from logpath.packets import map_few, missing, row_groups, text_codes
from logpath.records import (
    NAT_TYPES,
    PORTED,
    ConnTuple,
    Flow,
    Translation,
    format_endpoint,
    key_tuple,
)

__all__ = [  # the records, importable from here as before they had a module of their own
    "NAT_TYPES",
    "PORTED",
    "ConnTuple",
    "Flow",
    "Translation",
    "format_endpoint",
    "key_tuple",
]

FLOW_DIRECTIONS = ("orig", "reply")
# ICMP echo request/reply types (v4, v6): the echo identifier stands in for the source port.
ECHO_TYPES = frozenset({0, 8, 128, 129})
# Where the ports a client picks for itself begin (Linux: 32768-60999; IANA: 49152-65535)
EPHEMERAL_PORTS = 32768
# An ARP packet's tuple protocol (its sender and target addresses for the tuple's); its
# opcodes: a request opens the "connection", a reply answers it (RFC 826).
ARP = "arp"
ARP_REQUEST, ARP_REPLY = 1, 2
# An ARP tuple marks the asker's side in a port slot (the request's destination port, the
# reply's source port): a request and the reply to it are then reverses of each other, while a
# request and a reply going the same way (two exchanges, each host asking the other) are not,
# as conntrack keeps an ICMP type in its tuples. The flows table shows an ARP flow no ports.
ARP_ASKER = 1
# How long an idle tuple stays one connection (conntrack defaults: udp 120 s after a reply,
# icmp 30 s); tcp connections end by FIN/RST and a new SYN instead.
IDLE_TIMEOUT = {"udp": 180.0, "udplite": 180.0, "icmp": 30.0, "icmpv6": 30.0, ARP: 30.0}
DEFAULT_IDLE_TIMEOUT = 600.0

HOP_COLUMNS = ("flow", "direction", "related", "translated", "nat_mark")
"""Columns assign_flows adds per hop: ``flow`` (flow id), ``direction`` ("orig"|"reply"),
``related`` (an ICMP error quoting the flow's packet), ``translated`` (bool) and ``nat_mark``
(what NAT changed since the previous hop of the packet, or None)."""


# The conntrack view hop_tuples adds (besides ``related``).
TUPLE_COLUMNS = ("t_proto", "t_src", "t_sport", "t_dst", "t_dport")


def hop_tuples(hops: pd.DataFrame) -> pd.DataFrame:
    """Per hop the conntrack view: ``t_proto``, ``t_src``, ``t_sport``, ``t_dst``, ``t_dport``.

    An ICMP error is keyed by the packet it quotes (``inner_*``), so it joins that packet's
    flow; an ICMP echo's identifier takes the source port's place; an ARP packet (no IP
    header) is keyed by its sender and target addresses (``ARP``), so a reply joins its
    request.
    """
    related = column_or_null(hops, "inner_src").notna() & column_or_null(hops, "inner_dst").notna()
    proto = column_or_null(hops, "proto").astype("object")
    echo = proto.isin(["icmp", "icmpv6"]) & column_or_null(hops, "icmp_type").isin(ECHO_TYPES)
    sport = _int_column(hops, "sport").where(~echo, _int_column(hops, "icmp_id"))
    inner_proto = column_or_null(hops, "inner_proto").astype("object")
    inner_sport = _int_column(hops, "inner_sport").fillna(_int_column(hops, "inner_icmp_id"))
    arp = proto.isna() & column_or_null(hops, "arp_ipsrc").notna()
    src = column_or_null(hops, "src").where(~arp, column_or_null(hops, "arp_ipsrc"))
    dst = column_or_null(hops, "dst").where(~arp, column_or_null(hops, "arp_ipdst"))
    opcode = _int_column(hops, "arp_opcode")
    sport = sport.where(~arp, pd.Series(ARP_ASKER, index=hops.index).where(opcode == ARP_REPLY))
    dport = _int_column(hops, "dport").where(~arp, ARP_ASKER).where(~arp | (opcode == ARP_REQUEST))
    return pd.DataFrame(
        {
            "t_proto": proto.where(~arp, ARP).where(~related, inner_proto),
            "t_src": src.where(~related, column_or_null(hops, "inner_src")),
            "t_sport": sport.where(~related, inner_sport),
            "t_dst": dst.where(~related, column_or_null(hops, "inner_dst")),
            "t_dport": dport.where(~related, _int_column(hops, "inner_dport")),
            "related": related.to_numpy(dtype=bool),
        },
        index=hops.index,
    )


# The hop columns tuple_nodes reads
NODE_COLUMNS = ("host", "proto", "src", "dst", "sport", "dport", "icmp_type", "icmp_id",
                 "inner_src", "inner_dst", "inner_proto", "inner_sport", "inner_dport",
                 "inner_icmp_id", "arp_ipsrc", "arp_ipdst")  # fmt: skip


def linked_by_tuples(
    flow: np.ndarray, node: np.ndarray, reached: np.ndarray, shown: np.ndarray
) -> np.ndarray:
    """``reached`` (per connection, numbered as in ``flow``: each row's connection) grown by
    every connection with a row whose tuple node (``node``: each row's ``tuple_nodes`` code) a
    reached connection's row shows, or ``shown`` (per code) marks, until none is added: a tuple
    used again is split into connections by time, so its whole chain is assembled again.
    Follow's window and a run that adds hops to a store tell by it which connections new hops
    reach."""
    shown = shown.copy()
    while True:
        shown[node[reached[flow]]] = True
        grown = reached.copy()
        grown[flow[shown[node]]] = True
        if (grown == reached).all():
            return reached
        reached = grown


class _HopTuple(NamedTuple):
    """Per hop, its conntrack tuple's columns as Arrow arrays (``_hop_tuple``), missing where
    the hop does not show them: its host, the tuple's protocol, addresses and ports (an echo's
    identifier as its source port), and whether it is an ICMP echo (ports kept both ways)."""

    host: pa.Array
    proto: pa.Array
    src: pa.Array
    sport: pa.Array
    dst: pa.Array
    dport: pa.Array
    echo: pa.Array


def _hop_tuple(hops: pa.Table) -> _HopTuple:
    """What ``tuple_nodes`` and ``tuple_node_codes`` read of each hop: its tuple as
    ``hop_tuples`` finds it (an ICMP error's, the one it quotes), with Arrow's kernels."""

    def column(name: str, type_: pa.DataType) -> pa.Array:
        if name not in hops.column_names:
            return pa.nulls(hops.num_rows, type_)
        values = hops[name]
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return pc.cast(values, type_)

    related = pc.and_(pc.is_valid(column("inner_src", pa.string())),
                      pc.is_valid(column("inner_dst", pa.string())))  # fmt: skip
    proto = column("proto", pa.string())
    icmp = pa.array(["icmp", "icmpv6"])
    echo = pc.fill_null(
        pc.and_(
            pc.is_in(proto, value_set=icmp),
            pc.is_in(column("icmp_type", pa.int64()), value_set=pa.array(sorted(ECHO_TYPES))),
        ),
        False,
    )
    sport = pc.if_else(echo, column("icmp_id", pa.int64()), column("sport", pa.int64()))
    inner_sport = pc.coalesce(column("inner_sport", pa.int64()),
                              column("inner_icmp_id", pa.int64()))  # fmt: skip

    def conntrack(outer: pa.Array, inner: pa.Array) -> pa.Array:
        chosen: pa.Array = pc.if_else(related, inner, outer)
        return chosen

    arp = pc.and_(pc.is_null(proto), pc.is_valid(column("arp_ipsrc", pa.string())))
    proto = pc.if_else(arp, ARP, proto)
    src = pc.if_else(arp, column("arp_ipsrc", pa.string()), column("src", pa.string()))
    dst = pc.if_else(arp, column("arp_ipdst", pa.string()), column("dst", pa.string()))
    opcode = column("arp_opcode", pa.int64())
    asker = pa.scalar(ARP_ASKER, pa.int64())
    no_port = pa.scalar(None, pa.int64())
    sport = pc.if_else(arp, pc.if_else(pc.equal(opcode, ARP_REPLY), asker, no_port), sport)
    dport = column("dport", pa.int64())
    dport = pc.if_else(arp, pc.if_else(pc.equal(opcode, ARP_REQUEST), asker, no_port), dport)
    t_proto = conntrack(proto, column("inner_proto", pa.string()))
    return _HopTuple(
        host=column("host", pa.string()),
        proto=t_proto,
        src=conntrack(src, column("inner_src", pa.string())),
        sport=conntrack(sport, inner_sport),
        dst=conntrack(dst, column("inner_dst", pa.string())),
        dport=conntrack(dport, column("inner_dport", pa.int64())),
        # an ICMP echo's identifier stays in the sport position both ways (ConnTuple.reversed)
        echo=pc.is_in(t_proto, value_set=icmp),
    )


def tuple_nodes(hops: pa.Table) -> pa.Array:
    """Per hop, as text, what links it to the other packets of its connection
    (``_components``): its host and its conntrack tuple (``hop_tuples``: an ICMP error's, the
    one it quotes; an echo's identifier as its source port), that or its reverse, whichever
    sorts first. Follow's window tells by them which of its connections a new hop may join,
    at every step, on tens of thousands of hops: written with Arrow's kernels (``hop_tuples``
    and ``_tuple_keys`` through pandas cost ~3 µs a hop)."""

    found = _hop_tuple(hops)
    key, rkey = _key_texts(found.proto, found.src, found.sport, found.dst, found.dport)
    canonical = pc.if_else(pc.less_equal(key, rkey), key, rkey)
    nodes: pa.Array = pc.binary_join_element_wise(_field_text(found.host), canonical, "#")
    return nodes


def _field_text(values: pa.Array) -> pa.Array:
    """A key field as text, "" where missing (``_text``, by Arrow)."""
    filled: pa.Array = pc.fill_null(pc.cast(values, pa.string()), "")
    return filled


def _key_texts(
    proto: pa.Array, src: pa.Array, sport: pa.Array, dst: pa.Array, dport: pa.Array
) -> tuple[pa.StringArray, pa.StringArray]:
    """Per row, its tuple key ``proto|src|sport|dst|dport`` and its reverse's, by Arrow's
    kernels: what ``_tuple_keys`` writes in one Python pass."""
    proto, src, sport, dst, dport = map(_field_text, (proto, src, sport, dst, dport))
    # an ICMP echo's identifier stays in the sport position both ways (ConnTuple.reversed)
    echo = pc.is_in(proto, value_set=pa.array(["icmp", "icmpv6"]))
    key = pc.binary_join_element_wise(proto, src, sport, dst, dport, "|")
    rkey = pc.binary_join_element_wise(
        proto, dst, pc.if_else(echo, sport, dport), src, pc.if_else(echo, dport, sport), "|"
    )
    return key, rkey


def tuple_node_codes(hops: pa.Table) -> tuple[np.ndarray, int]:
    """Per hop, its ``tuple_nodes`` node as a number (0.. in order of first appearance), and
    how many there are: the same groups as the nodes' texts, found on integers. Made as text,
    the 2M-line replay's 1.2M nodes cost its ingest ~1 CPU-s (five columns cast to text,
    joined twice, compared, then hashed again), for a grouping. A tuple and its reverse
    share a node: each hop takes the smaller of the two by its codes, not by its text (the
    same pair either way)."""
    rows = hops.num_rows

    def port(values: pa.Array) -> np.ndarray:
        # a port's text is its number, a missing one "" (-1 here: no port is negative)
        code: np.ndarray = pc.fill_null(values, -1).to_numpy(zero_copy_only=False)
        return code

    def texts(*columns: pa.Array) -> list[np.ndarray]:
        # one numbering for columns a reverse swaps (source and destination); a missing text
        # is "" as tuple_nodes writes it
        joined = pc.fill_null(pa.concat_arrays(columns), "")
        coded = pc.dictionary_encode(joined).indices.to_numpy(zero_copy_only=False)
        return [coded[i * rows : (i + 1) * rows] for i in range(len(columns))]

    found = _hop_tuple(hops)
    (host,), (proto,) = texts(found.host), texts(found.proto)
    src, dst = texts(found.src, found.dst)
    t_sport, t_dport = port(found.sport), port(found.dport)
    echo = found.echo.to_numpy(zero_copy_only=False)
    key = (src, t_sport, dst, t_dport)
    rkey = (dst, np.where(echo, t_sport, t_dport), src, np.where(echo, t_dport, t_sport))
    # key <= rkey, compared position by position (the protocol is the same in both)
    first = np.ones(rows, dtype=bool)
    for a, b in zip(reversed(key), reversed(rkey), strict=True):
        first = (a < b) | ((a == b) & first)
    canonical = [np.where(first, a, b) for a, b in zip(key, rkey, strict=True)]
    codes = row_groups([host, proto, *canonical])
    return codes, int(codes.max()) + 1 if rows else 0


def column_or_null(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when the table does not have it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype="object")


def _int_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column as nullable Int64."""
    return pd.to_numeric(column_or_null(frame, name), errors="coerce").astype("Int64")


def assign_flows(packets: pd.DataFrame, *, keep_tuples: bool = False) -> pd.DataFrame:
    """Give every hop its connection: ``flow``, ``direction``, ``related``, ``translated``.

    Args:
        packets: hops grouped by ``logpath.packets.group_packets`` (``packet``, ``leg``,
            ``hop_n``, ``clock``).
        keep_tuples: keep ``hop_tuples``' columns (``t_*``), for ``summarise_flows`` to use
            instead of computing them again.

    Returns:
        A copy with the columns of HOP_COLUMNS added, hops in packet order.

    Example:
        >>> flows = summarise_flows(assign_flows(group_packets(hops)))
    """
    frame = packets.reset_index(drop=True)
    if frame.empty:
        empty = dict.fromkeys(HOP_COLUMNS)
        return frame.assign(**empty)
    frame = pd.concat([frame, hop_tuples(frame)], axis=1)
    tuples = _Tuples(frame)
    table = _packet_table(frame)
    table["_conn"] = _connections(frame, table, tuples)
    conns = _orient(frame, table, tuples).set_index("packet")
    # each hop takes its packet's columns (a merge copied every column of a million hops)
    per_hop = conns.reindex(frame["packet"].to_numpy()).set_axis(frame.index)
    for column in conns.columns:
        frame[column] = per_hop[column]
    frame["translated"] = tuples.translated(
        frame["direction"].to_numpy() == "orig",
        frame["related"].to_numpy(dtype=bool),
        frame["_orig_code"].to_numpy(),
        frame["_reply_code"].to_numpy(),
    )
    frame["nat_mark"] = nat_marks(frame)
    helpers = ("_",) if keep_tuples else ("_", "t_")
    return frame.drop(columns=[c for c in frame.columns if c.startswith(helpers)])


class _Tuples:
    """The conntrack tuple each hop shows, as an integer code per distinct key text (the
    reverse tuples' texts included), numbered in order of first appearance, hops' tuples
    first: what factorising every hop's key, then every hop's reverse key, numbers.

    Each key is written once per distinct tuple, and coded there: a million hops show a few
    hundred thousand tuples, and writing, comparing and factorising the texts hop by hop was a
    tenth of the assembly."""

    def __init__(self, frame: pd.DataFrame) -> None:
        columns = [c for c in frame.columns if c.startswith("t_")]
        of_hop = row_groups([frame[c] for c in columns])  # numbered by first appearance
        # each tuple's first hop: where the running highest number grows
        first = np.r_[True, of_hop[1:] > np.maximum.accumulate(of_hop)[:-1]]
        key, rkey = _tuple_keys(frame[columns].iloc[np.flatnonzero(first)])
        # numbered by Arrow's hash, in order of first appearance as pandas' factorize numbers
        coded = pc.dictionary_encode(pa.concat_arrays([key, rkey]))
        code = coded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        self.texts: pa.StringArray = coded.dictionary
        self.code = code[: len(key)][of_hop]  # per hop, its tuple
        self.reverse = code[len(key) :][of_hop]  # per hop, its reverse
        # per hop, the one of its tuple and its reverse whose text sorts first, coded (UTF-8's
        # bytes sort as its characters do: Arrow's order is Python's)
        found = pc.dictionary_encode(pc.if_else(pc.less_equal(key, rkey), key, rkey))
        self.canonical = found.indices.to_numpy(zero_copy_only=False).astype(np.int64)[of_hop]
        self.canonical_count = len(found.dictionary)

    def translated(
        self, orig: np.ndarray, related: np.ndarray, orig_code: np.ndarray, reply_code: np.ndarray
    ) -> np.ndarray:
        """Per hop (given its direction, whether it is an ICMP error, and its connection's orig
        and reply tuple codes): does it show other addresses than its direction's tuple?

        An ICMP error is keyed by the packet it quotes, which went the other way: the quote is
        untranslated when it is the reverse of the error's own direction's tuple."""
        own = np.where(orig, orig_code, reply_code)
        shown: np.ndarray = np.where(related, self.reverse != own, self.code != own)
        return shown


def _tuple_keys(frame: pd.DataFrame) -> tuple[pa.StringArray, pa.StringArray]:
    """``_directed_keys`` of each row of the ``t_*`` columns: on few rows (a follow window's)
    written in one Python pass, on many by Arrow's string kernels (``nat.FEW_ROWS``)."""
    if len(frame) > FEW_ROWS:
        return _tuple_keys_of_many(frame)
    proto, src, sport, dst, dport = (
        [_text(value) for value in frame[c].tolist()] for c in TUPLE_COLUMNS
    )
    key, rkey = [], []
    for p, s, sp, d, dp in zip(proto, src, sport, dst, dport, strict=True):
        key.append(f"{p}|{s}|{sp}|{d}|{dp}")
        # an ICMP echo's identifier stays in the sport position both ways (ConnTuple.reversed)
        echo = p in ("icmp", "icmpv6")
        rkey.append(f"{p}|{d}|{sp}|{s}|{dp}" if echo else f"{p}|{d}|{dp}|{s}|{sp}")
    return pa.array(key, pa.string()), pa.array(rkey, pa.string())


def _tuple_keys_of_many(frame: pd.DataFrame) -> tuple[pa.StringArray, pa.StringArray]:
    """``_tuple_keys`` by Arrow's kernels: the same texts (a missing field ""); the 273,000
    tuples of the 2M-line replay in 0.08 s, against 0.27 s by pandas' object strings (alone,
    best of 5; ~0.9 s of the assembly inside it)."""
    return _key_texts(*(pa.array(frame[c], from_pandas=True) for c in TUPLE_COLUMNS))


def _text(value: object) -> str:
    """A key field: the value as text, empty when missing."""
    return "" if missing(value) else str(value)


def _packet_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per packet: when it started, its flags, protocol and whether it is an ICMP error."""
    first = _first_hops(
        frame,
        ["packet", "clock", "flags", "t_proto", "t_sport", "t_dport", "related", "icmp_type",
         "arp_opcode"],
    )  # fmt: skip
    first = first.assign(_time=_clock(first))
    return pd.DataFrame(
        {
            "packet": first["packet"].to_numpy(),
            "_time": first["_time"].to_numpy(),
            "_flags": first["flags"].astype("object").fillna("").to_numpy()
            if "flags" in first
            else "",
            "_proto": first["t_proto"].astype("object").to_numpy(),
            "_related": first["related"].to_numpy(dtype=bool),
            "_icmp_type": _int_column(first, "icmp_type").to_numpy(),
            "_arp_opcode": _int_column(first, "arp_opcode").to_numpy(),
            "_sport": _int_column(first, "t_sport").to_numpy(),
            "_dport": _int_column(first, "t_dport").to_numpy(),
        }
    ).reset_index(drop=True)


def _first_hops(
    frame: pd.DataFrame, columns: list[str], keep: Literal["first", "last"] = "first"
) -> pd.DataFrame:
    """The first (or last) hop of each packet, only ``columns`` of it (those the frame has).

    ``drop_duplicates("packet")`` copied all ~90 hop columns of those rows to use a few."""
    rows = ~frame["packet"].duplicated(keep=keep).to_numpy()
    return frame.loc[rows, [c for c in columns if c in frame.columns]]


def _clock(frame: pd.DataFrame) -> pd.Series:
    """Seconds for gaps between packets: group_packets' one clock for all hosts."""
    return frame["clock"].astype("float64").fillna(0.0)


def _connections(frame: pd.DataFrame, table: pd.DataFrame, tuples: _Tuples) -> np.ndarray:
    """Connection number per packet: linked tuples (NAT, replies), split where a tuple is reused."""
    component = _components(frame, tuples).reindex(table["packet"]).to_numpy()
    order = np.lexsort((table["packet"].to_numpy(), component))
    ordered = table.iloc[order]
    comp = component[order]
    same = np.r_[False, comp[1:] == comp[:-1]]
    gap = np.r_[np.inf, np.diff(ordered["_time"].to_numpy())]
    timeout = map_few(ordered["_proto"], IDLE_TIMEOUT).fillna(DEFAULT_IDLE_TIMEOUT).to_numpy()
    flags = ordered["_flags"].to_numpy()
    # a fresh SYN after the handshake moved on is the tuple reused by a new connection
    prev_flags = np.r_[[""], flags[:-1]]
    reused = (flags == "SYN") & ~np.isin(prev_flags, ["SYN", "ACK SYN"])
    new = ~same | (gap > timeout) | reused
    conn = np.empty(len(table), dtype=np.int64)
    conn[order] = np.cumsum(new) - 1
    return conn


def _components(frame: pd.DataFrame, tuples: _Tuples) -> pd.Series:
    """Per packet the smallest packet number linked to it through shared tuples (either way)
    on one host.

    Conntrack is per host: two hosts showing one tuple at once are two connections (a fleet's
    Docker hosts all number their containers 172.17.0.x and reuse each other's ports), unless a
    packet of one is joined to the other's (``group_packets`` pass 2): that packet's hops on
    both hosts link their tuples. Keyed by tuple alone, ~5% of three Docker hosts' connections
    busy at once took each other's packets (benchmarks/generate_fleet.py --stagger 0)."""
    key = tuples.canonical
    if "host" in frame.columns:
        host = text_codes(frame["host"])
        key = pd.factorize(host * tuples.canonical_count + key)[0]  # numbered densely again
    packet = frame["packet"].to_numpy(dtype=np.int64)
    # the smallest label per key, then per packet, until nothing moves (numpy's minimum.at,
    # not two groupby transforms a round)
    label = packet
    by_packet = np.empty(0, dtype=np.int64)
    while True:
        per_key = np.full(int(key.max()) + 1, np.iinfo(np.int64).max)
        np.minimum.at(per_key, key, label)
        by_packet = np.full(int(packet.max()) + 1, np.iinfo(np.int64).max)
        np.minimum.at(by_packet, packet, per_key[key])
        moved = by_packet[packet]
        if np.array_equal(moved, label):
            break
        label = moved
    packets = np.flatnonzero(by_packet != np.iinfo(np.int64).max)  # those the hops show
    return pd.Series(by_packet[packets], index=packets)


def _orient(frame: pd.DataFrame, table: pd.DataFrame, tuples: _Tuples) -> pd.DataFrame:
    """Per packet: its flow id, direction, the flow's orig and reply tuple keys (and their
    codes: ``_Tuples``).

    The first packet's tuples (reversed, if it looks like an answer: ``_answers_first``) seed
    the orig side; a packet showing an orig tuple is orig and adds its other tuples (NAT) to
    that side; a packet showing the reverse of an orig tuple, or a tuple of such a packet, is a
    reply; a packet on neither side is orig. An ICMP error travels against the packet it quotes.

    Array operations on every connection at once, tuples compared as integer codes (one per
    distinct key text, the reverse tuples' texts included): the same walk done connection by
    connection with Python sets was a sixth of the assembly.
    """
    texts = tuples.texts
    tuple_code, reverse_code = tuples.code, tuples.reverse
    # the reverse is a function of the tuple, and its own inverse: every code is a hop's tuple
    # or the reverse of one (an ICMP error's own direction is only the latter)
    reverse = np.empty(len(texts), dtype=np.int64)
    reverse[reverse_code] = tuple_code
    reverse[tuple_code] = reverse_code
    # packets in connection order, then time order: a connection's packets are adjacent
    table = table.sort_values(["_conn", "packet"])
    packet = table["packet"].to_numpy(dtype=np.int64)
    conn = table["_conn"].to_numpy(dtype=np.int64)
    related = table["_related"].to_numpy(dtype=bool)
    hop_packet = frame["packet"].to_numpy(dtype=np.int64)
    position = pd.Index(packet).get_indexer(hop_packet)  # hop → its packet's row
    sides = _Sides(position, tuple_code, conn, reverse, len(texts))
    everyone = np.ones(len(packet), dtype=bool)
    request, answer = _requests(table)
    orig, orig_tuples = sides.grow(sides.seeds(_answers_first(table, answer)), everyone)
    reply, _ = sides.grow(sides.answering(orig, orig_tuples), ~orig)
    is_orig = orig | ~reply
    is_orig ^= related  # an ICMP error quoting an orig packet travels back (and vice versa)
    # an echo's type (an ARP packet's opcode) is its direction: the request opens conntrack's
    # entry; a ping to the host's own address (a gratuitous ARP) shows one tuple both ways,
    # which the sides cannot tell apart
    is_orig = (is_orig | request) & ~answer
    first_code = _hop_codes(position, tuple_code, len(packet), keep="first")
    last_code = _hop_codes(position, tuple_code, len(packet), keep="last")
    orig_code, reply_code = _conn_codes(conn, related, is_orig, first_code, last_code, reverse)
    heads = np.flatnonzero(np.r_[True, conn[1:] != conn[:-1]])  # each connection's first packet
    starts = _flow_starts(frame, set(packet[heads].tolist()))
    # only the connections' keys made Python texts (not every tuple's)
    orig_keys = texts.take(pa.array(orig_code)).to_numpy(zero_copy_only=False)
    reply_keys = texts.take(pa.array(reply_code)).to_numpy(zero_copy_only=False)
    flow_ids = np.array(
        [
            _flow_id(key, starts[first])
            for key, first in zip(orig_keys.tolist(), packet[heads].tolist(), strict=True)
        ],
        dtype=object,
    )
    conn_of = np.cumsum(np.r_[False, conn[1:] != conn[:-1]])  # dense 0.. per connection row
    return pd.DataFrame(
        {
            "packet": packet,
            "flow": _taken(flow_ids, conn_of),
            "direction": _taken(np.array(["orig", "reply"], dtype=object), np.where(is_orig, 0, 1)),
            "orig_key": _taken(orig_keys, conn_of),
            "reply_key": _taken(reply_keys, conn_of),
            "_orig_code": orig_code[conn_of],
            "_reply_code": reply_code[conn_of],
        }
    )


def _taken(values: np.ndarray, rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values`` (Python objects) at ``rows``, in the pandas type inferred from them (text:
    pandas' str). Made once per distinct value, then taken: making every packet's string
    pandas' text cost most of the orientation."""
    return pd.Series(values).array.take(rows)


class _Sides:
    """The tuples each packet shows, as nodes (a connection and a tuple code, numbered densely),
    to find which packets are on one side of their connection."""

    def __init__(
        self,
        position: np.ndarray,
        tuple_code: np.ndarray,
        conn: np.ndarray,
        reverse: np.ndarray,
        codes: int,
    ) -> None:
        # one pair per packet and distinct tuple it shows (one for most packets, more across NAT)
        pairs = pd.unique(position * codes + tuple_code)
        self.position, code = pairs // codes, pairs % codes
        shown = conn[self.position] * codes + code
        answered = conn[self.position] * codes + reverse[code]
        node, self.nodes = pd.factorize(np.concatenate([shown, answered]))
        self.node, self.reverse_node = node[: len(pairs)], node[len(pairs) :]
        self.head = np.r_[True, conn[1:] != conn[:-1]]  # the connection's first packet
        self.packets = len(conn)

    def seeds(self, answers_first: np.ndarray) -> np.ndarray:
        """The nodes of each connection's orig side before any packet joins it: the first
        packet's tuples, reversed where that packet is an answer (``_answers_first``)."""
        first = self.head[self.position]
        flip = answers_first[self.position[first]]
        seeds: np.ndarray = np.where(flip, self.reverse_node[first], self.node[first])
        return seeds

    def grow(self, nodes: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The packets (of those ``allowed``) showing one of ``nodes``, joined by every allowed
        packet sharing a tuple with them, until no packet joins; and the side's nodes (as a
        mark per node)."""
        marked = np.zeros(len(self.nodes), dtype=bool)
        marked[nodes] = True
        side = np.zeros(self.packets, dtype=bool)
        while True:
            shown = np.zeros(self.packets, dtype=bool)
            shown[self.position[marked[self.node]]] = True
            shown &= allowed
            if np.array_equal(shown, side):
                return side, marked
            side = shown
            marked[self.node[side[self.position]]] = True

    def answering(self, side: np.ndarray, marked: np.ndarray) -> np.ndarray:
        """The nodes of packets off ``side`` that are the reverse of one of its ``marked``."""
        hit = marked[self.reverse_node] & ~side[self.position]
        answers: np.ndarray = self.node[hit]
        return answers


def _requests(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per packet of ``table`` (not an ICMP error): is it a request (an ICMP echo request, an
    ARP request), is it an answer (an echo reply, an ARP reply)?"""
    icmp_type = table["_icmp_type"].astype("float64").to_numpy()
    opcode = table["_arp_opcode"].astype("float64").to_numpy()
    proto = table["_proto"].to_numpy()
    v4, v6, arp = proto == "icmp", proto == "icmpv6", proto == ARP
    plain = ~table["_related"].to_numpy(dtype=bool)
    request = (v4 & (icmp_type == 8)) | (v6 & (icmp_type == 128)) | (arp & (opcode == ARP_REQUEST))
    answer = (v4 & (icmp_type == 0)) | (v6 & (icmp_type == 129)) | (arp & (opcode == ARP_REPLY))
    return plain & request, plain & answer


def _answers_first(table: pd.DataFrame, answer: np.ndarray) -> np.ndarray:
    """Per packet of ``table``: a SYN-ACK, an echo reply or an ARP reply (those two are
    ``answer``, ``_requests``' own; not an ICMP error), which, seen before its question, means
    the connection started unseen; or a TCP packet without SYN (the capture began inside the
    connection) going from a service's port to an ephemeral one: the server's. Taken for the
    orig, it had the connection turned round and a MASQUERADE on the way read as a DNAT to the
    client's ephemeral port (a namespace lab: the peer spoke first in the capture)."""
    plain = ~table["_related"].to_numpy(dtype=bool)
    flags = table["_flags"].to_numpy()
    answer = answer | ((flags == "ACK SYN") & plain)
    sport, dport = (table[c].astype("float64").to_numpy() for c in ("_sport", "_dport"))
    midway = (table["_proto"].to_numpy() == "tcp") & ~pd.Series(flags).str.contains(
        "SYN"
    ).to_numpy()
    answer |= midway & plain & (sport < EPHEMERAL_PORTS) & (dport >= EPHEMERAL_PORTS)
    return answer


def _hop_codes(
    position: np.ndarray, tuple_code: np.ndarray, packets: int, keep: Literal["first", "last"]
) -> np.ndarray:
    """Per packet, the tuple code of its first (or last) hop."""
    chosen = ~pd.Series(position).duplicated(keep=keep).to_numpy()
    codes = np.zeros(packets, dtype=np.int64)
    codes[position[chosen]] = tuple_code[chosen]
    return codes


def _conn_codes(
    conn: np.ndarray,
    related: np.ndarray,
    is_orig: np.ndarray,
    first_code: np.ndarray,
    last_code: np.ndarray,
    reverse: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per connection, the orig tuple (first hop of the first orig packet) and the reply tuple
    (first hop of the first answer, as it arrives before de-NAT). Without answers: the packet an
    ICMP error quotes as it arrives, reversed (it shows the orig after SNAT, which the NATing
    host never logs), else the orig after DNAT reversed. ICMP errors count only in a
    connection that has nothing else.

    An ICMP error's hop shows the tuple of the packet it quotes, which went the other way: the
    error's own direction's tuple is that one reversed. Taken as it is, a connection of errors
    alone had its orig and reply swapped (the error called a reply, the reply tuple pointing
    the way it did not travel)."""
    heads = np.flatnonzero(np.r_[True, conn[1:] != conn[:-1]])
    conn_of = np.cumsum(np.r_[False, conn[1:] != conn[:-1]])
    own_code = np.where(related, reverse[first_code], first_code)  # the packet's direction's
    others = np.bincount(conn_of, weights=~related, minlength=len(heads))
    candidate = ~related | (others[conn_of] == 0)
    first_orig = _first_in_conn(candidate & is_orig, conn_of, len(heads))
    first_reply = _first_in_conn(candidate & ~is_orig, conn_of, len(heads))
    first_error = _first_in_conn(related & ~is_orig, conn_of, len(heads))
    has_orig, has_reply = first_orig >= 0, first_reply >= 0
    unanswered = np.where(first_error >= 0, own_code[first_error], reverse[last_code[first_orig]])
    reply_code = np.where(has_reply, own_code[first_reply], unanswered)
    orig_code = np.where(has_orig, own_code[first_orig], reverse[reply_code])
    return orig_code, reply_code


def _first_in_conn(mask: np.ndarray, conn_of: np.ndarray, conns: int) -> np.ndarray:
    """Per connection, the row of its first packet where ``mask`` holds, -1 if none."""
    rows = np.flatnonzero(mask)
    first = np.full(conns, -1, dtype=np.int64)
    found, at = np.unique(conn_of[rows], return_index=True)
    first[found] = rows[at]
    return first


def _flow_starts(frame: pd.DataFrame, packets: set[int]) -> dict[int, str]:
    """Per packet of ``packets``, when its first hop was logged (part of the flow id): the
    kernel's time stamp (microseconds since boot), which every layout of one kernel log shows
    alike (syslog, dmesg, /dev/kmsg, journald); without one, the host and the header's time.
    Not the file: the same connection has the same id in every store (issue 15).

    Only for the packets that start a connection: formatting every packet's time cost more than
    the rest of the orientation."""
    first = _first_hops(frame, ["packet", "ts", "uptime", "host"])
    first = first[first["packet"].isin(packets)]
    # the microseconds by numpy (half to even, as round() does): a Timestamp made for every
    # start, most of them with an uptime, was a fiftieth of a chunk's assembly
    uptime = pd.to_numeric(column_or_null(first, "uptime"), errors="coerce")
    seconds = uptime.to_numpy(dtype="float64", na_value=np.nan)
    timed = ~np.isnan(seconds)
    micro = np.rint(seconds[timed] * 1_000_000).astype(np.int64).astype(str)
    packet = first["packet"].to_numpy()
    starts = dict(zip(packet[timed].tolist(), micro.tolist(), strict=True))
    if not timed.all():
        untimed = first[~timed]
        when = pd.to_datetime(column_or_null(untimed, "ts"), utc=True).astype("object")
        host = column_or_null(untimed, "host").astype("object")
        starts.update(
            (int(p), f"{h}|{w}") for p, h, w in zip(untimed["packet"], host, when, strict=True)
        )
    return starts


def distinct_ids(ids: np.ndarray, hosts: Sequence[Sequence[str] | None]) -> np.ndarray:
    """``ids`` (of an assembly's connections, ``hosts`` each one's), those shared by several
    connections made their own: two hosts can log one tuple at the same kernel time stamp
    (their clocks since boot alike, or one line relayed under two host names), and one id for
    two connections left ``journey`` unable to pick one and the report writing one page over
    the other. Each of them is hashed again with its hosts (and its place among alike ones);
    an id that does not clash stays as it was, the same in every store."""
    clash = np.flatnonzero(pd.Series(ids).duplicated(keep=False).to_numpy())
    if not len(clash):
        return ids
    ids = ids.copy()
    seen: dict[str, int] = {}
    for row in clash.tolist():
        salted = f"{ids[row]}|{','.join(hosts[row] or ())}"
        again = seen[salted] = seen.get(salted, -1) + 1
        digest = hashlib.sha1(f"{salted}|{again}".encode()).hexdigest()[:10]
        port = flow_id_port(str(ids[row]))
        ids[row] = digest if port is None else f"{digest}-{port}"
    return ids


def _flow_id(orig_key: str, start: str) -> str:
    """A short id, the same for one connection in every store and every run.

    The orig source port (or ICMP echo id) follows the hash, ``a768564ace-55148``, so that
    ``logpath journey`` can find the flow's hops without reading the whole store.
    """
    digest = hashlib.sha1(f"{orig_key}|{start}".encode()).hexdigest()[:10]
    sport = orig_key.split("|")[2]
    return f"{digest}-{sport}" if sport else digest


def flow_id_port(flow_id: str) -> int | None:
    """The orig source port (or ICMP echo id) a flow id carries, if any."""
    _, _, port = flow_id.partition("-")
    return int(port) if port.isdigit() else None
