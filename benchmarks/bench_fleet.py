"""A fleet on Dask (issue 14): ingest and `flows --all` on 1, 2 and 4 workers, against no Dask.

The fleet is benchmarks/generate_fleet.py's: replayed Docker hosts and host pairs whose
connections cross them. For each worker count a `dask scheduler` and that many `dask worker`
processes (one thread each) are started on 127.0.0.1; `logpath ingest --scheduler` fills a new
store and `logpath flows --all --json --scheduler` reads it. Each output is compared with the
run without Dask (it must be equal, byte for byte). The client's wall and CPU seconds are
measured from outside (measure.py); the workers' CPU seconds and peak memory (VmHWM) are read in
each worker after the run: a worker's memory is what a fleet's machines must have. The client's
peak is its whole process tree's (without Dask: the ingest and its parse workers).

The store's hops are cut into fleet.assemble_in_windows' windows (at least WINDOW_HOPS hops and
WINDOW_SECONDS each): the fleet must span several windows for the workers to share the
assembly, hence the Docker hosts' staggered replays (generate_fleet.py --stagger); the windows
are printed.

    python benchmarks/bench_fleet.py --hosts 4 --lines 330000 --stagger 65 --runs 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_fleet import generate
from measure import Measurement, logpath_executable, run_measured

WORKER_COUNTS = (1, 2, 4)


@dataclass
class Run:
    """One command on one cluster (or none)."""

    client: Measurement
    workers_cpu: float  # CPU seconds of all workers during the run
    worker_peak_mib: float  # the largest worker's peak resident memory


@contextmanager
def cluster(workers: int, scratch: Path) -> Iterator[str]:
    """A scheduler and ``workers`` worker processes on 127.0.0.1; its address."""
    from distributed import Client

    scheduler_file = scratch / f"scheduler-{workers}.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            **quiet,
        )
    ]  # fmt: skip
    try:
        while not (scheduler_file.exists() and scheduler_file.stat().st_size):
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        started += [
            subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0",
                 "--local-directory", str(scratch)],
                **quiet,
            )
            for _ in range(workers)
        ]  # fmt: skip
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=120)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            process.wait(timeout=60)


def worker_usage(address: str) -> tuple[float, float]:
    """All workers' CPU seconds so far, and the largest worker's peak memory (MiB)."""
    from distributed import Client

    def usage() -> tuple[float, float]:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        status = Path("/proc/self/status").read_text()
        peak_kb = next(int(line.split()[1]) for line in status.splitlines() if "VmHWM" in line)
        return own.ru_utime + own.ru_stime, peak_kb / 1024

    with Client(address, timeout="30s") as client:
        found = client.run(usage).values()
    return sum(cpu for cpu, _ in found), max(peak for _, peak in found)


def measured(command: list[str], address: str | None) -> Run:
    before = worker_usage(address)[0] if address else 0.0
    client = run_measured(command + (["--scheduler", address] if address else []))
    if client.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{client.stderr}")
    if address is None:
        return Run(client, 0.0, 0.0)
    cpu, peak = worker_usage(address)
    return Run(client, cpu - before, peak)


def ingest_and_flows(files: list[str], store: Path, address: str | None) -> tuple[Run, Run]:
    """``logpath ingest`` into a new ``store``, then ``flows --all --json`` of it."""
    shutil.rmtree(store, ignore_errors=True)
    logpath = logpath_executable()
    ingest = measured([logpath, "ingest", *files, "--store", str(store), "--json"], address)
    flows = measured([logpath, "flows", "--store", str(store), "--all", "--json"], address)
    return ingest, flows


def median_row(label: str, runs: list[Run], baseline: str) -> str:
    wall = statistics.median(r.client.wall_seconds for r in runs)
    client_cpu = statistics.median(r.client.cpu_seconds for r in runs)
    cpu = statistics.median(r.client.cpu_seconds + r.workers_cpu for r in runs)
    peak = max(r.worker_peak_mib for r in runs)
    client_peak = max(r.client.tree_peak_kb for r in runs) / 1024
    same = all(r.client.stdout == baseline for r in runs)
    memory = f"{peak:,.0f} MiB" if peak else "—"
    loads = [r.client.load_before for r in runs]
    return (
        f"| {label} | {wall:.1f} s | {cpu:.1f} CPU-s | {client_cpu:.1f} CPU-s | {memory} | "
        f"{client_peak:,.0f} MiB | {'yes' if same else 'NO'} | {min(loads):.1f}-{max(loads):.1f} |"
    )


def describe_windows(store: Path) -> str:
    """How the store's hops are cut into assembly windows: count, hops and minutes each."""
    from logpath.assembly import HOP_COLUMNS
    from logpath.fleet import plan_windows
    from logpath.store import Store

    opened = Store(store)
    hops = opened.read_parts(opened.require().parts, HOP_COLUMNS)
    plan = plan_windows(hops)
    sizes = [
        f"{len(rows):,} hops over {(plan.when[rows].max() - plan.when[rows].min()) / 60:.0f} min"
        for rows in plan.windows
    ]
    return f"{hops.num_rows:,} hops, {len(plan.windows)} windows: " + "; ".join(sizes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--lines", type=int, default=330_000, help="lines per Docker host")
    parser.add_argument("--stagger", type=int, default=65, help="minutes between Docker hosts")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=list(WORKER_COUNTS))
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    try:
        written = generate(
            scratch / "logs", args.hosts, args.lines, args.pairs, args.copies, 250, args.stagger
        )
        files = sorted(str(scratch / "logs" / name) for name in written)
        print(f"{len(files)} files, {sum(written.values()):,} lines", file=sys.stderr)
        store = scratch / "store"
        here = [ingest_and_flows(files, store, None) for _ in range(args.runs)]
        print(describe_windows(store), file=sys.stderr)
        rows = {"ingest": [], "flows --all --json": []}
        baselines = {
            "ingest": here[0][0].client.stdout,
            "flows --all --json": here[0][1].client.stdout,
        }
        for name, index in (("ingest", 0), ("flows --all --json", 1)):
            rows[name].append(median_row("no Dask", [r[index] for r in here], baselines[name]))
        for workers in args.workers:
            with cluster(workers, scratch) as address:
                runs = [ingest_and_flows(files, store, address) for _ in range(args.runs)]
            for name, index in (("ingest", 0), ("flows --all --json", 1)):
                label = f"{workers} worker{'s' if workers > 1 else ''}"
                rows[name].append(median_row(label, [r[index] for r in runs], baselines[name]))
                print(name, rows[name][-1], file=sys.stderr)  # as it goes: a run is long
        for name, lines in rows.items():
            print(f"\n`logpath {name}` (median of {args.runs}; CPU: client and workers)\n")
            print(
                "| where | wall | CPU (client + workers) | client CPU | largest worker's peak "
                "| client's peak | output equal | load at start |"
            )
            print("|---|---|---|---|---|---|---|---|")
            print("\n".join(lines))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
