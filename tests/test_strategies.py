"""The hypothesis strategies write lines of the kernel's shape, and their `expected` dicts are true.

A small reference reader, written independently from tests/strategies.py with the regular
expressions of the format reference (§2, §3, §4.1, §5.1, §8, §9), is first checked against the
real captures in samples/formats/, then used to read every generated line back: the fields it
finds must be exactly the fields the strategy says it wrote.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import header, netfilter_body, netfilter_line

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "formats"
FAST = settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])

IFACE = r"[^\s/:]{0,15}"
V4 = r"\d{1,3}(?:\.\d{1,3}){3}"
V6 = r"[0-9a-f]{4}(?::[0-9a-f]{4}){7}"
LINK = (
    r"(?:PHYSIN=(?P<physin>\S+) )?(?:PHYSOUT=(?P<physout>\S+) )?"
    r"(?:MAC=(?P<mac>[0-9a-f]{2}(?::[0-9a-f]{2})*)? "
    r"|MACSRC=(?P<macsrc>\S+) MACDST=(?P<macdst>\S+) MACPROTO=(?P<macproto>[0-9a-f]{4}) )?"
)
HEAD = re.compile(rf"(?P<prefix>.*?)IN=(?P<in_iface>{IFACE}) OUT=(?P<out_iface>{IFACE}) {LINK}")
IPV4 = (
    rf"SRC=(?P<src>{V4}) DST=(?P<dst>{V4}) LEN=(?P<len>\d+) TOS=0x(?P<tos>[0-9A-F]{{2}}) "
    r"PREC=0x(?P<prec>[0-9A-F]{2}) TTL=(?P<ttl>\d+) ID=(?P<id>\d+) "
    r"(?P<ce>CE )?(?P<df>DF )?(?P<mf>MF )?(?:FRAG:(?P<frag>\d+) )?(?:OPT \((?P<ipopt>[0-9A-F]+)\) )?"
)
IPV6 = (
    rf"SRC=(?P<src>{V6}) DST=(?P<dst>{V6}) LEN=(?P<len>\d+) TC=(?P<tc>\d+) "
    r"HOPLIMIT=(?P<ttl>\d+) FLOWLBL=(?P<flowlbl>\d+) "
    r"(?P<ext>(?:OPT \( [^)]*\) |FRAG:\d+ (?:INCOMPLETE )?ID:[0-9a-f]{8} )*)"
)
V6_FRAGMENT = re.compile(r"FRAG:(\d+) (INCOMPLETE )?ID:")
V6_SPI = re.compile(r"(?:AH|ESP) SPI=0x([0-9a-f]+)")
TAIL = (
    r"(?:PROTO=(?P<proto>\w+) (?P<l4>.*?))?"
    r"(?:UID=(?P<uid>\d+) GID=(?P<gid>\d+) )?(?:MARK=0x(?P<mark>[0-9a-f]+) )?"
)
OUTER = {4: re.compile(IPV4 + TAIL), 6: re.compile(IPV6 + TAIL)}
QUOTED = {4: re.compile(IPV4 + r"PROTO=(?P<proto>\w+) (?P<l4>.*)"), 6: re.compile(IPV6 + TAIL)}
CUT = r"INCOMPLETE \[(?P<incomplete>\d+) bytes\] "
L4 = {
    "tcp": re.compile(
        rf"(?:{CUT}|SPT=(?P<sport>\d+) DPT=(?P<dport>\d+) (?:SEQ=(?P<seq>\d+) ACK=(?P<ack>\d+) )?"
        r"WINDOW=(?P<window>\d+) RES=0x(?P<res>[0-9a-f]{2}) "
        r"(?P<flags>(?:(?:AE|CWR|ECE|URG|ACK|PSH|RST|SYN|FIN) )*)URGP=(?P<urgp>\d+) "
        r"(?:OPT \((?P<tcpopt>[0-9A-F]+)\) )?)?"
    ),
    "udp": re.compile(rf"(?:{CUT}|SPT=(?P<sport>\d+) DPT=(?P<dport>\d+) LEN=(?P<udplen>\d+) )?"),
    "icmp": re.compile(
        rf"(?:{CUT}|TYPE=(?P<icmp_type>\d+) CODE=(?P<icmp_code>\d+) "
        r"(?:ID=(?P<icmp_id>\d+) SEQ=(?P<icmp_seq>\d+) |PARAMETER=(?P<parameter>\d+) "
        r"|POINTER=(?P<pointer>[0-9a-f]{8}) )?"
        rf"(?:GATEWAY=(?P<gateway>{V4}) )?"
        r"(?:INCOMPLETE \[(?P<cut>\d+) bytes\] |\[(?P<quote>.*)\] (?:MTU=(?P<mtu>\d+) )?)?)?"
    ),
    "spi": re.compile(r"(?:SPI=0x(?P<spi>[0-9a-f]+) )?"),
    "none": re.compile(""),
}
L4["udplite"], L4["icmpv6"], L4["ah"], L4["esp"] = L4["udp"], L4["icmp"], L4["spi"], L4["spi"]
KERNEL_FLAG_ORDER = ("AE", "CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
TRACE = re.compile(r"TRACE: ([^:]+):([^:]+):(rule|return|policy):(\d+) ")
ARP = re.compile(
    rf"(?P<prefix>.*?)IN=(?P<in_iface>{IFACE}) OUT=(?P<out_iface>{IFACE}) "
    r"(?:MACSRC=(?P<macsrc>\S+) MACDST=(?P<macdst>\S+) MACPROTO=(?P<macproto>0806) )?"
    r"ARP HTYPE=(?P<arp_htype>\d+) PTYPE=0x(?P<arp_ptype>[0-9a-f]{4}) OPCODE=(?P<arp_opcode>\d+)"
    rf"(?: MACSRC=(?P<arp_macsrc>\S+) IPSRC=(?P<arp_ipsrc>{V4}) "
    rf"MACDST=(?P<arp_macdst>\S+) IPDST=(?P<arp_ipdst>{V4}))?"
)
HEX_FIELDS = {"tos", "prec", "res", "mark", "spi", "arp_ptype"}
TEXT_FIELDS = {
    "prefix", "in_iface", "out_iface", "physin", "physout", "mac", "macsrc", "macdst",
    "macproto", "src", "dst", "ipopt", "tcpopt", "flags", "gateway", "arp_macsrc", "arp_ipsrc",
    "arp_macdst", "arp_ipdst",
}  # fmt: skip
HEADER_SHAPES = {
    "rfc3164-uptime": r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?P<host>\S+) kernel: "
    r"\[\s*(?P<uptime>\d+\.\d{6})\] ",
    "rfc3164": r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?P<host>\S+) kernel: ",
    "rsyslog-precise": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d (?P<host>\S+) "
    r"kernel: \[\s*(?P<uptime>\d+\.\d{6})\] ",
    "rfc5424": r"<(?P<level>\d+)>1 \S+ (?P<host>\S+) kernel - - - \[\s*(?P<uptime>\d+\.\d{6})\] ",
    "syslog-ng-iso": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d (?P<host>\S+) kernel: ",
    "syslog-ng-protocol": r"<(?P<level>\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d "
    r'(?P<host>\S+) kernel - \d+ \[meta sequenceId="\d+"\] ',
    "journal-short": r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d (?P<host>\S+) kernel: ",
    "journal-short-iso": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} (?P<host>\S+) kernel: ",
    "journal-short-precise": r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d\.\d{6} (?P<host>\S+) kernel: ",
    "journal-short-iso-precise": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4} (?P<host>\S+) "
    r"kernel: ",
    "journal-short-monotonic": r"\[\s*(?P<uptime>\d+\.\d{6})\] (?P<host>\S+) kernel: ",
    "journal-short-full": r"[A-Z][a-z]{2} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC (?P<host>\S+) kernel: ",
    "journal-short-unix": r"\d+\.\d{6} (?P<host>\S+) kernel: ",
    "dmesg": r"\[\s*(?P<uptime>\d+\.\d{6})\] ",
    "dmesg-ctime": r"\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\] ",
    "dmesg-iso": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{6}[+-]\d\d:\d\d ",
    "dmesg-raw": r"<(?P<level>\d+)>\[\s*(?P<uptime>\d+\.\d{6})\] ",
    "kmsg": r"(?P<level>\d+),\d+,(?P<usec>\d+),[-c];",
    "bare": r"",
}
# Real captures and the header shape each one is written in.
SAMPLE_HEADERS = {
    "rsyslog-traditional.log": "rfc3164-uptime",
    "syslog-ng-default.log": "rfc3164",
    "rsyslog-highprecision.log": "rsyslog-precise",
    "rsyslog-rfc5424.log": "rfc5424",
    "syslog-ng-iso.log": "syslog-ng-iso",
    "syslog-ng-syslog-protocol.log": "syslog-ng-protocol",
    "journal-short.log": "journal-short",
    "journal-short-iso.log": "journal-short-iso",
    "journal-short-precise.log": "journal-short-precise",
    "journal-short-iso-precise.log": "journal-short-iso-precise",
    "journal-short-monotonic.log": "journal-short-monotonic",
    "journal-short-full.log": "journal-short-full",
    "journal-short-unix.log": "journal-short-unix",
    "kmsg-records.txt": "kmsg",
    "ipv4-tcp-basic.log": "dmesg",
    "journal-cat.log": "bare",
}
# Real dmesg-layout captures of IPv4/IPv6 lines (those ending in TRUNCATED are left out).
PLAIN_SAMPLES = (
    "ipv4-tcp-basic.log",
    "ipv4-tcp-options.log",
    "ipv4-macdecode.log",
    "ipv4-icmp-echo.log",
    "ipv4-nat-forward.log",
    "ipv4-crafted.log",
    "icmp-error.log",
    "uid-nonroot.log",
    "conntrack-invalid.log",
    "loopback-tun.log",
    "bridge-br-netfilter.log",
    "ipv6.log",
    "ipv6-exthdr-crafted.log",
    "trace-legacy.log",
)


def convert(key: str, value: str) -> Any:
    """A captured text value in the hop table's convention."""
    if key in HEX_FIELDS:
        return int(value, 16)
    if key in TEXT_FIELDS:
        return value
    return int(value)


