"""Hypothesis strategies that write netfilter log lines the way the kernel and the loggers do.

Built from the format reference (../shared/formats/NETFILTER_LOG_FORMATS.md): §2 IPv4, §3 IPv6,
§4.1 ARP, §5.1 legacy TRACE, §6.1 conntrack "invalid" prefixes and §8 transport headers.
Every strategy draws ``(text, expected)``: the text and a dict of the field values it used,
keyed by hop-table column names (`src`, `dport`, `in_iface`, `inner_src`, `trace_chain`, ...).
A key missing from ``expected`` means the field is absent from the line (null in the table).

Value conventions in ``expected`` (the hop table's, see briefs/common.md):
  * IPv6 addresses compressed (`fd00:a::10`), as the table stores them; the text has the
    kernel's eight zero-padded groups.
  * hex fields printed by the kernel (`TOS`, `PREC`, `RES`, `MARK`, `SPI`, ARP `PTYPE`) as ints;
    `macproto` as printed (`"0800"`); `mac` the raw `MAC=` value; `ipopt`/`tcpopt` the hex text
    inside `OPT (...)`.
  * `frag` in bytes (the IPv4 text prints 8-byte units); `ttl` is TTL or HOPLIMIT; `flags` the
    TCP flag words in kernel order joined by one space; `proto` lower-case or the number as str.
  * `incomplete` the byte count of `INCOMPLETE [N bytes]`.
  * headers: `ts` a datetime (timezone-aware when the text carries a zone or is epoch-based,
    naive when it does not; for yearless formats the year is the one drawn, not in the text:
    `year_in_text` says so), `uptime` float seconds, `host`, `level` (syslog priority & 7).

Example (the property test "fast path == grammar"):

    @given(netfilter_line())
    def test_fast_path_equals_grammar(case):
        text, expected = case
        assert fast_parse(text) == grammar_parse(text)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Any

from hypothesis import strategies as st

Case = tuple[str, dict[str, Any]]

# §9: the body anchor. A generated prefix never produces an earlier match than the real one.
ANCHOR = re.compile(r"IN=(\S*) OUT=(\S*) (?=PHYSIN=|PHYSOUT=|MAC=|MACSRC=|SRC=|ARP |TRUNCATED|$)")
# A prefix must not look like the start of a transport header, or `bare` lines turn ambiguous
# (the kernel's own text would be ambiguous too: "[  12.345678] x" as a prefix is an uptime).
HEADER_LIKE = re.compile(r"^(\s|\[\s*[\d+<]|<\d|\d|kern\s*:|TRACE: |[A-Z][a-z]{2} )")
PREFIX_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="\\")
REAL_PREFIXES = (
    "[TonyBai]-RawPrerouting:",
    "[TonyBai]-FwdId0Ond0:",
    "[UFW BLOCK] ",
    "fmtR nat-PRE: ",
    "fmtN-nospace",
    "fmt29 ends-without-sep=12345X",
    "PPPPPPPPPPPPPPPPPPPPPPPPPPPPP",
    "fmtN has=eq IN=fake OUT=x: ",
    "nf_ct_proto_6: invalid new ",
    "nf_ct_proto_17: ",
    "DROP IN=eth0: ",
)
IFACES = ("eth0", "docker0", "br0", "lo", "tun0", "wg0", "ens3", "vethd9f6465", "br-1a2b3c4d5e6f")
TCP_FLAGS = ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")  # kernel order
NAMED_V4 = {1: "ICMP", 6: "TCP", 17: "UDP", 50: "ESP", 51: "AH", 136: "UDPLITE"}
NAMED_V6 = {6: "TCP", 17: "UDP", 58: "ICMPv6", 136: "UDPLITE"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# ---- small values ------------------------------------------------------------------------------
def ipv4() -> st.SearchStrategy[str]:
    """A dotted-quad IPv4 address."""
    return st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q)))


def ipv6_full() -> st.SearchStrategy[tuple[str, str]]:
    """(text as %pI6 prints it: eight zero-padded groups, its compressed form)."""
    groups = st.lists(st.integers(0, 0xFFFF) | st.just(0), min_size=8, max_size=8)
    return groups.map(
        lambda g: (
            ":".join(f"{x:04x}" for x in g),
            ipaddress.IPv6Address(":".join(f"{x:x}" for x in g)).compressed,
        )
    )


def mac_address() -> st.SearchStrategy[str]:
    """A lowercase colon-separated 6-octet MAC."""
    return st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))


def iface() -> st.SearchStrategy[str]:
    """An interface name: at most 15 characters, no space, `/` or `:`."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789._-"
    return st.sampled_from(IFACES) | st.text(alphabet, min_size=1, max_size=15)


