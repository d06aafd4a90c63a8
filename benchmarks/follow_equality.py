"""Follow's equality harness (issue 12): the same lines, in the same steps, to two followers.

One follower assembles its whole window of open connections at every step (``window=
"whole"``, follow as it was); the other only the connections the new hops can touch
(``window="touched"``). Each is given its own copy of the log, appended ``--step-lines`` lines
at a time, and its own store; both run on one made-up clock that advances by the time those
lines take at ``--rate`` lines/s, so both see the same polls, the same idle ends and the same
commits. After every step the events printed (``Event.to_json()`` and where the last hop was
logged) must be equal, in order. At the end each store is compared with a one-shot ingest of
the lines: the flows and trace tables, ``Table.equals``.

Per step it notes the CPU seconds (``time.process_time``) each follower took and the hops of
its window, which is what ``--profile`` prints for one follower alone.

    python benchmarks/follow_equality.py samples/lab/dnat.log samples/lab/c2c.log --step-lines 3
    python benchmarks/follow_equality.py /tmp/dense.log --lines 200000 --step-lines 20000
    python benchmarks/follow_equality.py /tmp/dense.log --profile touched --lines 400000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import logpath.window
from logpath.follow import Event, Follower
from logpath.ingest import ingest
from logpath.store import Store

WINDOWS = ("whole", "touched")
LOG_NAME = "kern.log"


class Clock:
    """The made-up clock both followers run on."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """One follower, its log and what it printed and spent, step by step."""

    window: str
    log: Path
    store: Store
    follower: Follower
    cpu: list[float] = field(default_factory=list)
    window_hops: list[int] = field(default_factory=list)
    events: int = 0

    def step(self, lines: list[str]) -> list[dict[str, object]]:
        if lines:
            with self.log.open("a") as handle:
                handle.writelines(lines)
        started = time.process_time()
        events = self.follower.step()
        self.cpu.append(time.process_time() - started)
        self.window_hops.append(self.follower.window_hops())
        self.events += len(events)
        return [printed(e) for e in events]


def printed(event: Event) -> dict[str, object]:
    """What follow prints of an event (``--json``), with the last hop the table shows."""
    return {**event.to_json(), "last_hop": event.last_hop}


def batches(lines: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(lines), size):
        yield lines[start : start + size]


def one_shot(lines: list[str], work: Path, year: int | None) -> Store:
    (work / "one-shot").mkdir()
    log = work / "one-shot" / LOG_NAME
    log.write_text("".join(lines))
    store = Store(work / "one-shot" / "store")
    ingest([str(log)], store, year=year)
    return store


def tables_differ(store: Store, expected: Store) -> list[str]:
    """The assembled tables of ``store`` that are not ``expected``'s (flows, trace; the
    trace's ``source``, each hop's file, is each run's own path)."""
    differ = []
    for kind in ("flows", "trace"):
        mine, theirs = store.assembled_rows(kind), expected.assembled_rows(kind)
        assert mine is not None and theirs is not None
        ours, others = mine.read(), theirs.read()
        if kind == "trace":
            ours, others = ours.drop_columns(["source"]), others.drop_columns(["source"])
        if not ours.equals(others):
            differ.append(kind)
    return differ


