"""A bridge's two roles: switch between its ports (L2) or the host's network card (L3).

With br_netfilter (``bridge-nf-call-iptables=1``) bridged frames pass iptables and their hops
carry PHYSIN/PHYSOUT, the bridge ports. Nothing here knows a bridge by name: the bridges, their
own MAC address and what lives behind each port are learned from the hops themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from logpath.packets import missing

ROLES = ("bridge", "nic")
BROADCAST = "ff:ff:ff:ff:ff:ff"


@dataclass(frozen=True)
class BridgeFacts:
    """What the logs tell about one bridge on one host."""

    host: str | None
    """Syslog host the bridge lives on."""
    name: str
    """The bridge device (IN=/OUT= of hops with PHYSIN/PHYSOUT), e.g. docker0."""
    mac: str | None
    """The bridge's own MAC: destination of frames it hands up to the host stack."""
    port_macs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per port (PHYSIN), the source MACs of frames that entered by it."""
    port_addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per port, the source IP addresses of frames that entered by it."""


def learn_bridges(hops: pd.DataFrame) -> dict[tuple[str | None, str], BridgeFacts]:
    """The bridges seen in the hops, keyed by (host, bridge name).

    A device is a bridge when a hop entering by it has PHYSIN or one leaving by it has PHYSOUT.
    Its own MAC is the destination MAC of frames it delivered to the host (INPUT) or routed
    (FORWARD without PHYSOUT): the host stack only sees frames addressed to it.
    """
    return _learned(_with_columns(hops))


def _learned(frame: pd.DataFrame) -> dict[tuple[str | None, str], BridgeFacts]:
    """``learn_bridges`` of hops made ready by ``_with_columns``."""
    # only the columns read here: each bridge's hops were copied with every hop column
    frame = frame[[c for c in [*READ_COLUMNS, "dst", TIMES] if c in frame.columns]]
    names = pd.concat(
        [
            frame.loc[frame["physin"].notna(), ["host", "in_iface"]].set_axis(
                ["host", "name"], axis=1
            ),
            frame.loc[frame["physout"].notna(), ["host", "out_iface"]].set_axis(
                ["host", "name"], axis=1
            ),
        ]
    ).dropna(subset=["name"])
    facts = {}
    for host, name in names.drop_duplicates().itertuples(index=False):
        here = frame[_same_host(frame["host"], host) & frame["in_iface"].eq(name)]
        facts[(_text(host), str(name))] = BridgeFacts(
            host=_text(host),
            name=str(name),
            mac=_own_mac(here) or _addressed_to_bridge(here),
            port_macs=_behind_ports(here, "macsrc"),
            port_addresses=_behind_ports(here, "src"),
        )
    return facts


# The hop columns this module reads (made present by _with_columns, in the types they have:
# made Python objects, a 200,000-hop chunk's roles took 200 ms instead of 126, each test of
# a category's or an Arrow text's values a Python comparison per hop).
READ_COLUMNS = [
    "host",
    "in_iface",
    "out_iface",
    "physin",
    "physout",
    "macdst",
    "macsrc",
    "src",
    "hook",
    "ttl",
]


# An optional column: how many hops a row stands for. Follow's window learns its bridges at
# every step from ~100,000 hops that are ~1,000 distinct rows of what is read here; each is
# given once, with the times it was seen (what the MACs are counted by).
TIMES = "times"


def _counts(here: pd.DataFrame, values: pd.Series) -> pd.Series:
    """How often each value (rows of ``here``) was seen, the most seen first."""
    if TIMES not in here.columns:
        # as Python objects: ties keep the order they had (``_own_mac`` takes the first)
        return values.astype("object").value_counts()
    times = here.loc[values.index, TIMES].groupby(values.to_numpy()).sum()
    counts: pd.Series = times.sort_values(ascending=False, kind="stable")
    return counts


def _with_columns(hops: pd.DataFrame) -> pd.DataFrame:
    """The hops with every column this module reads (missing ones all null)."""
    # one assign (a column set at a time rebuilt the frame's index of columns each time)
    return hops.assign(**{c: None for c in READ_COLUMNS if c not in hops.columns})


def _same_host(column: pd.Series, host: object) -> pd.Series:
    """Rows of this host (a missing host matches missing hosts)."""
    if missing(host):
        return column.isna()
    return column.eq(str(host))


def _text(value: object) -> str | None:
    """A string, or None for a missing value."""
    return None if missing(value) else str(value)