def ip_fields(family: int, rest: str, quoted: bool = False) -> dict[str, Any] | None:
    """Read `SRC=...` to the end (or a quoted packet) with the reference regexes; None if no match."""
    found = (QUOTED if quoted else OUTER)[family].fullmatch(rest)
    if found is None:
        return None
    groups = {k: v for k, v in found.groupdict().items() if v is not None}
    l4 = groups.pop("l4", "")
    fields: dict[str, Any] = {"family": family}
    ext = groups.pop("ext", "")
    if not quoted:
        fields |= extension_fields(ext)
    if family == 4:
        fields |= {flag: flag in groups for flag in ("ce", "df", "mf")}
    for key, value in groups.items():
        if key not in ("ce", "df", "mf", "proto"):
            fields[key] = convert(key, value)
    if family == 4 and "frag" in fields:
        fields["frag"] *= 8  # IPv4 prints 8-byte units
    for key in ("src", "dst"):
        fields[key] = ipaddress.ip_address(fields[key]).compressed
    if "proto" not in groups:
        return fields
    proto = groups["proto"].lower()
    fields["proto"] = proto
    inner = l4_fields(family, proto, l4)
    return None if inner is None else fields | inner


def l4_fields(family: int, proto: str, l4: str) -> dict[str, Any] | None:
    """The transport fields of one L4 section (recursing once into an ICMP error's quote)."""
    found = L4.get(proto, L4["none"]).fullmatch(l4)
    if found is None:
        return None
    groups = {k: v for k, v in found.groupdict().items() if v is not None}
    quote = groups.pop("quote", None)
    if "cut" in groups:
        groups["incomplete"] = groups.pop("cut")
    if "pointer" in groups:
        groups["parameter"] = str(int(groups.pop("pointer"), 16))
    flags = groups.pop("flags", "").split()
    fields = {key: convert(key, value) for key, value in groups.items()}
    if flags:
        assert flags == [f for f in KERNEL_FLAG_ORDER if f in flags], "flags not in kernel order"
        fields["flags"] = " ".join(flags)
    if quote is not None:
        inner = ip_fields(family, quote, quoted=True)
        if inner is None:
            return None
        fields |= quoted_fields(inner)
    return fields


