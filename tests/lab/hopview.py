"""Reading `logpath hops --json` output in lab tests: where a hop was logged, which packet."""

from __future__ import annotations

from typing import Any

Hop = dict[str, Any]

# The table:hook places, in netfilter's order, a packet passes on a host that logs first in
# every chain of raw, mangle, nat and filter, as that host forwards it (or, with br_netfilter,
# bridges it), delivers it to itself or sends it.
HOOK_PLACES = {
    "forward": ["raw:pre", "mangle:pre", "nat:pre", "mangle:fwd", "filter:fwd", "mangle:post",
                "nat:post"],
    "deliver": ["raw:pre", "mangle:pre", "nat:pre", "mangle:in", "filter:in", "nat:in"],
    "send": ["raw:out", "mangle:out", "nat:out", "filter:out", "mangle:post", "nat:post"],
}  # fmt: skip


def place(hop: Hop) -> str:
    """``table:hook`` from a logpath-native prefix, e.g. ``lp:nat:pre:x1a2b3c `` -> ``nat:pre``."""
    parts = hop["prefix"].split(":")
    assert parts[0] == "lp", hop["prefix"]
    return f"{parts[1]}:{parts[2]}"


def packet(hops: list[Hop], **fields: Any) -> list[Hop]:
    """The hops of the first packet whose first hop matches the fields (flags as a set).

    A packet is identified by its raw:pre or first hop and then followed by IP ID and LEN
    (constant across hooks) in time order until the next hop with the same first place.
    """
    start = next(i for i, hop in enumerate(hops) if matches(hop, fields))
    first = hops[start]
    same = [
        hop
        for hop in hops[start:]
        if hop["id"] == first["id"]
        and hop["len"] == first["len"]
        and hop["proto"] == first["proto"]
        and (first["proto"] not in ("tcp", "udp") or same_ports(hop, first))
    ]
    seen: list[Hop] = []
    for hop in same:
        if seen and place(hop) == place(first):
            break
        seen.append(hop)
    return seen


def same_ports(hop: Hop, first: Hop) -> bool:
    """Either port survives both DNAT and SNAT between hooks of one packet."""
    return hop["sport"] == first["sport"] or hop["dport"] == first["dport"]


def matches(hop: Hop, fields: dict[str, Any]) -> bool:
    """True when every given field has the value (``flags`` compared as a set of words)."""
    for key, value in fields.items():
        if key == "flags":
            if set(hop.get("flags") or []) != set(value):
                return False
        elif key == "place":
            if place(hop) != value:
                return False
        elif hop.get(key) != value:
            return False
    return True


def at(hops: list[Hop], where: str) -> Hop:
    """The one hop logged at ``table:hook`` among a packet's hops."""
    found = [hop for hop in hops if place(hop) == where]
    assert len(found) == 1, f"{len(found)} hops at {where}: {[place(h) for h in hops]}"
    return found[0]


def places(hops: list[Hop]) -> list[str]:
    """The places of a packet's hops, in order."""
    return [place(hop) for hop in hops]
