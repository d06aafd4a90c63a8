"""Ingest: read log files, parse their netfilter lines and add the hops to the store.

This drives the first stages of the pipeline (lines → parse → hops) chunk by chunk, assembles
the store's connections (``logpath.assembly``) every STAGE_HOPS hops of one host (``_in_stages``)
and at the end, so memory stays flat however large that host's input, and commits everything a
run read in one step at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool, _ExecutorManagerThread
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa

from logpath.assembly import SETTLED_AFTER, assemble_store
from logpath.errors import STOP_SIGNALS, InputError, Stopped, WorkerError
from logpath.hops import HOP_SCHEMA, build_hops
from logpath.lines import (
    Block,
    Extent,
    Reading,
    Source,
    first_line_identity,
    open_source,
    rotation_order,
)
from logpath.parse import Rejected, parse_block, parse_lines, scanner_built
from logpath.provenance import Provenance
from logpath.runtime import (
    give_back_memory,
    handover,
    ingest_allocators,
    mapped,
    not_keeping_the_server,
    parsed_in_workers,
    start_worker_server,
    stop_deferred,
    stop_worker_server,
    streamed,
    without_cyclic_gc,
    worker_context,
    worker_count,
)
from logpath.store import SourceState, Store, StoreWriter

# An ingest assembles the connections of the hops it holds (``StoreWriter``) once they are this
# many, as a later run adding them would (``assembly.assemble_added``), and lets go of them:
# the hops were held until the end, and the assembly worked on all of them at once, so memory
# grew with the input (2.7 GB for the 2M-line replay's 1.2M hops, 9.1 GB for a busy host's
# 9.6M lines). The tables are those of one assembly of every hop either way. A stage costs
# more than its share of one assembly (what the next stage's hops reach is read and assembled
# again; a small stage has too few hops for two cores): a plain file whose rest is less than
# half of what the stage read is assembled whole at its end (``_ends_soon``).
STAGE_HOPS = 1_000_000


@dataclass
class IngestSummary:
    """What one ingest run read and stored."""

    files: int = 0  # inputs read (fully or in part)
    lines: int = 0  # new lines read
    netfilter_lines: int = 0  # lines that look like netfilter lines (hops + rejected)
    hops: int = 0  # hops stored
    rejected: int = 0  # netfilter-looking lines that do not parse (`logpath rejected` lists them)
    skipped: int = 0  # other lines, by reason in skipped_by_reason
    already_stored: int = 0  # lines skipped because an earlier run stored them
    held_back: int = 0  # lines left for the next run (still being written), by reason below
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    held_back_by_reason: Counter[str] = field(default_factory=Counter)
    # inputs whose first lines were read before under another name (rotated, renamed, copied)
    recognised: list[Recognised] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # inputs that could not be read (or not all)
    # some lines were parsed where the C scanner was not built (of this machine, not the data:
    # not in the JSON)
    scanner_missing: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "lines": self.lines,
            "netfilter_lines": self.netfilter_lines,
            "hops": self.hops,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "already_stored": self.already_stored,
            "held_back": self.held_back,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "rejected_by_reason": dict(self.rejected_by_reason),
            "held_back_by_reason": dict(self.held_back_by_reason),
            "recognised": [asdict(r) for r in self.recognised],
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Recognised:
    """An input whose first lines are those of a file read before under another name."""

    name: str  # the input
    read_as: str  # the name its lines were read under
    lines: int  # lines read before (not read again)
    new_lines: int  # lines after them, read now (0: the same lines, already stored)


Progress = Callable[[str, int], None]  # (source name, lines read so far in it)


@dataclass
class ChunkResult:
    """What parsing one chunk of a source gave (sent back from a worker process)."""

    hops: pa.Table
    rejected: list[Rejected]
    skipped: Counter[str]
    lines: int
    last_lineno: int
    part: str | None = None
    """The hop part a worker wrote these hops to itself (``logpath.fleet``), under the store's
    ``hops/``; ``hops`` is then empty and ``part_hops`` counts them."""
    part_hops: int = 0
    handed: str | None = None
    """The files a local worker handed the hops over in (``parse_chunk_handed``), until this
    process takes them (``_result``)."""
    scanner_missing: bool = False
    """Parsed where the C scanner was not built (``parse.scanner_built``): the ingest's
    own process need not build the grammar's patterns to know it."""

    @property
    def hop_count(self) -> int:
        return self.part_hops if self.part is not None else self.hops.num_rows