def extension_fields(ext: str) -> dict[str, Any]:
    """IPv6 extension headers: the fragment's offset (bytes) and M bit, an AH/ESP SPI."""
    fields: dict[str, Any] = {}
    fragment = V6_FRAGMENT.search(ext)
    if fragment:
        fields |= {"frag": int(fragment.group(1)), "mf": fragment.group(2) is not None}
    spi = V6_SPI.search(ext)
    if spi:
        fields["spi"] = int(spi.group(1), 16)
    return fields


def quoted_fields(inner: dict[str, Any]) -> dict[str, Any]:
    """The quoted packet's fields under their `inner_` column names."""
    names = ("src", "dst", "proto", "sport", "dport", "id", "len", "ttl", "icmp_id", "icmp_seq")
    fields = {f"inner_{key}": inner[key] for key in names if key in inner}
    if "icmp_type" in inner:
        fields["inner_icmp_type"] = inner["icmp_type"]
    return fields


def link_fields(groups: dict[str, str | None]) -> dict[str, Any]:
    """Interfaces, PHYSIN/PHYSOUT and the MAC token, derived as the hop table derives them."""
    fields: dict[str, Any] = {"in_iface": groups["in_iface"] or None}
    fields["out_iface"] = groups["out_iface"] or None
    for key in ("physin", "physout", "macsrc", "macdst", "macproto"):
        if groups.get(key):
            fields[key] = groups[key]
    mac = groups.get("mac")
    if mac:
        fields["mac"] = mac
        octets = mac.split(":")
        if len(octets) == 14:
            fields |= {
                "macdst": ":".join(octets[:6]),
                "macsrc": ":".join(octets[6:12]),
                "macproto": "".join(octets[12:]),
            }
    return fields


