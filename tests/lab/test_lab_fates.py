"""Issue 11's fate cases run now, in the lab, under each front end, and judged by logpath with
the ruleset listing the front end's own tool printed (tests/lab/fatecases.py; the committed
captures of the same cases are tests/test_lab_fates.py's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import fatecases
from .backends import BACKENDS
from .capture import capture_under
from .conftest import logpath, logpath_json, write_log
from .topology import Lab

pytestmark = pytest.mark.lab

BY_NAME = {scenario.name: scenario for scenario in fatecases.SCENARIOS}
# the listing each front end is judged with: nft's for native nft, iptables-save's otherwise
LISTING = {"iptables-nft": ".rules", "iptables-legacy": ".rules", "nft": ".nft"}


def judged(lab: Lab, name: str, backend: str, tmp_path: Path) -> dict[int, list[dict[str, Any]]]:
    """Run the case, ingest its lines with its ruleset through the CLI; per orig destination
    port, the flow (``flows --json``) and its packets (``journey --json``)."""
    records, _, listed = capture_under(lab, BY_NAME[name], backend)
    log_file, rules = tmp_path / f"{name}.log", tmp_path / f"{name}{LISTING[backend]}"
    write_log(records, log_file, "syslog")
    rules.write_text(listed[LISTING[backend]])
    store = str(tmp_path / "store")
    done = logpath("ingest", str(log_file), "--rules", str(rules), "--store", store)
    assert done.returncode == 0, done.stderr
    found: dict[int, list[dict[str, Any]]] = {}
    for flow in logpath_json("flows", "--store", store):
        packets = logpath_json("journey", flow["id"], "--store", store)["packets"]
        found.setdefault(flow["orig"]["dport"], []).extend([flow, *packets])
    return found


def fates(found: dict[int, list[dict[str, Any]]], port: int) -> set[str]:
    return {packet["fate"] for packet in found[port][1:]}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_isolation_drops_in_the_user_chain(lab, backend, tmp_path) -> None:
    found = judged(lab, "isolation", backend, tmp_path)
    flow, *packets = found[fatecases.ISOLATED_PORT]
    chain = "lp-isolation" if backend == "nft" else "LP-ISOLATION"
    assert packets and flow["dropped"] == len(packets)
    for packet in packets:
        assert (packet["fate"], packet["verdict"]["chain"], packet["verdict"]["rule"]) == (
            "dropped",
            chain,
            2,
        )
        assert packet["hops"][-1]["hook"] == "FORWARD"
        assert packet["hops"][-1]["evidence"] == "ruleset"


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_policy_drop_and_the_accepted_connection(lab, backend, tmp_path) -> None:
    found = judged(lab, "policy-drop", backend, tmp_path)
    assert fates(found, fatecases.POLICY_PORT) == {"dropped"}
    assert {p["verdict"]["rule"] for p in found[fatecases.POLICY_PORT][1:]} == {"policy"}
    assert fates(found, fatecases.ACCEPTED_PORT) == {"forwarded"}
    assert found[fatecases.ACCEPTED_PORT][0]["dropped"] == 0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_rp_filter_drop_is_lost(lab, backend, tmp_path) -> None:
    found = judged(lab, "rp-filter", backend, tmp_path)
    flow, *packets = found[fatecases.SPOOFED_PORT]
    assert flow["orig"]["src"] == fatecases.SPOOFED_IP
    assert packets and flow["lost"] == len(packets)
    assert {p["fate"] for p in packets} == {"lost"}
    assert {h["hook"] for p in packets for h in p["hops"]} == {"PREROUTING"}
    assert fates(found, fatecases.FORWARDED_PORT) == {"forwarded"}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_masquerade_from_the_ruleset(lab, backend, tmp_path) -> None:
    found = judged(lab, "masquerade-unlogged", backend, tmp_path)
    flow = found[fatecases.MASQUERADED_PORT][0]
    assert [(n["type"], n["to"], n["evidence"]) for n in flow["nat"]] == [
        ("snat", "10.77.0.1", "ruleset")
    ]
    assert fates(found, fatecases.MASQUERADED_PORT) == {"forwarded"}
    assert fates(found, fatecases.UPLINK_PORT) == {"delivered"}


def test_verdicts_in_native_nft(lab, tmp_path) -> None:
    """The verdicts case under native nft: the DROP, the REJECT with a RST, the REJECT with
    ICMP, each named as nft lists it; `flows --json` counts the dropped packets."""
    found = judged(lab, "verdicts", "nft", tmp_path)
    texts = {port: {p["verdict"]["text"] for p in rows[1:2]} for port, rows in found.items()}
    assert texts == {
        9040: {"tcp dport 9040 drop"},
        9041: {"tcp dport 9041 reject with tcp reset"},
        9042: {"udp dport 9042 reject"},
    }
    syns = len(found[9040]) - 1
    counts = {port: (rows[0]["dropped"], rows[0]["lost"]) for port, rows in found.items()}
    assert counts == {9040: (syns, 0), 9041: (1, 0), 9042: (1, 0)}
