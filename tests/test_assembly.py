"""Assembly at ingest (issue 10): the stored connections are a cache of the hops.

They must equal an assembly of the same hops from scratch, whatever the runs that stored the
hops and however the hops were cut into chunks; a question reads them and derives nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import multiprocessing
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from lab import twohosts as th
from seedstore import replayed_syslog

import logpath.assembly
import logpath.bridge
import logpath.clocks
import logpath.fates
import logpath.flows
import logpath.ingest
import logpath.journeys
import logpath.lines
import logpath.store
import logpath.summaries
from logpath.assembly import BOOT_DRIFT, PLACEMENT_DRIFT, _clocks_agree, assemble, kept_ruleset
from logpath.clocks import CLOCK_COLUMNS, Clocks, _epoch, _uptime, boot_times
from logpath.hops import HOP_SCHEMA
from logpath.ingest import ingest
from logpath.query import FlowQuery, find_flows, load_journey
from logpath.rules import load_ruleset
from logpath.runtime import worker_count
from logpath.store import Store, StoreWriter, to_frame

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "samples" / "lab"
# lab captures of one host (NAT, a bridge, IPv6, ICMP errors), ingested in two runs
FIRST = [LAB / "masquerade.log", LAB / "dnat.log", LAB / "hairpin.log"]
LATER = [LAB / "ipv6.log", LAB / "icmp-error.log", LAB / "bridge-rst.log", LAB / "c2c.log"]


def reassembled(store: Store, chunk_hops: int = logpath.assembly.CHUNK_HOPS) -> Any:
    """The store's hops assembled again, from scratch."""
    manifest = store.require()
    hops = store.read_parts(manifest.parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    return assemble(hops, kept_ruleset(manifest.ruleset), chunk_hops=chunk_hops)


def stored(store: Store, kind: str) -> pa.Table:
    rows = store.assembled_rows(kind)
    assert rows is not None
    return rows.read()


def decoded(table: pa.Table) -> pa.Table:
    """The table with its dictionary columns decoded: equal values, whatever the order of
    the dictionaries."""
    return table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
        )
    )


def by_line(trace: pa.Table) -> list[dict[str, Any]]:
    """The trace's rows in line order (source, line number), each packet numbered within its
    connection: the store-wide numbers of packets and connections depend on the order chunks
    settle them in, what they hold does not."""
    rows = trace.to_pylist()
    first: dict[str, list[int]] = {}
    for row in rows:
        packets = first.setdefault(row["flow"], [])
        if row["packet"] not in packets:
            packets.append(row["packet"])
    for row in rows:
        row["packet"] = sorted(first[row["flow"]]).index(row["packet"])
        del row["flow_n"]
    return sorted(rows, key=lambda row: (row["source"], row["lineno"]))


def test_stored_connections_equal_a_reassembly_from_scratch(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST], store)
    first = find_flows(store, FlowQuery())
    ingest([str(p) for p in LATER], store)  # a second run: the connections are assembled again
    assert len(store.require().parts) == 2
    again = reassembled(store)
    assert stored(store, "flows").equals(again.flows.cast(stored(store, "flows").schema))
    assert by_line(stored(store, "trace")) == by_line(again.trace)
    # and one run over every file stores the same connections
    once = Store(tmp_path / "once")
    ingest([str(p) for p in FIRST + LATER], once)
    everything = find_flows(store, FlowQuery())
    assert [f.to_json() for f in find_flows(once, FlowQuery())] == [f.to_json() for f in everything]
    assert {f.id for f in first} < {f.id for f in everything}
    assert sum(f.hops for f in everything) == store.count_hops()


@pytest.fixture(scope="module")
def replay_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """28 minutes of a replayed Docker host (7,391 connections, 89,355 hops)."""
    return replayed_syslog(tmp_path_factory.mktemp("replay"), 150_000, 3)


@pytest.fixture(scope="module")
def replayed(replay_log: Path) -> Store:
    store = Store(replay_log.parent / "store")
    ingest([str(replay_log)], store)
    return store


def test_chunks_change_nothing(replayed: Store) -> None:
    # 20,000 hops a chunk span ~6 minutes, less than a connection may stay idle: every chunk
    # carries open connections into the next
    whole = stored(replayed, "flows")
    chunked = reassembled(replayed, chunk_hops=20_000)
    assert replayed.count_hops() > 4 * 20_000
    assert chunked.flows.num_rows == whole.num_rows == 7_391

    def keyed(flows: pa.Table) -> dict[str, dict[str, Any]]:
        return {r["id"]: {k: v for k, v in r.items() if k != "flow_n"} for r in flows.to_pylist()}

    assert keyed(chunked.flows) == keyed(whole)
    assert by_line(chunked.trace) == by_line(stored(replayed, "trace"))