def first_difference(a: list[dict[str, object]], b: list[dict[str, object]]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            keys = sorted(k for k in {*x, *y} if x.get(k) != y.get(k))
            shown = {k: (x.get(k), y.get(k)) for k in keys}
            return f"event {i} ({x.get('id')} / {y.get('id')}): {json.dumps(shown, default=str)}"
    return f"{len(a)} events against {len(b)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="log files, read one after another")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="the files are hosts' logs of one time: their lines in order of their stamps",
    )
    parser.add_argument("--lines", type=int, default=0, help="only the first N lines")
    parser.add_argument("--step-lines", type=int, default=50, help="lines appended per step")
    parser.add_argument("--rate", type=float, default=1_000, help="lines/s the clock runs at")
    parser.add_argument("--year", type=int, default=None, help="for RFC 3164 stamps")
    parser.add_argument("--idle-steps", type=int, default=3, help="empty steps at the end")
    parser.add_argument("--profile", choices=WINDOWS, help="run only this follower, no checks")
    parser.add_argument("--no-store", action="store_true", help="skip the stores' comparison")
    parser.add_argument("--per-step", action="store_true", help="print each step's CPU-s")
    parser.add_argument(
        "--small-window", type=int, help="logpath.window.SMALL_WINDOW (0: every window in part)"
    )
    args = parser.parse_args()
    if args.small_window is not None:
        logpath.window.SMALL_WINDOW = args.small_window
    lines = [line for path in args.inputs for line in path.read_text().splitlines(True)]
    if args.merge:  # RFC 3164 stamps ("Nov 25 20:15:02") of one month sort as text
        lines.sort(key=lambda line: line[:15])
    if args.lines:
        lines = lines[: args.lines]
    work = Path(tempfile.mkdtemp(prefix="follow-equality-", dir="/tmp"))
    clock = Clock()
    windows = [args.profile] if args.profile else list(WINDOWS)
    runs: list[Run] = []
    for window in windows:
        (work / window).mkdir()
        log = work / window / LOG_NAME
        log.touch()
        store = Store(work / window / "store")
        follower = Follower([str(log)], store, year=args.year, clock=clock, window=window)
        runs.append(Run(window, log, store, follower))
    for run in runs:
        run.follower.__enter__()
    steps = list(batches(lines, args.step_lines)) + [[]] * args.idle_steps
    differences = 0
    try:
        for number, batch in enumerate(steps):
            clock.now += max(len(batch), 1) / args.rate
            printed_by = [run.step(batch) for run in runs]
            if len(runs) == 2 and printed_by[0] != printed_by[1]:
                differences += 1
                if differences <= 5:
                    print(f"step {number}: " + first_difference(*printed_by), file=sys.stderr)
        clock.now += 3_600.0  # every connection idle past its timeout: all end
        printed_by = [run.step([]) for run in runs]
        if len(runs) == 2 and printed_by[0] != printed_by[1]:
            differences += 1
            print("last step: " + first_difference(*printed_by), file=sys.stderr)
    finally:
        for run in runs:
            run.follower.__exit__(None, None, None)
    for run in runs:
        cpu = run.cpu[: len(steps)]
        busy = [c for c, b in zip(cpu, steps, strict=True) if b]
        print(
            f"{run.window}: {len(steps)} steps of {args.step_lines:,} lines, "
            f"{run.events:,} events; CPU-s per step median {statistics.median(busy):.3f}, "
            f"max {max(busy):.3f}, total {sum(cpu):.1f}; window hops median "
            f"{statistics.median(run.window_hops):,.0f}, max {max(run.window_hops):,}"
        )
        window = run.follower.window
        print(
            f"  steps that assembled the whole window: {window.steps_whole:,} of "
            f"{window.steps:,} ({dict(window.why_whole)}); hops assembled, all steps: "
            f"{window.reassembled:,}"
        )
    if args.per_step or args.profile:
        print("step  window hops (before it)  " + "  ".join(f"{r.window} CPU-s" for r in runs))
        for i in range(len(steps) + 1):
            before = runs[0].window_hops[i - 1] if i else 0
            print(f"{i:4}  {before:>22,}  " + "  ".join(f"{r.cpu[i]:>11.3f}" for r in runs))
    if args.profile:
        return 0
    print(f"steps whose events differ: {differences} of {len(steps) + 1}")
    failed = differences > 0
    if not args.no_store:
        expected = one_shot(lines, work, args.year)
        for run in runs:
            differ = tables_differ(run.store, expected)
            print(
                f"{run.window} store against a one-shot ingest: "
                + (f"{', '.join(differ)} differ" if differ else "flows and trace equal")
            )
            failed |= bool(differ)
    print("EQUAL" if not failed else "DIFFERENT")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
