"""A fleet on Dask (issue 14): ingest and flows on a cluster print what they print here.

The inputs are genuine lab captures of several hosts: the two-host lab (samples/lab/two-hosts/:
connections crossing a MASQUERADE gateway and a DNAT server), replayed by
benchmarks/generate_fleet.py a few minutes apart for two host pairs with fresh ports and IP IDs,
beside a Docker host replayed by benchmarks/replay_syslog.py.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from logpath.assembly import HOP_COLUMNS, SETTLED_AFTER, assemble
from logpath.cli import app
from logpath.errors import InputError
from logpath.ingest import ingest, parse_chunk
from logpath.lines import Block
from logpath.store import Store

ROOT = Path(__file__).resolve().parent.parent
TWO_HOSTS = ROOT / "samples" / "lab" / "two-hosts"
LAB_FILES = sorted(str(p) for p in TWO_HOSTS.glob("*.log"))
# a TCP connection of the two-host lab: client behind hosta's MASQUERADE, hostb's DNAT
LAB_FLOW = "cf74acb096-34562"
runner = CliRunner()
# found, not imported: the test that dask is never imported runs in a fresh process anyway
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="dask is not installed (pip install -e '.[test,dask]')",
)


@pytest.fixture(scope="module")
def fleet_hops(fleet: list[str], tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    store = Store(tmp_path_factory.mktemp("fleet-store"))
    ingest(fleet, store, year=2025)
    return store.read_parts(store.require().parts, HOP_COLUMNS)


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[Any]:
    """Two workers in this process's threads (a 2-core machine; the tasks are the same)."""
    from distributed import Client, LocalCluster

    from logpath.fleet import Cluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield Cluster(client, "inproc")


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.stderr
    return result


def crossing_flows(flows: pa.Table, trace: pa.Table) -> int:
    """Connections whose hops were logged by more than one host."""
    hosts = (
        pa.table({"flow": trace["flow"], "host": trace["host"].cast(pa.string())})
        .group_by("flow")
        .aggregate([("host", "count_distinct")])
    )
    return int(pc.sum(pc.greater(hosts["host_count_distinct"], 1)).as_py() or 0)


