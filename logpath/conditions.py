"""Whether one condition of a rule (a ``Match``) holds for a packet: yes, no, or cannot tell.

    >>> facts = PacketFacts("ip", "tcp", "172.30.0.2", "10.77.0.2", sport=40000, dport=9005)
    >>> holds(Match("dport", False, ("80", "9000:9099")), facts)
    True
    >>> holds(Match("unsupported", False, ("-m mark --mark 0x1",)), facts) is None
    True

The evaluator (``evaluate``) asks this for every condition of a rule. ``None`` means the facts
given cannot decide it (a field the log line did not show, a condition logpath does not
evaluate): the rule's outcome is then undecided, never guessed. The meanings follow
iptables-extensions(8) and nft(8); where the kernel decides a corner case, the source is named.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from logpath.grammars.ruleset_records import Match
from logpath.netfilter import protocol_name
from logpath.rules import iface_name_matches

__all__ = ["PacketFacts", "facts_from_hop", "holds"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class PacketFacts:
    """What is known of a packet where a rule sees it; None: not known (never "absent"),
    except for the interfaces, where None is "no such interface" as on a log line."""

    family: str  # "ip" (IPv4) or "ip6"
    proto: str | None  # "tcp", "udp", "icmp", "icmpv6", ... (lower case, as PROTO= in the hops)
    src: str | None  # source address
    dst: str | None  # destination address
    sport: int | None = None  # TCP/UDP/SCTP source port
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    in_iface: str | None = None  # IN= (None: none, as at OUTPUT)
    out_iface: str | None = None  # OUT= (None: none, as at PREROUTING)
    physin: str | None = None  # PHYSIN= (bridge port in; None: not bridged)
    physout: str | None = None  # PHYSOUT=
    tcp_flags: frozenset[str] | None = None  # {"SYN", "ACK"}; None: unknown
    ctstate: str | None = None  # NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED; None: unknown
    # NEW, and the entry is confirmed already: a retransmission of a first packet that left the
    # host (passed POSTROUTING/INPUT), whose NAT is decided, so the nat chains do not run again.
    # A connection's first packet, or a retransmission of one dropped before, is not confirmed.
    confirmed: bool = False
    # The host's own addresses ("10.77.0.1" or, to tell broadcasts, "10.77.0.1/24"); None: not
    # known, and addrtype/fib type conditions are undecided.
    local_addrs: frozenset[str] | None = None


def facts_from_hop(
    hop: Mapping[str, object],
    ctstate: str | None = None,
    *,
    confirmed: bool = False,
    local_addrs: frozenset[str] | None = None,
) -> PacketFacts:
    """The facts of a packet as one hop shows it (a row of the hop table, ``HOP_SCHEMA`` names;
    None or NaN where the line did not show a field).

    The conntrack state and the host's addresses are not on a log line: the caller knows them
    from the connection (its first packet NEW, later ones ESTABLISHED, ICMP errors RELATED) and
    from the host.
    """
    proto = known(hop.get("proto"))
    flags = known(hop.get("flags"))
    if isinstance(flags, str):
        flags = flags.split()
    tcp = str(proto).lower() == "tcp"
    return PacketFacts(
        family="ip6" if known(hop.get("family")) == 6 else "ip",
        proto=None if proto is None else str(proto).lower(),
        src=text(hop.get("src")),
        dst=text(hop.get("dst")),
        sport=number(hop.get("sport")),
        dport=number(hop.get("dport")),
        icmp_type=number(hop.get("icmp_type")),
        icmp_code=number(hop.get("icmp_code")),
        in_iface=text(hop.get("in_iface")) or None,
        out_iface=text(hop.get("out_iface")) or None,
        physin=text(hop.get("physin")) or None,
        physout=text(hop.get("physout")) or None,
        tcp_flags=frozenset(map(str, flags or ())) if tcp else None,  # type: ignore[call-overload]
        ctstate=ctstate,
        confirmed=confirmed,
        local_addrs=local_addrs,
    )


def known(item: object) -> object:
    """None for a missing field (None, or NaN as pandas shows one)."""
    return None if item is None or (isinstance(item, float) and item != item) else item


def text(item: object) -> str | None:
    item = known(item)
    return None if item is None else str(item)


def number(item: object) -> int | None:
    item = known(item)
    return None if item is None else int(item)  # type: ignore[call-overload]


def holds(match: Match, facts: PacketFacts) -> bool | None:
    """True/False when ``match`` (negation applied) holds for the packet; None: cannot tell."""
    test = TESTS.get(match.kind)
    if test is None:
        return None
    result = test(match.values, facts)
    return result if result is None else result != match.negated


def any_of(results: list[bool | None]) -> bool | None:
    """A list of alternatives: True if one holds, else None if one cannot tell, else False."""
    if True in results:
        return True
    return None if None in results else False


# --- addresses ---------------------------------------------------------------------------------


def address_in(value: str, address: str | None) -> bool | None:
    """An address against ``10.0.0.0/8``, ``10.0.0.1``, ``10.0.0.1-10.0.0.9`` (nft), a mask."""
    if address is None or value.startswith("@"):  # a named set: its elements are not read
        return None
    try:
        packet = ipaddress.ip_address(address)
        if "-" in value:
            low, high = (ipaddress.ip_address(part) for part in value.split("-", 1))
            return low.version == packet.version and bool(low <= packet <= high)  # type: ignore[operator]
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None  # a host name or something logpath does not read
    return network.version == packet.version and packet in network


def src_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return any_of([address_in(value, facts.src) for value in values])


def dst_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return any_of([address_in(value, facts.dst) for value in values])


# --- protocol and ports ------------------------------------------------------------------------

PORTED = frozenset({"tcp", "udp", "sctp", "udplite", "dccp"})


def proto_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    if any(value.lower() in ("all", "0") for value in values):
        return True
    if facts.proto is None:
        return None
    return protocol_name(facts.proto) in {protocol_name(value) for value in values}


def family_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    names = {"ip": "ip", "ipv4": "ip", "ip6": "ip6", "ipv6": "ip6"}
    wanted = {names.get(value.lower()) for value in values}
    return None if None in wanted else facts.family in wanted


def port_in(value: str, port: int) -> bool | None:
    """A port against ``80``, ``9000:9099`` (iptables) or ``9000-9099`` (nft)."""
    low, _sep, high = value.replace("-", ":").partition(":")
    try:
        first = int(low) if low else 0
        last = int(high) if high else (65535 if _sep else first)
    except ValueError:
        return None  # a service name: logpath does not read /etc/services
    return first <= port <= last


def ports_match(
    ports: list[int | None], values: tuple[str, ...], facts: PacketFacts
) -> bool | None:
    """Any of the packet's ``ports`` in any of ``values``; no such header: no match."""
    if facts.proto is not None and protocol_name(facts.proto) not in PORTED:
        return False
    known = [port for port in ports if port is not None]
    result = any_of([port_in(value, port) for port in known for value in values])
    return None if result is not True and len(known) < len(ports) else result


