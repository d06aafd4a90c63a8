"""The seed article's lines and ruleset ingested through the CLI, and its journeys by address.

Shared by the render tests (timeline, diagram, report); the fixture is in conftest.py.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from logpath.cli import app
from logpath.journeys import FlowQuery, Journey, load_journey, select_flows
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
