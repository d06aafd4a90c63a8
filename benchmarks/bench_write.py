"""What writing the store's tables costs (issue 13, point 4), and what the Parquet options change.

Reads the hops (``raw`` included) and the assembled trace of a store ingested beforehand
(``logpath ingest out/replay-2m.log --store STORE``), then writes each again in the ingest's
row groups (ROW_GROUP_ROWS), once per option set: what ingest writes (zstd; a dictionary for
the texts but ``raw``; minima and maxima of the columns questions skip row groups by:
``store.file_options``), a dictionary for every column (before), none, zstd level
1, lz4, snappy, no compression. CPU seconds (this process; the writer's threads included) and
file size; median of --runs. Writes ``results/write-latest.md``.

    .venv/bin/python benchmarks/bench_write.py STORE [--runs 3]
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

from measure import RESULTS_DIR, machine, publish

from logpath.hops import HOP_SCHEMA
from logpath.store import ROW_GROUP_ROWS, Store, file_options


def options(schema: pa.Schema) -> dict[str, dict[str, Any]]:
    ingest = file_options(schema)
    return {
        "what ingest writes": ingest,
        "a dictionary for every column": {**ingest, "use_dictionary": True},
        "no dictionary": {**ingest, "use_dictionary": False},
        "zstd level 1": {**ingest, "compression_level": 1},
        "lz4": {**ingest, "compression": "lz4"},
        "snappy": {**ingest, "compression": "snappy"},
        "no compression": {**ingest, "compression": "none"},
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
    parser.add_argument("store", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    store = Store(args.store)
    manifest = store.require()
    assert manifest.assembly is not None, "ingest the store first"
    tables = {
        "hops": store.read_parts(manifest.parts, HOP_SCHEMA.names).cast(HOP_SCHEMA),
        "trace": store.assembled_files(manifest.assembly["trace"]).read(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.parquet"
        for name, table in tables.items():
            batches = table.to_batches(max_chunksize=ROW_GROUP_ROWS)
            for label, chosen in options(table.schema).items():
                cpu = statistics.median(
                    write(batches, table.schema, path, **chosen) for _ in range(args.runs)
                )
                size = os.path.getsize(path) / 2**20
                rows.append(f"| {name} | {label} | {cpu:.2f} | {size:.1f} MiB |")
                print(rows[-1], flush=True)
    about = machine()
    hops, trace = tables["hops"], tables["trace"]
    report = "\n".join(
        [
            "# Writing the hop part and the trace table (latest run)",
            "",
            f"- machine: {about['nproc']} CPUs, {about['cpu']}; Python {about['python']}",
            f"- store: `{args.store.name}`, {hops.num_rows:,} hops ({hops.num_columns} columns, "
            f"{hops.nbytes / 2**20:.0f} MiB in memory, "
            f"`raw` {hops['raw'].nbytes / 2**20:.0f} MiB); "
            f"trace {trace.num_rows:,} rows ({trace.num_columns} columns, "
            f"{trace.nbytes / 2**20:.0f} MiB)",
            f"- median CPU seconds of {args.runs} runs, row groups of {ROW_GROUP_ROWS:,}",
            "",
            "| table | options | CPU s | file |",
            "|---|---|---:|---:|",
            *rows,
            "",
        ]
    )
    publish(report, RESULTS_DIR / "write-latest.md")


if __name__ == "__main__":
    main()