def test_without_a_scheduler_dask_is_never_imported(tmp_path: Path) -> None:
    script = f"""
import sys
from typer.testing import CliRunner
from logpath.cli import app
store = {str(tmp_path / "store")!r}
for args in (["ingest", *{LAB_FILES!r}, "--store", store, "--json"],
             ["flows", "--store", store, "--all", "--json"],
             ["journey", "{LAB_FLOW}", "--store", store, "--json"],
             ["report", "--store", store, "-o", {str(tmp_path / "report")!r}]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout == "[]\n"


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then let go)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
    return port


# each command's arguments but the store (the report's directory is under the test's own)
QUESTIONS = {
    "ingest": [*LAB_FILES, "--json"],
    "flows": ["--all", "--json"],
    "journey": [LAB_FLOW, "--json"],
    "report": ["-o", "report"],
}


@needs_dask
@pytest.mark.parametrize("command", list(QUESTIONS))
@pytest.mark.parametrize("given", ["option", "environment"])
def test_an_unreachable_scheduler_is_a_clear_error(
    tmp_path: Path, command: str, given: str
) -> None:
    address = f"tcp://127.0.0.1:{closed_port()}"
    store = tmp_path / "store"
    given_args = [str(tmp_path / a) if a == "report" else a for a in QUESTIONS[command]]
    args = [command, *given_args, "--store", str(store)]
    if command != "ingest":
        run("ingest", *LAB_FILES, "--store", str(store), "--json")
    env = {"DASK_SCHEDULER_ADDRESS": address} if given == "environment" else {}
    if given == "option":
        args += ["--scheduler", address]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"logpath: cannot reach the Dask scheduler at {address} (Connection refused)\n\n"
        "Check the address (tcp://HOST:PORT) and that `dask scheduler` runs there, or use "
        "--scheduler local\n"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "report").exists()  # nothing written
    if command == "ingest":
        assert not store.exists()  # nothing was stored


@pytest.fixture(scope="module")
def local_assembly(fleet_hops: pa.Table) -> Any:
    return assemble(fleet_hops)


@needs_dask
@pytest.mark.parametrize(
    ("seconds", "seams"),
    [
        # windows of two SETTLED_AFTER: the 80 minutes of the fleet sample in three or more,
        # each edge a seam where connections of the host pairs are open, each seam a task
        (2 * SETTLED_AFTER, "apart"),
        # windows of one: every connection is near both ends of its window, so every seam
        # joins the next, one task
        (SETTLED_AFTER, "joined"),
    ],
)
def test_windows_on_a_cluster_give_the_local_assembly(
    fleet_hops: pa.Table, local_assembly: Any, local_cluster: Any, seconds: float, seams: str
) -> None:
    from distributed import get_task_stream

    from logpath.fleet import assemble_in_windows, plan_windows

    here = local_assembly
    with get_task_stream(local_cluster.client) as tasks:
        there = assemble_in_windows(
            local_cluster, fleet_hops, window_hops=500, window_seconds=seconds
        )
    plan = plan_windows(fleet_hops, 500, seconds)
    windows, groups = len(plan.windows), plan.partitions()
    # the Docker host and each host pair apart: no packet links them
    assert len(groups) == 3
    assert windows >= 3
    # every window, then the seams between a group's windows, assembled on the workers
    assembled = [t for t in tasks.data if t["key"].startswith("assemble_later-")]
    if seams == "apart":
        assert windows < len(assembled) <= 2 * windows - len(groups)
    else:
        assert len(assembled) == windows + sum(len(group) > 1 for group in groups)
    assert crossing_flows(here.flows, here.trace) >= 100
    assert there.flows.equals(here.flows)
    assert there.trace.equals(here.trace)
    assert there.clocks == here.clocks


@needs_dask
def test_ingest_and_flows_on_a_local_cluster_print_what_they_print_here(
    fleet: list[str], tmp_path: Path
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    env = {"LOGPATH_WORKERS": "2"}
    ingested = run("ingest", *fleet, "--store", str(here), "--year", "2025", "--json")
    on_cluster = run(
        "ingest", *fleet, "--store", str(there), "--year", "2025", "--json",
        "--scheduler", "local", env=env,
    )  # fmt: skip
    assert on_cluster.stdout == ingested.stdout
    assert json.loads(on_cluster.stdout)["hops"] > 5000
    # the workers (on this machine) wrote the hop parts themselves, one per block with hops,
    # named by the committer in the inputs' order; here, one part for the run
    parts = json.loads((there / "manifest.json").read_text())["parts"]
    assert len(parts) > 1
    assert all(re.fullmatch(r"hops-[0-9a-f]{12}-\d{6}\.parquet", p) for p in parts), parts
    assert sorted(p.name for p in (there / "hops").iterdir()) == sorted(parts)
    assert len(json.loads((here / "manifest.json").read_text())["parts"]) == 1
    # the assembled tables in the same files: a file per group of hosts (three) and slice of
    # time, each entry alike but for the run's name
    for kind in ("flows", "trace"):
        files = [
            [{k: v for k, v in entry.items() if k != "file"} for entry in assembly[kind]]
            for assembly in (
                json.loads((store / "manifest.json").read_text())["assembly"]
                for store in (here, there)
            )
        ]
        assert files[0] == files[1]
        assert len({tuple(entry["hosts"]) for entry in files[0]}) == 3
    flows = run("flows", "--store", str(here), "--all", "--json")
    flows_there = run(
        "flows", "--store", str(there), "--all", "--json", "--scheduler", "local", env=env
    )
    assert flows_there.stdout == flows.stdout
    listed = json.loads(flows.stdout)
    crossing = [f for f in listed if len(f["hosts"]) > 1]
    assert len(crossing) >= 100
    # each through the two hosts of one pair, never another pair's
    assert {tuple(f["hosts"]) for f in crossing} == {("gw0", "srv0"), ("gw1", "srv1")}


@needs_dask
def test_workers_read_the_input_files_themselves(
    fleet: list[str], local_cluster: Any, tmp_path: Path
) -> None:
    # the workers reach the inputs (this machine's files): only where a block's bytes are
    # travels to them, and what they parse is what a local ingest parses
    from logpath.fleet import parse_chunk_there

    parsing = local_cluster.parsing()
    on_cluster = ingest(fleet, Store(tmp_path / "there"), year=2025, parsing=parsing)
    here = ingest(fleet, Store(tmp_path / "here"), year=2025)
    assert parsing.shared == {name: os.path.abspath(name) for name in fleet}
    assert on_cluster.hops == here.hops > 5000
    # a file rewritten after the ingest read it is refused, not parsed as other lines
    log = tmp_path / "kern.log"
    log.write_bytes(Path(fleet[0]).read_bytes()[:50_000])
    data = log.read_bytes()[:10_000]
    data = data[: data.rfind(b"\n") + 1]
    block = Block(1, data.count(b"\n"), b"", offset=0)
    read = (str(log), 0, len(data), zlib.crc32(data))
    mtime = dt.datetime.now(dt.UTC)
    parsed = parse_chunk_there(read, None, str(log), mtime, 2025, block, 0)
    sent = parse_chunk(str(log), mtime, 2025, Block(1, block.count, data), 0)
    assert parsed.hops.num_rows >= 10 and parsed.hops.equals(sent.hops)
    log.write_bytes(b"Dec  4 " + data[7:])
    with pytest.raises(InputError, match=r"kern\.log: the file changed while it was ingested"):
        parse_chunk_there(read, None, str(log), mtime, 2025, block, 0)


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[str]:
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1; its address."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            **quiet,
        )
    ]
    try:
        for _ in range(600):
            if scheduler_file.exists() and scheduler_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        started += [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dask",
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--host",
                    "127.0.0.1",
                    "--local-directory",
                    str(tmp_path),
                ],
                **quiet,
            )
            for _ in range(2)
        ]
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@needs_dask
def test_a_scheduler_and_two_workers_on_this_host(dask_processes: str, tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    ingested = run("ingest", *LAB_FILES, "--store", str(here), "--json")
    on_cluster = run(
        "ingest", *LAB_FILES, "--store", str(there), "--json", "--scheduler", dask_processes
    )
    assert on_cluster.stdout == ingested.stdout
    # the worker processes (at 127.0.0.1) wrote each lab file's hops as a part themselves
    parts = json.loads((there / "manifest.json").read_text())["parts"]
    assert len(parts) == len(LAB_FILES) and all(
        re.fullmatch(r"hops-[0-9a-f]{12}-\d{6}\.parquet", p) for p in parts
    )
    flows = run("flows", "--store", str(here), "--all", "--json")
    flows_there = run(
        "flows",
        "--store",
        str(there),
        "--all",
        "--json",
        env={"DASK_SCHEDULER_ADDRESS": dask_processes},
    )
    assert flows_there.stdout == flows.stdout
    listed = json.loads(flows.stdout)
    assert {tuple(f["hosts"]) for f in listed} == {("hosta", "hostb")}
    # a second run on the cluster continues the first: every line is already stored
    again = json.loads(
        run(
            "ingest", *LAB_FILES, "--store", str(there), "--json", "--scheduler", dask_processes
        ).stdout
    )
    assert (again["lines"], again["hops"], again["already_stored"]) == (0, 0, 410)


@pytest.fixture
def stale(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Two stores of the two-host captures whose stored assembly is stale under the
    environment returned with them: one to question here, one on a cluster."""
    here, there = tmp_path / "here", tmp_path / "there"
    for store in (here, there):
        run("ingest", *LAB_FILES, "--store", str(store), "--json")
    # the user's own prefix conventions: every stored assembly is stale (test_assembly.py)
    config = tmp_path / "config"
    (config / "logpath").mkdir(parents=True)
    (config / "logpath" / "prefixes.toml").write_text(
        "[[convention]]\nname = 'acme'\npattern = '^ACME-(?P<hook>IN|OUT) '\n"
        "hook = '{hook}'\nhook_map = { IN = 'INPUT', OUT = 'OUTPUT' }\n"
    )
    return here, there, {"XDG_CONFIG_HOME": str(config), "LOGPATH_WORKERS": "2"}


