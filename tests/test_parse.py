"""The grammar and its compiled fast path, on the seed article's lines and every format sample."""

from __future__ import annotations

import re
from pathlib import Path

import pyparsing as pp
import pytest

from logpath.netfilter import DECIMAL_LIMITS
from logpath.parse import fast_parse_line, header_kinds, is_candidate, parse_line, parse_lines

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_FILES = sorted(
    p
    for p in [
        *SAMPLES.glob("formats/*"),
        *SAMPLES.glob("lab/**/*.log"),
        SAMPLES / "seed" / "syslog",
    ]
    if p.suffix in {".log", ".txt", ""} and "monitor-trace" not in p.name
)
SEED = (SAMPLES / "seed" / "syslog").read_text().splitlines()


def sample_lines() -> list[tuple[str, int, str]]:
    return [
        (path.name, n, line)
        for path in SAMPLE_FILES
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if is_candidate(line) and not line.startswith("{")
    ]


def test_seed_syn_at_raw_prerouting() -> None:
    fields = parse_line(SEED[0])
    assert fields == {
        "month": "Jan",
        "day": "14",
        "clock": "10:08:12",
        "host": "pc-baim",
        "uptime": "830038.910054",
        "prefix": "[TonyBai]-RawPrerouting:",
        "in_iface": "docker0",
        "out_iface": "",
        "physin": "vethd9f6465",
        "mac": "02:42:ac:11:00:03:02:42:ac:11:00:02:08:00",
        "src": "172.17.0.2",
        "dst": "172.17.0.3",
        "len": "60",
        "tos": "10",
        "prec": "00",
        "ttl": "64",
        "id": "24284",
        "df": " DF",
        "proto": "TCP",
        "sport": "43292",
        "dport": "12580",
        "window": "29200",
        "res": "00",
        "flags": "SYN",
        "urgp": "0",
    }


def test_seed_masquerade_hop_has_physin_but_no_mac() -> None:
    # nat POSTROUTING of journey 5: IN= empty, PHYSIN kept, no MAC (§10.10), still the inner source
    fields = parse_line(SEED[17])
    assert fields["prefix"] == "[TonyBai]-NatPostRouting:"
    assert (fields["in_iface"], fields["out_iface"], fields["physin"]) == (
        "",
        "eth0",
        "vethd9f6465",
    )
    assert "mac" not in fields
    assert (fields["src"], fields["dst"], fields["ttl"]) == ("172.17.0.2", "10.10.126.187", "63")


def test_seed_syn_ack_flags_in_kernel_order() -> None:
    assert parse_line(SEED[2])["flags"] == "ACK SYN"
    assert parse_line(SEED[6])["flags"] == "ACK RST"


@pytest.mark.parametrize(("name", "lineno", "line"), sample_lines())
def test_fast_path_equals_grammar(name: str, lineno: int, line: str) -> None:
    assert fast_parse_line(line) == parse_line(line)


def test_every_sample_line_parses() -> None:
    for path in SAMPLE_FILES:
        numbered = list(enumerate(path.read_text().splitlines(), 1))
        parsed = parse_lines(path.name, numbered)
        assert parsed.rejected == [], path.name
        assert parsed.lines == len(numbered)


def one(line: str) -> dict[str, str]:
    return parse_line(line)


def test_prefix_containing_in_equals() -> None:
    line = "4,717,391998959,-;fmtN has=eq IN=fake OUT=x: IN=ra OUT= MAC=02:00:00:0a:00:01:02:00:00:0a:00:10:08:00 SRC=198.51.100.10 DST=203.0.113.20 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=18268 DF PROTO=TCP SPT=39714 DPT=9443 WINDOW=64480 RES=0x00 SYN URGP=0 "
    fields = one(line)
    assert fields["prefix"] == "fmtN has=eq IN=fake OUT=x: "
    assert (fields["in_iface"], fields["pri"], fields["kseq"]) == ("ra", "4", "717")


