"""A fleet's logs on a Dask cluster (issue 14): ingest's chunks parsed, and a store's
connections assembled, by the workers of a ``dask.distributed`` scheduler.

Nothing here imports dask until a command is given ``--scheduler`` (or
``$DASK_SCHEDULER_ADDRESS``): a machine without the ``logpath[dask]`` extra runs as before.

* Parsing: each block ``lines`` cuts is a task (``ingest.parse_chunk``). When every worker
  reaches the store (an object-store URL; a directory when the workers run on this machine),
  the worker writes the block's hops as a part of its own (``store.write_hops_part``) and only
  the part's name and counts come back; else the hops are sent back and written here. This
  process stays the one committer (extents, manifest, the parts it names, in the inputs'
  order), so a store filled on a cluster is the store filled here, and a later run continues
  it either way.
* Assembly: connections are local in time (``assembly.SETTLED_AFTER``). The hops are cut into
  time windows, each assembled on a worker as if it were all there is; then the connections
  that a neighbour could touch (those that start within SETTLED_AFTER of the window's start,
  or end within it of the window's end) are dropped, and their hops assembled again on a
  worker, a seam at a time, with those of the window across the seam: ``assembly.
  _assemble_in_two``'s seam, in N windows, the seams side by side.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from logpath.assembly import (
    CHUNK_HOPS,
    SEAM_SHARE,
    SETTLED_AFTER,
    Assembled,
    AssemblyRun,
    Kept,
    assemble,
    assemble_later,
    assemble_store,
    host_group_of_hops,
    judges,
    learn_hop_clocks,
)
from logpath.clocks import Clocks, one_clock
from logpath.errors import InputError, LogpathError, StoreLockedError, StoreWriteError, WorkerError
from logpath.ingest import ChunkResult, parse_chunk
from logpath.lines import HEAD_BYTES, Block
from logpath.provenance import Provenance
from logpath.runtime import worker_count
from logpath.store import Store, StoreWriter, to_frame, write_hops_part

if TYPE_CHECKING:
    from distributed import Client, Future

    from logpath.rules import Ruleset

# `--scheduler local`: a LocalCluster on this machine's cores.
LOCAL = "local"
# Seconds to try a scheduler before saying it cannot be reached: a scheduler answers a
# connection at once, and distributed's default (30 s) leaves a mistyped address hanging.
CONNECT_SECONDS = 3
# Hops per assembly window: about a chunk of one machine's assembly (assembly.CHUNK_HOPS, ~1 GB
# while traced), so a worker's memory is what one machine's is.
WINDOW_HOPS = CHUNK_HOPS
# ... and no window shorter than this: the SETTLED_AFTER at each end of a window is assembled
# again here, so a window only pays when its time is long beside it (assembly.SEAM_SHARE; on
# the fleet sample, windows of a few seconds made this process re-assemble nearly every hop).
WINDOW_SECONDS = SEAM_SHARE * SETTLED_AFTER


class ClusterError(LogpathError):
    """The Dask scheduler cannot be reached, or dask is not installed."""


class Cluster:
    """A connection to a Dask scheduler, and what logpath runs on its workers."""

    def __init__(self, client: Client, address: str) -> None:
        self.client = client
        self.address = address

    def workers(self) -> int:
        """Workers the scheduler has now (at least 1: tasks wait for one)."""
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def reaches(self, store: Store) -> bool:
        """Whether every worker can write the store's files itself: a store at an object-store
        URL (the workers read the same AWS environment), or a directory when every worker runs
        on this machine (a LocalCluster, or workers at a loopback address). A directory shared
        between machines (NFS) is not recognised: its hops travel, as before."""
        if store.filesystem is not None:
            return True
        from distributed.comm.addressing import get_address_host

        here = {"127.0.0.1", "::1", "localhost", socket.gethostname()}
        with suppress(OSError):
            here.update(socket.gethostbyname_ex(socket.gethostname())[2])
        workers = list(self.client.scheduler_info().get("workers", {}))
        return bool(workers) and all(
            address.startswith("inproc://") or get_address_host(address) in here
            for address in workers
        )

    def parsing(self) -> ClusterParsing:
        """Ingest's ``parsing``: chunks parsed and the store assembled on the workers."""
        return ClusterParsing(self)


