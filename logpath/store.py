"""The hop store: a Parquet dataset in one directory, written atomically, read with filters.

Layout::

    DIR/manifest.json      what is committed: parts, sources read so far, ruleset, skip counts
    DIR/hops/*.parquet     one file per ingest run (row groups per chunk), schema HOP_SCHEMA
    DIR/rejected/*.parquet the rejected lines of each run
    DIR/lock               held (flock) by the one writer

A run writes its parts under new names and then replaces manifest.json in one ``os.replace``:
a run killed at any moment leaves the previous manifest, which does not name the new parts (they
are removed by the next writer). Readers only read parts the manifest names.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import platformdirs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from logpath.errors import StoreError, StoreLockedError, UsageError
from logpath.hops import HOP_SCHEMA

if TYPE_CHECKING:  # parsing is not needed to read a store
    from logpath.parse import Rejected

MANIFEST = "manifest.json"
REJECTED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("lineno", pa.int64()),
        ("column", pa.int32()),
        ("expected", pa.string()),
        ("found", pa.string()),
        ("text", pa.string()),
    ]
)


def default_store() -> Path:
    """$LOGPATH_STORE, else the user's data directory (XDG)."""
    env = os.environ.get("LOGPATH_STORE")
    return Path(env) if env else Path(platformdirs.user_data_dir("logpath")) / "store"


@dataclass
class SourceState:
    """What has been read of one file's text: whole lines from its start, and a hash of them
    (``logpath.lines.Extent``), keyed by that hash.

    Stores written before extents keyed a file by a hash of its first line and kept only
    ``name`` and ``lines``; ingest trusts such an entry once, as those stores did, and
    replaces it with the extent of the file it matched.
    """

    name: str  # the path it was last read from
    lines: int  # lines read so far
    size: int | None = None  # their bytes (decompressed)
    digest: str | None = None  # SHA-256 of those bytes
    head: str | None = None  # SHA-256 of their first KiB

    def __post_init__(self) -> None:
        # read back from manifest.json: a wrong type is damage, to be said so (Manifest.load)
        counts = [self.lines] if self.size is None else [self.lines, self.size]
        hashes = [h for h in (self.digest, self.head) if h is not None]
        if (
            not isinstance(self.name, str)
            or not all(type(n) is int and n >= 0 for n in counts)
            or not all(isinstance(h, str) for h in hashes)
        ):
            raise ValueError(f"the entry of source {self.name!r} is not one ingest wrote")


@dataclass
class Manifest:
    """What the store holds."""

    version: int = 1
    parts: list[str] = field(default_factory=list)
    rejected_parts: list[str] = field(default_factory=list)
    sources: dict[str, SourceState] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    ruleset: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            raise StoreError(f"{path}: the store's manifest is damaged ({error})") from None
        data["sources"] = {k: SourceState(**v) for k, v in data.get("sources", {}).items()}
        return cls(**data)

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


