"""Journeys: one flow with its packets in time order, each with its hops in hook order.

These are the records renderers draw (terminal timeline, sequence diagram) and what
``logpath journey ID --json`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logpath.flows import Flow


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
    between ports), "stopped" (ends where a later hook was expected) or "seen" (one hook only)."""
    stopped_at: str | None
    """When fate is "stopped": the last hook seen, e.g. "PREROUTING"."""
    hops: tuple[JourneyHop, ...]
    """Hops in time (hook) order."""

    def to_json(self) -> dict[str, Any]:
        """``{"n", "direction", "summary", "fate", "hops"}`` as in the journey contract."""
        return {
            "n": self.n,
            "direction": self.direction,
            "summary": self.summary,
            "fate": self.fate,
            "stopped_at": self.stopped_at,
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
