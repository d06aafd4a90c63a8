"""Assembly at ingest (issue 10, point 2): a store's connections assembled from scratch, in one
process and on two cores, as ``logpath ingest`` runs it.

Reads every hop of a store (ingested beforehand, e.g. by ``bench_queries.py``), then times
``assembly.assemble`` ``--runs`` times each way: in this process alone, and with a worker
process taking the later part of time (the ingest's parse pool, ``_assemble_in_two``), the
cyclic garbage collector paused as the ingest pauses it. Checks that both ways give equal
tables, column by column; prints the medians and writes ``results/assembly-latest.md``.

    .venv/bin/python benchmarks/bench_assemble.py STORE [--runs 3] [--chunk 200000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa

from logpath.assembly import CHUNK_HOPS, HOP_COLUMNS, Assembled, assemble, kept_ruleset
from logpath.runtime import without_cyclic_gc
from logpath.store import Store

RESULTS = Path(__file__).resolve().parent / "results" / "assembly-latest.md"


def timed(run: object) -> tuple[float, float, Assembled]:
    """Wall and CPU seconds (this process's) of ``run()``, and its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    with without_cyclic_gc():
        result = run()  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu, result


def differences(a: Assembled, b: Assembled) -> list[str]:
    """The columns where two assemblies differ (none: equal tables)."""
    found = []
    for kind in ("flows", "trace"):
        x: pa.Table = getattr(a, kind)
        y: pa.Table = getattr(b, kind)
        if x.schema != y.schema or x.num_rows != y.num_rows:
            found.append(f"{kind}: shape")
            continue
        found += [f"{kind}.{name}" for name in x.column_names if not x[name].equals(y[name])]
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=CHUNK_HOPS)
    args = parser.parse_args(argv)
    store = Store(args.store)
    manifest = store.require()
    hops = store.read_parts(manifest.parts, HOP_COLUMNS)
    ruleset = kept_ruleset(manifest.ruleset)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(int, 1).result()  # started, as the ingest's pool is by then
    one: list[tuple[float, float]] = []
    two: list[tuple[float, float]] = []
    reference: Assembled | None = None
    for _ in range(args.runs):  # in turn: the machine's drift falls on both
        wall, cpu, alone = timed(lambda: assemble(hops, ruleset, chunk_hops=args.chunk))
        one.append((wall, cpu))
        wall, cpu, paired = timed(
            lambda: assemble(hops, ruleset, chunk_hops=args.chunk, executor=pool)
        )
        two.append((wall, cpu))
        reference = reference or alone
        if differences(alone, paired):
            print(f"DIFFERENT: {differences(alone, paired)}", file=sys.stderr)
            return 1
    pool.shutdown()
    assert reference is not None
    count = hops.num_rows
    median_one = statistics.median(w for w, _ in one)
    median_two = statistics.median(w for w, _ in two)
    lines = [
        f"# Assembly of {args.store.name}: {count:,} hops, {reference.flows.num_rows:,} "
        f"connections (chunks of {args.chunk:,} hops), medians of {args.runs} runs",
        "",
        "| how | wall s | CPU s (this process) | hops/s (wall) |",
        "|---|---|---|---|",
        f"| one process | {median_one:.1f} | {statistics.median(c for _, c in one):.1f} | "
        f"{count / median_one:,.0f} |",
        f"| two processes (a worker takes the later part) | {median_two:.1f} | "
        f"{statistics.median(c for _, c in two):.1f} | {count / median_two:,.0f} |",
        "",
        "Both ways give equal tables, column by column.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