def port() -> st.SearchStrategy[int]:
    """A TCP/UDP port."""
    return st.integers(0, 65535)


def hexbytes(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Uppercase hex of some bytes, as `OPT (...)` prints option bytes."""
    return st.binary(min_size=min_size, max_size=max_size).map(lambda b: b.hex().upper())


# ---- prefix and the link layer -----------------------------------------------------------------
@st.composite
def prefix(draw: st.DrawFn) -> str:
    """A LOG prefix: empty, a real one, or free text (spaces, `=`, brackets, even `IN=`)."""
    kind = draw(st.sampled_from(("empty", "real", "text", "glued-in")))
    if kind == "empty":
        return ""
    if kind == "real":
        return draw(st.sampled_from(REAL_PREFIXES))
    text = draw(st.text(PREFIX_CHARS, min_size=1, max_size=127 if kind == "text" else 20))
    if kind == "glued-in":
        text = text + draw(st.sampled_from(("IN=fake OUT=x: ", "IN=", " IN= ", "OUT=", "=")))
    return text[:127]


def valid_prefix(text: str, body: str) -> bool:
    """True when `text + body` anchors at the end of the prefix and nothing earlier."""
    found = ANCHOR.search(text + body)
    return found is not None and found.start() == len(text) and not HEADER_LIKE.match(text + body)


@st.composite
def interfaces(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """`IN= OUT= [PHYSIN= PHYSOUT=]` as one hook would show them (empty IN or OUT allowed)."""
    has_in = draw(st.booleans())
    in_iface = draw(iface()) if has_in else ""
    out_iface = draw(iface() | st.just("")) if has_in else draw(iface())
    text = f"IN={in_iface} OUT={out_iface} "
    expected = {"in_iface": in_iface or None, "out_iface": out_iface or None}
    if draw(st.booleans()):  # br_netfilter; the seed's nat POSTROUTING has `IN= ... PHYSIN=`
        physin = draw(iface() | st.none())
        physout = draw(iface() | st.none()) if out_iface else None
        if physin:
            text += f"PHYSIN={physin} "
            expected["physin"] = physin
        if physout:
            text += f"PHYSOUT={physout} "
            expected["physout"] = physout
    return text, expected


@st.composite
def link_layer(draw: st.DrawFn, ethertype: str) -> tuple[str, dict[str, Any]]:
    """`MAC=dst:src:type`, `MAC=` empty (tun), another length, or the MACSRC/MACDST form."""
    kind = draw(st.sampled_from(("mac14", "mac14", "empty", "other", "decoded")))
    if kind == "mac14":
        dst, src = draw(mac_address()), draw(mac_address())
        raw = f"{dst}:{src}:{ethertype[:2]}:{ethertype[2:]}"
        expected = {"mac": raw, "macdst": dst, "macsrc": src, "macproto": ethertype}
        return f"MAC={raw} ", expected
    if kind == "empty":
        return "MAC= ", {}
    if kind == "other":
        octets = draw(st.binary(min_size=1, max_size=20).filter(lambda b: len(b) != 14))
        raw = ":".join(f"{x:02x}" for x in octets)
        return f"MAC={raw} ", {"mac": raw}
    src, dst = draw(mac_address()), draw(mac_address())
    text = f"MACSRC={src} MACDST={dst} MACPROTO={ethertype} "
    return text, {"macsrc": src, "macdst": dst, "macproto": ethertype}


# ---- transport sections ------------------------------------------------------------------------
@st.composite
def tcp_section(draw: st.DrawFn, log_seq: bool | None = None) -> tuple[str, dict[str, Any]]:
    """`SPT= DPT= [SEQ= ACK=] WINDOW= RES= <flags> URGP= [OPT (..)]` (after `PROTO=TCP `)."""
    sport, dport = draw(port()), draw(port())
    flags = [flag for flag in TCP_FLAGS if draw(st.booleans())]
    # RES: multiples of 4 up to 0x3C (6.12: reserved bits + AE), multiples of 8 on mainline
    res, window, urgp = draw(st.integers(0, 15)) * 4, draw(port()), draw(port())
    expected: dict[str, Any] = {"sport": sport, "dport": dport, "window": window, "res": res}
    text = f"SPT={sport} DPT={dport} "
    if draw(st.booleans()) if log_seq is None else log_seq:
        seq, ack = draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))
        text += f"SEQ={seq} ACK={ack} "
        expected |= {"seq": seq, "ack": ack}
    text += f"WINDOW={window} RES=0x{res:02x} " + "".join(f"{flag} " for flag in flags)
    text += f"URGP={urgp} "
    expected["urgp"] = urgp
    if flags:
        expected["flags"] = " ".join(flags)
    if draw(st.booleans()):
        options = draw(hexbytes(1, 40))
        text += f"OPT ({options}) "
        expected["tcpopt"] = options
    return text, expected


@st.composite
def udp_section(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """`SPT= DPT= LEN=` (the UDP length: a second LEN= on the line)."""
    sport, dport, udplen = draw(port()), draw(port()), draw(st.integers(8, 65535))
    text = f"SPT={sport} DPT={dport} LEN={udplen} "
    return text, {"sport": sport, "dport": dport, "udplen": udplen}


def incomplete(size: int) -> tuple[str, dict[str, Any]]:
    """`INCOMPLETE [N bytes] `: the header was cut; nothing of L4 follows."""
    return f"INCOMPLETE [{size} bytes] ", {"incomplete": size}


# ---- IPv4 --------------------------------------------------------------------------------------
@st.composite
def ipv4_header(draw: st.DrawFn, quoted: bool = False) -> tuple[str, dict[str, Any], int]:
    """`SRC= DST= LEN= TOS= PREC= TTL= ID= [CE] [DF] [MF] [FRAG:n] [OPT (..)]`, and the offset."""
    src, dst = draw(ipv4()), draw(ipv4())
    length, tos_byte, ttl, ip_id = (
        draw(st.integers(20, 65535)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(port()),
    )
    tos, prec = tos_byte & 0x1E, tos_byte & 0xE0  # the two ECN bits are not printed
    text = f"SRC={src} DST={dst} LEN={length} TOS=0x{tos:02X} PREC=0x{prec:02X} TTL={ttl} "
    text += f"ID={ip_id} "
    expected: dict[str, Any] = {}
    if not quoted:
        expected = {"family": 4, "src": src, "dst": dst, "len": length, "tos": tos}
        expected |= {"prec": prec, "ttl": ttl, "id": ip_id}
    bits = {flag: draw(st.booleans()) for flag in ("ce", "df", "mf")}
    text += "".join(f"{flag.upper()} " for flag, on in bits.items() if on)
    offset = 0 if quoted else draw(st.sampled_from((0, 0, 0, draw(st.integers(1, 8191)))))
    if offset:
        text += f"FRAG:{offset} "
    if not quoted:
        expected |= {**bits, "frag": offset * 8} if offset else bits
        if draw(st.booleans()):
            options = draw(hexbytes(1, 40))
            text += f"OPT ({options}) "
            expected["ipopt"] = options
    return text, expected, offset


@st.composite
def quoted_ipv4(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """The `[SRC=... ] ` an ICMP error quotes: a full IPv4 dump, one level, no UID/MARK."""
    head, _, _ = draw(ipv4_header(quoted=True))
    src, dst, length, ttl, ip_id = re.match(
        r"SRC=(\S+) DST=(\S+) LEN=(\d+) TOS=\S+ PREC=\S+ TTL=(\d+) ID=(\d+)", head
    ).groups()
    expected: dict[str, Any] = {
        "inner_src": src,
        "inner_dst": dst,
        "inner_len": int(length),
        "inner_ttl": int(ttl),
        "inner_id": int(ip_id),
    }
    kind = draw(st.sampled_from(("tcp", "tcp-cut", "udp", "icmp")))
    if kind in ("tcp", "tcp-cut"):
        expected["inner_proto"] = "tcp"
        if kind == "tcp-cut":  # routers often quote only 8 bytes of TCP
            return f"[{head}PROTO=TCP INCOMPLETE [8 bytes] ] ", expected
        l4, fields = draw(tcp_section())
    elif kind == "udp":
        expected["inner_proto"] = "udp"
        l4, fields = draw(udp_section())
    else:
        expected["inner_proto"] = "icmp"
        ident, seq = draw(port()), draw(port())
        l4 = f"TYPE=8 CODE=0 ID={ident} SEQ={seq} "
        fields = {"icmp_type": 8, "icmp_id": ident, "icmp_seq": seq}
    for key in ("sport", "dport", "icmp_type", "icmp_id", "icmp_seq"):
        if key in fields:
            expected[f"inner_{key}"] = fields[key]
    return f"[{head}PROTO={expected['inner_proto'].upper()} {l4}] ", expected


@st.composite
def icmp_section(draw: st.DrawFn) -> tuple[str, dict[str, Any], bool]:
    """`TYPE= CODE=` and the per-type fields of §2.5; the flag says the line must stop."""
    if draw(st.integers(0, 9)) == 0:
        text, expected = incomplete(draw(st.integers(0, 7)))
        return text, expected, False  # UID/MARK may still follow an ICMP INCOMPLETE
    icmp_type = draw(st.sampled_from((0, 8, 3, 4, 11, 5, 12, 13, 14, 9, 10, 17, 18)))
    code = draw(st.integers(0, 15))
    text = f"TYPE={icmp_type} CODE={code} "
    expected: dict[str, Any] = {"icmp_type": icmp_type, "icmp_code": code}
    if icmp_type in (0, 8):
        ident, seq = draw(port()), draw(port())
        return (
            text + f"ID={ident} SEQ={seq} ",
            expected | {"icmp_id": ident, "icmp_seq": seq},
            False,
        )
    if icmp_type == 12:
        parameter = draw(st.integers(0, 255))
        return text + f"PARAMETER={parameter} ", expected | {"parameter": parameter}, False
    if icmp_type not in (3, 4, 5, 11):
        return text, expected, False
    if draw(st.integers(0, 9)) == 0:  # shorter than the type's minimum length
        cut, fields = incomplete(draw(st.integers(8, 35)))
        return text + cut, expected | fields, False
    if icmp_type == 5:
        gateway = draw(ipv4())
        text += f"GATEWAY={gateway} "
        expected["gateway"] = gateway
    quote, inner = draw(quoted_ipv4())
    text += quote
    expected |= inner
    if icmp_type == 3 and code == 4:
        mtu = draw(st.integers(68, 65535))
        text += f"MTU={mtu} "
        expected["mtu"] = mtu
    return text, expected, False


@st.composite
def ipv4_transport(draw: st.DrawFn, offset: int, trace: bool) -> tuple[str, dict[str, Any], bool]:
    """The L4 section after the IPv4 header; the flag says the line stops (INCOMPLETE)."""
    number = draw(st.sampled_from((6, 6, 17, 136, 1, 1, 50, 51)) | st.integers(0, 255))
    name = NAMED_V4.get(number)
    proto = name.lower() if name else str(number)
    if offset:  # a later fragment: no L4 at all; AH does not even print PROTO (§2.6)
        if name == "AH":
            return "", {}, False
        return f"PROTO={name or number} ", {"proto": proto}, False
    text, expected = f"PROTO={name or number} ", {"proto": proto}
    if name in ("TCP", "UDP", "UDPLITE") and draw(st.integers(0, 9)) == 0:
        cut, fields = incomplete(draw(st.integers(0, 19)))
        return text + cut, expected | fields, True
    if name == "TCP":
        l4, fields = draw(tcp_section(log_seq=True if trace else None))
    elif name in ("UDP", "UDPLITE"):
        l4, fields = draw(udp_section())
    elif name == "ICMP":
        l4, fields, _ = draw(icmp_section())
    elif name in ("AH", "ESP"):
        spi = draw(st.integers(0, 2**32 - 1))
        l4, fields = f"SPI=0x{spi:x} ", {"spi": spi}
    else:
        l4, fields = "", {}
    return text + l4, expected | fields, False


@st.composite
def owner_and_mark(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """`UID= GID=` (a full local socket) and `MARK=0x..` (skb->mark != 0), each optional."""
    text, expected = "", {}
    if draw(st.booleans()):
        uid, gid = draw(st.integers(0, 2**32 - 2)), draw(st.integers(0, 2**32 - 2))
        text += f"UID={uid} GID={gid} "
        expected |= {"uid": uid, "gid": gid}
    if draw(st.booleans()):
        mark = draw(st.integers(1, 2**32 - 1))
        text += f"MARK=0x{mark:x} "
        expected["mark"] = mark
    return text, expected


# ---- IPv6 --------------------------------------------------------------------------------------
@st.composite
def icmpv6_section(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """`TYPE= CODE=` with echo ID/SEQ, or an error quoting the offending IPv6 packet (§3)."""
    icmp_type = draw(st.sampled_from((128, 129, 133, 134, 135, 136, 143, 1, 2, 3, 4)))
    code = draw(st.integers(0, 6))
    text = f"TYPE={icmp_type} CODE={code} "
    expected: dict[str, Any] = {"icmp_type": icmp_type, "icmp_code": code}
    if icmp_type in (128, 129):
        ident, seq = draw(port()), draw(port())
        return text + f"ID={ident} SEQ={seq} ", expected | {"icmp_id": ident, "icmp_seq": seq}
    if icmp_type not in (1, 2, 3, 4):
        return text, expected
    if icmp_type == 4:  # parameter problem: the pointer as 8 hex digits, then the quote
        pointer = draw(st.integers(0, 2**32 - 1))
        text += f"POINTER={pointer:08x} "
        expected["parameter"] = pointer
    (src, src_c), (dst, dst_c) = draw(ipv6_full()), draw(ipv6_full())
    length, hoplimit = draw(st.integers(40, 65535)), draw(st.integers(0, 255))
    sport, dport, udplen = draw(port()), draw(port()), draw(st.integers(8, 65535))
    text += (
        f"[SRC={src} DST={dst} LEN={length} TC=0 HOPLIMIT={hoplimit} FLOWLBL=0 "
        f"PROTO=UDP SPT={sport} DPT={dport} LEN={udplen} ] "
    )
    expected |= {
        "inner_src": src_c,
        "inner_dst": dst_c,
        "inner_len": length,
        "inner_ttl": hoplimit,
        "inner_proto": "udp",
        "inner_sport": sport,
        "inner_dport": dport,
    }
    if icmp_type == 2:
        mtu = draw(st.integers(1280, 65535))
        text += f"MTU={mtu} "
        expected["mtu"] = mtu
    return text, expected


@st.composite
def ipv6_packet(draw: st.DrawFn, trace: bool) -> tuple[str, dict[str, Any], bool]:
    """`SRC= DST= LEN= TC= HOPLIMIT= FLOWLBL=`, extension headers and the L4 section."""
    (src, src_c), (dst, dst_c) = draw(ipv6_full()), draw(ipv6_full())
    length, tc, hoplimit = (
        draw(st.integers(40, 65575)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
    )
    flowlbl = draw(st.integers(0, 0xFFFFF))
    text = f"SRC={src} DST={dst} LEN={length} TC={tc} HOPLIMIT={hoplimit} FLOWLBL={flowlbl} "
    expected: dict[str, Any] = {
        "family": 6,
        "src": src_c,
        "dst": dst_c,
        "len": length,
        "tc": tc,
        "ttl": hoplimit,
        "flowlbl": flowlbl,
    }
    ext, ext_fields, walk = draw(ipv6_extension_headers())
    text += ext
    expected |= ext_fields
    if walk == "esp":  # the walk ends at ESP: no PROTO, nothing after
        return text, expected, True
    number = draw(st.sampled_from((6, 17, 58, 136)) | st.sampled_from((47, 132, 59, 200)))
    name = NAMED_V6.get(number)
    expected["proto"] = name.lower() if name else str(number)
    text += f"PROTO={name or number} "
    if walk == "later-fragment":  # a non-first fragment: the protocol and nothing of L4
        return text, expected, False
    if name in ("TCP", "UDP", "UDPLITE") and draw(st.integers(0, 9)) == 0:
        cut, fields = incomplete(draw(st.integers(0, 19)))
        return text + cut, expected | fields, True
    if name == "TCP":
        l4, fields = draw(tcp_section(log_seq=True if trace else None))
    elif name in ("UDP", "UDPLITE"):
        l4, fields = draw(udp_section())
    elif name == "ICMPv6":
        l4, fields = draw(icmpv6_section())
    else:
        l4, fields = "", {}
    return text + l4, expected | fields, False


@st.composite
def ipv6_extension_headers(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
    """The extension headers nf_log walks (§3) and how the walk ended.

    Without --log-ip-options only a fragment header is printed (`FRAG:<bytes> [INCOMPLETE
    ]ID:<8 hex> `); with it every header is wrapped in `OPT ( ... ) `, hop-by-hop, routing and
    destination options with no content. The walk ends "later-fragment" (offset != 0: no L4),
    "esp" (the line ends: `OPT ( ESP SPI=0x.. )` without trailing space, or nothing at all),
    or "l4". Expected: `frag` (bytes, 0 included) and `mf` (INCOMPLETE) for a fragment header,
    `spi` for an AH or ESP header shown with options (the first one when both are).
    """
    with_options = draw(st.booleans())
    chosen = draw(
        st.lists(st.sampled_from(("hbh", "dstopts", "routing", "frag", "ah")), max_size=3)
    )
    order = [name for name in ("hbh", "dstopts", "routing", "frag", "ah") if name in chosen]
    text, expected = "", {}
    for name in order:
        if name == "frag":
            offset, more = draw(st.integers(0, 8191)) * 8, draw(st.booleans())
            offset = draw(st.sampled_from((0, offset)))
            core = f"FRAG:{offset} {'INCOMPLETE ' if more else ''}ID:{draw(st.integers(0, 2**32 - 1)):08x} "
            text += f"OPT ( {core}) " if with_options else core
            expected |= {"frag": offset, "mf": more}
            if offset:
                return text, expected, "later-fragment"
        elif with_options and name == "ah":
            spi = draw(st.integers(0, 2**32 - 1))
            text += f"OPT ( AH SPI=0x{spi:x} ) "
            expected["spi"] = spi
        elif with_options:
            text += "OPT ( ) "
    if draw(st.integers(0, 9)) == 0:
        if with_options:
            spi = draw(st.integers(0, 2**32 - 1))
            # one `spi` column: an AH header's (met first on the walk) wins over ESP's
            return text + f"OPT ( ESP SPI=0x{spi:x} )", {"spi": spi} | expected, "esp"
        return text, expected, "esp"
    return text, expected, "l4"


# ---- whole bodies ------------------------------------------------------------------------------
@st.composite
def trace_prefix(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """`TRACE: table:chain:type:rulenum ` of iptables-legacy -j TRACE (§5.1)."""
    table = draw(st.sampled_from(("raw", "mangle", "nat", "filter", "security")))
    chain = draw(
        st.sampled_from(("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING", "DOCKER"))
        | st.text(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
            min_size=1,
            max_size=28,
        )
    )
    kind, rulenum = draw(st.sampled_from(("rule", "return", "policy"))), draw(st.integers(1, 999))
    text = f"TRACE: {table}:{chain}:{kind}:{rulenum} "
    return text, {
        "trace_table": table,
        "trace_chain": chain,
        "trace_type": kind,
        "trace_rulenum": rulenum,
    }


@st.composite
def ip_body(draw: st.DrawFn, trace: bool = False) -> Case:
    """An IPv4 or IPv6 netfilter body (§2, §3), with or without its trailing space."""
    family = draw(st.sampled_from((4, 6)))
    head, expected = draw(interfaces())
    if expected["in_iface"]:  # the MAC token exists only when there is an input device
        mac, fields = draw(link_layer("0800" if family == 4 else "86dd"))
        head += mac
        expected |= fields
    if family == 4:
        ip, fields, offset = draw(ipv4_header())
        l4, l4_fields, stops = draw(ipv4_transport(offset, trace))
    else:
        ip, fields = "", {}
        l4, l4_fields, stops = draw(ipv6_packet(trace))
    body = head + ip + l4
    expected |= fields | l4_fields | {"kind": "ip"}
    if not stops:
        tail, tail_fields = draw(owner_and_mark())
        body += tail
        expected |= tail_fields
    if draw(st.integers(0, 4)) == 0:  # editors and some shippers strip the trailing space
        body = body.rstrip(" ")
    return body, expected


@st.composite
def arp_body(draw: st.DrawFn) -> Case:
    """An ARP line (§4.1): optional Ethernet header, payload only for Ethernet/IPv4; no trailing space."""
    in_iface, out_iface = draw(iface()), draw(iface() | st.just(""))
    head = f"IN={in_iface} OUT={out_iface} "
    expected: dict[str, Any] = {"in_iface": in_iface, "out_iface": out_iface or None}
    if draw(st.booleans()):  # nft `flags ether`
        src, dst = draw(mac_address()), draw(mac_address())
        head += f"MACSRC={src} MACDST={dst} MACPROTO=0806 "
        expected |= {"macsrc": src, "macdst": dst, "macproto": "0806"}
    htype = draw(st.sampled_from((1, 1, 1, 6, 32)))
    ptype, opcode = draw(st.sampled_from((0x0800, 0x0800, 0x86DD))), draw(st.integers(1, 4))
    body = head + f"ARP HTYPE={htype} PTYPE=0x{ptype:04x} OPCODE={opcode}"
    expected |= {"kind": "arp", "arp_htype": htype, "arp_ptype": ptype, "arp_opcode": opcode}
    if htype == 1 and ptype == 0x0800:
        macsrc, ipsrc, macdst, ipdst = (
            draw(mac_address()),
            draw(ipv4()),
            draw(mac_address()),
            draw(ipv4()),
        )
        body += f" MACSRC={macsrc} IPSRC={ipsrc} MACDST={macdst} IPDST={ipdst}"
        expected |= {
            "arp_macsrc": macsrc,
            "arp_ipsrc": ipsrc,
            "arp_macdst": macdst,
            "arp_ipdst": ipdst,
        }
    return body, expected


@st.composite
def netfilter_body(draw: st.DrawFn) -> Case:
    """A kernel message as nf_log_syslog writes it: prefix + body, with no transport header.

    Draws IPv4/IPv6 bodies (most often), ARP lines and legacy TRACE lines. ``expected`` holds
    `prefix` (verbatim, or missing when empty) and every field the body carries.
    """
    kind = draw(st.sampled_from(("ip", "ip", "ip", "ip", "arp", "trace")))
    if kind == "trace":
        text_prefix, expected = draw(trace_prefix())
        body, fields = draw(ip_body(trace=True))
    else:
        text_prefix, expected = "", {}
        body, fields = draw(arp_body() if kind == "arp" else ip_body())
        text_prefix = draw(prefix().filter(lambda p: valid_prefix(p, body)))
    if text_prefix:
        expected["prefix"] = text_prefix
    return text_prefix + body, expected | fields


# ---- transport headers (§8) --------------------------------------------------------------------
HEADER_FORMATS = (
    "rfc3164-uptime",
    "rfc3164",
    "rsyslog-precise",
    "rfc5424",
    "syslog-ng-iso",
    "syslog-ng-protocol",
    "journal-short",
    "journal-short-iso",
    "journal-short-precise",
    "journal-short-iso-precise",
    "journal-short-monotonic",
    "journal-short-full",
    "journal-short-unix",
    "dmesg",
    "dmesg-ctime",
    "dmesg-iso",
    "dmesg-raw",
    "kmsg",
    "bare",
)
OFFSETS = (dt.timedelta(0), dt.timedelta(hours=8), dt.timedelta(hours=-5, minutes=-30))


def uptime_text(micros: int) -> str:
    """The printk time `[%5lu.%06lu]`."""
    return f"[{micros // 1_000_000:5d}.{micros % 1_000_000:06d}]"


def rfc3339(moment: dt.datetime, offset: dt.timedelta, digits: int, colon: bool) -> str:
    """`2026-11-25T16:53:14.958421+00:00` (or `+0000`, or `,` before µs for dmesg)."""
    local = moment.astimezone(dt.timezone(offset))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += f".{local.microsecond:06d}"
    zone = local.strftime("%z")
    return text + (f"{zone[:3]}:{zone[3:]}" if colon else zone)


@st.composite
def header(draw: st.DrawFn, host_name: str | None = None) -> Case:
    """A transport header of §8, ending where the kernel message starts.

    ``expected``: `format` (one of HEADER_FORMATS), `host`, `ts`, `year_in_text`, `uptime`,
    `level`; keys are missing when the header does not carry the value.
    """
    fmt = draw(st.sampled_from(HEADER_FORMATS))
    moment = draw(
        st.datetimes(dt.datetime(2001, 1, 1), dt.datetime(2037, 12, 31), timezones=st.just(dt.UTC))
    )
    micros = draw(st.integers(0, 99_999_999_999))
    host = host_name or draw(st.sampled_from(("pc-baim", "vm", "web-01", "fw.example.org")))
    level = draw(st.integers(0, 7))
    offset = draw(st.sampled_from(OFFSETS))
    return header_text(fmt, moment, micros, host, level, offset)


def header_text(
    fmt: str, moment: dt.datetime, micros: int, host: str, level: int, offset: dt.timedelta
) -> Case:
    """Render one header format; `moment` is UTC, shown in `offset` where the format has a zone."""
    uptime = micros / 1_000_000
    naive = moment.replace(tzinfo=None, fold=0)
    second = moment.replace(microsecond=0)
    syslog_day = f"{MONTHS[moment.month - 1]} {moment.day:2d} {moment:%H:%M:%S}"
    journal_day = f"{MONTHS[moment.month - 1]} {moment.day:02d} {moment:%H:%M:%S}"
    aware = {"ts": moment, "year_in_text": True}
    table: dict[str, Case] = {
        "rfc3164-uptime": (
            f"{syslog_day} {host} kernel: {uptime_text(micros)} ",
            {
                "host": host,
                "ts": second.replace(tzinfo=None, fold=0),
                "year_in_text": False,
                "uptime": uptime,
            },
        ),
        "rfc3164": (
            f"{syslog_day} {host} kernel: ",
            {"host": host, "ts": second.replace(tzinfo=None, fold=0), "year_in_text": False},
        ),
        "rsyslog-precise": (
            f"{rfc3339(moment, offset, 6, True)} {host} kernel: {uptime_text(micros)} ",
            {"host": host, **aware, "uptime": uptime},
        ),
        "rfc5424": (
            f"<{level}>1 {rfc3339(moment, offset, 6, True)} {host} kernel - - - "
            f"{uptime_text(micros)} ",
            {"host": host, **aware, "uptime": uptime, "level": level},
        ),
        "syslog-ng-iso": (
            f"{rfc3339(moment, offset, 6, True)} {host} kernel: ",
            {"host": host, **aware},
        ),
        "syslog-ng-protocol": (
            f"<{level}>1 {rfc3339(second, offset, 0, True)} {host} kernel - {micros % 100000} "
            f'[meta sequenceId="{micros % 977}"] ',
            {"host": host, "ts": second, "year_in_text": True, "level": level},
        ),
        "journal-short": (
            f"{journal_day} {host} kernel: ",
            {"host": host, "ts": second.replace(tzinfo=None, fold=0), "year_in_text": False},
        ),
        "journal-short-iso": (
            f"{rfc3339(second, offset, 0, False)} {host} kernel: ",
            {"host": host, "ts": second, "year_in_text": True},
        ),
        "journal-short-precise": (
            f"{journal_day}.{moment.microsecond:06d} {host} kernel: ",
            {"host": host, "ts": naive, "year_in_text": False},
        ),
        "journal-short-iso-precise": (
            f"{rfc3339(moment, offset, 6, False)} {host} kernel: ",
            {"host": host, **aware},
        ),
        "journal-short-monotonic": (
            f"{uptime_text(micros)} {host} kernel: ",
            {"host": host, "uptime": uptime},
        ),
        "journal-short-full": (
            f"{DAYS[moment.weekday()]} {moment:%Y-%m-%d %H:%M:%S} UTC {host} kernel: ",
            {"host": host, "ts": second, "year_in_text": True},
        ),
        "journal-short-unix": (
            f"{int(moment.timestamp())}.{moment.microsecond:06d} {host} kernel: ",
            {"host": host, **aware},
        ),
        "dmesg": (f"{uptime_text(micros)} ", {"uptime": uptime}),
        "dmesg-ctime": (
            f"[{DAYS[moment.weekday()]} {MONTHS[moment.month - 1]} {moment.day:2d} "
            f"{moment:%H:%M:%S %Y}] ",
            {"ts": second.replace(tzinfo=None, fold=0), "year_in_text": True},
        ),
        "dmesg-iso": (
            rfc3339(moment, offset, 6, True).replace(".", ",", 1) + " ",
            aware,
        ),
        "dmesg-raw": (f"<{level}>{uptime_text(micros)} ", {"uptime": uptime, "level": level}),
        "kmsg": (f"{level},{micros % 99991},{micros},-;", {"uptime": uptime, "level": level}),
        "bare": ("", {}),
    }
    text, expected = table[fmt]
    return text, {"format": fmt, **expected}


@st.composite
def netfilter_line(draw: st.DrawFn) -> Case:
    """A whole log line: a transport header (§8) followed by a netfilter message.

    ``expected`` merges the header's and the body's fields (`format`, `host`, `ts`, `uptime`,
    `level`, `prefix`, `src`, ...). Lines have no newline.
    """
    head, head_fields = draw(header())
    body, body_fields = draw(netfilter_body())
    return head + body, head_fields | body_fields