def _own_mac(here: pd.DataFrame) -> str | None:
    """The most frequent destination MAC of frames the bridge handed up to the host stack."""
    macs = _handed_up_macs(here)
    if macs.empty:
        return None
    return str(_counts(here, macs).index[0])


def _handed_up_macs(here: pd.DataFrame) -> pd.Series:
    """The destination MACs of the frames the bridge handed up to the host stack."""
    handed_up = here["hook"].eq("INPUT") | (here["hook"].eq("FORWARD") & here["physout"].isna())
    return here.loc[handed_up & here["macdst"].notna(), "macdst"]


def _addressed_to_bridge(here: pd.DataFrame) -> str | None:
    """Fallback when nothing was delivered or routed: the destination MAC of entering frames
    that is neither broadcast nor the MAC of a port's host, for an IP not behind any port."""
    macs = _addressed_macs(here)
    return None if macs.empty else str(_counts(here, macs).index[0])


def _addressed_macs(here: pd.DataFrame) -> pd.Series:
    """``_addressed_to_bridge``'s candidates: one per entering frame."""
    entered = here[here["physin"].notna() & here["macdst"].notna()]
    port_macs = set(entered["macsrc"].dropna())
    port_ips = set(entered["src"].dropna())
    other = ~entered["macdst"].isin(port_macs | {BROADCAST}) & ~entered["dst"].isin(port_ips)
    return entered.loc[other, "macdst"]


def decided_bridges(hops: pd.DataFrame) -> dict[tuple[str | None, str], BridgeFacts] | None:
    """``learn_bridges``, or None when a bridge's own MAC is a tie (two MACs seen as often):
    which one is taken then depends on the order of the hops, and follow learns its window's
    bridges from its hops in another order than one assembly of them has them. A row stands
    for as many hops as its TIMES says, when the table has it."""
    frame = _with_columns(hops)
    facts = _learned(frame)
    for host, name in facts:
        here = frame[_same_host(frame["host"], host) & frame["in_iface"].eq(name)]
        macs = _handed_up_macs(here)
        if _tied(here, macs) or (macs.empty and _tied(here, _addressed_macs(here))):
            return None
    return facts


def _tied(here: pd.DataFrame, macs: pd.Series) -> bool:
    counts = _counts(here, macs)
    return len(counts) > 1 and counts.iloc[0] == counts.iloc[1]


def _behind_ports(here: pd.DataFrame, column: str) -> dict[str, tuple[str, ...]]:
    """Per bridge port, the distinct values of ``column`` on frames that entered by it."""
    entered = here.loc[here["physin"].notna() & here[column].notna(), ["physin", column]]
    # each (port, value) once before the text of each is taken: a bridge's frames repeat few
    distinct = entered.drop_duplicates()
    found = {
        str(port): tuple(sorted({str(v) for v in values}))
        for port, values in distinct.groupby("physin", observed=True)[column]
    }
    return dict(sorted(found.items()))  # by port name (a category's order is its first sight)


def assign_roles(
    packets: pd.DataFrame, bridges: dict[tuple[str | None, str], BridgeFacts] | None = None
) -> pd.DataFrame:
    """Add ``role`` ("bridge"|"nic"|None) and ``role_switch`` (bool) to each hop.

    Args:
        packets: hops grouped into packets (``packet``, ``hop_n``) with hooks resolved.
        bridges: learned facts (from more hops than these: follow's window); by default
            learned from ``packets`` themselves. The bridges are the devices they name.

    Returns:
        A copy with the two columns; hops not on a bridge have role None.
    """
    frame = _with_columns(packets)  # once, for the learning too
    given = bridges is not None
    bridges = bridges if bridges is not None else _learned(frame)
    # given facts name every bridge (a hop on one may be the only hop of it here)
    names = {name for _, name in (bridges if given else _bridge_names(frame))}
    role = _role_by_hop(frame, _to_own_mac(frame, bridges), names)
    role = _role_from_next_hop(frame, role, names)
    result = packets.copy(deep=False)  # copy-on-write: the hop columns are shared, not copied
    result["role"] = role.astype("object")
    result["role_switch"] = _switches(frame["packet"], result["role"])
    return result


