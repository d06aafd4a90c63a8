"""One condition against one packet (``conditions.py``): yes, no, or cannot tell (None)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from logpath.grammars.ruleset_records import Match

from logpath.conditions import PacketFacts, holds
from logpath.netfilter import LOGGED_BY_NAME, PROTOCOL_NUMBERS, protocol_name
from logpath.store import logged_protocol

SYN = PacketFacts(
    "ip", "tcp", "172.30.0.2", "10.77.0.2", 40000, 9005,
    in_iface="lpbr0", out_iface="up0", physin="vethc1",
    tcp_flags=frozenset({"SYN"}), ctstate="NEW",
    local_addrs=frozenset({"10.77.0.1/24", "172.30.0.1/24"}),
)  # fmt: skip
ECHO = PacketFacts(
    "ip", "icmp", "172.30.0.2", "10.77.0.255", icmp_type=8, icmp_code=0, local_addrs=SYN.local_addrs
)
SIX = PacketFacts(
    "ip6", "tcp", "fd00:0030:0000:0000:0000:0000:0000:0002", "fd00:30::3", 40000, 9011
)


@pytest.mark.parametrize(
    ("match", "facts", "expected"),
    [
        # addresses: CIDR, a list, a range, a mask, the other family, a named set, a host name
        (Match("src", False, ("172.30.0.0/24",)), SYN, True),
        (Match("src", True, ("172.30.0.0/24",)), SYN, False),
        (Match("dst", False, ("10.0.0.1", "10.77.0.2")), SYN, True),
        (Match("dst", False, ("10.77.0.1-10.77.0.9",)), SYN, True),
        (Match("dst", False, ("10.77.0.0/255.255.255.0",)), SYN, True),
        (Match("src", False, ("fd00:30::/64",)), SIX, True),
        (Match("src", False, ("172.30.0.0/24",)), SIX, False),
        (Match("src", False, ("@blocked",)), SYN, None),
        (Match("src", False, ("gateway.example",)), SYN, None),
        (Match("src", False, ("10.0.0.0/8",)), replace(SYN, src=None), None),
        # protocol and family
        (Match("proto", False, ("6",)), SYN, True),
        (Match("proto", False, ("udp", "icmp")), SYN, False),
        (Match("proto", False, ("all",)), replace(SYN, proto=None), True),
        (Match("proto", False, ("ipv6-icmp",)), replace(SIX, proto="icmpv6"), True),
        # a protocol LOG prints as a number (PROTO=4), named in the rule, and the other way
        (Match("proto", False, ("ipip",)), replace(SYN, proto="4"), True),
        (Match("proto", False, ("47",)), replace(SYN, proto="gre"), True),
        (Match("proto", False, ("gre",)), replace(SYN, proto="4"), False),
        (Match("family", False, ("ip6",)), SYN, False),
        # ports: ranges in both spellings, multiport --ports, no ports in ICMP, a service name
        (Match("dport", False, ("9000:9099",)), SYN, True),
        (Match("dport", False, ("9000-9099",)), SYN, True),
        (Match("dport", False, ("9100:",)), SYN, False),
        (Match("port", False, ("9005",)), replace(SYN, sport=9005, dport=40000), True),
        (Match("dport", True, ("80",)), ECHO, True),
        (Match("dport", False, ("http",)), SYN, None),
        (Match("dport", False, ("80",)), replace(SYN, dport=None), None),
        # interfaces: "+" and "*" wildcards; an absent interface matches no name
        (Match("in", False, ("lpbr+",)), SYN, True),
        (Match("out", False, ("up*",)), SYN, True),
        (Match("out", True, ("lpbr0",)), SYN, True),
        (Match("out", False, ("up0",)), replace(SYN, out_iface=None), False),
        (Match("physin", False, ("vethc1",)), SYN, True),
        (Match("physout", True, ("vethc2",)), SYN, True),  # not bridged out: "!" holds (xt_physdev)
        (Match("physdev_bridged", False, ()), SYN, False),
        (Match("physdev_bridged", False, ()), replace(SYN, physout="vethc2"), True),
        # conntrack
        (Match("ctstate", False, ("RELATED", "ESTABLISHED")), SYN, False),
        (Match("ctstate", False, ("new",)), SYN, True),
        (Match("ctstate", False, ("NEW",)), replace(SYN, ctstate=None), None),
        (Match("ctstate", False, ("DNAT",)), SYN, None),
        # address types from the host's addresses (with prefix lengths: broadcasts too)
        (Match("dst_type", False, ("LOCAL",)), replace(SYN, dst="10.77.0.1"), True),
        (Match("dst_type", False, ("local",)), SYN, False),
        (Match("dst_type", False, ("BROADCAST",)), ECHO, True),
        (Match("dst_type", False, ("UNICAST",)), SYN, True),
        (
            Match("dst_type", False, ("UNICAST",)),
            replace(SYN, local_addrs=frozenset({"10.77.0.1"})),
            None,
        ),
        (Match("dst_type", False, ("LOCAL",)), replace(SYN, local_addrs=None), None),
        (Match("dst_type", False, ("ANYCAST",)), SYN, None),
        # ICMP types by number, number/code and name; ICMP conditions on TCP do not match
        (Match("icmp_type", False, ("8",)), ECHO, True),
        (Match("icmp_type", False, ("echo-request",)), ECHO, True),
        (Match("icmp_type", False, ("8/1",)), ECHO, False),
        (
            Match("icmp_type", False, ("port-unreachable",)),
            replace(ECHO, icmp_type=3, icmp_code=3),
            True,
        ),
        (Match("icmp_type", False, ("any",)), ECHO, True),
        (Match("icmp_type", False, ("echo-request",)), SYN, False),
        (
            Match("icmp_type", False, ("echo-request",)),
            replace(SIX, proto="icmpv6", icmp_type=128),
            True,
        ),
        # TCP flags: mask then flags set, iptables or nft spelling
        (Match("tcp_flags", False, ("SYN,RST,ACK,FIN", "SYN")), SYN, True),
        (Match("tcp_flags", True, ("SYN,RST,ACK,FIN", "SYN")), SYN, False),
        (
            Match("tcp_flags", False, ("fin,syn,rst,ack", "syn")),
            replace(SYN, tcp_flags=frozenset({"SYN", "ACK"})),
            False,
        ),
        (Match("tcp_flags", False, ("ALL", "NONE")), replace(SYN, tcp_flags=frozenset()), True),
        (Match("tcp_flags", False, ("SYN", "SYN")), replace(SYN, tcp_flags=None), None),
        (Match("tcp_flags", False, ("SYN", "SYN")), ECHO, False),
        # no condition, evaluated as matching, and what logpath does not evaluate
        (Match("comment", False, ("allow web",)), SYN, True),
        (Match("limit", False, ("5/min",)), SYN, True),
        (Match("unsupported", False, ("-m mark --mark 0x1",)), SYN, None),
        (Match("unsupported", True, ("-m mark --mark 0x1",)), SYN, None),
    ],
)
def test_holds(match: Match, facts: PacketFacts, expected: bool | None) -> None:
    assert holds(match, facts) is expected


def test_a_protocol_named_or_numbered_is_one_protocol_for_rules_and_for_proto() -> None:
    """A rule's ``-p`` and ``--proto`` read a protocol through the same table: every name and
    its number select the same hops, as LOG prints that protocol."""
    for name, number in PROTOCOL_NUMBERS.items():
        assert protocol_name(str(number)) == protocol_name(name.upper()) == name
        logged = logged_protocol(name)
        assert logged == logged_protocol(str(number))
        assert logged == (name if name in LOGGED_BY_NAME else str(number))
    assert logged_protocol("ICMP6") == logged_protocol("ipv6-icmp") == "icmpv6"
    assert logged_protocol("253") == "253"
