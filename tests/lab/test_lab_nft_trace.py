"""nf_tables traces captured now, in this session's lab, read by logpath through its CLI.

The same scenarios as samples/lab/trace/ (tests/lab/capture_nft_trace.py): the monitors run in
the lab host's namespace while c1 talks to lan; what they print is ingested as a user would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .capture_nft_trace import nft_trace, xtables_trace
from .conftest import logpath_json
from .topology import Lab

pytestmark = pytest.mark.lab


def ingested(path: Path, rules: Path | None = None) -> tuple[Path, list[dict[str, Any]]]:
    store = path.parent / f"{path.stem}-store"
    extra = ["--rules", str(rules)] if rules else []
    logpath_json("ingest", str(path), "--store", str(store), *extra)
    return store, logpath_json("flows", "--all", "--store", str(store))


def by_port(flows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {flow["orig"]["dport"]: flow for flow in flows if flow["orig"]["dport"]}


def test_nft_monitor_trace_gives_the_drop_its_rule(lab: Lab, tmp_path: Path) -> None:
    nft_trace(lab, tmp_path)
    store, flows = ingested(tmp_path / "nft-trace.txt", tmp_path / "nft-trace.rules")
    ports = by_port(flows)
    assert (ports[9050]["state"], ports[9050]["dropped"]) == ("closed", 0)
    assert ports[9052]["dropped"] == ports[9052]["packets"] >= 1  # the SYN (and retransmissions)
    journey = logpath_json("journey", ports[9052]["id"], "--store", str(store))
    for packet in journey["packets"]:
        verdict = packet["verdict"]
        assert packet["fate"] == "dropped"
        assert (verdict["table"], verdict["chain"], verdict["text"]) == (
            "lptrace",
            "lpsub",
            "tcp dport 9052 drop",
        )
        assert (verdict["hook"], verdict["evidence"]) == ("FORWARD", "nft-trace")
        chains = [hop["chain"] for hop in packet["hops"]]
        assert chains[-2:] == ["lpfwd", "lpsub"]
        assert {hop["hook"] for hop in packet["hops"]} == {"PREROUTING", "FORWARD"}


def test_xtables_monitor_trace_gives_the_drop_its_rule(lab: Lab, tmp_path: Path) -> None:
    xtables_trace(lab, tmp_path)
    store, flows = ingested(tmp_path / "xtables-trace.txt")
    ports = by_port(flows)
    assert (ports[9051]["state"], ports[9051]["dropped"]) == ("closed", 0)
    journey = logpath_json("journey", ports[9053]["id"], "--store", str(store))
    assert journey["packets"]
    for packet in journey["packets"]:
        assert packet["fate"] == "dropped"
        assert packet["verdict"]["text"] == (
            "-4 -t filter -A FORWARD -p tcp -m tcp --dport 9053 -j DROP"
        )
