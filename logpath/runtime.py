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

import contextlib
import ctypes
import functools
import gc
import glob
import multiprocessing
import os
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING

from logpath.errors import STOP_SIGNALS

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = [
    "arrow_from_malloc",
    "handover",
    "ingest_allocators",
    "malloc_arenas",
    "mapped",
    "not_keeping_the_server",
    "start_worker_server",
    "stop_worker_server",
    "streamed",
    "taken",
    "without_cyclic_gc",
    "worker_context",
    "worker_count",
]


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


# What every worker of an ingest runs, imported once by the server the workers are forked from
# (``worker_context``): ``logpath.worker_server`` imports ``logpath.ingest`` and
# ``logpath.assembly``.
WORKER_MODULES = ["logpath.worker_server"]


def worker_count() -> int:
    """Processes to parse with: $LOGPATH_WORKERS, else every core."""
    configured = os.environ.get("LOGPATH_WORKERS", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else os.cpu_count() or 1


def parsed_in_workers(paths: list[str]) -> bool:
    """Whether worker processes will parse some of these inputs: more than one core, and files
    of more than a block (``lines.BLOCK_BYTES``) in all. Then the workers' server starts as the
    command does (``start_worker_server``), and the pool takes the first block too (``ingest``);
    else the ingest parses a small input itself, without starting a process."""
    import stat

    from logpath.lines import BLOCK_BYTES

    if worker_count() <= 1:
        return False
    size = 0
    for path in paths:
        with contextlib.suppress(OSError):
            info = os.stat(path)
            size += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return size > BLOCK_BYTES


def worker_context() -> multiprocessing.context.ForkServerContext:
    """Where an ingest's (and follow's) worker processes come from: forked from a server
    process (multiprocessing's forkserver) that imported WORKER_MODULES once, started clean
    (not forked from this process, whose Arrow thread pools would not survive a fork) and
    never using Arrow's thread pools itself.

    Spawned, each worker imported pandas, pyarrow and logpath again (~0.75 CPU-s each): a
    server imports them once, and its workers share those pages (less memory in all). On the
    2M-line replay, with the server started as the command starts (``start_worker_server``):
    0.964x the wall and 0.966x the CPU of spawning the workers (farm-bench, 6 pairs: 14.21 s
    against 14.83, 25.3 CPU-s against 26.5)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context


def start_worker_server() -> None:
    """Start the workers' server (and multiprocessing's resource tracker) if it does not run:
    started as an ingest starts, it imports WORKER_MODULES while the ingest imports its own.
    It ends with this process, or at ``stop_worker_server``.

    Both start with SIGINT, SIGTERM and SIGHUP blocked, which they keep (a blocked signal stays
    blocked across the exec; the tracker unblocks SIGINT and SIGTERM once it ignores them): sent
    to the whole process group (Ctrl-C, a service manager, a closed terminal), they are the
    ingest's to handle. The resource tracker ignored only SIGINT and SIGTERM, and died of a
    SIGHUP; and both ignore SIGINT only once started: a Ctrl-C while they imported ended them,
    each with a traceback on the ingest's standard error."""
    from multiprocessing import forkserver, resource_tracker

    worker_context()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        resource_tracker.ensure_running()
        # which unblocks SIGINT and SIGTERM here once it has started the tracker
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def stop_deferred() -> Iterator[None]:
    """A stop (``STOP_SIGNALS``) that arrives inside the block takes effect at its end, through
    the handler in place before it (the command's, which raises ``Stopped``).

    For a pool's ``submit``, which may fork a worker: a stop raised between the server's fork
    and the worker's pid reaching this process left a worker the pool never knew of, which
    nothing killed: the stopped ingest then waited for ever to shut the pool down (twice under
    two full suites at once; its stacks: the pool's manager joining a feeder blocked writing a
    block into the pipe of the worker no one would read). Only the main thread handles
    signals: elsewhere the block runs as it is."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def later(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {number: signal.signal(number, later) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])


def stop_worker_server() -> None:
    """End the workers' server, if it runs, and wait for it (once the pools it forked have shut
    down): no process of the run outlives it, and the run's CPU time holds the server's and its
    workers' (the server waits for its workers, this process for it). The next worker starts it
    again. Through ``ForkServer._stop``, private (Python 3.11 to 3.14 have it; without it, the
    server ends with this process)."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)
    if stop is not None:
        stop()


