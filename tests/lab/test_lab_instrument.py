"""`logpath instrument` output loaded into the lab's host with both iptables backends and nft.

For each loader: take the rule text from the CLI, load it into the host namespace, send traffic
that passes every hook (c1 -> lan is forwarded, lan -> host is delivered, host -> lan is sent),
check the lines appear at the hooks their prefixes name, then load the --remove output and check
the ruleset is exactly as before.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from .capture import KernelLog
from .conftest import logpath
from .hopview import HOOK_PLACES, places
from .topology import C1_IP, C1_SERVICE_PORT, LAN_IP, PUBLISHED_PORT, UPLINK_IP
from .traffic import tcp_request, tcp_server

pytestmark = pytest.mark.lab

PORT = 9030
LOADERS = {
    "iptables-legacy": (
        ["iptables-legacy-restore", "--noflush"],
        "iptables",
        ["iptables-legacy-save"],
    ),
    "iptables-nft": (
        ["iptables-nft-restore", "--noflush"],
        "iptables",
        ["nft", "-s", "list", "ruleset"],
    ),
    "nft": (["nft", "-f", "-"], "nft", ["nft", "-s", "list", "ruleset"]),
}
FORWARDED, DELIVERED, SENT = (HOOK_PLACES[r] for r in ("forward", "deliver", "send"))


def ruleset(lab, save: list[str]) -> list[str]:
    """The host's rules as the tool prints them: every rule of nft; -A lines of iptables-save.

    (iptables-legacy-save also prints the empty tables that loading created: not rules.)
    """
    lines = lab.exec("host", *save).splitlines()
    if save[0] == "iptables-legacy-save":
        return [line for line in lines if line.startswith("-A")]
    return lines


def instrument_text(tag: str, output_format: str, *extra: str) -> str:
    done = logpath(
        "instrument",
        "--port",
        str(PORT),
        "--proto",
        "tcp",
        "--tag",
        tag,
        "--format",
        output_format,
        *extra,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def syn_places(records, src: str, dst: str) -> list[str]:
    """Where the SYN from src to dst (port PORT) was logged, from the prefix text."""
    found = []
    for record in records:
        if f"SRC={src} DST={dst} " in record.text and re.search(
            rf"DPT={PORT} .* SYN URGP", record.text
        ):
            parts = record.text.split(" ", 1)[0].split(":")
            found.append(f"{parts[1]}:{parts[2]}")
    return found


@pytest.mark.parametrize("loader", list(LOADERS))
def test_instrument_rules_load_log_at_their_hooks_and_remove_cleanly(lab, loader, tmp_path):
    if not shutil.which(LOADERS[loader][0][0]):
        pytest.skip(f"{LOADERS[loader][0][0]} is not installed (apt-get install iptables nftables)")
    load, output_format, save = LOADERS[loader]
    tag = f"i{lab.prefix[2:8]}"
    before = ruleset(lab, save)
    lab.exec("host", *load, stdin=instrument_text(tag, output_format))
    try:
        assert ruleset(lab, save) != before
        with KernelLog(tag) as log:
            with tcp_server(lab, "lan", PORT):
                assert tcp_request(lab, "c1", LAN_IP, PORT) == b"pong"
                assert tcp_request(lab, "host", LAN_IP, PORT) == b"pong"
            with tcp_server(lab, "host", PORT):
                assert tcp_request(lab, "lan", UPLINK_IP, PORT) == b"pong"
    finally:
        lab.exec("host", *load, stdin=instrument_text(tag, output_format, "--remove"))
    assert ruleset(lab, save) == before
    assert syn_places(log.records, "172.30.0.2", LAN_IP) == FORWARDED
    assert syn_places(log.records, LAN_IP, UPLINK_IP) == DELIVERED
    assert syn_places(log.records, UPLINK_IP, LAN_IP) == SENT
    # the same lines through the CLI: every one is a hop with the prefix the rule gave it
    log_file = tmp_path / "instrument.log"
    log_file.write_text("".join(f"{r.uptime()} {r.text}\n" for r in log.records))
    store = tmp_path / "store"
    assert logpath("ingest", str(log_file), "--store", str(store), "--json").returncode == 0
    done = logpath("hops", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    hops = json.loads(done.stdout)
    assert len(hops) == len(log.records)
    assert places(hops[: len(FORWARDED)]) == FORWARDED
    assert_resolved_without_ruleset(store)


HOOK_NAMES = {
    "pre": "PREROUTING",
    "in": "INPUT",
    "fwd": "FORWARD",
    "out": "OUTPUT",
    "post": "POSTROUTING",
}


def assert_resolved_without_ruleset(store) -> None:
    """Each connection's first packet: logpath puts every hop at the hook its prefix names."""
    flows = json.loads(logpath("flows", "--store", str(store), "--json").stdout)
    expected = {
        ("172.30.0.2", LAN_IP): FORWARDED,
        (LAN_IP, UPLINK_IP): DELIVERED,
        (UPLINK_IP, LAN_IP): SENT,
    }
    assert {(flow["orig"]["src"], flow["orig"]["dst"]) for flow in flows} == set(expected)
    for flow in flows:
        done = logpath("journey", flow["id"], "--store", str(store), "--json")
        assert done.returncode == 0, done.stderr
        syn = json.loads(done.stdout)["packets"][0]
        assert syn["summary"] == "SYN"
        resolved = [(hop["table"], hop["hook"], hop["evidence"]) for hop in syn["hops"]]
        wanted = expected[(flow["orig"]["src"], flow["orig"]["dst"])]
        assert resolved == [
            (place.split(":")[0], HOOK_NAMES[place.split(":")[1]], "prefix") for place in wanted
        ]


