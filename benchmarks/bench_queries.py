"""Query benchmark (issue 10): each question of issue 10's table on the 2M-line replayed store.

Generates benchmarks/out/replay-<lines>-s<seed>.log with replay_syslog.py if missing (lab
captures replayed: ~97,000 connections, about half of them to port 12580), ingests it into
benchmarks/out/store-replay-<lines>-s<seed> (measured: the baseline issue 10's ingest with
assembly is held to), then measures as subprocesses, --runs times each (the median is the
figure; the machine is shared):

  * `logpath journey ID` of a 2-packet connection (a DNS query and its answer),
  * `logpath flows --since T --until T+20s` in the file's busiest 20 seconds,
  * `logpath flows --port 12580` (about 50,000 connections),
  * `logpath flows --all --json` (every connection),
  * `logpath report --since A --until B` over about 1,000 connections,

each with the count it printed next to the generator's truth (OUT.meta.json), wall and CPU
time, and peak memory (largest process and whole process tree). Every command runs under
`timeout`: one that takes longer than --timeout seconds is stopped and recorded as such, and
not run again, unless --retry-timeout gives it one more run with a longer limit (on a loaded
machine). Writes benchmarks/results/queries-latest.md.

    .venv/bin/python benchmarks/bench_queries.py [--lines 2000000] [--seed 1] [--runs 3]
        [--timeout 300] [--retry-timeout 1500] [--reuse-store] [--rules]

With --rules the file is ingested with the replayed host's ruleset (the packets judged at
ingest: issue 11 asks `flows --port` to stay under 2 s so) into a store of its own, and the
results go to queries-rules-latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    OUT_DIR,
    RESULTS_DIR,
    Measurement,
    has_command,
    logpath_executable,
    machine,
    mib,
    publish,
    run_measured,
)
from replay_syslog import SERVICE_PORT, host_ruleset, write_replay

TIMED_OUT = 124  # timeout(1)'s exit status when it stopped the command
GIB = 1024 * 1024  # KiB
REPORT_DIR = OUT_DIR / "report-replay"


@dataclass(frozen=True, slots=True)
class Question:
    """One row of issue 10's table: the command, what the truth says it finds, the target."""

    label: str
    arguments: list[str]
    truth: int | None
    target_seconds: float
    target_kb: int = 3 * GIB // 2
    by_port: dict[str, int] | None = None  # the truth per protocol/port, to check a JSON list


