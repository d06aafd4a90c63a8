"""Rows of one table read by row group: the groups whose statistics may hold the rows asked for,
then a mask over what was read.

A question to a big store (``logpath journey ID``, a 20-second window) reads a few row groups
of the assembled tables. It does so with the Parquet reader and Arrow's compute functions only,
and turns no Python value into an Arrow one with ``pa.array``/``pa.scalar`` (``arrow_array``)
nor an Arrow one into numpy or a timestamp (``python_columns``): Arrow's dataset scanner, and
those conversions, import pandas, and that import took half a second, more than the whole
lookup. (A store's hop parts, scanned whole by ``logpath hops`` and by assembly, are still read
as datasets: there the import is nothing beside the scan.)

A table the store keeps as several files (``PartitionedRows``: a file per group of linked hosts
and slice of time) is read the same way, file by file, and a file whose manifest entry
(``FilePart``) rules out every row asked for is not opened at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


@dataclass(frozen=True)
class Where:
    """Which rows: those inside every range whose column's statistics allow them, and for which
    ``test`` (given the rows read, with the ``needs`` columns) is true."""

    ranges: tuple[tuple[str, int | None, int | None], ...] = ()
    """(column, lowest, highest), both ends included, None for open: raw integer values (a
    timestamp in microseconds). A row group whose statistics lie outside is not read; the
    ranges only skip groups: ``test`` alone selects the rows."""
    test: Callable[[pa.Table], pa.ChunkedArray | pa.Array] | None = None
    """A boolean per row read (Arrow compute: no pandas)."""
    needs: tuple[str, ...] = ()
    """The columns ``test`` reads."""
    address: Callable[[str], bool] | None = None
    """When given, a selected row's ``src`` or ``dst`` is an address this holds for: a file
    whose addresses (``FilePart.addresses``) have none is not read."""
    partitions: frozenset[int] | None = None
    """When given, the rows are in the files of these partitions (``FilePart.partition``:
    where an earlier read found their connections); the other files are not read."""


class Rows(Protocol):
    """A table to read rows of: a Parquet file, or a table in memory."""

    def read(self, columns: list[str] | None = None, where: Where | None = None) -> pa.Table:
        """The rows ``where`` selects (all without it), with ``columns`` (all without them)."""
        ...

    def batches(
        self, columns: list[str] | None, where: Where | None, batch_size: int
    ) -> Iterator[pa.Table]:
        """``read``, at most ``batch_size`` rows at a time (memory follows the batch)."""
        ...

    def locate(
        self, columns: list[str] | None, where: Where | None
    ) -> tuple[pa.Table, frozenset[int] | None]:
        """``read``, and the partitions of the files that held the rows (None: the table is
        one file, or in memory)."""
        ...


class ParquetRows:
    """A Parquet file's rows, read a row group at a time."""

    def __init__(
        self,
        path: Any,
        guard: Callable[[], AbstractContextManager[None]] = nullcontext,
        source: Callable[[Any], Any] | None = None,
    ) -> None:
        """``guard``: what turns the reader's errors into the store's (a damaged file named);
        ``source``: what opens ``path`` for the Parquet reader (a store's file at an object-store
        URL), else ``path`` is a local file."""
        self.path = path
        self._guard = guard
        with guard():
            self._file = pq.ParquetFile(path if source is None else source(path))
        schema = self._file.metadata.schema
        self._column_index = {schema.column(j).path: j for j in range(len(schema))}

    @property
    def schema(self) -> pa.Schema:
        return self._file.schema_arrow

    def read(self, columns: list[str] | None = None, where: Where | None = None) -> pa.Table:
        parts = list(self._groups(columns, where))
        if not parts:
            return _select(_no_rows(self.schema), columns)
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def batches(
        self, columns: list[str] | None, where: Where | None, batch_size: int
    ) -> Iterator[pa.Table]:
        for rows in self._groups(columns, where):
            for start in range(0, rows.num_rows, batch_size):
                yield rows.slice(start, batch_size)

    def locate(
        self, columns: list[str] | None, where: Where | None
    ) -> tuple[pa.Table, frozenset[int] | None]:
        return self.read(columns, where), None

    def _groups(self, columns: list[str] | None, where: Where | None) -> Iterator[pa.Table]:
        """Each row group that may hold a selected row, its selected rows."""
        read = columns if columns is None or where is None else _with(columns, where.needs)
        for group in range(self._file.num_row_groups):
            if where is not None and not self._may_hold(group, where):
                continue
            with self._guard():
                rows = self._file.read_row_group(group, columns=read)
            if where is not None and where.test is not None:
                rows = rows.filter(where.test(rows))
            if rows.num_rows:
                yield _select(rows, columns)

    def _may_hold(self, group: int, where: Where) -> bool:
        """Whether the row group's statistics leave room for rows inside every range."""
        meta = self._file.metadata.row_group(group)
        for name, lowest, highest in where.ranges:
            stats = meta.column(self._column_index[name]).statistics
            if stats is None or not stats.has_min_max:
                continue
            if _apart((lowest, highest), (stats.min_raw, stats.max_raw)):
                return False
        return True


