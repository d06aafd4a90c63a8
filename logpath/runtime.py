"""How the heavy stages run in a process: without the cyclic garbage collector, with Arrow's
buffers from malloc, and a table's rows gathered on both cores.

Parsing a block and assembling connections allocate millions of tuples, lists and dicts that
all live until the stage ends. The collector, started every 700 allocations, walked those
survivors again and again for no garbage: 10-30% of each stage's CPU (measured in
``benchmarks/results/gc-latest.md``). The stages' objects are freed by reference counting when
the stage ends; what few reference cycles pandas leaves are collected once the collector
resumes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["arrow_from_malloc", "taken", "without_cyclic_gc"]


@contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block (nested blocks are fine: only
    the outermost one resumes it)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def arrow_from_malloc() -> None:
    """Arrow's buffers from the C library's malloc from here on, not from jemalloc (the CLI's
    choice for the queries, ``logpath.cli``) nor mimalloc (Arrow's own default). An ingest
    allocates and frees tables of a million rows over and over: with mimalloc the takes that
    number its tables ran 3-4x slower than in a fresh process (pages given back and faulted in
    again); on the 2M-line replay, paired, malloc took 0.92x the wall and CPU of jemalloc (15.3
    against 17.8 s). For the processes of an ingest (its own, and its parse workers')."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


# Threads a gather runs on: the machines logpath is measured on have two cores, and an ingest's
# gathers run when its workers are idle.
GATHER_THREADS = 2


def taken(table: pa.Table, rows: pa.Array | pa.ChunkedArray | np.ndarray) -> pa.Table:
    """``table.take(rows)``, a column at a time on ``GATHER_THREADS`` threads (Arrow's kernels
    let go of the GIL), each column made one array first.

    ``Table.take`` runs on one core and gathers from every chunk of a column through a chunk
    index; an ingest's tables hold a chunk per parsed block. Gathering the 84 columns of the
    2M-line replay's 1.2M hops: 0.55 s with ``Table.take``, 0.23 s this way (each column's
    one-array copy lives only while its thread gathers from it)."""
    import pyarrow as pa

    indices = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else pa.array(rows)
    if table.num_columns < 2 or len(indices) < 65_536:
        return table.take(indices)

    def gather(column: pa.ChunkedArray) -> pa.Array:
        return column.combine_chunks().take(indices)

    with ThreadPoolExecutor(GATHER_THREADS) as threads:
        columns = list(threads.map(gather, table.columns))
    return pa.Table.from_arrays(columns, schema=table.schema)