def read_body(text: str) -> dict[str, Any] | None:
    """The reference reader: every field of a netfilter message, or None if it is not one."""
    fields: dict[str, Any] = {}
    trace = TRACE.match(text)
    if trace:
        table, chain, kind, rulenum = trace.groups()
        fields = {"trace_table": table, "trace_chain": chain, "trace_type": kind}
        fields["trace_rulenum"] = int(rulenum)
    arp = ARP.fullmatch(text)
    if arp:
        groups = {k: v for k, v in arp.groupdict().items() if v is not None}
        found = {k: convert(k, v) for k, v in groups.items() if k.startswith("arp_")}
        return {**fields, **prefix_field(groups["prefix"]), **link_fields(groups), **found,
                "kind": "arp"}  # fmt: skip
    text = text if text.endswith(" ") else text + " "  # the trailing space may be stripped
    head = HEAD.match(text)
    if head is None:
        return None
    rest = text[head.end() :]
    ip = ip_fields(6 if re.match(rf"SRC={V6} ", rest) else 4, rest)
    if ip is None:
        return None
    link = link_fields(head.groupdict())
    return fields | prefix_field(head.group("prefix")) | link | ip | {"kind": "ip"}


def prefix_field(prefix: str) -> dict[str, Any]:
    """The prefix verbatim, or nothing when it is empty."""
    return {"prefix": prefix} if prefix else {}


def read_header(text: str, fmt: str) -> tuple[dict[str, Any], str] | None:
    """(header fields, the rest of the line) for a header written in `fmt`."""
    found = re.match(HEADER_SHAPES[fmt], text)
    if found is None:
        return None
    groups = {k: v for k, v in found.groupdict().items() if v is not None}
    fields: dict[str, Any] = {}
    if "host" in groups:
        fields["host"] = groups["host"]
    if "uptime" in groups:
        fields["uptime"] = float(groups["uptime"])
    if "usec" in groups:
        fields["uptime"] = int(groups["usec"]) / 1_000_000
    if "level" in groups:
        fields["level"] = int(groups["level"]) & 7
    return fields, text[found.end() :]


