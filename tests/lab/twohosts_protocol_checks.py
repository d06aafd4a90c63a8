"""What logpath must make of the two-host lab's UDP, ICMP and IPv6 lines (scenario
``udp-icmp-ipv6`` of tests/lab/twohosts.py), checked through its CLI's JSON.

Shared by tests/lab/test_lab_two_hosts.py (lines captured live) and tests/test_two_hosts.py
(the committed samples), like tests/lab/twohosts_checks.py for the TCP connections. Every
expected value comes from the topology (tests/lab/twohosts.py), from netfilter's rules of
traversal, or from the log lines themselves (``logpath hops``), never from a previous run.

The four exchanges, all from the client behind hosta's MASQUERADE to hostb:

- ``udp``: a datagram to hostb's published UDP port, DNATed to the server, answered;
- ``echo``: two ICMP echo requests to hostb's WAN address, answered by hostb itself;
- ``refused``: a datagram to the published port whose server port nobody listens on: the
  server's kernel answers ICMP port unreachable, which quotes the datagram as it arrived;
- ``tcp6``: a TCP connection over IPv6 (NAT66 on both hosts, like IPv4's), no IP ID at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from . import twohosts as th
from .hopview import HOOK_PLACES
from .traffic import ECHO_ID
from .twohosts_checks import DEFAULT_TTL, HOOKS, PATH, Json, Store, place, prefix_host

# The hooks a packet passes on a host that forwards it, delivers it to itself or sends it.
ROLE_PLACES = HOOK_PLACES
# what a packet's journey ends as, by the role of the last host that logged it
FATE = {"forward": "forwarded", "deliver": "delivered", "send": "sent"}
ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY, ICMP_UNREACHABLE, ICMP_PORT_UNREACHABLE = 8, 0, 3, 3


@dataclass(frozen=True)
class Addresses:
    """One address family's addresses in the lab (IPv6 as logpath writes them: compressed)."""

    client: str
    hosta: str  # hosta's WAN address: the client's, after MASQUERADE
    hostb: str  # hostb's WAN address: the published one
    server: str


ADDRESSES = {
    4: Addresses(th.CLIENT_IP, th.HOSTA_WAN_IP, th.HOSTB_WAN_IP, th.SERVER_IP),
    6: Addresses(th.CLIENT_IP6, th.HOSTA_WAN_IP6, th.HOSTB_WAN_IP6, th.SERVER_IP6),
}


@dataclass(frozen=True)
class Exchange:
    """One exchange of the scenario, as the topology defines it."""

    name: str
    proto: str  # the flow's protocol (the datagram's for ``refused``: its error is related)
    family: int
    published: int | None  # hostb's published port; None: to hostb's own address (echo)
    server_port: int | None  # the server's port it is DNATed to
    state: str  # the flow's state: what the answers make of it
    directions: tuple[str, ...] | None  # every packet's direction in order, when fixed

    @property
    def addresses(self) -> Addresses:
        return ADDRESSES[self.family]

    def role(self, host: str, direction: str) -> str:
        """What ``host`` does with a packet of this exchange: hostb itself answers the echo."""
        if host == "hostb" and self.name == "echo":
            return "deliver" if direction == "orig" else "send"
        return "forward"


EXCHANGES = {
    exchange.name: exchange
    for exchange in (
        Exchange("udp", "udp", 4, th.UDP_PORT, th.UDP_SERVER_PORT, "replied", ("orig", "reply")),
        Exchange("echo", "icmp", 4, None, None, "replied", ("orig", "reply") * len(th.ECHO_SEQS)),
        Exchange(
            "refused",
            "udp",
            4,
            th.UDP_CLOSED_PORT,
            th.UDP_CLOSED_SERVER_PORT,
            "unreplied",
            ("orig", "reply"),
        ),
        Exchange("tcp6", "tcp", 6, th.PUBLISHED_PORT, th.SERVER_PORT, "closed", None),
    )
}


def is_error(hop: Json) -> bool:
    """An ICMP port unreachable (which quotes a packet: ``inner``)."""
    return hop["proto"] == "icmp" and hop["icmp_type"] == ICMP_UNREACHABLE


def belongs(hop: Json, exchange: Exchange) -> bool:
    """Is this log line (``logpath hops``) one of the exchange's? Decided by the lines' own
    fields: the scenario's exchanges differ by family, protocol and ports."""
    if hop["family"] != exchange.family:
        return False
    if exchange.name == "echo":
        return hop["proto"] == "icmp" and hop["icmp_type"] in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)
    ports = {exchange.published, exchange.server_port}
    if is_error(hop):
        return bool(hop["inner"]["proto"] == exchange.proto and hop["inner"]["dport"] in ports)
    return hop["proto"] == exchange.proto and bool(ports & {hop["sport"], hop["dport"]})


