"""A burst of concurrent connections: every line read, every connection seen whole."""

from __future__ import annotations

from collections import Counter

import pytest

from .hopview import place
from .traffic import BURST_SIZE

pytestmark = pytest.mark.lab


def test_burst_every_connection_is_logged_at_every_hook(scenario):
    capture = scenario("burst")
    assert capture.result == BURST_SIZE
    hops = capture.hops()
    assert len(hops) == len(capture.records)
    syns = [hop for hop in hops if hop["flags"] == ["SYN"] and place(hop) == "raw:pre"]
    ports = {hop["sport"] for hop in syns}
    assert len(ports) == BURST_SIZE  # one client port per connection, each SYN once
    synacks = Counter(
        hop["dport"]
        for hop in hops
        if set(hop["flags"]) == {"ACK", "SYN"} and place(hop) == "filter:fwd"
    )
    assert synacks == Counter(dict.fromkeys(ports, 1))
    posts = [hop for hop in hops if place(hop) == "nat:post"]
    assert {hop["sport"] for hop in posts} == ports  # the nat table sees each connection once
    assert len(posts) == BURST_SIZE
