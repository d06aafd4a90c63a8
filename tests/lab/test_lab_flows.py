"""Connections and journeys from genuine lines, against the JSON contract of issue 3.

While `logpath flows` and `logpath journey` do not exist these tests are xfail (not strict);
they run for real as soon as the commands are there.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("needs_flows")]


def one_flow(flows, **orig):
    """The single flow whose orig tuple has the given fields."""
    found = [flow for flow in flows if all(flow["orig"][k] == v for k, v in orig.items())]
    assert len(found) == 1, flows
    return found[0]


def contract(translation):
    """The keys issue 3's contract fixes (implementations may add more)."""
    return {key: translation[key] for key in ("type", "from", "to", "hook")}


def test_dnat_flow(scenario):
    flow = one_flow(scenario("dnat").flows(), dst="10.77.0.1", dport=8080)
    assert (flow["proto"], flow["family"]) == ("tcp", 4)
    assert flow["orig"]["src"] == "10.77.0.2"
    assert flow["reply"] == {
        "src": "172.30.0.2",
        "sport": 80,
        "dst": "10.77.0.2",
        "dport": flow["orig"]["sport"],
    }
    assert [contract(n) for n in flow["nat"]] == [
        {"type": "dnat", "from": "10.77.0.1:8080", "to": "172.30.0.2:80", "hook": "PREROUTING"}
    ]


def test_masquerade_flow(scenario):
    flow = one_flow(scenario("masquerade").flows(), src="172.30.0.2", dport=9005)
    assert flow["reply"]["dst"] == "10.77.0.1"
    assert flow["reply"]["src"] == "10.77.0.2"
    assert [
        (n["type"], n["from"].split(":")[0], n["to"].split(":")[0], n["hook"]) for n in flow["nat"]
    ] == [("snat", "172.30.0.2", "10.77.0.1", "POSTROUTING")]


def test_hairpin_flow_has_both_translations(scenario):
    flow = one_flow(scenario("hairpin").flows(), src="172.30.0.3", dport=8080)
    kinds = {n["type"]: n for n in flow["nat"]}
    assert kinds["dnat"]["to"] == "172.30.0.2:80"
    assert kinds["snat"]["to"].split(":")[0] == "172.30.0.1"
    assert flow["reply"]["dst"] == "172.30.0.1"


def test_icmp_echo_flow(scenario):
    flow = one_flow(scenario("icmp-echo").flows(), src="172.30.0.2", dst="10.77.0.2")
    assert flow["proto"] == "icmp"
    assert (flow["orig"]["sport"], flow["orig"]["dport"]) == (0x4C50, None)
    assert flow["packets"] == 4  # two requests, two replies


def test_burst_flows(scenario):
    flows = [flow for flow in scenario("burst").flows() if flow["orig"]["dport"] == 9020]
    assert len(flows) == 200
    assert len({flow["id"] for flow in flows}) == 200


def test_c2c_journey(scenario):
    capture = scenario("c2c")
    flow = one_flow(capture.flows(), src="172.30.0.2", dst="172.30.0.3", dport=9001)
    assert flow["nat"] == []
    journey = capture.journey(flow["id"])
    first = journey["packets"][0]
    assert (first["direction"], first["summary"]) == ("orig", "SYN")
    assert [h["hook"] for h in first["hops"]] == [
        "PREROUTING",
        "PREROUTING",
        "PREROUTING",
        "FORWARD",
        "FORWARD",
        "POSTROUTING",
        "POSTROUTING",
    ]
    assert [h["table"] for h in first["hops"]] == [
        "raw",
        "mangle",
        "nat",
        "mangle",
        "filter",
        "mangle",
        "nat",
    ]
    assert {h["evidence"] for h in first["hops"]} == {"prefix"}
    assert {h["role"] for h in first["hops"]} == {"bridge"}
    assert journey["packets"][1]["direction"] == "reply"


def test_masquerade_journey_roles_and_translation(scenario):
    capture = scenario("masquerade")
    flow = one_flow(capture.flows(), src="172.30.0.2", dport=9005)
    journey = capture.journey(flow["id"])
    syn, synack = journey["packets"][0], journey["packets"][1]
    assert syn["hops"][0]["role"] == "nic"  # addressed to the bridge's own MAC: routed
    assert [h["translated"] for h in syn["hops"]] == [False] * len(syn["hops"])
    assert synack["direction"] == "reply"
    # the reply arrives as sent (for 10.77.0.1, the SNAT address); conntrack has undone the
    # MASQUERADE by FORWARD, so from there on the addresses shown are translated ones
    arrival, forward = synack["hops"][0], synack["hops"][3]
    assert (arrival["dst"], arrival["translated"]) == ("10.77.0.1", False)
    assert (forward["hook"], forward["dst"], forward["translated"]) == (
        "FORWARD",
        "172.30.0.2",
        True,
    )


def test_log_options_on_one_hook_keep_each_packet_whole(scenario):
    # raw's LOG rules print SEQ/ACK, TCP and IP options and UID, the other tables' none: the
    # packets are those of the same exchange logged without options, none of them stopped
    plain = one_flow(scenario("c1-host").flows(), src="172.30.0.2", dport=9003)
    options = one_flow(scenario("log-options").flows(), src="172.30.0.2", dport=9030)
    assert any("SEQ=" in record.text for record in scenario("log-options").records)
    assert (options["packets"], options["hops"]) == (plain["packets"], plain["hops"])
    assert options["state"] == plain["state"] == "closed"
    assert options["stopped"] == 0
