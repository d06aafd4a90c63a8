"""The records every stage after parsing passes on: a connection (``Flow``), its tuples and its
NAT translations, and how an endpoint and a tuple key are written; the connections table
(``FLOW_SCHEMA``) they are stored as, and read back from (``flows_from_table``, Arrow only: a
question reading a few connections needs no pandas)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from logpath.rowgroups import python_rows

NAT_TYPES = ("snat", "dnat", "redirect")


def format_endpoint(addr: str, port: int | None) -> str:
    """``addr[:port]`` as the NAT contract writes it; an IPv6 address with a port is bracketed."""
    if port is None:
        return addr
    if ":" in addr:
        return f"[{addr}]:{port}"
    return f"{addr}:{port}"


@dataclass(frozen=True)
class ConnTuple:
    """One direction of a connection as conntrack keys it (src, sport -> dst, dport)."""

    src: str
    """Source address (IPv6 in compressed form)."""
    sport: int | None
    """Source port; the echo identifier for ICMP echo; None when the protocol has none."""
    dst: str
    """Destination address."""
    dport: int | None
    """Destination port; None for ICMP and protocols without ports."""

    def reversed(self) -> ConnTuple:
        """The same tuple seen from the other side (ports swap, except an ICMP echo id)."""
        return ConnTuple(self.dst, self.dport, self.src, self.sport)

    def __str__(self) -> str:
        """``src:sport → dst:dport``, as tables and timelines print it."""
        return f"{format_endpoint(self.src, self.sport)} → {format_endpoint(self.dst, self.dport)}"

    def to_json(self) -> dict[str, Any]:
        """``{"src", "sport", "dst", "dport"}`` as in the flows contract."""
        return {"src": self.src, "sport": self.sport, "dst": self.dst, "dport": self.dport}


@dataclass(frozen=True)
class Translation:
    """One NAT translation of a connection, inferred from the hops."""

    type: str
    """"snat" (SNAT or MASQUERADE), "dnat" or "redirect" (DNAT to a local address)."""
    from_addr: str
    """The address[:port] before translation (written ``from`` in JSON)."""
    to_addr: str
    """The address[:port] after translation (written ``to`` in JSON)."""
    hook: str
    """Where the translation is applied: PREROUTING/OUTPUT for DNAT, POSTROUTING for SNAT."""
    host: str | None = None
    """The syslog host whose netfilter applied it, when known."""
    evidence: str = ""
    """Why we believe it: "dst-change", "reply-dst", "reply-src", "cross-host"."""

    def to_json(self) -> dict[str, Any]:
        """``{"type", "from", "to", "hook"}`` plus the host and evidence."""
        return {
            "type": self.type,
            "from": self.from_addr,
            "to": self.to_addr,
            "hook": self.hook,
            "host": self.host,
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Flow:
    """One connection as conntrack sees it, summarised from its packets."""

    id: str
    """Stable id: a short hash of proto, the orig tuple and the first hop's time and place."""
    proto: str
    """Protocol name ("tcp", "udp", "icmp", "icmpv6", ...) or number as str."""
    family: int
    """4 or 6."""
    orig: ConnTuple
    """The original tuple, as the first packet showed it before any NAT."""
    reply: ConnTuple
    """The reply tuple, as answers arrive before de-NAT (src = server after DNAT, dst = client
    after SNAT)."""
    nat: tuple[Translation, ...]
    """NAT translations applied to this connection (empty when none)."""
    packets: int
    """Number of packets (related ICMP errors included)."""
    hops: int
    """Number of hops (log lines) of those packets."""
    first_seen: datetime | None
    """Wall-clock time of the first hop (UTC), None when the logs carry no date."""
    last_seen: datetime | None
    """Wall-clock time of the last hop (UTC)."""
    state: str
    """Last state: tcp "syn-sent", "syn-recv", "established", "fin-wait", "closed", "reset";
    other protocols "unreplied" or "replied"."""
    progression: tuple[str, ...]
    """TCP events in order of first appearance: SYN, SYN-ACK, ACK, FIN, RST (empty for others)."""
    answered: bool
    """True when at least one packet travelled in the reply direction."""
    hosts: tuple[str, ...]
    """Syslog hosts whose logs show this flow."""
    stopped: int
    """Number of packets whose journey stops where a later hook was expected."""
    dropped: int = 0
    """Number of packets a rule dropped or rejected (the ruleset's verdict)."""
    lost: int = 0
    """Number of packets a later LOG rule matches that no line shows (the ruleset's verdict)."""

    def to_json(self) -> dict[str, Any]:
        """The flow as ``logpath flows --json`` prints it (issue 3 contract, extended)."""
        return {
            "id": self.id,
            "proto": self.proto,
            "family": self.family,
            "orig": self.orig.to_json(),
            "reply": self.reply.to_json(),
            "nat": [translation.to_json() for translation in self.nat],
            "packets": self.packets,
            "hops": self.hops,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "state": self.state,
            "progression": list(self.progression),
            "answered": self.answered,
            "hosts": list(self.hosts),
            "stopped": self.stopped,
            "dropped": self.dropped,
            "lost": self.lost,
        }


