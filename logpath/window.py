"""Follow's window: the hops of the connections still open, assembled again when hops arrive.

Follow shows what one assembly (``assemble``) of the window and the new hops says of each
connection. Assembling the whole window at every step costs ~40 µs a hop of it: on a busy host
(~2,000 connections open, 120,000 hops) 4 CPU-s a step. Most of the window cannot change: a
new hop joins a connection only through what assembly itself links hops by, so only the
connections it can reach are assembled again, on what the whole window would have been
assembled on:

* its conntrack tuple on its host (``flows.tuple_nodes``: an ICMP error's quoted tuple, a
  NAT-translated one alike): the window's connections that show it, and every connection
  sharing a tuple with those, until none is added (a tuple reused splits one chain of
  packets into connections by time: the whole chain is assembled again);
* the identity a packet keeps between its hooks on its host (``packets.identity_texts``):
  a packet alike whose last hop is at most MAX_HOP_GAP older than the new hop (by uptime)
  and which was not logged at the new hop's prefix yet, or any hop alike logged after it
  (pass 1 groups a hop only with hops alike, in time order, each into an open packet not
  logged at its hook: a packet alike that closed before the new hop, or was logged at
  every prefix the new hops show, is grouped as before and cannot take one);
* what a packet leaving the host and the one entering it again are joined by (pass 2, the
  same identity, destination and TTL): a hop alike at most MAX_HOP_GAP older, or later;
* the clocks (boot times, learned from the whole window and the new hops, as one assembly
  learns them) and the bridges' facts (learned from the hooks of the whole window once
  assembled): the connections assembled again are placed on those; a connection kept has
  to stand on them too, so one of its lines whose fine time would now be its stamp
  (``clocks.fine_clocked``) has it assembled again, and bridges' facts that changed (or that
  hang on a tie between MACs) have the whole window assembled again.

The window is assembled whole, as before, where those arguments do not hold: hops of hosts
that packets cross (``Clocks.links``: each step learns again how far their clocks are apart,
which moves every hop of one against the other's; hosts no packet crosses share no connection,
and each one's are assembled as if it were alone), a hop without a wall-clock time or an
uptime, a window larger than one assembly's chunk (``CHUNK_HOPS``: the chunks learn their
bridges apart), and the first step.
``benchmarks/follow_equality.py`` compares every event with the whole window's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from logpath.assembly import (
    CHUNK_HOPS,
    HOP_COLUMNS,
    Assembled,
    Bridges,
    assemble,
    learn_hop_clocks,
    learned_bridges,
)
from logpath.clocks import Clocks, fine_clocked, one_clock
from logpath.flows import linked_by_tuples, tuple_nodes
from logpath.hops import HOP_SCHEMA
from logpath.packets import MAX_HOP_GAP, identity_texts
from logpath.rules import Ruleset
from logpath.store import to_frame

_HOPS_SCHEMA = pa.schema([HOP_SCHEMA.field(c) for c in HOP_COLUMNS])
# What the window keeps of each hop besides its own columns: its connection, its hook (the
# bridges' facts are learned from hooks) and what tells which connections a new hop reaches.
_KEPT = pa.schema(
    [
        ("flow", pa.string()),
        ("hook", pa.string()),
        ("node", pa.string()),  # flows.tuple_nodes
        ("local", pa.string()),  # packets.identity_texts
        ("cross", pa.string()),
        ("fine", pa.bool_()),  # clocks.fine_clocked, on the clocks it was assembled on
        ("segment", pa.int64()),  # its packet's part on one pass through the host (leg)
    ]
)
_WINDOW_SCHEMA = pa.schema([*_HOPS_SCHEMA, *_KEPT])


@dataclass(frozen=True)
class Reassembled:
    """One step of the window: the connections assembled again and every open connection."""

    assembled: Assembled
    """The connections assembled again (all of them when ``whole``), as ``assemble`` gives."""
    order: list[str]
    """Every open connection's id, in the order one assembly of the window numbers them."""
    whole: bool


