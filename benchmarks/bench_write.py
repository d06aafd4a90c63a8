"""What writing the hop parts costs (issue 13, point 4), and what the Parquet options change.

Reads every hop (``raw`` included) of a store ingested beforehand (e.g. by
``bench_queries.py``: ``out/store-replay-2000000-s1``), then writes them again, in the
ingest's row groups (ROW_GROUP_ROWS), once per option set: today's (zstd, dictionary and
statistics on every column), ``raw`` without dictionary, ``raw`` without dictionary and
statistics (no question filters on it), zstd level 1, lz4, snappy, none, and without ``raw``
at all (what that column costs). CPU seconds (this process; the writer's threads included),
wall and file size; median of --runs. Writes ``results/write-latest.md``.

    .venv/bin/python benchmarks/bench_write.py [STORE] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import OUT_DIR, RESULTS_DIR, machine, publish

from logpath.hops import HOP_SCHEMA
from logpath.store import ROW_GROUP_ROWS, Store

BUT_RAW = [name for name in HOP_SCHEMA.names if name != "raw"]
OPTIONS: dict[str, dict[str, Any]] = {
    "zstd (what ingest writes)": {"compression": "zstd"},
    "zstd, raw without dictionary": {"compression": "zstd", "use_dictionary": BUT_RAW},
    "zstd, raw without dictionary or statistics": {
        "compression": "zstd",
        "use_dictionary": BUT_RAW,
        "write_statistics": BUT_RAW,
    },
    "zstd level 1": {"compression": "zstd", "compression_level": 1},
    "lz4": {"compression": "lz4"},
    "snappy": {"compression": "snappy"},
    "none": {"compression": "none"},
}


def write(batches: list[pa.RecordBatch], schema: pa.Schema, path: Path, **options: Any) -> float:
    """CPU seconds to write ``batches`` to ``path`` as the ingest's writer does."""
    cpu = time.process_time()
    with pq.ParquetWriter(path, schema, **options) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", nargs="?", type=Path, default=OUT_DIR / "store-replay-2000000-s1")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    store = Store(args.store)
    hops = store.read_parts(store.require().parts, HOP_SCHEMA.names).cast(HOP_SCHEMA)
    batches = hops.to_batches(max_chunksize=ROW_GROUP_ROWS)
    without_raw = hops.drop(["raw"])
    cases = [(label, HOP_SCHEMA, batches, options) for label, options in OPTIONS.items()]
    cases.append(
        (
            "zstd, no raw column",
            without_raw.schema,
            without_raw.to_batches(max_chunksize=ROW_GROUP_ROWS),
            {"compression": "zstd"},
        )
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hops.parquet"
        for label, schema, parts, options in cases:
            cpu = statistics.median(write(parts, schema, path, **options) for _ in range(args.runs))
            rows.append(f"| {label} | {cpu:.2f} | {os.path.getsize(path) / 2**20:.0f} MiB |")
            print(rows[-1], flush=True)
    about = machine()
    report = "\n".join(
        [
            "# Writing hop parts (latest run)",
            "",
            f"- machine: {about['nproc']} CPUs, {about['cpu']}; Python {about['python']}",
            f"- store: `{args.store.name}`, {hops.num_rows:,} hops, "
            f"{hops.nbytes / 2**20:.0f} MiB in memory (`raw` {hops['raw'].nbytes / 2**20:.0f} MiB)",
            f"- median CPU seconds of {args.runs} runs, row groups of {ROW_GROUP_ROWS:,}",
            "",
            "| options | CPU s | file |",
            "|---|---:|---:|",
            *rows,
            "",
        ]
    )
    publish(report, RESULTS_DIR / "write-latest.md")


if __name__ == "__main__":
    main()
