"""logpath.runtime's gather on two threads gives what Arrow's own take gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from seedstore import ingest_seed

from logpath.hops import HOP_SCHEMA
from logpath.runtime import taken


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
