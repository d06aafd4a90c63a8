"""Bridge cases: a switched frame (c1 -> c2), the bridge as the host's NIC, IPv6 on the bridge.

Expected facts follow from the topology (tests/lab/topology.py): a frame between two containers
is switched, so every hop shows IN=lpbr0 with PHYSIN, the FORWARD hops show both ports and the TTL
stays 64; traffic to the host's own addresses is delivered through INPUT; host traffic leaves
through OUTPUT with the bridge address as its source.
"""

from __future__ import annotations

import pytest

from .hopview import HOOK_PLACES, at, packet, places
from .topology import MACS

pytestmark = pytest.mark.lab

# br_netfilter hands a bridged frame to the same hooks as a forwarded packet
SWITCHED = HOOK_PLACES["forward"]


def test_every_kernel_record_becomes_one_hop(scenario):
    capture = scenario("c2c")
    hops = capture.hops()
    assert capture.result == b"pong"
    assert [hop["lineno"] for hop in hops] == list(range(1, len(capture.records) + 1))
    assert [hop["prefix"] for hop in hops] == [
        r.text.split(" IN=")[0] + " " for r in capture.records
    ]


def test_container_to_container_is_switched(scenario):
    hops = scenario("c2c").hops()
    syn = packet(hops, flags=["SYN"], dport=9001)
    assert places(syn) == SWITCHED
    assert {(hop["src"], hop["dst"], hop["ttl"]) for hop in syn} == {
        ("172.30.0.2", "172.30.0.3", 64)
    }
    assert {hop["in"] for hop in syn if hop["in"]} == {"lpbr0"}
    assert {hop["physin"] for hop in syn} == {"vethc1"}
    forward = at(syn, "filter:fwd")
    assert (forward["in"], forward["out"], forward["physout"]) == ("lpbr0", "lpbr0", "vethc2")
    assert at(syn, "raw:pre")["macdst"] == MACS["c2"]  # addressed to c2, not to the bridge
    assert at(syn, "raw:pre")["macsrc"] == MACS["c1"]


def test_container_to_container_answer_comes_back_switched(scenario):
    hops = scenario("c2c").hops()
    syn = packet(hops, flags=["SYN"], dport=9001)
    synack = packet(hops, flags=["ACK", "SYN"], sport=9001)
    assert synack[0]["dport"] == syn[0]["sport"]
    assert synack[0]["id"] == 0  # a listener's SYN-ACK carries IP ID 0 (DF)
    forward = at(synack, "filter:fwd")
    assert (forward["physin"], forward["physout"], forward["ttl"]) == ("vethc2", "vethc1", 64)
    assert "nat:pre" not in places(synack)  # the nat table sees only a connection's first packet


def test_bridge_address_without_listener_answers_rst(scenario):
    capture = scenario("bridge-rst")
    hops = capture.hops()
    assert capture.result is True
    syn = packet(hops, flags=["SYN"], dport=9002)
    assert places(syn) == ["raw:pre", "mangle:pre", "nat:pre", "mangle:in", "filter:in", "nat:in"]
    assert at(syn, "raw:pre")["macdst"] == MACS["lpbr0"]  # the bridge is the host's NIC here
    assert at(syn, "filter:in")["dst"] == "172.30.0.1"
    rst = packet(hops, flags=["ACK", "RST"], sport=9002)
    assert places(rst) == ["raw:out", "mangle:out", "filter:out", "mangle:post"]
    out = at(rst, "filter:out")
    assert (out["in"], out["out"], out["src"], out["dst"]) == (
        None,
        "lpbr0",
        "172.30.0.1",
        "172.30.0.2",
    )
    assert out["physout"] is None  # locally generated: bridge ports are not known at OUTPUT


def test_container_to_host_address_is_delivered_locally(scenario):
    hops = scenario("c1-host").hops()
    syn = packet(hops, flags=["SYN"], dport=9003)
    assert at(syn, "filter:in")["dst"] == "10.77.0.1"
    assert at(syn, "filter:in")["in"] == "lpbr0"  # arrives on the bridge, not on up0
    assert at(syn, "filter:in")["ttl"] == 64  # delivered, not routed
    synack = packet(hops, flags=["ACK", "SYN"], sport=9003)
    out = at(synack, "filter:out")
    assert (out["src"], out["dst"], out["out"]) == ("10.77.0.1", "172.30.0.2", "lpbr0")


def test_host_to_container_leaves_through_output(scenario):
    hops = scenario("host-c1").hops()
    syn = packet(hops, flags=["SYN"], dport=9004)
    assert places(syn) == [
        "raw:out",
        "mangle:out",
        "nat:out",
        "filter:out",
        "mangle:post",
        "nat:post",
    ]
    out = at(syn, "filter:out")
    assert (out["src"], out["dst"], out["out"]) == ("172.30.0.1", "172.30.0.2", "lpbr0")
    synack = packet(hops, flags=["ACK", "SYN"], sport=9004)
    assert places(synack) == ["raw:pre", "mangle:pre", "mangle:in", "filter:in"]
    assert at(synack, "filter:in")["physin"] == "vethc1"


def test_ipv6_on_the_bridge(scenario):
    capture = scenario("ipv6")
    hops = capture.hops()
    assert capture.result == (b"pong", b"pong")
    assert {hop["family"] for hop in hops} == {6}
    syn = packet(hops, flags=["SYN"], dport=9011)
    # the kernel prints fd00:0030:0000:...:0002; the hop table compresses it
    assert {(hop["src"], hop["dst"], hop["ttl"]) for hop in syn} == {
        ("fd00:30::2", "fd00:30::3", 64)
    }
    forward = at(syn, "filter:fwd")
    assert (forward["physin"], forward["physout"]) == ("vethc1", "vethc2")
    to_host = packet(hops, flags=["SYN"], dport=9012)
    assert places(to_host) == ["raw:pre", "mangle:pre", "mangle:in", "filter:in"]
    assert at(to_host, "filter:in")["dst"] == "fd00:30::1"
