"""What logpath must make of the two-host lab's lines, checked through its CLI's JSON.

Shared by tests/lab/test_lab_two_hosts.py (lines captured live) and tests/test_two_hosts.py
(the committed samples). Every expected value comes from the topology (tests/lab/twohosts.py)
or from the log lines themselves (``logpath hops``), never from a previous run's output.

A store is read through ``run_json(*args)``: the parsed output of ``logpath ARGS --json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import twohosts as th

RunJson = Callable[..., Any]
Json = dict[str, Any]

HOOKS = {
    "pre": "PREROUTING",
    "in": "INPUT",
    "fwd": "FORWARD",
    "out": "OUTPUT",
    "post": "POSTROUTING",
}
ROUTED = ["raw:pre", "mangle:pre", "nat:pre", "mangle:fwd", "filter:fwd", "mangle:post", "nat:post"]
DEFAULT_TTL = 64  # net.ipv4.ip_default_ttl of a new network namespace
# published port on hostb -> the server's port it is DNATed to
PORTS = {th.PUBLISHED_PORT: th.SERVER_PORT, th.LOSSY_PORT: th.LOSSY_SERVER_PORT}
# orig packets go client -> hosta -> hostb -> server; replies the other way
PATH = {"orig": list(th.HOSTS), "reply": list(reversed(th.HOSTS))}


def place(hop: Json) -> str:
    """``table:hook`` as the LOG prefix names it (``lp:nat:pre:hostb-x1a2b3c`` -> ``nat:pre``)."""
    _, table, hook, _ = hop["prefix"].split(":", 3)
    return f"{table}:{hook}"


def prefix_host(hop: Json) -> str:
    """The host the LOG prefix names."""
    return str(hop["prefix"].split(":", 3)[3].split("-")[0])


def endpoint(hop: Json, side: str) -> tuple[str, int]:
    """(address, port) of a hop's source (``src``) or destination (``dst``)."""
    return hop[side], hop["sport" if side == "src" else "dport"]


@dataclass
class Store:
    """One store's view through the CLI: its hops, flows and journeys."""

    run_json: RunJson
    path: str

    def hops(self) -> list[Json]:
        return list(self.run_json("hops", "--store", self.path))

    def flows(self) -> list[Json]:
        return list(self.run_json("flows", "--store", self.path))

    def journey(self, flow_id: str) -> Json:
        return dict(self.run_json("journey", flow_id, "--store", self.path))


def connection_flow(flows: list[Json], published: int) -> Json:
    """The one flow of the client's connection to hostb's published port ``published``."""
    found = [f for f in flows if f["orig"]["dport"] == published and f["proto"] == "tcp"]
    assert len(found) == 1, [f["orig"] for f in flows]
    return found[0]


def lines_of(hops: list[Json], client_port: int) -> list[Json]:
    """The log lines of one connection: MASQUERADE kept the client's port on the link (the lab
    has no port clash), so every hop of the connection shows it as sport or dport."""
    return [hop for hop in hops if client_port in (hop["sport"], hop["dport"])]


def entries(lines: list[Json]) -> tuple[int, int]:
    """(orig, reply) packets in a connection's lines, counted where they enter the lab:
    orig at hosta's raw PREROUTING from the client's bridge, replies at hostb's from the
    server's. With one host's lines only, where they enter that host."""
    hosts = {hop["host"] for hop in lines}
    orig_in = ("hosta", th.BRIDGE_A) if "hosta" in hosts else ("hostb", th.WAN)
    reply_in = ("hostb", th.BRIDGE_B) if "hostb" in hosts else ("hosta", th.WAN)
    raw = [hop for hop in lines if place(hop) == "raw:pre"]
    return (
        sum((hop["host"], hop["in"]) == orig_in for hop in raw),
        sum((hop["host"], hop["in"]) == reply_in for hop in raw),
    )


