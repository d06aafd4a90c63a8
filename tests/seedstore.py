"""Stores of the bundled samples for tests: the seed article's lines and ruleset ingested
through the CLI and its journeys by address (the render tests; the fixture is in conftest.py),
and any samples ingested and traced whole (the flow and bridge tests); a Docker host's syslog
replayed from the lab's captures (``replayed_syslog``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from logpath.assembly import trace_hops
from logpath.cli import app
from logpath.ingest import ingest
from logpath.journeys import Journey
from logpath.query import FlowQuery, load_journey, select_flows, store_ruleset
from logpath.rules import load_ruleset
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def ingest_seed(path: Path) -> Store:
    """The seed store, made the way a user makes it (RFC 3164 lines of 2016, with the ruleset)."""
    seed = SAMPLES / "seed"
    result = CliRunner().invoke(app, ["ingest", str(seed / "syslog"), "--store", str(path),
                                      "--year", "2016", "--rules", str(seed / "iptables.final.rules")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return Store(path)


def journey_to(store: Store, dst: str, src: str = "") -> Journey:
    """The journey of the seed's connection to ``dst`` (from ``src``: one each in the article)."""
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.dst == dst and f.orig.src.startswith(src)]
    return load_journey(store, flow.id)


def trace_sample(tmp: Path, *names: str, rules: str | None = None) -> pd.DataFrame:
    """Ingest samples (and a ruleset) into a fresh store and trace every hop."""
    store = Store(tmp / "store")
    ruleset = load_ruleset(SAMPLES / rules).to_json() if rules else None
    ingest([str(SAMPLES / name) for name in names], store, year=2026, ruleset=ruleset)  # type: ignore[arg-type]
    return trace_hops(store.read_hops(), store_ruleset(store))


def replayed_syslog(folder: Path, lines: int, seed: int, per_second: int | None = None) -> Path:
    """A Docker host's syslog of ``lines`` lines replayed from the lab's kernel captures
    (benchmarks/replay_syslog.py), written in ``folder``; ``per_second``: packed that densely
    (a busy host's, many connections open at once)."""
    log = folder / "syslog"
    replay = Path(__file__).resolve().parent.parent / "benchmarks" / "replay_syslog.py"
    dense = ["--per-second", str(per_second)] if per_second else []
    subprocess.run(
        [sys.executable, str(replay), str(log), "--lines", str(lines), "--seed", str(seed), *dense],
        check=True,
        capture_output=True,
    )
    return log
