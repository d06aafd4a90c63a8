"""The netfilter log body: what the kernel's nf_log_syslog (and ebt_log) print after the prefix.

Real lines (samples/seed/syslog, samples/formats/icmp-error.log):

    [TonyBai]-FwdId0Od0:IN=docker0 OUT=docker0 PHYSIN=vethd9f6465 PHYSOUT=vethfcceafa MAC=02:42:ac:11:00:03:02:42:ac:11:00:02:08:00 SRC=172.17.0.2 DST=172.17.0.3 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=24284 DF PROTO=TCP SPT=43292 DPT=12580 WINDOW=29200 RES=0x00 SYN URGP=0
    fmtA icmp-in: IN=a0 OUT= MAC=02:00:00:0a:00:10:02:00:00:0a:00:01:08:00 SRC=203.0.113.20 DST=198.51.100.10 LEN=58 TOS=0x00 PREC=0xC0 TTL=63 ID=36607 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST=203.0.113.20 LEN=30 TOS=0x00 PREC=0x00 TTL=63 ID=1025 DF PROTO=UDP SPT=54406 DPT=9 LEN=10 ]

The kernel writes every token followed by one space, and the last space is often lost (editors,
shippers, the article itself), so a body is parsed with its trailing white space removed and every
token here carries its *leading* space instead: the grammar then never depends on that space.

Every leaf is a ``pp.Regex`` whose named groups are the fields (``(?P<src>...)``): pyparsing turns
named groups into results names, and ``grammars.fastpath`` compiles the very same leaves into one
regular expression, so this module stays the one definition of a line. The BNF is in
``netfilter.bnf.md``.
"""

from __future__ import annotations

import pyparsing as pp

IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
IPV6 = (
    r"[0-9a-f]{1,4}(?::[0-9a-f]{0,4}){2,7}"  # the kernel prints 8 full groups; accept short forms
)
MAC = r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}"
# A decimal field (the kernel's %u of a field of known width). The grammar gives its shape only:
# the width (a port is 0-65535, a TTL 0-255, a flow label 20 bits) is checked where the value is
# typed (logpath.netfilter.DECIMAL_LIMITS), which rejects the line with that field's own column and
# range; a digit bound here made TTL=99999 fail the whole IPv4 alternative, reported at SRC=.
DEC = r"\d+"
HEX2 = r"[0-9a-fA-F]{2}"
HEX4 = r"[0-9a-fA-F]{4}"
HEX32 = r"[0-9a-fA-F]{1,8}"
HEX = r"[0-9a-fA-F]+"
IFACE = r"[^ ]*"  # interface names have no spaces (dev_valid_name); empty when no device
PORT_IFACE = r"[^ ]+"  # PHYSIN=/PHYSOUT= are printed only for a device, whose name is never empty
TCP_FLAG = r"(?:AE|CWR|ECE|URG|ACK|PSH|RST|SYN|FIN)(?![A-Z=])"  # not the URG of URGP=

# The anchor of §9 of the format reference: the first "IN=x OUT=y" followed by what the kernel
# prints next. Everything before it is the prefix, which may itself contain "=" or even "IN=".
BODY_START = r"IN=[^ ]* OUT=[^ ]*(?: (?:PHYSIN=|PHYSOUT=|MAC=|MACSRC=|SRC=|ARP |TRUNCATED)|$)"


def leaf(pattern: str, label: str) -> pp.Regex:
    """A token as it looks on the line; its label is what an error message says was expected."""
    token = pp.Regex(pattern)
    token.set_name(label)
    return token


def incomplete(p: str) -> pp.Regex:
    return leaf(rf" INCOMPLETE \[(?P<{p}incomplete>{DEC}) bytes\]", "INCOMPLETE [<n> bytes]")


# --- prefix, interfaces, link layer ------------------------------------------------------------