def _to_own_mac(
    frame: pd.DataFrame, bridges: dict[tuple[str | None, str], BridgeFacts]
) -> tuple[np.ndarray, np.ndarray]:
    """Per hop, whether it entered by a bridge whose own MAC is known, and whether its frame
    was addressed to that MAC.

    One vectorised pass per bridge (a host has a few): a per-hop lookup in Python cost most of
    the roles' time on a million hops; each hop's own MAC compared with its destination MAC
    as Python objects, 18 ms of a 200,000-hop chunk's roles, the destination MACs with one
    bridge's MAC at a time ~1 ms."""
    known = np.zeros(len(frame), dtype=bool)
    to_own = np.zeros(len(frame), dtype=bool)
    for (host, name), facts in bridges.items():
        if facts.mac is not None:
            mask = _same_host(frame["host"], host) & frame["in_iface"].eq(name)
            here = mask.to_numpy(dtype=bool, na_value=False)
            known |= here
            to_own |= here & frame["macdst"].eq(facts.mac).to_numpy(dtype=bool, na_value=False)
    return known, to_own


def _role_by_hop(
    frame: pd.DataFrame, own: tuple[np.ndarray, np.ndarray], bridges: set[object]
) -> pd.Series:
    """The role each hop shows on its own (None where the hop alone cannot tell); ``own``:
    ``_to_own_mac``'s; ``bridges`` the names of the bridge devices (``_bridge_names``)."""
    on_in = frame["in_iface"].isin(bridges).to_numpy(bool)
    on_out = frame["out_iface"].isin(bridges).to_numpy(bool)
    physin, physout = frame["physin"].notna().to_numpy(), frame["physout"].notna().to_numpy()
    hook = frame["hook"]
    prerouting = on_in & hook.eq("PREROUTING").to_numpy(dtype=bool, na_value=False)
    known, to_own = own
    macdst = frame["macdst"]
    to_other = macdst.notna().to_numpy() & known & ~to_own
    broadcast = macdst.eq(BROADCAST).to_numpy(dtype=bool, na_value=False)
    conditions = [
        physin & physout,  # switched between two ports of the bridge
        on_in & hook.eq("INPUT").to_numpy(dtype=bool, na_value=False),  # to a host socket
        on_in & frame["out_iface"].notna().to_numpy() & ~physout,  # routed by the host
        prerouting & to_own,  # addressed to the bridge itself
        prerouting & (to_other | broadcast),
        on_out & ~physout,  # sent or routed into the bridge by the host
        on_out & frame["in_iface"].isna().to_numpy(),  # a host socket's packet leaving by a port
    ]
    # chosen as numbers, then made text once (np.select's text array, made Python objects and
    # its empty strings replaced, cost more than the conditions)
    choices = [BRIDGE, NIC, NIC, NIC, BRIDGE, NIC, NIC]
    role = np.select(conditions, choices, default=UNDECIDED)
    return pd.Series(ROLE_TEXT[role], index=frame.index, dtype="object")


# _role_by_hop's numbers for the roles, and their text (None: the hop alone cannot tell).
UNDECIDED, BRIDGE, NIC = 0, 1, 2
ROLE_TEXT = np.array([None, "bridge", "nic"], dtype=object)


def _bridge_names(frame: pd.DataFrame) -> set[tuple[object, object]]:
    """(host, device) pairs that are bridges: seen with PHYSIN in or PHYSOUT out."""
    # distinct pairs first: a million hops share a few
    entered = frame.loc[frame["physin"].notna(), ["host", "in_iface"]].drop_duplicates()
    left = frame.loc[frame["physout"].notna(), ["host", "out_iface"]].drop_duplicates()
    pairs: set[tuple[object, object]] = set()
    for seen in (entered, left):
        pairs |= set(zip(seen.iloc[:, 0].tolist(), seen.iloc[:, 1].tolist(), strict=True))
    return {(host, name) for host, name in pairs if isinstance(name, str)}


def _role_from_next_hop(frame: pd.DataFrame, role: pd.Series, bridges: set[object]) -> pd.Series:
    """A PREROUTING hop on a bridge whose MAC tells nothing takes the role of its next hop."""
    undecided = role.isna() & frame["in_iface"].isin(bridges)
    following = role.groupby(frame["packet"].to_numpy()).bfill()
    return role.where(~undecided, following)


def _switches(packet: pd.Series, role: pd.Series) -> pd.Series:
    """True on a hop whose role differs from the last known role earlier on the packet."""
    keys = packet.to_numpy()
    before = role.groupby(keys).shift(1).groupby(keys).ffill()
    return (role.notna() & before.notna() & role.ne(before)).astype(bool)
