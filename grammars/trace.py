"""Trace output of the user-space tools: ``nft monitor trace`` and ``xtables-monitor --trace``.

Real lines (samples/lab/trace/nft-trace.txt, xtables-trace.txt; nftables 1.0.6, iptables 1.8.9):

    trace id 502880de inet lptrace lpfwd packet: iif "lpbr0" oif "up0" ether saddr 02:00:ac:1e:00:02 ether daddr 02:00:ac:1e:00:01 ip saddr 172.30.0.2 ip daddr 10.77.0.2 ip dscp cs0 ip ecn not-ect ip ttl 63 ip id 24163 ip protocol tcp ip length 60 tcp sport 41170 tcp dport 9052 tcp flags == syn tcp window 64240
    trace id 502880de inet lptrace lpfwd rule tcp dport 9052 jump lpsub # handle 11 (verdict jump lpsub)
    PACKET: 2 d2a5997c IN=lpbr0 MACSRC=2:0:ac:1e:0:2 MACDST=2:0:ac:1e:0:1 MACPROTO=0800 SRC=172.30.0.2 DST=10.77.0.2 LEN=60 TOS=0x0 TTL=64 ID=29346 DF SPORT=38124 DPORT=9051 SYN
     TRACE: 2 d2a5997c raw:PREROUTING:rule:0x9:CONTINUE  -4 -t raw -A PREROUTING -p tcp -m tcp --dport 9051 -j TRACE

nf_tables sends one trace event per rule that matched, per chain fallen off (policy) and per
user chain returned from, the packet's headers with the first event of each base chain
(nf_tables_trace.c); the tools print one line per event. Both outputs are parsed with trailing
white space removed (``packet:`` lines end in a space, some ``TRACE:`` lines in two).

Every leaf is a ``pp.Regex`` whose named groups are the fields, named as in the LOG grammar
(``src``, ``ttl``, ``sport``...) where the value means the same; the trace's own fields start
with ``trace_``. The values stay as printed (``tcp flags == 0x18``, ``ip6 length`` without its
header, ``rule:0x9``): ``logpath.nftrace`` turns them into the hop vocabulary. BNF: ``trace.bnf.md``.
"""

from __future__ import annotations

import pyparsing as pp

IPV4 = r"\d{1,3}(?:\.\d{1,3}){3}"
IPV6 = r"[0-9a-fA-F:.]*:[0-9a-fA-F:.]*"  # inet_ntop's compressed form (nft and xtables alike)
DEC = r"\d+"
NAME = r"[^ ]{1,255}"  # nf_tables names: at most 255 bytes (NFT_NAME_MAXLEN), no space
# nft prints a MAC zero padded (02:00:...), xtables-monitor with ether_ntoa, unpadded (2:0:...)
MAC = r"[0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){5}"
# What a rule decided (nft's words; xtables-monitor prints them upper case, jump and goto
# with their chain after a colon)
NFT_VERDICT = r"(?:accept|drop|continue|return|queue|stolen|break|repeat|(?:jump|goto) [^ )]+)"
XT_VERDICT = (
    r"(?:ACCEPT|DROP|CONTINUE|RETURN|QUEUE|STOLEN|BREAK|(?:JUMP|GOTO)(?::[^ ]+)?|0x[0-9a-f]+)"
)
# The protocols nft names in a packet: an expression it prints but logpath does not read
# (ip dscp cs0, ip ecn not-ect, vlan id 10...) is "<protocol> <field> <value>".
PROTOCOLS = r"(?:ether|vlan|arp|ip|ip6|tcp|udp|udplite|sctp|dccp|icmp|icmpv6|igmp|esp|ah|comp|gre|meta|ct|th|nh|ll)"


def leaf(pattern: str, label: str) -> pp.Regex:
    """A token as it looks on the line; its label is what an error message says was expected."""
    token = pp.Regex(pattern)
    token.set_name(label)
    return token


# --- nft monitor trace (nftables src/monitor.c, netlink.c: trace_print_*) ----------------------

nft_header = leaf(
    rf"trace id (?P<trace_id>[0-9a-f]{{8}}) (?P<trace_family>ip6|ip|inet|bridge|arp|netdev) "
    rf"(?P<trace_table>{NAME}) (?P<trace_chain>{NAME}) ",
    "trace id <8 hex digits> <family> <table> <chain>",
)


def item(pattern: str, label: str) -> pp.Regex:
    return leaf(" " + pattern, label)