def test_chunks_carry_only_the_connections_later_hops_can_join(
    replayed: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a connection idle at a chunk's end may be joined for ten more minutes, but only by a
    # hop of its tuple or of one of its packets: the others are kept at once, not traced
    # again in every chunk of those ten minutes (test_chunks_change_nothing: the same tables)
    traced = traced_hops(monkeypatch)
    chunked = reassembled(replayed, chunk_hops=20_000)
    hops = replayed.count_hops()
    assert chunked.trace.num_rows == hops
    assert len(traced) == 5
    # carrying every connection idle for less than ten minutes traced 108,358 hops again
    # (1.2 x the hops); the connections a later hop can join hold 3,477
    carried = sum(traced) - hops
    assert 0 < carried < 0.05 * hops, (carried, hops)


def in_time_order(capture: Path, tmp_path: Path) -> pa.Table:
    """A capture's hops (HOP_COLUMNS), in the order of their time on the one clock."""
    store = Store(tmp_path / capture.stem)
    ingest([str(capture)], store)
    hops = store.read_parts(store.require().parts, logpath.assembly.HOP_COLUMNS)
    lines = logpath.store.to_frame(hops.select(["host", "ts", "uptime"]))
    clocks = logpath.assembly.learn_hop_clocks(hops, lines)
    when = logpath.clocks.one_clock(lines, clocks)
    return hops.take(pa.array(np.argsort(when, kind="stable")))


def test_a_chunk_or_a_worker_cut_anywhere_changes_nothing(tmp_path: Path) -> None:
    # the kernel's lines of a hairpinned connection (DNAT, then MASQUERADE back to the same
    # bridge) cut between every two hops: the first i hops a chunk (or this process's part),
    # the next i the next chunk (or the worker's). A packet cut between its hop before a NAT
    # and its hop after shows two tuples: only the hops alike on the host tell that the later
    # one goes on with the earlier connection (without that test, cuts 3 and 9 differ)
    hops = in_time_order(LAB / "hairpin.log", tmp_path)
    differ: dict[str, list[int]] = {"chunks": [], "worker": []}
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i in range(1, hops.num_rows // 2 + 1):
            part = hops.slice(0, 2 * i)
            one = assemble(part)
            for how, cut in (
                ("chunks", assemble(part, chunk_hops=i)),
                ("worker", assemble(part, chunk_hops=i, executor=pool)),
            ):
                if not (cut.flows.equals(one.flows) and cut.trace.equals(one.trace)):
                    differ[how].append(i)
    assert hops.num_rows == 52
    assert differ == {"chunks": [], "worker": []}


def test_a_trace_file_takes_its_hops_and_its_connections_texts(tmp_path: Path) -> None:
    """A file's rows are built from the hops (their own columns), what assembly found, and
    their connection's texts held once per connection: each row shows its own hop's columns
    and its connection's id and tuple keys, and a column null on every hop is one buffer of
    zeros, not a copy per file."""
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST + LATER], store)
    hops = store.read_parts(store.require().parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    assembled = reassembled(store, chunk_hops=60)
    rows = assembled.trace_rows
    assert isinstance(rows, logpath.assembly.TraceRows)
    whole = rows.table()
    files = [rows.slice(start, 40) for start in range(0, rows.num_rows, 40)]
    assert len(files) > 1 and pa.concat_tables(files).equals(whole)

    # each row's own columns are its hop's (found by source and line number)
    def lines(table: pa.Table) -> list[tuple[str, int]]:
        return list(zip(table["source"].to_pylist(), table["lineno"].to_pylist(), strict=True))

    at = {line: i for i, line in enumerate(lines(hops))}
    own = hops.take(pa.array([at[line] for line in lines(whole)]))
    for name in own.column_names:
        assert decoded(whole.select([name])).equals(decoded(own.select([name]))), name
    # and its connection's texts: the flows table's id, the same keys on every hop of it
    flow_n = whole["flow_n"].to_pylist()
    ids = assembled.flows["id"].to_pylist()
    assert whole["flow"].to_pylist() == [None if n is None else ids[n] for n in flow_n]
    for key in ("orig_key", "reply_key"):
        shown: dict[int, set[str]] = {}
        for n, value in zip(flow_n, whole[key].to_pylist(), strict=True):
            if n is not None:
                shown.setdefault(n, set()).add(value)
        assert len(shown) == assembled.flows.num_rows
        assert all(len(values) == 1 and None not in values for values in shown.values())
    empty = [c for c in hops.column_names if hops[c].null_count == hops.num_rows]
    assert {"trace_id", "mtu"} <= set(empty)
    for part in files:
        assert len({part[c].chunk(0).buffers()[1].address for c in empty}) == 1
        for c in empty:
            part[c].validate(full=True)


def test_two_processes_change_nothing(replayed: Store) -> None:
    # an ingest's workers take the later part of time; the connections open across the seam
    # between the parts, and those of the later part they reach, are assembled again: the
    # tables are those of one process, row by row (restarting none of the later part's: not)
    manifest = replayed.require()
    hops = replayed.read_parts(manifest.parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    one = assemble(hops, chunk_hops=20_000)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        two = assemble(hops, chunk_hops=20_000, executor=pool)
    assert two.flows.equals(one.flows)
    assert two.trace.equals(one.trace)
    assert one.flows.num_rows == 7_391


def test_a_worker_that_cannot_write_its_handover_returns_what_it_kept(
    replayed: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the hops go to the worker, and its connections come back, in files (/dev/shm); where
    # they cannot be written (a full /dev/shm, here a folder that is not there) both go
    # through the pool's pipe

    @contextlib.contextmanager
    def nowhere() -> Iterator[str]:
        yield str(tmp_path / "not-there" / "handover")

    manifest = replayed.require()
    hops = replayed.read_parts(manifest.parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    one = assemble(hops, chunk_hops=20_000)
    monkeypatch.setattr(logpath.assembly, "handover", nowhere)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        two = assemble(hops, chunk_hops=20_000, executor=pool)
    assert not (tmp_path / "not-there").exists()
    assert two.flows.equals(one.flows)
    assert two.trace.equals(one.trace)


def test_hosts_no_packet_links_are_assembled_apart_to_the_same_tables(
    fleet: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Docker host and two linked pairs of hosts: three groups, each assembled apart (the
    # smaller ones in a worker), the tables those of one assembly of every hop together
    store = Store(tmp_path / "store")
    ingest(fleet, store)
    hops = store.read_parts(store.require().parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    clocks = Clocks.from_json(store.require().assembly["clocks"])
    assert len(set(logpath.assembly.host_group_of_hops(hops["host"], clocks).tolist())) == 3
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        apart = assemble(hops, chunk_hops=2_000, executor=pool)
    here = assemble(hops, chunk_hops=2_000)
    monkeypatch.setattr(
        logpath.assembly, "host_group_of_hops", lambda host, clocks: np.zeros(len(host), int)
    )
    together = assemble(hops, chunk_hops=2_000)
    assert together.flows.num_rows > 100
    for assembled in (apart, here):
        assert assembled.flows.equals(together.flows)
        assert assembled.trace.equals(together.trace)


def test_a_journey_derives_nothing(replayed: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`logpath journey` reads the connection and its hops; no stage runs again."""
    flow = find_flows(replayed, FlowQuery(port=12580))[100]

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a journey derived what assembly stored")

    for module, name in [
        (logpath.flows, "hop_tuples"),
        (logpath.summaries, "summarise"),
        (logpath.summaries, "summarise_flows"),
        (logpath.summaries, "packet_fates"),
        (logpath.fates, "packet_fates"),
        (logpath.assembly, "packet_fates"),
        (logpath.flows, "assign_flows"),
        (logpath.assembly, "with_journey_marks"),
        (logpath.assembly, "trace_hops"),
        (logpath.assembly, "assemble"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    journey = load_journey(replayed, flow.id)
    assert journey.flow == flow
    assert len(journey.packets) == flow.packets
    assert sum(len(p.hops) for p in journey.packets) == flow.hops
    assert all(p.fate for p in journey.packets)


# What a question that reads a few rows must not import: pandas (through Arrow's dataset scanner
# or a conversion of a Python value, half a second), nor any stage of the assembly.
NOT_FOR_A_FEW_ROWS = ["pandas", "pyarrow.dataset", "logpath.assembly", "logpath.flows",
                      "logpath.summaries", "logpath.fates", "logpath.packets"]  # fmt: skip


@pytest.mark.parametrize(
    "question",
    [
        ["journey", "{id}"],
        ["journey", "{id}", "--json"],
        ["flows", "--since", "{start}", "--until", "{end}"],
        ["flows", "--port", "12580"],
        ["flows", "--host", "10.77.0.1", "--json"],
        ["flows", "--nat", "dnat", "--csv"],
    ],
)
def test_a_question_of_a_few_rows_imports_no_pandas(replayed: Store, question: list[str]) -> None:
    """The questions issue 10 holds to a second read the stored tables without pandas: a
    change that brings its import back on their path fails here, not only in the benchmark."""
    flow = find_flows(replayed, FlowQuery(port=12580))[100]
    assert flow.first_seen is not None
    words = {
        "id": flow.id,
        "start": flow.first_seen.isoformat(),
        "end": (flow.first_seen + dt.timedelta(seconds=20)).isoformat(),
    }
    script = (
        "import sys\n"
        "from logpath.cli import main\n"
        f"sys.argv = {['logpath', *(w.format(**words) for w in question), '--store', str(replayed.path)]!r}\n"
        "try:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
        f"print(sorted(set({NOT_FOR_A_FEW_ROWS!r}) & set(sys.modules)), file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert flow.id in run.stdout or "flow(s)" in run.stdout or run.stdout.startswith(("[", "id,"))
    assert run.stderr.strip().splitlines()[-1] == "[]", run.stderr


def test_assembly_runs_each_stage_once_a_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tuples, summaries and fates are computed once (they were two or three times a journey)."""
    calls: dict[str, int] = {}

    def counted(modules: list[Any], name: str) -> None:
        original = getattr(modules[0], name)

        def count(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        for module in modules:  # every module that calls it by its own imported name
            monkeypatch.setattr(module, name, count)

    counted([logpath.flows], "hop_tuples")
    counted([logpath.fates, logpath.summaries, logpath.assembly], "packet_fates")
    counted([logpath.summaries, logpath.assembly], "summarise")
    counted([logpath.assembly], "trace_hops")
    counted([logpath.assembly], "with_journey_marks")
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST], store)
    assert calls == dict.fromkeys(
        ["hop_tuples", "packet_fates", "summarise", "trace_hops", "with_journey_marks"], 1
    )
    assert len(find_flows(store, FlowQuery())) == 3  # one connection a capture


def test_an_older_store_is_assembled_when_first_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST], store)
    expected = [f.to_json() for f in find_flows(store, FlowQuery())]
    # a store written before assembly: no assembled tables in the manifest
    manifest = json.loads((store.path / "manifest.json").read_text())
    del manifest["assembly"]
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(store.path / "assembled")
    # held by a writer: assembled in memory for this question, and nothing written
    with (store.path / "lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert [f.to_json() for f in find_flows(store, FlowQuery())] == expected
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert "assembly" not in json.loads((store.path / "manifest.json").read_text())
    # free: assembled once and kept
    assert [f.to_json() for f in find_flows(store, FlowQuery())] == expected
    assert (
        json.loads((store.path / "manifest.json").read_text())["assembly"]["parts"]
        == (manifest["parts"])
    )


def test_hop_parts_written_before_columns_were_added_are_read(tmp_path: Path) -> None:
    """A store written by a logpath whose hop table had fewer columns (the nft trace columns
    came later) is read and assembled as it was: the missing columns are empty."""
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST], store)
    expected = [f.to_json() for f in find_flows(store, FlowQuery())]
    added = ["trace_id", "trace_family", "trace_verdict", "trace_rule", "trace_handle"]
    manifest = json.loads((store.path / "manifest.json").read_text())
    for name in manifest["parts"]:
        part = store.path / "hops" / name
        narrower = pq.read_table(part).drop_columns([c for c in added if c in HOP_SCHEMA.names])
        assert narrower.num_columns < len(HOP_SCHEMA)
        pq.write_table(narrower, part)
    del manifest["assembly"]
    (store.path / "manifest.json").write_text(json.dumps(manifest))
    assert [f.to_json() for f in find_flows(store, FlowQuery())] == expected
    assert store.read_hops(columns=["src", "trace_id"])["trace_id"].isna().all()


# The replayed syslog cut in two at 04:?? where connections are open: the first 120,000 lines
# rotated away (syslog.1), the last 30,000 (5.5 minutes) in syslog.
CUT = 120_000


@pytest.fixture(scope="module")
def rotated(replay_log: Path) -> tuple[Path, Path]:
    folder = replay_log.parent / "rotated"
    folder.mkdir()
    lines = replay_log.read_bytes().splitlines(keepends=True)
    older, newer = folder / "syslog.1", folder / "syslog"
    older.write_bytes(b"".join(lines[:CUT]))
    newer.write_bytes(b"".join(lines[CUT:]))
    return older, newer


@pytest.fixture(scope="module")
def first_run(rotated: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store of the older file alone (tests copy it before ingesting into it)."""
    store = Store(tmp_path_factory.mktemp("first") / "store")
    ingest([str(rotated[0])], store)
    return store


def traced_hops(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The hops each trace_chunk call is given, from now on."""
    calls: list[int] = []
    original = logpath.assembly.trace_chunk

    def count(hops: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(hops))
        return original(hops, *args, **kwargs)

    monkeypatch.setattr(logpath.assembly, "trace_chunk", count)
    return calls


def copied(store: Store, to: Path) -> Store:
    shutil.copytree(store.path, to)
    return Store(to)


def test_a_later_run_assembles_only_the_open_tail(
    rotated: tuple[Path, Path], first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = copied(first_run, tmp_path / "store")
    before = store.count_hops()
    traced = traced_hops(monkeypatch)
    ingest([str(rotated[1])], store)
    added = store.count_hops() - before
    print(f"traced {sum(traced):,} hops for {added:,} new of {store.count_hops():,}")
    # the new hops and those of the stored connections they reach (their tuples, or a packet
    # still open), not the ten minutes before them: 18,963 hops traced for 18,513 new (53,340
    # when every connection of those ten minutes was assembled again)
    assert added < sum(traced) < 1.1 * added
    trace = stored(store, "trace")
    # connections open across the cut (8 of the replay's) were assembled again with the new
    # hops, each one connection
    sources = trace.group_by("flow").aggregate([("source", "count_distinct")])
    assert pc.sum(pc.equal(sources["source_count_distinct"], 2)).as_py() >= 5
    # the stored tables are a cache of the hops: those of an assembly from scratch...
    again = reassembled(store)
    assert stored(store, "flows").equals(again.flows)
    assert trace.equals(again.trace)
    # ... and of one run over both files
    once = Store(tmp_path / "once")
    ingest([str(p) for p in rotated], once)
    assert stored(once, "flows").equals(stored(store, "flows"))
    assert stored(once, "trace").equals(trace)
    assert trace.num_rows == store.count_hops()


def store_files(store: Store) -> set[str]:
    """Every file under the store's ``hops/`` and ``assembled/``."""
    return {
        f"{folder}/{path.name}"
        for folder in ("hops", "assembled")
        for path in (Path(store.path) / folder).glob("*.parquet")
    }


def named_files(store: Store) -> set[str]:
    """The files the store's manifest names."""
    manifest = store.require()
    assert manifest.assembly is not None
    return {f"hops/{part}" for part in manifest.parts} | {
        f"assembled/{entry['file']}"
        for kind in ("flows", "trace")
        for entry in manifest.assembly[kind]
    }


def held_at_each_assembly(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The hops an ingest's writer holds when each of its assemblies begins, from now on."""
    held: list[int] = []
    assemble = logpath.ingest._assemble

    def watched(store: Store, writer: StoreWriter, *args: Any) -> None:
        held.append(writer.held_hops)
        assemble(store, writer, *args)

    monkeypatch.setattr(logpath.ingest, "_assemble", watched)
    return held


def test_an_ingest_assembles_a_stage_at_a_time_to_the_tables_of_one_assembly(
    replay_log: Path, replayed: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An input of more than STAGE_HOPS hops: its connections are assembled every STAGE_HOPS
    hops, and the hops let go of (memory holds a stage's, not the input's), each stage as a
    run adding them would; the tables are those of one assembly of every hop (``replayed``:
    the same log, one stage), and no file a stage wrote and the next replaced is left."""
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", 20_000)
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 20)  # 31 blocks, not 8
    # chunks of 5,000 hops: the stages after the first, which assemble again the stored
    # connections their hops reach with them, do so on two cores too
    monkeypatch.setattr(logpath.assembly, "CHUNK_HOPS", 5_000)
    held = held_at_each_assembly(monkeypatch)  # the hops held when each assembly began
    in_two: list[int] = []  # per assembly on two cores, the stage it was in
    assemble_in_two = logpath.assembly._assemble_in_two

    def counted(*args: Any) -> Any:
        in_two.append(len(held))
        return assemble_in_two(*args)

    monkeypatch.setattr(logpath.assembly, "_assemble_in_two", counted)
    store = Store(tmp_path / "store")
    ingest([str(replay_log)], store)
    assert len(set(in_two)) == len(held) and in_two[0] == 1, (in_two, held)
    hops = replayed.count_hops()
    assert store.count_hops() == hops
    # 89,355 hops in 31 blocks: stages of 20,000 and more (the blocks parsed when the count
    # is checked), then the rest at the end (the blocks still in the workers' hands, and the
    # rest of the file once it is less than half a stage's bytes); never every hop, nor half
    # of them, at once
    assert len(held) >= 3 and min(held[:-1]) >= 20_000 and sum(held) == hops, held
    assert max(held) < hops / 2, held
    assert len(store.require().parts) == len(held)
    for kind in ("flows", "trace"):
        assert stored(store, kind).equals(stored(replayed, kind)), kind
    assert store_files(store) == named_files(store)


def test_a_file_whose_rest_is_small_is_assembled_whole_at_its_end(
    replay_log: Path, replayed: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past STAGE_HOPS with less than half a stage's bytes of the file left: no stage of a
    few hops (a small stage runs on one core, and reads again what its hops reach), one
    assembly at the end."""
    hops = replayed.count_hops()
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", int(hops * 0.8))
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 20)
    held = held_at_each_assembly(monkeypatch)
    store = Store(tmp_path / "store")
    ingest([str(replay_log)], store)
    assert held == [hops]
    assert stored(store, "flows").equals(stored(replayed, "flows"))


def test_the_last_assembly_has_a_worker_forked_after_the_parse(
    replay_log: Path, replayed: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse workers, idle once every chunk is in, end before the run's assembly; its later
    half goes to a worker forked for it (none sits out the assembly holding what its blocks
    left it), and the tables are those of an ingest on one pool (``replayed``)."""
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(logpath.assembly, "CHUNK_HOPS", 20_000)  # on two cores: 2 chunks or more
    pools: list[ProcessPoolExecutor] = []
    worker_pool = logpath.ingest.worker_pool

    def recorded(workers: int) -> ProcessPoolExecutor:
        pools.append(worker_pool(workers))
        return pools[-1]

    parsed_by: list[int] = []
    fresh_pool = logpath.ingest._Workers._fresh_pool

    def fresh(self: logpath.ingest._Workers) -> None:
        assert self.pool is not None
        idle = list((self.pool._processes or {}).values())  # type: ignore[attr-defined]
        parsed_by.extend(process.pid for process in idle)
        fresh_pool(self)
        assert all(process.exitcode == 0 for process in idle)  # ended, not left to linger

    assembled_by: list[set[int]] = []
    assemble = logpath.ingest._assemble

    def watched(store: Store, writer: StoreWriter, pool: ProcessPoolExecutor | None) -> None:
        assert pool is pools[-1] and not pool._processes  # type: ignore[attr-defined]
        assemble(store, writer, pool)
        assembled_by.append(set(pool._processes))  # type: ignore[attr-defined]

    monkeypatch.setattr(logpath.ingest, "worker_pool", recorded)
    monkeypatch.setattr(logpath.ingest._Workers, "_fresh_pool", fresh)
    monkeypatch.setattr(logpath.ingest, "_assemble", watched)
    store = Store(tmp_path / "store")
    ingest([str(replay_log)], store)
    assert len(pools) == 2 and len(parsed_by) == worker_count() > 1, (pools, parsed_by)
    [assembling] = assembled_by
    assert len(assembling) == 1 and not assembling & set(parsed_by), (assembling, parsed_by)
    for kind in ("flows", "trace"):
        assert stored(store, kind).equals(stored(replayed, kind)), kind


def test_two_hosts_hops_are_assembled_at_the_end_not_in_stages(
    replay_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hosts' lines: each stage would learn their boot times again from more lines, move
    them apart by a few ms, and assemble every hop again from scratch: one assembly at the
    end (as before stages)."""
    lines = replay_log.read_bytes().splitlines(keepends=True)[:60_000]
    other = [line.replace(b" pc-baim ", b" pc-other ", 1) for line in lines]
    both = tmp_path / "syslog"
    both.write_bytes(b"".join(line for pair in zip(lines, other, strict=True) for line in pair))
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", 5_000)
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 20)
    held = held_at_each_assembly(monkeypatch)
    store = Store(tmp_path / "store")
    ingest([str(both)], store)
    hosts = stored(store, "flows")["hosts"].to_pylist()
    assert {"pc-baim", "pc-other"} <= {host for row in hosts for host in row}
    assert held == [store.count_hops()], held


def test_a_newer_file_added_to_a_store_is_assembled_in_stages(
    rotated: tuple[Path, Path], first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = copied(first_run, tmp_path / "store")
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", 5_000)
    # 28 blocks of 256 KiB: four are in the workers' hands when the count is checked
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 18)
    held = held_at_each_assembly(monkeypatch)
    ingest([str(rotated[1])], store)
    assert len(held) >= 2, held
    once = Store(tmp_path / "once")
    ingest([str(p) for p in rotated], once)
    for kind in ("flows", "trace"):
        assert stored(store, kind).equals(stored(once, kind)), kind


def test_an_older_file_added_to_a_store_is_assembled_at_the_end(
    rotated: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its hops start before the stored connections end: each stage would assemble most of
    them again."""
    store = Store(tmp_path / "store")
    ingest([str(rotated[1])], store)
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", 5_000)
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 18)
    held = held_at_each_assembly(monkeypatch)
    before = store.count_hops()
    ingest([str(rotated[0])], store)
    assert held == [store.count_hops() - before], held


@pytest.mark.parametrize("failing", [1, 2], ids=["a stage", "the end, after a stage"])
def test_an_ingest_whose_assembly_fails_after_a_stage_leaves_the_store_as_it_was(
    failing: int,
    rotated: tuple[Path, Path],
    first_run: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose assembly fails, in a stage or at the end after one, stores nothing: neither
    its hop parts nor the tables its stages wrote; the error is the run's, not the input's
    (an OSError of a stage is no input that "cannot be read", read on after)."""
    store = copied(first_run, tmp_path / "store")
    before, files = store.require().dump(), store_files(store)
    # blocks of 256 KiB: a stage comes while blocks are still read (of two 4 MB blocks, both
    # are handed to the workers before the first one's hops are back, and the file then
    # ends); the newer file's 18,513 hops in stages of 8,000 on two workers (the blocks in
    # flight, and so the hops held at each block, are fixed by their number): one stage, then
    # the end
    monkeypatch.setattr(logpath.ingest, "STAGE_HOPS", 8_000)
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 1 << 18)
    monkeypatch.setenv("LOGPATH_WORKERS", "2")
    calls: list[int] = []
    assemble = logpath.ingest._assemble

    def fails(*args: Any) -> None:
        calls.append(len(calls) + 1)
        if len(calls) == failing:
            raise OSError(28, "No space left on device")
        assemble(*args)

    monkeypatch.setattr(logpath.ingest, "_assemble", fails)
    with pytest.raises(OSError, match="No space left"):
        ingest([str(rotated[1])], store)
    assert calls == list(range(1, failing + 1))
    assert store.require().dump() == before
    assert store_files(store) == files


def test_runs_that_add_hops_keep_the_settled_connections_as_stored(
    replay_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log rotated three times, read a file a run: each run keeps the stored connections
    that start before every one its hops reach as they were read (numbers, packets, files),
    numbers the rest after them, and the tables are those of one run over the files so far.
    The files of the slices whose connections ended ten minutes before the new hops are not
    even read."""
    heads: list[tuple[int, int]] = []
    settled_head = logpath.assembly._settled_head

    def watched(first: np.ndarray, standing: np.ndarray, earliest: float) -> int:
        heads.append((settled_head(first, standing, earliest), len(first)))
        return heads[-1][0]

    monkeypatch.setattr(logpath.assembly, "_settled_head", watched)
    unread: list[int] = []  # per run that adds hops, the stored hops left unread
    settled_files = logpath.assembly._settled_files

    def kept(*args: Any) -> Any:
        settled = settled_files(*args)
        unread.append(settled.hops if settled is not None else 0)
        return settled

    monkeypatch.setattr(logpath.assembly, "_settled_files", kept)
    # the boot time learned again over every hop: for the files left unread, from what their
    # footers counted (their stamps are not read: a follow's store grows by the hour)
    boots: list[tuple[float, float]] = []
    learned_again, learn = logpath.assembly._learned_again, logpath.assembly.learn_hop_clocks

    def counted(store: Store, settled: Any, hops: pa.Table, lines: Any, stored: Any) -> Any:
        if settled is None:
            return learned_again(store, settled, hops, lines, stored)
        monkeypatch.setattr(logpath.assembly, "learn_hop_clocks", None)  # not called
        clocks = learned_again(store, settled, hops, lines, stored)
        monkeypatch.setattr(logpath.assembly, "learn_hop_clocks", learn)
        stamps = store.assembled_files(settled.kept["trace"]).read(["host", "ts", "uptime"])
        every = pd.concat([to_frame(stamps), lines[["host", "ts", "uptime"]]])
        exact = boot_times(_epoch(every["ts"]), _uptime(every), every["host"])
        assert clocks.boot.keys() == exact.keys() and len(exact) == 1
        boots.extend((clocks.boot[host], exact[host]) for host in exact)
        return clocks

    monkeypatch.setattr(logpath.assembly, "_learned_again", counted)
    # files of a slice of a minute each: most of them stay as an earlier run wrote them
    monkeypatch.setattr(logpath.store, "SLICE_SECONDS", 60)
    monkeypatch.setattr(logpath.store, "SLICE_HOPS", 1)
    lines = replay_log.read_bytes().splitlines(keepends=True)
    files = [tmp_path / name for name in ("syslog.3", "syslog.2", "syslog.1", "syslog")]
    for number, path in enumerate(files):
        path.write_bytes(b"".join(lines[len(lines) * number // 4 : len(lines) * (number + 1) // 4]))
    store = Store(tmp_path / "store")
    for number, path in enumerate(files):
        ingest([str(path)], store)
        # after each run: a run that numbered wrong would be mended by the next (its head is
        # not numbered 0, 1, 2...: everything is numbered again)
        once = Store(tmp_path / f"once-{number}")
        ingest([str(p) for p in files[: number + 1]], once)
        for kind in ("flows", "trace"):
            assert stored(store, kind).equals(stored(once, kind)), (number, kind)
    # 28 minutes in four files of 7: each run's new hops could reach back 10 minutes and 8
    # seconds (SETTLED_AFTER), all of the first file's, but reach only the connections whose
    # tuples they show (or a packet still open): those before the first of them stay as stored
    assert all(head > 0 for head, _ in heads), heads
    assert all(head < stored for head, stored in heads)
    # the second run's new hops start 7 minutes in: every stored connection may be joined;
    # the third's 14 minutes in leave the first minute unread, the fourth's the first seven
    assert len(unread) == 3 and unread[0] == 0 < unread[1] < unread[2], unread
    assert len(boots) == 2 and all(abs(a - b) <= 0.001 for a, b in boots), boots
    written = {entry["file"].split("-")[1] for entry in store.require().assembly["trace"]}
    assert len(written) > 1, written
    # the files kept from earlier runs have dictionaries of their own (the files read so far):
    # what is read has one per column, as Arrow's compute engine requires
    trace = stored(store, "trace")
    by_source = trace.group_by("source").aggregate([("flow", "count")])
    assert sorted(by_source["source"].to_pylist()) == sorted(str(p) for p in files)


def test_runs_that_add_hops_of_hosts_whose_packets_cross_learn_the_clocks_from_footers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway and a server whose connections cross them (the two-host lab replayed 48
    times, 40 s apart; the server's clock 37 s ahead, rebooted at another time), each host's
    log rotated three times and read a file pair a run: the clocks (boot times, the hosts'
    link and offset) are learned again from what the kept files' footers counted, not from
    their hops, within the drift stored clocks are compared with; the tables are those of one
    run over the files so far."""
    out = tmp_path / "fleet"
    generator = ROOT / "benchmarks" / "generate_fleet.py"
    subprocess.run(
        [sys.executable, str(generator), str(out), "--hosts", "0", "--pairs", "1",
         "--copies", "48", "--step", "40"],
        check=True, capture_output=True,
    )  # fmt: skip
    logs = [out / "gw0.log", th.shifted(out / "srv0.log", 37.0, 123_456.5, tmp_path)]
    runs = []
    for number in range(4):
        run = []
        for log in logs:
            lines = log.read_bytes().splitlines(keepends=True)
            path = tmp_path / f"{log.stem}.{3 - number}"
            path.write_bytes(
                b"".join(lines[len(lines) * number // 4 : len(lines) * (number + 1) // 4])
            )
            run.append(path)
        runs.append(run)
    learned_again, learn = logpath.assembly._learned_again, logpath.assembly.learn_hop_clocks
    compared: list[tuple[Clocks, Clocks]] = []

    def counted(store: Store, settled: Any, hops: pa.Table, lines: Any, stored: Any) -> Any:
        if settled is None:
            return learned_again(store, settled, hops, lines, stored)
        monkeypatch.setattr(logpath.assembly, "learn_hop_clocks", None)  # not called
        monkeypatch.setattr(store, "assembled_files", None)  # the kept files not read
        clocks = learned_again(store, settled, hops, lines, stored)
        monkeypatch.undo()
        kept = Store(store.path).assembled_files(settled.kept["trace"]).read(CLOCK_COLUMNS)
        every = pa.concat_tables([kept, hops.select(CLOCK_COLUMNS).cast(kept.schema)])
        compared.append((clocks, learn(every, to_frame(every.select(["host", "ts", "uptime"])))))
        return clocks

    store = Store(tmp_path / "store")
    with monkeypatch.context() as patched:
        # files of a slice of a minute each: most of them stay as an earlier run wrote them
        patched.setattr(logpath.store, "SLICE_SECONDS", 60)
        patched.setattr(logpath.store, "SLICE_HOPS", 1)
        for number, run in enumerate(runs):
            patched.setattr(logpath.assembly, "_learned_again", counted)
            ingest([str(p) for p in run], store)
            patched.setattr(logpath.assembly, "_learned_again", learned_again)
            once = Store(tmp_path / f"once-{number}")
            ingest([str(p) for done in runs[: number + 1] for p in done], once)
            for kind in ("flows", "trace"):
                # the same values; a dictionary's order may differ (each run's files have
                # their own: ``source`` lists a run's two files, one-shot all of them)
                assert decoded(stored(store, kind)).equals(decoded(stored(once, kind)))
    assert len(compared) >= 2, compared
    for clocks, exact in compared:
        assert clocks.links == exact.links == {("gw0", "srv0")}
        assert _clocks_agree(clocks, exact)
        ahead = clocks.ahead["srv0"] - clocks.ahead["gw0"]
        assert ahead == pytest.approx(37.0, abs=0.01)


def test_new_hops_that_change_the_bridges_facts_assemble_the_open_tail_again(
    rotated: tuple[Path, Path], first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connections the new hops do not reach stand on the bridges' facts learned from the
    open tail; when the facts learned after the assembly differ (here: made to), the whole
    open tail is assembled again, each chunk learning its own, as before."""
    store = copied(first_run, tmp_path / "store")
    learned = logpath.assembly.learned_bridges
    calls: list[object] = []

    def changed(tables: list[pa.Table]) -> object:
        facts = learned(tables)
        calls.append(facts)
        return {} if len(calls) == 2 else facts  # the check after the assembly

    monkeypatch.setattr(logpath.assembly, "learned_bridges", changed)
    traced = traced_hops(monkeypatch)
    before = store.count_hops()
    ingest([str(rotated[1])], store)
    added = store.count_hops() - before
    assert len(calls) == 2 and calls[0]  # the replay's docker0 is a bridge
    # the reached connections (18,963 hops), then every open one (53,340)
    assert len(traced) == 2 and traced[0] < 1.1 * added < 2 * added < traced[1], traced
    once = Store(tmp_path / "once")
    ingest([str(p) for p in rotated], once)
    for kind in ("flows", "trace"):
        assert stored(store, kind).equals(stored(once, kind)), kind


def test_bridges_are_learned_from_tables_whose_dictionaries_differ(tmp_path: Path) -> None:
    """The stored trace's rows and a chunk's traced hops come from different files, each with
    its own dictionaries (host, interfaces): Arrow's group-by refused them (a follow's worker
    assembly failed so). The facts are those learned from the hops read as one frame."""
    traces = []
    for capture in ("c2c.log", "masquerade.log"):
        store = Store(tmp_path / capture)
        ingest([str(LAB / capture)], store)
        traces.append(stored(store, "trace"))
    first, second = (t["in_iface"].combine_chunks().dictionary for t in traces)
    assert not first.equals(second)
    learned = logpath.assembly.learned_bridges(traces)
    assert learned and set(learned) == {("lab-host", "lpbr0")}
    frame = pd.concat([to_frame(t) for t in traces], ignore_index=True)
    assert learned == logpath.bridge.learn_bridges(frame)


def test_a_packet_cut_by_a_rotation_is_joined_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file rotated between the hops of one packet (a DNAT'ed SYN: its PREROUTING hops
    before, its FORWARD and POSTROUTING hops, which show the translated tuple, after): the
    new hops reach the stored connection through the packet still open, not its tuple, and
    it is assembled again, whole; a connection nothing reaches stays as stored."""
    # the lab's captures span seconds: a packet is still open for ~100 µs here, so that the
    # masquerade connection a second older is one the new hops could only reach by tuple
    monkeypatch.setattr(logpath.assembly, "PACKET_REACH", 1e-4)
    dnat = (LAB / "dnat.log").read_bytes().splitlines(keepends=True)
    older, newer = tmp_path / "syslog.1", tmp_path / "syslog"
    older.write_bytes((LAB / "masquerade.log").read_bytes() + b"".join(dnat[:3]))
    newer.write_bytes(b"".join(dnat[3:7]))
    store = Store(tmp_path / "store")
    ingest([str(older)], store)
    assert len(find_flows(store, FlowQuery())) == 2
    traced = traced_hops(monkeypatch)
    ingest([str(newer)], store)
    assert traced == [7]  # the SYN's seven hops, not the masquerade connection's
    once = Store(tmp_path / "once")
    ingest([str(older), str(newer)], once)
    for kind in ("flows", "trace"):
        assert stored(store, kind).equals(stored(once, kind)), kind
    syn = [f for f in find_flows(store, FlowQuery()) if f.hops == 7]
    assert len(syn) == 1 and [t.type for t in syn[0].nat] == ["dnat"]


def test_an_older_file_after_a_newer_one(
    rotated: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its hops come before every stored one: everything is assembled again (and right)."""
    store = Store(tmp_path / "store")
    ingest([str(rotated[1])], store)
    traced = traced_hops(monkeypatch)
    ingest([str(rotated[0])], store)
    assert sum(traced) == store.count_hops()
    again = reassembled(store)
    assert stored(store, "flows").equals(again.flows)
    assert stored(store, "trace").equals(again.trace)


def test_a_new_ruleset_or_new_conventions_assemble_everything(
    rotated: tuple[Path, Path], first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hops NAT, bridge and hooks were found from are the same, what they mean is not
    ruleset = load_ruleset(ROOT / "samples" / "rules" / "lab-host.iptables-save.rules").to_json()
    store = copied(first_run, tmp_path / "rules")
    traced = traced_hops(monkeypatch)
    ingest([str(rotated[1])], store, ruleset=ruleset)  # type: ignore[arg-type]
    assert sum(traced) == store.count_hops()
    assert stored(store, "trace").equals(reassembled(store).trace)
    # the user's own prefix conventions, read by every assembly from now on
    config = tmp_path / "config"
    (config / "logpath").mkdir(parents=True)
    (config / "logpath" / "prefixes.toml").write_text(
        "[[convention]]\nname = 'acme'\npattern = '^ACME-(?P<hook>IN|OUT) '\n"
        "hook = '{hook}'\nhook_map = { IN = 'INPUT', OUT = 'OUTPUT' }\n"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    store = copied(first_run, tmp_path / "conventions")
    traced.clear()
    ingest([str(rotated[1])], store)
    assert sum(traced) == store.count_hops()


def test_a_run_of_lines_stored_already_assembles_nothing(
    first_run: Store, rotated: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = copied(first_run, tmp_path / "store")
    assembly = store.require().assembly
    renamed = tmp_path / "syslog.2"  # the same lines under another name: recognised
    shutil.copy(rotated[0], renamed)
    traced = traced_hops(monkeypatch)
    summary = ingest([str(renamed)], store)
    assert summary.already_stored == CUT and summary.hops == 0
    assert traced == [] and store.require().assembly == assembly


def test_hops_without_wall_clock_time_assemble_everything(
    first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dmesg capture has uptimes and no date: its hops cannot be placed among the stored
    ones, so every hop is assembled again, in one chunk, as from scratch."""
    store = copied(first_run, tmp_path / "store")
    traced = traced_hops(monkeypatch)
    ingest([str(LAB / "udp.dmesg")], store)
    assert traced == [store.count_hops()]
    assert stored(store, "trace").equals(reassembled(store).trace)


def test_stored_clocks_stand_while_new_lines_move_them_a_little() -> None:
    stored = Clocks(boot={"gw": 1000.0, "web": 2000.0}, ahead={"gw": 0.0, "web": 3.25})
    # a boot time learned again over more lines: both hosts' lines move alike (the offset
    # learned from them moves with it)
    assert _clocks_agree(
        Clocks(boot={"gw": 1000.05, "web": 2000.02}, ahead={"gw": 0.0, "web": 3.22}), stored
    )
    assert not _clocks_agree(
        Clocks(boot={"gw": 1000.0 + 2 * BOOT_DRIFT, "web": 2000.0 + 2 * BOOT_DRIFT},
               ahead={"gw": 0.0, "web": 3.25}),
        stored,
    )  # fmt: skip
    # one host moved against the other: packets across them may join otherwise
    assert not _clocks_agree(
        Clocks(
            boot={"gw": 1000.0, "web": 2000.0}, ahead={"gw": 0.0, "web": 3.25 + 2 * PLACEMENT_DRIFT}
        ),
        stored,
    )
    # a host seen for the first time, or a link between hosts learned now
    assert not _clocks_agree(Clocks(boot={**stored.boot, "db": 5.0}, ahead=stored.ahead), stored)
    assert not _clocks_agree(Clocks(boot=stored.boot, ahead={}), stored)


def test_the_trace_built_a_file_at_a_time_is_the_trace_built_whole(
    rotated: tuple[Path, Path], first_run: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store writes the trace a file at a time, each file's rows built from what assembly
    found and the hops' own columns (``TraceRows``: the whole trace beside the hops was the
    peak of an ingest's assembly), after the stored connections an ingest that adds hops keeps
    as they were read (its head). Any rows, taken or sliced, few or many, are those rows of the
    trace built whole, and the stored trace is that table."""
    written: list[Any] = []
    add_assembled = StoreWriter.add_assembled

    def noted(writer: StoreWriter, tables: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        written.append(tables["trace"])
        add_assembled(writer, tables, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "add_assembled", noted)
    store = Store(tmp_path / "store")
    ingest([str(p) for p in FIRST], store, year=2025)  # from scratch
    store = copied(first_run, tmp_path / "added")
    ingest([str(rotated[1])], store)  # the new hops assembled after the stored head
    assert [rows.head is not None for rows in written] == [False, True]
    for rows in written:
        assert isinstance(rows, logpath.assembly.TraceRows)
        whole = rows.table()
        assert whole.num_rows == rows.num_rows > 100
        assert rows["flow_n"].equals(whole["flow_n"])
        picks = np.random.default_rng(7).permutation(whole.num_rows)
        for few in (1, 37, whole.num_rows // 3, whole.num_rows):  # (two ways: see _built)
            for chosen in (picks[:few], np.sort(picks[:few])):
                assert plain(rows.take(pa.array(chosen))).equals(plain(whole.take(chosen)))
            for start in (0, few // 2, whole.num_rows - few):
                assert plain(rows.slice(start, few)).equals(plain(whole.slice(start, few)))
        # or only some of their columns (a file written a row group at a time builds so)
        some = ["ts", "host", "fate", "flow", "src", "uptime"]
        chosen = np.sort(picks[: whole.num_rows // 3])
        taken = rows.take(chosen, columns=some)  # in the trace's order of columns
        assert plain(taken).equals(plain(whole.take(chosen).select(taken.column_names)))
        for start in (0, whole.num_rows // 2):
            part = rows.slice(start, 37, columns=some)
            assert part.column_names == ["ts", "uptime", "host", "src", "flow", "fate"]
            assert plain(part).equals(plain(whole.slice(start, 37).select(part.column_names)))
    trace = plain(stored(store, "trace"))
    assert trace.equals(plain(written[-1].table()))
    assert trace.equals(plain(reassembled(store).trace))


def test_a_file_written_a_row_group_at_a_time_is_the_file_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of more than a row group is written a row group at a time, its rows built as
    each is written (the two files built whole at once were the peak of an ingest): the same
    rows, dictionaries, footer notes and manifest entry as the file written whole."""

    def ingested(name: str, row_group: int) -> tuple[Store, list[Path]]:
        monkeypatch.setattr(logpath.assembly, "ROW_GROUP_ROWS", row_group)
        store = Store(tmp_path / name)
        ingest([str(p) for p in FIRST + LATER], store)
        files = sorted((store.path / "assembled").glob("trace-*.parquet"))
        return store, files

    whole, whole_files = ingested("whole", 1 << 30)
    grouped, grouped_files = ingested("grouped", 64)
    assert len(whole_files) == len(grouped_files)
    written_by_groups = 0
    for one, other in zip(whole_files, grouped_files, strict=True):
        a, b = pq.ParquetFile(one), pq.ParquetFile(other)
        assert a.metadata.num_row_groups == 1
        assert b.metadata.num_row_groups == -(-b.metadata.num_rows // 64)
        written_by_groups += b.metadata.num_row_groups > 1
        assert a.schema_arrow.metadata == b.schema_arrow.metadata  # the clocks' notes
        rows_a, rows_b = a.read(), b.read()
        assert rows_a.schema.equals(rows_b.schema)
        assert rows_a.combine_chunks().equals(rows_b.combine_chunks())  # dictionaries too
    assert written_by_groups >= 1

    def entries(store: Store) -> list[dict[str, Any]]:
        assembly = store.require().assembly or {}
        return [{k: v for k, v in e.items() if k != "file"} for e in assembly["trace"]]

    assert entries(whole) == entries(grouped)
    assert stored(grouped, "trace").equals(stored(whole, "trace"))


def plain(table: pa.Table) -> pa.Table:
    """The table's values, whatever their chunks and dictionaries (a head's rows and the
    rows built after them each have their own)."""
    decoded = [
        column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
        for column in table.columns
    ]
    return pa.table(decoded, names=table.column_names).combine_chunks()


def test_a_chunks_rows_sliced_are_the_rows_taken(replayed: Store) -> None:
    """A chunk's rows are its hops in time order after a few carried from the chunk before:
    taken as slices of the hops when they make few runs, they are the rows ``take`` gives,
    read as the stages read them, even from chunks whose dictionaries differ (an ingest's
    blocks each have their own, in the order the block first shows a value)."""
    hops = replayed.read_parts(replayed.require().parts, logpath.assembly.HOP_COLUMNS)
    wanted = [c for c in logpath.assembly.PIPELINE_COLUMNS if c in hops.column_names]
    hops = hops.select(wanted)

    def reversed_dictionaries(part: pa.Table) -> pa.Table:
        backwards = pa.array(np.arange(part.num_rows)[::-1])
        return pa.table(
            [
                pc.dictionary_encode(c.take(backwards).cast(c.type.value_type)).take(backwards)
                if pa.types.is_dictionary(c.type)
                else c
                for c in part.columns
            ],
            schema=part.schema,
        )

    blocks = pa.concat_tables(
        [reversed_dictionaries(hops.slice(i, 9_973)) for i in range(0, hops.num_rows, 9_973)]
    )
    assert hops.num_rows > 80_000
    carried = np.sort(np.random.default_rng(7).choice(30_000, 12, replace=False))
    for rows in (
        np.arange(30_000, 70_000),
        np.r_[carried, np.arange(30_000, 70_000)],  # the slices path: 13 runs
        np.r_[np.arange(0, 40_000, 3), np.arange(50_000, 51_000)],  # runs of one: taken
        np.arange(5, 200),
    ):
        for table in (hops, blocks):
            sliced = to_frame(logpath.assembly._rows_of(table, rows))
            pd.testing.assert_frame_equal(sliced, to_frame(table.take(pa.array(rows))))
