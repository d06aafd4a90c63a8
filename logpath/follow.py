"""Follow: connections assembled while their lines are being written (``logpath follow``).

The lines followed (``logpath.tail``) are parsed as ingest parses them (``parse_chunk``). Their
hops join a window of the connections still open (``logpath.window``), and what an assembly
(``assemble``) of the window with them says is shown: only the connections the new hops can
reach are assembled again, the others stand as they were. A connection is ``new`` when first
assembled, ``update`` when what ``flows --json`` says of it changes (packets, state, fates,
NAT), ``end`` when it closed (FIN both ways or RST, and nothing more for CLOSED_GRACE) or was
idle past its timeout; an ended connection's hops leave the window. Every COMMIT_EVERY seconds
the hops read are added to the store, with what was read of each file, and the store's
connections are assembled again, as an ingest of the same lines would: in the loop when the
input pauses, else by a worker process on the other core while the loop reads on
(``_AssemblyApart``); the store's lock is held from start to end.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpath.assembly import (
    HOP_COLUMNS,
    Assembled,
    assemble,
    assemble_store,
    assembled_apart,
    kept_ruleset,
)
from logpath.clocks import Clocks
from logpath.errors import Stopped
from logpath.ingest import ChunkResult, kill_workers, parse_chunk, worker_pool
from logpath.lines import Block, Extent
from logpath.parse import KNOWN_LINES, Rejected
from logpath.provenance import Provenance
from logpath.query import NAT_CHOICES, FlowQuery, Tables, matching_flow_numbers
from logpath.records import Flow, flows_from_table
from logpath.rowgroups import MemoryRows
from logpath.store import Manifest, SourceState, Store, StoreWriter, new_run
from logpath.tail import READ_BYTES, Followed, FollowedStdin, Tally, followed, written
from logpath.window import Window

# How long a connection may be idle before it ends (seconds without a new hop): an unanswered
# one 10 s, a TCP connection 120 s, UDP and ICMP less (conntrack's defaults, shortened as the
# issue asks: a live view wants ended connections to leave it).
UNANSWERED_IDLE = 10.0
IDLE = {"tcp": 120.0, "udp": 30.0, "udplite": 30.0, "icmp": 10.0, "icmpv6": 10.0}
OTHER_IDLE = 120.0
# A closed TCP connection still has its last ACK to come (and retransmitted FINs): it ends
# when nothing more arrived for this long after the close.
CLOSED_GRACE = 2.0
CLOSED_STATES = frozenset({"closed", "reset"})
COMMIT_EVERY = 2.0  # seconds between commits to the store (when something was read)
# When the store's connections are assembled again: once the input paused this long, and at
# least this often while it never pauses. One assembly holds the loop and reads every stored
# connection again (assemble_added reads the trace table): 1.2 s over 4,000 hops, 3.7 CPU-s
# over 120,000; at every commit it made the latency of what follow prints 2 s at 500 lines/s.
# While the input never pauses, an assembly in the loop held it for as long as the assembly
# took (~100 s at 20,000 lines/s, the lines read meanwhile printed that late): the store is
# assembled by a worker process instead (``_AssemblyApart``), one assembly at a time, once
# ASSEMBLE_EVERY seconds passed or ASSEMBLE_HOPS hops were committed since the last one began
# (the hops one assembly adds, and the worker's memory, bounded at any rate of input).
ASSEMBLE_AFTER_PAUSE = 5.0
ASSEMBLE_EVERY = 300.0
ASSEMBLE_HOPS = 250_000
# A worker's assembly still running after this long is taken for hung (a stopped process, a
# lock never released) and killed: follow then assembles in its loop, as when a worker dies.
# Its assemblies took ~12 s at 20,000 lines/s of one busy host, up to a minute for two; the
# first of a large store, from scratch, a few minutes.
APART_AT_MOST = 30 * 60.0
TICK = 0.1  # seconds between polls of the inputs, at least
# A step that assembled new hops costs ~0.2 s however few they are (a busy host's open
# connections, ~6,000 hops, at 1,000 lines/s: the stages' fixed cost on small frames), so
# polling every TICK kept a core busy at any rate of input: 1.00 of a core at 1,000 lines/s.
# After such a step the next poll waits until PACE times its cost has passed since it began,
# at most PACE_AT_MOST seconds (what that wait adds to the latency), and not at all while
# follow is behind its writers (it reads more a step then, ``_check_behind``).
PACE = 2.5
PACE_AT_MOST = 0.5
# Unread bytes in the inputs after a poll that say follow is falling behind its writers
BEHIND_BYTES = 8 << 20
# What a step reads of each input at most. A step costs a part that grows with the window
# (clocks, order, bridges' facts, what new hops reach) besides ~45 µs a new hop, so a follower
# behind its writers catches up by reading more a step: its budget doubles while a block's
# worth (READ_BYTES) or more is left unread after a poll, up to STEP_BYTES_MAX, and is
# READ_BYTES again once less is left (a burst's first lines are not held by a long step). On
# the dense replay at 20,000 lines/s, steps of 4 MiB cost 1.0-1.3 CPU-s for 0.94 s of lines at
# a window of 70,000-90,000 hops; steps of 12.7 MB 2.0-2.8 CPU-s for 3 s of lines.
STEP_BYTES_MAX = 16 << 20
# A packet's hops on one host are logged within this (seconds of uptime): the kernel passes it
# through its hooks at once. The newest hops wait for later ones (a log without uptimes: for
# its second to end), or for a poll that brings nothing.
SAME_PACKET = 0.05
WINDOWS = ("touched", "whole")  # Follower's window: assembled in part, or whole at each step
SKIPPED_BEFORE = "before follow started (not read: --from-start reads them)"
ALREADY_READ = "read by an earlier run (standard input started with them)"


@dataclass(frozen=True)
class Event:
    """What changed about one connection: ``kind`` is "new", "update" or "end"."""

    kind: str
    flow: Flow
    last_hop: str
    """Where its last hop was logged: table, chain, interfaces (``nat POSTROUTING →eth0``)."""

    def to_json(self) -> dict[str, object]:
        """The ``flows --json`` object of the connection, with ``event``."""
        return {**self.flow.to_json(), "event": self.kind}


@dataclass
class FollowSummary:
    """What one follow run read, stored and showed."""

    lines: int = 0
    hops: int = 0
    rejected: int = 0
    skipped: int = 0
    skipped_before: int = 0  # lines already in the files when follow started, not read
    already_read: int = 0  # standard input's first lines, which an earlier run read
    connections: int = 0  # connections shown (new events)
    ended: int = 0
    commits: int = 0
    assembled_apart: int = 0  # store assemblies a worker process made (_AssemblyApart)
    worker_failed: str = ""  # why the worker's assembly failed (then the loop assembles)
    behind: int = 0  # polls after which BEHIND_BYTES or more were still unread
    open: int = 0

    def line(self) -> str:
        """The one-line summary printed when follow stops."""
        again = f" ({self.already_read:,} more read by an earlier run)" if self.already_read else ""
        n = self.assembled_apart
        apart = f" ({n:,} of the store's assemblies by a worker)" if n else ""
        if self.worker_failed:
            apart = f" (the worker's assembly failed: {self.worker_failed})"
        return (
            f"{self.lines:,} lines read{again}, {self.hops:,} hops, {self.rejected:,} rejected; "
            f"{self.connections:,} connections shown, {self.ended:,} ended, "
            f"{self.open:,} still open; {self.commits:,} commits{apart}"
        )


@dataclass
class _Open:
    """A connection of the window, as last shown."""

    flow: Flow
    changed: float  # when (time.monotonic) hops of it last arrived
    shown: bool  # it matches the filters: its events are emitted
    last_hop: str  # where its last hop was logged (Event.last_hop)
    # when it is idle past its timeout (``Follower._due``): on the log's clock (POSIX seconds;
    # None without a time), and on the wall clock (time.monotonic) for a log without dates
    ends_logged: float | None = None
    ends_wall: float = 0.0


@dataclass
class _Pending:
    """What was read since the last commit."""

    hops: list[pa.Table] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


class Follower:
    """Follows ``paths`` into ``store``; ``step`` polls once and returns the events.

    Use as a context manager: it holds the store's lock while it runs and commits on exit.
    """

    def __init__(
        self,
        paths: list[str],
        store: Store,
        *,
        query: FlowQuery | None = None,
        from_start: bool = False,
        year: int | None = None,
        ruleset: dict[str, object] | None = None,
        idle: float | None = None,
        commit_every: float = COMMIT_EVERY,
        assemble_every: float = ASSEMBLE_EVERY,
        apart_at_most: float = APART_AT_MOST,
        clock: Callable[[], float] = time.monotonic,
        window: str = "touched",
    ) -> None:
        self.paths = paths
        self.store = store
        self.query = query or FlowQuery()
        self.from_start = from_start
        self.year = year
        self.ruleset = ruleset
        self.idle = idle
        self.commit_every = commit_every
        self.clock = clock
        self.summary = FollowSummary()
        self.inputs: list[Followed] = []
        # the open connections' hops: "touched" assembles again only the connections new hops
        # can reach (logpath.window), "whole" all of them (as follow did: the reference)
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
        self.window = Window(kept_ruleset(ruleset), whole=window == "whole")
        self.open: dict[str, _Open] = {}
        self.pending = _Pending()
        self.last_commit = self.last_assembly = clock()
        self.assemble_every = assemble_every
        self.unassembled = False  # the store's tables are older than its hops
        self.unassembled_parts: list[str] = []  # this run's parts committed since (absorb_parts)
        self.unassembled_hops = 0  # hops committed since the last assembly began
        self.apart = _AssemblyApart(apart_at_most)
        self.held: pa.Table | None = None  # hops of the newest packet (_released)
        self.unread = 0  # bytes written to the files and not read yet, after the last poll
        self.budget = READ_BYTES  # what the next step reads of each input at most
        self.newest: datetime | None = None  # the newest hop's time (the log's clock)
        self.links: frozenset[tuple[str, str]] = frozenset()  # hosts packets linked so far
        self.last_arrival = clock()  # when hops last arrived
        self._runs: AbstractContextManager[Callable[..., AbstractContextManager[StoreWriter]]]
        self._run: Callable[..., AbstractContextManager[StoreWriter]] | None = None

    def __enter__(self) -> Follower:
        self.query.hop_filter()  # a bad --nat is refused before anything is read
        self.store.check_writable()
        self._runs = self.store.runs()
        self._run = self._runs.__enter__()
        try:
            _warm_up()
            known = {k: e for k, e in _extents(self.store)}
            self.inputs = followed(self.paths, known, self.from_start)
            self.links = _stored_links(self.store)
        except BaseException as error:
            self._runs.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        try:
            # a second signal stops at once (stop_on_signals): what was read since the last
            # commit is not stored, and its files' extents with it, so the next run reads it
            if error is None:
                self.commit(final=True)
        finally:
            self.apart.close()
            for source in self.inputs:
                source.close()
            self.summary.open = len(self.open)
            self._runs.__exit__(None, None, None)

    @property
    def ended(self) -> bool:
        """Whether every input has ended (standard input closed): nothing more will come."""
        return all(getattr(source, "ended", False) for source in self.inputs)

    def step(self) -> list[Event]:
        """Read what arrived, show what changed, end idle connections; commit when due."""
        added = self._released(self._read())
        events = self._assembled(added) if added is not None else []
        events.extend(self._ends())
        if self.clock() - self.last_commit >= self.commit_every:
            self.commit()
        return events

    def wait(self, took: float) -> float:
        """Seconds to wait before the next poll, after a step that took ``took`` seconds
        (``PACE``): TICK since the step began, PACE times its cost while it assembles, none
        while follow is behind its writers."""
        if self.budget > READ_BYTES:  # behind (_check_behind widened the next step's read)
            return 0.0
        period = max(TICK, min(PACE * took, PACE_AT_MOST))
        return max(0.0, period - took)

    def window_hops(self) -> int:
        """The hops of the open connections kept (what a step assembles again)."""
        return self.window.hops

    def _read(self) -> pa.Table | None:
        """Parse the lines that arrived; the new hops (HOP_COLUMNS), None when none came."""
        new: list[pa.Table] = []
        for source in self.inputs:
            mtime = written(source)
            for block in source.poll(self.budget):
                result = parse_chunk(source.path, mtime, self.year, block, 0)
                self.pending.hops.append(result.hops)
                self.pending.rejected.extend(result.rejected)
                self.pending.skipped.update(result.skipped)
                self._count(result)
                if result.hops.num_rows:
                    new.append(result.hops.select(HOP_COLUMNS))
        self._check_behind()
        return pa.concat_tables(new) if new else None

    def _released(self, new: pa.Table | None) -> pa.Table | None:
        """The hops to assemble now: those that arrived, but the newest packet's, which may
        have hops still to come (a poll can fall between the lines of one packet, and half a
        packet can look like a connection of its own: a reply whose de-SNAT is not logged
        yet). They wait until later hops arrive, or a poll brings nothing."""
        if new is None:
            held, self.held = self.held, None
            return held
        table = new if self.held is None else pa.concat_tables([self.held, new])
        later = _newest_packet(table)
        self.held = table.filter(later)
        ready = table.filter(pc.invert(later))
        return ready if ready.num_rows else None

    def _count(self, result: ChunkResult) -> None:
        self.summary.lines += result.lines
        self.summary.hops += result.hops.num_rows
        self.summary.rejected += len(result.rejected)
        self.summary.skipped += sum(result.skipped.values())

    def _check_behind(self) -> None:
        unread = sum(source.unread() for source in self.inputs)
        self.unread = unread
        if unread >= BEHIND_BYTES:
            self.summary.behind += 1
        # (a pipe tells no length: standard input is behind when its poll stopped at the budget)
        behind = unread >= READ_BYTES or any(
            isinstance(source, FollowedStdin) and source.left_unread for source in self.inputs
        )
        self.budget = min(2 * self.budget, STEP_BYTES_MAX) if behind else READ_BYTES

    def _assembled(self, added: pa.Table) -> list[Event]:
        """Assemble the window with the new hops; the events of what changed (a connection
        the new hops cannot reach is not assembled again: it stays as it was shown)."""
        step = self.window.add(added, self.links)
        assembled = step.assembled
        # a link once seen stays: the window keeps only the open connections, maybe too few
        # packets to learn it again, and packets join only linked hosts (packets.py)
        self.links |= assembled.clocks.links or frozenset()
        flows = {flow.id: flow for flow in flows_from_table(assembled.flows)}
        shown = self._shown(assembled)
        places = _last_hops(assembled)
        now = self.last_arrival = self.clock()
        # (a connection not assembled again has not moved: its last hop was seen before)
        seen = [f.last_seen for f in flows.values() if f.last_seen is not None]
        if seen:
            self.newest = max([*seen, self.newest] if self.newest else seen)
        events: list[Event] = []
        current: dict[str, _Open] = {}
        for flow_id in step.order:  # in the order one assembly of the window gives
            flow = flows.get(flow_id)
            if flow is None:
                current[flow_id] = self.open[flow_id]
                continue
            before = self.open.get(flow.id)
            entry = _Open(flow, now, flow.id in shown, places.get(flow.id, ""))
            if before is not None and _signature(before.flow) == _signature(flow):
                entry.changed, entry.shown = before.changed, before.shown
            elif entry.shown:
                kind = "new" if before is None or not before.shown else "update"
                self.summary.connections += kind == "new"
                events.append(Event(kind, flow, entry.last_hop))
            self._due(entry)
            current[flow.id] = entry
        self.open = current
        return events

    def _shown(self, assembled: Assembled) -> set[str]:
        """The ids of the connections the filters ask for."""
        tables = Tables(MemoryRows(assembled.flows), MemoryRows(assembled.trace), {})
        numbers = matching_flow_numbers(tables, self.query)
        rows = assembled.flows
        if numbers is not None:
            rows = rows.take(numbers)
        ids = rows["id"].to_pylist()
        if self.query.nat is None:
            return set(ids)
        kinds = NAT_CHOICES[self.query.nat]
        flows = flows_from_table(rows)
        return {f.id for f in flows if any(t.type in kinds for t in f.nat)}

    def _ends(self) -> list[Event]:
        """End the connections closed or idle; their hops leave the window."""
        now = self.clock()
        # how idle a connection is, by the log's own clock: from its last hop to the newest
        # hop read, run on by the wall clock while nothing arrives. A log replayed slower
        # than it was written (a test's writer) or faster (a follower catching up) ends
        # connections as their lines do. A log without dates: since its hops last arrived.
        # (Each connection's deadline is kept (_due): this runs at every poll, over every
        # open connection.)
        logged = None
        if self.newest is not None:
            logged = self.newest.timestamp() + (now - self.last_arrival)
        gone = [
            entry
            for entry in self.open.values()
            if (
                entry.ends_wall <= now
                if logged is None or entry.ends_logged is None
                else entry.ends_logged <= logged
            )
        ]
        if not gone:
            return []
        ids = {entry.flow.id for entry in gone}
        for flow_id in ids:
            del self.open[flow_id]
        self.window.drop(ids)
        self.summary.ended += sum(entry.shown for entry in gone)
        return [Event("end", entry.flow, entry.last_hop) for entry in gone if entry.shown]

    def _due(self, entry: _Open) -> None:
        """Keep when the connection is idle past its timeout (``_ends``)."""
        timeout = self._timeout(entry.flow)
        last = entry.flow.last_seen
        entry.ends_logged = None if last is None else last.timestamp() + timeout
        entry.ends_wall = entry.changed + timeout

    def _timeout(self, flow: Flow) -> float:
        if flow.state in CLOSED_STATES:
            return CLOSED_GRACE
        if self.idle is not None:
            return self.idle
        if not flow.answered:
            return UNANSWERED_IDLE
        return IDLE.get(flow.proto, OTHER_IDLE)

    def commit(self, final: bool = False) -> None:
        """Add what was read since the last commit to the store, with what was read of each
        file, and assemble the store's connections again (as an ingest of the lines would): in
        the loop when the input paused (ASSEMBLE_AFTER_PAUSE) and at the end; while it never
        pauses, at least every ASSEMBLE_EVERY seconds or ASSEMBLE_HOPS hops, by the worker
        (``_AssemblyApart``), whose tables a later commit names. In between, a reader finds the
        store's tables older than its hops and assembles them for its question
        (``query.assembled``): it sees the same connections, slower."""
        now = self.last_commit = self.clock()
        apart = self.apart
        apart.give_up_if_hung()
        if final:
            apart.wait()
        paused = now - self.last_arrival >= ASSEMBLE_AFTER_PAUSE
        # the worker's files stay until this commit names them (or finds it failed)
        spared = apart.spared()
        # an assembly that ended is taken before anything is decided on it: one that failed
        # starts no other (a failure seen after the decision started one, seen in CI)
        ready = apart.done()
        assembly = apart.result() if ready else None  # None when it failed: `failed` says why
        busy = apart.running  # not ready when looked at, so still running (or just ended)
        here = (final or paused) and not busy
        due_apart = not (here or busy or apart.failed) and (
            now - self.last_assembly >= self.assemble_every
            or self.unassembled_hops >= ASSEMBLE_HOPS
        )
        due = here or due_apart
        if not (self._anything_to_commit() or ready or (due and self.unassembled)):
            return
        assert self._run is not None
        # (the worker's files, written while it runs, are named by this commit or a later one)
        with self._run(spared) as writer:
            if self.ruleset is not None:
                writer.manifest.ruleset = self.ruleset
            if assembly is not None:
                writer.take_assembly(assembly)
                self.summary.assembled_apart += 1
            # a worker that failed or was given up for hung: the store keeps every hop, and the
            # loop assembles it from now on
            self.summary.worker_failed = apart.failed
            if due:  # the parts since the store was last assembled become one
                writer.absorb_parts(self.unassembled_parts)
            for table in self.pending.hops:
                writer.add_hops(table)
                self.unassembled_hops += table.num_rows
            writer.add_rejected(self.pending.rejected)
            skipped = writer.manifest.skipped
            for reason, count in self.pending.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
            self._remember(writer)
            manifest = writer.manifest
            parts = writer.hop_parts()
            current = Provenance.now(parts, manifest.ruleset)
            self.unassembled = not current.matches(manifest.assembly)
            if here and self.unassembled:
                assemble_store(self.store, writer)
                self.unassembled, self.last_assembly, self.unassembled_hops = False, now, 0
        # this run's parts the stored tables were not built from (this one's, if it wrote one)
        wrote = writer.own_parts
        self.unassembled_parts = [*self.unassembled_parts, *wrote] if self.unassembled else []
        if due_apart and self.unassembled:
            # the worker assembles the store as committed: its parts, the parts it absorbed
            apart.start(self.store, writer.manifest)
            self.unassembled_parts, self.last_assembly, self.unassembled_hops = [], now, 0
        self.pending = _Pending()
        self.summary.commits += 1

    def _anything_to_commit(self) -> bool:
        """Whether hops, rejected or skipped lines were read, or a file was read further than
        the store knows (its lines were no hops), since the last commit."""
        pending = self.pending
        if pending.hops or pending.rejected or pending.skipped:
            return True
        return any(
            source.retired
            or source.skipped_before
            or source.already_read
            or not _recorded(source.tally)
            for source in self.inputs
        )

    def _remember(self, writer: StoreWriter) -> None:
        """Keep in the manifest what was read of each file (its extent), as ingest does: a
        later run, follow or ingest, reads on from there."""
        sources = writer.manifest.sources
        skipped = writer.manifest.skipped
        for source in self.inputs:
            if source.skipped_before:
                skipped[SKIPPED_BEFORE] = skipped.get(SKIPPED_BEFORE, 0) + source.skipped_before
                self.summary.skipped_before += source.skipped_before
                source.skipped_before = 0
            if source.already_read:
                skipped[ALREADY_READ] = skipped.get(ALREADY_READ, 0) + source.already_read
                self.summary.already_read += source.already_read
                source.already_read = 0
            for tally in [*source.retired, source.tally]:
                _record_extent(source.path, tally, sources)
            source.retired.clear()


class _AssemblyApart:
    """The store's assembly in a worker process on the other core, one at a time, while
    follow reads on (``assembly.assembled_apart``): it starts from the store as a commit left
    it; the files it writes are named by the first commit after it ends
    (``StoreWriter.take_assembly``).

    Meanwhile follow's commits only add parts after that commit's (they take none into another,
    ``absorb_parts``) and leave the stored tables as they are: what it read stays what the
    store holds."""

    def __init__(self, at_most: float = APART_AT_MOST) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.future: Future[dict[str, Any]] | None = None
        self.run = ""  # the id of the run whose files it writes
        self.failed = ""  # why an assembly failed: no other is started
        self.at_most = at_most  # seconds an assembly may run before it is taken for hung
        self.began = 0.0  # when the running assembly began (time.monotonic)

    @property
    def running(self) -> bool:
        """Whether an assembly was started and its tables are not named yet."""
        return self.future is not None

    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def start(self, store: Store, manifest: Manifest) -> None:
        """Assemble the store as ``manifest``, committed, names it."""
        assert self.future is None, "one assembly at a time"
        if self.pool is None:
            self.pool = worker_pool(1)
        self.run = new_run()
        self.began = time.monotonic()
        self.future = self.pool.submit(assembled_apart, store.location, manifest.dump(), self.run)

    def spared(self) -> frozenset[str]:
        """The run whose files are still to be named (not a killed run's orphans)."""
        return frozenset({self.run}) if self.future is not None else frozenset()

    def wait(self) -> None:
        """Wait for the running assembly to end, until it is taken for hung at the latest."""
        if self.future is not None:
            left = self.began + self.at_most - time.monotonic()
            wait([self.future], timeout=max(0.0, left))
            self.give_up_if_hung()

    def give_up_if_hung(self) -> None:
        """Kill the worker when its assembly ran past ``at_most`` (its files are never named:
        the next run removes them); ``failed`` says so, and no other is started."""
        if self.future is None or self.future.done():
            return
        if time.monotonic() - self.began < self.at_most:
            return
        self.close()
        self.failed = f"it ran longer than {self.at_most:,.0f} s (hung?) and was killed"

    def result(self) -> dict[str, Any] | None:
        """The ``manifest.assembly`` of the assembly that ended (it is no longer running); None
        when it failed (``failed`` says why). A failure of the store's assembly must not end a
        follow that reads and shows on: its files are never named, the store keeps every hop
        committed, and the loop assembles it in pauses and at the end, as without a worker."""
        assert self.future is not None
        future, self.future = self.future, None
        try:
            return future.result()
        except BrokenProcessPool:
            self.failed = "its process died (killed, or out of memory?)"
        except Exception as error:  # raised in the worker: the store is as it was
            self.failed = f"{type(error).__name__}: {error}"
        finally:
            # a worker for each assembly: one kept for all of them held what its largest
            # assembly had taken (its allocators keep freed memory), and two busy hosts'
            # follow grew to 7 GB in 8 minutes. Spawned, one cost ~2.6 CPU-s on the other core;
            # it is forked from the workers' server now, which imported the pipeline once
            self.close()
        return None

    def close(self) -> None:
        """End the worker: at once when an assembly is still running (follow stops on an
        error: its files, never named, go at the next run)."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        if self.future is not None and not self.future.done():
            kill_workers(pool)
        self.future = None
        pool.shutdown(wait=True, cancel_futures=True)


def _newest_packet(hops: pa.Table) -> pa.Array:
    """Which hops were logged within SAME_PACKET of their host's newest (by uptime; a hop
    without one, in its host's newest second)."""
    # a hop of no named host (dmesg) is in the newest packet of the hops of no host
    host_names = hops["host"].combine_chunks().cast(pa.string())
    hosts = pc.dictionary_encode(host_names, null_encoding="encode")
    host = hosts.indices.to_numpy(zero_copy_only=False).astype(np.intp)
    uptime = hops["uptime"].combine_chunks()
    timed = uptime.is_valid().to_numpy(zero_copy_only=False)
    seconds = uptime.fill_null(0.0).to_numpy(zero_copy_only=False)
    stamp = hops["ts"].combine_chunks().cast(pa.int64())
    stamped = stamp.is_valid().to_numpy(zero_copy_only=False) & ~timed
    stamps = stamp.fill_null(0).to_numpy(zero_copy_only=False)
    # per host, the newest uptime and the newest time of the hops without one
    top_uptime = np.full(len(hosts.dictionary), -np.inf)
    np.maximum.at(top_uptime, host[timed], seconds[timed])
    top_stamp = np.full(len(hosts.dictionary), np.iinfo(np.int64).min)
    np.maximum.at(top_stamp, host[stamped], stamps[stamped])
    later = (timed & (seconds >= top_uptime[host] - SAME_PACKET)) | (
        stamped & (stamps >= top_stamp[host])
    )
    return pa.array(later, pa.bool_())


def _warm_up() -> None:
    """Parse and assemble a known line once before the first poll: the first time costs ~2 s
    (the grammar built, pandas imported), which would otherwise delay the first lines read."""
    line = (KNOWN_LINES[0] + "\n").encode()
    hops = parse_chunk("warm-up", datetime.now(UTC), None, Block(1, 1, line), 0).hops
    assemble(hops.select(HOP_COLUMNS))


def _record_extent(name: str, tally: Tally, sources: dict[str, SourceState]) -> None:
    extent = tally.extent()
    if not extent.lines:
        return
    if tally.continues is not None:
        sources.pop(tally.continues, None)
    state = SourceState(name, extent.lines, extent.size, extent.digest, extent.head)
    sources[extent.digest] = state
    tally.continues = extent.digest


def _recorded(tally: Tally) -> bool:
    return not tally.size or tally.continues == tally.extent().digest


def _extents(store: Store) -> Iterator[tuple[str, Extent]]:
    """The extents the store's manifest keeps (what earlier runs read of each file)."""
    from logpath.ingest import stored_extent

    if not store.exists():
        return
    for key, state in store.manifest.sources.items():
        extent = stored_extent(state)
        if extent is not None:
            yield key, extent


def _signature(flow: Flow) -> tuple[object, ...]:
    """What a change of is shown: packets, hops, state, fates, NAT, answered."""
    return (
        flow.packets,
        flow.hops,
        flow.state,
        flow.nat,
        flow.answered,
        flow.stopped,
        flow.dropped,
        flow.lost,
    )


def _last_hops(assembled: Assembled) -> dict[str, str]:
    """Per connection, where its last hop was logged (the trace is sorted by connection,
    packet and hop)."""
    trace = assembled.trace
    if not trace.num_rows:
        return {}
    flow = trace["flow"].to_pylist()
    last = [i for i in range(len(flow)) if i + 1 == len(flow) or flow[i + 1] != flow[i]]
    columns = ["flow", "table", "chain", "hook", "in_iface", "out_iface"]
    rows = trace.take(pa.array(last)).select(columns)
    places: dict[str, str] = {}
    for row in rows.to_pylist():
        if row["flow"] is None:
            continue
        # a LOG rule's prefix may name no chain (the lab's: lp:mangle:post): its hook does
        where = " ".join(str(w) for w in (row["table"], row["chain"] or row["hook"]) if w)
        places[row["flow"]] = f"{where} {row['in_iface'] or ''}→{row['out_iface'] or ''}".strip()
    return places


def stop_on_signals(follower_stop: Callable[[int], None]) -> Callable[[], None]:
    """Let SIGINT and SIGTERM ask the loop to stop (it commits first); a second signal stops
    at once (``Stopped``). Returns what puts the previous handlers back."""

    def asked(signum: int, frame: FrameType | None) -> None:
        follower_stop(signum)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, again)

    def again(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    previous = {n: signal.signal(n, asked) for n in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


def _stored_links(store: Store) -> frozenset[tuple[str, str]]:
    """The hosts the store's assembled connections found linked (``Clocks.links``): a follow
    that continues a store joins their packets from its first line, not only once its own
    window shows packets with an IP ID on both hosts again."""
    assembly = store.manifest.assembly if store.exists() else None
    clocks = (assembly or {}).get("clocks")
    if not isinstance(clocks, dict):
        return frozenset()
    return Clocks.from_json(clocks).links or frozenset()