packet_items = [
    item(r'iif "(?P<in_iface>[^"]*)"', 'iif "<interface>"'),
    item(r'oif "(?P<out_iface>[^"]*)"', 'oif "<interface>"'),
    item(rf"ether saddr (?P<macsrc>{MAC})", "ether saddr <MAC address>"),
    item(rf"ether daddr (?P<macdst>{MAC})", "ether daddr <MAC address>"),
    item(rf"ip saddr (?P<src>{IPV4})", "ip saddr <IPv4 address>"),
    item(rf"ip daddr (?P<dst>{IPV4})", "ip daddr <IPv4 address>"),
    item(rf"ip ttl (?P<ttl>{DEC})", "ip ttl <number>"),
    item(rf"ip id (?P<id>{DEC})", "ip id <number>"),
    item(rf"ip length (?P<len>{DEC})", "ip length <number>"),
    item(r"ip protocol (?P<trace_proto>[a-z0-9-]+)", "ip protocol <protocol>"),
    item(rf"ip6 saddr (?P<src6>{IPV6})", "ip6 saddr <IPv6 address>"),
    item(rf"ip6 daddr (?P<dst6>{IPV6})", "ip6 daddr <IPv6 address>"),
    item(rf"ip6 hoplimit (?P<hoplimit>{DEC})", "ip6 hoplimit <number>"),
    item(rf"ip6 length (?P<payload_len>{DEC})", "ip6 length <number>"),
    item(rf"ip6 flowlabel (?P<flowlbl>{DEC})", "ip6 flowlabel <number>"),
    item(r"ip6 nexthdr (?P<trace_proto6>[a-z0-9-]+)", "ip6 nexthdr <protocol>"),
    item(rf"(?P<l4>tcp|udp|udplite|sctp|dccp) sport (?P<sport>{DEC})", "<protocol> sport <port>"),
    item(rf"(?:tcp|udp|udplite|sctp|dccp) dport (?P<dport>{DEC})", "<protocol> dport <port>"),
    item(
        r"tcp flags (?:== )?(?P<tcp_flags>0x[0-9a-f]+|\(?[a-z]+(?: \| [a-z]+)*\)?)",
        "tcp flags == <flags>",
    ),
    item(rf"tcp window (?P<window>{DEC})", "tcp window <number>"),
    item(rf"udp length (?P<udplen>{DEC})", "udp length <number>"),
    item(r"(?P<icmp>icmp|icmpv6) type (?P<icmp_type_name>[a-z0-9-]+)", "icmp type <type>"),
    item(r"(?:icmp|icmpv6) code (?P<icmp_code_name>[a-z0-9-]+)", "icmp code <code>"),
    item(rf"(?:icmp|icmpv6) id (?P<icmp_id>{DEC})", "icmp id <number>"),
    item(rf"(?:icmp|icmpv6) sequence (?P<icmp_seq>{DEC})", "icmp sequence <number>"),
    item(r"meta mark (?P<mark>0x[0-9a-f]{1,8})", "meta mark <hex>"),
    # any other expression nft prints of a packet: read past, not stored
    item(rf'{PROTOCOLS} [a-z][a-z0-9-]* (?:== )?(?:"[^"]*"|[^ ]+)', "<protocol> <field> <value>"),
    # raw header bytes nft has no field for (an ICMP echo's payload: @th,64,96 0x6c6f...)
    item(r"@(?:ll|nh|th),\d+,\d+ [^ ]+", "@<base>,<offset>,<length> <value>"),
]
packet_item = pp.MatchFirst(packet_items)
nft_packet = leaf(r"(?P<trace_type>packet):", "packet:") + pp.ZeroOrMore(packet_item)
nft_rule = (
    leaf(r"(?P<trace_type>rule) ", "rule")
    + leaf(
        r"(?P<trace_rule>.*?)(?: # handle (?P<trace_handle>\d+))? \(verdict ",
        "<rule> (verdict",
    )
    + leaf(rf"(?P<trace_verdict>{NFT_VERDICT})\)", "<verdict>)")
)
nft_unknown_rule = leaf(
    rf"(?P<trace_type>unknown) rule handle (?P<trace_handle>\d+) \(verdict (?P<trace_verdict>{NFT_VERDICT})\)",
    "unknown rule handle <number> (verdict <verdict>)",
)
mark = item(r"meta mark (?P<mark>0x[0-9a-f]{1,8})", "meta mark <hex>")
nft_policy = leaf(r"(?P<trace_type>policy) (?P<trace_verdict>accept|drop)", "policy <verdict>")
nft_return = leaf(rf"(?P<trace_type>verdict) (?P<trace_verdict>{NFT_VERDICT})", "verdict <verdict>")
nft_event = nft_packet | nft_rule | nft_unknown_rule | (nft_policy | nft_return) + pp.Opt(mark)
nft_line = nft_header + nft_event + pp.StringEnd().set_name("end of line")