def line_direction(hop: Json, exchange: Exchange) -> str:
    """orig or reply, from the line itself: requests go to the published (or server) port, or
    are echo requests; answers and the ICMP error come back."""
    if exchange.name == "echo":
        return "orig" if hop["icmp_type"] == ICMP_ECHO_REQUEST else "reply"
    if is_error(hop):
        return "reply"
    return "orig" if hop["dport"] in (exchange.published, exchange.server_port) else "reply"


def lines_of(hops: list[Json], exchange: Exchange) -> list[Json]:
    return [hop for hop in hops if belongs(hop, exchange)]


def client_port(lines: list[Json], exchange: Exchange) -> int:
    """The client's port (its echo identifier for ICMP echo), as every request line shows it:
    MASQUERADE kept it on the link (the lab has no port clash)."""
    if exchange.name == "echo":
        ids = {hop["icmp_id"] for hop in lines}
        assert ids == {ECHO_ID}, ids  # the identifier traffic.ping sent, unchanged by NAT
        return ECHO_ID
    ports = {hop["sport"] for hop in lines if line_direction(hop, exchange) == "orig"}
    assert len(ports) == 1, ports
    return int(ports.pop())


def path(direction: str, hosts: tuple[str, ...]) -> list[str]:
    """The hosts in the logs, in the order a packet of this direction crosses them."""
    return [host for host in PATH[direction] if host in hosts]


def packets_in(lines: list[Json], exchange: Exchange, hosts: tuple[str, ...]) -> int:
    """Packets in an exchange's lines: every packet passes raw PREROUTING or raw OUTPUT once on
    each host, so count them on the first host in the logs on each direction's way."""
    return sum(
        hop["host"] == path(line_direction(hop, exchange), hosts)[0]
        and place(hop) in ("raw:pre", "raw:out")
        for hop in lines
    )


