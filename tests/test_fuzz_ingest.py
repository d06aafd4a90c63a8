"""Fuzz (issue 9): over 20,000 mutated real lines through the real ingest, and the commands after.

Real lines from samples/ (the seed article, every format sample, the labs' captures) are mutated
by a seeded generator: numbers changed, lengthened and made huge, lines cut, bytes inserted
(control characters, non-ASCII, invalid UTF-8, "=", brackets), tokens duplicated, swapped,
moved and dropped, values moved to another key, and a few lines cut at every position. The
ingest must not raise; every line read must be a hop, a rejected line or a skipped one; no
stored value may lie outside what the kernel can print (the bounds are stated here, apart from
the code's); and `hops`, `flows --all`, `journey` and `rejected` must work on the result.

LOGPATH_FUZZ_SEED=<n> runs another seed (the default one runs in CI).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.ingest import ingest
from logpath.parse import is_candidate
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SEED = int(os.environ.get("LOGPATH_FUZZ_SEED", "20251202"))
FILES = 4
LINES_PER_FILE = 5_200  # mutated lines; each file also gets two lines cut at every position

# Text files of lines (not journald's JSON or export records: those are whole-file formats).
SOURCES = sorted(
    p
    for p in [*SAMPLES.glob("formats/*"), *SAMPLES.glob("lab/**/*"), SAMPLES / "seed" / "syslog"]
    if p.is_file()
    and p.suffix in {".log", ".txt", ".dmesg", ".kmsg", ""}
    and "export" not in p.name
)

INSERTS = [
    "\x00", "\x01", "\t", "\r", "\x0b", "\x0c", "\x1b[2J", "\x1b]0;title\x07", "\x1c", "\x7f",
    "\x85", "\u2028", "\ufeff", "é", "€", "\U0001f600", "=", "==", " ", "  ", "[", "]", ":",
    "IN=", " OUT=", "0x", "-", ",", "(", ")", "SRC=", " PROTO=TCP", "#011",
]  # fmt: skip
INVALID_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80abc"]
NUMBERS = r"\d+"
KEY_VALUE = re.compile(r"\b([A-Z]+)=([^ \]]+)")


def _digits(rng: random.Random, line: str) -> str:
    runs = list(re.finditer(NUMBERS, line))
    if not runs:
        return line
    run = rng.choice(runs)
    old = run.group()
    new = rng.choice(
        [
            str(rng.randrange(10 ** len(old))),  # another value of the same width
            old + str(rng.randrange(10)),  # one digit longer
            str(rng.randrange(10 ** rng.randrange(1, 30))),  # anything up to 29 digits
            "0" + old,  # zero-padded
            str(2 ** rng.choice([7, 8, 12, 13, 15, 16, 20, 31, 32, 63, 64]) + rng.randrange(-1, 2)),
        ]
    )
    return line[: run.start()] + new + line[run.end() :]


def _cut(rng: random.Random, line: str) -> str:
    return line[: rng.randrange(len(line) + 1)]


def _insert(rng: random.Random, line: str) -> str:
    at = rng.randrange(len(line) + 1)
    return line[:at] + rng.choice(INSERTS) + line[at:]


def _replace_char(rng: random.Random, line: str) -> str:
    if not line:
        return line
    at = rng.randrange(len(line))
    return line[:at] + chr(rng.randrange(32, 127)) + line[at + 1 :]


def _tokens(rng: random.Random, line: str) -> str:
    words = line.split(" ")
    i, j = rng.randrange(len(words)), rng.randrange(len(words))
    how = rng.randrange(4)
    if how == 0:  # duplicate
        words.insert(j, words[i])
    elif how == 1:  # swap
        words[i], words[j] = words[j], words[i]
    elif how == 2:  # drop
        del words[i]
    else:  # move
        words.insert(j, words.pop(i))
    return " ".join(words)


def _move_value(rng: random.Random, line: str) -> str:
    """One key's value given to another key (an IPv6 address as TTL, a MAC as SRC ...)."""
    pairs = list(KEY_VALUE.finditer(line))
    if len(pairs) < 2:
        return line
    target, donor = rng.sample(pairs, 2)
    return line[: target.start(2)] + donor.group(2) + line[target.end(2) :]


