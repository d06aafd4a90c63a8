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
from .topology import LAN_IP, UPLINK_IP
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