def expected_nat(exchange: Exchange, port: int, hosts: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """(type, from, to, hook, host) of each translation the hosts in the logs applied: hosta's
    MASQUERADE, and hostb's DNAT of the published port (none for the echo, hostb's own)."""
    found = {masquerade(exchange, port)}
    if exchange.published is not None:
        found.add(published_dnat(exchange))
    return {nat for nat in found if nat[4] in hosts}


def masquerade(exchange: Exchange, port: int) -> tuple[str, str, str, str, str]:
    """hosta's MASQUERADE of the client, as a NAT record (type, from, to, hook, host)."""
    a = exchange.addresses
    client, masqueraded = endpoint(a.client, port, exchange), endpoint(a.hosta, port, exchange)
    return ("snat", client, masqueraded, "POSTROUTING", "hosta")


def published_dnat(exchange: Exchange) -> tuple[str, str, str, str, str]:
    """hostb's DNAT of its published port to the server, as a NAT record."""
    a = exchange.addresses
    published = endpoint(a.hostb, exchange.published, exchange)
    return ("dnat", published, endpoint(a.server, exchange.server_port, exchange), "PREROUTING",
            "hostb")  # fmt: skip


def endpoint(address: str, port: int | None, exchange: Exchange) -> str:
    """``addr:port`` as the NAT records write it (``[v6]:port``; no port for ICMP)."""
    if exchange.proto == "icmp" or port is None:
        return address
    return f"[{address}]:{port}" if exchange.family == 6 else f"{address}:{port}"


def nat_of(flow: Json) -> set[tuple[Any, ...]]:
    return {(n["type"], n["from"], n["to"], n["hook"], n["host"]) for n in flow["nat"]}


def exchange_flow(flows: list[Json], exchange: Exchange) -> Json:
    """The one flow of an exchange: by family, protocol and the published port it was sent to."""
    found = [
        f
        for f in flows
        if (f["family"], f["proto"]) == (exchange.family, exchange.proto)
        and (exchange.published is None or f["orig"]["dport"] == exchange.published)
    ]
    assert len(found) == 1, [(f["proto"], f["orig"]) for f in flows]
    return found[0]


@dataclass(frozen=True)
class Listing:
    """A store's flows and hops, each read once through the CLI (``logpath flows|hops``)."""

    store: Store
    flows: list[Json]
    hops: list[Json]

    @classmethod
    def of(cls, store: Store) -> Listing:
        return cls(store, store.flows(), store.hops())


def check_flow(listing: Listing, exchange: Exchange, hosts: tuple[str, ...]) -> Json:
    """The exchange is one flow, seen by ``hosts``, with the tuples, NAT, state and counts the
    topology and the lines imply. Returns the flow."""
    flow = exchange_flow(listing.flows, exchange)
    lines = lines_of(listing.hops, exchange)
    port = client_port(lines, exchange)
    a = exchange.addresses
    # the orig tuple as the first packet shows it where it is first logged
    client = a.client if "hosta" in hosts else a.hosta
    dport = exchange.published
    assert flow["orig"] == {"src": client, "sport": port, "dst": a.hostb, "dport": dport}
    # the reply tuple as answers (or the ICMP error's quote) arrive on the first host in the
    # logs that saw them: hostb still shows the server's side, before its de-DNAT
    if exchange.name == "echo":
        # an echo id stays in sport both ways; hostb answers from its own address
        assert flow["reply"] == {"src": a.hostb, "sport": port, "dst": a.hosta, "dport": None}
    else:
        server = (a.server, exchange.server_port) if "hostb" in hosts else (a.hostb, dport)
        assert flow["reply"] == {"src": server[0], "sport": server[1], "dst": a.hosta,
                                 "dport": port}  # fmt: skip
    assert (flow["proto"], flow["family"], flow["hosts"]) == (
        exchange.proto,
        exchange.family,
        list(hosts),
    )
    assert nat_of(flow) == expected_nat(exchange, port, hosts)
    assert flow["state"] == exchange.state
    assert flow["answered"] == (exchange.name != "refused")
    assert flow["stopped"] == 0
    assert {hop["host"] for hop in lines} == set(hosts)
    assert flow["hops"] == len(lines)
    assert flow["packets"] == packets_in(lines, exchange, hosts), (exchange.name, flow)
    return flow


def check_journey(store: Store | Listing, exchange: Exchange, hosts: tuple[str, ...]) -> list[Json]:
    """The exchange's flow, and every packet of it through ``logpath journey``; returns its
    packets."""
    listing = store if isinstance(store, Listing) else Listing.of(store)
    flow = check_flow(listing, exchange, hosts)
    journey = listing.store.journey(flow["id"])
    assert journey["flow"] == flow
    packets: list[Json] = journey["packets"]
    assert [p["n"] for p in packets] == list(range(1, flow["packets"] + 1))
    assert sum(len(p["hops"]) for p in packets) == flow["hops"]
    port = flow["orig"]["sport"]
    for packet in packets:
        check_packet(packet, exchange, port, hosts)
    directions = tuple(p["direction"] for p in packets)
    if exchange.directions is not None:
        assert directions == exchange.directions, directions
    else:  # TCP: the connection starts with the client's SYN, answered by a SYN-ACK
        assert [p["hops"][0]["flags"] for p in packets[:2]] == [["SYN"], ["ACK", "SYN"]]
        assert directions[:2] == ("orig", "reply")
    if exchange.name == "echo":
        # request then reply, for each sequence number in turn
        assert [(p["hops"][0]["icmp_type"], p["hops"][0]["icmp_seq"]) for p in packets] == [
            (kind, seq) for seq in th.ECHO_SEQS for kind in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)
        ]
    if exchange.name == "refused":
        # the port unreachable joins the flow of the datagram it quotes, coming back
        error = packets[1]
        assert all(is_error(hop) for hop in error["hops"]), error
        assert error["hops"][0]["icmp_code"] == ICMP_PORT_UNREACHABLE
        assert all(not is_error(hop) for hop in packets[0]["hops"])
    return packets


def places_of(
    exchange: Exchange, host: str, direction: str, first: bool, kept: set[str] | None = None
) -> list[str]:
    """Where ``host`` logs a packet of the exchange: the hooks of its role, the nat ones only
    for the connection's first packet (nat chains see only that one), and of those only the
    ``kept`` ones (None: all)."""
    return [
        p
        for p in ROLE_PLACES[exchange.role(host, direction)]
        if (first or not p.startswith("nat:")) and (kept is None or p in kept)
    ]


