"""Flows benchmark: `logpath flows --port 12580 --store DIR --json` on the ingested benchmark store.

Uses the store bench_ingest.py left in benchmarks/out/ (ingesting the generated file first if
there is none), measures the command as a subprocess (wall time, peak RSS) and writes
benchmarks/results/flows-latest.md. Port 12580 (the seed article's test port) is about 2% of
the generated traffic, so this measures how fast a selective question is answered.

    .venv/bin/python benchmarks/bench_flows.py [--lines 2000000] [--seed 1] [--port 12580]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import ensure_syslog, run_logpath
from measure import (
    OUT_DIR,
    RESULTS_DIR,
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


def main(argv: list[str] | None = None) -> int:
    """Measure `logpath flows` on the ingested store; print and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port", type=int, default=12580)
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "flows-latest.md")
    args = parser.parse_args(argv)
    if not has_command("flows"):
        raise SystemExit(
            "`logpath flows` does not exist yet in this checkout "
            "(`logpath flows --help` fails); nothing to measure"
        )
    store = ingested_store(args.lines, args.seed)
    command = [logpath_executable(), "flows", "--port", str(args.port)]
    command += ["--store", str(store), "--json"]
    m = run_measured(command)
    if m.returncode != 0:
        raise SystemExit(f"logpath flows failed (exit {m.returncode}):\n{m.stderr[-2000:]}")
    flows = json.loads(m.stdout)
    count = len(flows) if isinstance(flows, list) else len(flows.get("flows", []))
    opened = connections_opened(ensure_syslog(args.lines, args.seed), args.port)
    host = machine()
    report = "\n".join(
        [
            "# Flows benchmark (latest run)",
            "",
            f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {host['nproc']} CPUs, {host['cpu']}, {host['memory']} RAM",
            f"- store: `{store.name}` (ingested from {args.lines:,} generated lines, seed "
            f"{args.seed})",
            "",
            "| command | wall s | CPU s | peak RSS (largest process) | peak PSS (process tree) "
            "| load before | flows |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| `logpath flows --port {args.port} --json` | {m.wall_seconds:.2f} "
            f"| {m.cpu_seconds:.2f} | {mib(m.max_rss_kb)} | {mib(m.tree_peak_kb)} "
            f"| {m.load_before:.2f} | {count:,} |",
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


if __name__ == "__main__":
    raise SystemExit(main())