def test_empty_prefix_and_glued_prefix() -> None:
    assert (
        one("IN=ra OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=20 TOS=0x00 PREC=0x00 TTL=1 ID=2 PROTO=47 ")[
            "prefix"
        ]
        == ""
    )
    assert (
        one(
            "fmtN-nospaceIN=ra OUT= SRC=1.2.3.4 DST=5.6.7.8 LEN=20 TOS=0x00 PREC=0x00 TTL=1 ID=2 PROTO=2"
        )["prefix"]
        == "fmtN-nospace"
    )


def test_icmp_error_quotes_the_packet_that_caused_it() -> None:
    line = "[  332.864127] fmtA icmp-in: IN=a0 OUT= MAC=02:00:00:0a:00:10:02:00:00:0a:00:01:08:00 SRC=203.0.113.20 DST=198.51.100.10 LEN=58 TOS=0x00 PREC=0xC0 TTL=63 ID=36607 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.10 DST=203.0.113.20 LEN=30 TOS=0x00 PREC=0x00 TTL=63 ID=1025 DF PROTO=UDP SPT=54406 DPT=9 LEN=10 ] "
    fields = one(line)
    assert (fields["icmp_type"], fields["icmp_code"], fields["uptime"]) == ("3", "3", "332.864127")
    assert (fields["inner_src"], fields["inner_dst"], fields["inner_proto"]) == (
        "198.51.100.10",
        "203.0.113.20",
        "UDP",
    )
    assert (fields["inner_sport"], fields["inner_dport"], fields["inner_udplen"]) == (
        "54406",
        "9",
        "10",
    )


def test_frag_needed_keeps_mtu_after_the_quote() -> None:
    line = "fmtA icmp-in: IN=a0 OUT= SRC=198.51.100.1 DST=198.51.100.10 LEN=576 TOS=0x00 PREC=0xC0 TTL=64 ID=3107 PROTO=ICMP TYPE=3 CODE=4 [SRC=198.51.100.10 DST=203.0.113.20 LEN=1428 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=6487 SEQ=1 ] MTU=1280 "
    fields = one(line)
    assert (fields["mtu"], fields["inner_icmp_id"], fields["id"]) == ("1280", "6487", "3107")


def test_udp_keeps_both_lengths_and_icmp_echo_both_ids() -> None:
    udp = one(
        "x: IN=ra OUT= SRC=198.51.100.99 DST=203.0.113.20 LEN=29 TOS=0x18 PREC=0xA0 TTL=63 ID=1004 PROTO=UDP SPT=40003 DPT=53 LEN=9 "
    )
    assert (udp["len"], udp["udplen"], udp["tos"], udp["prec"]) == ("29", "9", "18", "A0")
    echo = one(
        "x: IN= OUT=a0 SRC=1.1.1.1 DST=2.2.2.2 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=28045 DF PROTO=ICMP TYPE=8 CODE=0 ID=7837 SEQ=1 "
    )
    assert (echo["id"], echo["icmp_id"], echo["icmp_seq"]) == ("28045", "7837", "1")


def test_trace_line_fields() -> None:
    line = "TRACE: raw:PREROUTING:policy:2 IN=b0 OUT= SRC=203.0.113.1 DST=203.0.113.20 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=56574 DF PROTO=TCP SPT=56274 DPT=7000 SEQ=1287331270 ACK=0 WINDOW=64480 RES=0x00 SYN URGP=0 OPT (020404D80402080A0E5956C8000000000103030A) "
    fields = one(line)
    assert (
        fields["trace_table"],
        fields["trace_chain"],
        fields["trace_type"],
        fields["trace_rulenum"],
    ) == (
        "raw",
        "PREROUTING",
        "policy",
        "2",
    )
    assert (fields["seq"], fields["ack"], fields["tcpopt"]) == (
        "1287331270",
        "0",
        "020404D80402080A0E5956C8000000000103030A",
    )