ADDRESS = re.compile(r"(?<=SRC=)[^ ]+|(?<=DST=)[^ ,]+|(?<=GATEWAY=)[^ ]+")


def _address(rng: random.Random, line: str) -> str:
    """An address the grammar's shape allows but no kernel prints."""
    found = list(ADDRESS.finditer(line))
    if not found:
        return line
    where = rng.choice(found)
    groups = [f"{rng.randrange(16**4):04x}" for _ in range(8)]
    new = rng.choice(
        [
            ":".join(groups[: rng.randrange(3, 8)]),  # too few groups
            f"{groups[0]}::{groups[1]}::{groups[2]}",  # two gaps
            f"{groups[0]}:::",
            ".".join(str(rng.randrange(256)) for _ in range(3)) + f".{rng.randrange(256, 1000)}",
            f"10.0.0.0{rng.randrange(10)}",  # a leading zero
        ]
    )
    return line[: where.start()] + new + line[where.end() :]


def _case(rng: random.Random, line: str) -> str:
    return rng.choice([line.upper(), line.lower(), line.swapcase()])


# Numbers changed most often: most of them make a value check reject the line (cheap), where a
# broken structure makes pyparsing say why (about a millisecond a line).
MUTATIONS: list[Callable[[random.Random, str], str]] = [
    _digits, _digits, _digits, _digits, _digits, _address, _cut, _insert, _insert, _replace_char,
    _tokens, _tokens, _move_value, _case,
]  # fmt: skip


def real_lines() -> tuple[list[str], list[str]]:
    """Every line of the sources, and the netfilter ones among them."""
    lines = [line for path in SOURCES for line in path.read_text().splitlines()]
    return lines, [line for line in lines if is_candidate(line)]


def mutated_file(rng: random.Random, n: int) -> list[bytes]:
    """One file's lines: mostly mutated netfilter lines, some others, a few cut everywhere."""
    every, netfilter = real_lines()
    out = [netfilter[n].encode()]  # a plain first line: the file is read as text lines
    for _ in range(LINES_PER_FILE):
        line = rng.choice(netfilter) if rng.random() < 0.9 else rng.choice(every)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            line = rng.choice(MUTATIONS)(rng, line)
        data = line.encode()
        if rng.random() < 0.02:
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(INVALID_UTF8) + data[at:]
        out.append(data)
    for line in rng.sample(netfilter, 2):
        out.extend(line[:end].encode() for end in range(len(line) + 1))
    return out


# What the kernel can print in each stored column (nf_log_syslog.c, the format reference), stated
# apart from logpath's own limits so that the test checks them rather than repeats them.
U8, U16, U32 = 255, 65535, 2**32 - 1
BOUNDS: dict[str, int] = {
    "level": 7, "len": U16 + 40, "tos": U8, "prec": U8, "ttl": U8, "id": U16, "tc": U8,
    "flowlbl": 2**20 - 1, "frag": U16, "sport": U16, "dport": U16, "seq": U32, "ack": U32,
    "window": U16, "res": U8, "urgp": U16, "udplen": U16, "icmp_type": U8, "icmp_code": U8,
    "icmp_id": U16, "icmp_seq": U16, "mtu": U32, "parameter": U32, "spi": U32,
    "incomplete": U16, "uid": U32, "gid": U32, "mark": U32, "inner_sport": U16,
    "inner_dport": U16, "inner_id": U16, "inner_len": U16 + 40, "inner_ttl": U8,
    "inner_icmp_type": U8, "inner_icmp_id": U16, "inner_icmp_seq": U16, "trace_rulenum": U32,
    "arp_htype": U16, "arp_ptype": U16, "arp_opcode": U16, "repeated": 2**31 - 1,
}  # fmt: skip
IPV4_ONLY = {"len": U16, "mtu": U16, "frag": 8191 * 8}  # IPv4 prints these narrower
ADDRESSES = ["src", "dst", "inner_src", "inner_dst", "gateway", "arp_ipsrc", "arp_ipdst"]
MACS = ["macsrc", "macdst", "arp_macsrc", "arp_macdst"]
INTERFACES = ["in_iface", "out_iface", "physin", "physout"]