# Where `instrument --port 8080` logs a connection to the published port 10.77.0.1:8080, which
# the lab DNATs to c1:80 in nat PREROUTING (issue 15). The request: raw:pre sees the packet's
# own port 8080, every later place the connection's original port (nat only sees the first
# packet). The reply leaves c1 from port 80 and is de-DNATed only after the LOG rules of
# POSTROUTING: only the rules on the connection catch it (raw:pre's packet port is 80).
DNAT_REQUEST = set(FORWARDED)
DNAT_REPLY = {"mangle:pre", "mangle:fwd", "filter:fwd", "mangle:post"}


def dnat_places(records) -> dict[str, set[str]]:
    """The places each direction of the published-port connection was logged at."""
    found: dict[str, set[str]] = {"orig": set(), "reply": set()}
    for record in records:
        parts = record.text.split(" ", 1)[0].split(":")
        if f"SRC={LAN_IP} " in record.text:
            found["orig"].add(f"{parts[1]}:{parts[2]}")
        elif f"SRC={C1_IP} DST={LAN_IP} " in record.text and " SPT=80 " in record.text:
            found["reply"].add(f"{parts[1]}:{parts[2]}")
    return found


@pytest.mark.parametrize("loader", list(LOADERS))
def test_instrument_port_follows_a_published_port_through_dnat(lab, loader, tmp_path):
    if not shutil.which(LOADERS[loader][0][0]):
        pytest.skip(f"{LOADERS[loader][0][0]} is not installed (apt-get install iptables nftables)")
    load, output_format, save = LOADERS[loader]
    tag = f"n{lab.prefix[2:8]}"
    before = ruleset(lab, save)

    def rules(*extra: str) -> str:
        done = logpath("instrument", "--port", str(PUBLISHED_PORT), "--tag", tag, "--format",
                       output_format, *extra)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    lab.exec("host", *load, stdin=rules())
    try:
        with KernelLog(tag) as log, tcp_server(lab, "c1", C1_SERVICE_PORT):
            assert tcp_request(lab, "lan", UPLINK_IP, PUBLISHED_PORT) == b"pong"
    finally:
        lab.exec("host", *load, stdin=rules("--remove"))
    assert ruleset(lab, save) == before
    seen = dnat_places(log.records)
    assert seen == {"orig": DNAT_REQUEST, "reply": DNAT_REPLY}
    hooks = {direction: {p.split(":")[1] for p in places} for direction, places in seen.items()}
    assert hooks == {"orig": {"pre", "fwd", "post"}, "reply": {"pre", "fwd", "post"}}

    # the lines through logpath: one connection, its DNAT shown
    log_file = tmp_path / "dnat.log"
    log_file.write_text("".join(f"{r.uptime()} {r.text}\n" for r in log.records))
    store = tmp_path / "store"
    assert logpath("ingest", str(log_file), "--store", str(store), "--json").returncode == 0
    (flow,) = json.loads(logpath("flows", "--store", str(store), "--json").stdout)
    assert (flow["orig"]["dst"], flow["orig"]["dport"]) == (UPLINK_IP, PUBLISHED_PORT)
    assert (flow["reply"]["src"], flow["reply"]["sport"]) == (C1_IP, C1_SERVICE_PORT)
    assert [(n["type"], n["from"], n["to"]) for n in flow["nat"]] == [
        ("dnat", f"{UPLINK_IP}:{PUBLISHED_PORT}", f"{C1_IP}:{C1_SERVICE_PORT}")
    ]
    journey = logpath("journey", flow["id"], "--store", str(store))
    assert journey.returncode == 0, journey.stderr
    dnat = f"DNAT {UPLINK_IP}:{PUBLISHED_PORT}→{C1_IP}:{C1_SERVICE_PORT} @PREROUTING"
    assert dnat in journey.stdout.splitlines()[0]