def sport_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return ports_match([facts.sport], values, facts)


def dport_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return ports_match([facts.dport], values, facts)


def either_port_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return ports_match([facts.sport, facts.dport], values, facts)


# --- interfaces --------------------------------------------------------------------------------


def iface_test(name: str) -> Callable[[tuple[str, ...], PacketFacts], bool | None]:
    """The test of one of the packet's interfaces (``eth+``, nft ``"eth*"``; absent: no match)."""

    def test(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
        iface: str | None = getattr(facts, name)
        return any(iface_name_matches(value, iface) for value in values)

    return test


# xt_physdev: --physdev-is-bridged holds when the packet has a bridge port out (physoutdev).
def bridged(_values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return facts.physout is not None


def has_physin(_values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return facts.physin is not None


def has_physout(_values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    return facts.physout is not None


# --- conntrack, address types ------------------------------------------------------------------


def ctstate_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    if facts.ctstate is None:
        return None
    wanted = {value.upper() for value in values}
    if facts.ctstate.upper() in wanted:
        return True
    # --ctstate SNAT/DNAT are about the connection's NAT, which the facts do not hold
    return None if wanted & {"SNAT", "DNAT"} else False


def address_type(address: str | None, local_addrs: frozenset[str] | None) -> str | None:
    """LOCAL, MULTICAST, BROADCAST or UNICAST as the kernel's routing would say; None: unknown."""
    if address is None or local_addrs is None:
        return None
    packet = ipaddress.ip_address(address)
    interfaces = [ipaddress.ip_interface(local) for local in local_addrs]
    if any(interface.ip == packet for interface in interfaces):
        return "LOCAL"
    if packet.is_multicast:
        return "MULTICAST"
    if packet == ipaddress.IPv4Address("255.255.255.255"):
        return "BROADCAST"
    if not all("/" in local for local in local_addrs):
        return None  # a subnet's broadcast address cannot be told without the prefix lengths
    broadcasts = {i.network.broadcast_address for i in interfaces if i.version == 4}
    return "BROADCAST" if packet in broadcasts else "UNICAST"


def type_test(field: str) -> Callable[[tuple[str, ...], PacketFacts], bool | None]:
    """``-m addrtype --src-type``/``--dst-type``, nft ``fib saddr/daddr type``."""

    def test(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
        known = address_type(getattr(facts, field), facts.local_addrs)
        wanted = {value.upper() for value in values}
        if known is None or not wanted <= {"LOCAL", "MULTICAST", "BROADCAST", "UNICAST"}:
            return None
        return known in wanted

    return test


# --- ICMP and TCP flags ------------------------------------------------------------------------

ICMP_TYPES = {
    "echo-reply": 0,
    "destination-unreachable": 3,
    "source-quench": 4,
    "redirect": 5,
    "echo-request": 8,
    "router-advertisement": 9,
    "router-solicitation": 10,
    "time-exceeded": 11,
    "parameter-problem": 12,
    "timestamp-request": 13,
    "timestamp-reply": 14,
}
ICMP_CODES = {  # iptables --icmp-type names that fix the code too: type 3 and 11
    "network-unreachable": (3, 0),
    "host-unreachable": (3, 1),
    "protocol-unreachable": (3, 2),
    "port-unreachable": (3, 3),
    "fragmentation-needed": (3, 4),
    "ttl-exceeded": (11, 0),
    "ttl-zero-during-transit": (11, 0),
}
ICMPV6_TYPES = {
    "destination-unreachable": 1,
    "packet-too-big": 2,
    "time-exceeded": 3,
    "parameter-problem": 4,
    "echo-request": 128,
    "echo-reply": 129,
    "nd-router-solicit": 133,
    "router-solicitation": 133,
    "nd-router-advert": 134,
    "router-advertisement": 134,
    "nd-neighbor-solicit": 135,
    "neighbour-solicitation": 135,
    "neighbor-solicitation": 135,
    "nd-neighbor-advert": 136,
    "neighbour-advertisement": 136,
    "neighbor-advertisement": 136,
}


def icmp_value(value: str, facts: PacketFacts) -> bool | None:
    """One ``--icmp-type`` value: ``any``, ``8``, ``3/3``, a name (a type, or a type and code)."""
    if value == "any":
        return True
    names = ICMPV6_TYPES if facts.family == "ip6" else ICMP_TYPES
    code: int | None = None
    if value in names:
        kind = names[value]
    elif value in ICMP_CODES and facts.family == "ip":
        kind, code = ICMP_CODES[value]
    else:
        number, _slash, written_code = value.partition("/")
        if not number.isdigit() or not (written_code.isdigit() or not written_code):
            return None
        kind, code = int(number), (int(written_code) if written_code else None)
    if facts.icmp_type is None or (code is not None and facts.icmp_code is None):
        return None
    return facts.icmp_type == kind and (code is None or facts.icmp_code == code)


def icmp_type_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    if facts.proto is not None and protocol_name(facts.proto) not in ("icmp", "icmpv6"):
        return False
    return any_of([icmp_value(value, facts) for value in values])


def icmp_code_matches(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    if facts.proto is not None and protocol_name(facts.proto) not in ("icmp", "icmpv6"):
        return False
    if facts.icmp_code is None or not all(value.isdigit() for value in values):
        return None
    return facts.icmp_code in {int(value) for value in values}


TCP_FLAG_NAMES = {"ECN": "ECE"}  # nft calls ECE "ecn"


def flag_set(written: str) -> frozenset[str] | None:
    """``SYN,ACK`` / ``fin,syn`` / ``ALL`` / ``NONE`` as a set of flag names."""
    if written.upper() == "ALL":
        return frozenset({"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"})
    if written.upper() == "NONE":
        return frozenset()
    names = {TCP_FLAG_NAMES.get(flag.upper(), flag.upper()) for flag in written.split(",")}
    known = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
    return frozenset(names) if names <= known else None


def tcp_flags_match(values: tuple[str, ...], facts: PacketFacts) -> bool | None:
    """``--tcp-flags MASK COMP``: of the flags in MASK, exactly those in COMP are set."""
    if facts.proto is not None and protocol_name(facts.proto) != "tcp":
        return False
    if len(values) != 2 or facts.tcp_flags is None:
        return None
    mask, comp = flag_set(values[0]), flag_set(values[1])
    if mask is None or comp is None:
        return None
    return facts.tcp_flags & mask == comp


def always(_values: tuple[str, ...], _facts: PacketFacts) -> bool | None:
    """comment (no condition); limit (evaluated as matching: the evaluator says so)."""
    return True


TESTS: dict[str, Callable[[tuple[str, ...], PacketFacts], bool | None]] = {
    "src": src_matches,
    "dst": dst_matches,
    "proto": proto_matches,
    "family": family_matches,
    "sport": sport_matches,
    "dport": dport_matches,
    "port": either_port_matches,
    "in": iface_test("in_iface"),
    "out": iface_test("out_iface"),
    "physin": iface_test("physin"),
    "physout": iface_test("physout"),
    "physdev_bridged": bridged,
    "physdev_in": has_physin,
    "physdev_out": has_physout,
    "ctstate": ctstate_matches,
    "src_type": type_test("src"),
    "dst_type": type_test("dst"),
    "icmp_type": icmp_type_matches,
    "icmp_code": icmp_code_matches,
    "tcp_flags": tcp_flags_match,
    "comment": always,
    "limit": always,
}