def parse_chunk(
    name: str, mtime: datetime, year: int | None, block: Block, after: int
) -> ChunkResult:
    """Parse and type one block's lines numbered above ``after`` (runs in a worker process)."""
    with without_cyclic_gc():
        return _parse_block(name, mtime, year, block, after)


def parse_chunk_handed(
    handed: str,
    name: str,
    mtime: datetime,
    year: int | None,
    block: Block,
    after: int,
    data: str | None = None,
) -> ChunkResult:
    """``parse_chunk`` in a local worker process, of ``block``, its bytes in the file ``data``
    when given (``_handed_block``); its hops handed back in the files ``handed.raw`` and
    ``handed.hops`` (``runtime.handover``), not through the pool's pipe; through the pipe
    when they cannot be written (a full /dev/shm).

    The pipe pickled each block's hops, wrote, read and unpickled them: ~3 CPU-s of the 2M-line
    replay's ~12 in the parse, most of them in this process's reader, while both cores were
    busy. ``raw`` is a file of its own: once its row group is written, its memory goes, while
    the other columns stay for the assembly (``StoreWriter``)."""
    result = parse_chunk(name, mtime, year, _block_taken(block, data), after)
    hops = result.hops
    if not hops.num_rows:
        return result
    try:
        streamed(f"{handed}.raw", [hops.select(["raw"])])
        streamed(f"{handed}.hops", [hops.drop_columns(["raw"])])
    except OSError:
        return result
    result.hops, result.handed = hops.schema.empty_table(), handed
    return result


def _handed_block(path: str, block: Block) -> tuple[Block, str | None]:
    """``block`` for ``parse_chunk_handed``, its bytes written to the file ``path`` (in memory,
    ``runtime.handover``) when it has them: pickled whole, they went through the pool's pipe
    (a copy into the pickle, the pipe's two, one out of it), ~1 CPU-s of the 2M-line replay's
    425 MB between this process's feeder thread and the workers. Through the pipe when the
    file cannot be written."""
    if block.lines is not None or not block.data:
        return block, None
    try:
        with open(path, "wb") as file:
            file.write(block.data)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        return block, None
    return replace(block, data=b""), path


def _block_taken(block: Block, path: str | None) -> Block:
    """The block ``_handed_block`` gave, with its bytes read back from ``path`` (removed)."""
    if path is None:
        return block
    with open(path, "rb") as file:
        data = file.read()
    os.unlink(path)
    return replace(block, data=data)


def _taken_over(handed: str) -> pa.Table:
    """The hops ``parse_chunk_handed`` handed over, mapped into memory (its files removed)."""
    raw, rest = mapped(f"{handed}.raw"), mapped(f"{handed}.hops")
    for suffix in (".raw", ".hops"):
        os.unlink(f"{handed}{suffix}")
    return rest.add_column(HOP_SCHEMA.get_field_index("raw"), "raw", raw["raw"])


def _parse_block(
    name: str, mtime: datetime, year: int | None, block: Block, after: int
) -> ChunkResult:
    parsed = parse_block(name, block, after)  # the C scanner, where it was built
    undecodable: list[Rejected] = []
    if parsed is None:
        text, raw_lines = block.texts(after)
        undecodable = [Rejected(name, t.lineno, 1, t.expected, t.error, "") for t in raw_lines]
        parsed = parse_lines(name, text)
    parsed.rejected.extend(undecodable)
    hops = build_hops(parsed, name, year=year, mtime=mtime)
    lines = parsed.lines + len(undecodable)
    return ChunkResult(
        hops, parsed.rejected, parsed.skipped, lines, block.end, scanner_missing=not scanner_built()
    )


class Parsing(Protocol):
    """Where an ingest parses its chunks and assembles the store: this machine's processes
    (``_Workers``), or a Dask cluster's workers (``logpath.fleet``)."""

    def begin(self, store: Store, writer: StoreWriter) -> None: ...
    def submit(self, *args: Any) -> Iterator[ChunkResult]: ...
    def drain(self) -> Iterator[ChunkResult]: ...
    def assemble(self, store: Store, writer: StoreWriter) -> None: ...
    def close(self) -> None: ...
    def kill(self) -> None: ...