def sample_lines(name: str) -> list[str]:
    """The netfilter lines of one sample file (lines holding the `IN=... OUT=` anchor)."""
    lines = (SAMPLES / name).read_text().splitlines()
    return [line for line in lines if " OUT=" in line and not line.startswith("#")]


def body_of_dmesg_line(line: str) -> str:
    """The kernel message of a `[  uptime] text` sample line."""
    return re.sub(r"^\[\s*\d+\.\d{6}\] ", "", line)


# ---- the reference reader is right about real kernel output -------------------------------------
@pytest.mark.parametrize("name", PLAIN_SAMPLES)
def test_reference_reader_accepts_every_plain_sample_line(name: str) -> None:
    lines = [body_of_dmesg_line(line) for line in sample_lines(name)]
    plain = [line for line in lines if "TRUNCATED" not in line]
    assert plain, name
    unread = [line for line in plain if read_body(line) is None]
    assert unread == []


def test_reference_reader_fields_of_a_real_icmp_error() -> None:
    line = next(
        body_of_dmesg_line(line)
        for line in sample_lines("icmp-error.log")
        if "fmtA icmp-in:" in line and "MTU=1280" in line
    )
    fields = read_body(line)
    assert fields is not None
    assert fields["prefix"] == "fmtA icmp-in: "
    assert fields["src"] == "198.51.100.1"
    assert (fields["icmp_type"], fields["icmp_code"], fields["mtu"]) == (3, 4, 1280)
    assert (fields["inner_src"], fields["inner_dst"]) == ("198.51.100.10", "203.0.113.20")
    assert (fields["inner_proto"], fields["inner_len"], fields["inner_icmp_id"]) == (
        "icmp",
        1428,
        6487,
    )


def test_reference_reader_fields_of_a_real_ipv6_line() -> None:
    line = next(
        body_of_dmesg_line(line) for line in sample_lines("ipv6.log") if "fmt6R fwd:" in line
    )
    fields = read_body(line)
    assert fields is not None
    assert (fields["src"], fields["dst"]) == ("fd00:a::10", "fd00:b::20")
    assert (fields["family"], fields["ttl"], fields["proto"]) == (6, 63, "icmpv6")
    assert fields["macproto"] == "86dd"


def test_reference_reader_fields_of_real_ipv6_extension_headers() -> None:
    lines = [body_of_dmesg_line(line) for line in sample_lines("ipv6-exthdr-crafted.log")]
    first = read_body(next(line for line in lines if "OPT ( FRAG:0 INCOMPLETE" in line))
    later = read_body(next(line for line in lines if "FRAG:952 ID:" in line))
    esp = read_body(next(line for line in lines if "ESP SPI=" in line))
    pointer = read_body(next(line for line in lines if "POINTER=00000028" in line))
    assert first is not None and later is not None and esp is not None and pointer is not None
    assert (first["frag"], first["mf"], first["dport"], first["udplen"]) == (0, True, 53, 1508)
    assert (later["frag"], later["mf"], later["proto"]) == (952, False, "udp")
    assert "dport" not in later
    assert esp["spi"] == 0xC0FFEE and "proto" not in esp
    assert (pointer["parameter"], pointer["inner_proto"]) == (40, "200")


def test_reference_reader_fields_of_real_arp_and_trace_lines() -> None:
    arp = read_body(body_of_dmesg_line(sample_lines("arp-nft.log")[-1]))
    trace = read_body(body_of_dmesg_line(sample_lines("trace-legacy.log")[0]))
    assert arp is not None and trace is not None
    assert arp["kind"] == "arp" and arp["arp_ptype"] == 0x0800
    assert "arp_opcode" in arp and arp["in_iface"]
    assert (trace["trace_table"], trace["trace_chain"], trace["trace_type"]) == (
        "raw",
        "PREROUTING",
        "policy",
    )
    assert trace["trace_rulenum"] == 2 and trace["seq"] == 1287331270