def not_keeping_the_server() -> None:
    """In a worker forked by the workers' server: let go of the server's "alive" pipe, which
    the fork handed over (for the worker to start processes through the server, which it
    never does). The server ends when every holder of that pipe has closed it: while its
    workers held it, an ingest killed with SIGKILL left the server and its workers waiting
    for each other for ever (the workers die with the server, ``ingest._worker_started``)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        setattr(server, "_forkserver_alive_fd", None)  # noqa: B010 (private, see above)
        with contextlib.suppress(OSError):
            os.close(alive)


def arrow_from_malloc() -> None:
    """Arrow's buffers from the C library's malloc from here on, not from jemalloc (the CLI's
    choice for the queries, ``logpath.cli``) nor mimalloc (Arrow's own default). An ingest
    allocates and frees tables of a million rows over and over: with mimalloc the takes that
    number its tables ran 3-4x slower than in a fresh process (pages given back and faulted in
    again); on the 2M-line replay, paired, malloc took 0.92x the wall and CPU of jemalloc (15.3
    against 17.8 s). For the processes of an ingest (its own, and its parse workers')."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


# glibc's mallopt(3) parameter for the most arenas malloc makes (M_ARENA_MAX)
M_ARENA_MAX = -8
# The arenas of an ingest's processes: by default glibc gives each thread that allocates an arena
# of its own (up to 8 a core), and each keeps what is freed in it apart from the others.
INGEST_ARENAS = 2


def malloc_arenas(count: int = INGEST_ARENAS) -> None:
    """Let malloc make at most ``count`` arenas in this process from here on (nothing where
    malloc is not glibc's). For the processes of an ingest: its own writes the hop part and the
    assembled files on threads, each of which kept, in an arena of its own, what its row groups
    freed. On the 2M-line replay (farm-bench, 6 pairs): 1.002x the wall and the CPU, the largest
    process peaking at 933 against 971 MiB; the tree's PSS 1,425-1,435 against 1,500-1,567 MiB
    (two runs each under a sampler)."""
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, count)


def ingest_allocators() -> None:
    """The allocators of an ingest's processes (its own and its workers'), set first thing:
    Arrow's buffers from malloc (``arrow_from_malloc``), malloc in INGEST_ARENAS arenas
    (``malloc_arenas``)."""
    arrow_from_malloc()
    malloc_arenas()


def give_back_memory() -> None:
    """Hand the C library's free memory back to the system (glibc's ``malloc_trim``; nothing
    where there is none), once an ingest has let go of large tables: pandas' frames and Arrow's
    buffers are freed into malloc's heaps, which keep them. Called before an assembly's tables
    are written (and after a stage): the 2M-line replay's ingest peaked at 1,639 MiB against
    1,793 (farm-bench, 4 pairs; 0.985x the wall). Called after every chunk too, it took 1.018x
    the wall for 1,626 MiB: the pages given back were faulted in again by the next chunk."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


@functools.cache
def _glibc(name: str) -> Callable[..., int] | None:
    """The C library's function ``name`` (``malloc_trim``, ``mallopt``), None where it has
    none (not glibc)."""
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError):
        return None
    return function


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


# Files a worker process hands tables over in to the process that started it (``handover``):
# that process's id in their names, so that a later run removes those of a run that was killed.
HANDOVER_PREFIX = "logpath-handover-"


@contextmanager
def handover() -> Iterator[str]:
    """A name for the files of a handover between this machine's processes (``name``,
    ``name.SUFFIX``), in memory (/dev/shm) where there is one, removed when the block ends,
    however it ends (and those of killed runs first).

    Through a pool's pipe a table is pickled, written, read and unpickled: the 176 MB a worker
    keeps of the 2M-line replay's assembly took 1.1-1.5 s; a file in memory is written in a
    tenth of that and read without a copy (``streamed``, ``mapped``)."""
    shm = "/dev/shm"
    folder = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()
    _remove_orphans(folder)
    name = os.path.join(folder, f"{HANDOVER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}")
    try:
        yield name
    finally:
        for path in [name, *glob.glob(f"{glob.escape(name)}.*")]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _remove_orphans(folder: str) -> None:
    """Remove the handover files of runs whose process is gone (killed while a worker wrote)."""
    for entry in os.scandir(folder):
        if not entry.name.startswith(HANDOVER_PREFIX):
            continue
        pid = entry.name[len(HANDOVER_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def streamed(path: str, tables: list[pa.Table]) -> None:
    """Tables of one schema written to ``path`` as an Arrow stream (``mapped`` reads it): the
    stream format, as each chunk's dictionaries may differ.

    A column null on every row of every table is written as Arrow's null type, which has no
    buffers, and read back in its own type (``_nulls_restored``): of the 2M-line replay's hops
    handed over, 205 of 518 MiB were such columns (ICMP, TRACE, TCP fields on UDP hops...),
    zeros in memory from the parse to the end of the ingest."""
    import pyarrow as pa

    schema = tables[0].schema
    nothing = [
        i
        for i, field in enumerate(schema)
        if _rebuildable(field.type) and all(t.column(i).null_count == len(t) for t in tables)
    ]
    if nothing:
        kept = schema.serialize().to_pybytes()
        written = schema
        for i in nothing:
            written = written.set(i, pa.field(schema.field(i).name, pa.null()))
        written = written.with_metadata({**(schema.metadata or {}), NULLS_OF: kept})
        tables = [
            pa.Table.from_arrays(
                [pa.nulls(len(t)) if i in nothing else t.column(i) for i in range(t.num_columns)],
                schema=written,
            )
            for t in tables
        ]
        schema = written
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, schema) as stream:
        for table in tables:
            stream.write_table(table)


def mapped(path: str) -> pa.Table:
    """An Arrow stream file read without copying it (the table lives in the mapping, which
    outlives the file: it can be removed at once)."""
    import pyarrow as pa

    with pa.memory_map(path) as source:
        table = pa.ipc.open_stream(source).read_all()
    return _nulls_restored(table)


# The schema metadata key under which ``streamed`` keeps the types of the columns it wrote as
# Arrow's null type
NULLS_OF = b"logpath.nulls_of"


def _rebuildable(type_: pa.DataType) -> bool:
    """Whether a column of nulls of this type is made on a buffer of zeros (``_nulls_restored``):
    fixed widths of at most 64 bits, text with 32- or 64-bit offsets, dictionaries of those."""
    import pyarrow as pa

    if pa.types.is_dictionary(type_):
        return _rebuildable(type_.index_type) and _rebuildable(type_.value_type)
    if type_ in _texts():
        return True
    fixed = pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_boolean(type_)
    timed = pa.types.is_timestamp(type_) or pa.types.is_date(type_) or pa.types.is_time(type_)
    return bool((fixed or timed or pa.types.is_duration(type_)) and type_.bit_width <= 64)


def zeros_for(rows: int) -> pa.Buffer:
    """A buffer of zeros that holds any buffer of ``rows`` rows of a rebuildable type
    (``_rebuildable``: 8 bytes a row, and one offset more), its pages untouched until read."""
    import numpy as np
    import pyarrow as pa

    return pa.py_buffer(np.zeros(8 * (rows + 1), np.uint8))


def nulls_on(zeros: pa.Buffer, type_: pa.DataType, length: int) -> pa.Array:
    """A column of ``length`` nulls of a rebuildable type (``_rebuildable``) whose every buffer
    is ``zeros`` (``zeros_for`` at least ``length``): ``pa.nulls`` fills a buffer of its own.
    Of another type, ``pa.nulls``."""
    import pyarrow as pa

    if not _rebuildable(type_):
        return pa.nulls(length, type_)
    if pa.types.is_dictionary(type_):
        indices = nulls_on(zeros, type_.index_type, length)
        return pa.DictionaryArray.from_arrays(indices, pa.array([], type_.value_type))
    buffers = [zeros, zeros, zeros] if type_ in _texts() else [zeros, zeros]
    return pa.Array.from_buffers(type_, length, buffers, null_count=length)


def _texts() -> tuple[pa.DataType, ...]:
    """The types with offsets and values (a third buffer)."""
    import pyarrow as pa

    return (pa.string(), pa.large_string(), pa.binary(), pa.large_binary())


def _nulls_restored(table: pa.Table) -> pa.Table:
    """``table`` with the columns ``streamed`` wrote as Arrow's null type in their own types
    again: every buffer of every such column (validity, offsets, values) is one buffer of zeros
    (all null, every text empty), allocated once, untouched until read."""
    import pyarrow as pa

    metadata = table.schema.metadata or {}
    if NULLS_OF not in metadata:
        return table
    schema = pa.ipc.read_schema(pa.py_buffer(metadata[NULLS_OF]))
    lengths = [len(chunk) for chunk in table.column(0).chunks] if table.num_columns else []
    zeros = zeros_for(max(lengths, default=0))
    columns = [
        pa.chunked_array([nulls_on(zeros, field.type, n) for n in lengths], field.type)
        if table.schema.field(i).type == pa.null() and field.type != pa.null()
        else table.column(i)
        for i, field in enumerate(schema)
    ]
    return pa.Table.from_arrays(columns, schema=schema)
