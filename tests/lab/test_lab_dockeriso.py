"""Two Docker bridge networks, live (tests/lab/dockeriso.py): the kernel drops the SYNs in
DOCKER-ISOLATION-STAGE-2, rejects in DOCKER-USER and, by rp_filter, drops a spoofed SYN after
raw PREROUTING; logpath, given the ruleset the lines were written under, names those rules (or
the LOG rule that missed the packet), says what went wrong and gives Docker's hints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import dockeriso, topology
from .capture import FIXED_TAG, KernelLog, write_formats
from .conftest import logpath_json

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The capture's lines and live ruleset, ingested together (both with the tag made
    ``lab``, as the capture writes the lines)."""
    try:
        topology.check_prerequisites()
        topology.clean_leftovers()
        lab = dockeriso.build()
    except topology.LabUnavailable as reason:
        pytest.skip(f"lab unavailable: {reason}")
    folder = tmp_path_factory.mktemp("dockeriso")
    try:
        rules = folder / "rules"
        saved = lab.exec("host", "iptables-save")
        rules.write_text(saved.replace(f":{lab.tag} ", f":{FIXED_TAG} "))
        with KernelLog(lab.tag) as log:
            seen = dockeriso.traffic(lab)
        assert (seen, log.lost) == ((True, True, b"pong", True), 0)
        write_formats(log.records, lab.tag, folder / "capture")
    finally:
        topology.teardown(lab)
    logpath_json("ingest", str(folder / "capture.log"), "--store", str(folder / "s"),
                 "--rules", str(rules))  # fmt: skip
    yield folder / "s"


def journey_to(store: Path, dport: int) -> dict[str, Any]:
    """``logpath journey --json`` of the capture's one connection to ``dport``."""
    flows = logpath_json("flows", "--store", str(store))
    (flow,) = [f for f in flows if f["orig"]["dport"] == dport]
    journey: dict[str, Any] = logpath_json("journey", flow["id"], "--store", str(store))
    return journey


def test_isolated_syns_are_dropped_by_stage_2_with_dockers_hint(store: Path) -> None:
    journey = journey_to(store, dockeriso.ISOLATED_PORT)
    assert len(journey["packets"]) >= 2  # the SYN and its retransmissions
    for packet in journey["packets"]:
        assert packet["fate"] == "dropped"
        verdict = packet["verdict"]
        assert (verdict["table"], verdict["chain"], verdict["rule"], verdict["text"]) == (
            "filter", "DOCKER-ISOLATION-STAGE-2", 2, "-o lpbr1 -j DROP"
        )  # fmt: skip
    count = len(journey["packets"])
    assert journey["analysis"]["text"].startswith(
        f"{count} of {count} packets (#1 SYN, #2 SYN"
    ) and journey["analysis"]["text"].endswith(
        "were dropped by filter DOCKER-ISOLATION-STAGE-2 #2 in FORWARD (ruleset) at "
        "lpbr0[vethc1] → lpbr1. No answer was logged."
    )
    assert [(h["name"], h["chain"]) for h in journey["analysis"]["hints"]] == [
        ("docker-isolation", "DOCKER-ISOLATION-STAGE-2")
    ]


def test_docker_user_rejection_names_the_administrators_rule(store: Path) -> None:
    journey = journey_to(store, dockeriso.USER_PORT)
    (packet,) = journey["packets"]
    assert packet["fate"] == "rejected" and packet["verdict"]["chain"] == "DOCKER-USER"
    assert journey["analysis"]["text"] == (
        "#1 SYN was rejected by filter DOCKER-USER #1 in FORWARD (ruleset) at lpbr1[vethc2] → "
        "lpbr0. No answer was logged."
    )
    assert [h["name"] for h in journey["analysis"]["hints"]] == ["docker-user"]


def test_rp_filter_victims_are_lost_and_the_answered_connection_is_fine(store: Path) -> None:
    spoofed = journey_to(store, dockeriso.SPOOFED_PORT)
    assert {p["fate"] for p in spoofed["packets"]} == {"lost"}
    assert (
        " were lost after raw PREROUTING at lpbr0[vethc1] → ·: filter INPUT #1 (prefix "
        in (spoofed["analysis"]["text"])
    )
    local = journey_to(store, dockeriso.LOCAL_PORT)
    assert local["flow"]["answered"] and local["analysis"] == {"text": "", "hints": []}