def check_packet(
    packet: Json,
    exchange: Exchange,
    port: int,
    hosts: tuple[str, ...],
    kept: set[str] | None = None,
) -> None:
    """One packet: its direction as its lines say, its hops on each host in path order, each
    at the hooks its host's role passes (of the ``kept`` ones, when the hosts log only those),
    with the addresses, interfaces and TTL the topology gives there."""
    direction = packet["direction"]
    assert {line_direction(hop, exchange) for hop in packet["hops"]} == {direction}, packet["n"]
    first = packet["n"] == 1  # the packet that made the conntrack entry, on every host
    on_path = [h for h in path(direction, hosts) if places_of(exchange, h, direction, first, kept)]
    seen = [hop["host"] for hop in packet["hops"]]
    # all of one host's hops, then all of the next host's: never interleaved
    assert seen == sorted(seen, key=on_path.index), (packet["n"], seen)
    assert set(seen) == set(on_path), (packet["n"], seen)
    for host in on_path:
        own = [hop for hop in packet["hops"] if hop["host"] == host]
        places = places_of(exchange, host, direction, first, kept)
        assert [place(hop) for hop in own] == places, (packet["n"], host)
        for hop in own:
            assert prefix_host(hop) == hop["host"]  # each host's own rule wrote its lines
            assert hop["hook"] == HOOKS[place(hop).split(":")[1]]
            assert hop["table"] == place(hop).split(":")[0]
            assert hop["ttl"] == expected_ttl(hop, exchange, direction), (packet["n"], hop)
            check_addresses(hop, exchange, direction, port)
    role = exchange.role(on_path[-1], direction)
    # no ruleset is given: a packet's fate is where its logs end only when something later
    # shows it went on (an answer, or an error from beyond: the refused datagram's); the
    # refused datagram's port unreachable, last logged leaving for the client, is unknown
    fate = "unknown" if exchange.name == "refused" and packet["n"] == 2 else FATE[role]
    assert (packet["fate"], packet["stopped_at"]) == (fate, None), packet["n"]


def expected_ttl(hop: Json, exchange: Exchange, direction: str) -> int:
    """Every sender here (client, server, hostb) starts at the default TTL (hop limit); each
    host that forwards the packet takes one off, from its FORWARD hook on."""
    way = PATH[direction]
    before = way[: way.index(hop["host"])]
    routers = sum(exchange.role(host, direction) == "forward" for host in before)
    routed = exchange.role(hop["host"], direction) == "forward" and place(hop)[-4:] != ":pre"
    return DEFAULT_TTL - routers - routed


Endpoint = tuple[str, int | None]


def expected_endpoints(
    host: str, hook: str, exchange: Exchange, direction: str, port: int
) -> tuple[Endpoint, Endpoint, str | None, str | None]:
    """(source, destination, IN=, OUT= once routed) of a packet of the exchange on ``host`` at
    ``hook`` (pre, in, fwd, out or post). Past nat PREROUTING, hostb has DNATed a request and
    hosta de-SNATed an answer; hostb de-DNATs its answers in POSTROUTING, after its last LOG
    rule. An ICMP error's are those of the reply it stands for (it has no ports of its own)."""
    a = exchange.addresses
    translated = hook not in ("pre", "out")  # nat PREROUTING (or OUTPUT) done
    own = exchange.published is None
    ported = exchange.proto != "icmp"
    client = (a.client, port if ported else None)
    masqueraded = (a.hosta, port if ported else None)
    published = (a.hostb, exchange.published)
    server = published if own else (a.server, exchange.server_port)
    if (host, direction) == ("hosta", "orig"):
        want = (client, published, th.BRIDGE_A, th.WAN)
    elif (host, direction) == ("hostb", "orig"):
        want = (
            masqueraded,
            server if translated else published,
            th.WAN,
            None if own else th.BRIDGE_B,
        )
    elif (host, direction) == ("hostb", "reply"):
        want = (server, masqueraded, None if own else th.BRIDGE_B, th.WAN)
    else:
        want = (published, client if translated else masqueraded, th.WAN, th.BRIDGE_A)
    return want


def check_addresses(hop: Json, exchange: Exchange, direction: str, port: int) -> None:
    """Addresses and interfaces of one hop (and of the packet an ICMP error quotes), from where
    it was logged (``expected_endpoints``)."""
    hook = place(hop).split(":")[1]
    want = expected_endpoints(hop["host"], hook, exchange, direction, port)
    source, destination, in_iface, out_iface = want
    if is_error(hop):
        # the error has no ports of its own; the datagram it quotes went the other way: as it
        # left hosta (MASQUERADEd) until hosta's nat PREROUTING de-SNATs the quote too
        quoted = (hop["inner"]["src"], hop["inner"]["sport"], hop["inner"]["dst"],
                  hop["inner"]["dport"])  # fmt: skip
        assert quoted == (*destination, *source), hop
        assert hop["inner"]["proto"] == exchange.proto
        source, destination = (source[0], None), (destination[0], None)
    got = ((hop["src"], hop["sport"]), (hop["dst"], hop["dport"]), hop["in"], hop["out"])
    routed = hook not in ("pre", "in")  # OUT= set: routed (locally delivered hops have none)
    assert got == (source, destination, in_iface, out_iface if routed else None), (hop, want)


