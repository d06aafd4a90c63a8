"""Follow benchmark: `logpath follow FILE --json` while a writer appends replayed lines to FILE.

The lines are replay_syslog.py's (the lab's genuine captures replayed as a Docker host's
syslog, ~40% other daemons' lines). A writer thread appends them at ``--rate`` lines/s, in
batches every 10 ms, and notes when each line was written; a reader thread notes when each
event was printed. The latency of a connection is from the write of its first line to the print
of its "new" event (the first line is found by the connection's orig tuple). The follower's
memory (VmRSS, with its worker process's) is sampled every half second. When the writer is
done, follow is given until it printed nothing for 5 s, then stopped with SIGINT; its summary
line says what it read.

    .venv/bin/python benchmarks/bench_follow.py [--input FILE] [--lines N] [--rate R]
        [--pause-every N --pause S]   (the writer pauses: follow assembles its store then)
        [--periods N]   (latency over N spans of the writing: a long run's stalls)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CLI = [sys.executable, "-c", "from logpath.cli import main; main()"]
TUPLE = re.compile(r"SRC=(\S+) DST=(\S+) .*?PROTO=(\w+)(?: SPT=(\d+) DPT=(\d+))?")


def replayed(lines: int) -> Path:
    """The replayed syslog of ``lines`` lines (written by replay_syslog.py when missing)."""
    path = OUT / f"replay-{lines}-s1.log"
    if not path.exists():
        OUT.mkdir(exist_ok=True)
        script = HERE / "replay_syslog.py"
        subprocess.run([sys.executable, str(script), str(path), "--lines", str(lines)], check=True)
    return path


class Writer(threading.Thread):
    """Appends the first ``count`` lines of ``source`` at a steady rate, noting when each was
    written (read as they are written: a long run's file does not fit in memory)."""

    def __init__(
        self,
        path: Path,
        source: Path,
        count: int,
        rate: float,
        pause_every: int = 0,
        pause: float = 0.0,
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.source, self.count, self.rate = path, source, count, rate
        self.pause_every, self.pause = pause_every, pause
        self.written = array("d", [0.0]) * count
        self.done = 0

    def run(self) -> None:
        start = time.monotonic()
        paused = 0.0  # seconds the writer paused so far
        with self.source.open() as lines, self.path.open("a") as handle:
            while self.done < self.count:
                due = int((time.monotonic() - start - paused) * self.rate) + 1
                due = min(self.count, due)
                if self.pause_every:  # a pause after every pause_every lines
                    due = min(due, (self.done // self.pause_every + 1) * self.pause_every)
                if due > self.done:
                    handle.writelines(itertools.islice(lines, due - self.done))
                    handle.flush()
                    now = time.monotonic()
                    for i in range(self.done, due):
                        self.written[i] = now
                    self.done = due
                    if self.pause_every and due % self.pause_every == 0 and due < self.count:
                        time.sleep(self.pause)
                        paused += self.pause
                time.sleep(0.01)


class Printed(threading.Thread):
    """Reads follow's JSON lines as they come: when each "new" event came, and its tuple (only
    those are parsed: the others are counted)."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.new: list[tuple[float, tuple[str, ...]]] = []
        self.count = 0
        self.last = 0.0  # when the last event came

    def run(self) -> None:
        for line in self.stream:  # type: ignore[attr-defined]
            self.last = time.monotonic()
            self.count += 1
            if '"new"' not in line:
                continue
            event = json.loads(line)
            if event["event"] == "new":
                orig = event["orig"]
                key = (
                    str(event["proto"]),
                    orig["src"],
                    str(orig["sport"] or ""),
                    orig["dst"],
                    str(orig["dport"] or ""),
                )
                self.new.append((self.last, key))


def line_count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 22), b""))


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU seconds so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:  # a child that ended
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (follow's worker, which assembles the store)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_rss_mib(pid: int) -> float:
    """VmRSS of follow and of the processes it started."""
    return rss_mib(pid) + sum(rss_mib(child) for child in children(pid))


def children_cpu_seconds(pid: int) -> float:
    """CPU seconds of the processes ``pid`` started, those running and those it waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    waited = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    running = 0.0
    for child in children(pid):
        with contextlib.suppress(OSError):  # a child that ended
            running += cpu_seconds(child)
    return waited + running


def first_lines(source: Path, count: int) -> dict[tuple[str, ...], list[int]]:
    """Per tuple (proto, src, sport, dst, dport), the lines that show it, in order."""
    found: dict[tuple[str, ...], list[int]] = {}
    with source.open() as lines:
        for i, line in enumerate(itertools.islice(lines, count)):
            match = TUPLE.search(line)
            if match:
                src, dst, proto, sport, dport = match.groups()
                key = (proto.lower(), src, sport or "", dst, dport or "")
                found.setdefault(key, []).append(i)
    return found


def latencies(
    new: list[tuple[float, tuple[str, ...]]], source: Path, count: int, writer: Writer
) -> list[tuple[float, float]]:
    """When each shown connection's first line was written, and the seconds from that write
    to its "new" event."""
    shown_by_tuple = first_lines(source, count)
    used: dict[tuple[str, ...], int] = {}
    seconds: list[tuple[float, float]] = []
    for printed, key in new:
        # its first line: the first of its tuple's written lines after the ones an earlier
        # connection of the same tuple showed
        shown = [i for i in shown_by_tuple.get(key, []) if 0 < writer.written[i] <= printed]
        fresh = [i for i in shown if i > used.get(key, -1)]
        if fresh:
            seconds.append((writer.written[fresh[0]], printed - writer.written[fresh[0]]))
            used[key] = shown[-1]
    return seconds


def by_periods(
    timed: list[tuple[float, float]], started: float, wrote: float, periods: int
) -> list[str]:
    """The latencies' median, p90 and max over each of ``periods`` equal spans of the writing
    (a stall, such as the store's assembly in a run that never pauses, shows in its max)."""
    parts = []
    for period in range(periods):
        low = started + wrote * period / periods
        high = started + wrote * (period + 1) / periods if period < periods - 1 else float("inf")
        waits = sorted(wait for at, wait in timed if low <= at < high)
        if waits:
            span = f"{wrote * period / periods:.0f}-{wrote * (period + 1) / periods:.0f} s"
            median, p90 = statistics.median(waits), waits[int(len(waits) * 0.9)]
            parts.append(f"{span} {median:.2f}, {p90:.2f}, {waits[-1]:.2f}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, help="a syslog file (default: replayed lines)")
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=2_000, help="lines written per second")
    parser.add_argument("--limit", type=int, default=0, help="write only this many lines")
    parser.add_argument("--pause-every", type=int, default=0, help="pause after every N lines")
    parser.add_argument("--pause", type=float, default=6.0, help="seconds of each pause")
    parser.add_argument(
        "--store-from", type=Path, help="a store to follow on (copied): a store grown for hours"
    )
    parser.add_argument(
        "--periods", type=int, default=3, help="latency reported over this many spans of time"
    )
    args = parser.parse_args()
    source = args.input or replayed(args.lines)
    count = line_count(source)
    if args.limit:
        count = min(count, args.limit)
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    log = work / "kern.log"
    log.touch()
    if args.store_from:
        shutil.copytree(args.store_from, work / "store")
    follow = subprocess.Popen(
        [*CLI, "follow", str(log), "--store", str(work / "store"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stderr is not None
    follow.stderr.readline()  # "reading ...": it is following
    printed = Printed(follow.stdout)
    printed.start()
    writer = Writer(log, source, count, args.rate, args.pause_every, args.pause)
    started = time.monotonic()
    writer.start()
    memory: list[tuple[float, float]] = []
    own: list[float] = []  # follow's process alone
    cpu_at_start = cpu_seconds(follow.pid)
    cpu_while_written = 0.0  # follow's CPU while the writer wrote
    worker_cpu = 0.0  # its worker's (the store's assembly, on the other core)
    while writer.is_alive() or time.monotonic() - max(writer.written[-1], printed.last) < 5:
        memory.append((time.monotonic() - started, tree_rss_mib(follow.pid)))
        own.append(rss_mib(follow.pid))
        if writer.is_alive():
            cpu_while_written = cpu_seconds(follow.pid) - cpu_at_start
            worker_cpu = children_cpu_seconds(follow.pid)
        time.sleep(0.5)
    follow.send_signal(signal.SIGINT)
    summary = follow.stderr.read().strip()
    follow.wait()
    wrote = writer.written[-1] - started
    timed = latencies(printed.new, source, count, writer)
    waits = sorted(wait for _, wait in timed)
    report = [
        f"lines written: {count:,} in {wrote:.1f} s ({count / wrote:,.0f} lines/s)",
        f"follow: {summary}",
        # a follower that keeps up uses less than a core (it is one thread): its headroom
        f"follow's CPU while the writer wrote: {cpu_while_written:.1f} CPU-s in {wrote:.1f} s "
        f"({cpu_while_written / wrote:.2f} of a core); its worker's {worker_cpu:.1f} CPU-s",
        f"events printed: {printed.count:,}",
        "latency write -> new event (s): "
        + (
            f"median {statistics.median(waits):.2f}, p90 {waits[int(len(waits) * 0.9)]:.2f}, "
            f"max {waits[-1]:.2f} over {len(waits):,} connections"
            if waits
            else "no connection shown"
        ),
        # whether follow keeps up: a follower behind its writers waits longer and longer
        "latency by when the line was written (median, p90, max): "
        + "; ".join(by_periods(timed, started, wrote, args.periods)),
        "follow's memory (VmRSS with its worker's, MiB) by time: "
        + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in memory[:: max(1, len(memory) // 12)]),
        f"memory peak {max(m for _, m in memory):.0f} MiB, last {memory[-1][1]:.0f} MiB "
        f"(follow's process alone: peak {max(own):.0f} MiB)",
    ]
    print("\n".join(report))


if __name__ == "__main__":
    main()