@contextmanager
def connected(address: str) -> Iterator[Cluster]:
    """A connection to the scheduler at ``address`` (``local``: a LocalCluster started here
    and ended on leaving), closed on leaving.

    Raises:
        ClusterError: dask is not installed, or the scheduler does not answer within
            CONNECT_SECONDS.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError(
            f"--scheduler {address}: dask is not installed\n\n"
            "Install the extra: pip install 'logpath[dask]'"
        ) from None
    cluster = None
    if address == LOCAL:
        # one thread per worker: parsing and assembly hold the GIL (distributed's functions
        # have no type hints: the ignores below)
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=worker_count(), threads_per_worker=1, dashboard_address=None
        )
        client = Client(cluster)  # type: ignore[no-untyped-call]
    else:
        client = _client(Client, address)
    try:
        yield Cluster(client, address)
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


def _client(client_type: type[Client], address: str) -> Client:
    """A client of the scheduler at ``address``, once a connection to it is known to open:
    a Client that fails to connect leaves a traceback on stderr when it is collected."""
    _check_reachable(address)
    try:
        return client_type(address, timeout=f"{CONNECT_SECONDS}s")
    except Exception as error:  # a port that answers, but not as a Dask scheduler
        raise ClusterError(_unreachable(address, error)) from None


def _check_reachable(address: str) -> None:
    from distributed.comm.addressing import get_address_host_port

    try:
        host, port = get_address_host_port(address)
    except ValueError as error:
        raise ClusterError(_unreachable(address, error)) from None
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ClusterError(_unreachable(address, error)) from None


def _unreachable(address: str, error: Exception) -> str:
    reason = (error.strerror if isinstance(error, OSError) else None) or str(error)
    reason = reason.splitlines()[0] if reason else type(error).__name__
    return (
        f"cannot reach the Dask scheduler at {address} ({reason})\n\n"
        "Check the address (tcp://HOST:PORT) and that `dask scheduler` runs there, or "
        "use --scheduler local"
    )


class ClusterParsing:
    """Ingest's chunks parsed on a cluster's workers, handed back in input order (at most two
    per worker in flight, as ``ingest._Workers`` does, so memory stays flat here)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.pending: deque[Future[ChunkResult]] = deque()
        self.limit = 2 * cluster.workers()
        # where the workers write their hop parts, and the run that names them (begin)
        self.writing: tuple[str, StoreWriter] | None = None
        # per input, its absolute path when every worker reads the same file there
        self.shared: dict[str, str | None] = {}
        # an exception ingest's own caller is handling: no end of this run (see drain)
        self.outer = sys.exc_info()[1]

    def begin(self, store: Store, writer: StoreWriter) -> None:
        """The run the chunks are parsed for: its workers write their own parts when they all
        reach the store."""
        self.writing = (store.location, writer) if self.cluster.reaches(store) else None

    def submit(
        self, name: str, mtime: datetime, year: int | None, block: Block, after: int
    ) -> Iterator[ChunkResult]:
        """Queue one chunk; yield the results that are due, oldest first."""
        read = None
        if block.offset is not None and (path := self._shared(name)) is not None:
            # the workers read the bytes themselves: only where they are travels
            read = (path, block.offset, len(block.data), zlib.crc32(block.data))
            block = replace(block, data=b"")
        part = None
        if self.writing is not None:
            location, writer = self.writing
            part = (location, writer.worker_part_name())
        future = self.cluster.client.submit(
            parse_chunk_there, read, part, name, mtime, year, block, after, pure=False
        )
        self.pending.append(future)
        while len(self.pending) > self.limit:
            yield _result(self.pending.popleft())

    def _shared(self, name: str) -> str | None:
        """The input's absolute path, when every worker finds the same file there (a
        LocalCluster's, or a file system every machine mounts at the same place); checked
        once per input, by the CRC-32 of its first bytes (each block's own CRC is checked as
        it is read)."""
        if name not in self.shared:
            path = os.path.abspath(name)
            try:
                with open(path, "rb") as handle:
                    head = handle.read(HEAD_BYTES)
            except OSError:
                self.shared[name] = None
                return None
            seen = self.cluster.client.run(_sees_file, path, zlib.crc32(head), len(head))
            self.shared[name] = path if seen and all(seen.values()) else None
        return self.shared[name]

    def drain(self) -> Iterator[ChunkResult]:
        """Yield every result still in flight; none when the run is ending for another
        reason than an input's damage (``ingest._Workers.drain``)."""
        unwinding = sys.exc_info()[1]
        if unwinding not in (None, self.outer) and not isinstance(unwinding, (InputError, OSError)):
            self.kill()
            return
        while self.pending:
            yield _result(self.pending.popleft())

    def assemble(self, store: Store, writer: StoreWriter) -> None:
        """Assemble the store for this run's commit on the cluster, when its hops changed."""
        manifest = writer.manifest
        if not Provenance.now(writer.hop_parts(), manifest.ruleset).matches(manifest.assembly):
            assemble_store_on(self.cluster, store, writer)

    def close(self) -> None:
        self.kill()

    def kill(self) -> None:
        """Cancel what is in flight: the run is abandoned."""
        if self.pending:
            self.cluster.client.cancel(list(self.pending))  # type: ignore[no-untyped-call]
        self.pending.clear()


