"""One bad line costs one line (issue 9), through the CLI: a value no kernel prints is rejected
with its file, line, column, what was expected there and what was found, and the lines around it
are stored; a value the kernel does print is stored whatever its width; a line dated where pandas
cannot go never reaches the store, so every later command still works.

Every bad line is a real sample line (samples/) with one value changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from logpath.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
runner = CliRunner()


def sample(name: str, lineno: int) -> str:
    return (SAMPLES / name).read_text().splitlines()[lineno - 1]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ingest(store: Path, *paths: Path) -> dict[str, object]:
    code, out, err = run("ingest", *map(str, paths), "--store", str(store), "--json")
    assert code == 0, err
    summary: dict[str, object] = json.loads(out)
    return summary


def listed(command: str, store: Path, *args: str) -> list[dict[str, object]]:
    code, out, err = run(command, "--store", str(store), "--json", *args)
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def changed(line: str, old: str, new: str) -> str:
    assert line.count(old) == 1, (old, line)
    return line.replace(old, new)


SEED_SYN = sample("seed/syslog", 1)  # RFC 3164 header, [uptime], PHYSIN, MAC, TCP SYN
SEED_FORWARD = sample("seed/syslog", 2)  # the same packet at FORWARD: PHYSIN and PHYSOUT
IPV6_ECHO = sample("formats/ipv6.log", 3)
IPV6_TOO_BIG = sample("formats/ipv6.log", 10)  # ICMPv6 packet too big, MTU=1280
IPV6_FRAGMENT = sample("formats/ipv6-exthdr-crafted.log", 11)  # FRAG:952 ID:00abcdef
ICMP_UNREACHABLE = sample("formats/icmp-error.log", 10)  # quotes a UDP packet
ICMP_FRAG_NEEDED = sample("formats/icmp-error.log", 12)  # MTU=1280
TCP_OPTIONS = sample("formats/ipv4-tcp-options.log", 1)
ARP = sample("formats/arp-nft.log", 1)
REPEATED = sample("formats/rsyslog-printk-time-off-and-repeated.log", 26)
EPOCH = sample("formats/journal-short-unix.log", 1)
ISO = sample("formats/rsyslog-highprecision.log", 2)

CASES = [
    # (id, the real line, the value as printed, the value offered, expected, found)
    ("ipv6-five-groups", IPV6_ECHO, "SRC=fd00:000a:0000:0000:0000:0000:0000:0010",
     "SRC=fd00:0000:0242:ac11:0002", "an IPv6 address", "SRC=fd00:0000:0242:ac11:0002"),
    ("ipv6-two-gaps", IPV6_ECHO, "SRC=fd00:000a:0000:0000:0000:0000:0000:0010",
     "SRC=fd00::1::2", "an IPv6 address", "SRC=fd00::1::2"),
    ("ipv6-three-colons", IPV6_ECHO, "DST=fd00:000b:0000:0000:0000:0000:0000:0020",
     "DST=fd00:::", "an IPv6 address", "DST=fd00:::"),
    ("flow-label-32-bits", IPV6_ECHO, "FLOWLBL=149382", "FLOWLBL=4294967295",
     "a flow label 0-1048575", "FLOWLBL=4294967295"),
    ("repeated-above-int", REPEATED, "repeated 4 times", "repeated 99999999999 times",
     "a repeat count 0-2147483647", "99999999999"),
    ("epoch-in-5138", EPOCH, "1795625687.311694", "99999999999.311694",
     "a date from 1677-09-22 to 2262-04-10", "99999999999.311694"),
    ("iso-in-9999", ISO, "2026-11-25T16:54:58", "9999-11-25T16:54:58",
     "a date from 1677-09-22 to 2262-04-10", "9999-11-25T16:54:58.854084+00:00"),
    ("february-30", SEED_SYN, "Jan 14", "Feb 30", "a date from 1677-09-22 to 2262-04-10",
     "Feb 30 10:08:12"),
    ("uptime-beyond-292-years", SEED_SYN, "[830038.910054]", "[99999999999.910054]",
     "seconds since boot 0-9223372036", "99999999999.910054"),
    ("dport-65536", SEED_SYN, "DPT=12580", "DPT=65536", "a port 0-65535", "DPT=65536"),
    ("sport-70000", SEED_SYN, "SPT=43292", "SPT=70000", "a port 0-65535", "SPT=70000"),
    ("ttl-256", SEED_SYN, "TTL=64", "TTL=256", "a TTL 0-255", "TTL=256"),
    # five digits: the grammar's digit bound used to fail the IPv4 header, reported at SRC=
    ("ttl-99999", SEED_SYN, "TTL=64", "TTL=99999", "a TTL 0-255", "TTL=99999"),
    ("src-999", SEED_SYN, "SRC=172.17.0.2", "SRC=999.17.0.2", "an IPv4 address",
     "SRC=999.17.0.2"),
    ("ip-id-65536", SEED_SYN, "ID=24284", "ID=65536", "an IP ID 0-65535", "ID=65536"),
    ("interface-name-16-bytes", SEED_SYN, "IN=docker0", "IN=docker0123456789",
     "a name of at most 15 bytes", "IN=docker0123456789"),
    ("quoted-port", ICMP_UNREACHABLE, "DPT=9 ", "DPT=70000 ", "a port 0-65535", "DPT=70000"),
    ("quoted-address", ICMP_UNREACHABLE, "[SRC=198.51.100.10", "[SRC=198.51.100.010",
     "an IPv4 address", "SRC=198.51.100.010"),
    ("icmp-mtu-16-bits", ICMP_FRAG_NEEDED, "MTU=1280", "MTU=70000", "an MTU 0-65535",
     "MTU=70000"),
    ("ipv6-fragment-offset", IPV6_FRAGMENT, "FRAG:952", "FRAG:70000",
     "an IPv6 fragment offset 0-65528", "FRAG:70000"),
    ("tcp-options-odd-digits", TCP_OPTIONS, "(020405B40402080ABBA365DF000000000103030A)",
     "(020405B40402080ABBA365DF000000000103030)", "at most 40 bytes of options in hex",
     "020405B40402080ABBA365DF000000000103030"),
    ("arp-address", ARP, "IPSRC=203.0.113.20", "IPSRC=203.0.113.256", "an IPv4 address",
     "IPSRC=203.0.113.256"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "old", "new", "expected", "found"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_value_no_kernel_prints_rejects_its_line_alone(
    tmp_path: Path, line: str, old: str, new: str, expected: str, found: str
) -> None:
    bad = changed(line, old, new)
    log = tmp_path / "kern.log"
    log.write_text(f"{line}\n{bad}\n{line}\n")
    summary = ingest(tmp_path / "s", log)
    assert (summary["hops"], summary["rejected"]) == (2, 1)
    assert summary["rejected_by_reason"] == {f"expected {expected}": 1}
    assert [hop["lineno"] for hop in listed("hops", tmp_path / "s")] == [1, 3]
    (rejected,) = listed("rejected", tmp_path / "s")
    assert rejected == {
        "source": str(log),
        "lineno": 2,
        "column": bad.index(found) + 1,
        "expected": expected,
        "found": found,
        "text": bad,
    }


def test_a_record_cut_after_physout_is_rejected_not_a_hop_of_nulls(tmp_path: Path) -> None:
    cut = SEED_FORWARD[: SEED_FORWARD.index(" MAC=")].removesuffix("vethfcceafa")
    assert cut.endswith(" PHYSOUT=")
    log = tmp_path / "kern.log"
    log.write_text(f"{SEED_FORWARD}\n{cut}\n")
    assert ingest(tmp_path / "s", log)["hops"] == 1
    (rejected,) = listed("rejected", tmp_path / "s")
    assert (rejected["lineno"], rejected["column"], rejected["expected"], rejected["found"]) == (
        2,
        cut.index("PHYSOUT=") + 1,
        "PHYSOUT=<port>",
        "PHYSOUT=",
    )


def test_a_record_cut_inside_the_mac_is_rejected_not_stored_with_half_an_address(
    tmp_path: Path,
) -> None:
    cut = SEED_SYN[: SEED_SYN.index(" SRC=") - 1]  # MAC=...:08:0
    log = tmp_path / "kern.log"
    log.write_text(f"{SEED_SYN}\n{cut}\n")
    assert ingest(tmp_path / "s", log)["hops"] == 1
    (rejected,) = listed("rejected", tmp_path / "s")
    assert (rejected["lineno"], rejected["column"], rejected["expected"], rejected["found"]) == (
        2,
        cut.index("MAC=") + 1,
        "a link-layer header in hex bytes (02:42:ac:...)",
        "MAC=02:42:ac:11:00:03:02:42:ac:11:00:02:08:0",
    )


def test_a_line_the_grammar_refuses_is_reported_where_it_stops_being_one(tmp_path: Path) -> None:
    # the failure inside the optional TCP header used to be reported as "end of line" at SRC=
    bad = changed(SEED_SYN, "DPT=12580 ", "DPT=12580x ")
    log = tmp_path / "kern.log"
    log.write_text(f"{bad}\n{SEED_SYN}\n")
    ingest(tmp_path / "s", log)
    (rejected,) = listed("rejected", tmp_path / "s")
    assert (rejected["column"], rejected["expected"], rejected["found"]) == (
        bad.index("x WINDOW") + 1,
        "SEQ=<n> ACK=<n> or WINDOW=<n> RES=0x<hex>",
        "x",
    )


def test_a_clock_in_nanoseconds_is_read_to_the_microsecond(tmp_path: Path) -> None:
    # pandas read the clock in nanoseconds, which the microsecond column refused: a traceback
    log = tmp_path / "syslog"
    log.write_text(changed(SEED_SYN, "10:08:12 ", "10:08:12.123456789 ") + "\n")
    code, _, err = run("ingest", str(log), "--store", str(tmp_path / "s"), "--year", "2016")
    assert code == 0, err
    assert [hop["ts"] for hop in listed("hops", tmp_path / "s")] == ["2016-01-14T10:08:12.123456Z"]


def test_values_the_kernel_prints_are_stored_whatever_their_width(tmp_path: Path) -> None:
    # ARP's HTYPE and OPCODE are unsigned 16-bit (an int16 column crashed the ingest), the
    # ICMPv6 packet-too-big MTU 32-bit (a 5-digit bound rejected it)
    lines = [
        changed(ARP, "HTYPE=1 ", "HTYPE=65535 "),
        changed(ARP, "OPCODE=2 ", "OPCODE=40000 "),
        changed(IPV6_TOO_BIG, "] MTU=1280", "] MTU=4294967295"),
    ]
    log = tmp_path / "kern.log"
    log.write_text("".join(f"{line}\n" for line in lines))
    summary = ingest(tmp_path / "s", log)
    assert (summary["hops"], summary["rejected"]) == (3, 0)
    htype, opcode, too_big = listed("hops", tmp_path / "s")
    assert (htype["arp_htype"], htype["arp_opcode"]) == (65535, 2)
    assert (opcode["arp_htype"], opcode["arp_opcode"]) == (1, 40000)
    assert (too_big["mtu"], too_big["icmp_type"]) == (4294967295, 2)


def test_a_line_dated_after_2262_does_not_break_the_store(tmp_path: Path) -> None:
    # stored, it made every flows, journey and report on the store fail (OutOfBoundsDatetime)
    seed = (SAMPLES / "seed" / "syslog").read_text()
    future = changed(EPOCH, "1795625687.311694", "99999999999.311694")
    log = tmp_path / "syslog"
    log.write_text(seed + future + "\n")
    store = tmp_path / "s"
    code, out, err = run("ingest", str(log), "--store", str(store), "--year", "2016", "--json")
    assert code == 0, err
    assert (json.loads(out)["hops"], json.loads(out)["rejected"]) == (27, 1)
    flows = listed("flows", store, "--all")
    assert len(flows) == 6
    code, out, err = run("journey", str(flows[0]["id"]), "--store", str(store), "--json")
    assert code == 0, err
    assert json.loads(out)["flow"] == flows[0]
    code, _, err = run(
        "report", "--store", str(store), "--diagrams", "0", "-o", str(tmp_path / "r")
    )
    assert code == 0, err
    assert (tmp_path / "r" / "index.html").exists()


# The columns an earlier logpath wrote narrower (before the ARP and ICMPv6 fields were widened).
OLD_TYPES = {"arp_htype": pa.int16(), "arp_opcode": pa.int16(), "mtu": pa.int32()}


def test_a_store_written_before_the_columns_were_widened_still_reads(tmp_path: Path) -> None:
    store = tmp_path / "s"
    old_log, new_log = tmp_path / "old.log", tmp_path / "new.log"
    old_log.write_text(f"{ARP}\n{ICMP_FRAG_NEEDED}\n")
    ingest(store, old_log)
    (part,) = (store / "hops").glob("*.parquet")
    table = pq.read_table(part)
    old_schema = pa.schema(
        [field.with_type(OLD_TYPES.get(field.name, field.type)) for field in table.schema]
    )
    pq.write_table(table.cast(old_schema), part, compression="zstd")
    assert pq.read_schema(part).field("arp_htype").type == pa.int16()
    new_log.write_text(changed(ARP, "HTYPE=1 ", "HTYPE=65535 ") + "\n")
    ingest(store, new_log)
    hops = listed("hops", store)
    assert [(h["arp_htype"], h["arp_opcode"], h["mtu"]) for h in hops] == [
        (1, 2, None),
        (None, None, 1280),
        (65535, 2, None),
    ]
    # a filtered read goes through the dataset scanner, not the Parquet reader
    assert [h["mtu"] for h in listed("hops", store, "--host", "198.51.100.10")] == [1280]
    assert "icmp" in [flow["proto"] for flow in listed("flows", store, "--all")]