trace_prefix = leaf(
    r"(?P<prefix>TRACE: (?P<trace_table>[^: ]+):(?P<trace_chain>[^: ]+):"
    rf"(?P<trace_type>rule|return|policy):(?P<trace_rulenum>{DEC}) )(?=IN=)",
    "TRACE: <table>:<chain>:<type>:<rulenum>",
)
# Written as an unrolled loop (skip non-"I" characters; at an "I", go on unless the anchor starts
# there) rather than ".*?(?=anchor)": the same language, about twice as fast to match. The loop is
# an atomic group, not possessive quantifiers, which Python 3.11.0-3.11.4 match wrongly when
# nested (CPython gh-106052: this token matched nothing at all on Debian 12's 3.11.2).
free_prefix = leaf(
    rf"(?P<prefix>(?>[^I]*(?:I(?!{BODY_START[1:]})[^I]*)*))(?=IN=)",
    "<prefix>IN=<interface> OUT=<interface>",
)
prefix = trace_prefix | free_prefix

in_out = leaf(rf"IN=(?P<in_iface>{IFACE}) OUT=(?P<out_iface>{IFACE})", "IN=<if> OUT=<if>")
physin = leaf(rf" PHYSIN=(?P<physin>{PORT_IFACE})", "PHYSIN=<port>")
physout = leaf(rf" PHYSOUT=(?P<physout>{PORT_IFACE})", "PHYSOUT=<port>")

mac_raw = leaf(
    # dev->hard_header_len bytes as %02x joined by ":" (none on a tun device); whole bytes are
    # checked in logpath.hops: spelled out here, they cost the hot pattern a tenth of its time
    r" MAC=(?P<mac>[0-9a-f:]*)"
    rf"(?: TUNNEL=(?P<tunnel>{IPV4}->{IPV4}))?",
    "MAC=<link-layer header>",
)
mac_decoded = leaf(
    rf" MACSRC=(?P<macsrc>{MAC}) MACDST=(?P<macdst>{MAC})"
    rf"(?: VPROTO=(?P<vproto>{HEX4}) VID=(?P<vid>{DEC}))? MACPROTO=(?P<macproto>{HEX4})",
    "MACSRC=<mac> MACDST=<mac> MACPROTO=<hex>",
)
link = mac_raw | mac_decoded

# --- transport layers (shared by IPv4, IPv6 and the packet quoted in an ICMP error) -----------


def tcp(p: str = "") -> pp.ParserElement:
    """TCP after PROTO=TCP: ports, optional SEQ/ACK, window, flags in kernel order, options."""
    ports = leaf(rf" SPT=(?P<{p}sport>{DEC}) DPT=(?P<{p}dport>{DEC})", "SPT=<port> DPT=<port>")
    sequence = leaf(rf" SEQ=(?P<{p}seq>{DEC}) ACK=(?P<{p}ack>{DEC})", "SEQ=<n> ACK=<n>")
    window = leaf(
        rf" WINDOW=(?P<{p}window>{DEC}) RES=0x(?P<{p}res>{HEX2})", "WINDOW=<n> RES=0x<hex>"
    )
    flags = leaf(rf" (?P<{p}flags>{TCP_FLAG}(?: {TCP_FLAG})*)", "<TCP flag>")
    urgp = leaf(rf" URGP=(?P<{p}urgp>{DEC})", "URGP=<n>")
    options = leaf(rf" OPT \((?P<{p}tcpopt>{HEX}|TRUNCATED)\)", "OPT (<hex>)")
    header = ports + pp.Opt(sequence) + window + pp.Opt(flags) + urgp + pp.Opt(options)
    return pp.Opt(incomplete(p) | header)


def udp(p: str = "") -> pp.ParserElement:
    """UDP/UDPLITE: ports and the UDP length (the line's second LEN=)."""
    header = leaf(
        rf" SPT=(?P<{p}sport>{DEC}) DPT=(?P<{p}dport>{DEC}) LEN=(?P<{p}udplen>{DEC})",
        "SPT=<port> DPT=<port> LEN=<n>",
    )
    return pp.Opt(incomplete(p) | header)


def proto_tcp(p: str) -> pp.ParserElement:
    return leaf(rf" PROTO=(?P<{p}proto>TCP)", "PROTO=TCP") + tcp(p)


def proto_udp(p: str) -> pp.ParserElement:
    return leaf(rf" PROTO=(?P<{p}proto>UDPLITE|UDP)", "PROTO=UDP") + udp(p)


def proto_spi(p: str) -> pp.ParserElement:
    """AH and ESP print their SPI; a non-first ESP fragment prints nothing after PROTO=ESP."""
    return leaf(
        rf" PROTO=(?P<{p}proto>AH|ESP)(?: SPI=0x(?P<{p}spi>{HEX32}))?", "PROTO=AH|ESP SPI=0x<hex>"
    )