def _sees_file(path: str, crc: int, length: int) -> bool:
    """Whether this worker reads the file at ``path`` with these first bytes (``_shared``)."""
    try:
        with open(path, "rb") as handle:
            return zlib.crc32(handle.read(length)) == crc
    except OSError:
        return False


def parse_chunk_there(
    read: tuple[str, int, int, int] | None,
    part: tuple[str, str] | None,
    name: str,
    mtime: datetime,
    year: int | None,
    block: Block,
    after: int,
) -> ChunkResult:
    """``ingest.parse_chunk`` on a worker. With ``read`` (path, offset, length, CRC-32) the
    block's bytes are read here from the input file; with ``part`` (the store's location, a
    part name) its hops are written here as that hop part of the store (none when the chunk
    has no hop), and only the counts travel back."""
    if read is not None:
        block = replace(block, data=_read_block(name, *read))
    result = parse_chunk(name, mtime, year, block, after)
    if part is None:
        return result
    location, part_name = part
    hops = result.hops
    if not hops.num_rows:
        return result
    try:
        write_hops_part(location, part_name, hops)
    except OSError as error:  # a worker that cannot write the store: not the input's fault
        reason = " ".join(str(error).split())
        raise StoreWriteError(
            f"{location}/hops/{part_name}: a worker could not write this part ({reason}); "
            "nothing of this run was stored\n\nCheck that every worker can write the store (or "
            "use another --store) and ingest again."
        ) from None
    result.hops = hops.schema.empty_table()
    result.part, result.part_hops = part_name, hops.num_rows
    return result


def _read_block(name: str, path: str, offset: int, length: int, crc: int) -> bytes:
    """A block's bytes, read by the worker from the input file; an input rewritten since the
    ingest read it (rotated, truncated) is an error naming it, not other lines parsed."""
    try:
        with open(path, "rb") as handle:
            data = os.pread(handle.fileno(), length, offset)
    except OSError as error:
        raise InputError(f"{name}: a worker cannot read it ({error.strerror})") from None
    if len(data) != length or zlib.crc32(data) != crc:
        raise InputError(
            f"{name}: the file changed while it was ingested (bytes {offset:,}-"
            f"{offset + length:,} are not those read); ingest it again"
        )
    return data


def _result(future: Future[ChunkResult]) -> ChunkResult:
    from distributed import KilledWorker

    try:
        result: ChunkResult = future.result()
    except KilledWorker:
        raise WorkerError(
            "a Dask worker died while parsing (killed, or out of memory?); nothing of this "
            "run was stored"
        ) from None
    return result


def assemble_store_on(
    cluster: Cluster, store: Store, writer: StoreWriter | None = None
) -> Assembled:
    """``assembly.assemble_store`` with the assembly from scratch done in windows on the
    cluster (``assemble_in_windows``); what an ingest adds to an assembled store is assembled
    here, as it touches only the connections still open."""

    def in_windows(hops: pa.Table, ruleset: Ruleset | None) -> Assembled:
        return assemble_in_windows(cluster, hops, ruleset)

    return assemble_store(store, writer, from_scratch=in_windows)


