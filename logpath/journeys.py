"""Journeys: one flow with its packets in time order, each with its hops in hook order.

These are the records renderers draw (terminal timeline, sequence diagram) and what
``logpath journey ID --json`` prints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logpath.errors import NotFoundError
from logpath.hops import HOP_COLUMNS, hop_to_json
from logpath.icmp import icmp_label
from logpath.records import Flow, format_endpoint

# A journey read from a store is built from plain rows (``journeys_from_rows``): pandas, and the
# stages that trace hops in memory, are imported only by ``build_journey(s)``.
if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Quote:
    """The packet an ICMP error quotes, as this hop shows it (NAT translates the quote with
    the error)."""

    proto: str | None
    """Its protocol (tcp, udp, icmp, ...)."""
    src: str
    """Its source address as quoted."""
    sport: int | None
    """Its source port (or ICMP echo id) as quoted."""
    dst: str
    """Its destination address as quoted."""
    dport: int | None
    """Its destination port as quoted."""
    direction: str
    """The direction the quoted packet travelled: "orig" or "reply" (the error's other one)."""
    nat: tuple[str, ...]
    """The translations the quote shows done, compared with its direction's conntrack tuple:
    "snat", "dnat" (empty when it shows the tuple's own addresses)."""

    def __str__(self) -> str:
        """``udp 172.30.0.2:34834 → 10.77.0.2:9009``."""
        ends = f"{format_endpoint(self.src, self.sport)} → {format_endpoint(self.dst, self.dport)}"
        return f"{self.proto} {ends}" if self.proto else ends

    def to_json(self) -> dict[str, Any]:
        """``{"proto", "src", "sport", "dst", "dport", "direction", "nat"}``."""
        return {**dataclasses.asdict(self), "nat": list(self.nat)}


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
    rule: str | None = None
    """For a TRACE line, the rule it names as the ruleset writes it (``-p tcp -j fmtchain``,
    ``policy ACCEPT``), when the ruleset is known."""
    nat_after: bool = False
    """True when the ``nat`` mark is NAT applied after this hop, not a change since the previous
    one: nat POSTROUTING (or, unlogged, the hop that routed the packet out) logs before the
    translation, so the hop still shows the addresses it replaces."""
    quote: Quote | None = None
    """For an ICMP error, the packet it quotes as this hop shows it."""

    @property
    def icmp(self) -> str | None:
        """The ICMP(v6) message by name (``port unreachable``), None for other protocols."""
        fields = self.fields
        if fields.get("icmp_type") is None:
            return None
        return icmp_label(fields.get("proto"), fields["icmp_type"], fields.get("icmp_code"))

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
            "nat_after": self.nat_after,
            "icmp": self.icmp,
            "quote": self.quote.to_json() if self.quote else None,
            "rule": self.rule,
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
    "udp 32 bytes", "icmp error: port unreachable" (names from ``logpath.icmp``)."""
    fate: str
    """What became of it: "delivered" (INPUT), "forwarded" (left by FORWARD/POSTROUTING),
    "sent" (OUTPUT/POSTROUTING of a local packet), "switched" (bridged between ports), "arrived"
    (reached the next host, logged there at PREROUTING only); with the ruleset (``verdict``),
    "dropped" or "rejected" by a rule, "lost" (a later LOG rule matches it, no line shows it),
    "unlogged" (it went on where no LOG rule matches); "stopped" (ends where its connection's
    other packets went on, and nothing answered the connection) or "unknown" (nothing later was
    expected and nothing says more, a rule that cannot be evaluated, or without a ruleset, a
    packet of an answered connection whose logs end early: see ``stopped_at``)."""
    stopped_at: str | None
    """When the packet's logs end where a later hook was expected: the last hook seen, e.g.
    "PREROUTING"."""
    hops: tuple[JourneyHop, ...]
    """Hops in time (hook) order."""
    sent_again_as: int | None = None
    """When stopped: the number of the next packet if it is this one sent again (a TCP
    retransmission: same flags and length, and sequence number where logged). The first copy
    was then dropped or lost where it stopped."""
    answered_by: int | None = None
    """When stopped: the number of the next packet if it went the other way, answering. The
    packet then went on, only its later hooks were not logged."""
    verdict: dict[str, Any] | None = None
    """The rule that decided its fate, from the ruleset: ``{"action", "hook", "table", "chain",
    "rule", "text", "evidence", "reason"}``; None without a ruleset (or a line no LOG rule of
    it writes)."""

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
            "verdict": self.verdict,
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


def build_journey(traced: pd.DataFrame, flow_id: str, packet: int | None = None) -> Journey:
    """The journey of one flow of ``trace_hops`` output (optionally only its packet ``packet``).

    Raises:
        NotFoundError: no such flow, or no such packet in it.
    """
    from logpath.summaries import summarise_flows

    hops = traced[traced["flow"] == flow_id]
    if hops.empty:
        raise NotFoundError(f"no flow {flow_id!r} in the store (see `logpath flows`)")
    flow = summarise_flows(hops)[0]
    (journey,) = build_journeys(hops, [flow])
    return only_packet(journey, packet)


def only_packet(journey: Journey, packet: int | None) -> Journey:
    """The journey with only its packet number ``packet`` (all of it for None).

    Raises:
        NotFoundError: the flow has no such packet.
    """
    if packet is None:
        return journey
    packets = tuple(p for p in journey.packets if p.n == packet)
    if not packets:
        flow = journey.flow
        raise NotFoundError(f"flow {flow.id} has no packet {packet} (it has {flow.packets})")
    return Journey(flow=journey.flow, packets=packets)


def build_journeys(traced: pd.DataFrame, flows: Sequence[Flow]) -> list[Journey]:
    """The journey of every flow of ``trace_hops`` output, in the flows' order.

    The fates and NAT marks are the trace's own when it was read from a store (assembly found
    them at ingest); hops traced in memory get them here, for all flows at once (one flow at a
    time took 165 ms a flow, 2 min 45 s for a report of 992 connections).
    """
    if not flows:
        return []
    hops = traced.reset_index(drop=True)
    if "fate" not in hops.columns:  # hops traced in memory, not read from a store's trace
        from logpath.assembly import with_journey_marks
        from logpath.nat import translation_table

        hops = with_journey_marks(hops, translation_table({flow.id: flow.nat for flow in flows}))
    # missing cells (NaN, NA, NaT) as None, as a row read from the store has them
    rows = hops.astype(object).where(hops.notna(), None).to_dict("records")
    return journeys_from_rows([{str(k): v for k, v in row.items()} for row in rows], flows)


def journeys_from_rows(rows: Sequence[Mapping[str, Any]], flows: Sequence[Flow]) -> list[Journey]:
    """The journey of every flow of these trace rows (TRACE_SCHEMA, as dicts, None for a
    missing cell, in the trace's order), in the flows' order."""
    packets: dict[int, list[Mapping[str, Any]]] = {}
    for row in rows:
        packets.setdefault(int(row["packet"]), []).append(row)
    per_flow: dict[str, list[int]] = {}
    for number in sorted(packets):  # build_journey numbers packets in this order
        per_flow.setdefault(str(packets[number][0]["flow"]), []).append(number)
    return [
        Journey(
            flow=flow,
            packets=_what_followed(
                [
                    _packet(n, packets[number], flow)
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
        if packet.stopped_at is None:
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


def _packet(n: int, rows: list[Mapping[str, Any]], flow: Flow) -> Packet:
    """One Packet record from its hop rows (already in journey order)."""
    fate, stopped_at = rows[0]["fate"], rows[0]["stopped_at"]
    return Packet(
        n=n,
        direction=str(rows[0]["direction"]),
        summary=packet_summary(rows[0]),
        fate=str(fate),
        stopped_at=None if stopped_at is None else str(stopped_at),
        hops=tuple(_journey_hop(row, flow) for row in rows),
        verdict=_verdict(rows[0].get("verdict")),
    )


def _verdict(text: object) -> dict[str, Any] | None:
    """The stored verdict (JSON text), None where there is none."""
    if not isinstance(text, str):
        return None
    verdict: dict[str, Any] = json.loads(text)
    return verdict


def packet_summary(hop: Mapping[str, Any]) -> str:
    """A short description of a packet from one of its hops: "SYN", "SYN-ACK", "echo-request"."""
    proto = _value(hop.get("proto"))
    kind, code = _value(hop.get("icmp_type")), _value(hop.get("icmp_code"))
    if _value(hop.get("inner_src")) is not None:
        return f"{proto} error: {icmp_label(proto, kind, code)}"
    if proto == "tcp":
        words = (_value(hop.get("flags")) or "").split()
        named = [w for w in ("SYN", "FIN", "RST", "PSH", "ACK") if w in words]
        return "-".join(named) or "no flags"
    if proto in ("icmp", "icmpv6"):
        return icmp_label(proto, kind, code)
    opcode = _value(hop.get("arp_opcode"))
    if proto is None and opcode is not None:
        return ARP_OPCODES.get(opcode, f"arp opcode {opcode}")
    length = _value(hop.get("len"))
    if proto is None:  # LOG printed none (an IPv6 header chain it did not follow): not "None"
        return "protocol not logged" + (f", {length} bytes" if length is not None else "")
    return f"{proto} {length} bytes" if length is not None else str(proto)


# ARP's opcodes by name (RFC 826, RFC 903's reverse ARP)
ARP_OPCODES = {1: "arp request", 2: "arp reply", 3: "rarp request", 4: "rarp reply"}


def _value(value: object) -> Any:
    """A cell as a plain Python value (None for missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _journey_hop(row: Mapping[str, Any], flow: Flow) -> JourneyHop:
    """One JourneyHop from a traced hop row of ``flow``."""
    fields = hop_to_json({c: row.get(c) for c in HOP_COLUMNS})
    # what changed since the previous hop, or what NAT applies after this one
    changed, after = _value(row.get("nat_mark")), _value(row.get("applied_nat"))
    mark = changed or after
    marks = (mark,) if mark is not None else ()
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
        # an ARP packet has no IP header: its sender and target addresses stand in
        src=_value(row.get("src")) or _value(row.get("arp_ipsrc")),
        sport=_value(row.get("sport")),
        dst=_value(row.get("dst")) or _value(row.get("arp_ipdst")),
        dport=_value(row.get("dport")),
        ttl=_value(row.get("ttl")),
        rule=_value(row.get("rule")),
        nat_after=changed is None and after is not None,
        quote=_quote(fields, str(row.get("direction")), flow),
    )


def _quote(fields: Mapping[str, Any], direction: str, flow: Flow) -> Quote | None:
    """The packet an ICMP error quotes (None for any other packet), with the translations its
    addresses show against the conntrack tuple of the direction it went."""
    inner = fields.get("inner")
    if not inner or not inner.get("src"):
        return None
    went = "reply" if direction == "orig" else "orig"
    own = flow.orig if went == "orig" else flow.reply
    # a port-less quote (ICMP) carries its echo id where the tuple keeps it as sport
    sport = inner.get("sport") if inner.get("sport") is not None else inner.get("icmp_id")
    moved_src = not _same(inner["src"], own.src) or (sport is not None and sport != own.sport)
    moved_dst = not _same(inner.get("dst"), own.dst) or (
        inner.get("dport") is not None and inner.get("dport") != own.dport
    )
    # orig packets are changed at their source by SNAT, replies at theirs by de-DNAT
    kinds = ("snat", "dnat") if went == "orig" else ("dnat", "snat")
    nat = tuple(kind for kind, moved in zip(kinds, (moved_src, moved_dst), strict=True) if moved)
    return Quote(inner.get("proto"), str(inner["src"]), sport, str(inner.get("dst")),
                 inner.get("dport"), went, nat)  # fmt: skip


def _same(address: object, other: object) -> bool:
    """Two addresses equal as addresses (the log prints IPv6 uncompressed, tuples compress)."""
    try:
        return ipaddress.ip_address(str(address)) == ipaddress.ip_address(str(other))
    except ValueError:
        return address == other