class _Workers:
    """Runs parse_chunk on every core, handing results back in input order.

    The first chunk is parsed in this process (with ``first_here``: inputs of a block or less,
    ``runtime.parsed_in_workers``), so small inputs (tests, a seed file) never pay for starting
    workers; a big input's first chunk goes to the workers too, whose server has built the
    grammar's patterns (this process built them for its first chunk, 0.35 s before the pool
    started, while the workers' server waited). At most two chunks per worker are in flight,
    which keeps memory flat. Workers are forked from a server that imported what they run
    (``runtime.worker_context``), not from this process: Arrow's thread pools do not survive a
    fork. They die with this process, however it ends (``_worker_started``); the server ends
    with the run (``close``).
    """

    def __init__(self, workers: int, *, first_here: bool = True) -> None:
        self.workers = workers
        self.first_here = first_here
        self.pool: ProcessPoolExecutor | None = None
        self.pending: deque[Future[ChunkResult]] = deque()
        self.submitted = 0
        # an exception that ingest's own caller is handling: no end of this run (see drain)
        self.outer = sys.exc_info()[1]
        self.killed = threading.Lock()  # held once the workers are killed (or shut down)
        self.kill_over = threading.Event()  # set once kill() has killed them
        self.closed = threading.Event()  # the watchdog's end
        # where the workers hand their chunks' hops over (``parse_chunk_handed``)
        self.handovers = contextlib.ExitStack()
        self.handover: str | None = None

    def begin(self, store: Store, writer: StoreWriter) -> None:
        """Nothing to know of the run: the hops come back here."""

    def submit(self, *args: Any) -> Iterator[ChunkResult]:
        """Queue one chunk; yield the results that are due, oldest first."""
        self.submitted += 1
        if self.workers <= 1 or (self.submitted == 1 and self.first_here):
            yield from self.drain()
            yield parse_chunk(*args)
            return
        pool = self.started()
        if self.handover is None:
            self.handover = self.handovers.enter_context(handover())
        handed = f"{self.handover}.{self.submitted}"
        name, mtime, year, block, after = args
        block, data = _handed_block(f"{handed}.block", block)
        try:
            with stop_deferred():  # the submit may fork a worker: whole, or not at all
                self.pending.append(
                    pool.submit(parse_chunk_handed, handed, name, mtime, year, block, after, data)
                )
        except BrokenProcessPool:  # a worker died since the last result was taken
            raise WorkerError(WORKER_DIED) from None
        while len(self.pending) > 2 * self.workers:
            yield _result(self.pending.popleft())

    def drain(self) -> Iterator[ChunkResult]:
        """Yield every result still in flight, oldest first.

        Callers drain in a ``finally`` clause, to keep what was parsed before an input's
        damage. When what unwinds through it is no input's error but the run's end (a signal,
        a full disk, a dead worker), nothing is waited for: the run stores nothing anyway, and a
        stopped ingest must stop now, not after the chunks in flight.
        """
        unwinding = sys.exc_info()[1]
        if unwinding not in (None, self.outer) and not isinstance(unwinding, (InputError, OSError)):
            for future in self.pending:
                future.cancel()
            self.pending.clear()
            return
        while self.pending:
            yield _result(self.pending.popleft())

    def started(self) -> ProcessPoolExecutor:
        """The pool, started on first use, with its watchdog (``_watch``)."""
        if self.pool is None:
            self.pool = worker_pool(self.workers)
            watchdog = threading.Thread(target=self._watch, name="logpath-watchdog", daemon=True)
            watchdog.start()
        return self.pool

    def _watch(self) -> None:
        """Kill every worker as soon as one dies (killed, out of memory): the run is lost then.

        The pool's manager thread notices a dead worker by itself, unless that worker died
        while writing a result (a table of MBs): the manager has read part of the message and
        waits in ``recv`` for the rest, which the live workers' and this process's ends of the
        pipe keep possible, for ever; every future, and the pool's shutdown, wait with it
        (seen: the stop tests hung 3 times in 12 runs). ``kill`` closes those ends.
        """
        while not self.closed.wait(WATCH_EVERY):
            processes = self.pool._processes if self.pool is not None else None
            if processes is None:  # shut down
                return
            # exit code 0: a worker ending at the pool's shutdown
            if any(p.exitcode not in (None, 0) for p in list(processes.values())):
                self.kill()
                return

    def assemble(self, store: Store, writer: StoreWriter) -> None:
        if self.pool is not None and not self.pending:
            self._fresh_pool()
        _assemble(store, writer, self.pool)

    def _fresh_pool(self) -> None:
        """Put idle parse workers in a fresh pool's place before an assembly with no chunk in
        flight (the run's last, or a stage's when the parse had just caught up): the assembly
        hands one of them its later half, and the other sat out the assembly with what its
        blocks had left it (~90-110 MiB of PSS at the 2M-line replay's peak). The new pool
        forks its processes from the server as work comes (``ProcessPoolExecutor`` starts them
        on demand with a forkserver), so the assembly's worker starts from the server's pages.
        The new pool is in place before the old one ends, so the watchdog and ``kill`` always
        see a live pool."""
        idle, self.pool = self.pool, worker_pool(self.workers)
        if idle is not None:
            idle.shutdown()

    def close(self) -> None:
        for future in self.pending:
            future.cancel()
        try:
            if self.pool is not None:
                # the watchdog may be killing the workers meanwhile: kill_workers closes the
                # pipes shutdown closes, and both closing one raised EBADF, in place of the
                # run's WorkerError (1 in 20 runs under load). Shut down once the kill is over;
                # taking the lock first, no kill starts after.
                if not self.killed.acquire(blocking=False):
                    self.kill_over.wait(2 * KILLED_WITHIN)
                self.pool.shutdown(cancel_futures=True)
            stop_worker_server()  # started by the pool, or by the command (``logpath.cli``)
        finally:
            self.closed.set()
            self.handovers.close()  # what no result took over

    def kill(self) -> None:
        """End the workers now, not after the chunks already handed to them (seconds of
        work): the run is abandoned."""
        pool = self.pool
        if pool is None or not self.killed.acquire(blocking=False):
            return
        try:
            kill_workers(pool)
        finally:
            self.kill_over.set()


def kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers now, without waiting for the work handed to them; the pool's
    ``shutdown`` then returns (see below for what that takes before Python 3.14)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14
    if terminate is not None:
        terminate()
        return
    # the feeder's way out when the manager thread cannot give it one (see below). A manager
    # ending the broken pool itself closes the same pipe on Python 3.11.7 (not on Debian's
    # 3.11.2, where leaving it to the manager hung the run): both closing it at once raises
    # EBADF in the manager, kept off stderr (``_quiet_pool_managers``)
    pool._call_queue._reader.close()  # type: ignore[attr-defined]
    processes = list((pool._processes or {}).values())  # before 3.14, no public way
    for process in processes:
        process.kill()
    # A manager reading a result that its worker died writing gets to the pipe's end once
    # no process holds it open for writing: the workers are gone (their sentinels say so:
    # their files are closed), then this process's end is closed
    waiting, deadline = [p.sentinel for p in processes], time.monotonic() + KILLED_WITHIN
    while waiting and time.monotonic() < deadline:
        gone = multiprocessing.connection.wait(waiting, deadline - time.monotonic())
        waiting = [s for s in waiting if s not in gone]
    if pool._result_queue is not None:
        pool._result_queue._writer.close()  # type: ignore[attr-defined]


# how often the watchdog looks at the workers (s), and how long a killed worker may take to go
WATCH_EVERY = 0.2
KILLED_WITHIN = 10.0

# The pool's manager thread, in the Pythons before 3.14 (which ends a pool by terminate_workers):
#  - before 3.11.5 (Debian 12 has 3.11.2), finding a worker dead, it left the queue's feeder
#    thread blocked for ever writing a chunk into the call queue's pipe, which no worker read any
#    more, while this process held the pipe's read end open (python/cpython#94777); closing that
#    end, as later versions do themselves, ends the write;
#  - on the way, it set an exception on every pending future, cancelled ones too (this run's
#    stop cancels them): InvalidStateError, printed as a traceback beside "stopped by SIGTERM",
#    and the thread died there, before its own cleanup (python/cpython#107219; the fix did not
#    reach 3.11: seen on 3.11.2 and 3.11.7, where it then left the feeder blocked as above).