def _iso(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None."""
    if when is None:
        return None
    return when.isoformat().replace("+00:00", "Z")


# Protocols whose conntrack tuple has ports; others show only addresses in NAT records.
PORTED = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})


def key_tuple(key: str) -> tuple[str, ConnTuple]:
    """The protocol and tuple of a key written by _directed_keys (``proto|src|sport|dst|dport``)."""
    proto, src, sport, dst, dport = key.split("|")
    return proto, ConnTuple(src, int(sport) if sport else None, dst, int(dport) if dport else None)


_ENDPOINT = [("src", pa.string()), ("sport", pa.int32()), ("dst", pa.string()),
             ("dport", pa.int32())]  # fmt: skip
FLOW_SCHEMA = pa.schema(
    [
        ("flow_n", pa.int64()),
        ("id", pa.string()),
        ("proto", pa.string()),
        ("family", pa.int8()),
        *[(f"orig_{name}", type_) for name, type_ in _ENDPOINT],
        *[(f"reply_{name}", type_) for name, type_ in _ENDPOINT],
        ("nat", pa.string()),  # JSON: the translations as Flow.to_json writes them
        ("packets", pa.int64()),
        ("hops", pa.int64()),
        ("first_seen", pa.timestamp("us", tz="UTC")),
        ("last_seen", pa.timestamp("us", tz="UTC")),
        ("state", pa.string()),
        ("progression", pa.list_(pa.string())),
        ("answered", pa.bool_()),
        ("hosts", pa.list_(pa.string())),
        ("stopped", pa.int64()),
        ("dropped", pa.int64()),
        ("lost", pa.int64()),
    ]
)
"""The stored connections table: the Flow record's fields, ``flow_n`` its place in time."""

FLOW_COLUMNS = pa.schema([f for f in FLOW_SCHEMA if f.name != "flow_n"])
"""FLOW_SCHEMA before the connections are numbered (once every chunk's are known)."""


def flows_from_table(table: pa.Table) -> list[Flow]:
    """The Flow records of FLOW_SCHEMA rows (read column by column: a dict per row cost
    more than the records themselves)."""
    return [_flow(row) for row in python_rows(table)]


@functools.lru_cache(maxsize=1 << 14)
def _translations(text: str) -> tuple[Translation, ...]:
    """The NAT records of a connection (its ``nat`` column, JSON). Kept for the texts seen
    last: follow reads a connection again at each step it is assembled in, mostly with the
    same NAT, and decoding was most of what making its record cost."""
    if text == "[]":  # most connections: no NAT, nothing to decode
        return ()
    return tuple(
        Translation(t["type"], t["from"], t["to"], t["hook"], t["host"], t["evidence"])
        for t in json.loads(text)
    )


def _flow(row: dict[str, Any]) -> Flow:
    def side(which: str) -> ConnTuple:
        return ConnTuple(
            row[f"{which}_src"], row[f"{which}_sport"], row[f"{which}_dst"], row[f"{which}_dport"]
        )

    nat = _translations(row["nat"])
    return Flow(
        id=row["id"],
        proto=row["proto"],
        family=row["family"],
        orig=side("orig"),
        reply=side("reply"),
        nat=nat,
        packets=row["packets"],
        hops=row["hops"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
        state=row["state"],
        progression=tuple(row["progression"]),
        answered=row["answered"],
        hosts=tuple(row["hosts"]),
        stopped=row["stopped"],
        dropped=row.get("dropped", 0),
        lost=row.get("lost", 0),
    )