def assemble_stale_on(cluster: Cluster, store: Store) -> bool:
    """Assemble the store on the cluster and keep the tables, when they are missing or were
    built from other hops (what a question would otherwise assemble here, ``query.assembled``);
    False when the store cannot be written now (the question then assembles it here)."""
    manifest = store.require()
    if Provenance.now(manifest.parts, manifest.ruleset).matches(manifest.assembly):
        return True
    print(f"{store.path}: assembling the connections on {cluster.address}…", file=sys.stderr)
    try:
        with store.writer() as writer:
            assemble_store_on(cluster, store, writer)
    except (StoreWriteError, StoreLockedError):
        return False
    return True


def assemble_in_windows(
    cluster: Cluster,
    hops: pa.Table,
    ruleset: Ruleset | None = None,
    *,
    window_hops: int = WINDOW_HOPS,
    window_seconds: float = WINDOW_SECONDS,
    chunk_hops: int = CHUNK_HOPS,
) -> Assembled:
    """``assembly.assemble`` of these hops, each time window (``window_hops`` hops, at least
    ``window_seconds`` long) assembled on a worker, then the connections near each seam
    between two windows assembled again on a worker: the same tables.

    The clocks are learned from every hop first, here (``plan_windows``). Hops without
    wall-clock time cannot be placed in a window: they are assembled here, as ``assemble``
    does.
    """
    plan = plan_windows(hops, window_hops, window_seconds)
    if not plan.windows:
        return assemble(hops, ruleset, chunk_hops=chunk_hops)
    assembling = _Assembling(cluster, hops, plan, ruleset, chunk_hops)
    windows = [assembling.submit(rows) for rows in plan.windows]
    kept = Kept()
    seams = []
    # each seam is sent as soon as the two windows beside it are done; a group of hosts'
    # windows have seams between them, two groups none (no connection crosses them)
    for group in plan.partitions():
        done = (assembling.result(windows[i]) for i in group)
        seams += [assembling.submit(rows) for rows in _seam_rows(done, plan, group, kept)]
    for seam in seams:
        kept.extend(assembling.result(seam))
    return kept.numbered(hops, plan.clocks)


class _Assembling:
    """What the workers assemble (``assembly.assemble_later``): some of the hops' rows, by
    time, as if they were all there is; their results with the rows of all the hops."""

    def __init__(
        self,
        cluster: Cluster,
        hops: pa.Table,
        plan: WindowPlan,
        ruleset: Ruleset | None,
        chunk_hops: int,
    ) -> None:
        self.cluster = cluster
        judge = judges(hops, ruleset)
        self.run = AssemblyRun.of(hops, plan.when, plan.clocks, ruleset, judge, chunk_hops)

    def submit(self, rows: np.ndarray) -> tuple[np.ndarray, Future[Kept]]:
        future = self.cluster.client.submit(assemble_later, *self.run.later(rows), pure=False)
        return rows, future

    def result(self, submitted: tuple[np.ndarray, Future[Kept]]) -> Kept:
        rows, future = submitted
        kept: Kept = future.result()
        kept.renumber_rows(rows)
        return kept


def _seam_rows(
    windows: Iterator[Kept], plan: WindowPlan, group: list[int], kept: Kept
) -> Iterator[np.ndarray]:
    """Keep in ``kept`` each window's connections no neighbour can touch, as the windows are
    done; yield, seam after seam, the rows of the others, by time: those that start within
    SETTLED_AFTER of a window's start, or end within it of its end, with their neighbours
    across the seam (no later hop can join a connection SETTLED_AFTER after its last: the
    chunks' carry, ``assembly.trace_in_chunks``).

    ``group``: the windows' numbers in the plan, one host group's, by time. A connection near
    both ends of its window (a long one) joins the two seams into one."""
    when, seams = plan.when, [plan.seams[i] for i in group]
    last = len(seams) - 1
    seam: list[np.ndarray] = []
    for i, theirs in enumerate(windows):
        if i > 0:  # what the window's start cut off from the connections before it
            started = theirs.drop_started_before(seams[i] + SETTLED_AFTER)
            seam.append(started)
            if not (i < last and _reaches(started, when, seams[i + 1] - SETTLED_AFTER)):
                # by time, ties in the hops' order, as the windows' rows (plan_windows)
                rows = np.sort(np.concatenate(seam))
                if len(rows):
                    yield rows[np.argsort(when[rows], kind="stable")]
                seam = []
        if i < last:  # what its end cuts off from the hops after it
            seam.append(_drop_ended_after(theirs, seams[i + 1] - SETTLED_AFTER, when))
        kept.extend(theirs)