def test_arp_and_ebtables_lines() -> None:
    arp = one(
        "fmtN arp-ether: IN=ra OUT= MACSRC=02:00:00:0a:00:10 MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=02:00:00:0a:00:10 IPSRC=198.51.100.10 MACDST=00:00:00:00:00:00 IPDST=198.51.100.1"
    )
    assert (arp["macdst"], arp["arp_ipsrc"], arp["arp_ipdst"], arp["arp_opcode"]) == (
        "ff:ff:ff:ff:ff:ff",
        "198.51.100.10",
        "198.51.100.1",
        "1",
    )
    ebt = one(
        "fmtEB fwd IN=p1 OUT=p2 MAC source = 02:00:00:0c:00:11 MAC dest = 02:00:00:0c:00:12 proto = 0x0800 IP SRC=192.0.2.11 IP DST=192.0.2.12, IP tos=0x00, IP proto=1"
    )
    assert (ebt["prefix"], ebt["in_iface"], ebt["src"], ebt["proto"]) == (
        "fmtEB fwd",
        "p1",
        "192.0.2.11",
        "1",
    )


def test_ipv6_extension_headers() -> None:
    line = "fmt6 craft: IN=b0 OUT= SRC=fd00:000a:0000:0000:0000:0000:0000:0099 DST=fd00:000b:0000:0000:0000:0000:0000:0020 LEN=1000 TC=0 HOPLIMIT=63 FLOWLBL=0 FRAG:0 INCOMPLETE ID:00abcdef PROTO=UDP SPT=40105 DPT=53 LEN=1508 "
    fields = one(line)
    assert fields["exthdrs"] == " FRAG:0 INCOMPLETE ID:00abcdef"
    assert (fields["ttl"], fields["sport"], fields["udplen"]) == ("63", "40105", "1508")


@pytest.mark.parametrize(
    ("line", "header"),
    [
        (
            "Nov 25 16:54:58 vm kernel: [  568.218199] ",
            {
                "month": "Nov",
                "day": "25",
                "clock": "16:54:58",
                "host": "vm",
                "uptime": "568.218199",
            },
        ),
        (
            "2026-11-25T16:56:04.987873+00:00 vm kernel: [  634.350721] ",
            {"iso": "2026-11-25T16:56:04.987873+00:00", "host": "vm", "uptime": "634.350721"},
        ),
        (
            "<4>1 2026-11-25T16:53:14.958421+00:00 vm kernel - - - [  464.325416] ",
            {
                "pri": "4",
                "iso": "2026-11-25T16:53:14.958421+00:00",
                "host": "vm",
                "uptime": "464.325416",
            },
        ),
        (
            '<4>1 2026-11-25T16:54:26+00:00 vm kernel - 922 [meta sequenceId="3"] ',
            {"pri": "4", "iso": "2026-11-25T16:54:26+00:00", "host": "vm"},
        ),
        (
            "Wed 2026-11-25 16:53:58 UTC vm kernel: ",
            {"full": "2026-11-25 16:53:58", "zone": "UTC", "host": "vm"},
        ),
        ("1795625638.434324 vm kernel: ", {"unix": "1795625638.434324", "host": "vm"}),
        ("[  507.800518] vm kernel: ", {"uptime": "507.800518", "host": "vm"}),
        ("[Wed Nov 25 16:55:16 2026] ", {"ctime": "Wed Nov 25 16:55:16 2026"}),
        ("2026-11-25T16:55:16,093538+00:00 ", {"iso": "2026-11-25T16:55:16,093538+00:00"}),
        ("<4>[  586.093538] ", {"pri": "4", "uptime": "586.093538"}),
        (
            "kern  :warn  : [  586.093538] ",
            {"facility": "kern", "severity": "warn", "uptime": "586.093538"},
        ),
        (
            "Nov 25 16:53:58.434324 vm kernel: ",
            {"month": "Nov", "day": "25", "clock": "16:53:58.434324", "host": "vm"},
        ),
    ],
)
def test_headers(line: str, header: dict[str, str]) -> None:
    body = "fw: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1 RES=0x00 SYN URGP=0 "
    fields = one(line + body)
    assert {
        k: v
        for k, v in fields.items()
        if k in header or k in {"month", "iso", "host", "uptime", "pri"}
    } == header
    assert fields["prefix"] == "fw: "


