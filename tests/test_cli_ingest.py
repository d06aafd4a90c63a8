"""`logpath ingest`, `logpath hops`, `logpath rejected` through the CLI, on the seed's lines."""

from __future__ import annotations

import csv
import fcntl
import gzip
import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.cli import ingest as cli_ingest

SEED = Path(__file__).resolve().parent.parent / "samples" / "seed" / "syslog"
runner = CliRunner()


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def ingest(store: Path, *paths: str, input: str | None = None) -> dict[str, int]:
    code, out, err = run(
        "ingest", *paths, "--store", str(store), "--json", "--year", "2016", input=input
    )
    assert code == 0, err
    return json.loads(out)


def hops(store: Path, *args: str) -> list[dict[str, object]]:
    code, out, err = run("hops", "--store", str(store), "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_ingest_seed_then_list_hops(tmp_path: Path) -> None:
    summary = ingest(tmp_path, str(SEED))
    assert {k: summary[k] for k in ("lines", "netfilter_lines", "hops", "rejected", "skipped")} == {
        "lines": 27,
        "netfilter_lines": 27,
        "hops": 27,
        "rejected": 0,
        "skipped": 0,
    }
    listed = hops(tmp_path)
    assert [h["lineno"] for h in listed] == list(range(1, 28))
    fifth = listed[16]  # journey 5's SYN at FORWARD
    assert {
        k: fifth[k]
        for k in (
            "ts",
            "uptime",
            "host",
            "prefix",
            "in",
            "out",
            "physin",
            "physout",
            "src",
            "dst",
            "proto",
            "sport",
            "dport",
            "ttl",
            "id",
            "flags",
            "trace",
            "len",
            "mac",
            "icmp_type",
        )
    } == {
        "ts": "2016-01-14T14:47:17Z",
        "uptime": 846795.243931,
        "host": "pc-baim",
        "prefix": "[TonyBai]-FwdId0Ond0:",
        "in": "docker0",
        "out": "eth0",
        "physin": "vethd9f6465",
        "physout": None,
        "src": "172.17.0.2",
        "dst": "10.10.126.187",
        "proto": "tcp",
        "sport": 55148,
        "dport": 12580,
        "ttl": 63,
        "id": 34160,
        "flags": ["SYN"],
        "trace": None,
        "len": 60,
        "mac": "02:42:f9:f8:c9:ad:02:42:ac:11:00:02:08:00",
        "icmp_type": None,
    }
    assert fifth["source"] == str(SEED)


def test_ingest_is_idempotent_and_incremental(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    lines = SEED.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:10]))
    store = tmp_path / "store"
    assert ingest(store, str(log))["hops"] == 10
    assert ingest(store, str(log))["hops"] == 0
    log.write_text("".join(lines))  # the file grew
    assert ingest(store, str(log))["hops"] == 17
    assert len(hops(store)) == 27
    # rotation: syslog became syslog.1 (same content), a new syslog started
    log.rename(tmp_path / "syslog.1")
    log.write_text(lines[0].replace("10:08:12", "10:09:00"))
    summary = ingest(store, str(log), str(tmp_path / "syslog.1"))
    assert (summary["hops"], summary["already_stored"]) == (1, 27)


def test_rotated_set_is_read_oldest_first(tmp_path: Path) -> None:
    lines = SEED.read_text().splitlines(keepends=True)
    with gzip.open(tmp_path / "syslog.2.gz", "wt") as handle:
        handle.write("".join(lines[:5]))
    (tmp_path / "syslog.1").write_text("".join(lines[5:15]))
    (tmp_path / "syslog").write_text("".join(lines[15:]))
    store = tmp_path / "store"
    names = [str(tmp_path / n) for n in ("syslog", "syslog.1", "syslog.2.gz")]
    assert ingest(store, *names)["hops"] == 27
    order = [(Path(str(h["source"])).name, h["lineno"]) for h in hops(store)]
    assert (
        order[0] == ("syslog.2.gz", 1)
        and order[5] == ("syslog.1", 1)
        and order[-1] == ("syslog", 12)
    )


def test_standard_input(tmp_path: Path) -> None:
    assert ingest(tmp_path, "-", input=SEED.read_text())["hops"] == 27
    assert ingest(tmp_path, "-", input=SEED.read_text())["hops"] == 0


def test_hops_filters(tmp_path: Path) -> None:
    ingest(tmp_path, str(SEED))
    assert len(hops(tmp_path, "--port", "55148")) == 7
    assert {h["prefix"] for h in hops(tmp_path, "--prefix", "FwdOd0")} == {"[TonyBai]-FwdOd0:"}
    # journey 3 (5 lines) and the masqueraded SYN-ACK of journey 5
    assert len(hops(tmp_path, "--host", "10.10.126.101")) == 6
    assert len(hops(tmp_path, "--since", "2016-01-14T14:47", "--until", "2016-01-14T15:00")) == 7