def check_flows(store: Store, hosts: tuple[str, ...] = th.HOSTS) -> None:
    """``logpath flows`` alone: the four exchanges, each one flow as ``hosts`` saw it."""
    listing = Listing.of(store)
    assert len(listing.flows) == len(EXCHANGES), [(f["proto"], f["orig"]) for f in listing.flows]
    for exchange in EXCHANGES.values():
        check_flow(listing, exchange, hosts)


def check_all(store: Store, hosts: tuple[str, ...] = th.HOSTS) -> dict[str, list[Json]]:
    """The scenario's store holds exactly the four exchanges, each one flow as ``hosts`` saw
    it, every packet joined across them. Returns each exchange's packets by name."""
    listing = Listing.of(store)
    flows = listing.flows
    assert len(flows) == len(EXCHANGES), [(f["proto"], f["orig"]) for f in flows]
    assert sum(f["hops"] for f in flows) == len(listing.hops)
    return {name: check_journey(listing, exchange, hosts) for name, exchange in EXCHANGES.items()}


def check_joined_without_prerouting(store: Store | Listing, kept: set[str], name: str) -> None:
    """Both hosts logged at the ``kept`` hooks only (from FORWARD on): still one flow per
    exchange; exchange ``name``'s packets each joined across the hosts that logged it, in path
    order, with the TTL and addresses of its hooks; tuples and NAT as the first lines that show
    them imply."""
    listing = store if isinstance(store, Listing) else Listing.of(store)
    assert len(listing.flows) == len(EXCHANGES), [(f["proto"], f["orig"]) for f in listing.flows]
    assert sum(f["hops"] for f in listing.flows) == len(listing.hops)
    exchange = EXCHANGES[name]
    flow = exchange_flow(listing.flows, exchange)
    lines = lines_of(listing.hops, exchange)
    port = client_port(lines, exchange)
    hosts = tuple(host for host in th.HOSTS if any(h["host"] == host for h in lines))
    assert flow["hosts"] == list(hosts)
    assert flow["hops"] == len(lines)
    # hosta forwards every packet of these exchanges: one filter FORWARD line each
    fwd = [h for h in lines if (h["host"], place(h)) == ("hosta", "filter:fwd")]
    assert flow["packets"] == len(fwd), (exchange.name, flow["packets"], len(fwd))
    a = exchange.addresses
    # hosta logs the first packet first, with the client's address (past its nat PREROUTING)
    assert flow["orig"] == {"src": a.client, "sport": port, "dst": a.hostb,
                            "dport": exchange.published}  # fmt: skip
    # the reply tuple, as the first answer (or the error's quote) shows it where first logged
    host = next(h for h in PATH["reply"] if places_of(exchange, h, "reply", False, kept))
    first_place = places_of(exchange, host, "reply", False, kept)[0]
    source, destination, _, _ = expected_endpoints(
        host, first_place.split(":")[1], exchange, "reply", port
    )
    if exchange.name == "echo":  # the echo id in sport both ways
        source, destination = (source[0], port), (destination[0], None)
    assert flow["reply"] == {"src": source[0], "sport": source[1], "dst": destination[0],
                             "dport": destination[1]}  # fmt: skip
    # a translation is known where some line shows the translated address; hosta applies
    # the MASQUERADE, hostb the DNAT
    shown = {h[side] for h in lines for side in ("src", "dst")}
    want = set()
    if a.hosta in shown:
        want.add(masquerade(exchange, port))
    if a.server in shown:
        want.add(published_dnat(exchange))
    assert nat_of(flow) == want, (exchange.name, flow["nat"])
    packets = listing.store.journey(flow["id"])["packets"]
    assert [p["n"] for p in packets] == list(range(1, flow["packets"] + 1))
    assert sum(len(p["hops"]) for p in packets) == flow["hops"]
    directions = tuple(p["direction"] for p in packets)
    if exchange.directions is not None:
        assert directions == exchange.directions, (exchange.name, directions)
    for packet in packets:
        check_packet(packet, exchange, port, hosts, kept)


def without_prerouting() -> list[Any]:
    """pytest parameters (variant, exchange) for check_joined_without_prerouting: every
    NO_PREROUTING variant with every exchange."""
    return [
        pytest.param(variant, name, id=f"{variant}-{name}")
        for variant in ("filter-forward-only", "from-forward-on")
        for name in EXCHANGES
    ]
