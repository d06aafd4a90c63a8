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

__all__ = ["without_cyclic_gc"]


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
