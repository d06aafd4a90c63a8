"""The hop store: a Parquet dataset in one directory, written atomically, read with filters.

Layout::

    DIR/manifest.json      what is committed: parts, sources read so far, ruleset, skip counts
    DIR/hops/*.parquet     one file per ingest run (row groups per chunk), schema HOP_SCHEMA
    DIR/rejected/*.parquet the rejected lines of each run
    DIR/assembled/         connections assembled from all the hops (``logpath.assembly``):
                           flows-*.parquet (one row per connection) and trace-*.parquet (every
                           hop with its hook, packet, connection and fate), sorted by flow, a
                           file per group of linked hosts and slice of time (``add_assembled``)
    DIR/lock               held (flock) by the one writer

A run writes its parts under new names and then replaces manifest.json in one ``os.replace``:
a run killed at any moment leaves the previous manifest, which does not name the new parts (they
are removed by the next writer). Readers only read parts the manifest names.

The assembled tables are a cache of the hops, rebuilt by the run that adds hops and named in
the same manifest: a reader sees hops and connections of one commit. The files a commit
replaces are removed by the next writer, not at once, so that a reader still reading them is
not cut short.

A store can also be a prefix at an object-store URL (``s3://bucket/prefix``, ``gs://...``):
the same files, through pyarrow's filesystem (``logpath.objectstore``). No rename there: the
manifest is one object, uploaded whole after the parts it names; no flock: ``lock`` is an
object created only if absent (S3, boto3), else each run says that nothing is locked.

A run that fails (full disk, a signal, a worker killed) removes what it wrote at once: its parts
could be what fills the disk. A store that cannot be written is refused before any input is
read; a store whose manifest or parts are damaged is reported, file by file, by every command.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import ipaddress
import json
import operator
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import platformdirs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from logpath.errors import Stopped, StoreError, StoreLockedError, StoreWriteError, UsageError
from logpath.hops import HOP_SCHEMA, TEXTS_AS_DICTIONARIES
from logpath.netfilter import (
    LOGGED_BY_NAME,
    PROTOCOL_NUMBERS,
    PROTOCOL_SPELLINGS,
    logged_protocol_value,
)
from logpath.objectstore import StoreURL, check_reachable, is_url, locked, oneline, unreachable
from logpath.rowgroups import (
    EPOCH,
    FilePart,
    ParquetRows,
    PartitionedRows,
    Rows,
    Where,
    arrow_array,
    arrow_scalar,
)

# pandas and Arrow's dataset scanner (which imports pandas) are imported where they are used: a
# question that reads a few rows of the assembled tables (``ParquetRows``) should not wait half
# a second for them.
if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from logpath.parse import Rejected  # parsing is not needed to read a store

MANIFEST = "manifest.json"
# Where a store's file is: a local path, or an object at a URL (``logpath.objectstore``).
StorePath = Path | StoreURL
# The store's directories (beside the manifest and the lock).
FOLDERS = ("hops", "rejected", "assembled")
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
    assembly: dict[str, Any] | None = None
    """What ``logpath.assembly`` built from ``parts``: its files under ``assembled/`` (per
    table, ``flows`` and ``trace``, a list of file entries, ``StoreWriter.add_assembled``; a
    store written before names one file) and what it depended on
    (``logpath.assembly.Provenance``)."""

    @classmethod
    def load(cls, path: StorePath) -> Manifest:
        try:
            if isinstance(path, StoreURL):
                text = _remote_bytes(path)
                if text is None:
                    return cls()
                data = json.loads(text)
            else:
                data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as error:
            raise StoreError(
                f"{path}: the store's manifest is damaged ({error})\n\n{_DAMAGED_REMEDY}"
            ) from None
        try:
            return cls._from_json(data)
        except (TypeError, ValueError, AttributeError) as error:
            raise StoreError(
                f"{path}: the store's manifest is damaged ({error})\n\n{_DAMAGED_REMEDY}"
            ) from None

    @classmethod
    def _from_json(cls, data: Any) -> Manifest:
        # every manifest a run wrote has these keys: one without them (`{}`, `[]`) is not a new
        # store, and taken for one its parts would be removed as a killed run's leftovers
        if not isinstance(data, dict) or not data.keys() >= _MANIFEST_KEYS:
            raise ValueError(f"not a JSON object with {', '.join(sorted(_MANIFEST_KEYS))}")
        data["sources"] = {k: SourceState(**v) for k, v in data["sources"].items()}
        manifest = cls(**data)
        if not isinstance(manifest.parts, list) or not isinstance(manifest.rejected_parts, list):
            raise ValueError("parts and rejected_parts are not lists")
        if not isinstance(manifest.skipped, dict):
            raise ValueError("skipped is not an object")
        if manifest.assembly is not None:
            if not isinstance(manifest.assembly, dict):
                raise ValueError("assembly is not an object naming the assembled files")
            for kind in ASSEMBLED:
                _file_parts(manifest.assembly.get(kind))  # raises on anything else
        for name in [*manifest.parts, *manifest.rejected_parts, *_assembled(manifest)]:
            # a name, not a path: a manifest never makes logpath read outside the store
            if not isinstance(name, str) or Path(name).name != name or name in ("", "..", "."):
                raise ValueError(f"{name!r} is not a part's file name")
        return manifest

    def dump(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Manifest:
        """A manifest from its ``dump`` (one process hands another the store as it was)."""
        return cls._from_json(json.loads(text))


_MANIFEST_KEYS = {"version", "parts", "rejected_parts", "sources"}
# The assembled tables, as the manifest's ``assembly`` names their files.
ASSEMBLED = ("flows", "trace")


def _assembled(manifest: Manifest) -> list[str]:
    """The files under ``assembled/`` the manifest names."""
    if not manifest.assembly:
        return []
    return [part.name for kind in ASSEMBLED for part in _file_parts(manifest.assembly[kind])]


def _file_parts(named: Any) -> list[FilePart]:
    """The files of one assembled table as the manifest names them: a list of entries
    (``StoreWriter.add_assembled``), or one file's name (a store written before them, whose
    file no entry describes: it is read whole, row groups skipped by their statistics).

    Raises:
        ValueError: anything else (a damaged manifest).
    """
    if isinstance(named, str):
        return [FilePart(named, 0, 0, {}, None)]
    if not isinstance(named, list) or not named:
        raise ValueError("assembly is not an object naming the assembled files")
    parts = []
    for entry in named:
        try:
            ranges = {
                str(column): (_raw(lowest), _raw(highest))
                for column, (lowest, highest) in entry["ranges"].items()
            }
            addresses = entry["addresses"]
            part = FilePart(
                entry["file"],
                entry["partition"],
                entry["slice"],
                ranges,
                None if addresses is None else frozenset(map(str, addresses)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"{entry!r} is not an assembled file's entry") from None
        if not isinstance(part.name, str) or not type(part.slice) is type(part.partition) is int:
            raise ValueError(f"{entry!r} is not an assembled file's entry")
        parts.append(part)
    if [p.slice for p in parts] != sorted(p.slice for p in parts):
        raise ValueError("the assembled files are not in the order of their slices")
    return parts


def _raw(value: Any) -> int | None:
    if value is not None and type(value) is not int:
        raise ValueError(f"{value!r} is not a column's raw value")
    return value


class Store:
    """A hop store: a directory, or a prefix at an object-store URL (``s3://bucket/prefix``,
    ``logpath.objectstore``)."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path: StorePath
        if path is None and is_url(os.environ.get("LOGPATH_STORE", "")):
            path = os.environ["LOGPATH_STORE"]
        if isinstance(path, str) and is_url(path):
            self.path = StoreURL.parse(path)
        else:
            self.path = Path(path) if path else default_store()
        self._opened: tuple[tuple[str, ...], ds.Dataset | None] | None = None
        self._checked: tuple[str, ...] = ()  # parts found whole (_check_parts)

    @property
    def manifest(self) -> Manifest:
        return Manifest.load(self.path / MANIFEST)

    def exists(self) -> bool:
        if isinstance(self.path, StoreURL):
            with _reached(self.path):
                return (self.path / MANIFEST).exists()
        return (self.path / MANIFEST).exists()

    @property
    def location(self) -> str:
        """Where the store is, as another process on this machine or a worker reaching the
        same object store opens it (``write_hops_part``): the URL, or the absolute path."""
        if isinstance(self.path, StoreURL):
            return self.path.url
        return str(self.path.absolute())

    @property
    def filesystem(self) -> pafs.FileSystem | None:
        """The object store's filesystem (None: a local directory, read as before)."""
        return self.path.filesystem if isinstance(self.path, StoreURL) else None

    def _file(self, folder: str, name: str) -> str:
        """A part's path as Arrow's readers take it with ``filesystem``."""
        return _where_str(self.path / folder / name)

    def require(self) -> Manifest:
        """The manifest, or a clear error when nothing was ingested into this store yet or
        when the store is damaged."""
        self._refuse_a_file()
        if not self.exists():
            raise StoreError(
                f"{self.path}: no hop store here\n\n"
                f"Run `logpath ingest FILE --store {self.path}` first."
            )
        manifest = self.manifest
        self._check_parts(manifest)
        return manifest

    def _refuse_a_file(self) -> None:
        if isinstance(self.path, StoreURL):
            return  # an object store has no files in the way of a prefix
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"{self.path}: is a file, not a hop store (a store is a directory)\n\n"
                "Give --store a directory, or a path that does not exist yet."
            )

    def _check_parts(self, manifest: Manifest) -> None:
        """Every part the manifest names is there and whole (checked once per Store)."""
        names = (
            *(f"hops/{name}" for name in manifest.parts),
            *(f"rejected/{name}" for name in manifest.rejected_parts),
            *(f"assembled/{name}" for name in _assembled(manifest)),
        )
        if names != self._checked:
            for name in names:
                _check_part(self.path / name)
            self._checked = names

    @contextmanager
    def writer(self) -> Iterator[StoreWriter]:
        """Hold the store's lock and collect one run's writes; commit them at the end.

        A run that fails removes the parts it wrote, and the directories it made when the
        store was new: a failed ingest leaves nothing. ``check_writable`` says beforehand
        whether a run could be written at all.
        """
        if isinstance(self.path, StoreURL):
            check_reachable(self.path)
            with locked(self.path, "logpath ingest"):
                manifest = self.require() if self.exists() else Manifest()
                writer = StoreWriter(self, manifest)
                writer.remove_orphans()
                with _committed(writer):
                    yield writer
            return
        own = [self.path / folder for folder in FOLDERS]
        made = _missing(self.path) + [f for f in own if not f.exists()]
        self._prepare(create=True)
        try:
            with _locked(self.path / "lock"):
                manifest = self.require() if self.exists() else Manifest()
                writer = StoreWriter(self, manifest)
                writer.remove_orphans()
                with _committed(writer):
                    yield writer
        except BaseException:
            if self.path in made and not self.exists():
                _remove_new_store(self.path, made)
            raise

    @contextmanager
    def runs(self) -> Iterator[Callable[..., AbstractContextManager[StoreWriter]]]:
        """Hold the store's lock for a run committed a piece at a time (``logpath follow``):
        each ``with run() as writer:`` is one writer, committed when its block ends, so that
        readers see what was read so far while a second writer is still refused. A piece that
        fails removes its own parts only; the pieces committed before it stand.
        ``run(spared=RUNS)``: the assembled files of those runs (a worker's, still being
        written, ``assembly.assembled_apart``) are no orphans."""
        self._prepare(create=True)
        with self._lock("logpath follow"):

            @contextmanager
            def run(spared: frozenset[str] = frozenset()) -> Iterator[StoreWriter]:
                writer = StoreWriter(self, self.require() if self.exists() else Manifest())
                # the assembled tables the commit before last replaced: a reader has had a
                # commit's time to open them
                writer.remove_orphans(spared)
                with _committed(writer):
                    yield writer

            yield run

    def _lock(self, holder: str) -> AbstractContextManager[Any]:
        if isinstance(self.path, StoreURL):
            return locked(self.path, holder)
        return _locked(self.path / "lock", holder)

    def check_writable(self) -> None:
        """Refuse, before a run reads any input and without creating anything, a store it
        could not write: a file, a read-only mount, another user's directory, a damaged
        store."""
        self._prepare(create=False)
        if self.exists():
            self.require()

    def _prepare(self, create: bool) -> None:
        """Check that files can be created in the store's directories (made if ``create``),
        or in the directory that will hold it (an object store: that its bucket answers)."""
        if isinstance(self.path, StoreURL):
            check_reachable(self.path)
            return
        self._refuse_a_file()
        own = [self.path, *(self.path / folder for folder in FOLDERS)]
        folders = own
        if not create:
            # where the first missing directory would be made
            folders = [f for f in own if f.exists()] or [_nearest_existing(self.path)]
        for folder in folders:
            try:
                if create:
                    folder.mkdir(parents=True, exist_ok=True)
                elif not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory")
                # an unnamed file, gone when closed: nothing is left behind even by kill -9
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                raise StoreWriteError(
                    f"{folder if folder in own else self.path}: the store cannot be written "
                    f"({_reason(error)})\n\n"
                    "Nothing was read. Use another --store, or make this one writable."
                ) from None

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
        import pyarrow.dataset as ds

        dataset = self._hop_dataset()
        if dataset is None:
            return iter(())
        if filter_ is None and within is None:
            return self._part_batches(dataset, columns, batch_size)
        with self._reading():
            if within is not None:
                groups = [
                    g for part in dataset.get_fragments() for g in part.split_by_row_group(within)
                ]
                dataset = ds.FileSystemDataset(
                    groups, dataset.schema, dataset.format, dataset.filesystem
                )
            # the scanner decodes in its own threads while the caller works on the previous
            # batch (the widening scan: 0.1-0.2 s faster than the Parquet reader), and reads the
            # filter's columns even when they are not asked for
            batches = dataset.to_batches(
                columns=columns,
                filter=filter_,
                batch_size=batch_size,
                batch_readahead=1,
                fragment_readahead=0,
            )
        return self._read_through(batches)

    def _read_through(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with self._reading():
            yield from batches

    def _part_batches(
        self, dataset: ds.Dataset, columns: list[str] | None, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """Every part read by the Parquet reader, one row group at a time: the dataset scanner
        read ahead whenever its consumer was slower than it (500 MB of buffers for a CSV
        export of the whole store)."""
        wanted = _hop_schema(columns)
        for part in dataset.get_fragments():
            with self._reading(part.path):
                reader = pq.ParquetFile(self._opened_file(part.path))
                held = set(reader.schema_arrow.names)
                for batch in reader.iter_batches(
                    batch_size, columns=[c for c in wanted.names if c in held]
                ):
                    # a part an older logpath wrote has narrower columns, and lacks the
                    # columns added since (the scanner widens them itself)
                    yield batch if batch.schema.equals(wanted) else _widened(batch, wanted)

    def _opened_file(self, path: str) -> str | pa.NativeFile:
        """A file of the store's filesystem as the Parquet reader takes it: a local path as
        is, an object opened for reads at offsets (the footer first)."""
        filesystem = self.filesystem
        return path if filesystem is None else filesystem.open_input_file(path)

    @contextmanager
    def _reading(self, part: str | None = None, folder: str = "hops") -> Iterator[None]:
        """Damage the footer check cannot see (a part overwritten inside) as a StoreError
        naming the part: the dataset scanner's errors do not, so then each part is read
        again, alone, to find it."""
        try:
            yield
        except (OSError, pa.ArrowException) as error:
            if isinstance(self.path, StoreURL) and unreachable(error):
                # an object store that stopped answering, or denies reading, is not damage
                raise StoreError(
                    f"{self.path}: the store cannot be read ({oneline(error)})"
                ) from None
            where = part or self._damaged_part(folder) or self.path
            if isinstance(self.path, StoreURL) and isinstance(where, str):
                where = f"{self.path.url.split('://')[0]}://{where}"
            raise StoreError(
                f"{where}: the store is damaged and cannot be read ({_oneline(error)})"
                f"\n\n{_DAMAGED_REMEDY}"
            ) from None

    def _damaged_part(self, folder: str) -> StorePath | None:
        manifest = self.manifest
        names = {
            "hops": manifest.parts,
            "rejected": manifest.rejected_parts,
            "assembled": _assembled(manifest),
        }[folder]
        for name in names:
            path = self.path / folder / name
            try:
                for _ in pq.ParquetFile(parquet_source(path)).iter_batches():
                    pass
            except (OSError, pa.ArrowException):
                return path
        return None

    def addresses(self) -> set[str]:
        """Every address a stored hop has as its source or destination (a few thousand at most:
        what a network filter is tested against)."""
        found: set[str] = set()
        for batch in self.hop_batches(["src", "dst"]):
            for column in batch.columns:
                found.update(a for a in pc.unique(column).to_pylist() if a is not None)
        return found

    def count_hops(self, filter_: ds.Expression | None = None) -> int:
        """How many stored hops match ``filter_``: only the filter's columns are read, and
        without a filter only the Parquet footers."""
        dataset = self._hop_dataset()
        with self._reading():
            return 0 if dataset is None else dataset.count_rows(filter=filter_)

    def read_parts(self, parts: list[str], columns: list[str] | None = None) -> pa.Table:
        """Every hop of these parts (a run about to commit reads its own part with the
        committed ones), in part and line order."""
        import pyarrow.dataset as ds

        schema = _hop_schema(columns)
        files = [self._file("hops", name) for name in parts]
        if not files:
            return schema.empty_table()
        with self._reading():
            dataset = ds.dataset(
                files, schema=HOP_SCHEMA, format="parquet", filesystem=self.filesystem
            )
        return pa.Table.from_batches(self._part_batches(dataset, columns, 32768), schema=schema)

    def count_parts(self, parts: list[str]) -> int:
        """The hops these parts hold, from their footers."""
        with self._reading():
            return sum(
                pq.read_metadata(parquet_source(self.path / "hops" / name)).num_rows
                for name in parts
            )

    def _hop_files(self) -> list[str]:
        return [self._file("hops", p) for p in self.require().parts]

    def read_table(
        self, filter_: ds.Expression | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        schema = _hop_schema(columns)
        # batch by batch with little readahead, not dataset.to_table: its default readahead
        # decoded 16 batches of every column at once (1.1 GB for the 27,000 hops of one port on
        # the 2M-line store)
        return pa.Table.from_batches(self.hop_batches(columns, filter_=filter_), schema=schema)

    def _hop_dataset(self) -> ds.Dataset | None:
        """The committed hop parts as one dataset, opened once per Store: opening reads every
        part's footer, ~0.1 s on a 2M-line store, and a command may scan several times."""
        import pyarrow.dataset as ds

        files = tuple(self._hop_files())
        if self._opened is None or self._opened[0] != files:
            with self._reading():
                dataset = (
                    ds.dataset(
                        list(files),
                        schema=HOP_SCHEMA,
                        format="parquet",
                        filesystem=self.filesystem,
                    )
                    if files
                    else None
                )
            self._opened = (files, dataset)
        return self._opened[1]

    def assembled_rows(self, kind: str, assembly: dict[str, Any] | None = None) -> Rows | None:
        """The assembled table ``kind`` ("flows" or "trace") of the committed manifest (or of
        ``assembly``, a manifest's ``assembly`` not committed yet: a writer's), to read by row
        group, only the files that can hold the rows asked for opened; None when the store has
        none yet (written by an older logpath). Whether it is current is for
        ``logpath.assembly`` to say (``Manifest.assembly`` holds what it was built from)."""
        if assembly is None:
            assembly = self.require().assembly
        if not assembly:
            return None
        parts = _file_parts(assembly[kind])
        if len(parts) == 1 and not parts[0].ranges:
            return self._assembled_file(parts[0].name)  # one file, no entry: as it was written
        return PartitionedRows(parts, self._assembled_file)

    def assembled_notes(self, entries: list[dict[str, Any]], key: bytes) -> list[bytes] | None:
        """What the footers of these assembled files keep under ``key``
        (``StoreWriter.add_assembled``'s notes), read without their rows; None when a file
        has none (written before)."""
        notes = []
        for part in _file_parts(entries):
            note = (self._assembled_file(part.name).schema.metadata or {}).get(key)
            if note is None:
                return None
            notes.append(note)
        return notes

    def assembled_files(self, entries: list[dict[str, Any]]) -> Rows:
        """These files of an assembled table (its manifest's entries), to read as one."""
        return PartitionedRows(_file_parts(entries), self._assembled_file)

    def _assembled_file(self, name: str) -> ParquetRows:
        path = self.path / "assembled" / name
        return ParquetRows(
            path,
            guard=lambda: self._reading(str(path), folder="assembled"),
            source=parquet_source,
        )

    def read_rejected(self) -> pd.DataFrame:
        import pyarrow.dataset as ds

        manifest = self.require()
        files = [self._file("rejected", p) for p in manifest.rejected_parts]
        table = REJECTED_SCHEMA.empty_table()
        if files:
            with self._reading(folder="rejected"):
                table = ds.dataset(
                    files, schema=REJECTED_SCHEMA, format="parquet", filesystem=self.filesystem
                ).to_table()
        frame: pd.DataFrame = table.to_pandas()
        return frame


_DAMAGED_REMEDY = (
    "Restore the store's files from a backup, or ingest the logs again into a new --store."
)


def _check_part(path: StorePath) -> None:
    """A part the manifest names exists and is a whole Parquet file: it starts and ends with
    Parquet's magic (a copy cut short, a disk that filled up, has no footer)."""
    try:
        if isinstance(path, StoreURL):
            with path.filesystem.open_input_file(path.key) as remote:
                size = remote.size()
                head = remote.read_at(4, 0)
                tail = remote.read_at(4, max(size - 4, 0))
        else:
            with path.open("rb") as handle:
                head = handle.read(4)
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(size - 4, 0))
                tail = handle.read(4)
    except FileNotFoundError:
        raise StoreError(
            f"{path}: this part of the store is missing (the store's manifest names it)"
            f"\n\n{_DAMAGED_REMEDY}"
        ) from None
    except OSError as error:
        raise StoreError(
            f"{path}: this part of the store cannot be read ({_reason(error)})"
        ) from None
    if size < 12 or head != b"PAR1" or tail != b"PAR1":
        raise StoreError(
            f"{path}: this part of the store is damaged: not a whole Parquet file "
            f"({size:,} bytes, no Parquet footer: cut short?)\n\n{_DAMAGED_REMEDY}"
        )


def _missing(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, outermost first."""
    missing = [folder for folder in [path, *path.parents] if not folder.exists()]
    return missing[::-1]


def _remove_new_store(path: Path, made: list[Path]) -> None:
    """Remove what a failed first run made: its lock and the (empty) directories."""
    with suppress(OSError):
        (path / "lock").unlink(missing_ok=True)
    for folder in reversed(made):
        with suppress(OSError):
            folder.rmdir()


def _nearest_existing(path: Path) -> Path:
    return next(folder for folder in [path, *path.absolute().parents] if folder.exists())


def _oneline(error: Exception) -> str:
    return " ".join(str(error).split())


def _reason(error: OSError) -> str:
    """What went wrong, as the system says it ("No space left on device")."""
    return os.strerror(error.errno) if error.errno else str(error)


def _widened(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of an older part in today's schema: its columns cast, the ones it lacks null."""
    return pa.RecordBatch.from_arrays(
        [
            batch.column(f.name).cast(f.type)
            if f.name in batch.schema.names
            else pa.nulls(batch.num_rows, f.type)
            for f in schema
        ],
        schema=schema,
    )


def _hop_schema(columns: list[str] | None) -> pa.Schema:
    return HOP_SCHEMA if columns is None else pa.schema([HOP_SCHEMA.field(c) for c in columns])


@contextmanager
def _committed(writer: StoreWriter) -> Iterator[None]:
    """Commit ``writer``'s run when the block ends; abort it (its parts removed) when the block
    raises, a Stopped told whether anything had been stored."""
    try:
        yield
        writer.close()
        writer.commit()
    except BaseException as error:
        stored = writer.abort()
        if isinstance(error, Stopped):
            error.stored = stored
        raise


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A hop table as pandas, with the store's types: a port stays an integer (8080, not 8080.0),
    even where some rows have none.

    A text column whose values repeat is made one Python string per distinct value, shared by
    its rows (``_shared_texts``): a chunk of 200,000 hops shows ~260 addresses and MACs, and a
    string object per row cost ~60 ms a column to make (~11 ms for a column of nulls), the page
    faults of their memory, and a hash per row in every factorisation after. A column of
    distinct texts (``raw``: a line each) is converted as it is: hashing it to find no repeat
    took twice the conversion."""
    import pandas as pd

    texts = [
        f.name
        for f in table.schema
        if (f.type in (pa.string(), pa.large_string()) and _repeats(table[f.name]))
        or (f.name in TEXTS_AS_DICTIONARIES and pa.types.is_dictionary(f.type))
    ]
    if not texts:
        frame: pd.DataFrame = table.to_pandas(types_mapper=_pandas_types().get)
        return frame
    rest = table.drop_columns(texts).to_pandas(types_mapper=_pandas_types().get)
    shared = {name: _shared_texts(table[name]) for name in texts}
    columns = {name: shared[name] if name in shared else rest[name] for name in table.column_names}
    return pd.DataFrame(columns, index=rest.index)


# A text column is shared (``to_frame``) when its first rows hold at most this share of
# distinct values.
REPEATS_BELOW = 0.5
REPEATS_SAMPLE = 1024


def _repeats(column: pa.ChunkedArray) -> bool:
    """Whether a text column's values repeat: judged on its first rows."""
    import pyarrow.compute as pc

    sample = column.slice(0, REPEATS_SAMPLE)
    if not len(sample):
        return True
    distinct = pc.count_distinct(sample, mode="all").as_py()
    return bool(distinct <= REPEATS_BELOW * len(sample))


def _shared_texts(column: pa.ChunkedArray) -> pd.Series:
    """A text column as the store's pandas type (``_pandas_types``), each distinct value one
    Python string, missing values NaN."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    # (a text kept as a dictionary is one already: its chunks' dictionaries made one)
    coded = (
        column.unify_dictionaries().combine_chunks()
        if pa.types.is_dictionary(column.type)
        else pc.dictionary_encode(column.combine_chunks())
    )
    dtype = _pandas_types()[pa.string()]
    # the distinct values made an array (and checked) once, the rows taken from it by position:
    # the last one, NaN, for a missing value
    values = np.array([*coded.dictionary.to_pylist(), np.nan], dtype=object)
    distinct = dtype.construct_array_type()._from_sequence(values, dtype=dtype)
    at = coded.indices.fill_null(len(values) - 1).to_numpy(zero_copy_only=False)
    return pd.Series(distinct.take(at))


@functools.cache
def _pandas_types() -> dict[pa.DataType, Any]:
    """The pandas type of each Arrow type that needs one: nullable integers stay integers (a
    port is 8080, not 8080.0); strings stay str."""
    import numpy as np
    import pandas as pd

    return {
        pa.string(): pd.StringDtype("python", na_value=np.nan),
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

    def __init__(self, store: Store, manifest: Manifest, run: str | None = None) -> None:
        self.store = store
        self.manifest = manifest
        self.run = run or new_run()
        self.hops_name = f"hops-{self.run}.parquet"  # the part this process writes now
        self.rejected_name = f"rejected-{self.run}.parquet"
        self._hops: pq.ParquetWriter | None = None
        self._rejected: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        # this run's hop parts written here and closed (``hop_parts`` closes the one being
        # written: an ingest assembles the hops so far and writes on in a new part), in order
        self.own_parts: list[str] = []
        # per own part still held, its hops without ``raw``: the assembly reads them from here,
        # not back from the file (1.3 s of a 2M-line ingest's 24), until ``let_go_of_hops``
        self._written: dict[str, list[pa.Table]] = {}
        # of the hops added here: their hosts (None: none named), how many have no wall-clock
        # time, and the earliest time of the others (``ingest._in_stages``)
        self.hosts: set[str | None] = set()
        self.untimed = 0
        self.earliest: datetime | None = None
        self._assembled: list[StorePath] = []  # written by this run, named at commit
        # hop parts the workers wrote for this run (``add_part``), in the inputs' order
        self._worker_parts: list[str] = []
        self._worker_seq = 0
        self._closed = False
        self.failed = False  # a write failed: the run is lost, later writes are dropped
        # the row group of hops being written, on a thread of its own (``_write_pending``)
        self._hop_writes: ThreadPoolExecutor | None = None
        self._hop_write: Future[None] | None = None

    def remove_orphans(self, spared: frozenset[str] = frozenset()) -> None:
        """Delete parts a killed run left behind (the manifest never named them), and the
        assembled tables an earlier commit replaced; not the assembled files of the ``spared``
        runs (a worker's, named at a later commit)."""
        for folder, kept in (
            ("hops", self.manifest.parts),
            ("rejected", self.manifest.rejected_parts),
            ("assembled", _assembled(self.manifest)),
        ):
            root = self.store.path / folder
            if isinstance(root, StoreURL):
                with _reached(root):
                    names = [n for n in root.names() if n.endswith(".parquet")]
            else:
                names = [path.name for path in root.glob("*.parquet")]
            for name in names:
                if name in kept or (folder == "assembled" and _run_of(name) in spared):
                    continue
                with self._writing(root / name):
                    (root / name).unlink()

    @contextmanager
    def _writing(self, path: StorePath) -> Iterator[None]:
        """A failed write as a StoreWriteError naming the file. The run cannot be committed
        after it; writes asked for after it are dropped, so that the first failure is the one
        reported."""
        try:
            yield
        except OSError as error:
            self.failed = True
            full = error.errno in (errno.ENOSPC, errno.EDQUOT)
            raise StoreWriteError(
                f"{path}: {oneline(error) if isinstance(path, StoreURL) else _reason(error)}; "
                "nothing of this run was stored, and what it wrote "
                "was removed\n\n"
                + (
                    "Free some space (or use another --store) and ingest again."
                    if full
                    else "Check the store's directory (or use another --store) and ingest again."
                )
            ) from None

    def add_hops(self, table: pa.Table) -> None:
        if not table.num_rows or self.failed:
            return
        assert not self._worker_parts, "hops written by workers and here"
        self._pending.append(table)
        self.hosts.update(table["host"].unique().to_pylist())
        self.untimed += table["ts"].null_count
        earliest = pc.min(table["ts"]).as_py()
        if earliest is not None and (self.earliest is None or earliest < self.earliest):
            self.earliest = earliest
        if sum(t.num_rows for t in self._pending) >= ROW_GROUP_ROWS:
            self._write_pending()

    def let_go_of_hops(self) -> None:
        """Hold no hop in memory any more: the store's connections were assembled from them
        (an ingest of a large input assembles a stage at a time, ``ingest.STAGE_HOPS``, and
        its memory is a stage's, not the input's). The closed parts are read from their files
        when asked for again."""
        self._written.clear()

    @property
    def held_hops(self) -> int:
        """The hops this run holds in memory: written and not let go of, or not yet written."""
        written = sum(t.num_rows for tables in self._written.values() for t in tables)
        return int(written + sum(t.num_rows for t in self._pending))

    def _write_pending(self) -> None:
        """Write the hops gathered so far as one row group, on a thread of its own, once the
        row group before is written (its failure raised here).

        Written in this thread, each row group (~70 ms of Parquet's encoding and compression,
        which let go of the GIL) held back the blocks handed to the parse workers: the 2M-line
        replay's parse ended 0.45 s later (5.26-5.43 s against 4.70-5.01, three alternating
        ingests without the assembly)."""
        self._finish_hop_write()
        if not self._pending or self.failed:
            return
        path = self.store.path / "hops" / self.hops_name
        with self._writing(path):
            if self._hops is None:
                self._hops = pq.ParquetWriter(
                    _where(path),
                    HOP_SCHEMA,
                    filesystem=_filesystem(path),
                    **file_options(HOP_SCHEMA),
                )
        table = pa.concat_tables(self._pending)
        if self._hop_writes is None:
            self._hop_writes = ThreadPoolExecutor(1, thread_name_prefix="logpath-hops")
        self._hop_write = self._hop_writes.submit(self._write_row_group, self._hops, path, table)
        self._written.setdefault(self.hops_name, []).append(table.drop_columns(["raw"]))
        self._pending = []

    def _write_row_group(self, writer: pq.ParquetWriter, path: StorePath, table: pa.Table) -> None:
        with self._writing(path):
            writer.write_table(table, row_group_size=1 << 30)

    def _finish_hop_write(self) -> None:
        """Wait for the row group being written; its failure as a StoreWriteError."""
        write, self._hop_write = self._hop_write, None
        if write is not None:
            write.result()

    def _end_hop_writes(self) -> None:
        """Wait for the row group being written (its failure raised), then end its thread."""
        try:
            self._finish_hop_write()
        finally:
            if self._hop_writes is not None:
                self._hop_writes.shutdown()
                self._hop_writes = None

    def _close_hops(self) -> None:
        """Close the hop part being written; the next hops added go to a new one."""
        self._write_pending()
        self._end_hop_writes()
        if self._hops is None:
            return
        with self._writing(self.store.path / "hops" / self.hops_name):
            self._hops.close()
        self._hops = None
        self.own_parts.append(self.hops_name)
        self.hops_name = f"hops-{self.run}.{len(self.own_parts)}.parquet"

    def worker_part_name(self) -> str:
        """A new name for a hop part a worker writes for this run (``write_hops_part``): the
        run's, numbered in the order the chunks were handed out."""
        self._worker_seq += 1
        return f"hops-{self.run}-{self._worker_seq:06d}.parquet"

    def add_part(self, name: str, hops: int) -> None:
        """A hop part a worker wrote for this run, named in the manifest at commit after the
        ones added before it: the hops keep the inputs' order. A run's hops are either all
        written here (``add_hops``) or all by the workers."""
        assert self._hops is None and not self._pending and not self.own_parts, (
            "hops written here and by workers"
        )
        if hops and not self.failed:
            self._worker_parts.append(name)

    def absorb_parts(self, parts: list[str]) -> None:
        """Take these committed hop parts into this run's part, their hops first and in order,
        and drop them from the manifest at commit (``logpath follow`` commits a small part every
        few seconds: a day would leave tens of thousands). They are the manifest's last parts,
        so every hop keeps its place; their files go as a replaced assembled table goes, at the
        next run (a reader has had a commit's time to open them)."""
        if len(parts) < 2 or self.failed:
            return
        assert self._hops is None and not self._pending and not self.own_parts, (
            "absorbed before this run's own hops"
        )
        assert self.manifest.parts[-len(parts) :] == parts, "only the last parts keep the order"
        self.add_hops(self.store.read_parts(parts))
        del self.manifest.parts[-len(parts) :]

    def hop_parts(self) -> list[str]:
        """The parts holding every hop added so far once this run commits: the committed ones
        and this run's (the one being written closed first: the assembly reads it)."""
        self._close_hops()
        return [*self.manifest.parts, *self.own_parts, *self._worker_parts]

    def read_parts(self, parts: list[str], columns: list[str]) -> pa.Table:
        """``Store.read_parts`` for this run (``hop_parts``): its own parts still held, from
        memory."""
        if not any(part in self._written for part in parts):
            return self.store.read_parts(parts, columns)
        pieces: list[pa.Table] = []
        on_disk: list[str] = []  # parts read from their files, a run of them at a time
        for part in parts:
            if part not in self._written:
                on_disk.append(part)
                continue
            if on_disk:
                pieces.append(self.store.read_parts(on_disk, columns))
                on_disk = []
            pieces.extend(table.select(columns) for table in self._written[part])
        if on_disk:
            pieces.append(self.store.read_parts(on_disk, columns))
        return pa.concat_tables(pieces).cast(_hop_schema(columns))

    def add_assembled(
        self,
        tables: dict[str, pa.Table],
        provenance: dict[str, Any],
        row_group: int,
        links: frozenset[tuple[str, str]] | None,
        kept: Mapping[str, list[dict[str, Any]]] | None = None,
        notes: Callable[[pa.Table], dict[bytes, bytes]] | None = None,
        noted: Sequence[str] = (),
    ) -> None:
        """Write the assembled tables (``ASSEMBLED``: ``flows``, row i connection i, and
        ``trace``, sorted by connection; the trace may be not built yet, ``assembly.TraceRows``:
        each file's rows are built as they are written), named in the manifest at commit; with
        ``kept``, the manifest's entries of the files that hold the first connections, kept as
        they are (``assembly.assemble_added`` did not read them), and the tables' rows are the
        connections after them, their files numbered after them.

        Each table is written as a file per group of hosts ``links`` joins (``clocks.host_groups``:
        hosts in two groups share no connection) and slice of time (``SLICE_SECONDS`` of the
        connections' first hops), its rows in the table's order; the hops of no connection in a
        file of their own, last. The manifest's entry of each file says what a question needs to
        skip it: its slice, hosts and rows, the range of ``FILE_RANGES``' columns, and the
        addresses its hops are from or to (when there are at most ``ADDRESSES_LISTED``).
        ``notes`` gives what a ``trace`` file's footer keeps of its rows
        (``assembled_notes``), from their ``noted`` columns.
        """
        if self.failed:
            return
        assembly = dict(provenance)
        flows, trace = tables["flows"], tables["trace"]
        kept = kept or {kind: [] for kind in ASSEMBLED}
        # the connections of the kept files come first: these are numbered from after them
        first = sum(int(entry["rows"]) for entry in kept["flows"])
        flow_n = pc.fill_null(trace["flow_n"], first - 1).to_numpy() - first
        hops = np.bincount(flow_n[flow_n >= 0], minlength=flows.num_rows)
        flow_part, partitions = _flow_partitions(flows, hops, links)
        held = [entry for kind in ASSEMBLED for entry in kept[kind]]
        numbered = 1 + max((int(entry["partition"]) for entry in held), default=-1)
        sliced = 1 + max((int(entry["slice"]) for entry in held), default=-1)
        flow_part += numbered
        partitions = [(slice_ + sliced, hosts) for slice_, hosts in partitions]
        # rows of no connection go past every partition, in a file of their own
        stray = numbered + len(partitions)
        last_slice = partitions[-1][0] if partitions else sliced - 1
        rows_part = {
            "flows": flow_part,
            "trace": np.where(flow_n >= 0, flow_part[np.maximum(flow_n, 0)], stray)
            if len(flow_part)
            else np.full(len(flow_n), stray),
        }
        # the files are placed two at a time: Parquet's encoding and compression let go of
        # the GIL (a 2M-line ingest's 12 files took 1.3 s one at a time), and so do the
        # entries' minima, maxima and addresses (0.3 s of the 2M-line ingest, in this thread),
        # and the gathers that build a trace file's rows (``assembly.TraceRows``). Each thread
        # builds the rows it writes: built here while two others were written, three files'
        # rows were held at once (~140 MiB each, 200,000 hops of the 2M-line replay)
        writes = ThreadPoolExecutor(2)
        written: list[Future[dict[str, Any]]] = []
        placed: dict[str, list[Future[dict[str, Any]]]] = {}
        for kind in ASSEMBLED:
            table, part = tables[kind], rows_part[kind]
            order = np.argsort(part, kind="stable")
            # one group: each file a run of the table's rows, else taken a file at a time (a
            # copy of the whole trace, sorted, held 0.3 GB more at the ingest of 800,000 hops)
            contiguous = np.array_equal(order, np.arange(len(order)))
            numbers, starts = np.unique(part[order], return_index=True)
            if not len(numbers):  # no rows: one empty file, that the table is there
                numbers, starts = np.full(1, numbered, np.int64), np.zeros(1, np.int64)
            entries = placed.setdefault(kind, [])
            for number, start, end in zip(
                numbers.tolist(), starts.tolist(), [*starts[1:].tolist(), len(part)], strict=True
            ):
                rows = _FileRows(table, start, end - start, None if contiguous else order)
                slice_, hosts = (
                    partitions[number - numbered] if number < stray else (last_slice + 1, None)
                )
                if len(written) >= 2:  # at most two files' rows built and not yet written
                    written.pop(0).result()
                noting = (notes, tuple(noted)) if kind == "trace" and notes else None
                place = writes.submit(
                    self._place_assembled, kind, rows, number, slice_, hosts, row_group, noting
                )
                written.append(place)
                entries.append(place)
        try:
            for kind, places in placed.items():
                # the first failure, as a StoreWriteError naming its file
                assembly[kind] = [*kept[kind], *(place.result() for place in places)]
        finally:
            writes.shutdown(cancel_futures=True)
        self.manifest.assembly = assembly
        self._remove_replaced()

    def _remove_replaced(self) -> None:
        """Delete the assembled files this run wrote that its tables no longer name: an
        ingest assembled in stages rewrites the files of the connections a stage's hops
        reach. Not committed, they were never read but by this run."""
        named = set(_assembled(self.manifest))
        for path in [path for path in self._assembled if path.name not in named]:
            with self._writing(path):
                path.unlink()
            self._assembled.remove(path)

    def _place_assembled(
        self,
        kind: str,
        built: _FileRows,
        number: int,
        slice_: int,
        hosts: list[str] | None,
        row_group: int,
        noting: tuple[Callable[[pa.Table], dict[bytes, bytes]], tuple[str, ...]] | None,
    ) -> dict[str, Any]:
        """The manifest's entry of the rows ``built`` gives, a file of table ``kind`` (of
        ``hosts``, by default those of its rows): the committed file that holds them already,
        else a new file written (with ``notes`` of its rows, read from their ``noted``
        columns, in its footer: ``noting``).

        A file of more than a row group is written a row group at a time (``_written_by_groups``)
        unless a committed file's entry is the same as its (then its rows are built whole to
        be compared with that file's)."""
        notes, noted = noting if noting is not None else (None, ())
        name = f"{kind}-{self.run}-{number:05d}.parquet"
        if built.count > row_group:
            few = built(_entry_columns(kind, built.schema, noted))
            entry = _file_entry(kind, few, number, slice_, _hosts(few) if hosts is None else hosts)
            if not self._held_with(kind, entry):
                notes_of = notes(few) if notes is not None else {}
                self._written_by_groups(name, built, few, notes_of, row_group)
                return {"file": name, **entry}
        rows = built()
        entry = _file_entry(kind, rows, number, slice_, _hosts(rows) if hosts is None else hosts)
        standing = self._standing(kind, entry, rows)
        if standing is None:
            if notes is not None:
                rows = rows.replace_schema_metadata({**(rows.schema.metadata or {}), **notes(rows)})
            standing = self._write_assembled(name, rows, row_group)
        return {"file": standing, **entry}

    def _held_with(self, kind: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """The entries of the committed files of ``kind`` that are this one but for their
        names (``_standing`` reads those files to compare their rows)."""
        if not self.manifest.assembly or isinstance(self.manifest.assembly.get(kind), str):
            return []
        return [
            held
            for held in self.manifest.assembly[kind]
            if {k: v for k, v in held.items() if k != "file"} == entry
        ]

    def _written_by_groups(
        self,
        name: str,
        built: _FileRows,
        few: pa.Table,
        notes: dict[bytes, bytes],
        row_group: int,
    ) -> None:
        """The rows ``built`` gives written as the assembled file ``name``, a row group at a
        time: the same file as ``_write_assembled`` writes of them whole. ``few`` holds their
        texts kept as dictionaries, made one dictionary per column for the file as
        ``_write_assembled`` makes them, and the columns the entry and the notes read; each row
        group's other columns are built as it is written.

        Built whole, the two files written at once held ~150 MiB of rows each (200,000 hops
        of the 2M-line replay), the ingest's peak."""
        schema = built.schema
        schema = schema.with_metadata({**(schema.metadata or {}), **notes})
        few = few.unify_dictionaries()
        held = set(few.column_names)
        rest = [field.name for field in schema if field.name not in held]
        path = self._assembled_path(name)
        with self._writing(path):
            writer = pq.ParquetWriter(
                _where(path), schema, filesystem=_filesystem(path), **file_options(schema)
            )
            try:
                for offset in range(0, built.count, row_group):
                    length = min(row_group, built.count - offset)
                    group = built(rest, offset, length)
                    columns = [
                        few[field.name].slice(offset, length)
                        if field.name in held
                        else group[field.name]
                        for field in schema
                    ]
                    table = pa.Table.from_arrays(columns, schema=schema)
                    writer.write_table(table, row_group_size=row_group)
            finally:
                writer.close()

    def _standing(self, kind: str, entry: dict[str, Any], rows: pa.Table) -> str | None:
        """The committed file of ``kind`` that holds these rows already, if any: an ingest that
        adds hops changes the partitions its hops reach, and the earlier ones stay as they are
        (only a file whose entry is the same but for its name is read to be compared)."""
        for held in self._held_with(kind, entry):
            path = self.store.path / "assembled" / held["file"]
            with self.store._reading(str(path), folder="assembled"):
                if pq.read_table(parquet_source(path)).equals(rows):
                    return str(held["file"])
        return None

    def assembled_names(self) -> list[str]:
        """The assembled files this run wrote (``add_assembled``)."""
        return [path.name for path in self._assembled]

    def take_assembly(self, assembly: dict[str, Any]) -> None:
        """Name at this run's commit the assembled tables another process wrote for this store
        (``assembly.assembled_apart``: its ``manifest.assembly``, its files in ``assembled/``).
        They were built from parts that must still be the first of this run's."""
        built = list(assembly.get("parts") or [])
        assert self.manifest.parts[: len(built)] == built, "built from parts no longer there"
        self.manifest.assembly = assembly

    def _assembled_path(self, name: str) -> StorePath:
        """Where this run writes the assembled file ``name``, counted as one of its files."""
        path = self.store.path / "assembled" / name
        if path not in self._assembled:  # (a stage may write a file of the same name again)
            self._assembled.append(path)
        return path

    def _write_assembled(self, name: str, rows: pa.Table, row_group: int) -> str:
        """``rows`` written as the assembled file ``name`` of this run."""
        path = self._assembled_path(name)
        with self._writing(path):
            # one dictionary per column in a file: its rows may be stored rows kept as they
            # were read beside rows assembled again (``assembly._after_head``)
            _write_table(path, rows.unify_dictionaries(), row_group)
        return name

    def add_rejected(self, rejected: list[Rejected]) -> None:
        if not rejected or self.failed:
            return
        path = self.store.path / "rejected" / self.rejected_name
        with self._writing(path):
            if self._rejected is None:
                self._rejected = pq.ParquetWriter(
                    _where(path), REJECTED_SCHEMA, filesystem=_filesystem(path)
                )
            rows = [asdict(r) for r in rejected]
            self._rejected.write_table(pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA))

    def close(self) -> None:
        if self._closed:
            return
        self._close_hops()
        if self._rejected is not None:
            with self._writing(self.store.path / "rejected" / self.rejected_name):
                self._rejected.close()
        self._closed = True

    def commit(self) -> None:
        if self.failed:  # a failure the ingest took for an input's and carried on after
            raise StoreWriteError(f"{self.store.path}: a write failed; nothing was stored")
        self._close_hops()
        self.manifest.parts.extend(self.own_parts)
        self.manifest.parts.extend(self._worker_parts)
        if self._rejected is not None:
            self.manifest.rejected_parts.append(self.rejected_name)
        target = self.store.path / MANIFEST
        if isinstance(target, StoreURL):
            # no rename on an object store: the manifest is one object, replaced whole by one
            # upload (a reader sees the old one or this one), written after every part it names
            with self._writing(target):
                target.write_bytes(self.manifest.dump().encode())
            return
        temporary = target.with_suffix(".tmp")
        with self._writing(temporary):
            with temporary.open("w") as handle:
                handle.write(self.manifest.dump())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)

    def abort(self) -> bool:
        """Forget the run: close its parts and delete them and a half-written manifest now,
        not at the next run: they may be what fills the disk. Unless the manifest on disk
        names them: a signal can come between the commit's ``os.replace`` and its return.
        Whether the run was committed after all."""
        # not closed under the thread writing into it; its failure was reported, or goes with
        # the run
        with suppress(StoreWriteError, OSError, pa.ArrowException):
            self._end_hop_writes()
        for writer in (self._hops, self._rejected):
            if writer is not None:
                with suppress(OSError, pa.ArrowException):  # a writer a full disk broke
                    writer.close()
        self._hops = self._rejected = None
        with suppress(StoreError):
            on_disk = Manifest.load(self.store.path / MANIFEST)
            first = [*self.own_parts, *self._worker_parts, self.hops_name][0]
            if first in on_disk.parts or self.rejected_name in on_disk.rejected_parts:
                return True
        root = self.store.path
        written = [
            *(root / "hops" / name for name in [*self.own_parts, self.hops_name]),
            root / "rejected" / self.rejected_name,
            *self._assembled,
            # a part a worker was still writing when the run ended is not known here: the
            # next writer removes it (remove_orphans)
            *(root / "hops" / name for name in self._worker_parts),
        ]
        for path in written:
            with suppress(OSError):
                if isinstance(path, StoreURL):
                    path.unlink()
                else:
                    path.unlink(missing_ok=True)
        if isinstance(root, Path):
            with suppress(OSError):
                (root / MANIFEST).with_suffix(".tmp").unlink(missing_ok=True)
        return False


def new_run() -> str:
    """A run's id: in the names of the files it writes."""
    return uuid.uuid4().hex[:12]


def _run_of(name: str) -> str:
    """The run that wrote an assembled file (``KIND-RUN-NUMBER.parquet``)."""
    parts = name.split("-")
    return parts[1] if len(parts) == 3 else ""


# The assembled tables' files (``StoreWriter.add_assembled``): a slice of time holds the
# connections whose first hop comes within SLICE_SECONDS of the slice's first, and at least
# SLICE_HOPS hops (a trace row group: a smaller file costs an open more than the row groups it
# lets a question skip). An hour is over the fleet's assembly window (40 min), so a 20-minute
# question reads one or two slices of a group (benchmarks/results/partitions-latest.md).
SLICE_SECONDS = 3600
SLICE_HOPS = 65_536
# ... and at most SLICE_HOPS_MAX hops, however short its time: a run that adds hops leaves the
# files of settled slices unread (``assembly.assemble_added``), and a busy host (20,000 lines/s)
# logs 43M hops an hour.
SLICE_HOPS_MAX = 1 << 20
# The columns whose least and most value each file's manifest entry keeps: what the questions'
# ranges are over (``flow_n`` for a journey and the connections a filter found, ``ts`` for
# ``--since``/``--until``), and the time the connections span.
FILE_RANGES = {"flows": ("flow_n", "first_seen", "last_seen"), "trace": ("flow_n", "ts")}
# A trace file's entry lists its hops' addresses (for ``--host``) when it has at most this
# many (~15 bytes of manifest each): a replayed Docker host's containers and clients are 260; a
# server facing the internet has too many, and its files are then read for any address.
ADDRESSES_LISTED = 1024


def _flow_partitions(
    flows: pa.Table, hops: np.ndarray, links: frozenset[tuple[str, str]] | None
) -> tuple[np.ndarray, list[tuple[int, list[str]]]]:
    """Per connection (row i connection i, with ``hops[i]`` hops in the trace), the number of
    its file: files numbered by slice of time (``_slices``), then by group of hosts; and per
    file number, its slice and its group's hosts. One group when the links were not learned,
    or when a connection names no host (as the assembly's, ``assembly.host_group_of_hops``)."""
    from logpath.clocks import host_groups_of

    if not flows.num_rows:
        return np.zeros(0, np.int64), []
    slices = _slices(flows["first_seen"], hops)
    hosts = flows["hosts"].combine_chunks()
    named = pc.list_flatten(hosts)
    lengths = pc.fill_null(pc.list_value_length(hosts), 0).to_numpy()
    members: dict[int, set[str]] = {}
    if links is None or named.null_count or (lengths == 0).any():
        group = np.zeros(flows.num_rows, np.int64)
        members[0] = set(named.drop_null().to_pylist())
    else:
        group = host_groups_of(pc.list_element(hosts, 0), links)
        # each (group, host name) pair once, by the names' codes (a loop over every name of
        # every connection took 0.6 s of the 2M-line ingest's one-core part)
        encoded = pc.dictionary_encode(named)
        names = encoded.dictionary.to_pylist()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        for pair in np.unique(np.repeat(group, lengths) * len(names) + codes).tolist():
            members.setdefault(pair // len(names), set()).add(names[pair % len(names)])
    groups = int(group.max()) + 1
    keys, part = np.unique(slices * groups + group, return_inverse=True)
    partitions = [(int(key) // groups, sorted(members[int(key) % groups])) for key in keys]
    return part.astype(np.int64), partitions


def _slices(first_seen: pa.ChunkedArray, hops: np.ndarray) -> np.ndarray:
    """Per connection, its slice of time: a slice starts with a connection, and the next one
    with the first connection that starts SLICE_SECONDS after it once the slice holds
    SLICE_HOPS hops (of every group), or with the first past SLICE_HOPS_MAX hops. Each slice's
    end depends only on its start: slices found from any slice's start on are those found from
    the first connection."""
    first = pc.fill_null_backward(pc.fill_null_forward(first_seen.cast(pa.int64())))
    # connections are numbered by their first hop on the one clock, and ``first_seen`` is its
    # host's wall clock: the running maximum keeps each slice a run of connection numbers
    reached = np.maximum.accumulate(pc.fill_null(first, 0).to_numpy())
    held = np.cumsum(hops)  # the hops of connections 0..i
    starts = [0]
    while starts[-1] < len(reached):
        start = starts[-1]
        later = int(np.searchsorted(reached, reached[start] + SLICE_SECONDS * 1_000_000))
        fuller = int(np.searchsorted(held, held[start] - hops[start] + SLICE_HOPS))
        fullest = int(np.searchsorted(held, held[start] - hops[start] + SLICE_HOPS_MAX))
        starts.append(min(max(later, fuller + 1), fullest + 1))
    found: np.ndarray = np.searchsorted(starts, np.arange(len(reached)), side="right") - 1
    return found


def _hosts(rows: pa.Table) -> list[str]:
    """The hosts of these trace rows (of an empty table, none: it may be the flows')."""
    if not rows.num_rows:
        return []
    return sorted(h for h in pc.unique(rows["host"].cast(pa.string())).to_pylist() if h is not None)


@dataclass(frozen=True)
class _FileRows:
    """The rows of one assembled file, built when asked (``assembly.TraceRows`` builds a
    trace's rows from the hops): a run of ``count`` of the table's rows from ``start``, or
    its rows ``order[start:start + count]``. Called, all of them, or only ``columns`` of
    them, or ``length`` of them from ``offset``."""

    table: Any  # pa.Table, or anything with its slice, take and schema taking ``columns``
    start: int
    count: int
    order: np.ndarray | None = None

    @property
    def schema(self) -> pa.Schema:
        schema: pa.Schema = self.table.schema
        return schema

    def __call__(
        self, columns: list[str] | None = None, offset: int = 0, length: int | None = None
    ) -> pa.Table:
        length = self.count - offset if length is None else min(length, self.count - offset)
        table = self.table
        if isinstance(table, pa.Table):
            table = table if columns is None else table.select(columns)
            if self.order is None:
                return table.slice(self.start + offset, length)
            return table.take(pa.array(self.order[self.start + offset :][:length]))
        if self.order is None:
            rows: pa.Table = table.slice(self.start + offset, length, columns=columns)
        else:
            rows = table.take(self.order[self.start + offset :][:length], columns=columns)
        return rows


def _entry_columns(kind: str, schema: pa.Schema, noted: Sequence[str]) -> list[str]:
    """The columns of an assembled file of ``kind`` that ``_written_by_groups`` builds for the
    whole file first: those its entry reads (``_file_entry``, ``_hosts``), those its notes
    read, and its dictionaries."""
    addresses = ("src", "dst") if kind == "trace" else ()
    wanted = {*FILE_RANGES[kind], *addresses, "host", *noted}
    return [f.name for f in schema if f.name in wanted or pa.types.is_dictionary(f.type)]


def _file_entry(
    kind: str, rows: pa.Table, partition: int, slice_: int, hosts: list[str]
) -> dict[str, Any]:
    """The manifest's entry of an assembled table's file, but its name (read back by
    ``_file_parts``)."""
    ranges = {}
    for column in FILE_RANGES[kind]:
        values = rows[column]
        if pa.types.is_timestamp(values.type):
            values = values.cast(pa.int64())
        extent = pc.min_max(values)
        ranges[column] = [extent["min"].as_py(), extent["max"].as_py()]
    addresses = None
    if kind == "trace":  # ``--host`` is a filter of the trace's hops
        found = pc.unique(
            pa.chunked_array(
                [*rows["src"].cast(pa.string()).chunks, *rows["dst"].cast(pa.string()).chunks],
                pa.string(),
            )
        ).drop_null()
        if len(found) <= ADDRESSES_LISTED:
            addresses = sorted(found.to_pylist())
    return {
        "partition": partition,
        "slice": slice_,
        "hosts": hosts,
        "rows": rows.num_rows,
        "ranges": ranges,
        "addresses": addresses,
    }


def write_hops_part(location: str, name: str, hops: pa.Table) -> None:
    """Write ``hops`` as the hop part ``name`` of the store at ``location`` (a directory, or
    an object-store URL), as a worker does for the run that named it
    (``StoreWriter.worker_part_name``); the run's committer names it in the manifest."""
    root: StorePath = _root(location)
    _write_table(root / "hops" / name, hops, ROW_GROUP_ROWS)


def _write_table(path: StorePath, table: pa.Table, row_group: int) -> None:
    """One whole Parquet file of the store."""
    pq.write_table(
        table,
        _where(path),
        filesystem=_filesystem(path),
        row_group_size=row_group,
        **file_options(table.schema),
    )


def file_options(schema: pa.Schema) -> dict[str, Any]:
    """How every Parquet file of the store is written (its hop parts as its assembled tables):
    zstd, the statistics questions skip row groups by, dictionaries for the texts that repeat."""
    return {
        "compression": "zstd",
        "write_statistics": pruned_by(schema),
        "use_dictionary": by_dictionary(schema),
    }


def pruned_by(schema: pa.Schema) -> list[str]:
    """The columns whose row groups' minima and maxima a Parquet file of the store keeps: those
    a question skips row groups by (``rowgroups.Where.ranges``: ``flow_n`` and the times). The
    statistics of every column were 35% of writing the 2M-line replay's trace table (1.85 s,
    1.21 s without any) and 27% of its hop parts; a group without statistics is read."""
    return [f.name for f in schema if f.name == "flow_n" or pa.types.is_timestamp(f.type)]


def by_dictionary(schema: pa.Schema) -> list[str]:
    """The columns a Parquet file of the store writes as a dictionary and its indices: the
    texts whose values repeat (addresses, interfaces, prefixes, hooks), not ``raw`` (a line
    each) nor the numbers and times. Parquet's writer builds a column's dictionary until it
    outgrows a page, then writes the rest plain: for sequence numbers, IP IDs, line numbers and
    uptimes that was work thrown away, and larger files. On the 2M-line replay's 1.2M hops
    (benchmarks/bench_write.py), against a dictionary for every column: the hop part written in
    0.82x the CPU and 0.87x the bytes, the trace table in 0.81x and 0.69x."""
    return [
        f.name
        for f in schema
        if f.name != "raw" and (pa.types.is_string(f.type) or pa.types.is_dictionary(f.type))
    ]


@functools.cache
def _root(location: str) -> StorePath:
    """A store's root in a worker: its filesystem opened once per process."""
    return StoreURL.parse(location) if is_url(location) else Path(location)


def _where(path: StorePath) -> str | Path:
    """A file's path as Arrow's writers take it beside ``_filesystem(path)``."""
    return path.key if isinstance(path, StoreURL) else path


def _where_str(path: StorePath) -> str:
    return path.key if isinstance(path, StoreURL) else str(path)


def _filesystem(path: StorePath) -> pafs.FileSystem | None:
    return path.filesystem if isinstance(path, StoreURL) else None


def parquet_source(path: StorePath) -> str | Path | pa.NativeFile:
    """A store's file as ``pq.ParquetFile`` and ``pq.read_table`` take it: a local path as is,
    an object opened for reads at offsets."""
    if isinstance(path, StoreURL):
        return path.filesystem.open_input_file(path.key)
    return path


def _remote_bytes(path: StoreURL) -> bytes | None:
    """An object's bytes (None: no such object); an object store that cannot be reached is
    said so, not taken for a damaged store."""
    with _reached(path):
        return path.read_bytes()


@contextmanager
def _reached(path: StoreURL) -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as error:
        raise StoreError(f"{path}: the store cannot be reached ({oneline(error)})") from None


@contextmanager
def _locked(path: Path, holder: str = "logpath ingest") -> Iterator[IO[str]]:
    """The store's lock, held by this process as ``holder`` (a second writer is told who)."""
    try:
        handle = path.open("a+")
    except OSError as error:
        raise StoreWriteError(f"{path}: the store cannot be written ({_reason(error)})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StoreLockedError(
            f"{path.parent}: the store is being written by {holder}\n\n"
            "Wait for it to finish, or use another --store."
        ) from None
    # who holds the lock, for a second writer's message: written unbuffered, and only a note,
    # so that on a full disk the run still starts (and removes the parts a killed run left)
    with suppress(OSError):
        os.ftruncate(handle.fileno(), 0)
        os.write(handle.fileno(), f"{holder} (pid {os.getpid()})".encode())
    try:
        yield handle
    finally:
        with suppress(OSError):
            os.ftruncate(handle.fileno(), 0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@dataclass(frozen=True)
class HopFilter:
    """Which hops a command asks for (``--port``, ``--host``, ``--since``...), defined once and
    read two ways: pushed into a scan of the hop parts (``expression``), or over the rows read
    of an assembled table (``where``: no pandas, no dataset scanner)."""

    terms: tuple[tuple[tuple[str, ...], str, Any], ...]
    """(columns, operator, value): one of the columns compares so with the value; every term
    holds. Operators: "==", ">=", "<=", "contains", "in" (one of a set of texts), "in-network"
    (an address inside an ``ipaddress`` network)."""

    def expression(self) -> ds.Expression:
        """The filter as a dataset expression (only matching row groups are read)."""
        import pyarrow.dataset as ds

        def compare(column: str, op: str, value: Any) -> ds.Expression:
            field = ds.field(column)
            if column in _DICTIONARY_COLUMNS:
                field = field.cast(pa.string())
            if op == "contains":
                return pc.match_substring(field, value)
            if op == "in":
                return field.isin(arrow_array(sorted(value), pa.string()))
            if op == "in-network":
                raise ValueError("a network filter needs the store's addresses: with_addresses")
            return _EXPRESSION_OPERATORS[op](field, _scalar(value))

        return _all_of([_any_of([compare(c, op, v) for c in cs]) for cs, op, v in self.terms])

    @property
    def networks(self) -> bool:
        """Whether a term is an address in a network (``--host 10.0.0.0/8``)."""
        return any(op == "in-network" for _, op, _ in self.terms)

    def with_addresses(self, addresses: Iterable[str]) -> HopFilter:
        """The filter with each network term as the list of these addresses inside it (a scan
        of the hop parts cannot test a network; the store's distinct addresses are few)."""
        known = list(addresses)
        return HopFilter(
            tuple(
                (cs, "in", frozenset(a for a in known if _in_network(a, v)))
                if op == "in-network"
                else (cs, op, v)
                for cs, op, v in self.terms
            )
        )

    def where(self) -> Where:
        """The filter over rows read: a time range skips the row groups outside it."""

        def test(rows: pa.Table) -> pa.ChunkedArray:
            def compare(column: str, op: str, value: Any) -> pa.ChunkedArray:
                values = rows[column]
                if pa.types.is_dictionary(values.type):
                    values = values.cast(pa.string())
                if op == "contains":
                    return pc.match_substring(values, value)
                if op in ("in", "in-network"):
                    if op == "in-network":  # tested once per distinct address
                        distinct = pc.unique(values).to_pylist()
                        value = [a for a in distinct if a is not None and _in_network(a, value)]
                    return pc.is_in(values, value_set=arrow_array(sorted(value), pa.string()))
                return _ARRAY_OPERATORS[op](values, _scalar(value))

            held = [
                functools.reduce(pc.or_kleene, [compare(c, op, v) for c in cs])
                for cs, op, v in self.terms
            ]
            return pc.fill_null(
                functools.reduce(pc.and_kleene, held), arrow_scalar(False, pa.bool_())
            )

        ranges = tuple(
            (cs[0], _micros(v) if op == ">=" else None, _micros(v) if op == "<=" else None)
            for cs, op, v in self.terms
            if isinstance(v, datetime)
        )
        needs = tuple(dict.fromkeys(c for cs, _, _ in self.terms for c in cs))
        return Where(ranges, test, needs, self._address())

    def _address(self) -> Callable[[str], bool] | None:
        """What a hop's ``src`` or ``dst`` must be (``--host``), as a test of one address: a
        file none of whose addresses passes holds no hop asked for."""
        for columns, op, value in self.terms:
            if columns != ("src", "dst"):
                continue
            if op == "==":
                return functools.partial(operator.eq, value)
            if op == "in":
                return functools.partial(operator.contains, value)
            if op == "in-network":
                return functools.partial(_within, value)
        return None


# Columns the hop parts may hold dictionary-encoded: compared as their text.
_DICTIONARY_COLUMNS = frozenset({"prefix", "proto"})
_EXPRESSION_OPERATORS = {"==": operator.eq, ">=": operator.ge, "<=": operator.le}
_ARRAY_OPERATORS = {"==": pc.equal, ">=": pc.greater_equal, "<=": pc.less_equal}


def _all_of(terms: list[ds.Expression]) -> ds.Expression:
    return functools.reduce(operator.and_, terms)


def _any_of(terms: list[ds.Expression]) -> ds.Expression:
    return functools.reduce(operator.or_, terms)


def _scalar(value: Any) -> pa.Scalar:
    """A value as an Arrow scalar of the stored type (a time: a timestamp; ``arrow_scalar``:
    no pandas)."""
    if isinstance(value, datetime):
        return arrow_scalar(_micros(value), pa.timestamp("us", tz="UTC"))
    return arrow_scalar(value, pa.string() if isinstance(value, str) else pa.int64())


def _micros(when: datetime) -> int:
    """A time as the stored timestamps' raw value (row group statistics)."""
    return (when - EPOCH) // timedelta(microseconds=1)


def hop_filter(
    *,
    port: int | None = None,
    ident: int | None = None,
    host: str | None = None,
    prefix: str | None = None,
    proto: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> HopFilter | None:
    """The hops a command's options select (None: every hop), the options checked."""
    terms: list[tuple[tuple[str, ...], str, Any]] = []
    if port is not None:
        terms.append((("sport", "dport"), "==", port))
    if ident is not None:  # a flow id's number: the client port, or the ICMP echo identifier
        terms.append((("sport", "dport", "icmp_id"), "==", ident))
    if host is not None:
        if "/" in host:
            terms.append((("src", "dst"), "in-network", _network(host)))
        else:
            terms.append((("src", "dst"), "==", _normal_address(host)))
    if prefix is not None:
        terms.append((("prefix",), "contains", prefix))
    if proto is not None:
        terms.append((("proto",), "==", logged_protocol(proto)))
    if since is not None:
        terms.append((("ts",), ">=", _timestamp(since, "--since")))
    if until is not None:
        terms.append((("ts",), "<=", _timestamp(until, "--until")))
    return HopFilter(tuple(terms)) if terms else None


def _normal_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(
            f"--host {text!r} is not an IPv4 or IPv6 address or network (10.0.0.0/8)"
        ) from None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(
            f"--host {text!r} is not an IPv4 or IPv6 network (10.77.0.0/24, fd00::/64)"
        ) from None


def _within(network: ipaddress.IPv4Network | ipaddress.IPv6Network, address: str) -> bool:
    return _in_network(address, network)


def _in_network(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


# The protocols as the kernel's LOG target names them (PROTO=TCP...), as the hop table keeps
# them; any other protocol is logged, and kept, as its number. Numbers and other names of the
# same protocols (/etc/protocols) are read as these.
def logged_protocol(text: str) -> str:
    """``--proto``'s protocol as the hop table keeps it, or a UsageError naming the known."""
    value = logged_protocol_value(text)
    if value is not None:
        return value
    others = sorted({*PROTOCOL_NUMBERS, *PROTOCOL_SPELLINGS} - set(LOGGED_BY_NAME))
    known = ", ".join([*LOGGED_BY_NAME, *others])
    raise UsageError(f"--proto {text!r} is not a protocol logpath knows: use {known}, or 0-255")


def _timestamp(text: str, option: str) -> datetime:
    """A time given on the command line, in UTC: ISO 8601 (without a zone: UTC, the zone the
    store keeps), or relative to now in this machine's zone: ``-2h``, ``-30m``, ``-1d``,
    ``now``, ``today``, ``yesterday``, ``today 09:00``."""
    words = text.strip().lower()
    now = datetime.now(UTC)
    ago = _AGO.fullmatch(words)
    if words == "now":
        return now
    if ago:
        return now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
    day, _, clock = words.partition(" ")
    if day in ("today", "yesterday"):
        local = now.astimezone()
        date = local.date() - timedelta(days=1 if day == "yesterday" else 0)
        try:
            at = time.fromisoformat(clock) if clock else time()
        except ValueError:
            raise UsageError(
                f"{option} {text!r}: {clock!r} is not a time of day (09:00, 09:00:30)"
            ) from None
        return datetime.combine(date, at, local.tzinfo).astimezone(UTC)
    try:
        stamp = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a time: use ISO 8601 (2026-01-14T14:47, UTC unless it "
            "says its zone), or -2h, -30m, -1d, now, today, yesterday, today 09:00"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


_AGO = re.compile(r"-\s*(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