def test_repeated_message_is_unwrapped() -> None:
    line = "Nov 25 16:53:42 vm kernel: message repeated 4 times: [fmtR rep: IN=ra OUT= SRC=198.51.100.99 DST=203.0.113.20 LEN=32 TOS=0x00 PREC=0x00 TTL=64 ID=4242 PROTO=UDP SPT=40404 DPT=514 LEN=12 ]"
    fields = one(line)
    assert (fields["repeated"], fields["prefix"], fields["udplen"]) == ("4", "fmtR rep: ", "12")


def test_rejected_line_says_what_was_expected_where() -> None:
    line = "Jan 14 10:08:12 pc-baim kernel: [830038.910054] fw:IN=docker0 OUT= SRC=172.17.0.2 DST=172.17.0.3 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=24284 DF PROTO=TCP SPT=43292 DPT=12580 WINDOW=29200 RES=0x00 SYN URGP=0 BOGUS=1"
    parsed = parse_lines("kern.log", [(7, line)])
    assert parsed.hops == 0
    (rejected,) = parsed.rejected
    assert (
        rejected.source,
        rejected.lineno,
        rejected.column,
        rejected.expected,
        rejected.found,
    ) == (
        "kern.log",
        7,
        line.index("BOGUS") + 1,
        "OPT (<hex>) or UID=<n> GID=<n> or MARK=0x<hex> or end of line",
        "BOGUS=1",
    )
    with pytest.raises(pp.ParseException):
        parse_line(line)


def test_non_netfilter_lines_are_skipped_with_a_reason() -> None:
    parsed = parse_lines(
        "syslog", [(1, "Jan 14 10:08:12 pc-baim systemd[1]: Started cron."), (2, "")]
    )
    assert parsed.hops == 0 and parsed.rejected == []
    assert dict(parsed.skipped) == {"not a netfilter line": 1, "blank line": 1}


def test_hops_come_out_in_line_order_whatever_pattern_matched_them() -> None:
    ipv6 = (SAMPLES / "formats" / "ipv6.log").read_text().splitlines()[0]
    mixed = [SEED[0], ipv6, SEED[1], "[  12.000000] " + SEED[2].split("] ", 1)[1], SEED[3]]
    parsed = parse_lines("mixed", list(enumerate(mixed, 1)))
    assert parsed.lineno.to_pylist() == [1, 2, 3, 4, 5]
    assert parsed.raw.to_pylist() == mixed
    assert parsed.fields["uptime"].to_pylist()[3] == "12.000000"
    assert parsed.fields["src"].to_pylist()[1].startswith("fd00:")


def test_user_space_trace_output_is_read_one_hop_per_chain_visit() -> None:
    # the first three lines of each: one visit of nft's inet fmtlog pre (a rule, the policy),
    # one of xtables-monitor's (a PACKET line, then its TRACE lines)
    lines = [
        *(SAMPLES / "formats" / "nft-monitor-trace.txt").read_text().splitlines()[:3],
        *(SAMPLES / "formats" / "xtables-monitor-trace.txt").read_text().splitlines()[:3],
    ]
    parsed = parse_lines("monitor", list(enumerate(lines, 1)))
    # a visit is stored at the line that gave its verdict; its other lines are in it
    assert (parsed.rejected, sum(parsed.skipped.values())) == ([], 4)
    assert parsed.lineno.to_pylist() == [3, 6]
    assert parsed.fields["trace_chain"].to_pylist() == ["pre", "pre"]
    assert parsed.fields["trace_verdict"].to_pylist() == ["accept", "accept"]
    assert parsed.fields["id"].to_pylist() == [52068, 52068]  # a decimal field: read as one