@needs_dask
def test_flows_on_a_cluster_assemble_a_stale_store_there(
    stale: tuple[Path, Path, dict[str, str]],
) -> None:
    here, there, env = stale
    flows = run("flows", "--store", str(here), "--all", "--json", env=env)
    assert flows.stderr == f"{here}: assembling the connections of the stored hops…\n"
    on_cluster = run(
        "flows", "--store", str(there), "--all", "--json", "--scheduler", "local", env=env
    )
    assert on_cluster.stderr == f"{there}: assembling the connections on local…\n"
    assert on_cluster.stdout == flows.stdout
    assert len(json.loads(flows.stdout)) == 6  # the two TCP connections, the four exchanges
    # kept: the question after it reads the tables the cluster assembled
    again = run("flows", "--store", str(there), "--all", "--json", env=env)
    assert (again.stderr, again.stdout) == ("", flows.stdout)


@needs_dask
def test_journeys_on_a_cluster_are_the_journeys_here(
    stale: tuple[Path, Path, dict[str, str]],
) -> None:
    here, there, env = stale
    ids = [f["id"] for f in json.loads(run("flows", "--store", str(here), "--json").stdout)]
    assert LAB_FLOW in ids
    journeys = {}
    for flow_id in ids:  # the first assembles here, and keeps the tables
        journey = run("journey", flow_id, "--store", str(here), "--json", env=env)
        said = f"{here}: assembling the connections of the stored hops…\n"
        assert journey.stderr == (said if flow_id == ids[0] else "")
        journeys[flow_id] = journey.stdout
    crossing = json.loads(journeys[LAB_FLOW])
    assert {hop["host"] for p in crossing["packets"] for hop in p["hops"]} == {"hosta", "hostb"}
    # stale: assembled on the cluster, and kept
    on_cluster = run(
        "journey", LAB_FLOW, "--store", str(there), "--json", "--scheduler", "local", env=env
    )
    assert on_cluster.stderr == f"{there}: assembling the connections on local…\n"
    assert on_cluster.stdout == journeys[LAB_FLOW]
    # fresh now: read here, with a scheduler as without one
    for flow_id in ids:
        args = ("journey", flow_id, "--store", str(there), "--json")
        scheduler = ("--scheduler", "local") if flow_id == ids[0] else ()
        again = run(*args, *scheduler, env=env)
        assert (again.stderr, again.stdout) == ("", journeys[flow_id])


