"""logpath.runtime's gather on two threads gives what Arrow's own take gives."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from seedstore import ingest_seed

from logpath.hops import HOP_SCHEMA
from logpath.runtime import _malloc_trim, give_back_memory, taken


def test_taken_is_table_take_over_chunks_nulls_and_dictionaries(tmp_path: Path) -> None:
    # genuine hops (strings, dictionaries, timestamps, nulls) in several chunks, gathered in a
    # shuffled order large enough for the threads, with indices given as a ChunkedArray
    store = ingest_seed(tmp_path / "store")
    hops = store.read_parts(store.require().parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    chunked = pa.concat_tables([hops] * (70_000 // hops.num_rows + 1))
    assert chunked.column(0).num_chunks > 1
    rows = np.random.default_rng(7).permutation(chunked.num_rows)
    indices = pa.chunked_array([rows[:1_000], rows[1_000:]])
    expected = chunked.take(pa.array(rows))
    got = taken(chunked, indices)
    assert got.schema == chunked.schema
    assert got.equals(expected)
    assert taken(chunked, rows[:10]).equals(chunked.take(pa.array(rows[:10])))


def resident_mib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(_malloc_trim() is None, reason="not the GNU C library")
def test_memory_freed_into_mallocs_heap_is_given_back() -> None:
    # many buffers of a few KB (malloc's heap, not a mapping of their own, as a chunk's frames
    # are), then a few more that keep the heap's top: freed, the first stay in the process
    held = [np.ones(2000, dtype=np.uint8) for _ in range(150_000)]
    top = [np.ones(2000, dtype=np.uint8) for _ in range(1000)]
    before = resident_mib()
    del held
    freed = resident_mib()
    assert freed > before - 100  # malloc kept what was freed
    give_back_memory()
    assert resident_mib() < freed - 200
    assert len(top) == 1000