def test_missing_file_and_directory(tmp_path: Path) -> None:
    code, _, err = run("ingest", str(tmp_path / "nope.log"), "--store", str(tmp_path / "s"))
    assert code == 1
    assert err == f"logpath: {tmp_path / 'nope.log'}: no such file\n"
    code, _out, err = run("ingest", str(tmp_path), "--store", str(tmp_path / "s"))
    assert code == 1
    assert "is a directory" in err


def test_missing_file_does_not_stop_the_others(tmp_path: Path) -> None:
    code, out, err = run("ingest", "missing.log", str(SEED), "--store", str(tmp_path), "--json")
    assert code == 1  # an input could not be read; the others' lines are stored
    assert json.loads(out)["hops"] == 27
    assert err == "logpath: missing.log: no such file\n"


def test_invalid_utf8_and_binary_lines_are_rejected_with_reasons(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_bytes(SEED.read_bytes() + b"\xff\xfe garbage \x00\x01\n")
    summary = ingest(tmp_path / "s", str(log))
    assert (summary["hops"], summary["rejected"]) == (27, 1)
    _code, out, _ = run("rejected", "--store", str(tmp_path / "s"), "--json")
    (row,) = json.loads(out)
    assert (row["lineno"], row["expected"], row["found"]) == (
        28,
        "UTF-8 text",
        "invalid UTF-8 at column 1",
    )


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(SEED.read_bytes() * 200)
    (tmp_path / "syslog.1.gz").write_bytes(data[: len(data) // 2])
    code, out, err = run(
        "ingest", str(tmp_path / "syslog.1.gz"), "--store", str(tmp_path / "s"), "--json"
    )
    assert code == 1  # damaged; what was read before the damage is stored
    assert err.startswith(f"logpath: {tmp_path / 'syslog.1.gz'}: compressed data is damaged after")
    assert "(it ends early: the file is truncated)" in err
    assert json.loads(out)["hops"] > 0


def test_a_10_megabyte_line_is_skipped_with_a_reason(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("IN= OUT= " + "x" * 10_000_000 + "\n" + SEED.read_text())
    summary = ingest(tmp_path / "s", str(log))
    assert summary["hops"] == 27
    assert summary["skipped_by_reason"] == {"line longer than 64 KiB": 1}


def test_rejected_lines_listed_with_caret(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "fw: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 BOGUS\n"
    )
    code, out, _ = run("ingest", str(log), "--store", str(tmp_path / "s"), "--json")
    assert (code, json.loads(out)["rejected"]) == (5, 1)  # 5: no line gave a hop
    code, out, _ = run("rejected", "--store", str(tmp_path / "s"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        f"{log}:1:82: expected FRAG:<offset> or OPT (<hex>) or PROTO=TCP or ... or"
        " PROTO=<number>, found 'BOGUS'"
    )
    assert lines[1][2 + 81 :] == "BOGUS"
    assert lines[2] == "  " + " " * 81 + "^"


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ingest(store, str(SEED))
    with (store / "lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run("ingest", str(SEED), "--store", str(store))
    assert code == 4
    assert err.startswith(f"logpath: {store}: the store is being written by")
    assert len(hops(store)) == 27


def test_hops_exports_stream_every_hop_in_line_order(tmp_path: Path) -> None:
    lab = sorted((SEED.parent.parent / "lab").glob("*.log"))
    ingest(tmp_path, *map(str, lab))
    listed = hops(tmp_path)
    counts = {str(path): len(path.read_text().splitlines()) for path in lab}
    lines = [(name, n) for name, count in counts.items() for n in range(1, count + 1)]
    assert [(h["source"], h["lineno"]) for h in listed] == lines
    code, out, _ = run("hops", "--store", str(tmp_path), "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["source"], int(r["lineno"])) for r in rows] == lines
    _, none, _ = run("hops", "--store", str(tmp_path), "--json", "--port", "1")
    _, header, _ = run("hops", "--store", str(tmp_path), "--csv", "--port", "1")
    assert (json.loads(none), header.splitlines()[1:]) == ([], [])
    assert header.startswith("ts,uptime,host,")


def test_a_long_hop_table_needs_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest(tmp_path, str(SEED))
    monkeypatch.setattr(cli_ingest, "TABLE_HOPS", 20)
    code, _, err = run("hops", "--store", str(tmp_path))
    assert code == 2 and "27 hops match: too many to read as a table" in err
    code, out, _ = run("hops", "--store", str(tmp_path), "--all")
    assert code == 0 and out.rstrip().endswith("27 hop(s)")
    code, out, _ = run("hops", "--store", str(tmp_path), "--port", "55148")
    assert code == 0 and out.rstrip().endswith("7 hop(s)")


def test_hops_on_an_empty_store_directory(tmp_path: Path) -> None:
    code, _, err = run("hops", "--store", str(tmp_path))
    assert code == 1
    assert "no hop store here" in err


FORMATS = SEED.parent.parent / "formats"


def test_journal_json_keeps_wall_clock_uptime_host_and_level(tmp_path: Path) -> None:
    assert ingest(tmp_path, str(FORMATS / "journal.json"))["hops"] == 6
    first = hops(tmp_path)[0]
    assert {
        k: first[k] for k in ("lineno", "ts", "uptime", "host", "level", "prefix", "in", "src")
    } == {
        "lineno": 1,
        "ts": "2026-11-25T16:54:47.311694Z",  # __REALTIME_TIMESTAMP
        "uptime": 556.675729,  # _SOURCE_MONOTONIC_TIMESTAMP
        "host": "vm",
        "level": 4,
        "prefix": "fmtA icmp-in: ",
        "in": "lo",
        "src": "127.0.0.1",
    }


def test_journal_export_records_are_numbered_by_their_first_line(tmp_path: Path) -> None:
    summary = ingest(tmp_path, str(FORMATS / "journal-export.txt"))
    assert (summary["lines"], summary["hops"]) == (3, 3)
    listed = hops(tmp_path)
    assert [h["lineno"] for h in listed] == [1, 13, 27]
    # the first record of the sample has no __REALTIME_TIMESTAMP: no wall clock, uptime kept
    assert (listed[0]["ts"], listed[0]["uptime"]) == (None, 506.794619)
    assert listed[1]["ts"] == "2026-11-25T16:54:26.206427Z"


def test_big_input_is_parsed_by_workers_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small blocks force several worker processes; line numbers and order must come out intact
    import logpath.lines

    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 2048)
    monkeypatch.setenv("LOGPATH_WORKERS", "2")
    log = tmp_path / "kern.log"
    log.write_text(SEED.read_text() * 20)
    summary = ingest(tmp_path / "s", str(log))
    assert (summary["lines"], summary["hops"]) == (540, 540)
    assert [h["lineno"] for h in hops(tmp_path / "s")] == list(range(1, 541))


def test_workers_hand_their_hops_over_in_memory_and_leave_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the lab's 200 connections in blocks of 256 KiB: eleven blocks, all parsed by the two
    # workers (an input of more than a block: the first too), whose hops come back through
    # files in memory, not the pool's pipe
    import logpath.ingest
    import logpath.lines
    from logpath.runtime import HANDOVER_PREFIX
    from logpath.store import Store

    burst = Path(__file__).resolve().parent.parent / "samples" / "lab" / "burst.log"
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 256 << 10)
    taken: list[str] = []
    take = logpath.ingest._taken_over
    monkeypatch.setattr(
        logpath.ingest, "_taken_over", lambda name: taken.append(name) or take(name)
    )
    given: list[str | None] = []  # per block handed to a worker, the file of its bytes
    hand = logpath.ingest._handed_block

    def handed_block(*args: Any) -> Any:
        block, data = hand(*args)
        given.append(data)
        return block, data

    monkeypatch.setattr(logpath.ingest, "_handed_block", handed_block)
    here = tmp_path / "here"
    monkeypatch.setenv("LOGPATH_WORKERS", "1")  # every block parsed in this process
    alone = ingest(here, str(burst))
    monkeypatch.setenv("LOGPATH_WORKERS", "2")
    handed = ingest(tmp_path / "handed", str(burst))

    assert handed == alone and handed["hops"] > 10_000
    assert len(taken) == 11
    # the blocks' bytes went to the workers in files too, not through the pool's pipe
    assert len(given) == 11 and all(data is not None for data in given)
    read = [Store(s).read_table(None, None) for s in (here, tmp_path / "handed")]
    assert read[0].equals(read[1])
    for folder in ("/dev/shm", "/tmp"):
        mine = f"{HANDOVER_PREFIX}{os.getpid()}-"
        assert not [f for f in os.listdir(folder) if f.startswith(mine)], folder


def test_a_worker_that_cannot_hand_its_hops_over_sends_them_back(tmp_path: Path) -> None:
    from logpath.ingest import _taken_over, parse_chunk, parse_chunk_handed
    from logpath.lines import Block

    data = (Path(__file__).resolve().parent.parent / "samples" / "lab" / "dnat.log").read_bytes()
    args = ("dnat.log", datetime.now(UTC), 2026, Block(1, data.count(b"\n"), data), 0)
    parsed = parse_chunk(*args).hops

    sent = parse_chunk_handed(str(tmp_path / "missing" / "handover"), *args)
    assert sent.handed is None and sent.hops.equals(parsed)
    handed = parse_chunk_handed(str(tmp_path / "handover"), *args)
    assert handed.handed is not None and handed.hops.num_rows == 0
    taken = _taken_over(handed.handed)
    assert taken.equals(parsed) and taken.schema.equals(parsed.schema)
    assert not list(tmp_path.iterdir())  # its files went once mapped


def test_a_block_is_handed_to_a_worker_in_a_file_or_whole(tmp_path: Path) -> None:
    """A block's bytes go to a worker in a file it reads and removes; when the file cannot be
    written, the block goes whole (through the pool's pipe); parsed the same either way."""
    from logpath.ingest import _handed_block, _taken_over, parse_chunk, parse_chunk_handed
    from logpath.lines import Block

    data = (Path(__file__).resolve().parent.parent / "samples" / "lab" / "dnat.log").read_bytes()
    block = Block(1, data.count(b"\n"), data)
    when = datetime.now(UTC)
    parsed = parse_chunk("dnat.log", when, 2026, block, 0).hops

    bare, path = _handed_block(str(tmp_path / "block"), block)
    assert path == str(tmp_path / "block") and bare.data == b"" and bare.count == block.count
    assert Path(path).read_bytes() == data
    handed = parse_chunk_handed(str(tmp_path / "hops"), "dnat.log", when, 2026, bare, 0, path)
    assert handed.handed is not None and _taken_over(handed.handed).equals(parsed)
    assert not list(tmp_path.iterdir())  # the block's file went once read

    whole, none = _handed_block(str(tmp_path / "missing" / "block"), block)
    assert whole is block and none is None
    sent = parse_chunk_handed(str(tmp_path / "missing" / "hops"), "dnat.log", when, 2026, whole, 0)
    assert sent.hops.equals(parsed)


def test_field_edge_cases_found_by_the_generated_lines(tmp_path: Path) -> None:
    body = "IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 "
    v6 = (
        "IN=b0 OUT= SRC=fd00:000a:0000:0000:0000:0000:0000:0099 "
        "DST=fd00:000b:0000:0000:0000:0000:0000:0020 LEN=1000 TC=0 HOPLIMIT=63 FLOWLBL=0 "
    )
    log = tmp_path / "k.log"
    log.write_text(
        # a nobody-like UID above 2^31 (overflowed a 32-bit column and crashed the ingest)
        f"1483228801.000001 vm kernel: a: {body}PROTO=UDP SPT=1 DPT=2 LEN=8 UID=4294967294 GID=4294967294 \n"
        # tun: no link-layer header, so no MAC addresses and no ethertype
        f"b: IN=tun0 OUT= MAC= SRC=10.0.0.1 DST=10.0.0.2 LEN=20 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=47 \n"
        # an IPv6 first fragment: INCOMPLETE is the more-fragments bit
        f"c: {v6}FRAG:0 INCOMPLETE ID:00abcdef PROTO=UDP SPT=40105 DPT=53 LEN=1508 \n"
        f"d: {body}PROTO=ESP SPI=0xc0de \n"
        # a port no kernel prints: rejected with the reason, not an overflow
        f"e: {body}PROTO=UDP SPT=1234567 DPT=2 LEN=8 \n"
    )
    summary = ingest(tmp_path / "s", str(log))
    assert (summary["hops"], summary["rejected"]) == (4, 1)
    a, b, c, d = hops(tmp_path / "s")
    assert (a["uid"], a["gid"], a["ts"]) == (4294967294, 4294967294, "2017-01-01T00:00:01.000001Z")
    assert (b["mac"], b["macsrc"], b["macdst"], b["macproto"]) == (None, None, None, None)
    assert (c["mf"], c["frag"], c["family"]) == (True, 0, 6)
    assert d["spi"] == 0xC0DE
    code, out, _ = run("rejected", "--store", str(tmp_path / "s"), "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert (row["lineno"], row["found"]) == (5, "SPT=1234567")


def test_year_comes_from_the_file_time_across_new_year(tmp_path: Path) -> None:
    import os
    from datetime import datetime

    body = SEED.read_text().splitlines()[0].split(" pc-baim ", 1)[1]
    log = tmp_path / "syslog"
    log.write_text(f"Dec 31 23:59:59 pc-baim {body}\nJan  1 00:00:01 pc-baim {body}\n")
    written = datetime(2027, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    os.utime(log, (written, written))
    code, out, err = run("ingest", str(log), "--store", str(tmp_path / "s"), "--json")
    assert code == 0, err
    assert json.loads(out)["hops"] == 2
    assert [h["ts"] for h in hops(tmp_path / "s")] == [
        "2026-12-31T23:59:59Z",
        "2027-01-01T00:00:01Z",
    ]