def proto_number(p: str) -> pp.ParserElement:
    return leaf(rf" PROTO=(?P<{p}proto>{DEC})", "PROTO=<number>")


def icmp_type_code(p: str, name: str) -> pp.Regex:
    return leaf(
        rf" PROTO=(?P<{p}proto>{name}) TYPE=(?P<{p}icmp_type>{DEC}) CODE=(?P<{p}icmp_code>{DEC})",
        f"PROTO={name} TYPE=<n> CODE=<n>",
    )


def echo(p: str) -> pp.Regex:
    return leaf(rf" ID=(?P<{p}icmp_id>{DEC}) SEQ=(?P<{p}icmp_seq>{DEC})", "ID=<n> SEQ=<n>")


mtu = leaf(rf" MTU=(?P<mtu>{DEC})", "MTU=<n>")

# --- IPv4 ---------------------------------------------------------------------------------------


def ipv4_header(p: str = "", lead: str = " ", fragment: bool | None = None) -> pp.ParserElement:
    """SRC..ID, the CE/DF/MF bits, the fragment offset and IP options (nf_log_syslog.c:325-363);
    with ``fragment`` True the offset is there, False it is not, None either."""
    addresses = leaf(
        rf"{lead}SRC=(?P<{p}src>{IPV4}) DST=(?P<{p}dst>{IPV4})", "SRC=<IPv4 address> DST=<...>"
    )
    fixed = leaf(
        rf" LEN=(?P<{p}len>{DEC}) TOS=0x(?P<{p}tos>{HEX2}) PREC=0x(?P<{p}prec>{HEX2})"
        rf" TTL=(?P<{p}ttl>{DEC}) ID=(?P<{p}id>{DEC})",
        "LEN=<n> TOS=0x<hex> PREC=0x<hex> TTL=<n> ID=<n>",
    )
    bits = leaf(rf"(?P<{p}ce> CE)?(?P<{p}df> DF)?(?P<{p}mf> MF)?", "CE|DF|MF")
    frag = leaf(rf" FRAG:(?P<{p}frag>{DEC})", "FRAG:<offset>")
    options = leaf(rf" OPT \((?P<{p}ipopt>{HEX}|TRUNCATED)\)", "OPT (<hex>)")
    if fragment is None:
        return addresses + fixed + bits + pp.Opt(frag) + pp.Opt(options)
    if fragment:
        return addresses + fixed + bits + frag + pp.Opt(options)
    return addresses + fixed + bits + pp.Opt(options)


def quoted_ipv4() -> pp.ParserElement:
    """The packet an ICMP error quotes, in [...]: decoded one level deep, never with UID/MARK."""
    p = "inner_"
    inner_icmp = icmp_type_code(p, "ICMP") + pp.Opt(echo(p) | incomplete(p))
    l4 = proto_tcp(p) | proto_udp(p) | inner_icmp | proto_spi(p) | proto_number(p)
    return leaf(r" \[", "[") + ipv4_header(p, lead="") + pp.Opt(l4) + leaf(r" \]", "]")


icmp_gateway = leaf(rf" GATEWAY=(?P<gateway>{IPV4})", "GATEWAY=<IPv4 address>")
icmp_parameter = leaf(rf" PARAMETER=(?P<parameter>{DEC})", "PARAMETER=<n>")
icmp4 = icmp_type_code("", "ICMP") + pp.Opt(
    echo("")
    | incomplete("")
    | (icmp_gateway + pp.Opt(quoted_ipv4()))
    | icmp_parameter
    | (quoted_ipv4() + pp.Opt(mtu))
)
# A non-first fragment or a header shorter than 8 bytes prints PROTO=ICMP and stops there.
icmp4_short = leaf(r" PROTO=(?P<proto>ICMP)", "PROTO=ICMP") + pp.Opt(incomplete(""))

