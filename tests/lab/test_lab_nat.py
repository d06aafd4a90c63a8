"""NAT cases: MASQUERADE to the LAN, a published port (DNAT), hairpin to the published port.

The LOG rules come first in every chain, so a nat POSTROUTING hop still shows the source before
MASQUERADE; DNAT is applied in nat PREROUTING, so hops from mangle FORWARD on show the container's
address; a routed packet's TTL is 63 from FORWARD on.
"""

from __future__ import annotations

import pytest

from .hopview import at, packet, places

pytestmark = pytest.mark.lab

ROUTED = ["raw:pre", "mangle:pre", "nat:pre", "mangle:fwd", "filter:fwd", "mangle:post", "nat:post"]


def test_masquerade_request_is_routed_and_logged_before_translation(scenario):
    capture = scenario("masquerade")
    assert capture.result == b"pong"
    syn = packet(capture.hops(), flags=["SYN"], dport=9005)
    assert places(syn) == ROUTED
    assert (at(syn, "raw:pre")["in"], at(syn, "raw:pre")["ttl"]) == ("lpbr0", 64)
    forward = at(syn, "filter:fwd")
    assert (forward["in"], forward["out"], forward["ttl"]) == ("lpbr0", "up0", 63)
    assert at(syn, "nat:post")["src"] == "172.30.0.2"  # MASQUERADE acts after the LOG rule


def test_masquerade_reply_arrives_for_the_host_and_is_de_natted(scenario):
    hops = scenario("masquerade").hops()
    syn = packet(hops, flags=["SYN"], dport=9005)
    synack = packet(hops, flags=["ACK", "SYN"], sport=9005)
    arrival = at(synack, "raw:pre")
    assert (arrival["in"], arrival["src"], arrival["dst"]) == ("up0", "10.77.0.2", "10.77.0.1")
    assert arrival["dport"] == syn[0]["sport"]  # no port clash in the lab: the port is kept
    forward = at(synack, "filter:fwd")
    assert (forward["dst"], forward["out"], forward["ttl"]) == ("172.30.0.2", "lpbr0", 63)


def test_published_port_dnat(scenario):
    capture = scenario("dnat")
    assert capture.result == b"pong"
    hops = capture.hops()
    syn = packet(hops, flags=["SYN"], dport=8080)
    assert places(syn) == ROUTED
    for where in ("raw:pre", "mangle:pre", "nat:pre"):
        hop = at(syn, where)
        assert (hop["in"], hop["dst"], hop["dport"], hop["ttl"]) == ("up0", "10.77.0.1", 8080, 64)
    for where in ("mangle:fwd", "filter:fwd", "mangle:post", "nat:post"):
        hop = at(syn, where)
        assert (hop["out"], hop["dst"], hop["dport"], hop["ttl"]) == ("lpbr0", "172.30.0.2", 80, 63)
    synack = packet(hops, flags=["ACK", "SYN"], sport=80)
    # the reply is de-DNATed only in POSTROUTING: every logged hop still shows the container
    assert {hop["src"] for hop in synack} == {"172.30.0.2"}
    assert at(synack, "filter:fwd")["out"] == "up0"


def test_hairpin_is_dnatted_and_masqueraded(scenario):
    capture = scenario("hairpin")
    assert capture.result == b"pong"
    hops = capture.hops()
    syn = packet(hops, flags=["SYN"], dport=8080)
    assert at(syn, "nat:pre")["physin"] == "vethc2"
    assert at(syn, "nat:pre")["dst"] == "10.77.0.1"
    forward = at(syn, "filter:fwd")
    assert (forward["dst"], forward["dport"], forward["physout"]) == ("172.30.0.2", 80, "vethc1")
    # br_netfilter bridges a DNATed packet whose new destination is on the same bridge: not
    # routed, so the TTL is not decremented
    assert forward["ttl"] == 64
    assert at(syn, "nat:post")["src"] == "172.30.0.3"  # logged before MASQUERADE
    synack = packet(hops, flags=["ACK", "SYN"], sport=80)
    assert at(synack, "raw:pre")["dst"] == "172.30.0.1"  # c1 answers the masqueraded source
    assert at(synack, "filter:fwd")["dst"] == "172.30.0.3"  # conntrack undid the MASQUERADE


def test_hairpin_to_itself_goes_back_out_of_its_own_port(scenario):
    capture = scenario("hairpin-self")
    assert capture.result == b"pong"
    syn = packet(capture.hops(), flags=["SYN"], dport=8080)
    forward = at(syn, "filter:fwd")
    assert (forward["physin"], forward["physout"]) == ("vethc1", "vethc1")
    assert (forward["src"], forward["dst"], forward["dport"]) == ("172.30.0.2", "172.30.0.2", 80)
