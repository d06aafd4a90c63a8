"""How the heavy stages run in a process: without the cyclic garbage collector.

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
from contextlib import contextmanager

__all__ = ["arrow_from_malloc", "without_cyclic_gc"]


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
