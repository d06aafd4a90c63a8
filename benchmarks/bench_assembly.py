"""Assembly benchmark (issue 10, point 2): the whole trace of a store's hops, stage by stage.

Reads every hop of a store (``Store(path).read_hops()``) and runs what ingest will run once:
``trace_hops`` (hooks, packets, guessed-hook refinement, flows, bridge roles), then
``summarise_flows`` and ``packet_fates``; prints the seconds of each stage and hops/s.

With ``--check FILE`` it writes a canonical digest of the outputs to FILE (the flows as JSON,
then per hop in trace order: source, lineno, packet, flow, direction, hook, nat_mark, role and
the packet's fate), or, when FILE exists, compares against it: an optimisation must change
nothing. ``--profile FILE`` writes cProfile statistics of the whole trace.

With ``--chunk`` it runs what ``assembly.trace_chunk`` runs on one chunk of every hop, stage by
stage, as ingest does: the hops as ``_frame`` makes them (the pipeline's columns), the tuples kept
for the summaries, the fates found once and given to ``summarise``, then the journeys' marks
(no ``Flow`` records: they are made for the digest, outside the stages), without the cyclic
garbage collector (``runtime.without_cyclic_gc``, as ``assemble_store`` runs them). Its digest
is the same as without ``--chunk``, so either mode checks the other's.

The store is only read: the clocks are learned from its hops here (``learn_clocks``, as the
assembly does), not taken from ``logpath.query.store_clocks``, which assembles the store and
writes the result into it when it has not been assembled yet.

    .venv/bin/python benchmarks/bench_assembly.py STORE [--chunk] [--check FILE] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from logpath.assembly import _frame, with_journey_marks
from logpath.bridge import assign_roles
from logpath.clocks import CLOCK_COLUMNS, Clocks, learn_clocks
from logpath.fates import packet_fates
from logpath.flows import assign_flows
from logpath.hooks import resolve_hooks
from logpath.packets import group_packets, refine_guessed_hooks
from logpath.query import store_ruleset
from logpath.runtime import without_cyclic_gc
from logpath.store import Store
from logpath.summaries import flows_from_table, summarise, summarise_flows

# Per hop, what the digest records (fate comes from packet_fates, per packet).
DIGEST_COLUMNS = ["source", "lineno", "packet", "flow", "direction", "hook", "nat_mark", "role"]


@contextmanager
def stage(name: str, times: dict[str, tuple[float, float]]) -> Iterator[None]:
    """Add the wall and CPU seconds of the block to ``times[name]`` (CPU time is the steadier
    figure on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    was_wall, was_cpu = times.get(name, (0.0, 0.0))
    times[name] = (was_wall + time.perf_counter() - wall, was_cpu + time.process_time() - cpu)


def hop_clocks(store: Store) -> Clocks:
    """The hosts' boot times and clock offsets learned from all the store's hops (read only)."""
    lines = store.read_hops(columns=["host", "ts", "uptime"])
    shared = lines.iloc[:0]
    if lines["host"].nunique() > 1:
        shared = store.read_hops(ds.field("id") != 0, CLOCK_COLUMNS)
    return learn_clocks(lines, shared)


def trace(
    store: Store, times: dict[str, tuple[float, float]]
) -> tuple[pd.DataFrame, list[Any], pd.DataFrame]:
    """The stages of ``journeys.trace_hops`` one by one, then the summaries and fates."""
    with stage("read", times):
        hops = store.read_hops()
        ruleset = store_ruleset(store)
        clocks = hop_clocks(store)
    with stage("resolve_hooks", times):
        resolved = resolve_hooks(hops, ruleset)
        where = [c for c in ("table", "chain", "hook", "evidence") if c in resolved.columns]
        resolved = resolved.astype(dict.fromkeys(where, "object"))
    with stage("group_packets", times):
        packets = group_packets(resolved, clocks)
    with stage("refine_guessed_hooks", times):
        packets = refine_guessed_hooks(packets)
    with stage("assign_flows", times):
        flows = assign_flows(packets)
    with stage("assign_roles", times):
        traced = assign_roles(flows)
    with stage("summarise_flows", times):
        summaries = summarise_flows(traced)
    with stage("packet_fates", times):
        fates = packet_fates(traced)
    return traced, summaries, fates


def trace_as_chunk(
    store: Store, times: dict[str, tuple[float, float]]
) -> tuple[pd.DataFrame, list[Any], pd.DataFrame]:
    """The stages of ``assembly.trace_chunk`` one by one, on all the store's hops."""
    with stage("read", times):
        table = store.read_table()
        ruleset = store_ruleset(store)
        clocks = hop_clocks(store)
        hops = _frame(table, np.arange(table.num_rows, dtype=np.int64))
    with without_cyclic_gc():
        with stage("resolve_hooks", times):
            resolved = resolve_hooks(hops, ruleset)
        with stage("group_packets", times):
            packets = group_packets(resolved, clocks)
        with stage("refine_guessed_hooks", times):
            packets = refine_guessed_hooks(packets)
        with stage("assign_flows", times):
            flows = assign_flows(packets, keep_tuples=True)
        with stage("assign_roles", times):
            traced = assign_roles(flows)
        with stage("packet_fates", times):
            fates = packet_fates(traced)
        with stage("summarise", times):
            summary = summarise(traced, fates=fates)
        with stage("with_journey_marks", times):
            marked = with_journey_marks(traced, summary.nat, fates)
    return marked, flows_from_table(summary.table), fates


def digest_lines(traced: pd.DataFrame, summaries: list[Any], fates: pd.DataFrame) -> Iterator[str]:
    """The canonical text of the outputs, one line per flow and per hop."""
    for flow in summaries:
        yield json.dumps(flow.to_json(), sort_keys=True, default=str)
    fate = fates["fate"].reindex(traced["packet"]).to_numpy()
    columns = [traced[c].astype("object").tolist() for c in DIGEST_COLUMNS]
    for *row, packet_fate in zip(*columns, fate.tolist(), strict=True):
        yield json.dumps([None if pd.isna(v) else v for v in (*row, packet_fate)], default=str)


def check(path: Path, lines: Iterator[str]) -> bool:
    """Write the digest to ``path``, or compare with it; True when it is the same."""
    text = "".join(line + "\n" for line in lines)
    if not path.exists():
        path.write_text(text)
        print(f"digest written to {path} ({hashlib.sha256(text.encode()).hexdigest()[:16]})")
        return True
    kept = path.read_text()
    if kept == text:
        print(f"digest identical to {path} ({hashlib.sha256(text.encode()).hexdigest()[:16]})")
        return True
    old, new = kept.splitlines(), text.splitlines()
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    print(f"digest DIFFERS from {path}: {len(old)} vs {len(new)} lines", file=sys.stderr)
    if first is not None:
        print(f"  first difference at line {first + 1}:\n  - {old[first]}\n  + {new[first]}")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--check", type=Path, help="write, or compare with, the output digest")
    parser.add_argument("--profile", type=Path, help="write cProfile statistics here")
    parser.add_argument("--chunk", action="store_true", help="the stages as trace_chunk runs them")
    args = parser.parse_args(argv)
    times: dict[str, tuple[float, float]] = {}
    store = Store(args.store)
    stages = trace_as_chunk if args.chunk else trace
    run: Callable[[], tuple[pd.DataFrame, list[Any], pd.DataFrame]] = lambda: stages(store, times)  # noqa: E731
    if args.profile:
        profiler = cProfile.Profile()
        traced, summaries, fates = profiler.runcall(run)
        profiler.dump_stats(args.profile)
    else:
        traced, summaries, fates = run()
    wall = sum(w for k, (w, _) in times.items() if k != "read")
    cpu = sum(c for k, (_, c) in times.items() if k != "read")
    print(f"{'stage':22} {'wall s':>8} {'CPU s':>8}")
    for name, (stage_wall, stage_cpu) in times.items():
        print(f"{name:22} {stage_wall:8.2f} {stage_cpu:8.2f}")
    print(f"{'assembly (no read)':22} {wall:8.2f} {cpu:8.2f}  {len(traced):,} hops  "
          f"{len(traced) / cpu:,.0f} hops per CPU-s  {len(summaries):,} flows")  # fmt: skip
    if args.check and not check(args.check, digest_lines(traced, summaries, fates)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