class Window:
    """The hops of the open connections (``_WINDOW_SCHEMA``) and what they were assembled on;
    ``add`` assembles new hops with the connections they can reach (all of them when
    ``whole``)."""

    def __init__(self, ruleset: Ruleset | None, *, whole: bool = False) -> None:
        self.ruleset = ruleset
        self.whole = whole
        self.rows: pa.Table | None = None
        self.bridges: Bridges | None = None  # the facts every row was assembled on
        self.segments = 0  # segment numbers given so far
        self.in_order = True  # the rows are in the order one assembly has them (its trace's)
        self.keyed = False  # the rows have their keys (_KEPT) and ``bridges`` is known
        # what it cost: steps, those that assembled the whole window, hops assembled
        self.steps = self.steps_whole = self.reassembled = 0
        self.why_whole: Counter[str] = Counter()  # why a step assembled the whole window

    @property
    def hops(self) -> int:
        return self.rows.num_rows if self.rows is not None else 0

    def drop(self, ids: set[str]) -> None:
        """The hops of these connections leave (they ended)."""
        if self.rows is None or not ids:
            return
        leaving = pc.is_in(self.rows["flow"], value_set=pa.array(sorted(ids), pa.string()))
        self.rows = self.rows.filter(pc.invert(leaving))

    def add(self, added: pa.Table, links: frozenset[tuple[str, str]]) -> Reassembled:
        """Assemble the new hops (HOP_COLUMNS) with the window: the connections they reach,
        or the whole window; the window then holds every hop that has a connection."""
        self.steps += 1
        new = added.select(HOP_COLUMNS).cast(_HOPS_SCHEMA)
        old = self.rows
        hops = new if old is None else pa.concat_tables([old.select(HOP_COLUMNS), new])
        lines = to_frame(hops.select(["host", "ts", "uptime"]))
        clocks = learn_hop_clocks(hops, lines)
        if links:
            clocks = replace(clocks, links=(clocks.links or frozenset()) | links)
        # the window's rows in the order one assembly of it has them (the rows of each
        # connection together, in its order, connections by first hop's time, then id): an
        # assembly's input order breaks ties between hops logged at once
        order = np.arange(old.num_rows if old is not None else 0)
        if old is not None and not self.in_order:
            # (kept by a step that assembled part: of one host, every line with its time)
            order = _in_order(old["flow"], one_clock(lines.iloc[: old.num_rows], clocks))[1]
        why = _whole_because(old, hops, self.bridges, self.whole, self.keyed, clocks.links)
        if old is not None and why is None:
            reached = self._reached(old, new, fine_clocked(lines.iloc[: old.num_rows], clocks.boot))
            taken = np.r_[order[reached[order]], np.arange(old.num_rows, hops.num_rows)]
            part = hops.take(pa.array(taken, pa.int64()))
            assembled = assemble(
                part, self.ruleset, links=links, clocks=clocks, bridges=self.bridges
            )
            kept = old.filter(pa.array(~reached))
            bridges = learned_bridges([kept, assembled.trace])
            if bridges is not None and bridges == self.bridges:
                self.reassembled += part.num_rows
                return self._keep(kept, assembled, clocks, whole=False)
            why = "the bridges' facts changed"
        self.why_whole[why or ""] += 1
        if old is not None:
            hops = hops.take(pa.array(np.r_[order, np.arange(old.num_rows, hops.num_rows)]))
        assembled = assemble(hops, self.ruleset, links=links, clocks=clocks)
        # keyed once the window may soon be worth assembling in part
        self.keyed = not self.whole and hops.num_rows >= SMALL_WINDOW // 2
        self.bridges = learned_bridges([assembled.trace]) if self.keyed else None
        self.reassembled += hops.num_rows
        self.steps_whole += 1
        return self._keep(_WINDOW_SCHEMA.empty_table(), assembled, clocks, whole=True)

    def _keys(self, trace: pa.Table, clocks: Clocks) -> list[pa.Array]:
        """What tells which of these hops new hops reach (``_KEPT`` after hook), null when
        the window is not keyed (too small to gain by it)."""
        if not self.keyed:
            return [pa.nulls(trace.num_rows, f.type) for f in _KEPT][2:]
        lines = to_frame(trace.select(["host", "ts", "uptime"]))
        local, cross = identity_texts(trace)
        # a packet's part on one pass (leg), numbered apart from every other in the window
        segment = pc.add(pc.multiply(trace["packet"], 64), trace["leg"])
        segment = pc.add(segment, self.segments)
        self.segments += 64 * (int(pc.max(trace["packet"]).as_py() or 0) + 1)
        return [
            tuple_nodes(trace),
            local,
            cross,
            pa.array(fine_clocked(lines, clocks.boot), pa.bool_()),
            segment,
        ]

    def _reached(self, old: pa.Table, new: pa.Table, fine: np.ndarray) -> np.ndarray:
        """Which rows of the window the new hops can reach (see the module's docstring)."""
        flows = old["flow"]
        # a kept connection with a line on the other side of FINE_CLOCK_SLACK now
        seeds = [pc.unique(flows.filter(pa.array(fine != old["fine"].to_numpy())))]
        new_nodes = tuple_nodes(new)  # those sharing a tuple with them: linked_by_tuples
        uptime = old["uptime"].to_numpy()
        new_uptime = new["uptime"].to_numpy()
        local, cross = identity_texts(new)
        alike = _open_alike(old, uptime, local, new_uptime, new["prefix"])
        seeds.append(pc.unique(flows.filter(pa.array(alike))))
        alike = _alike_since(old["cross"], uptime, cross, new_uptime)
        seeds.append(pc.unique(flows.filter(pa.array(alike))))
        chosen = pc.unique(pa.concat_arrays([_array(s) for s in seeds]))
        # and every connection sharing a tuple with a chosen one, until none is added
        coded = pc.dictionary_encode(_array(flows))
        flow = coded.indices.to_numpy(zero_copy_only=False)
        nodes = pc.dictionary_encode(pa.concat_arrays([_array(old["node"]), new_nodes]))
        node = nodes.indices.to_numpy(zero_copy_only=False)
        shown = np.zeros(len(nodes.dictionary), dtype=bool)
        shown[node[old.num_rows :]] = True  # the new hops' tuples
        seeded = pc.is_in(coded.dictionary, value_set=chosen).to_numpy(zero_copy_only=False)
        reached: np.ndarray = linked_by_tuples(flow, node[: old.num_rows], seeded, shown)[flow]
        return reached

    def _keep(
        self, kept: pa.Table, assembled: Assembled, clocks: Clocks, *, whole: bool
    ) -> Reassembled:
        """The window: the rows kept and the assembled connections' hops, in the order one
        assembly of them has them (its connections by first hop's time, then id); with what
        tells which of them new hops reach when ``self.keyed``."""
        trace = assembled.trace
        trace = trace.filter(pc.is_valid(trace["flow"]))  # a hop of no connection waits for none
        fresh = trace.select(HOP_COLUMNS).cast(_HOPS_SCHEMA)
        fresh = pa.Table.from_arrays(
            [*fresh.columns, trace["flow"], trace["hook"], *self._keys(trace, clocks)],
            schema=_WINDOW_SCHEMA,
        )
        self.in_order = whole
        if whole:  # as one assembly has them: nothing to merge
            self.rows = fresh
            return Reassembled(assembled, _connections(fresh), whole)
        # kept in the order they came (each connection's rows together): sorted when an
        # assembly takes them (a sort of every row at each step cost ~50 ms)
        rows = pa.concat_tables([kept, fresh])
        self.rows = rows.combine_chunks() if rows["flow"].num_chunks > MAX_CHUNKS else rows
        both = to_frame(self.rows.select(["host", "ts", "uptime"]))
        return Reassembled(
            assembled, _in_order(self.rows["flow"], one_clock(both, clocks))[0], whole
        )


