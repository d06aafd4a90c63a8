"""Flows benchmark: `logpath flows --port 12580 --store DIR --json` on the ingested benchmark store.

Uses the store bench_ingest.py left in benchmarks/out/ (ingesting the generated file first if
there is none), measures the command as a subprocess (wall time, peak RSS) and writes
benchmarks/results/flows-latest.md. Port 12580 (the seed article's test port) is about 2% of
the generated traffic, so this measures how fast a selective question is answered. The question
runs --runs times with --json (the median is the figure; the machine is shared), then three
times as a user types it (the table). The same question on the first quarter of the store, and a
narrower one on the whole store, show what memory follows: the flows selected, not the store's
size.

    .venv/bin/python benchmarks/bench_flows.py [--lines N] [--seed S] [--port 12580] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import ensure_syslog, first_lines, run_logpath
from measure import (
    OUT_DIR,
    RESULTS_DIR,
    Measurement,
    has_command,
    logpath_executable,
    machine,
    mib,
    publish,
    run_measured,
)


def ingested_store(lines: int, seed: int) -> Path:
    """The store of the generated file, ingesting it first if bench_ingest.py has not."""
    path = ensure_syslog(lines, seed)
    store = OUT_DIR / f"store-{path.stem}"
    if not store.exists() or not any(store.iterdir()):
        if not has_command("ingest"):
            raise SystemExit("`logpath ingest` does not exist yet in this checkout")
        print(f"ingesting {path} into {store} ...", flush=True)
        run_logpath(path, lines)
    return store


def connections_opened(path: Path, port: int) -> int:
    """How many connections to `port` the file opens: distinct (SRC, DST, SPT) of bare SYNs.

    A bare SYN (flags exactly `SYN`) starts a connection; its hops at several hooks share
    the tuple (a DNAT rewrite changes DST, but the generator's published ports are not 12580).
    """
    syn = re.compile(rf"SRC=(\S+) DST=(\S+) .*SPT=(\d+) DPT={port} .*RES=0x\w\w SYN URGP=")
    needle = f"DPT={port} "
    seen = set()
    with path.open(encoding="ascii", errors="replace") as lines:
        for line in lines:
            if needle in line and " SYN URGP=" in line:
                found = syn.search(line)
                if found:
                    seen.add(found.groups())
    return len(seen)


def measure_flows(store: Path, extra: list[str], runs: int) -> tuple[list[Measurement], int]:
    """Run `logpath flows ...` on `store` `runs` times; the runs and the flows found (from the
    JSON array with --json, else from the table's closing "N flow(s)" line)."""
    command = [logpath_executable(), "flows", *extra, "--store", str(store)]
    measured = []
    for _ in range(runs):
        m = run_measured(command)
        if m.returncode != 0:
            raise SystemExit(f"logpath flows failed (exit {m.returncode}):\n{m.stderr[-2000:]}")
        measured.append(m)
    if "--json" in extra:
        return measured, len(json.loads(measured[-1].stdout))
    last = measured[-1].stdout.rstrip().splitlines()[-1]
    return measured, int(last.split()[0].replace(",", ""))


def row(label: str, store: Path, measured: list[Measurement], flows: int) -> str:
    """One table row: median and best wall time of the runs, CPU and memory of the median run."""
    ordered = sorted(measured, key=lambda m: m.wall_seconds)
    median = ordered[len(ordered) // 2]
    walls = ", ".join(f"{m.wall_seconds:.2f}" for m in measured)
    return (
        f"| `{label}` | `{store.name}` | {median.wall_seconds:.2f} | {ordered[0].wall_seconds:.2f} "
        f"| {walls} | {median.cpu_seconds:.2f} | {mib(median.max_rss_kb)} "
        f"| {mib(max(m.tree_peak_kb for m in measured))} "
        f"| {max(m.load_before for m in measured):.2f} | {flows:,} |"
    )


def main(argv: list[str] | None = None) -> int:
    """Measure `logpath flows` on the ingested store; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=12580)
    parser.add_argument("--runs", type=int, default=5, help="runs of the main question")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "flows-latest.md")
    args = parser.parse_args(argv)
    if not has_command("flows"):
        raise SystemExit(
            "`logpath flows` does not exist yet in this checkout "
            "(`logpath flows --help` fails); nothing to measure"
        )
    store = ingested_store(args.lines, args.seed)
    port = ["--port", str(args.port)]
    measured, count = measure_flows(store, [*port, "--json"], args.runs)
    opened = connections_opened(ensure_syslog(args.lines, args.seed), args.port)
    # memory follows the selection: the same question on a quarter of the store, and a
    # narrower one (three hours of the ~35 the file covers) on the whole store
    quarter = quarter_store(args.lines, args.seed)
    narrow = [*port, "--since", NARROW[0], "--until", NARROW[1]]
    rows = [row(f"flows --port {args.port} --json", store, measured, count)]
    rows.append(row(f"flows --port {args.port}", store, *measure_flows(store, port, 3)))
    rows.append(
        row(
            f"flows --port {args.port} --json",
            quarter,
            *measure_flows(quarter, [*port, "--json"], 3),
        )
    )
    rows.append(
        row(
            f"flows {' '.join(narrow)} --json", store, *measure_flows(store, [*narrow, "--json"], 3)
        )
    )
    baseline = run_measured([logpath_executable(), "--help"])
    host = machine()
    report = "\n".join(
        [
            "# Flows benchmark (latest run)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {host['nproc']} CPUs, {host['cpu']}, {host['memory']} RAM",
            f"- store: `{store.name}` (ingested from {args.lines:,} generated lines, seed "
            f"{args.seed}); `{quarter.name}`: its first quarter",
            "- every command ends in `--store DIR` (without `--json` it prints the table); "
            "wall times of each run listed, "
            f"CPU and peak RSS of the median run; `logpath --help` alone peaks at "
            f"{mib(baseline.max_rss_kb)} (the imports)",
            "",
            "| command | store | median wall s | best wall s | runs (wall s) | CPU s "
            "| peak RSS (largest process) | peak PSS (process tree) | load before | flows |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"The generated file opens {opened:,} connections to port {args.port} (distinct "
            f"bare-SYN tuples): logpath found {count:,} flows"
            f" ({'equal' if count == opened else 'DIFFERENT'}).",
            "",
            "Reproduce: `.venv/bin/python benchmarks/bench_flows.py`",
            "",
        ]
    )
    publish(report, args.output)
    return 0


# Three hours of the 2M-line file's ~35 (its year is the store's: the file's mtime year).
NARROW = ("2026-01-09T12:00", "2026-01-09T15:00")


def quarter_store(lines: int, seed: int) -> Path:
    """The store of the file's first quarter (bench_ingest.py ingests it too)."""
    part = first_lines(ensure_syslog(lines, seed), lines // 4)
    store = OUT_DIR / f"store-{part.stem}"
    if not store.exists() or not any(store.iterdir()):
        print(f"ingesting {part} into {store} ...", flush=True)
        run_logpath(part, lines // 4)
    return store


if __name__ == "__main__":
    raise SystemExit(main())
