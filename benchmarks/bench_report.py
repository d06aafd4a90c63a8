"""Report benchmark: `logpath report` over about 1,000 connections of the generated Docker host.

Generates a syslog with benchmarks/generate_syslog.py (22,000 lines give ~1,000 connections),
ingests it into benchmarks/out/store-report-<lines>-s<seed>, then measures
`logpath report --store ... -o benchmarks/out/report-<lines>-s<seed>` as a subprocess (wall
time, CPU, peak RSS) and writes benchmarks/results/report-latest.md. Diagrams are drawn for the
first --diagrams connections (the command's default: 50); the page says so.

    .venv/bin/python benchmarks/bench_report.py [--lines 22000] [--seed 1] [--diagrams 50]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_syslog import write_syslog
from measure import (
    OUT_DIR,
    RESULTS_DIR,
    logpath_executable,
    machine,
    mib,
    publish,
    run_measured,
)


def ingested_store(lines: int, seed: int) -> Path:
    """A fresh store of a freshly generated file (small enough to redo every run)."""
    log = OUT_DIR / f"syslog-report-{lines}-s{seed}.log"
    store = OUT_DIR / f"store-report-{lines}-s{seed}"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_syslog(log, lines, seed)
    shutil.rmtree(store, ignore_errors=True)
    ingest = run_measured([logpath_executable(), "ingest", str(log), "--store", str(store)])
    if ingest.returncode != 0:
        raise SystemExit(f"logpath ingest failed:\n{ingest.stderr[-2000:]}")
    return store


def main(argv: list[str] | None = None) -> int:
    """Measure `logpath report` on the generated store; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=22_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--diagrams", type=int, default=50)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "report-latest.md")
    args = parser.parse_args(argv)
    store = ingested_store(args.lines, args.seed)
    out = OUT_DIR / f"report-{args.lines}-s{args.seed}"
    shutil.rmtree(out, ignore_errors=True)
    command = [logpath_executable(), "report", "--store", str(store), "-o", str(out)]
    command += ["--diagrams", str(args.diagrams)]
    m = run_measured(command)
    if m.returncode != 0:
        raise SystemExit(f"logpath report failed (exit {m.returncode}):\n{m.stderr[-2000:]}")
    found = re.search(r": ([\d,]+) connection\(s\), ([\d,]+) diagram\(s\)", m.stdout)
    connections, diagrams = found.groups() if found else ("?", "?")
    size = sum(f.stat().st_size for f in out.iterdir())
    host = machine()
    report = "\n".join(
        [
            "# Report benchmark (latest run)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {host['nproc']} CPUs, {host['cpu']}, {host['memory']} RAM",
            f"- store: `{store.name}` ({args.lines:,} generated lines, seed {args.seed})",
            "",
            "| command | wall s | CPU s | peak RSS | connections | diagrams | output |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| `logpath report --diagrams {args.diagrams}` | {m.wall_seconds:.2f} "
            f"| {m.cpu_seconds:.2f} | {mib(m.max_rss_kb)} | {connections} | {diagrams} "
            f"| {size / 2**20:.1f} MiB |",
            "",
            "Reproduce: `.venv/bin/python benchmarks/bench_report.py`",
            "",
        ]
    )
    publish(report, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