def _reaches(rows: np.ndarray, when: np.ndarray, limit: float) -> bool:
    """Whether any of these hops is at or after ``limit``."""
    return bool(len(rows)) and bool(when[rows].max() >= limit)


@dataclass(frozen=True)
class WindowPlan:
    """A store's hops placed on the hosts' one clock and cut into assembly windows: each group
    of hosts that packets link (``Clocks.links``) apart, by time."""

    clocks: Clocks  # the hosts' boot times and offsets, learned from every hop
    when: np.ndarray  # each hop's time on that clock, by row (NaN: a hop without wall time)
    windows: list[np.ndarray]  # each window's rows, by time (none when a hop has no time)
    seams: list[float]  # the time each window starts at
    groups: list[int]  # each window's group of hosts

    def partitions(self) -> list[list[int]]:
        """The windows' numbers, a list per group of hosts, each by time."""
        return [
            [i for i, g in enumerate(self.groups) if g == group]
            for group in dict.fromkeys(self.groups)
        ]


def plan_windows(
    hops: pa.Table, window_hops: int = WINDOW_HOPS, window_seconds: float = WINDOW_SECONDS
) -> WindowPlan:
    """The windows ``assemble_in_windows`` cuts these hops into (the clocks learned here, as
    ``assemble`` does, so that several hosts' hops are placed on one clock).

    Hosts that no packet links share no connection (``logpath.packets`` joins packets only
    across ``Clocks.links``, and a tuple is a connection per host): each group of linked hosts
    is cut into windows of its own, so that a fleet's hosts are assembled side by side, with
    seams only inside a group."""
    lines = to_frame(hops.select(["host", "ts", "uptime"]))
    clocks = learn_hop_clocks(hops, lines)
    when = one_clock(lines, clocks)
    if np.isnan(when).any():
        return WindowPlan(clocks, when, [], [], [])
    order = np.argsort(when, kind="stable")
    group = host_group_of_hops(hops["host"], clocks)[order]
    windows: list[np.ndarray] = []
    seams: list[float] = []
    groups: list[int] = []
    for number in dict.fromkeys(group.tolist()):
        theirs, starts = _windows(order[group == number], when, window_hops, window_seconds)
        windows += theirs
        seams += starts
        groups += [number] * len(theirs)
    return WindowPlan(clocks, when, windows, seams, groups)


def _windows(
    order: np.ndarray, when: np.ndarray, window_hops: int, window_seconds: float
) -> tuple[list[np.ndarray], list[float]]:
    """The hops' rows (``order``: by time) cut into windows of at least ``window_hops`` hops
    and ``window_seconds``, never between two hops of the same time; each window's rows, and
    the time it starts at."""
    times = when[order]
    seams = [float(times[0])]
    for k in range(window_hops, len(order), window_hops):
        # the last window too must be long enough: else it joins the one before
        if times[k] - seams[-1] >= window_seconds and times[-1] - times[k] >= window_seconds:
            seams.append(float(times[k]))
    starts = np.searchsorted(times, seams, side="left")
    bounds = [*starts.tolist(), len(order)]
    return [order[a:b] for a, b in itertools.pairwise(bounds)], seams


def _drop_ended_after(kept: Kept, limit: float, when: np.ndarray) -> np.ndarray:
    """Forget ``kept``'s connections whose last hop is at or after ``limit`` (on the one clock
    ``when``); the rows of their hops."""
    dropped = []
    for i in range(len(kept.traces)):
        late = kept.last_hops(i, when) >= limit
        if late.any():
            dropped.append(kept.forget(i, late))
    return np.concatenate(dropped) if dropped else np.empty(0, dtype=np.int64)