def _apart(wanted: tuple[int | None, int | None], held: tuple[int | None, int | None]) -> bool:
    """Whether the range asked for and the range of values held (both ends included, None
    open or unknown) cannot meet."""
    (lowest, highest), (least, most) = wanted, held
    return (lowest is not None and most is not None and most < lowest) or (
        highest is not None and least is not None and least > highest
    )


@dataclass(frozen=True)
class FilePart:
    """One file of a table stored as several (``PartitionedRows``), as the store's manifest
    describes it: enough to tell, without opening it, that it cannot hold a row asked for."""

    name: str
    partition: int
    """The flows file and the trace file of one partition hold the same connections."""
    slice: int
    """The files of one slice hold the table's rows between those of the slices before and
    after it, in the table's order once merged by ``flow_n``."""
    ranges: dict[str, tuple[int | None, int | None]]
    """Per column, the least and most raw value held (None: unknown or only nulls)."""
    addresses: frozenset[str] | None
    """Every ``src`` and ``dst`` of its rows (None: not listed, too many)."""

    def may_hold(self, where: Where) -> bool:
        if where.partitions is not None and self.partition not in where.partitions:
            return False
        if any(
            _apart((lowest, highest), self.ranges[name])
            for name, lowest, highest in where.ranges
            if name in self.ranges
        ):
            return False
        return (
            where.address is None
            or self.addresses is None
            or any(where.address(a) for a in self.addresses)
        )


class PartitionedRows:
    """A table stored as several Parquet files, each sorted by ``flow_n`` as the whole table
    is: the files whose manifest entry cannot hold a row asked for are not opened, the others
    read by row group (``ParquetRows``) and merged, slice by slice, into the table's order."""

    def __init__(self, parts: list[FilePart], open_: Callable[[str], ParquetRows]) -> None:
        """``parts`` in slice order (at least one); ``open_`` opens a file by its name."""
        self.parts = parts
        self._open = open_
        self._files: dict[str, ParquetRows] = {}

    @property
    def opened(self) -> list[str]:
        """The files opened so far (what a question read of the store)."""
        return list(self._files)

    def read(self, columns: list[str] | None = None, where: Where | None = None) -> pa.Table:
        parts = [self._slice(chosen, columns, where) for chosen in self._slices(where)]
        if not parts:
            return self._empty(columns)
        return one_dictionary(pa.concat_tables(parts)) if len(parts) > 1 else parts[0]

    def locate(
        self, columns: list[str] | None, where: Where | None
    ) -> tuple[pa.Table, frozenset[int] | None]:
        found: list[pa.Table] = []
        partitions: set[int] = set()
        for chosen in self._slices(where):
            read = _with_flow_n(columns, chosen)
            held = [(part, self._rows(part).read(read, where)) for part in chosen]
            partitions.update(part.partition for part, rows in held if rows.num_rows)
            found.append(_merged([rows for _, rows in held], columns))
        if not found:
            return self._empty(columns), frozenset()
        return one_dictionary(pa.concat_tables(found)), frozenset(partitions)

    def _empty(self, columns: list[str] | None) -> pa.Table:
        """No rows, with the table's columns (from a file's footer)."""
        return _select(_no_rows(self._rows(self.parts[0]).schema), columns)

    def batches(
        self, columns: list[str] | None, where: Where | None, batch_size: int
    ) -> Iterator[pa.Table]:
        for chosen in self._slices(where):
            if len(chosen) == 1:  # read a row group at a time, as one file is
                yield from self._rows(chosen[0]).batches(columns, where, batch_size)
                continue
            rows = self._slice(chosen, columns, where)
            for start in range(0, rows.num_rows, batch_size):
                yield rows.slice(start, batch_size)

    def _slices(self, where: Where | None) -> Iterator[list[FilePart]]:
        chosen = [p for p in self.parts if where is None or p.may_hold(where)]
        for _, same in itertools.groupby(chosen, key=lambda part: part.slice):
            yield list(same)

    def _slice(
        self, chosen: list[FilePart], columns: list[str] | None, where: Where | None
    ) -> pa.Table:
        """The rows of one slice's files, in the table's order (``_merged``)."""
        read = _with_flow_n(columns, chosen)
        return _merged([self._rows(part).read(read, where) for part in chosen], columns)

    def _rows(self, part: FilePart) -> ParquetRows:
        if part.name not in self._files:
            self._files[part.name] = self._open(part.name)
        return self._files[part.name]