def _quiet_pool_managers() -> None:
    """Keep a pool manager's InvalidStateError (above), and its EBADF when it closed the pipe
    ``kill_workers`` closed, off stderr: they come when this run has
    ended, by a stop or a dead worker, and the futures it could not set are abandoned with the
    run. Installed once, when the first pool starts: the futures are cancelled as the run
    unwinds, which may come before ``kill``."""
    previous = threading.excepthook
    if getattr(previous, "logpath_quiets_pool_managers", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.thread, _ExecutorManagerThread) and (
            args.exc_type is InvalidStateError
            # the pipe kill_workers closed as the manager closed it (a dead worker's pool)
            or (isinstance(args.exc_value, OSError) and args.exc_value.errno == errno.EBADF)
        ):
            return
        previous(args)

    hook.logpath_quiets_pool_managers = True  # type: ignore[attr-defined]
    threading.excepthook = hook


WORKER_DIED = (
    "a parse worker process died (killed, or out of memory?); nothing of this run was stored"
)


def _result(future: Future[ChunkResult]) -> ChunkResult:
    try:
        result = future.result()
    except BrokenProcessPool:
        raise WorkerError(WORKER_DIED) from None
    if result.handed is not None:
        result.hops, result.handed = _taken_over(result.handed), None
    return result


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked from the workers' server
    (``runtime.worker_context``), that die with this one (``_worker_started``)."""
    start_worker_server()  # unless the command started it already
    pool = ProcessPoolExecutor(workers, mp_context=worker_context(), initializer=_worker_started)
    _quiet_pool_managers()
    return pool


# prctl(2): the signal the kernel sends this process when its parent exits
PR_SET_PDEATHSIG = 1


def _worker_started() -> None:
    """First thing in every worker process: tie its life to the ingest that started it.

    Workers wait on a queue they hold both ends of, so without this a killed ingest (kill -9,
    an OOM kill) left them, and multiprocessing's resource tracker whose pipe they keep open,
    running under init. A worker holds no file of the store: SIGKILL loses nothing. Its parent
    is the workers' server, which ends when the ingest does (multiprocessing's forkserver sees
    the ingest's end of a pipe close: its workers let go of theirs, ``not_keeping_the_server``),
    and the worker with it.
    """
    parent = os.getppid()
    # Ctrl-C and a stop reach the whole process group; the ingest alone handles them, shutting
    # the pool down and removing what it wrote
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the server died before prctl took effect
        os._exit(1)
    not_keeping_the_server()
    ingest_allocators()


def ingest(
    paths: Iterable[str],
    store: Store,
    *,
    year: int | None = None,
    ruleset: dict[str, object] | None = None,
    progress: Progress | None = None,
    parsing: Parsing | None = None,
) -> IngestSummary:
    """Read ``paths`` (``-`` is standard input) into ``store``; return what was done.

    The chunks are parsed, and the store assembled, by ``parsing`` (a Dask cluster's workers,
    ``logpath.fleet``), else by this machine's processes.

    An input that cannot be read is reported in ``errors`` and the others are still ingested.
    A store that cannot be written is refused before any input is read, and when no input can
    be opened, no store is made. Anything else that goes wrong (the store, a worker, a signal)
    is raised, and the run stores nothing.
    """
    summary = IngestSummary()
    store.check_writable()  # before standard input, say, is read
    names = rotation_order(list(paths))
    sources = _opened(names, summary)
    first = next(sources, None)
    if first is None:
        return summary
    workers = (
        parsing
        if parsing is not None
        else _Workers(worker_count(), first_here=not parsed_in_workers(names))
    )
    stored = False
    try:
        with store.writer() as writer:
            if ruleset is not None:
                writer.manifest.ruleset = ruleset
            workers.begin(store, writer)
            for source in itertools.chain([first], sources):
                try:
                    _ingest_source(source, writer, summary, year, progress, workers)
                except _StageFailed as failed:
                    raise failed.error from None
                except InputError as error:
                    summary.errors.append(str(error))
                except OSError as error:  # an input that fails while it is read (EIO)
                    reason = error.strerror or str(error)
                    summary.errors.append(f"{source.name}: cannot be read ({reason})")
            workers.assemble(store, writer)
        stored = True
    except BaseException:
        workers.kill()
        raise
    finally:
        try:
            first.close()  # not read when the store refused the run
            workers.close()
        except Stopped as stop:  # the signal came while the pool shut down
            stop.stored = stop.stored or stored
            raise
    return summary


def _assemble(store: Store, writer: StoreWriter, pool: ProcessPoolExecutor | None) -> None:
    """Assemble the store's connections again, for this run's commit, when its hops (or the
    ruleset, or the conventions) changed: queries read them instead of deriving them. The
    parse workers, when the run started them, take half of it."""
    manifest = writer.manifest
    if not Provenance.now(writer.hop_parts(), manifest.ruleset).matches(manifest.assembly):
        try:
            assemble_store(store, writer, pool)
        except BrokenProcessPool:
            raise WorkerError(
                "a worker process died while assembling (killed, or out of memory?); nothing "
                "of this run was stored"
            ) from None


def _opened(names: list[str], summary: IngestSummary) -> Iterator[Source]:
    """The inputs, each opened when its turn comes (a FIFO's writer may wait for the one
    before it); those that cannot be opened go to ``summary.errors``."""
    for name in names:
        try:
            source = open_source(name)
        except InputError as error:
            summary.errors.append(str(error))
            continue
        yield source


def _ingest_source(
    source: Source,
    writer: StoreWriter,
    summary: IngestSummary,
    year: int | None,
    progress: Progress | None,
    workers: Parsing,
) -> None:
    """Read one source on from where the runs before stopped, then close it.

    The manifest's ``sources`` holds what was read of every file (its ``Extent``), keyed by
    the extent's digest: a file that continues one is read from the extent's end, and the
    entry is replaced by the longer extent. An entry of a store written before extents (keyed
    by a hash of the first line) is trusted as that store did, once: the file whose first line
    it matches is read from its start with the entry's lines not parsed again, and the entry
    becomes that file's extent.
    """
    with source.open() as text:
        summary.files += 1
        sources = writer.manifest.sources
        known = {key: extent for key, extent in map(_keyed_extent, sources.items()) if extent}
        reading = Reading(text, known)
        earlier = sources.pop(reading.continues) if reading.continues else None
        summary.already_stored += reading.before.lines
        older: str | None = None  # the key of an older store's entry this file matched
        done = 0  # lines read again but not parsed: that entry's

        def record(result: ChunkResult) -> None:
            _record(result, writer, summary)
            if progress:
                progress(text.name, result.last_lineno)

        blocks = reading.blocks()
        size = text.size()
        staged = 0  # the bytes of this input read since the last stage
        try:
            if earlier is None:
                first = next(blocks, None)
                if first is None:
                    return
                key = first_line_identity(first.first_line())
                if key in sources and stored_extent(sources[key]) is None:
                    older, earlier = key, sources.pop(key)
                    done = earlier.lines
                blocks = itertools.chain([first], blocks)
            for block in blocks:
                summary.already_stored += max(0, min(done, block.end) - block.start + 1)
                if block.end > done:
                    for result in workers.submit(text.name, text.mtime, year, block, done):
                        record(result)
                staged += len(block.data)
                if (
                    writer.held_hops >= STAGE_HOPS
                    and _in_stages(writer)
                    and not _ends_soon(block, size, staged)
                ):
                    _assemble_stage(workers, writer)
                    staged = 0
        finally:
            # what was parsed before a damaged gzip ended is kept, in order
            for result in workers.drain():
                record(result)
            _remember(text.name, reading, earlier, older, sources, summary)


class _StageFailed(Exception):
    """An error of a stage's assembly (``_assemble_stage``), carried past the handlers of an
    input's errors: an OSError there is the run's end, not an input that cannot be read."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _in_stages(writer: StoreWriter) -> bool:
    """Whether the run's hops can be assembled in stages: a stage assembles them as a run
    adding them would (``assembly.assemble_added``), and that must not fall back to an
    assembly of every hop, read back, or assemble most stored connections again, at each
    stage. So: one host's hops (each stage learns the hosts' boot times again from more
    lines; two busy hosts' moved apart by 1.6 ms, over PLACEMENT_DRIFT, and their 3.6M lines
    took 55 s and 4.1 GB in two stages, against 35 s and 3.2 GB in one assembly), every hop
    with its wall-clock time (without it a hop cannot be placed among the others), and the
    store's connections (if any) of that host too, ended at most SETTLED_AFTER after the
    run's first hop (a file that continues the store's; an older file read after a newer one
    would have every stored connection after its first hop assembled again at each stage)."""
    if len(writer.hosts) > 1 or writer.untimed or writer.earliest is None:
        return False
    manifest = writer.manifest
    if not manifest.parts:
        return True
    assembly = manifest.assembly or {}
    stored = set((assembly.get("clocks") or {}).get("boot") or ())
    flows = assembly.get("flows")
    if not stored or not stored <= writer.hosts or not isinstance(flows, list) or not flows:
        return False
    ends = [entry["ranges"]["last_seen"][1] for entry in flows]
    if any(end is None for end in ends):
        return False
    return bool(max(ends) / 1e6 <= writer.earliest.timestamp() + SETTLED_AFTER)


