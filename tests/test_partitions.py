"""The assembled tables as files per group of linked hosts and slice of time (issue 14): each
file's manifest entry says what it can hold, and a question opens only the files that can hold
its answer.

What a question did not read is shown by damage, not by counting calls: every file a question
must not need is overwritten (its Parquet magic kept, so that the store's check of its parts
still passes, but nothing in between) and the answer is still the answer of the same tables
stored as one file each, as a store written before partitions holds them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from seedstore import replayed_syslog
from typer.testing import CliRunner

import logpath.assembly
import logpath.store
from logpath.assembly import HOP_COLUMNS, assemble
from logpath.cli import app
from logpath.ingest import ingest
from logpath.store import Store

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def small_slices() -> Iterator[None]:
    """Slices of 10 minutes, however few hops: the fleet sample's 80 minutes in several."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logpath.store, "SLICE_SECONDS", 600)
        patch.setattr(logpath.store, "SLICE_HOPS", 1)
        yield


@pytest.fixture(scope="module")
def partitioned(
    fleet: list[str], small_slices: None, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("partitioned") / "store"
    ingest(fleet, Store(path), year=2025)
    return path


@pytest.fixture(scope="module")
def one_file(partitioned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same store with each assembled table in one file, its manifest naming it as a store
    written before partitions does."""
    path = Path(shutil.copytree(partitioned, tmp_path_factory.mktemp("one-file") / "store"))
    manifest = json.loads((path / "manifest.json").read_text())
    for kind in ("flows", "trace"):
        rows = Store(partitioned).assembled_rows(kind)
        assert rows is not None
        pq.write_table(rows.read(), path / "assembled" / f"{kind}-whole.parquet")
        for entry in manifest["assembly"][kind]:
            (path / "assembled" / entry["file"]).unlink()
        manifest["assembly"][kind] = f"{kind}-whole.parquet"
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def entries(store: Path, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads((store / "manifest.json").read_text())["assembly"][
        kind
    ]
    return found


def output(store: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--store", str(store)])
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def damaged(store: Path, names: list[str]) -> Path:
    """A copy of ``store`` where these assembled files cannot be read (each still starts and
    ends with Parquet's magic)."""
    copy = Path(shutil.copytree(store, Path(tempfile.mkdtemp(dir=store.parent)) / "store"))
    for name in names:
        (copy / "assembled" / name).write_bytes(b"PAR1" + b"\xff" * 64 + b"PAR1")
    return copy


def micros(when: datetime) -> int:
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_the_tables_are_cut_by_host_group_and_time(
    partitioned: Path, one_file: Path, fleet: list[str]
) -> None:
    store = Store(partitioned)
    for kind in ("flows", "trace"):
        files = entries(partitioned, kind)
        groups = {tuple(e["hosts"]) for e in files}
        # the Docker host and the two host pairs: no packet links them
        assert len(groups) == 3
        assert all(set(a).isdisjoint(b) for a in groups for b in groups if a != b)
        assert max(sum(tuple(e["hosts"]) == g for e in files) for g in groups) >= 4  # slices
        for entry in files:
            table = pq.read_table(partitioned / "assembled" / entry["file"])
            assert entry["rows"] == table.num_rows > 0
            for column, (least, most) in entry["ranges"].items():
                values = table[column].cast(pa.int64())
                assert [pc.min(values).as_py(), pc.max(values).as_py()] == [least, most]
            # sorted as the whole table: a file's row groups skip by flow_n
            numbers = table["flow_n"].to_numpy()
            assert (numbers[1:] >= numbers[:-1]).all()
            # ... and by time: the statistics of those columns are kept, of no other
            meta = pq.ParquetFile(partitioned / "assembled" / entry["file"]).metadata
            kept = {
                meta.schema.column(i).name
                for i in range(meta.num_columns)
                if meta.row_group(0).column(i).is_stats_set
            }
            times = {"first_seen", "last_seen"} if kind == "flows" else {"ts"}
            assert kept == {"flow_n", *times}
            # ... and a dictionary for the texts (their values repeat), of no other
            texts = {
                f.name
                for f in table.schema
                if pa.types.is_string(f.type) or pa.types.is_dictionary(f.type)
            }
            assert {"src", "flow", "hook"} <= texts or {"id", "orig_src", "nat"} <= texts
            coded = {
                meta.schema.column(i).name
                for i in range(meta.num_columns)
                if meta.row_group(0).column(i).has_dictionary_page
            }
            assert coded == texts
    # read back, the files are the tables of one assembly of every hop
    hops = store.read_parts(store.require().parts, HOP_COLUMNS)
    scratch = assemble(hops, None)
    flows, trace = store.assembled_rows("flows"), store.assembled_rows("trace")
    assert flows is not None and trace is not None
    assert flows.read().equals(scratch.flows)
    assert trace.read().equals(scratch.trace)
    # and every question of a store of one file each gets the same answers
    for args in (
        ["flows", "--all", "--json"],
        ["flows", "--port", "80", "--csv"],
        ["hops", "--json"],
    ):
        assert output(partitioned, *args) == output(one_file, *args)


def test_a_window_reads_the_files_of_its_time_only(partitioned: Path, one_file: Path) -> None:
    # 20 minutes of one host pair, from the start of one of its connections
    flows = json.loads(output(one_file, "flows", "--all", "--json"))
    pair = [f for f in flows if f["first_seen"] and len(f.get("hosts") or []) > 1]
    start = datetime.fromisoformat(pair[len(pair) // 2]["first_seen"])
    since, until = start.isoformat(), (start + timedelta(minutes=20)).isoformat()
    question = ["flows", "--since", since, "--until", until, "--json"]
    answer = output(one_file, *question)
    assert len(json.loads(answer)) >= 10
    assert output(partitioned, *question) == answer
    # the trace files whose hops are all outside the window, and the flows files of their
    # partitions: none of them is opened
    low, high = micros(start), micros(start + timedelta(minutes=20))
    outside = {
        e["partition"]
        for e in entries(partitioned, "trace")
        if e["ranges"]["ts"][1] < low or e["ranges"]["ts"][0] > high
    }
    unread = [
        e["file"]
        for kind in ("flows", "trace")
        for e in entries(partitioned, kind)
        if e["partition"] in outside
    ]
    files = len(entries(partitioned, "flows")) + len(entries(partitioned, "trace"))
    assert len(unread) >= files * 2 // 3
    assert output(damaged(partitioned, unread), *question) == answer
    # a file it does read, damaged, is named: the damage above would have been seen
    read = [e["file"] for e in entries(partitioned, "trace") if e["partition"] not in outside]
    result = runner.invoke(app, [*question, "--store", str(damaged(partitioned, read[:1]))])
    assert result.exit_code == 1
    assert f"{read[0]}: the store is damaged and cannot be read" in result.stderr


def test_a_journey_reads_the_trace_of_its_partition_only(partitioned: Path, one_file: Path) -> None:
    flows = json.loads(output(one_file, "flows", "--all", "--json"))
    for flow_n in (0, len(flows) // 2, len(flows) - 1):
        flow_id = flows[flow_n]["id"]
        answer = output(one_file, "journey", flow_id, "--json")
        # its id is looked up in every flows file (an id is a hash); its row and its hops are
        # read in its partition only
        mine = _partition_of(partitioned, flow_n)
        others = [e["file"] for e in entries(partitioned, "trace") if e["partition"] != mine]
        assert len(others) == len(entries(partitioned, "trace")) - 1
        assert output(damaged(partitioned, others), "journey", flow_id, "--json") == answer


def _partition_of(store: Path, flow_n: int) -> int:
    """The partition of the flows file that holds connection ``flow_n``."""
    for entry in entries(store, "flows"):
        table = pq.read_table(store / "assembled" / entry["file"], columns=["flow_n"])
        if flow_n in table["flow_n"].to_pylist():
            return int(entry["partition"])
    raise AssertionError(f"no file holds connection {flow_n}")


def test_an_address_reads_the_files_that_list_it(partitioned: Path, one_file: Path) -> None:
    trace = entries(partitioned, "trace")
    listed = [set(e["addresses"]) for e in trace if e["addresses"] is not None]
    assert len(listed) == len(trace)  # a few addresses each: all listed
    # an address of one group of hosts only
    counts: dict[str, int] = {}
    for addresses in listed:
        for address in addresses:
            counts[address] = counts.get(address, 0) + 1
    address = min(counts, key=lambda a: (counts[a], a))
    question = ["flows", "--host", address, "--json"]
    answer = output(one_file, *question)
    assert json.loads(answer)
    holding = {e["partition"] for e in trace if address in e["addresses"]}
    unread = [
        e["file"]
        for kind in ("flows", "trace")
        for e in entries(partitioned, kind)
        if e["partition"] not in holding
    ]
    assert len(unread) > len(trace)
    assert output(damaged(partitioned, unread), *question) == answer


@pytest.fixture(scope="module")
def replay_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~6 minutes of a replayed Docker host."""
    return replayed_syslog(tmp_path_factory.mktemp("replay"), 30_000, 5)


def test_hops_added_give_the_partitions_of_one_run(
    replay_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logpath.store, "SLICE_SECONDS", 60)
    monkeypatch.setattr(logpath.store, "SLICE_HOPS", 1)
    lines = replay_log.read_text().splitlines(keepends=True)
    grown = tmp_path / "syslog"
    grown.write_text("".join(lines[: len(lines) * 2 // 3]))
    twice = tmp_path / "twice"
    ingest([str(grown)], Store(twice))
    grown.write_text("".join(lines))
    added: list[bool] = []
    assemble_added = logpath.assembly.assemble_added

    def watched(*args: Any, **kwargs: Any) -> Any:
        result = assemble_added(*args, **kwargs)
        added.append(result is not None)
        return result

    monkeypatch.setattr(logpath.assembly, "assemble_added", watched)
    ingest([str(grown)], Store(twice))  # adds the last third: assembles what it touches
    assert added == [True]
    monkeypatch.undo()
    monkeypatch.setattr(logpath.store, "SLICE_SECONDS", 60)
    monkeypatch.setattr(logpath.store, "SLICE_HOPS", 1)
    once = tmp_path / "once"
    ingest([str(grown)], Store(once))
    assert len(entries(once, "trace")) >= 4
    for kind in ("flows", "trace"):
        got = [{k: v for k, v in e.items() if k != "file"} for e in entries(twice, kind)]
        assert got == [{k: v for k, v in e.items() if k != "file"} for e in entries(once, kind)]
        # the second run wrote the files its hops reached, and kept the first run's earlier ones
        runs = [e["file"].split("-")[1] for e in entries(twice, kind)]
        assert len(set(runs)) == 2 and runs[0] != runs[-1]
    for args in (["flows", "--all", "--json"], ["hops", "--json"]):
        assert output(twice, *args) == output(once, *args)


@pytest.mark.parametrize(
    "question", [["journey", "{id}", "--json"], ["flows", "--since", "{start}", "--until", "{end}"]]
)
def test_questions_of_several_files_import_no_pandas(
    partitioned: Path, one_file: Path, question: list[str]
) -> None:
    """Files with none of the rows asked for give empty tables, and several files are merged:
    neither brings back pandas' import (half a second) on the path of a question of a few rows
    (tests/test_assembly.py holds the one-file questions to it)."""
    flows = json.loads(output(one_file, "flows", "--all", "--json"))
    flow = flows[len(flows) // 2]
    start = datetime.fromisoformat(flow["first_seen"])
    words = {
        "id": flow["id"],
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=20)).isoformat(),
    }
    argv = ["logpath", *(w.format(**words) for w in question), "--store", str(partitioned)]
    script = (
        "import sys\n"
        "from logpath.cli import main\n"
        f"sys.argv = {argv!r}\n"
        "try:\n    main()\nexcept SystemExit as end:\n    assert not end.code, end.code\n"
        "print('pandas' in sys.modules, file=sys.stderr)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1] == "False", run.stderr