def check_bounds(table: pa.Table) -> None:
    frame = table.to_pandas()
    for name, high in BOUNDS.items():
        values = frame[name].dropna()
        assert values.between(0, high).all(), (name, values[~values.between(0, high)].head())
    v4 = frame["family"] == 4
    for name, high in IPV4_ONLY.items():
        values = frame.loc[v4, name].dropna()
        assert values.between(0, high).all(), (name, values[values > high].head())
    stamps = frame["ts"].dropna()
    assert stamps.between(
        pd.Timestamp("1677-09-22", tz="UTC"), pd.Timestamp("2262-04-11", tz="UTC")
    ).all()
    assert frame["uptime"].dropna().between(0, 2**63 / 1e9).all()
    for name in ADDRESSES:
        for value in frame[name].dropna().unique():
            # parses, and is stored in its one normal form (IPv6 compressed)
            assert str(ipaddress.ip_address(value)) == value, (name, value)
    for name in MACS:
        assert frame[name].dropna().str.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}").all()
    assert frame["mac"].dropna().str.fullmatch(r"([0-9a-f]{2}(:[0-9a-f]{2})*)?").all()
    for name in INTERFACES:
        assert (frame[name].dropna().str.encode("utf-8").str.len() <= 15).all(), name
    for name in ("physin", "physout"):
        assert (frame[name].dropna() != "").all(), name


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.stderr, result.exception)
    return result.stdout


def test_mutated_lines_are_each_a_hop_a_rejection_or_a_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGPATH_WORKERS", "1")  # one block a file: parsed in this process anyway
    rng = random.Random(SEED)
    store = Store(tmp_path / "store")
    written: dict[str, list[bytes]] = {}
    mutated = 0
    for n in range(FILES):
        path = tmp_path / f"kern{n}.log"
        lines = mutated_file(rng, n)
        path.write_bytes(b"".join(line + b"\n" for line in lines))
        written[str(path)] = lines
        mutated += LINES_PER_FILE
        summary = ingest([str(path)], store, year=2026)
        assert summary.errors == [], summary.errors
        assert summary.lines == len(lines), path
        assert summary.lines == summary.hops + summary.rejected + summary.skipped, path
    assert mutated >= 20_000

    table = store.read_table()
    rejected = store.read_rejected()
    for source, lines in written.items():
        mine = pc.equal(table["source"].cast(pa.string()), source)
        hop_lines = table.filter(mine).select(["lineno", "raw"]).to_pylist()
        rejected_lines = set(rejected.loc[rejected["source"] == source, "lineno"])
        stored = {hop["lineno"] for hop in hop_lines}
        assert len(stored) == len(hop_lines) and not stored & rejected_lines, source
        for hop in hop_lines:  # a hop keeps its line as it was read
            assert hop["raw"] == lines[hop["lineno"] - 1].decode("utf-8").rstrip("\r"), hop
    check_bounds(table)

    hops = json.loads(cli("hops", "--store", str(store.path), "--json"))
    assert len(hops) == table.num_rows
    flows = json.loads(cli("flows", "--store", str(store.path), "--all", "--json"))
    assert flows, "the real lines left unchanged make flows"
    for flow in flows[:1]:
        journey = json.loads(cli("journey", str(flow["id"]), "--store", str(store.path), "--json"))
        assert journey["flow"]["id"] == flow["id"]
    listed = json.loads(cli("rejected", "--store", str(store.path), "--json"))
    assert len(listed) == len(rejected) > 0