def report_files(out: Path, store: Path) -> dict[str, str]:
    """A report's files by name, the store's path and the time it was made left out (the
    only things two reports of the same connections may differ in)."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8").replace(str(store), "STORE")
        files[str(path.relative_to(out))] = re.sub(r"Generated [^ ]+ from", "Generated", text)
    return files


@needs_dask
def test_a_report_on_a_cluster_is_the_report_here(
    stale: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    here, there, env = stale
    run("report", "--store", str(here), "-o", str(tmp_path / "r-here"), env=env)
    made = run(
        "report", "--store", str(there), "-o", str(tmp_path / "r-there"),
        "--scheduler", "local", env=env,
    )  # fmt: skip
    assert made.stderr == f"{there}: assembling the connections on local…\n"
    assert made.stdout == f"{tmp_path / 'r-there' / 'index.html'}: 6 connection(s), 6 diagram(s)\n"
    expected = report_files(tmp_path / "r-here", here)
    assert report_files(tmp_path / "r-there", there) == expected
    assert len(expected) == 13  # index.html, a page and a diagram for each connection
    assert f"flows/{LAB_FLOW}.html" in expected


def test_a_scheduler_without_dask_installed_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` then fails
    result = runner.invoke(
        app, ["ingest", *LAB_FILES, "--store", str(tmp_path), "--scheduler", "local"]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "logpath: --scheduler local: dask is not installed\n\n"
        "Install the extra: pip install 'logpath[dask]'\n"
    )
    assert not list(tmp_path.iterdir())