# --- xtables-monitor --trace (iptables/xtables-monitor.c: trace_print_packet, trace_cb) -------

xt_packet_fields = [
    item(r"IN=(?P<in_iface>[^ ]*)", "IN=<interface>"),
    item(r"OUT=(?P<out_iface>[^ ]*)", "OUT=<interface>"),
    item(rf"NFPROTO=(?P<packet_nfproto>{DEC})", "NFPROTO=<number>"),
    item(
        rf"MACSRC=(?P<macsrc>{MAC}) MACDST=(?P<macdst>{MAC}) MACPROTO=(?P<macproto>[0-9a-f]{{4}})",
        "MACSRC=<MAC> MACDST=<MAC> MACPROTO=<hex>",
    ),
    item(r"LL=0x[0-9a-f]+ [0-9a-f]*", "LL=0x<type> <hex>"),
    item(
        rf"SRC=(?P<src>{IPV4}) DST=(?P<dst>{IPV4}) LEN=(?P<len>{DEC}) TOS=0x(?P<tos>[0-9a-f]{{1,2}}) "
        rf"TTL=(?P<ttl>{DEC}) ID=(?P<id>{DEC})",
        "SRC=<IPv4 address> DST=<IPv4 address> LEN=<n> TOS=0x<hex> TTL=<n> ID=<n>",
    ),
    item(
        rf"SRC=(?P<src6>{IPV6}) DST=(?P<dst6>{IPV6}) LEN=(?P<len6>{DEC}) TC=(?P<tc>{DEC}) "
        rf"HOPLIMIT=(?P<hoplimit>{DEC}) FLOWLBL=(?P<flowlbl>{DEC})",
        "SRC=<IPv6 address> DST=<IPv6 address> LEN=<n> TC=<n> HOPLIMIT=<n> FLOWLBL=<n>",
    ),
    item(r"(?P<ce>CE)", "CE"),
    item(r"(?P<df>DF)", "DF"),
    item(r"(?P<mf>MF)", "MF"),
    item(rf"FRAG:(?P<frag>{DEC})", "FRAG:<offset>"),
    item(r"OPT \((?P<ipopt>[0-9A-F]*)\)", "OPT (<hex>)"),
    item(rf"SPORT=(?P<sport>{DEC}) DPORT=(?P<dport>{DEC})", "SPORT=<port> DPORT=<port>"),
    item(
        r"(?P<xt_flags>(?:SYN|ACK|FIN|RST|PSH|URG)(?: (?:SYN|ACK|FIN|RST|PSH|URG))*)", "<TCP flag>"
    ),
    item(r"MARK=(?P<mark>0x[0-9a-f]{1,8})", "MARK=0x<hex>"),
]
xt_packet = (
    leaf(
        rf"(?P<trace_type>PACKET): (?P<trace_nfproto>{DEC}) (?P<trace_id>[0-9a-f]{{8}})",
        "PACKET: <family number> <8 hex digits>",
    )
    + pp.ZeroOrMore(pp.MatchFirst(xt_packet_fields))
    + pp.StringEnd().set_name("end of line")
)
xt_trace = (
    leaf(
        rf" TRACE: (?P<trace_nfproto>{DEC}) (?P<trace_id>[0-9a-f]{{8}}) "
        rf"(?P<trace_table>[^: ]+):(?P<trace_chain>[^: ]+):",
        "TRACE: <family number> <8 hex digits> <table>:<chain>:",
    )
    + (
        leaf(
            rf"(?P<trace_type>rule):0x(?P<trace_handle>[0-9a-f]+):(?P<trace_verdict>{XT_VERDICT})",
            "rule:0x<handle>:<VERDICT>",
        )
        + pp.Opt(leaf(r"  (?P<trace_rule>.+)", "  <rule>"))
        | leaf(
            rf"(?P<trace_type>policy|return):(?P<trace_verdict>{XT_VERDICT})", "policy:<VERDICT>"
        )
    )
    + pp.StringEnd().set_name("end of line")
)

line = nft_line | xt_packet | xt_trace
line.leave_whitespace(recursive=True)
line.set_name("nft monitor trace or xtables-monitor --trace line")

STARTS = ("trace id ", "PACKET: ", " TRACE: ")
"""How a line of either output starts (how ingest tells them from other lines)."""


def parse_line(text: str) -> dict[str, str]:
    """The fields of one trace line (trailing white space ignored); raises
    pp.ParseException, saying what was expected where, if the line is not one."""
    result = line.parse_string(text.rstrip(), parse_all=True)
    return {k: v for k, v in result.as_dict().items() if isinstance(v, str)}