def test_every_decimal_field_of_the_grammar_has_a_limit() -> None:
    # The grammar gives a decimal field as bare digits (DEC): logpath.hops must bound each one,
    # or a number no kernel prints is stored, or overflows its column. kseq (a /dev/kmsg record's
    # sequence number) is not stored.
    decimal = {
        pattern.aliases[alias]
        for kind in header_kinds()
        for pattern in (kind.common, kind.whole)
        for alias in re.findall(r"\(\?P<(\w+)>\\d\+\)", pattern.pattern)
    }
    assert {"ttl", "inner_ttl", "flowlbl", "repeated", "arp_htype"} <= decimal
    unbounded = {name for name in decimal if name.removeprefix("inner_") not in DECIMAL_LIMITS}
    assert unbounded == {"kseq"}


def test_every_dmesg_time_format_is_a_header_not_a_prefix() -> None:
    """formats/dmesg-variants.txt: the same kernel lines as each of dmesg's --time-format
    choices writes them. The header is read as a header (the LOG prefix is the rule's own,
    ``fmtA icmp-in: ``), with the uptime where it shows one (``-d``: ``[586.093538 <0.000202>]``);
    reltime's ``[+0.000202]`` and ``[Nov25 16:52]`` and delta's ``[<0.000202>]`` carry no time
    of the line's own, and a TRACE line after one is read as TRACE."""
    text = (SAMPLES / "formats" / "dmesg-variants.txt").read_text()
    shown = {}
    for line in text.splitlines():
        if "IN=" in line and not line.startswith("###"):
            for read in (parse_line(line), fast_parse_line(line)):
                assert read is not None, line
                prefix = read.get("prefix", "")
                assert prefix.startswith(("fmt", "TRACE: ")), (prefix, line)
            shown[line.split("] ", 1)[0] + "]"] = parse_line(line)
    assert shown["[  586.093538 <    0.000202>]"]["uptime"] == "586.093538"
    for relative in ("[  +0.000202]", "[<    0.000202>]", "[Nov25 16:53]"):
        assert "uptime" not in shown[relative] and "ts" not in shown[relative], relative
    assert shown["[Nov25 16:52]"]["prefix"].startswith("TRACE: mangle:PREROUTING:rule:1")


def test_an_ipv4_line_cut_before_its_protocol_is_not_a_packet() -> None:
    """The kernel prints PROTO= after every IPv4 header it read (a non-first fragment's too).
    The seed's first line cut anywhere from SRC= to PROTO= (a syslog daemon's message size; the
    cut may fall inside a field: 'ID=2' of 'ID=24284') is refused by the grammar and the
    compiled patterns alike, not read as a packet with the fields it kept."""
    line = SEED[0]
    start, end = line.index(" SRC="), line.index(" PROTO=")
    for cut in range(start + 2, end + 1):  # from "S": the MAC alone is a link-only line
        cut_line = line[:cut].rstrip()
        if cut_line.endswith(("SRC=", "DST=")):  # "SRC=" alone: no address, another error
            continue
        with pytest.raises(pp.ParseException):
            parse_line(cut_line)
        assert fast_parse_line(cut_line) is None, cut_line
    assert parse_line(line)["id"] == "24284"
    fragment = line[:end] + " FRAG:185 PROTO=TCP"  # a non-first fragment stops at PROTO=
    fragment = fragment.replace(" DF", " MF")
    assert parse_line(fragment)["frag"] == "185"
    # a non-first fragment of AH prints nothing after FRAG: (the format reference, §2.6)
    ah = line[:end].replace(" DF", " MF") + " FRAG:185"
    assert parse_line(ah)["frag"] == "185" and fast_parse_line(ah) is not None