ipv4_l4 = proto_tcp("") | proto_udp("") | icmp4 | icmp4_short | proto_spi("") | proto_number("")
# The kernel prints PROTO= after every IPv4 header it could read (an unread header is TRUNCATED,
# before SRC=), a non-first fragment's too ("FRAG:185 PROTO=TCP" and no more), but for AH's
# (format reference §2.6: nothing after FRAG:). A line without a fragment offset that ends
# before PROTO= was cut short on its way (a syslog daemon's message size), its last field perhaps
# cut too ("ID=2" of "ID=24284"): rejected, not stored as a packet.
ipv4 = (ipv4_header(fragment=True) + pp.Opt(ipv4_l4)) | (ipv4_header(fragment=False) + ipv4_l4)

# --- IPv6 ---------------------------------------------------------------------------------------


def ipv6_header(p: str = "", lead: str = " ") -> pp.ParserElement:
    """SRC..FLOWLBL: addresses in full 4-digit groups, TC and FLOWLBL decimal (nf_log_syslog.c)."""
    addresses = leaf(
        rf"{lead}SRC=(?P<{p}src>{IPV6}) DST=(?P<{p}dst>{IPV6})", "SRC=<IPv6 address> DST=<...>"
    )
    fixed = leaf(
        rf" LEN=(?P<{p}len>{DEC}) TC=(?P<{p}tc>{DEC}) HOPLIMIT=(?P<{p}ttl>{DEC})"
        rf" FLOWLBL=(?P<{p}flowlbl>{DEC})",
        "LEN=<n> TC=<n> HOPLIMIT=<n> FLOWLBL=<n>",
    )
    return addresses + fixed


# Extension headers: a fragment header prints its offset (in bytes) and id; with
# --log-ip-options every walked header is wrapped in "OPT ( ... )".
ext_headers = leaf(
    rf"(?P<exthdrs>(?: OPT \((?: FRAG:{DEC}(?: INCOMPLETE)? ID:{HEX32}| (?:AH|ESP) SPI=0x{HEX32})? \)"
    rf"| FRAG:{DEC}(?: INCOMPLETE)? ID:{HEX32})+)",
    "OPT ( ... ) or FRAG:<offset> ID:<hex>",
)


def quoted_ipv6() -> pp.ParserElement:
    p = "inner_"
    inner_icmp = icmp_type_code(p, "ICMPv6") + pp.Opt(echo(p) | incomplete(p))
    l4 = proto_tcp(p) | proto_udp(p) | inner_icmp | proto_number(p)
    return leaf(r" \[", "[") + ipv6_header(p, lead="") + pp.Opt(l4) + leaf(r" \]", "]")


pointer6 = leaf(rf" POINTER=(?P<pointer>{HEX32})", "POINTER=<hex>")
icmp6 = icmp_type_code("", "ICMPv6") + pp.Opt(
    echo("") | incomplete("") | (pointer6 + pp.Opt(quoted_ipv6())) | (quoted_ipv6() + pp.Opt(mtu))
)
icmp6_short = leaf(r" PROTO=(?P<proto>ICMPv6)", "PROTO=ICMPv6") + pp.Opt(incomplete(""))
ipv6_l4 = proto_tcp("") | proto_udp("") | icmp6 | icmp6_short | proto_number("")
ipv6 = ipv6_header() + pp.Opt(ext_headers) + pp.Opt(ipv6_l4)

# --- after L4: socket owner and mark (outer packet only) ----------------------------------------

owner = leaf(rf" UID=(?P<uid>{DEC}) GID=(?P<gid>{DEC})", "UID=<n> GID=<n>")
mark = leaf(rf" MARK=0x(?P<mark>{HEX32})", "MARK=0x<hex>")
trailer = pp.Opt(owner) + pp.Opt(mark)

# --- ARP (nf_log_syslog.c:60-110): no trailing space, MACSRC/MACDST twice with flags ether ------

arp = leaf(
    rf" ARP HTYPE=(?P<arp_htype>{DEC}) PTYPE=0x(?P<arp_ptype>{HEX4}) OPCODE=(?P<arp_opcode>{DEC})"
    rf"(?: MACSRC=(?P<arp_macsrc>{MAC}) IPSRC=(?P<arp_ipsrc>{IPV4})"
    rf" MACDST=(?P<arp_macdst>{MAC}) IPDST=(?P<arp_ipdst>{IPV4}))?",
    "ARP HTYPE=<n> PTYPE=0x<hex> OPCODE=<n>",
)