@pytest.mark.parametrize(("name", "fmt"), sorted(SAMPLE_HEADERS.items()))
def test_header_shapes_match_real_captures(name: str, fmt: str) -> None:
    lines = sample_lines(name)
    assert lines, name
    for line in lines:
        read = read_header(line, fmt)
        assert read is not None, line
        if "MAC source = " not in line:  # ebtables' own format (§4.4) is not a nf_log body
            assert read_body(read[1]) is not None, line


# ---- the strategies write what they say they wrote ----------------------------------------------
@FAST
@given(netfilter_body())
def test_every_body_reads_back_as_its_expected_fields(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    assert "\n" not in text
    assert read_body(text) == expected


@FAST
@given(netfilter_body())
def test_every_body_is_anchored_where_its_prefix_ends(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    prefix = expected.get("prefix", "")
    anchor = re.search(r"IN=(\S*) OUT=(\S*) (?=PHYSIN=|PHYSOUT=|MAC=|MACSRC=|SRC=|ARP |$)", text)
    assert anchor is not None and anchor.start() == len(prefix)
    assert len(prefix) <= 127
    for name in (anchor.group(1), anchor.group(2)):
        assert len(name) <= 15 and not re.search(r"[\s/:]", name)


@FAST
@given(netfilter_body())
def test_ipv6_addresses_are_printed_uncompressed(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    if expected.get("family") == 6:
        printed = re.search(r" SRC=(\S+) DST=(\S+) ", " " + text[len(expected.get("prefix", "")) :])
        assert printed is not None
        assert all(re.fullmatch(V6, address) for address in printed.groups())
        compressed = [ipaddress.IPv6Address(a).compressed for a in printed.groups()]
        assert compressed == [expected["src"], expected["dst"]]


@FAST
@given(header())
def test_every_header_has_its_format_shape(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    read = read_header(text, expected["format"])
    assert read is not None and read[1] == ""
    fields, _ = read
    assert fields == {k: expected[k] for k in ("host", "uptime", "level") if k in expected}
    assert_timestamp(text, expected)


def assert_timestamp(text: str, expected: dict[str, Any]) -> None:
    """The wall-clock time written in the header is the expected `ts`."""
    fmt = expected["format"]
    if "ts" not in expected:
        assert not re.match(r"\d{4}-|[A-Z][a-z]{2} ", text)
        return
    ts = expected["ts"]
    if fmt in ("rfc3164", "rfc3164-uptime", "journal-short", "journal-short-precise"):
        written = dt.datetime.strptime(f"{ts.year} {text[:15]}", "%Y %b %d %H:%M:%S")
        assert written == ts.replace(microsecond=0)
        assert expected["year_in_text"] is False
    elif fmt == "journal-short-unix":
        assert dt.datetime.fromtimestamp(float(text.split()[0]), dt.UTC) == ts
    elif fmt == "journal-short-full":
        assert dt.datetime.strptime(text[4:23], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC) == ts
    elif fmt == "dmesg-ctime":
        assert dt.datetime.strptime(text[1:25], "%a %b %d %H:%M:%S %Y") == ts
    else:
        stamp = text.split()[1] if text.startswith("<") else text.split()[0]
        assert dt.datetime.fromisoformat(stamp) == ts


@FAST
@given(netfilter_line())
def test_every_line_is_a_header_then_a_body(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    read = read_header(text, expected["format"])
    assert read is not None
    header_fields, body = read
    body_fields = read_body(body)
    assert body_fields is not None
    expected_header = {k: expected[k] for k in ("host", "uptime", "level") if k in expected}
    assert header_fields == expected_header
    fields = {k: v for k, v in expected.items() if k not in ("format", "ts", "year_in_text")}
    assert header_fields | body_fields == fields


@FAST
@given(netfilter_body())
def test_trace_lines_carry_sequence_numbers(case: tuple[str, dict[str, Any]]) -> None:
    text, expected = case
    if "trace_table" in expected:
        assert TRACE.match(text)
        assert expected["prefix"] == TRACE.match(text).group(0)
        if expected.get("proto") == "tcp" and "sport" in expected:
            assert "seq" in expected and " SEQ=" in text  # TRACE logs with flags 0x0f