def one_dictionary(rows: pa.Table) -> pa.Table:
    """The rows with one dictionary per dictionary column: files written by different runs
    (an ingest that adds hops keeps the files its hops do not reach) each have their own, and
    Arrow's compute engine (``Table.group_by``, joins) refuses chunks that differ."""
    return rows.unify_dictionaries()


class MemoryRows:
    """A table in memory (assembled for one question, when the store could not keep it)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def read(self, columns: list[str] | None = None, where: Where | None = None) -> pa.Table:
        rows = self._table
        if where is not None and where.test is not None:
            rows = rows.filter(where.test(rows))
        return _select(rows, columns)

    def batches(
        self, columns: list[str] | None, where: Where | None, batch_size: int
    ) -> Iterator[pa.Table]:
        rows = self.read(columns, where)
        for start in range(0, rows.num_rows, batch_size):
            yield rows.slice(start, batch_size)

    def locate(
        self, columns: list[str] | None, where: Where | None
    ) -> tuple[pa.Table, frozenset[int] | None]:
        return self.read(columns, where), None


def _no_rows(schema: pa.Schema) -> pa.Table:
    """A table of no rows (``Schema.empty_table`` imports pandas)."""
    return pa.Table.from_batches([], schema)


def _with_flow_n(columns: list[str] | None, chosen: list[FilePart]) -> list[str] | None:
    """The columns to read of one slice's files: with ``flow_n`` when several are merged."""
    if columns is None or len(chosen) == 1 or "flow_n" in columns:
        return columns
    return [*columns, "flow_n"]


def _merged(tables: list[pa.Table], columns: list[str] | None) -> pa.Table:
    """The rows of one slice's files (each sorted by ``flow_n``) in the table's order: by
    ``flow_n`` (the sort is stable: each file's rows keep theirs), rows without one last."""
    if len(tables) == 1:
        return tables[0]
    rows = pa.concat_tables(tables)
    order = pc.sort_indices(rows, sort_keys=[("flow_n", "ascending")])  # nulls at the end
    return _select(rows.take(order), columns)


def _with(columns: list[str], needs: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys([*columns, *needs]))


def _select(rows: pa.Table, columns: list[str] | None) -> pa.Table:
    return rows if columns is None or rows.column_names == columns else rows.select(columns)


def arrow_array(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """An Arrow array of these Python values (no nulls), built from its buffers.

    ``pa.array`` and ``pa.scalar`` first ask whether a value is a pandas object, and asking
    imports pandas (0.45 s, pyarrow 26): a question that reads a few rows would wait longer for
    that than for its rows. Values: integers (and the raw integers of timestamps: microseconds),
    strings, booleans.
    """
    buffers: list[pa.Buffer | None]
    if pa.types.is_string(type_):
        data = [str(v).encode() for v in values]
        offsets = np.cumsum([0, *map(len, data)], dtype=np.int32)
        buffers = [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(data))]
    elif pa.types.is_boolean(type_):
        bits = np.packbits(np.asarray(values, dtype=bool), bitorder="little")
        buffers = [None, pa.py_buffer(bits.tobytes())]
    else:
        width = type_.bit_width // 8
        raw = np.asarray(values, dtype=np.dtype(f"<{'u' if _unsigned(type_) else 'i'}{width}"))
        buffers = [None, pa.py_buffer(raw.tobytes())]
    return pa.Array.from_buffers(type_, len(values), buffers)


def arrow_scalar(value: Any, type_: pa.DataType) -> pa.Scalar:
    """``arrow_array`` of one value, as a scalar to compare a column with."""
    return arrow_array([value], type_)[0]


def literal(value: str | bool | int) -> pa.Scalar:
    """``arrow_scalar`` of a Python string, boolean or integer, as Arrow types them (a literal
    in a computation: Arrow would convert it with ``pa.scalar``)."""
    if isinstance(value, str):
        return arrow_scalar(value, pa.string())
    return arrow_scalar(value, pa.bool_() if isinstance(value, bool) else pa.int64())


def _unsigned(type_: pa.DataType) -> bool:
    return bool(pa.types.is_unsigned_integer(type_))


def python_columns(table: pa.Table) -> dict[str, list[Any]]:
    """Each column as Python values, None for a missing cell; a UTC timestamp as a datetime
    (from its microseconds: Arrow's own conversion imports pandas, and went through a time zone
    database: 2 s for the 97,318 connections of the 2M-line store)."""
    return {
        name: _datetimes(table[name])
        if pa.types.is_timestamp(table.schema.field(name).type)
        else table[name].to_pylist()
        for name in table.column_names
    }


def python_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as dicts of ``python_columns`` values."""
    columns = python_columns(table)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _datetimes(column: pa.ChunkedArray | pa.Array) -> list[datetime | None]:
    micros = pc.cast(column, pa.int64()).to_pylist()
    return [None if us is None else EPOCH + timedelta(microseconds=us) for us in micros]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