@dataclass(frozen=True, slots=True)
class Answer:
    """A question's measured runs and the count the last one printed (None: none parsed)."""

    question: Question
    runs: list[Measurement]
    found: int | None
    note: str = ""

    @property
    def completed(self) -> list[Measurement]:
        """The runs that finished (exit 0)."""
        return [m for m in self.runs if m.returncode == 0]

    @property
    def timed_out(self) -> bool:
        """Whether no run finished because the timeout stopped them."""
        return not self.completed and self.runs[-1].returncode == TIMED_OUT

    @property
    def median(self) -> Measurement:
        """The finished run of median wall time (the last run if none finished)."""
        ordered = sorted(self.completed or self.runs[-1:], key=lambda m: m.wall_seconds)
        return ordered[len(ordered) // 2]


def ensure_replay(lines: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The replayed file for (lines, seed) and its truth, written once and reused."""
    path = OUT_DIR / f"replay-{lines}-s{seed}.log"
    meta = Path(f"{path}.meta.json")
    if not path.exists() or not meta.exists():
        print(f"generating {path} ...", flush=True)
        write_replay(path, lines, seed)
    truth: dict[str, Any] = json.loads(meta.read_text())
    return path, truth


def ensure_rules(path: Path) -> Path:
    """The replayed host's ruleset beside the file (written when missing)."""
    rules = path.with_suffix(".rules")
    if not rules.exists():
        rules.write_text(host_ruleset())
    return rules


def judged(store: Path) -> str:
    """What the ruleset made of the packets: the dropped and lost counts of every connection
    (an answered connection should have neither)."""
    listed = run_measured([logpath_executable(), "flows", "--json", "--store", str(store)])
    flows = json.loads(listed.stdout) if listed.returncode == 0 else []
    dropped = sum(f["dropped"] for f in flows)
    lost = sum(f["lost"] for f in flows)
    answered = sum(1 for f in flows if f["answered"] and (f["dropped"] or f["lost"]))
    return (
        f"{dropped:,} packets dropped, {lost:,} lost, {answered:,} answered connections with either"
    )


def checkout() -> str:
    """The commit measured, and whether logpath's code differs from it (an editable install
    runs the working tree, which others may be editing)."""
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%h %cI"], capture_output=True, text=True
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--", "logpath", "grammars"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return f"{head or 'unknown'}" + (
        f", with {len(changed)} file(s) of logpath/ and grammars/ changed in the working tree"
        if changed
        else ""
    )


def timed(command: list[str], seconds: float) -> Measurement:
    """`command` measured, under timeout(1): TERM after `seconds`, KILL 10 s later."""
    return run_measured(["timeout", "-k", "10", str(seconds), *command])


def ingest(
    path: Path, store: Path, truth: dict[str, Any], seconds: float, rules: Path | None = None
) -> tuple[str, str]:
    """Ingest the file into a fresh store (with the ruleset ``rules``), measured; its table row
    and the counts' check."""
    shutil.rmtree(store, ignore_errors=True)
    given = ["--rules", str(rules)] if rules else []
    command = [logpath_executable(), "ingest", str(path), *given, "--store", str(store), "--json"]
    m = timed(command, seconds)
    if m.returncode != 0:
        raise SystemExit(f"logpath ingest failed (exit {m.returncode}):\n{m.stderr[-2000:]}")
    counts = json.loads(m.stdout)
    expected = {
        "hops": truth["netfilter_lines"],
        "rejected": 0,
        "skipped": truth["other_lines"],
    }
    check = ", ".join(
        f"{key} {counts.get(key)!r}"
        + ("" if counts.get(key) == value else f" (truth {value:,}: DIFFERENT)")
        for key, value in expected.items()
    )
    row = (
        f"| `ingest FILE{' --rules RULES' if rules else ''} --json` | {m.wall_seconds:.2f} "
        f"| {m.wall_seconds:.2f} | "
        f"{m.cpu_seconds:.2f} | {mib(m.max_rss_kb)} | {mib(m.tree_peak_kb)} "
        f"| {m.load_before:.2f} | {counts.get('hops', 0):,} hops | "
        f"{truth['netfilter_lines']:,} | baseline (issue 10: with assembly <= 1.5x this) |"
    )
    return row, check


def two_packet_flow(store: Path, truth: dict[str, Any]) -> tuple[str | None, str]:
    """The id logpath gives the 2-packet connection the truth names, found with a narrow
    `flows` question (not measured)."""
    wanted = truth["two_packet_connection"]
    port = str(wanted["client_port"])
    window = ["--since", wanted["since"], "--until", wanted["until"]]
    command = [logpath_executable(), "flows", "--port", port, *window, "--store", str(store)]
    listed = run_measured([*command, "--json"])
    if listed.returncode != 0:
        return None, f"`flows --port {port}` failed: {listed.stderr.strip()[-300:]}"
    for flow in json.loads(listed.stdout):
        if flow["orig"]["sport"] == wanted["client_port"] and flow["orig"]["dport"] == int(
            wanted["dport"]
        ):
            note = f"{wanted['proto']} :{port} → :{wanted['dport']} at {wanted['since']}"
            if flow["packets"] != wanted["packets"]:
                note += f"; logpath counts {flow['packets']} packets, truth {wanted['packets']}"
            return str(flow["id"]), note
    return None, f"no flow from port {port} to {wanted['dport']} at {wanted['since']}"


def printed_count(question: Question, m: Measurement) -> int | None:
    """What the command found: the JSON array's length, the table's closing "N flow(s)", the
    report's "N connection(s)", or a journey's packets."""
    if m.returncode != 0:
        return None
    if "--json" in question.arguments:
        return len(json.loads(m.stdout))
    found = re.search(r"([\d,]+) (?:flow|connection)\(s\)", m.stdout)
    if found:
        return int(found.group(1).replace(",", ""))
    packets = re.findall(r"^#(\d+) ", m.stdout, flags=re.MULTILINE)
    return len(packets) if packets else None


def ask(question: Question, store: Path, runs: int, seconds: float, retry: float | None) -> Answer:
    """Run the question `runs` times; after a failure or a timeout no more, except that a
    timeout is asked once more with `retry` seconds when given (a loaded machine)."""
    command = [logpath_executable(), *question.arguments, "--store", str(store)]
    measured = []
    for _ in range(runs):
        measured.append(_run(question, command, seconds))
        if measured[-1].returncode != 0:
            break
    if measured[-1].returncode == TIMED_OUT and retry:
        measured.append(_run(question, command, retry))
    last = measured[-1]
    note = ""
    if last.returncode == TIMED_OUT:
        note = f"stopped after {retry or seconds:.0f} s"
    elif any(m.returncode == TIMED_OUT for m in measured):
        note = f"the first run was stopped after {seconds:.0f} s, the last one given {retry:.0f} s"
    if last.returncode not in (0, TIMED_OUT):
        note = f"exit {last.returncode}: {last.stderr.strip().splitlines()[-1][:200]}"
    if question.by_port is not None and last.returncode == 0:
        note = "; ".join(
            filter(None, [note, port_check(json.loads(last.stdout), question.by_port)])
        )
    report_dir = _output_dir(question)
    if report_dir is not None and report_dir.exists():
        size = sum(f.stat().st_size for f in report_dir.rglob("*") if f.is_file())
        page = report_dir / "index.html"
        drawn = re.search(r"([\d,]+) diagram\(s\)", last.stdout)
        written = f"{page.stat().st_size / 2**20:.1f} MiB index.html, {size / 2**20:.1f} MiB in all"
        written += f", {drawn.group(1)} diagrams" if drawn else ""
        note = "; ".join(filter(None, [note, written]))
    return Answer(question, measured, printed_count(question, last), note)


def _run(question: Question, command: list[str], seconds: float) -> Measurement:
    """One measured run (a report's directory emptied first), announced when done."""
    report_dir = _output_dir(question)
    if report_dir is not None:
        shutil.rmtree(report_dir, ignore_errors=True)
    m = timed(command, seconds)
    print(
        f"{question.label}: {m.wall_seconds:.1f} s, exit {m.returncode}, "
        f"tree peak {mib(m.tree_peak_kb)}",
        flush=True,
    )
    return m


def port_check(flows: list[dict[str, Any]], truth: dict[str, int]) -> str:
    """The flows counted by protocol and the port the client addressed, against the truth's
    `connections_by_port` (keys like tcp/12580, tcp6/5432, icmp/echo)."""
    found: Counter[str] = Counter()
    for flow in flows:
        family = "" if flow["family"] == 4 else "6"
        found[f"{flow['proto']}{family}/{flow['orig']['dport'] or 'echo'}"] += 1
    differ = [
        f"{key} {found.get(key, 0):,} (truth {truth.get(key, 0):,})"
        for key in sorted(set(found) | set(truth))
        if found.get(key, 0) != truth.get(key, 0)
    ]
    return "per port: " + ("; ".join(differ) if differ else f"all {len(truth)} equal")


def _output_dir(question: Question) -> Path | None:
    """The directory a `report` question writes."""
    if "-o" in question.arguments:
        return Path(question.arguments[question.arguments.index("-o") + 1])
    return None


def questions(truth: dict[str, Any], journey_id: str | None) -> list[Question]:
    """Issue 10's table, with the truth's windows."""
    busy, wide = truth["busiest_window"], truth["report_window"]
    asked = []
    if journey_id is not None:
        asked.append(Question("journey ID (2 packets)", ["journey", journey_id], 2, 1.0))
    asked += [
        Question(
            "flows --since T --until T+20s",
            ["flows", "--since", busy["since"], "--until", busy["until"]],
            busy["connections"],
            1.0,
        ),
        Question(
            f"flows --port {SERVICE_PORT}",
            ["flows", "--port", str(SERVICE_PORT)],
            truth["connections_by_port"][f"tcp/{SERVICE_PORT}"],
            3.0,
        ),
        Question(
            "flows --all --json",
            ["flows", "--all", "--json"],
            truth["connections"],
            10.0,
            by_port=truth["connections_by_port"],
        ),
        Question(
            "report --since A --until B",
            ["report", "--since", wide["since"], "--until", wide["until"], "-o", str(REPORT_DIR)],
            wide["connections"],
            20.0,
        ),
    ]
    return asked


def row(answer: Answer) -> str:
    """One table row: median wall time, every run, CPU and memory, count against the truth."""
    q, median = answer.question, answer.median
    walls = ", ".join(
        f"{m.wall_seconds:.2f}" + (" (timeout)" if m.returncode == TIMED_OUT else "")
        for m in answer.runs
    )
    peak = max(max(m.tree_peak_kb, m.max_rss_kb) for m in answer.runs)
    met = bool(answer.completed) and median.wall_seconds <= q.target_seconds and peak <= q.target_kb
    wall = "timeout" if answer.timed_out else f"{median.wall_seconds:.2f}"
    found = "—" if answer.found is None else f"{answer.found:,}"
    truth = "—" if q.truth is None else f"{q.truth:,}"
    if answer.found is not None and q.truth is not None and answer.found != q.truth:
        truth += " (DIFFERENT)"
    return (
        f"| `{' '.join(_short(a) for a in q.arguments)}` | {wall} | {walls} "
        f"| {median.cpu_seconds:.2f} | {mib(median.max_rss_kb)} "
        f"| {mib(max(m.tree_peak_kb for m in answer.runs))} "
        f"| {max(m.load_before for m in answer.runs):.2f} | {found} | {truth} "
        f"| <= {q.target_seconds:g} s, < 1.5 GB: {'met' if met else 'NOT met'}"
        f"{'; ' + answer.note if answer.note else ''} |"
    )


def _short(argument: str) -> str:
    """An argument with the benchmark's own paths shortened to their names."""
    return Path(argument).name if "/" in argument else argument


def main(argv: list[str] | None = None) -> int:
    """Generate and ingest if needed, ask every question, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="runs of each question")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    parser.add_argument(
        "--retry-timeout",
        type=float,
        default=None,
        help="ask a question the timeout stopped once more, with this many seconds",
    )
    parser.add_argument(
        "--reuse-store", action="store_true", help="keep an existing store (no ingest row)"
    )
    parser.add_argument(
        "--rules",
        action="store_true",
        help="ingest with the replayed host's ruleset (replay_syslog.host_ruleset, written "
        "beside the file), into a store of its own: packets judged at ingest",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    output = args.output or RESULTS_DIR / f"queries{'-rules' if args.rules else ''}-latest.md"
    if not all(has_command(name) for name in ("ingest", "flows", "journey", "report")):
        raise SystemExit("this checkout lacks one of ingest, flows, journey, report")
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    code = checkout()
    path, truth = ensure_replay(args.lines, args.seed)
    store = OUT_DIR / f"store-{path.stem}{'-rules' if args.rules else ''}"
    rules = ensure_rules(path) if args.rules else None
    ingest_row, ingest_check = "", "store reused (--reuse-store): ingest not measured"
    if not (args.reuse_store and store.exists()):
        print(f"ingesting {path} into {store} ...", flush=True)
        ingest_row, ingest_check = ingest(path, store, truth, max(args.timeout, 1800.0), rules)
    journey_id, journey_note = two_packet_flow(store, truth)
    answers = [
        ask(q, store, args.runs, args.timeout, args.retry_timeout)
        for q in questions(truth, journey_id)
    ]
    baseline = run_measured([logpath_executable(), "--help"])
    host = machine()
    busy, wide = truth["busiest_window"], truth["report_window"]
    report = "\n".join(
        [
            "# Query benchmark (latest run)",
            "",
            f"- date: {started}",
            f"- machine: {host['nproc']} CPUs, {host['cpu']}, {host['memory']} RAM; "
            f"{host['os']}; Python {host['python']}",
            f"- code: {code} (at the start of the run)",
            f"- file: `{path.name}` ({truth['lines']:,} lines, {truth['netfilter_lines']:,} "
            f"netfilter, {truth['connections']:,} connections, "
            f"{truth['connections_by_port'][f'tcp/{SERVICE_PORT}']:,} to port {SERVICE_PORT}; "
            f"up to {truth['open_at_once']['max']:,} open at once, "
            f"{truth['open_at_once']['mean']:g} on average), written by "
            f"`replay_syslog.py --lines {args.lines} --seed {args.seed}`; store `{store.name}`"
            + (
                f", ingested with the replayed host's ruleset `{rules.name}` "
                f"(`replay_syslog.host_ruleset`): {judged(store)}"
                if rules
                else ""
            ),
            f"- ingest counts against the generator's truth: {ingest_check}",
            f"- journey: the DNS query {journey_note}"
            + ("" if journey_id else " (journey not measured)"),
            f"- T = {busy['since']} (the busiest 20 seconds); A..B = {wide['since']}.."
            f"{wide['until']}; both ends included at the syslog's one-second resolution",
            f"- each question {args.runs} time(s) under `timeout {args.timeout:g}`"
            + (
                f" (a question it stopped: once more under `timeout {args.retry_timeout:g}`)"
                if args.retry_timeout
                else ""
            )
            + ": the median finished run's wall, CPU and largest-process RSS (of a stopped "
            "run: what it used until stopped), the largest process-tree PSS of the runs; "
            f"`logpath --help` alone peaks at {mib(baseline.max_rss_kb)} (the imports)",
            "",
            "| command (`--store DIR` follows) | median wall s | runs (wall s) | CPU s "
            "| peak RSS (largest process) | peak PSS (process tree) | load before | found "
            "| truth | issue 10 target |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
            *([ingest_row] if ingest_row else []),
            *(row(answer) for answer in answers),
            "",
            "`load before` is the 1-minute load average when a run started; on this 2-CPU "
            "machine anything above ~0.5 means other work shared the CPUs and wall times are "
            "high (compare CPU s).",
            "",
            "Reproduce: `.venv/bin/python benchmarks/bench_queries.py`",
            "",
        ]
    )
    publish(report, output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
