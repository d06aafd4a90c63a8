"""logpath.runtime: the gather on two threads gives what Arrow's own take gives; handovers;
memory given back; the workers' server."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from seedstore import ingest_seed

import logpath.parse
from logpath.hops import HOP_SCHEMA
from logpath.runtime import (
    _glibc,
    give_back_memory,
    mapped,
    stop_worker_server,
    streamed,
    taken,
    worker_context,
)


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


def test_a_handover_writes_no_buffer_for_a_column_of_nulls(tmp_path: Path) -> None:
    """Genuine hops handed over (``streamed``, ``mapped``) come back equal, types, metadata
    and all, in two tables with their own dictionaries; the columns null on every row (the
    seed shows no TRACE line, no ICMP error) took no room in the file and share one buffer of
    zeros; a column null in one table only is written as it is."""
    store = ingest_seed(tmp_path / "store")
    hops = store.read_parts(store.require().parts, [c for c in HOP_SCHEMA.names if c != "raw"])
    hops = hops.replace_schema_metadata({b"kept": b"as it was"})
    half = hops.num_rows // 2
    first, second = hops.slice(0, half), hops.slice(half)
    sport = second.column("sport").combine_chunks()
    assert sport.null_count < len(sport)
    second = second.set_column(
        second.schema.get_field_index("sport"), "sport", pa.nulls(len(second), sport.type)
    )
    empty = [c for c in hops.column_names if hops[c].null_count == hops.num_rows]
    assert {"trace_id", "inner_src", "mtu", "trace_verdict"} <= set(empty)
    streamed(str(tmp_path / "nulls"), [first, second])
    back = mapped(str(tmp_path / "nulls"))
    assert back.schema.equals(hops.schema, check_metadata=True)
    assert back.equals(pa.concat_tables([first, second]))
    assert back.column("sport").to_pylist()[:half] == first.column("sport").to_pylist()
    for column in back.columns:
        column.validate(full=True)
    values = {back[c].chunk(0).buffers()[1].address for c in empty}
    assert len(values) == 1
    # the file against one that writes every column as it is
    plain = tmp_path / "plain"
    with pa.OSFile(str(plain), "wb") as sink, pa.ipc.new_stream(sink, hops.schema) as stream:
        for table in (first, second):
            stream.write_table(table)
    null_bytes = sum(hops[c].nbytes for c in empty)
    saved = plain.stat().st_size - (tmp_path / "nulls").stat().st_size
    assert saved >= 0.9 * null_bytes


def resident_mib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(_glibc("malloc_trim") is None, reason="not the GNU C library")
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


# Six threads allocating at once, then malloc's own account of its arenas (malloc_info(3):
# one <heap> element per arena); with ``limited``, after ``malloc_arenas``
_ARENAS = """
import ctypes, sys, tempfile, threading
import numpy as np
from logpath.runtime import malloc_arenas
if sys.argv[1] == "limited":
    malloc_arenas(2)
together = threading.Barrier(6)
def allocate():
    held = [np.ones(2000, dtype=np.uint8) for _ in range(100)]
    together.wait()
    assert len(held) == 100
threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
with tempfile.NamedTemporaryFile() as info:
    stream = libc.fopen(info.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(info.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(_glibc("malloc_trim") is None, reason="not the GNU C library")
def test_an_ingest_process_keeps_two_malloc_arenas() -> None:
    # each thread that allocates gets an arena of its own, which keeps what it frees apart
    arenas = {}
    for mode in ("limited", "default"):
        done = subprocess.run(
            [sys.executable, "-c", _ARENAS, mode], capture_output=True, text=True, check=True
        )
        arenas[mode] = int(done.stdout)
    assert arenas["limited"] <= 2 < arenas["default"]


def test_workers_are_forked_with_the_grammar_compiled_and_checked() -> None:
    """The workers' server parsed a few lines before forking any worker: a worker starts with
    the patterns compiled from the grammar (and checked against this Python's re) that each
    worker built at its first block before (0.16 of the first block's 0.24 CPU-s)."""
    try:
        with ProcessPoolExecutor(1, mp_context=worker_context()) as pool:
            size, misses = pool.submit(_grammar_cache).result()
    finally:
        stop_worker_server()
    assert size == 1
    assert misses == 1  # built once, in the server, not in the worker


def _grammar_cache() -> tuple[int, int]:
    """In a worker: how many compiled grammars it holds, and how many were built."""
    info = logpath.parse.header_kinds.cache_info()
    return info.currsize, info.misses
