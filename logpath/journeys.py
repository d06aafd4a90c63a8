"""Journeys: one flow with its packets in time order, each with its hops in hook order.

These are the records renderers draw (terminal timeline, sequence diagram) and what
``logpath journey ID --json`` prints.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from logpath.bridge import assign_roles
from logpath.clocks import CLOCK_COLUMNS, Clocks, learn_clocks
from logpath.errors import NotFoundError, UsageError
from logpath.flows import (
    NAT_TYPES,
    Flow,
    assign_flows,
    flow_id_port,
    format_endpoint,
    packet_fates,
    summarise_flows,
)
from logpath.hooks import resolve_hooks
from logpath.hops import HOP_COLUMNS, HOP_SCHEMA, hop_to_json
from logpath.packets import group_packets, missing, refine_guessed_hooks
from logpath.rules import Ruleset
from logpath.store import Store, hop_filter, to_frame


@dataclass(frozen=True)
class JourneyHop:
    """One hop of a packet: where it was logged, what it showed, and how to read it."""

    fields: Mapping[str, Any] = field(compare=False, hash=False)
    """The hop as ``logpath hops --json`` prints it (provenance and every parsed field)."""
    table: str | None
    """Netfilter table (raw, mangle, nat, filter, security) or None when unknown."""
    chain: str | None
    """Chain holding the LOG rule (may be a user chain such as FwdId0Od0)."""
    hook: str | None
    """PREROUTING, INPUT, FORWARD, OUTPUT or POSTROUTING."""
    evidence: str
    """How the hook was found: "trace", "ruleset", "prefix" or "guess"."""
    role: str | None
    """On a bridge: "bridge" (switching between ports) or "nic" (the host's network card)."""
    role_switch: bool
    """True when the role differs from the previous hop's role on this packet's journey."""
    translated: bool
    """True when the addresses shown are NAT-translated (not the conntrack tuple's own)."""
    nat: tuple[str, ...]
    """NAT marks at this hop: "dnat", "snat", "redirect", "de-snat", "de-dnat" (what changed
    since the previous hop, or what the next host will see)."""
    host: str | None
    """Syslog host of the line."""
    in_iface: str | None
    """IN= interface."""
    out_iface: str | None
    """OUT= interface."""
    physin: str | None
    """PHYSIN= bridge port."""
    physout: str | None
    """PHYSOUT= bridge port."""
    src: str | None
    """Source address as shown at this hop."""
    sport: int | None
    """Source port (or ICMP echo id) as shown."""
    dst: str | None
    """Destination address as shown."""
    dport: int | None
    """Destination port as shown."""
    ttl: int | None
    """TTL or hop limit as shown."""

    def to_json(self) -> dict[str, Any]:
        """The hop fields of ``logpath hops --json`` plus table/chain/hook/evidence/role/..."""
        return {
            **self.fields,
            "table": self.table,
            "chain": self.chain,
            "hook": self.hook,
            "evidence": self.evidence,
            "role": self.role,
            "role_switch": self.role_switch,
            "translated": self.translated,
            "nat": list(self.nat),
        }


@dataclass(frozen=True)
class Packet:
    """One packet of a flow, seen at successive hooks (possibly on several hosts)."""

    n: int
    """1-based number of the packet within its flow, in time order."""
    direction: str
    """"orig" or "reply" (an ICMP error quoting a packet travels as "reply")."""
    summary: str
    """Short description: TCP flags ("SYN", "SYN-ACK", "ACK", "RST-ACK"), "echo-request",
    "udp 32 bytes", "icmp error: port-unreachable"."""
    fate: str
    """What became of it as far as the logs show: "delivered" (INPUT), "forwarded" (left by
    FORWARD/POSTROUTING), "sent" (OUTPUT/POSTROUTING of a local packet), "switched" (bridged
    between ports), "arrived" (reached the next host, logged there at PREROUTING only), "stopped"
    (ends where a later hook was expected) or "seen" (nothing later was expected)."""
    stopped_at: str | None
    """When fate is "stopped": the last hook seen, e.g. "PREROUTING"."""
    hops: tuple[JourneyHop, ...]
    """Hops in time (hook) order."""
    sent_again_as: int | None = None
    """When stopped: the number of the next packet if it is this one sent again (a TCP
    retransmission: same flags and length, and sequence number where logged). The first copy
    was then dropped or lost where it stopped."""
    answered_by: int | None = None
    """When stopped: the number of the next packet if it went the other way, answering. The
    packet then went on, only its later hooks were not logged."""

    def to_json(self) -> dict[str, Any]:
        """``{"n", "direction", "summary", "fate", "hops"}`` as in the journey contract."""
        return {
            "n": self.n,
            "direction": self.direction,
            "summary": self.summary,
            "fate": self.fate,
            "stopped_at": self.stopped_at,
            "sent_again_as": self.sent_again_as,
            "answered_by": self.answered_by,
            "hops": [hop.to_json() for hop in self.hops],
        }


@dataclass(frozen=True)
class Journey:
    """A flow and its packets: what ``logpath journey ID`` shows."""

    flow: Flow
    """The connection."""
    packets: tuple[Packet, ...]
    """Its packets in time order."""

    def to_json(self) -> dict[str, Any]:
        """``{"flow": {...}, "packets": [...]}`` as in the journey contract."""
        return {
            "flow": self.flow.to_json(),
            "packets": [packet.to_json() for packet in self.packets],
        }


def trace_hops(
    hops: pd.DataFrame,
    ruleset: Ruleset | None = None,
    *,
    roles: bool = True,
    clocks: Clocks | None = None,
) -> pd.DataFrame:
    """Every stage after parsing: hooks, packets, flows, bridge roles, on one hop table.

    Args:
        hops: the hop table (``Store.read_hops()``).
        ruleset: the ruleset the logs were written under, if known.
        roles: decide bridge roles. Journeys show them; flow summaries do not depend on them
            (``logpath flows`` skips them: a tenth of its time on a big store).
        clocks: the hosts' boot times and clock offsets (``store_clocks``); by default
            learned from these hops.

    Returns:
        The hops with ``table``/``chain``/``hook``/``evidence`` (hooks), ``packet``/``leg``/
        ``hop_n`` (packets), ``flow``/``direction``/``related``/``translated``/``nat_mark``/
        ``orig_key``/``reply_key`` (flows) and ``role``/``role_switch`` (bridge) added.

    Example:
        >>> traced = trace_hops(Store(path).read_hops())
    """
    resolved = hops if "hook" in hops.columns else resolve_hooks(hops, ruleset)
    # resolve_hooks gives categoricals; the later stages compare and fill them as plain text
    where = [c for c in ("table", "chain", "hook", "evidence") if c in resolved.columns]
    resolved = resolved.astype(dict.fromkeys(where, "object"))
    flows = assign_flows(refine_guessed_hooks(group_packets(resolved, clocks)))
    return assign_roles(flows) if roles else flows


def build_journey(traced: pd.DataFrame, flow_id: str, packet: int | None = None) -> Journey:
    """The journey of one flow of ``trace_hops`` output (optionally only its packet ``packet``).

    Raises:
        NotFoundError: no such flow, or no such packet in it.
    """
    hops = traced[traced["flow"] == flow_id]
    if hops.empty:
        raise NotFoundError(f"no flow {flow_id!r} in the store (see `logpath flows`)")
    flow = summarise_flows(hops)[0]
    (journey,) = build_journeys(hops, [flow])
    if packet is None:
        return journey
    packets = tuple(p for p in journey.packets if p.n == packet)
    if not packets:
        raise NotFoundError(f"flow {flow_id} has no packet {packet} (it has {flow.packets})")
    return Journey(flow=flow, packets=packets)


def build_journeys(traced: pd.DataFrame, flows: Sequence[Flow]) -> list[Journey]:
    """The journey of every flow of ``trace_hops`` output, in the flows' order.

    One pass over all of them (one ``packet_fates``, one ``to_dict``): building them one flow at a
    time took 165 ms a flow, 2 min 45 s for a report of 992 connections.
    """
    if not flows:
        return []
    hops = _with_applied_nat(traced.reset_index(drop=True), flows)
    fates = packet_fates(hops)
    fate, stopped_at = fates["fate"].to_dict(), fates["stopped_at"].to_dict()
    packets: dict[int, list[dict[str, Any]]] = {}
    for row in hops.to_dict("records"):
        packets.setdefault(int(row["packet"]), []).append({str(k): v for k, v in row.items()})
    per_flow: dict[str, list[int]] = {}
    for number in sorted(packets):  # build_journey numbers packets in this order
        per_flow.setdefault(str(packets[number][0]["flow"]), []).append(number)
    return [
        Journey(
            flow=flow,
            packets=_what_followed(
                [
                    _packet(n, packets[number], fate[number], stopped_at[number])
                    for n, number in enumerate(per_flow.get(flow.id, []), start=1)
                ]
            ),
        )
        for flow in flows
    ]


def _what_followed(packets: list[Packet]) -> tuple[Packet, ...]:
    """Say of each stopped packet whether the next one sent it again or answered it."""
    told = list(packets)
    for i, (packet, after) in enumerate(itertools.pairwise(packets)):
        if packet.fate != "stopped":
            continue
        if after.direction == packet.direction and _sent_again(packet, after):
            told[i] = dataclasses.replace(packet, sent_again_as=after.n)
        elif after.direction != packet.direction and not _related(after):
            told[i] = dataclasses.replace(packet, answered_by=after.n)
    return tuple(told)


def _sent_again(first: Packet, later: Packet) -> bool:
    """A TCP retransmission: the same flags and length, and the same sequence number when the
    LOG rule logged it (--log-tcp-sequence); a SYN or SYN-ACK carries no data to tell apart."""
    a, b = first.hops[0].fields, later.hops[0].fields
    if a.get("proto") != "tcp" or first.summary != later.summary or a.get("len") != b.get("len"):
        return False
    if a.get("seq") is not None and b.get("seq") is not None:
        return bool(a["seq"] == b["seq"])
    return first.summary in ("SYN", "SYN-ACK")


def _related(packet: Packet) -> bool:
    """An ICMP error about the connection, not an answer from its peer."""
    return bool(packet.hops and packet.hops[0].fields.get("inner"))


def _with_applied_nat(hops: pd.DataFrame, flows: Sequence[Flow]) -> pd.DataFrame:
    """``nat_mark`` where SNAT or a reply's de-DNAT is applied, packet by packet (only the
    packets of connections with NAT need it).

    Works on plain tuples of the few columns it reads: a pandas selection per packet copied
    every column and took 17 s for the 4,000 NATed packets of the report benchmark.
    """
    natted = {flow.id: flow for flow in flows if flow.nat}
    subset = hops.loc[hops["flow"].isin(set(natted)), list(_NAT_COLUMNS)]
    if subset.empty:
        return hops
    per_packet: dict[object, list[Any]] = {}
    for row in subset.itertuples():
        per_packet.setdefault(row.packet, []).append(row)
    marks = {}
    for rows in per_packet.values():
        applied = _applied_nat(rows, natted[str(rows[0].flow)])
        if applied is not None:
            marks[applied[0]] = applied[1]
    if not marks:
        return hops
    marked = hops.copy()
    marked.loc[list(marks), "nat_mark"] = list(marks.values())
    return marked


# What _applied_nat reads of each hop.
_NAT_COLUMNS = ("packet", "flow", "direction", "related", "host", "hook", "out_iface", "src",
                "sport", "nat_mark")  # fmt: skip


def _packet(n: int, rows: list[dict[str, Any]], fate: object, stopped_at: object) -> Packet:
    """One Packet record from its hop rows (already in journey order)."""
    return Packet(
        n=n,
        direction=str(rows[0]["direction"]),
        summary=packet_summary(rows[0]),
        fate=str(fate),
        stopped_at=None if missing(stopped_at) else str(stopped_at),
        hops=tuple(_journey_hop(row) for row in rows),
    )


def _applied_nat(rows: list[Any], flow: Flow) -> tuple[object, str] | None:
    """Where SNAT (or a reply's de-DNAT) is applied to one packet, as (hop index, mark): after
    the packet's last POSTROUTING hop on the NATing host, which still shows the old address (nat
    POSTROUTING runs last). None when nothing is applied or the hop is marked already.

    Conntrack translates every packet of the connection, but only the first one passes the nat
    table: when no POSTROUTING hop was logged, the mark goes after the last hop that routed the
    packet out (FORWARD or OUTPUT) while it still shows the address NAT replaces.
    """
    if rows[0].related:
        return None
    applied, mark = {"orig": ("snat", "snat"), "reply": ("dnat", "de-dnat")}[rows[0].direction]
    translations = [t for t in flow.nat if t.type == applied]
    if not translations:
        return None
    hosts = {t.host for t in translations}
    on_host = rows if None in hosts else [r for r in rows if r.host in hosts]
    last = [r for r in on_host if r.hook == "POSTROUTING"]
    if not last:
        replaced = translations[0].from_addr if applied == "snat" else translations[0].to_addr
        last = [
            r
            for r in on_host
            if r.hook in ("FORWARD", "OUTPUT")
            and not missing(r.out_iface)
            and format_endpoint(str(r.src), None if missing(r.sport) else int(r.sport)) == replaced
        ]
    if not last or not missing(last[-1].nat_mark):
        return None
    return last[-1].Index, mark


def packet_summary(hop: Mapping[str, Any]) -> str:
    """A short description of a packet from one of its hops: "SYN", "SYN-ACK", "echo-request"."""
    proto = _value(hop.get("proto"))
    if _value(hop.get("inner_src")) is not None:
        return (
            f"{proto} error type {_value(hop.get('icmp_type'))} code {_value(hop.get('icmp_code'))}"
        )
    if proto == "tcp":
        words = (_value(hop.get("flags")) or "").split()
        named = [w for w in ("SYN", "FIN", "RST", "PSH", "ACK") if w in words]
        return "-".join(named) or "no flags"
    if proto in ("icmp", "icmpv6"):
        kind = ICMP_NAMES.get((proto, _value(hop.get("icmp_type"))))
        return kind or f"{proto} type {_value(hop.get('icmp_type'))}"
    length = _value(hop.get("len"))
    return f"{proto} {length} bytes" if length is not None else str(proto)


ICMP_NAMES = {
    ("icmp", 8): "echo-request",
    ("icmp", 0): "echo-reply",
    ("icmpv6", 128): "echo-request",
    ("icmpv6", 129): "echo-reply",
}


def _value(value: object) -> Any:
    """A cell as a plain Python value (None for missing)."""
    if missing(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _journey_hop(row: dict[str, Any]) -> JourneyHop:
    """One JourneyHop from a traced hop row."""
    fields = hop_to_json({c: row.get(c) for c in HOP_COLUMNS})
    marks = (row["nat_mark"],) if _value(row.get("nat_mark")) is not None else ()
    return JourneyHop(
        fields=fields,
        table=_value(row.get("table")),
        chain=_value(row.get("chain")),
        hook=_value(row.get("hook")),
        evidence=str(_value(row.get("evidence")) or "guess"),
        role=_value(row.get("role")),
        role_switch=bool(row.get("role_switch")),
        translated=bool(row.get("translated")),
        nat=marks,
        host=_value(row.get("host")),
        in_iface=_value(row.get("in_iface")),
        out_iface=_value(row.get("out_iface")),
        physin=_value(row.get("physin")),
        physout=_value(row.get("physout")),
        src=_value(row.get("src")),
        sport=_value(row.get("sport")),
        dst=_value(row.get("dst")),
        dport=_value(row.get("dport")),
        ttl=_value(row.get("ttl")),
    )


NAT_CHOICES = {"snat": ("snat",), "dnat": ("dnat", "redirect"), "any": NAT_TYPES}
# What trace_hops reads (flows need no more; journeys read every column for their hop fields).
TRACE_COLUMNS = frozenset(
    {"source", "lineno", "host", "ts", "uptime", "kind", "prefix", "in_iface", "out_iface",
     "physin", "physout", "macdst", "macsrc", "family", "src", "dst", "len", "ttl", "id",
     "proto", "sport", "dport", "seq", "ack", "window", "flags", "icmp_type", "icmp_code",
     "icmp_id", "icmp_seq", "inner_src", "inner_dst", "inner_proto", "inner_sport",
     "inner_dport", "inner_icmp_id", "arp_opcode", "arp_ipsrc", "arp_ipdst", "trace_table",
     "trace_chain", "trace_type", "trace_rulenum"}
)  # fmt: skip
# Read only to decide bridge roles (select_flows(roles=False) skips them).
ROLE_COLUMNS = frozenset({"macdst", "macsrc"})
# What a selection needs to find the rest of its connections.
SELECTED_COLUMNS = ["source", "lineno", "ts", "sport", "dport", "inner_sport", "inner_dport",
                    "icmp_id", "inner_icmp_id"]  # fmt: skip
# Widening a selection to the rest of its connections reads this much around it (seconds).
WIDEN_MARGIN = 600.0


@dataclass(frozen=True)
class FlowQuery:
    """What ``logpath flows`` asks: hop filters pushed down into the store, then flow filters."""

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
    """Trace a big store whole even without a filter (``--all``)."""


def store_ruleset(store: Store) -> Ruleset | None:
    """The ruleset kept in the store at ingest (``logpath ingest --rules``), if any."""
    kept = store.require().ruleset
    if not kept:
        return None
    return Ruleset.from_json(kept if isinstance(kept, str) else json.dumps(kept))


def store_clocks(store: Store) -> Clocks:
    """The hosts' boot times and clock offsets, learned once from the whole store.

    A question about one connection selects too few packets to learn the hosts' offset from
    (an IPv6 connection: none, it has no IP ID), and every subset of the store's lines must land
    on the same clock, so both are learned from all of them and kept beside the store
    (CLOCKS_FILE) until ingest adds a part.
    """
    parts = list(store.require().parts)
    kept_at = store.path / CLOCKS_FILE
    try:
        kept = json.loads(kept_at.read_text())
        if kept["parts"] == parts:
            return Clocks.from_json(kept)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # not learned yet, or for other parts
    lines = store.read_hops(columns=["host", "ts", "uptime"])
    shared = lines.iloc[:0]
    if lines["host"].nunique() > 1:
        shared = store.read_hops(ds.field("id") != 0, CLOCK_COLUMNS)
    clocks = learn_clocks(lines, shared)
    try:
        temporary = kept_at.with_suffix(".tmp")
        temporary.write_text(json.dumps({"parts": parts, **clocks.to_json()}))
        os.replace(temporary, kept_at)
    except OSError:
        pass  # a store we may not write to: learned again next time
    return clocks


# Where store_clocks keeps what it learned, in the store's directory.
CLOCKS_FILE = "clocks.json"


def select_flows(
    store: Store, query: FlowQuery, columns: list[str] | None = None, *, roles: bool = True
) -> tuple[pd.DataFrame, list[Flow]]:
    """The flows matching ``query`` and their traced hops, reading only what they need.

    The store's pushed-down filter picks the matching hops first; the selection is then widened
    to the other hops of their connections (same ports, NAT changes addresses but seldom the
    client port), and only those are grouped into packets and flows.

    Example:
        >>> traced, flows = select_flows(Store(path), FlowQuery(port=12580))
    """
    if query.nat is not None and query.nat not in NAT_CHOICES:
        raise UsageError(f"--nat {query.nat!r}: use snat, dnat or any")
    _refuse_unbounded(store, query)
    hop_query = {k: getattr(query, k) for k in ("port", "ident", "host", "proto", "since", "until")}
    selective = any(v is not None for v in hop_query.values())
    traced_columns = TRACE_COLUMNS if roles else TRACE_COLUMNS - ROLE_COLUMNS
    hop_columns = columns or [c for c in HOP_COLUMNS if c in traced_columns]
    # the store's own scan is the fastest way to the selection (pushed-down filter, threads)
    selected = store.read_hops(hop_filter(**hop_query), SELECTED_COLUMNS) if selective else None
    if selected is None:
        hops = store.read_hops(columns=hop_columns)
    else:
        hops = _widen(store, selected, hop_columns)
    traced = trace_hops(hops, store_ruleset(store), roles=roles, clocks=store_clocks(store))
    if selected is not None:
        picked = _line_keys(traced).isin(_line_keys(selected))
        traced = traced[traced["flow"].isin(set(traced.loc[picked, "flow"]))]
    flows = summarise_flows(traced)
    if query.nat is not None:
        kinds = NAT_CHOICES[query.nat]
        flows = [f for f in flows if any(t.type in kinds for t in f.nat)]
        traced = traced[traced["flow"].isin({f.id for f in flows})]
    return traced, flows


def _line_keys(hops: pd.DataFrame) -> pd.MultiIndex:
    """Where each hop was read (source file, line number): a hop's identity in the store."""
    return pd.MultiIndex.from_arrays([hops["source"].astype("object"), hops["lineno"]])


# Without a filter, a store bigger than this is traced whole only when asked (--all): it takes
# about a minute and 3 GB per million hops (2M-line benchmark store: 54 s, 3.1 GB).
UNFILTERED_HOPS = 300_000


def _refuse_unbounded(store: Store, query: FlowQuery) -> None:
    filters = (query.port, query.ident, query.host, query.proto, query.since, query.until)
    if query.everything or any(value is not None for value in filters):
        return
    count = store.count_hops()
    if count > UNFILTERED_HOPS:
        raise UsageError(
            f"{store.path}: the store holds {count:,} hops; tracing them all takes minutes and "
            "gigabytes\n\nNarrow it with --port, --host, --proto, --since or --until, "
            "or pass --all."
        )


def _widen(store: Store, selected: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The selected hops plus every hop sharing one of their ports (or ICMP ids) near in time.

    Scans the store batch by batch and keeps only matching rows: memory follows the selection.
    """
    schema = pa.schema([HOP_SCHEMA.field(c) for c in columns])
    if selected.empty:
        return to_frame(schema.empty_table())
    port_windows = _Windows.around(selected, PORT_COLUMNS)
    id_windows = _Windows.around(selected, ID_COLUMNS)
    # No filter pushed down into the scan: evaluating isin over six columns cost more (0.37 s)
    # than decoding everything (0.23 s) and looking the values up in the windows below.
    kept = []
    for batch in store.hop_batches(columns, _time_span(selected)):
        stamps = _batch_seconds(batch)
        near = np.zeros(batch.num_rows, dtype=bool)
        for column in PORT_COLUMNS:
            near |= port_windows.near(batch.column(column), stamps)
        for column in ID_COLUMNS:
            near |= id_windows.near(batch.column(column), stamps)
        if near.any():
            kept.append(batch.filter(pa.array(near)))
    table = pa.Table.from_batches(kept, schema=schema)
    return to_frame(table)


def _time_span(selected: pd.DataFrame) -> ds.Expression | None:
    """The widening's time bounds: the store's row groups are in time order, so their
    statistics let the scan skip those outside (a three-hour question on the 35-hour benchmark
    store reads a tenth of it). Hops without wall-clock time are always in."""
    seconds = _seconds(selected["ts"])
    if np.isnan(seconds).any():
        return None
    low = pd.Timestamp(seconds.min() - WIDEN_MARGIN, unit="s", tz="UTC")
    high = pd.Timestamp(seconds.max() + WIDEN_MARGIN, unit="s", tz="UTC")
    ts = ds.field("ts")
    micros = pa.timestamp("us", tz="UTC")
    inside = (ts >= pa.scalar(low, micros)) & (ts <= pa.scalar(high, micros))
    return inside | ts.is_null()


PORT_COLUMNS = ("sport", "dport", "inner_sport", "inner_dport")
ID_COLUMNS = ("icmp_id", "inner_icmp_id")


@dataclass(frozen=True)
class _Windows:
    """Per 16-bit value (a port or an ICMP id), the time window in which a hop showing it joins
    the selection: a table indexed by the value itself, so testing a million hops is one lookup
    each (binary search over the selected values took half the widening scan)."""

    low: np.ndarray
    """Epoch seconds; NaN where the value was not selected, -inf where it matches at any time."""
    high: np.ndarray
    """Epoch seconds; NaN where the value was not selected, +inf where it matches at any time."""

    @classmethod
    def around(cls, selected: pd.DataFrame, columns: tuple[str, ...]) -> _Windows:
        """The windows of the values these columns show in the selected hops, widened by
        WIDEN_MARGIN on both sides."""
        seconds = _seconds(selected["ts"])
        low, high = np.full(VALUES, np.nan), np.full(VALUES, np.nan)
        for column in columns:
            values = selected[column].to_numpy(dtype="float64", na_value=np.nan)
            shown = ~np.isnan(values)
            value, stamp = values[shown].astype(np.int64), seconds[shown]
            np.fmin.at(low, value, stamp - WIDEN_MARGIN)  # fmin/fmax skip the NaN start
            np.fmax.at(high, value, stamp + WIDEN_MARGIN)
            # a hop without wall-clock time cannot be placed in time: its value matches always
            untimed = value[np.isnan(stamp)]
            low[untimed], high[untimed] = -np.inf, np.inf
        return cls(low, high)

    def near(self, column: pa.Array | pa.ChunkedArray, stamps: np.ndarray) -> np.ndarray:
        """Rows whose value in ``column`` is a selected one, at a time inside its window (or
        without wall-clock time)."""
        values = pc.fill_null(column, -1).to_numpy(zero_copy_only=False)
        valid = (values >= 0) & (values < VALUES)
        slot = np.where(valid, values, 0)
        low, high = self.low[slot], self.high[slot]
        near: np.ndarray = valid & (
            ((stamps >= low) & (stamps <= high)) | (np.isnan(stamps) & ~np.isnan(low))
        )
        return near


VALUES = 1 << 16  # ports and ICMP ids are 16-bit


def _seconds(stamps: pd.Series) -> np.ndarray:
    """Epoch seconds (NaN where missing)."""
    stamps = pd.to_datetime(stamps, utc=True)
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype="float64")


def _batch_seconds(batch: pa.RecordBatch) -> np.ndarray:
    """Epoch seconds of a batch's ``ts`` column (NaN where missing)."""
    micros = pc.cast(batch.column("ts"), pa.int64())
    seconds: np.ndarray = micros.to_numpy(zero_copy_only=False).astype("float64") / 1e6
    return seconds


def load_journey(store: Store, flow_id: str, packet: int | None = None) -> Journey:
    """The journey of flow ``flow_id`` (as ``logpath flows`` named it) from the store.

    Raises:
        NotFoundError: no such flow, or no such packet in it.
    """
    port = flow_id_port(flow_id)
    if port is None:
        traced = trace_hops(store.read_hops(), store_ruleset(store), clocks=store_clocks(store))
    else:
        traced, _ = select_flows(store, FlowQuery(ident=port), columns=list(HOP_COLUMNS))
    return build_journey(traced, flow_id, packet)