truncated = leaf(r" (?P<truncated>TRUNCATED)", "TRUNCATED")

# --- ebtables --log (ebt_log.c): its own format, prefix then one space ---------------------------

ebt_prefix = leaf(r"(?P<prefix>.*?) (?=IN=[^ ]* OUT=[^ ]* MAC source = )", "<prefix> IN=")
ebt_link = leaf(
    rf"(?P<ebt> MAC source = )(?P<macsrc>{MAC}) MAC dest = (?P<macdst>{MAC}) proto = 0x(?P<macproto>{HEX4})",
    "MAC source = <mac> MAC dest = <mac> proto = 0x<hex>",
)
ebt_ports = leaf(rf" SPT=(?P<sport>{DEC}) DPT=(?P<dport>{DEC})", "SPT=<port> DPT=<port>")
ebt_ip = leaf(
    rf" IP SRC=(?P<src>{IPV4}) IP DST=(?P<dst>{IPV4}), IP tos=0x(?P<tos>{HEX2}),"
    rf" IP proto=(?P<proto>{DEC})",
    "IP SRC=<ip> IP DST=<ip>, IP tos=0x<hex>, IP proto=<n>",
)
ebt_ip6 = leaf(
    rf" IPv6 SRC=(?P<src>{IPV6}) IPv6 DST=(?P<dst>{IPV6}), IPv6 priority=0x(?P<tcx>[0-9a-fA-F]),"
    rf" Next Header=(?P<proto>{DEC})",
    "IPv6 SRC=<ip> IPv6 DST=<ip>, IPv6 priority=0x<hex>, Next Header=<n>",
)
ebt_arp = leaf(
    rf" ARP HTYPE=(?P<arp_htype>{DEC}), PTYPE=0x(?P<arp_ptype>{HEX4}), OPCODE=(?P<arp_opcode>{DEC})"
    rf"(?: ARP MAC SRC=(?P<arp_macsrc>{MAC}) ARP IP SRC=(?P<arp_ipsrc>{IPV4})"
    rf" ARP MAC DST=(?P<arp_macdst>{MAC}) ARP IP DST=(?P<arp_ipdst>{IPV4}))?",
    "ARP HTYPE=<n>, PTYPE=0x<hex>, OPCODE=<n>",
)
ebt_body = (
    ebt_prefix
    + in_out
    + ebt_link
    + pp.Opt(((ebt_ip | ebt_ip6) + pp.Opt(ebt_ports)) | ebt_arp)
    + pp.StringEnd().set_name("end of line")
)

# --- the whole body -----------------------------------------------------------------------------

nf_log_body = (
    prefix
    + in_out
    + pp.Opt(physin)
    + pp.Opt(physout)
    + pp.Opt(link)
    + pp.Opt(arp | truncated | (ipv4 + trailer) | (ipv6 + trailer))
    + pp.StringEnd().set_name("end of line")
)
body = nf_log_body | ebt_body
body.leave_whitespace(recursive=True)
body.set_name("netfilter log body")


def parse_body(text: str) -> dict[str, str]:
    """Parse one netfilter body (prefix onwards) into its fields, as the strings on the line.

    Raises pp.ParseException (with the expected token and column) when the text is not a body.

    >>> parse_body("fw: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 ")["dport"]
    '2'
    """
    result = body.parse_string(text.rstrip(), parse_all=True)
    return {name: value for name, value in result.as_dict().items() if isinstance(value, str)}


# --- the common shape, for the fast path ----------------------------------------------------------
# Most lines are IPv4 TCP/UDP/ICMP-echo lines. This sub-grammar is built from the same leaves, with
# every alternative in the same order as in ``body``, so wherever it matches, ``body`` gives the
# same fields; it just has far fewer groups, which makes the compiled regex several times faster.
# tests/test_parse.py checks the claim on every sample and on generated lines.
common_l4 = proto_tcp("") | proto_udp("") | (icmp_type_code("", "ICMP") + pp.Opt(echo("")))
common_body = (
    prefix
    + in_out
    + pp.Opt(physin)
    + pp.Opt(physout)
    + pp.Opt(link)
    + ipv4_header()
    + common_l4
    + trailer
    + pp.StringEnd().set_name("end of line")
)
common_body.leave_whitespace(recursive=True)
