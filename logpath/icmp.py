"""ICMP and ICMPv6 types and codes by name: the one table the timeline, the diagram, the
report, the journey's JSON and the analysis read (RFC 792, RFC 1812, RFC 4443).

The LOG line prints numbers (``TYPE=3 CODE=3``); people say "port unreachable".
"""

from __future__ import annotations

# Type names, by (protocol, type).
# The echo messages keep the names iptables and nft use (``--icmp-type echo-request``).
TYPES: dict[tuple[str, int], str] = {
    ("icmp", 0): "echo-reply",
    ("icmp", 3): "destination unreachable",
    ("icmp", 4): "source quench",
    ("icmp", 5): "redirect",
    ("icmp", 8): "echo-request",
    ("icmp", 11): "time exceeded",
    ("icmp", 12): "parameter problem",
    ("icmp", 13): "timestamp request",
    ("icmp", 14): "timestamp reply",
    ("icmpv6", 1): "destination unreachable",
    ("icmpv6", 2): "packet too big",
    ("icmpv6", 3): "time exceeded",
    ("icmpv6", 4): "parameter problem",
    ("icmpv6", 128): "echo-request",
    ("icmpv6", 129): "echo-reply",
    ("icmpv6", 133): "router solicitation",
    ("icmpv6", 134): "router advertisement",
    ("icmpv6", 135): "neighbour solicitation",
    ("icmpv6", 136): "neighbour advertisement",
    ("icmpv6", 137): "redirect",
}

# Code names, by (protocol, type, code): where a code says more than its type.
CODES: dict[tuple[str, int, int], str] = {
    ("icmp", 3, 0): "network unreachable",
    ("icmp", 3, 1): "host unreachable",
    ("icmp", 3, 2): "protocol unreachable",
    ("icmp", 3, 3): "port unreachable",
    ("icmp", 3, 4): "fragmentation needed",
    ("icmp", 3, 5): "source route failed",
    ("icmp", 3, 6): "network unknown",
    ("icmp", 3, 7): "host unknown",
    ("icmp", 3, 9): "network prohibited",
    ("icmp", 3, 10): "host prohibited",
    ("icmp", 3, 11): "network unreachable for TOS",
    ("icmp", 3, 12): "host unreachable for TOS",
    ("icmp", 3, 13): "administratively prohibited",
    ("icmp", 5, 0): "redirect for network",
    ("icmp", 5, 1): "redirect for host",
    ("icmp", 11, 0): "TTL exceeded",
    ("icmp", 11, 1): "fragment reassembly time exceeded",
    ("icmpv6", 1, 0): "no route",
    ("icmpv6", 1, 1): "administratively prohibited",
    ("icmpv6", 1, 2): "beyond scope of source address",
    ("icmpv6", 1, 3): "address unreachable",
    ("icmpv6", 1, 4): "port unreachable",
    ("icmpv6", 1, 5): "source address failed policy",
    ("icmpv6", 1, 6): "reject route",
    ("icmpv6", 3, 0): "hop limit exceeded",
    ("icmpv6", 3, 1): "fragment reassembly time exceeded",
}


def icmp_name(proto: object, kind: object, code: object = None) -> str | None:
    """The name of an ICMP(v6) message: its code's name where the code says more than the
    type, else its type's; None for a protocol or type not in the tables.

    Example:
        >>> icmp_name("icmp", 3, 3), icmp_name("icmpv6", 128, 0), icmp_name("icmp", 3, 99)
        ('port unreachable', 'echo-request', 'destination unreachable (code 99)')
    """
    if not isinstance(kind, int) or proto not in ("icmp", "icmpv6"):
        return None
    if isinstance(code, int) and (str(proto), kind, code) in CODES:
        return CODES[(str(proto), kind, code)]
    name = TYPES.get((str(proto), kind))
    if name is None:
        return None
    # a code this table does not name is shown as its number, not dropped
    if isinstance(code, int) and code != 0 and any(k[:2] == (proto, kind) for k in CODES):
        return f"{name} (code {code})"
    return name


def icmp_label(proto: object, kind: object, code: object = None) -> str:
    """The name, or the numbers when it has none: ``port unreachable``, ``icmp type 42``."""
    name = icmp_name(proto, kind, code)
    if name is not None:
        return name
    if kind is None:  # a header cut short before its type (INCOMPLETE)
        return f"{proto} (type not logged)"
    return f"{proto} type {kind}" + (f" code {code}" if code is not None else "")