class Store:
    """A hop store directory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else default_store()
        self._opened: tuple[tuple[str, ...], ds.Dataset | None] | None = None

    @property
    def manifest(self) -> Manifest:
        return Manifest.load(self.path / MANIFEST)

    def exists(self) -> bool:
        return (self.path / MANIFEST).exists()

    def require(self) -> Manifest:
        """The manifest, or a clear error when nothing was ingested into this store yet."""
        if not self.exists():
            raise StoreError(
                f"{self.path}: no hop store here\n\n"
                f"Run `logpath ingest FILE --store {self.path}` first."
            )
        return self.manifest

    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        """Hold the store's lock and collect one run's writes; commit them at the end."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "hops").mkdir(exist_ok=True)
        (self.path / "rejected").mkdir(exist_ok=True)
        with _locked(self.path / "lock"):
            writer = StoreWriter(self, self.manifest)
            writer.remove_orphans()
            try:
                yield writer
            finally:
                writer.close()
            writer.commit()

    def read_hops(
        self, filter_: ds.Expression | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """Hops matching a pyarrow filter expression, in file and line order."""
        table = self.read_table(filter_, columns)
        return to_frame(table)

    def hop_batches(
        self,
        columns: list[str] | None = None,
        within: ds.Expression | None = None,
        batch_size: int = 32768,
        filter_: ds.Expression | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The stored hops (matching ``filter_``) a record batch at a time, in file and line
        order: a caller that keeps only some rows of each batch holds memory for those rows, not
        for the store.

        ``within`` skips the row groups whose statistics rule it out; the rows of the groups
        read are not filtered (testing every row cost the widening scan 15% when nothing could
        be skipped).
        """
        dataset = self._hop_dataset()
        if dataset is None:
            return iter(())
        if filter_ is None and within is None:
            return self._part_batches(dataset, columns, batch_size)
        if within is not None:
            groups = [
                g for part in dataset.get_fragments() for g in part.split_by_row_group(within)
            ]
            dataset = ds.FileSystemDataset(
                groups, dataset.schema, dataset.format, dataset.filesystem
            )
        # the scanner decodes in its own threads while the caller works on the previous batch
        # (the widening scan: 0.1-0.2 s faster than the Parquet reader), and reads the filter's
        # columns even when they are not asked for
        return iter(
            dataset.to_batches(
                columns=columns,
                filter=filter_,
                batch_size=batch_size,
                batch_readahead=1,
                fragment_readahead=0,
            )
        )

    def _part_batches(
        self, dataset: ds.Dataset, columns: list[str] | None, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Every part read by the Parquet reader, one row group at a time: the dataset scanner
        read ahead whenever its consumer was slower than it (500 MB of buffers for a CSV
        export of the whole store)."""
        for part in dataset.get_fragments():
            yield from pq.ParquetFile(part.path).iter_batches(batch_size, columns=columns)

    def count_hops(self, filter_: ds.Expression | None = None) -> int:
        """How many stored hops match ``filter_``: only the filter's columns are read, and
        without a filter only the Parquet footers."""
        dataset = self._hop_dataset()
        return 0 if dataset is None else dataset.count_rows(filter=filter_)

    def _hop_files(self) -> list[str]:
        return [str(self.path / "hops" / p) for p in self.require().parts]

    def read_table(
        self, filter_: ds.Expression | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        schema = (
            HOP_SCHEMA if columns is None else pa.schema([HOP_SCHEMA.field(c) for c in columns])
        )
        # batch by batch with little readahead, not dataset.to_table: its default readahead
        # decoded 16 batches of every column at once (1.1 GB for the 27,000 hops of one port on
        # the 2M-line store)
        return pa.Table.from_batches(self.hop_batches(columns, filter_=filter_), schema=schema)

    def _hop_dataset(self) -> ds.Dataset | None:
        """The committed hop parts as one dataset, opened once per Store: opening reads every
        part's footer, ~0.1 s on a 2M-line store, and a command may scan several times."""
        files = tuple(self._hop_files())
        if self._opened is None or self._opened[0] != files:
            dataset = (
                ds.dataset(list(files), schema=HOP_SCHEMA, format="parquet") if files else None
            )
            self._opened = (files, dataset)
        return self._opened[1]

    def read_rejected(self) -> pd.DataFrame:
        manifest = self.require()
        files = [str(self.path / "rejected" / p) for p in manifest.rejected_parts]
        table = REJECTED_SCHEMA.empty_table()
        if files:
            table = ds.dataset(files, schema=REJECTED_SCHEMA, format="parquet").to_table()
        frame: pd.DataFrame = table.to_pandas()
        return frame


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A hop table as pandas, with the store's types: a port stays an integer (8080, not 8080.0),
    even where some rows have none."""
    frame: pd.DataFrame = table.to_pandas(types_mapper=_pandas_type)
    return frame


def _pandas_type(type_: pa.DataType) -> Any:
    # Nullable integers stay integers (a port is 8080, not 8080.0); strings stay str.
    if pa.types.is_integer(type_):
        return _MASKED_INTEGERS[type_]
    if pa.types.is_string(type_):
        return _PYTHON_STRINGS
    return None


_PYTHON_STRINGS = pd.StringDtype("python", na_value=np.nan)


_MASKED_INTEGERS = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
}


# Hops per Parquet row group. One ingest block (~11,000 hops) a group made 107 groups for 2M
# lines; 64Ki-hop groups read a third faster (fewer, longer runs to decode per column).
ROW_GROUP_ROWS = 65_536


class StoreWriter:
    """One ingest run's writes: hop and rejected parts, and the manifest changes."""

    def __init__(self, store: Store, manifest: Manifest) -> None:
        self.store = store
        self.manifest = manifest
        run = uuid.uuid4().hex[:12]
        self.hops_name = f"hops-{run}.parquet"
        self.rejected_name = f"rejected-{run}.parquet"
        self._hops: pq.ParquetWriter | None = None
        self._rejected: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []

    def remove_orphans(self) -> None:
        """Delete parts a killed run left behind (the manifest never named them)."""
        for folder, kept in (
            ("hops", self.manifest.parts),
            ("rejected", self.manifest.rejected_parts),
        ):
            for path in (self.store.path / folder).glob("*.parquet"):
                if path.name not in kept:
                    path.unlink()

    def add_hops(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._pending.append(table)
        if sum(t.num_rows for t in self._pending) >= ROW_GROUP_ROWS:
            self._write_pending()

    def _write_pending(self) -> None:
        """Write the hops gathered so far as one row group."""
        if not self._pending:
            return
        if self._hops is None:
            path = self.store.path / "hops" / self.hops_name
            self._hops = pq.ParquetWriter(path, HOP_SCHEMA, compression="zstd")
        self._hops.write_table(pa.concat_tables(self._pending), row_group_size=1 << 30)
        self._pending = []

    def add_rejected(self, rejected: list[Rejected]) -> None:
        if not rejected:
            return
        if self._rejected is None:
            path = self.store.path / "rejected" / self.rejected_name
            self._rejected = pq.ParquetWriter(path, REJECTED_SCHEMA)
        rows = [asdict(r) for r in rejected]
        self._rejected.write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA))

    def close(self) -> None:
        self._write_pending()
        for writer in (self._hops, self._rejected):
            if writer is not None:
                writer.close()

    def commit(self) -> None:
        if self._hops is not None:
            self.manifest.parts.append(self.hops_name)
        if self._rejected is not None:
            self.manifest.rejected_parts.append(self.rejected_name)
        target = self.store.path / MANIFEST
        temporary = target.with_suffix(".tmp")
        with temporary.open("w") as handle:
            handle.write(self.manifest.dump())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)


@contextmanager
def _locked(path: Path) -> Iterator[IO[str]]:
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreLockedError(
            f"{path.parent}: the store is being written by {holder}\n\n"
            "Wait for that ingest to finish, or use another --store."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"logpath ingest (pid {os.getpid()})")
    handle.flush()
    try:
        yield handle
    finally:
        handle.seek(0)
        handle.truncate()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def hop_filter(
    *,
    port: int | None = None,
    ident: int | None = None,
    host: str | None = None,
    prefix: str | None = None,
    proto: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> ds.Expression | None:
    """A filter pushed down into the Parquet scan: only matching row groups are read."""
    terms: list[ds.Expression] = []
    if port is not None:
        terms.append((ds.field("sport") == port) | (ds.field("dport") == port))
    if ident is not None:  # a flow id's number: the client port, or the ICMP echo identifier
        terms.append(
            (ds.field("sport") == ident)
            | (ds.field("dport") == ident)
            | (ds.field("icmp_id") == ident)
        )
    if host is not None:
        address = _normal_address(host)
        terms.append((ds.field("src") == address) | (ds.field("dst") == address))
    if prefix is not None:
        terms.append(pc.match_substring(ds.field("prefix").cast(pa.string()), prefix))
    if proto is not None:
        terms.append(ds.field("proto").cast(pa.string()) == proto.lower())
    if since is not None:
        terms.append(ds.field("ts") >= _timestamp(since, "--since"))
    if until is not None:
        terms.append(ds.field("ts") <= _timestamp(until, "--until"))
    if not terms:
        return None
    combined = terms[0]
    for term in terms[1:]:
        combined = combined & term
    return combined


def _normal_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"--host {text!r} is not an IPv4 or IPv6 address") from None


def _timestamp(text: str, option: str) -> pa.Scalar:
    try:
        stamp = pd.Timestamp(text)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a time (use ISO 8601, e.g. 2026-01-14T14:47)"
        ) from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return pa.scalar(stamp.to_pydatetime(), pa.timestamp("us", tz="UTC"))
