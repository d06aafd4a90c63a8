"""ICMP echo and error, and UDP, through MASQUERADE to the LAN."""

from __future__ import annotations

import pytest

from .hopview import at, packet, places
from .traffic import ECHO_ID

pytestmark = pytest.mark.lab


def test_icmp_echo_request_and_reply(scenario):
    capture = scenario("icmp-echo")
    assert capture.result is True
    hops = capture.hops()
    assert {hop["proto"] for hop in hops} == {"icmp"}
    request = packet(hops, icmp_type=8, icmp_seq=1)
    assert at(request, "raw:pre")["icmp_id"] == ECHO_ID
    assert (at(request, "filter:fwd")["out"], at(request, "filter:fwd")["ttl"]) == ("up0", 63)
    reply = packet(hops, icmp_type=0, icmp_seq=1)
    assert at(reply, "raw:pre")["dst"] == "10.77.0.1"  # the masqueraded address
    assert at(reply, "filter:fwd")["dst"] == "172.30.0.2"
    assert len(packet(hops, icmp_type=8, icmp_seq=2)) == len(places(request)) - 2  # no nat hops


def test_icmp_port_unreachable_quotes_the_translated_packet(scenario):
    capture = scenario("icmp-error")
    assert capture.result is None  # the socket saw ECONNREFUSED: the error came back
    hops = capture.hops()
    datagram = packet(hops, proto="udp", dport=9009)
    assert at(datagram, "filter:fwd")["ttl"] == 63
    error = packet(hops, proto="icmp", icmp_type=3)
    arrival = at(error, "raw:pre")
    assert (arrival["icmp_code"], arrival["dst"]) == (3, "10.77.0.1")
    inner = arrival["inner"]  # the quoted packet, as `logpath hops --json` nests it
    assert (inner["src"], inner["dst"], inner["proto"], inner["dport"]) == (
        "10.77.0.1",
        "10.77.0.2",
        "udp",
        9009,
    )
    # conntrack rewrites the quoted packet too when it reverses the MASQUERADE
    forward = at(error, "filter:fwd")
    assert (forward["dst"], forward["inner"]["src"]) == ("172.30.0.2", "172.30.0.2")
    assert forward["inner"]["sport"] == datagram[0]["sport"]


def test_udp_request_and_response(scenario):
    capture = scenario("udp")
    assert capture.result == b"pong"
    hops = capture.hops()
    request = packet(hops, proto="udp", dport=9010)
    assert places(request)[-1] == "nat:post"
    assert at(request, "nat:post")["src"] == "172.30.0.2"
    response = packet(hops, proto="udp", sport=9010)
    assert at(response, "raw:pre")["dst"] == "10.77.0.1"
    assert at(response, "filter:fwd")["dst"] == "172.30.0.2"
    assert at(response, "filter:fwd")["dport"] == request[0]["sport"]