def _ends_soon(block: Block, size: int | None, staged: int) -> bool:
    """Whether the rest of a plain file after ``block`` is less than half the ``staged``
    bytes read since the last stage: its hops are then assembled at its end with the stage's
    (at most 1.5 stages'), not in a small stage of their own. In stages of 1M hops and 0.2M,
    the 2M-line replay's 1.2M hops took 1.08x the wall of one assembly (the second stage on one
    core), 1.02x the CPU."""
    if size is None or block.offset is None:
        return False
    return size - block.offset - len(block.data) < staged / 2


def _assemble_stage(workers: Parsing, writer: StoreWriter) -> None:
    """Assemble the store's connections with the hops the run holds, then let go of them
    (STAGE_HOPS)."""
    try:
        workers.assemble(writer.store, writer)
    except OSError as error:
        raise _StageFailed(error) from error
    writer.let_go_of_hops()
    give_back_memory()


def stored_extent(state: SourceState) -> Extent | None:
    """A manifest entry's extent (None for an entry of a store written before extents)."""
    if state.size is None or state.digest is None or state.head is None:
        return None
    return Extent(state.lines, state.size, state.digest, state.head)


def _keyed_extent(item: tuple[str, SourceState]) -> tuple[str, Extent | None]:
    return item[0], stored_extent(item[1])