# Fewer hops than this (window and new) are assembled whole: an assembly costs ~0.15 CPU-s
# whatever its size, ~40 µs a hop besides, and telling which connections new hops reach, and
# keeping what tells it, cost more than the hops left out (on the 200,000-line replay at 500
# lines/s, a window of ~190 hops: 0.179 CPU-s a step against 0.174 whole, 25.0 s against 21.9)
SMALL_WINDOW = 5_000

# Parts the window's table may be in before it is made one (each step adds one)
MAX_CHUNKS = 16


def _in_order(flow: pa.ChunkedArray, when: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The connections of these rows (each connection's rows together, in its order) and
    the rows, in the order one assembly has them (``Kept.numbered``): by the time of their
    first hop on the one clock (``when``, per row), then by id."""
    code = pc.dictionary_encode(flow).combine_chunks()
    of_row = code.indices.to_numpy()
    first = np.full(len(code.dictionary), np.inf)
    np.minimum.at(first, of_row, when)
    ranked = pc.sort_indices(
        pa.table({"start": first, "flow": code.dictionary}),
        [("start", "ascending"), ("flow", "ascending")],
    ).to_numpy()
    rank = np.empty(len(ranked), dtype=np.int64)
    rank[ranked] = np.arange(len(ranked))
    rows = np.argsort(rank[of_row], kind="stable")
    ids: list[str] = code.dictionary.take(pa.array(ranked)).to_pylist()
    return ids, rows


def _connections(rows: pa.Table) -> list[str]:
    """The connections of the window's rows, in their order (each one's rows together)."""
    if not rows.num_rows:
        return []
    flow = rows["flow"].combine_chunks()
    heads = np.r_[True, pc.not_equal(flow[1:], flow[:-1]).to_numpy(zero_copy_only=False)]
    opened: list[str] = flow.filter(pa.array(heads)).to_pylist()
    return opened


def _array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _whole_because(
    old: pa.Table | None,
    hops: pa.Table,
    bridges: Bridges | None,
    whole: bool,
    keyed: bool,
    links: frozenset[tuple[str, str]] | None,
) -> str | None:
    """Why the window is to be assembled whole with ``hops``, None when it need not be
    (``links``: the pairs of hosts packets were seen to cross, as learned with them)."""
    if whole:
        return "asked"
    if old is None:
        return "the first hops"
    if hops.num_rows < SMALL_WINDOW:
        return "a small window"
    if hops.num_rows > CHUNK_HOPS:
        return "more hops than a chunk"
    if not keyed:
        return "the window was small: its keys are made now"
    if bridges is None:
        return "the bridges' facts hang on a tie"
    host = hops["host"]
    if hops["ts"].null_count or hops["uptime"].null_count:
        return "a hop without a time or an uptime"
    if host.null_count:
        return "a hop of no named host"
    # Hosts no packet crosses share no packet and no connection (``Clocks.linked``): each
    # one's connections are assembled as if it were alone, and a boot time learned again
    # moves only its own hops. Hosts packets cross are placed against each other by the
    # offset learned again at each step, which moves every hop of one against the other's.
    names = set(pc.unique(host.cast(pa.string())).to_pylist())
    if links is None or any(a in names and b in names for a, b in links):
        return "several hosts packets cross" if len(names) > 1 else None
    return None


def _alike_since(
    column: pa.ChunkedArray, uptime: np.ndarray, texts: pa.Array, new_uptime: np.ndarray
) -> np.ndarray:
    """Per window hop: alike in ``column`` with a new hop (``texts``) and logged at most
    MAX_HOP_GAP before the earliest new hop alike, or after it."""
    found, index, earliest = _alike(column, texts, new_uptime)
    near: np.ndarray = found & (uptime >= earliest[index] - MAX_HOP_GAP)
    return near


def _alike(
    column: pa.ChunkedArray, texts: pa.Array, new_uptime: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window hop, whether it is alike in ``column`` with a new hop (``texts``) and the
    number of that text among the new hops'; per text, the earliest new hop's uptime."""
    distinct = pc.unique(texts)
    of_new = pc.index_in(texts, value_set=distinct).to_numpy()
    earliest = np.full(len(distinct), np.inf)
    np.minimum.at(earliest, of_new, new_uptime)
    at = pc.index_in(column, value_set=distinct)
    found = pc.is_valid(at).to_numpy(zero_copy_only=False)
    index = at.fill_null(0).to_numpy(zero_copy_only=False)
    return found, index, earliest


def _open_alike(
    old: pa.Table, uptime: np.ndarray, texts: pa.Array, new_uptime: np.ndarray, prefix: pa.Array
) -> np.ndarray:
    """Per window hop: in a packet that may take a new hop alike on its host (pass 1): one
    whose hops alike reach within MAX_HOP_GAP before the earliest new hop alike and that was
    not logged at every prefix those new hops show; or logged after that new hop."""
    found, index, earliest = _alike(old["local"], texts, new_uptime)
    after = found & (uptime >= earliest[index])
    near = found & (uptime >= earliest[index] - MAX_HOP_GAP)
    # the prefixes the new hops of each text show (text number, prefix), as one number each
    prefixes = pc.dictionary_encode(
        pa.concat_arrays(
            [_array(pc.cast(prefix, pa.string())), _array(old["prefix"].cast(pa.string()))]
        )
    )
    codes = pc.fill_null(prefixes.indices, -1).to_numpy(zero_copy_only=False) + 1
    new_code, old_code = codes[: len(texts)], codes[len(texts) :]
    width = len(prefixes.dictionary) + 1
    distinct = pc.unique(texts)
    of_new = pc.index_in(texts, value_set=distinct).to_numpy()
    shown = np.unique(of_new * width + new_code)
    needed = np.bincount(shown // width, minlength=len(distinct))  # prefixes per text
    # per segment near a new hop alike: the prefixes it was logged at among those
    rows = np.flatnonzero(near)
    segment = old["segment"].to_numpy()[rows]
    pair = index[rows] * width + old_code[rows]
    logged = np.isin(pair, shown)
    # each segment is of one text: it needs that text's prefixes all logged to be done
    segments, first = np.unique(segment, return_index=True)
    needs = needed[index[rows][first]]
    logged_pairs = np.unique(np.stack([segment[logged], pair[logged]]), axis=1)
    with_some, counts = np.unique(logged_pairs[0], return_counts=True)
    has = np.zeros(len(segments), dtype=np.int64)
    has[np.searchsorted(segments, with_some)] = counts
    done = segments[has >= needs]
    open_rows = rows[~np.isin(segment, done)]
    reached: np.ndarray = after.copy()
    reached[open_rows] = True
    return reached
