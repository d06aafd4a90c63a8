"""The kernel's netfilter facts every stage relies on: hooks, their order, tables, priorities,
and what a LOG line can hold (the widest value of each field, an address as the kernel prints it).

These are facts of the kernel, not of any log format (the line grammar is
``logpath.grammars.netfilter``). Each is written once, here: the packet stage orders hops by
them, the ruleset reader attaches built-in chains to hooks by them, the hook resolver guesses
from IN=/OUT= by them, and ``instrument`` writes LOG rules for them.

Sources: net/netfilter/core.c and include/uapi/linux/netfilter_ipv4.h (hooks and priorities),
iptables-extensions(8) and ebtables(8) (built-in chains), nf_log_syslog.c (which of IN=/OUT= a
hook prints: §7 of the formats reference).
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

# Facts, not tables: pandas only for the one function that guesses hooks for a column of hops
# (a ruleset read to judge a filter or a protocol's name should not import it).
if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# The IP hooks in the order a routed packet meets them.
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
# netdev hooks (nft only) come before and after all of them; BROUTING is ebtables' broute table.
NETDEV_HOOKS = ("INGRESS", "EGRESS")
HOOK_NAMES = (*HOOKS, *NETDEV_HOOKS)
TRAVERSAL = ("INGRESS", *HOOKS, "EGRESS", "BROUTING")

# Hook stages in traversal order; a packet's hops never go back to an earlier stage on the same
# host (PREROUTING -> INPUT|FORWARD -> POSTROUTING, OUTPUT -> POSTROUTING).
HOOK_STAGE = {"PREROUTING": 0, "OUTPUT": 0, "INPUT": 1, "FORWARD": 1, "POSTROUTING": 2}

# Table priorities within a hook (include/uapi/linux/netfilter_ipv4.h): raw before mangle before
# nat (DNAT, -100) before filter (0) before security (50); SNAT/nat INPUT run at +100.
TABLE_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 50}
NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
# Connection tracking runs at -200 (NF_IP_PRI_CONNTRACK): a chain of a lower priority (raw) sees
# no conntrack entry yet, so its state conditions see INVALID (xt_conntrack, nft_ct).
CONNTRACK_PRIORITY = -200
# nft's priority names for the ip, ip6 and inet families (nft(8), "CHAINS": standard priority
# names), and the expressions nft prints ("srcnat + 10", "-300").
NFT_PRIORITY_NAMES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}

# Built-in chains per iptables table (iptables-extensions(8), ebtables(8)); a chain with one of
# these names in its table is attached to the hook of the same name.
BUILTIN_CHAINS = {
    "raw": frozenset({"PREROUTING", "OUTPUT"}),
    "mangle": frozenset(HOOKS),
    "nat": frozenset({"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}),
    "filter": frozenset({"INPUT", "FORWARD", "OUTPUT"}),
    "security": frozenset({"INPUT", "FORWARD", "OUTPUT"}),
    "broute": frozenset({"BROUTING"}),
}

# The other hook an IN/OUT pattern allows: IN only is PREROUTING or INPUT, OUT only is OUTPUT or
# POSTROUTING, both is FORWARD or POSTROUTING (guess_hook picks the first; the packet stage may
# move a guess to the second by the packet's hop order).
LATER_HOOK = {"PREROUTING": "INPUT", "OUTPUT": "POSTROUTING", "FORWARD": "POSTROUTING"}


# Protocols by their /etc/protocols numbers, under the names iptables and nft give them; and the
# other spellings of those names they accept.
PROTOCOL_NUMBERS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "dccp": 33, "ipv6": 41,
                    "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "ospf": 89, "pim": 103,
                    "vrrp": 112, "sctp": 132, "udplite": 136}  # fmt: skip
PROTOCOL_SPELLINGS = {"ipv6-icmp": "icmpv6", "icmp6": "icmpv6"}
_PROTOCOL_BY_NUMBER = {str(number): name for name, number in PROTOCOL_NUMBERS.items()}
# The protocols LOG names in PROTO= (lowered, as the hop table keeps them); of the others it
# prints the number (nf_log_syslog.c).
LOGGED_BY_NAME = ("tcp", "udp", "udplite", "icmp", "icmpv6", "ah", "esp", "sctp")


def protocol_name(text: str) -> str:
    """The one name of a protocol: ``6``, ``TCP`` and ``tcp`` are ``tcp``; a number without a
    name here stays that number."""
    lowered = text.strip().lower()
    lowered = PROTOCOL_SPELLINGS.get(lowered, lowered)
    return _PROTOCOL_BY_NUMBER.get(lowered, lowered)


def logged_protocol_value(text: str) -> str | None:
    """A protocol as a hop's ``proto`` holds it (its name where LOG names it, else its
    number), or None for no protocol known by that name or number."""
    name = protocol_name(text)
    if name in LOGGED_BY_NAME:
        return name
    if name in PROTOCOL_NUMBERS:
        return str(PROTOCOL_NUMBERS[name])
    return name if name.isdigit() and int(name) <= 255 else None


def nft_priority(written: str | None) -> int | None:
    """The number of an nft base chain priority as written: ``filter``, ``srcnat + 10``, ``-300``.

    >>> nft_priority("srcnat + 10"), nft_priority("-300"), nft_priority("raw")
    (110, -300, -300)
    """
    if written is None:
        return None
    words = written.replace("+", " + ").replace(" -", " - ").split()
    total, sign = 0, 1
    for word in words:
        if word in ("+", "-"):
            sign = 1 if word == "+" else -1
        elif word in NFT_PRIORITY_NAMES:
            total, sign = total + sign * NFT_PRIORITY_NAMES[word], 1
        elif word.lstrip("-").isdigit():
            total, sign = total + sign * int(word), 1
        else:
            return None
    return total


def table_priority(table: str, hook: str) -> int | None:
    """The priority of an iptables table at a hook (nat: -100 for DNAT, +100 for SNAT)."""
    if table == "nat":
        return NAT_PRIORITY.get(hook)
    return TABLE_PRIORITY.get(table)


def traversal_rank(hook: str) -> int:
    """Sort key: the order a packet meets the hooks (netdev hooks around them; unknown last)."""
    return TRAVERSAL.index(hook) if hook in TRAVERSAL else len(TRAVERSAL)


def hook_admits(hook: str | None, in_iface: str | None, out_iface: str | None) -> bool:
    """Whether IN=/OUT= fit the hook (§7 of the formats reference: which hooks set which).

    PREROUTING and INPUT have no OUT, FORWARD has both, OUTPUT has no IN, POSTROUTING has an OUT.
    """
    has_in, has_out = bool(in_iface), bool(out_iface)
    rules = {
        "PREROUTING": has_in and not has_out,
        "INPUT": has_in and not has_out,
        "FORWARD": has_in and has_out,
        "OUTPUT": not has_in,
        "POSTROUTING": has_out,
        "INGRESS": has_in,
        "EGRESS": has_out,
    }
    return rules.get(hook or "", True)


def guess_hook(in_iface: str | None, out_iface: str | None, kind: str | None = None) -> str | None:
    """The hook IN=/OUT= suggest: IN only -> PREROUTING (or INPUT), OUT only -> OUTPUT (or
    POSTROUTING), both -> FORWARD (or POSTROUTING); neither -> None.

    ARP has no routing hooks (nft's arp family has only input and output), so an ARP line with
    IN only is guessed INPUT.
    """
    has_in, has_out = bool(in_iface), bool(out_iface)
    if has_in and has_out:
        return "FORWARD"
    if has_in:
        return "INPUT" if kind == "arp" else "PREROUTING"
    return "OUTPUT" if has_out else None


def guess_hooks(in_iface: pd.Series, out_iface: pd.Series) -> pd.Series:
    """``guess_hook`` over whole columns, for IP hops (neither IN nor OUT: OUTPUT)."""
    import numpy as np
    import pandas as pd

    has_in = in_iface.notna().to_numpy()
    has_out = out_iface.notna().to_numpy()
    # each row one of three shared strings: np.where on texts made a Python string per row
    # when the result became objects (~0.1 CPU-s a million hops)
    code = np.where(has_in & has_out, 0, np.where(has_in, 1, 2))
    guess = np.array(["FORWARD", "PREROUTING", "OUTPUT"], dtype=object)[code]
    return pd.Series(guess, index=in_iface.index, dtype="object")


def filter_hook(in_iface: str | None, out_iface: str | None) -> str | None:
    """For chains reached from filter INPUT/FORWARD/OUTPUT: the hook IN=/OUT= point to."""
    has_in, has_out = bool(in_iface), bool(out_iface)
    if has_in and has_out:
        return "FORWARD"
    if has_in:
        return "INPUT"
    return "OUTPUT" if has_out else None


# --- what the kernel can print -----------------------------------------------------------------
# The grammar gives a decimal field's shape (digits); its width is here: the largest value the
# kernel can print in it (nf_log_syslog.c, ebt_log.c, §2-4 of the format reference), and what a
# line with a larger one is rejected as expecting. Such a line is no kernel line, and its value
# would overflow the column or be stored as a fact. A packet quoted in an ICMP error (inner_*)
# has the same limits.
_U8, _U16, _U32 = 2**8 - 1, 2**16 - 1, 2**32 - 1
DECIMAL_LIMITS: dict[str, tuple[int, str]] = {
    "len": (_U16, "an IPv4 length 0-65535"),
    "ttl": (_U8, "a TTL 0-255"),
    "id": (_U16, "an IP ID 0-65535"),
    "frag": (2**13 - 1, "a fragment offset 0-8191"),  # 13 bits, in 8-byte units
    "tc": (_U8, "a traffic class 0-255"),
    "flowlbl": (2**20 - 1, "a flow label 0-1048575"),
    "proto": (_U8, "a protocol number 0-255"),
    "sport": (_U16, "a port 0-65535"),
    "dport": (_U16, "a port 0-65535"),
    "seq": (_U32, "a sequence number 0-4294967295"),
    "ack": (_U32, "an acknowledgement number 0-4294967295"),
    "window": (_U16, "a window 0-65535"),
    "urgp": (_U16, "an urgent pointer 0-65535"),
    "udplen": (_U16, "a UDP length 0-65535"),
    "icmp_type": (_U8, "an ICMP type 0-255"),
    "icmp_code": (_U8, "an ICMP code 0-255"),
    "icmp_id": (_U16, "an ICMP echo id 0-65535"),
    "icmp_seq": (_U16, "an ICMP echo sequence 0-65535"),
    "mtu": (_U16, "an MTU 0-65535"),
    "parameter": (_U8, "a parameter problem pointer 0-255"),
    "incomplete": (_U16, "a byte count 0-65535"),
    "uid": (_U32, "a user id 0-4294967295"),
    "gid": (_U32, "a group id 0-4294967295"),
    "trace_rulenum": (_U32, "a rule number 0-4294967295"),
    "vid": (2**12 - 1, "a VLAN id 0-4095"),
    "arp_htype": (_U16, "an ARP hardware type 0-65535"),
    "arp_opcode": (_U16, "an ARP opcode 0-65535"),
    "repeated": (2**31 - 1, "a repeat count 0-2147483647"),  # rsyslog's counter is an int
    # The printk time and a /dev/kmsg record's microseconds (u64 nanoseconds in the kernel):
    # bounded by the 292 years pandas can hold as a duration.
    "uptime": (9_223_372_036, "seconds since boot 0-9223372036"),
    "usec": (9_223_372_036_854_775, "microseconds since boot 0-9223372036854775"),
}
# The decimal fields a line's parse reads as numbers (int64), not kept as their digits: every
# one of DECIMAL_LIMITS but the protocol (a name, or the number of an unnamed one) and the
# printk time (seconds with a fraction). The C scanner (logpath._scanner) reads them from the
# line as ``integers`` does: a value of more than INTEGER_DIGITS digits is TOO_LONG, above every
# limit and still an int64, so that its line is rejected for it, never stored wrapped around.
INTEGER_DIGITS = 18
TOO_LONG = 10**INTEGER_DIGITS - 1


def is_integer_field(name: str) -> bool:
    """Whether the parse gives field ``name`` (an ``inner_`` one too) as an int64 number."""
    base = name.removeprefix("inner_")
    return base in DECIMAL_LIMITS and base not in ("proto", "uptime")


def integers(digits: pa.Array) -> pa.Array:
    """Decimal digits (a string array, missing where absent) as int64 numbers, TOO_LONG where
    there are more than INTEGER_DIGITS of them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    length = pc.binary_length(digits)
    if (pc.max(length).as_py() or 0) > INTEGER_DIGITS:
        digits = pc.if_else(pc.greater(length, INTEGER_DIGITS), str(TOO_LONG), digits)
    return pc.cast(digits, pa.int64())


# IPv6 prints these wider or names them otherwise: LEN is the payload length + 40, the
# packet-too-big MTU has 32 bits, the TTL is the hop limit.
IPV6_LIMITS: dict[str, tuple[int, str]] = {
    "len": (_U16 + 40, "an IPv6 length 0-65575"),
    "ttl": (_U8, "a hop limit 0-255"),
    "mtu": (_U32, "an MTU 0-4294967295"),
}
IPV6_FRAG_LIMIT = (0xFFF8, "an IPv6 fragment offset 0-65528")  # in bytes: 13 bits << 3
# Interface names have at most 15 bytes (IFNAMSIZ); TRACE's table and chain names at most 31.
NAME_LIMITS = {
    "in_iface": 15,
    "out_iface": 15,
    "physin": 15,
    "physout": 15,
    "trace_table": 31,
    "trace_chain": 31,
}
# An IPv4 address as %pI4 prints it: four decimal bytes, no leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IPV4_ADDRESS = re.compile(IPV4)


def normal_address(text: str) -> str | None:
    """An address as stored, None for no address: IPv4 as %pI4 prints it; IPv6 compressed, the
    form everything else uses (the kernel prints 8 zero-padded groups, %pI6)."""
    if ":" not in text:
        return text if _IPV4_ADDRESS.fullmatch(text) else None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None