def _remember(
    name: str,
    reading: Reading,
    earlier: SourceState | None,
    older: str | None,
    sources: dict[str, SourceState],
    summary: IngestSummary,
) -> None:
    """Record what has now been read of input ``name``, and say what was not read."""
    summary.held_back += sum(reading.held_back.values())
    summary.held_back_by_reason.update(reading.held_back)
    extent = reading.extent()
    if older is not None and earlier is not None and extent.lines < earlier.lines:
        # shorter than the file the older store's entry was made from: that entry stays
        sources[older] = earlier
        return
    if extent.lines:
        sources[extent.digest] = SourceState(
            name, extent.lines, extent.size, extent.digest, extent.head
        )
    if earlier is not None and earlier.name != name:
        summary.recognised.append(
            Recognised(name, earlier.name, earlier.lines, extent.lines - earlier.lines)
        )


def _record(result: ChunkResult, writer: StoreWriter, summary: IngestSummary) -> None:
    if result.part is not None:
        writer.add_part(result.part, result.part_hops)
    else:
        writer.add_hops(result.hops)
    writer.add_rejected(result.rejected)
    summary.lines += result.lines
    summary.hops += result.hop_count
    summary.scanner_missing |= result.scanner_missing
    summary.rejected += len(result.rejected)
    summary.netfilter_lines += result.hop_count + len(result.rejected)
    summary.skipped += sum(result.skipped.values())
    summary.skipped_by_reason.update(result.skipped)
    summary.rejected_by_reason.update(f"expected {r.expected}" for r in result.rejected)
    skipped = writer.manifest.skipped
    for reason, count in result.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + count