def expected_nat(published: int, client_port: int, hosts: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """(type, from, to, hook, host) of each translation the hosts in the logs applied."""
    snat = ("snat", f"{th.CLIENT_IP}:{client_port}", f"{th.HOSTA_WAN_IP}:{client_port}",
            "POSTROUTING", "hosta")  # fmt: skip
    dnat = ("dnat", f"{th.HOSTB_WAN_IP}:{published}", f"{th.SERVER_IP}:{PORTS[published]}",
            "PREROUTING", "hostb")  # fmt: skip
    return {nat for nat in (snat, dnat) if nat[4] in hosts}


def nat_of(flow: Json) -> set[tuple[Any, ...]]:
    return {(n["type"], n["from"], n["to"], n["hook"], n["host"]) for n in flow["nat"]}


def check_flow(store: Store, published: int, hosts: tuple[str, ...]) -> Json:
    """The connection to ``published`` is one flow with the tuples, NAT and counts the topology
    and the lines imply, seen by ``hosts``. Returns the flow."""
    flow = connection_flow(store.flows(), published)
    client_port = flow["orig"]["sport"]
    first = hosts[0]
    # the orig tuple as the first host in the logs saw the first packet arrive
    source = th.CLIENT_IP if first == "hosta" else th.HOSTA_WAN_IP
    assert flow["orig"] == {"src": source, "sport": client_port, "dst": th.HOSTB_WAN_IP,
                            "dport": published}  # fmt: skip
    # the reply tuple as the answer arrives on the first host in the logs that saw it
    server = (th.SERVER_IP, PORTS[published]) if "hostb" in hosts else (th.HOSTB_WAN_IP, published)
    assert flow["reply"] == {"src": server[0], "sport": server[1], "dst": th.HOSTA_WAN_IP,
                             "dport": client_port}  # fmt: skip
    assert (flow["proto"], flow["family"], flow["hosts"]) == ("tcp", 4, list(hosts))
    assert nat_of(flow) == expected_nat(published, client_port, hosts)
    assert flow["state"] == "closed"  # client and server both sent their FIN
    lines = lines_of(store.hops(), client_port)
    assert {hop["host"] for hop in lines} == set(hosts)
    assert flow["hops"] == len(lines)
    assert flow["packets"] == sum(entries(lines))
    return flow


def check_packet(packet: Json, published: int, client_port: int, hosts: tuple[str, ...]) -> None:
    """One packet of the connection: its hops on each host in path order, each hop where its
    prefix says, with the addresses, interfaces and TTL the topology gives there."""
    direction = packet["direction"]
    path = [host for host in PATH[direction] if host in hosts]
    seen = [hop["host"] for hop in packet["hops"]]
    # all of one host's hops, then all of the next host's: never interleaved
    assert seen == sorted(seen, key=path.index), (packet["n"], seen)
    assert set(seen) == set(path), (packet["n"], seen)
    for hop in packet["hops"]:
        assert prefix_host(hop) == hop["host"]  # each host's own rule wrote its lines
        assert hop["hook"] == HOOKS[place(hop).split(":")[1]]
        assert hop["table"] == place(hop).split(":")[0]
    for host in path:
        own = [hop for hop in packet["hops"] if hop["host"] == host]
        places = [place(hop) for hop in own]
        assert places[0] == "raw:pre", places
        assert places == sorted(places, key=ROUTED.index), places  # hook order, no repeat
        # routers before this host on the packet's way, in the full lab path
        before = PATH[direction].index(host)
        for hop in own:
            routed = place(hop).split(":")[1] != "pre"
            assert hop["ttl"] == DEFAULT_TTL - before - routed, (host, place(hop), hop["ttl"])
            check_addresses(hop, direction, published, client_port)


def check_addresses(hop: Json, direction: str, published: int, client_port: int) -> None:
    """Addresses and interfaces of one hop, from where it was logged."""
    # past PREROUTING: routed (OUT= set), and DNAT or the de-SNAT of a reply done (nat PREROUTING)
    routed = dnatted = place(hop).split(":")[1] != "pre"
    client = (th.CLIENT_IP, client_port)
    masqueraded = (th.HOSTA_WAN_IP, client_port)
    published_at = (th.HOSTB_WAN_IP, published)
    server = (th.SERVER_IP, PORTS[published])
    if (hop["host"], direction) == ("hosta", "orig"):
        want = (client, published_at, th.BRIDGE_A, th.WAN)
    elif (hop["host"], direction) == ("hostb", "orig"):
        want = (masqueraded, server if dnatted else published_at, th.WAN, th.BRIDGE_B)
    elif (hop["host"], direction) == ("hostb", "reply"):
        # the reply is de-DNATed after the last LOG rule (in POSTROUTING): hostb never shows it
        want = (server, masqueraded, th.BRIDGE_B, th.WAN)
    else:
        want = (published_at, client if dnatted else masqueraded, th.WAN, th.BRIDGE_A)
    source, destination, in_iface, out_iface = want
    got = (endpoint(hop, "src"), endpoint(hop, "dst"), hop["in"], hop["out"])
    assert got == (source, destination, in_iface, out_iface if routed else None), (hop, want)


def check_journey(store: Store, flow: Json, hosts: tuple[str, ...]) -> list[Json]:
    """Every packet of the flow through ``logpath journey``; returns its packets."""
    journey = store.journey(flow["id"])
    assert journey["flow"] == flow
    packets: list[Json] = journey["packets"]
    assert [p["n"] for p in packets] == list(range(1, flow["packets"] + 1))
    assert sum(len(p["hops"]) for p in packets) == flow["hops"]
    assert (packets[0]["direction"], packets[0]["summary"]) == ("orig", "SYN")
    answers = [p for p in packets if p["direction"] == "reply"]
    assert answers[0]["summary"] == "SYN-ACK"
    published = flow["orig"]["dport"]
    client_port = flow["orig"]["sport"]
    for packet in packets:
        check_packet(packet, published, client_port, hosts)
    return packets


def dropped_syn(packets: list[Json]) -> Json:
    """The connection to the lossy port's first SYN: the one whose hops end on hostb."""
    syns = [p for p in packets if p["summary"] == "SYN"]
    assert len(syns) == 2, [p["summary"] for p in packets]  # the SYN and its retransmission
    return syns[0]


def check_joined(store: Store, hosts: tuple[str, ...] = th.HOSTS) -> dict[int, list[Json]]:
    """Both connections, as flows and journeys; every packet but the dropped SYN forwarded.
    Returns each connection's packets by published port."""
    flows = store.flows()
    assert len(flows) == len(PORTS), [f["orig"] for f in flows]
    found = {}
    for published in PORTS:
        flow = check_flow(store, published, hosts)
        packets = check_journey(store, flow, hosts)
        lossy = dropped_syn(packets) if published == th.LOSSY_PORT else None
        for packet in packets:
            if packet is not lossy:
                assert (packet["fate"], packet["stopped_at"]) == ("forwarded", None), packet["n"]
        found[published] = packets
    return found


def check_dropped_syn(packets: list[Json]) -> None:
    """The lossy connection's two SYNs, as conntrack and the DROP rule shape them."""
    first, again = (p for p in packets if p["summary"] == "SYN")
    on = {
        (syn, host): [place(h) for h in packet["hops"] if h["host"] == host]
        for syn, packet in (("first", first), ("again", again))
        for host in th.HOSTS
    }
    # hosta forwards the first SYN (nat chains: the connection is new) and confirms it, so
    # the retransmission is no longer new there and skips its nat chains
    assert on["first", "hosta"] == ROUTED
    assert on["again", "hosta"] == [p for p in ROUTED if not p.startswith("nat:")]
    # hostb drops the first SYN in filter FORWARD (after its LOG rule): it never reached
    # POSTROUTING, its conntrack entry was never confirmed, so the retransmission is new again
    assert on["first", "hostb"] == ROUTED[: ROUTED.index("filter:fwd") + 1]
    assert on["again", "hostb"] == ROUTED
    assert first["hops"][0]["id"] != again["hops"][0]["id"]  # a new IP ID, the same SEQ
    assert first["hops"][0]["seq"] == again["hops"][0]["seq"]


def check_dropped_syn_fate(store: Store, hosts: tuple[str, ...] = th.HOSTS) -> None:
    """The dropped SYN's logs end where hostb's other packets of the connection went on. Read
    without hostb's ruleset (its drop is a `-m statistic` rule, which logpath cannot decide
    anyway), and the connection was answered: its fate is unknown, not "stopped"."""
    flow = connection_flow(store.flows(), th.LOSSY_PORT)
    syn = dropped_syn(store.journey(flow["id"])["packets"])
    assert (syn["fate"], syn["stopped_at"]) == ("unknown", "FORWARD"), (syn["fate"], flow)
    assert (syn["verdict"], flow["stopped"]) == (None, 0)
    # the client sent it again, and that copy got through: the timeline says so
    packets = store.journey(flow["id"])["packets"]
    again = packets[syn["n"]]  # the next packet (n is 1-based)
    assert (again["direction"], again["summary"], again["fate"]) == ("orig", "SYN", "forwarded")
    assert (syn["sent_again_as"], syn["answered_by"]) == (again["n"], None)


# What hosts with LOG rules in only these chains would have written: exactly these of their
# lines (a LOG rule changes no packet, so the other rules' absence changes none of these).
NO_PREROUTING = {
    "filter-forward-only": {"filter:fwd"},
    "from-forward-on": {"mangle:fwd", "filter:fwd", "mangle:post", "nat:post"},
}


def place_of_line(line: str) -> str:
    """``table:hook`` of a syslog line's LOG prefix."""
    text = line.split("] ", 1)[1]
    return ":".join(text.split(":")[1:3])


def keep_only(files: dict[str, Path], kept: set[str], outdir: Path) -> dict[str, Path]:
    """Copies of the syslog files in outdir with only the lines logged at the ``kept`` places."""
    written = {}
    for host, path in files.items():
        lines = path.read_text().splitlines(keepends=True)
        written[host] = outdir / path.name
        written[host].write_text("".join(line for line in lines if place_of_line(line) in kept))
    return written


def check_joined_without_prerouting(store: Store) -> None:
    """Both hosts logged from FORWARD on only: still one flow per connection, every packet
    joined across the hosts in path order, with the TTL and addresses of its hooks."""
    flows = store.flows()
    assert len(flows) == len(PORTS), [f["orig"] for f in flows]
    hops = store.hops()
    for published, server_port in PORTS.items():
        flow = connection_flow(flows, published)
        client_port = flow["orig"]["sport"]
        assert flow["hosts"] == list(th.HOSTS)
        assert flow["orig"] == {"src": th.CLIENT_IP, "sport": client_port,
                                "dst": th.HOSTB_WAN_IP, "dport": published}  # fmt: skip
        assert flow["reply"] == {"src": th.SERVER_IP, "sport": server_port,
                                 "dst": th.HOSTA_WAN_IP, "dport": client_port}  # fmt: skip
        assert nat_of(flow) == expected_nat(published, client_port, th.HOSTS)
        connection = lines_of(hops, client_port)
        assert flow["hops"] == len(connection)
        # every packet passes filter FORWARD once on each host: count where it enters the lab
        entered = {("hosta", th.BRIDGE_A), ("hostb", th.BRIDGE_B)}
        fwd = [h for h in connection if place(h) == "filter:fwd"]
        assert flow["packets"] == sum((h["host"], h["in"]) in entered for h in fwd)
        for packet in store.journey(flow["id"])["packets"]:
            direction = packet["direction"]
            hosts = [h["host"] for h in packet["hops"]]
            assert hosts == sorted(hosts, key=PATH[direction].index), (packet["n"], hosts)
            assert set(hosts) == set(th.HOSTS), (packet["n"], hosts)
            for hop in packet["hops"]:
                # every kept hop is past routing: one less per router so far, this one included
                before = PATH[direction].index(hop["host"])
                assert hop["ttl"] == DEFAULT_TTL - before - 1
                check_addresses(hop, direction, published, client_port)
