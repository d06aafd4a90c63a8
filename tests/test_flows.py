"""Connections from real logs: the seed's six journeys, the formats router, the lab captures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from seedstore import SAMPLES, replayed_syslog, trace_sample

from logpath.assembly import trace_hops
from logpath.flows import (
    TUPLE_COLUMNS,
    ConnTuple,
    Flow,
    Translation,
    _tuple_keys,
    _tuple_keys_of_many,
    hop_tuples,
    tuple_node_codes,
    tuple_nodes,
)
from logpath.ingest import ingest
from logpath.journeys import build_journey
from logpath.nat import FEW_ROWS
from logpath.store import Store, to_frame
from logpath.summaries import summarise_flows


def flow_by_port(flows: list[Flow], port: int) -> Flow:
    """The one flow whose orig tuple has this source port."""
    found = [flow for flow in flows if flow.orig.sport == port]
    assert len(found) == 1, [flow.orig for flow in flows]
    return found[0]


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return trace_sample(
        tmp_path_factory.mktemp("seed"), "seed/syslog", rules="seed/iptables.final.rules"
    )


@pytest.fixture(scope="module")
def seed_flows(seed: pd.DataFrame) -> list[Flow]:
    return summarise_flows(seed)


def test_seed_has_the_six_journeys(seed_flows: list[Flow]) -> None:
    assert [(f.orig.src, f.orig.sport, f.orig.dst, f.orig.dport) for f in seed_flows] == [
        ("172.17.0.2", 43292, "172.17.0.3", 12580),  # 1 container -> container
        ("172.17.0.2", 41362, "172.17.0.1", 12580),  # 2 container -> docker0, nothing listens
        ("172.17.0.2", 59373, "10.10.126.101", 12580),  # 3 container -> host address
        ("172.17.0.1", 44120, "172.17.0.2", 12580),  # 4 host -> container
        ("172.17.0.2", 55148, "10.10.126.187", 12580),  # 5 container -> LAN host, MASQUERADE
        ("10.10.126.187", 53225, "172.17.0.2", 12580),  # 6 LAN host -> container, routed
    ]
    assert [f.packets for f in seed_flows] == [2, 2, 3, 3, 3, 3]
    assert [f.hops for f in seed_flows] == [4, 3, 5, 3, 7, 5]
    assert {f.proto for f in seed_flows} == {"tcp"}
    assert {f.hosts for f in seed_flows} == {("pc-baim",)}


def test_journey_5_masquerade_from_the_reply(seed_flows: list[Flow]) -> None:
    flow = flow_by_port(seed_flows, 55148)
    assert flow.reply == ConnTuple("10.10.126.187", 12580, "10.10.126.101", 55148)
    assert flow.nat == (
        Translation(
            "snat",
            "172.17.0.2:55148",
            "10.10.126.101:55148",
            "POSTROUTING",
            "pc-baim",
            "dst-change",
        ),
    )
    assert flow.state == "established"
    assert flow.progression == ("SYN", "SYN-ACK", "ACK")


def test_journey_5_reply_de_nat_between_raw_prerouting_and_forward(seed: pd.DataFrame) -> None:
    flow = flow_by_port(summarise_flows(seed), 55148)
    journey = build_journey(seed, flow.id)
    reply = journey.packets[1]
    assert (reply.direction, reply.summary, reply.fate) == ("reply", "SYN-ACK", "forwarded")
    assert [(h.table, h.chain, h.hook) for h in reply.hops] == [
        ("raw", "PREROUTING", "PREROUTING"),
        ("filter", "FwdOd0", "FORWARD"),
    ]
    assert [h.dst for h in reply.hops] == ["10.10.126.101", "172.17.0.2"]
    assert [h.translated for h in reply.hops] == [False, True]
    assert [h.nat for h in reply.hops] == [(), ("de-snat",)]
    # the SYN: nat POSTROUTING still shows the container's address, MASQUERADE acts after it
    syn = journey.packets[0]
    assert [h.chain for h in syn.hops] == ["PREROUTING", "FwdId0Ond0", "LogNatPostRouting"]
    assert [h.src for h in syn.hops] == ["172.17.0.2"] * 3
    assert [h.ttl for h in syn.hops] == [64, 63, 63]
    assert [h.translated for h in syn.hops] == [False, False, False]
    # ... so the SNAT is marked as applied after that last hop
    assert [h.nat for h in syn.hops] == [(), (), ("snat",)]


def test_journey_2_is_answered_by_a_reset(seed_flows: list[Flow]) -> None:
    flow = flow_by_port(seed_flows, 41362)
    assert (flow.state, flow.progression, flow.answered) == ("reset", ("SYN", "RST"), True)
    assert flow.nat == ()


def test_journey_1_handshake_seen_up_to_syn_ack(seed_flows: list[Flow]) -> None:
    flow = flow_by_port(seed_flows, 43292)
    assert (flow.state, flow.progression) == ("syn-recv", ("SYN", "SYN-ACK"))


def test_journey_6_syn_logs_end_at_prerouting(seed: pd.DataFrame) -> None:
    """Traced in memory, without the ruleset's verdicts: the SYN's logs end at PREROUTING
    while later packets went on, but the SYN-ACK shows it got through: not "stopped"."""
    flow = flow_by_port(summarise_flows(seed), 53225)
    assert flow.stopped == 0 and flow.nat == ()
    journey = build_journey(seed, flow.id)
    assert [(p.direction, p.summary, p.fate, p.stopped_at) for p in journey.packets] == [
        ("orig", "SYN", "unknown", "PREROUTING"),
        ("reply", "SYN-ACK", "forwarded", None),
        ("orig", "ACK", "forwarded", None),
    ]


def test_flow_ids_are_stable_across_runs(seed: pd.DataFrame, tmp_path: Path) -> None:
    again = trace_sample(tmp_path, "seed/syslog", rules="seed/iptables.final.rules")
    assert [f.id for f in summarise_flows(again)] == [f.id for f in summarise_flows(seed)]
    assert len({f.id for f in summarise_flows(seed)}) == 6


def test_router_dnat_and_masquerade(tmp_path: Path) -> None:
    (flow,) = summarise_flows(trace_sample(tmp_path, "formats/ipv4-nat-forward.log"))
    assert flow.orig == ConnTuple("198.51.100.10", 34054, "198.51.100.1", 8080)
    assert flow.reply == ConnTuple("203.0.113.20", 8080, "203.0.113.1", 34054)
    assert [(t.type, t.from_addr, t.to_addr, t.hook) for t in flow.nat] == [
        ("dnat", "198.51.100.1:8080", "203.0.113.20:8080", "PREROUTING"),
        ("snat", "198.51.100.10:34054", "203.0.113.1:34054", "POSTROUTING"),
    ]
    assert (flow.packets, flow.hops, flow.state) == (8, 36, "closed")


LAB_NAT = {
    "dnat": [("dnat", "10.77.0.1:8080", "172.30.0.2:80", "PREROUTING")],
    "masquerade": [("snat", "172.30.0.2:{port}", "10.77.0.1:{port}", "POSTROUTING")],
    "hairpin": [
        ("dnat", "10.77.0.1:8080", "172.30.0.2:80", "PREROUTING"),
        ("snat", "172.30.0.3:{port}", "172.30.0.1:{port}", "POSTROUTING"),
    ],
    "udp": [("snat", "172.30.0.2:{port}", "10.77.0.1:{port}", "POSTROUTING")],
    "c1-host": [],
    "host-c1": [],
}


@pytest.mark.parametrize("name", sorted(LAB_NAT))
def test_lab_nat(name: str, tmp_path: Path) -> None:
    (flow,) = summarise_flows(trace_sample(tmp_path, f"lab/{name}.log"))
    expected = [
        (kind, a.format(port=flow.orig.sport), b.format(port=flow.orig.sport), hook)
        for kind, a, b, hook in LAB_NAT[name]
    ]
    assert [(t.type, t.from_addr, t.to_addr, t.hook) for t in flow.nat] == expected
    assert flow.answered


def test_lab_icmp_echo_id_is_the_sport(tmp_path: Path) -> None:
    (flow,) = summarise_flows(trace_sample(tmp_path, "lab/icmp-echo.log"))
    assert (flow.proto, flow.family, flow.packets, flow.state) == ("icmp", 4, 4, "replied")
    assert flow.orig == ConnTuple("172.30.0.2", 19536, "10.77.0.2", None)
    assert flow.reply == ConnTuple("10.77.0.2", 19536, "10.77.0.1", None)
    assert [(t.type, t.from_addr, t.to_addr) for t in flow.nat] == [
        ("snat", "172.30.0.2", "10.77.0.1")
    ]


def test_lab_icmp_error_joins_the_udp_flow_it_quotes(tmp_path: Path) -> None:
    traced = trace_sample(tmp_path, "lab/icmp-error.log")
    (flow,) = summarise_flows(traced)
    assert (flow.proto, flow.packets, flow.answered, flow.state) == ("udp", 2, False, "unreplied")
    assert flow.orig.dport == 9009
    assert [(t.type, t.to_addr, t.evidence) for t in flow.nat] == [
        ("snat", f"10.77.0.1:{flow.orig.sport}", "icmp-quote")
    ]
    error = build_journey(traced, flow.id).packets[1]
    assert (error.direction, error.summary) == ("reply", "icmp error: port unreachable")
    assert [h.dst for h in error.hops][:2] == ["10.77.0.1", "10.77.0.1"]
    assert error.hops[2].dst == "172.30.0.2" and error.hops[2].nat == ("de-snat",)


def test_a_connection_of_icmp_errors_alone_takes_its_orig_from_the_quote(tmp_path: Path) -> None:
    """Errors whose quoted packet was never logged (formats/icmp-error.log: a host answering a
    UDP packet to port 514 with port unreachable): the quote is the connection's orig, the
    error its reply, nothing translated; a TCP flow known only from an error has no state of
    its own."""
    traced = trace_sample(tmp_path, "formats/icmp-error.log")
    flows = summarise_flows(traced)
    flow = flow_by_port(flows, 40404)
    assert (flow.orig.src, flow.orig.dst, flow.orig.dport) == ("198.51.100.10", "203.0.113.20", 514)
    assert (flow.reply.src, flow.reply.sport, flow.reply.dst) == (
        "203.0.113.20",
        514,
        "198.51.100.10",
    )
    assert (flow.packets, flow.nat, flow.state) == (5, (), "unreplied")
    journey = build_journey(traced, flow.id)
    assert {p.direction for p in journey.packets} == {"reply"}
    assert all(
        h.src == "203.0.113.20" and not h.translated for p in journey.packets for h in p.hops
    )
    # every connection of errors alone: the reply is the orig reversed, as the error travels
    for each in flows:
        assert (each.reply.src, each.reply.dst) == (each.orig.dst, each.orig.src), each
        assert each.nat == (), each
    tcp = [f for f in flows if f.proto == "tcp"]
    assert [f.state for f in tcp] == ["unreplied"]


def test_a_ping_to_the_hosts_own_address_is_answered(tmp_path: Path) -> None:
    """formats/loopback-tun.log: pings to 127.0.0.1 and ::1 show the same tuple both ways; the
    echo reply is the reply (its type says so), the flow replied."""
    traced = trace_sample(tmp_path, "formats/loopback-tun.log")
    flows = {f.orig.sport: f for f in summarise_flows(traced)}
    for echo_id in (8613, 8614):
        flow = flows[echo_id]
        assert (flow.packets, flow.answered, flow.state) == (2, True, "replied"), flow
        journey = build_journey(traced, flow.id)
        assert [(p.direction, p.summary) for p in journey.packets] == [
            ("orig", "echo-request"),
            ("reply", "echo-reply"),
        ]
    assert (flows[119].answered, flows[119].state) == (False, "unreplied")  # tun0: no reply


@pytest.mark.parametrize("sample", ["formats/arp-nft.log", "formats/ebtables-log.log"])
def test_an_arp_reply_joins_its_request_and_no_other(tmp_path: Path, sample: str) -> None:
    """ARP has no IP header: its packets are keyed by their sender and target addresses, a
    request the orig, the reply to it the reply. Both hosts of a pair ask each other
    (arp-nft.log logs only what comes in on rb: .20's requests to .1 and .20's replies to .1's
    requests): two exchanges each way, never one connection with the same tuple both ways."""
    traced = trace_sample(tmp_path, sample)
    flows = [f for f in summarise_flows(traced) if f.proto == "arp"]
    assert len(flows) > 5
    kinds = set()
    for flow in flows:
        assert (flow.reply.src, flow.reply.dst) == (flow.orig.dst, flow.orig.src), flow
        assert (flow.orig.sport, flow.orig.dport, flow.nat) == (None, None, ()), flow
        for packet in build_journey(traced, flow.id).packets:
            kinds.add((packet.direction, packet.summary))
            way = flow.orig if packet.direction == "orig" else flow.reply
            assert all((h.src, h.dst) == (way.src, way.dst) for h in packet.hops), flow
    assert kinds == {("orig", "arp request"), ("reply", "arp reply")}


def test_lab_ipv6_flows(tmp_path: Path) -> None:
    flows = summarise_flows(trace_sample(tmp_path, "lab/ipv6.log"))
    assert [(f.family, f.orig.dst, f.orig.dport, f.state) for f in flows] == [
        (6, "fd00:30::3", 9011, "closed"),
        (6, "fd00:30::1", 9012, "closed"),
    ]
    assert [f.nat for f in flows] == [(), ()]


def test_lab_burst_two_hundred_masqueraded_connections(tmp_path: Path) -> None:
    flows = summarise_flows(trace_sample(tmp_path, "lab/burst.log"))
    assert len(flows) == 200
    assert {f.orig.dst for f in flows} == {"10.77.0.2"}
    assert len({f.orig.sport for f in flows}) == 200
    assert all(f.reply.dst == "10.77.0.1" and f.reply.dport == f.orig.sport for f in flows)
    assert {f.state for f in flows} == {"closed"}
    assert all([t.type for t in f.nat] == ["snat"] for f in flows)


# Captured from a real kernel (6.18, iptables 1.8.9): client netns 10.99.0.2 connects to
# 10.99.0.1:8080 in a router netns whose nat PREROUTING has
# `-p tcp --dport 8080 -j REDIRECT --to-ports 9000` and a listener on 9000; LOG rules in raw
# PREROUTING/OUTPUT, nat PREROUTING/INPUT and filter INPUT/OUTPUT (dmesg layout).
REDIRECT_CAPTURE = (
    "[ 2484.687518] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=17859 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    "[ 2484.687612] lp:nat:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=17859 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    "[ 2484.687623] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=17859 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    "[ 2484.687629] lp:nat:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=17859 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=64240 RES=0x00 SYN URGP=0 ",
    "[ 2484.687704] lp:raw:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=65160 RES=0x00 ACK SYN URGP=0 ",
    "[ 2484.687711] lp:filter:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=65160 RES=0x00 ACK SYN URGP=0 ",
    "[ 2484.687735] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17860 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.687741] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17860 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.695966] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=17861 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=63 RES=0x00 ACK PSH URGP=0 ",
    "[ 2484.695990] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=17861 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=63 RES=0x00 ACK PSH URGP=0 ",
    "[ 2484.696014] lp:raw:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=58843 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK URGP=0 ",
    "[ 2484.696019] lp:filter:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=58843 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK URGP=0 ",
    "[ 2484.699888] lp:raw:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=58844 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK PSH URGP=0 ",
    "[ 2484.699904] lp:filter:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=58844 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK PSH URGP=0 ",
    "[ 2484.699973] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17862 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.699981] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17862 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.700013] lp:raw:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=58845 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK FIN URGP=0 ",
    "[ 2484.700017] lp:filter:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=58845 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK FIN URGP=0 ",
    "[ 2484.747881] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17863 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.747904] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17863 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=63 RES=0x00 ACK URGP=0 ",
    "[ 2484.900255] lp:raw:pre:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17864 DF PROTO=TCP SPT=35162 DPT=8080 WINDOW=63 RES=0x00 ACK FIN URGP=0 ",
    "[ 2484.900281] lp:filter:in:rd IN=lpflwr0 OUT= MAC=d2:93:88:eb:c8:9e:86:e7:18:57:ea:e5:08:00 SRC=10.99.0.2 DST=10.99.0.1 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=17864 DF PROTO=TCP SPT=35162 DPT=9000 WINDOW=63 RES=0x00 ACK FIN URGP=0 ",
    "[ 2484.900301] lp:raw:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK URGP=0 ",
    "[ 2484.900307] lp:filter:out:rd IN= OUT=lpflwr0 SRC=10.99.0.1 DST=10.99.0.2 LEN=52 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=9000 DPT=35162 WINDOW=64 RES=0x00 ACK URGP=0 ",
)


def test_redirect_to_a_local_port(tmp_path: Path) -> None:
    log = tmp_path / "redirect.dmesg"
    log.write_text("\n".join(REDIRECT_CAPTURE) + "\n")
    traced = trace_sample(tmp_path, str(log))
    (flow,) = summarise_flows(traced)
    assert flow.orig == ConnTuple("10.99.0.2", 35162, "10.99.0.1", 8080)
    # the answer comes from the port REDIRECT chose, on the address the SYN came to
    assert flow.reply == ConnTuple("10.99.0.1", 9000, "10.99.0.2", 35162)
    assert [(t.type, t.from_addr, t.to_addr, t.hook) for t in flow.nat] == [
        ("redirect", "10.99.0.1:8080", "10.99.0.1:9000", "PREROUTING")
    ]
    syn = build_journey(traced, flow.id).packets[0]
    assert [(h.table, h.hook, h.dport, h.translated) for h in syn.hops] == [
        ("raw", "PREROUTING", 8080, False),
        ("nat", "PREROUTING", 8080, False),
        ("filter", "INPUT", 9000, True),
        ("nat", "INPUT", 9000, True),
    ]
    assert syn.fate == "delivered"


def test_all_lab_captures_together_keep_apart(tmp_path: Path) -> None:
    names = sorted(p.name for p in (SAMPLES / "lab").glob("*.log"))
    flows = summarise_flows(trace_sample(tmp_path, *(f"lab/{name}" for name in names)))
    # 13 scenarios with one connection, ipv6 with two, verdicts with three, burst with 200
    assert len(flows) == 217
    assert {f.hosts for f in flows} == {("lab-host",)}
    scenarios = sorted(
        (f.proto, f.orig.dport, tuple(t.type for t in f.nat)) for f in flows if f.orig.dport != 9020
    )
    assert scenarios == [
        ("icmp", None, ("snat",)),  # icmp-echo, masqueraded
        ("tcp", 8080, ("dnat",)),  # dnat: LAN host to the published port
        ("tcp", 8080, ("dnat", "snat")),  # hairpin
        ("tcp", 8080, ("dnat", "snat")),  # hairpin-self
        ("tcp", 9001, ()),  # c2c
        ("tcp", 9002, ()),  # bridge-rst
        ("tcp", 9003, ()),  # c1-host
        ("tcp", 9004, ()),  # host-c1
        ("tcp", 9005, ("snat",)),  # masquerade
        ("tcp", 9011, ()),  # ipv6, bridged
        ("tcp", 9012, ()),  # ipv6, to the host
        ("tcp", 9030, ()),  # log-options: c1-host with every LOG option at raw
        ("tcp", 9040, ()),  # verdicts: dropped in FORWARD, before MASQUERADE
        ("tcp", 9041, ()),  # verdicts: rejected in FORWARD with a RST
        ("udp", 9009, ("snat",)),  # icmp-error: the refused UDP, SNAT seen in the quote
        ("udp", 9010, ("snat",)),  # udp
        ("udp", 9042, ()),  # verdicts: rejected in FORWARD, the ICMP error from the host
    ]
    assert sum(f.stopped for f in flows) == 0


@pytest.mark.parametrize("names", [("seed/syslog",), ("lab/hairpin.log", "lab/bridge-rst.log")])
def test_flow_summaries_do_not_depend_on_bridge_roles(tmp_path: Path, names: tuple[str]) -> None:
    # `logpath flows` traces without bridge roles to save time: the flows must be the same
    store = Store(tmp_path / "store")
    ingest([str(SAMPLES / name) for name in names], store, year=2026)
    hops = store.read_hops()
    with_roles = trace_hops(hops)
    assert with_roles["role"].notna().any()  # the captures do cross a bridge
    assert summarise_flows(trace_hops(hops, roles=False)) == summarise_flows(with_roles)


def test_tuple_nodes_are_the_conntrack_keys_assign_flows_uses(tmp_path: Path) -> None:
    """Follow's window tells which connections a new hop reaches by ``tuple_nodes`` (Arrow):
    they must be the host and the canonical conntrack key that ``hop_tuples`` and
    ``_tuple_keys`` (pandas, what connections are made of) give, on genuine captures with
    ICMP errors quoting a UDP packet, echo identifiers, IPv6, NAT, and on a packed replay
    (``_tuple_keys``' two ways, under and over FEW_ROWS)."""
    names = ["lab/icmp-error.log", "lab/icmp-echo.log", "lab/ipv6.log", "lab/dnat.log",
             "lab/burst.log", "lab/hairpin.log", "seed/syslog", "formats/arp-nft.log",
             "formats/ebtables-log.log"]  # fmt: skip
    store = Store(tmp_path / "store")
    ingest([str(SAMPLES / n) for n in names], store, year=2026)
    replay = replayed_syslog(tmp_path, 6_000, seed=3, per_second=2_000)
    ingest([str(replay)], store)
    hops = store.read_table()
    frame = to_frame(hops)
    tuples = hop_tuples(frame)
    for rows in (slice(0, 40), slice(None)):  # few rows: one Python pass; many: Arrow
        part = tuples.iloc[rows][list(TUPLE_COLUMNS)]
        key, rkey = _tuple_keys(part)
        # the smaller of the two by Python's order of texts
        canonical = [min(k, r) for k, r in zip(key.to_pylist(), rkey.to_pylist(), strict=True)]
        host = frame["host"].iloc[rows].astype("object").fillna("").astype(str).tolist()
        expected = [f"{h}#{c}" for h, c in zip(host, canonical, strict=True)]
        assert tuple_nodes(hops.slice(0, len(expected))).to_pylist() == expected
    # Arrow's texts on many rows are the Python pass's, FEW_ROWS at a time
    part = tuples[list(TUPLE_COLUMNS)]
    assert len(part) > 2 * FEW_ROWS
    python = [_tuple_keys(part.iloc[at : at + FEW_ROWS]) for at in range(0, len(part), FEW_ROWS)]
    arrow = _tuple_keys_of_many(part)
    for side in (0, 1):
        assert arrow[side].to_pylist() == [k for keys in python for k in keys[side].to_pylist()]
    assert {"icmp", "udp", "tcp", "arp"} <= set(tuples["t_proto"].dropna())
    assert tuples["t_src"].str.contains(":", regex=False).any()  # IPv6
    assert tuples["related"].any()


def test_tuple_node_codes_group_the_hops_as_tuple_nodes_do(tmp_path: Path) -> None:
    """An ingest's chunks tell which connections later hops reach by ``tuple_node_codes``:
    the same groups as ``tuple_nodes``' texts, numbered in order of first appearance, on
    genuine captures (ICMP errors quoting UDP, echo identifiers both ways, IPv6, NAT, hops of
    two hosts) and a packed replay; a tuple and its reverse one node."""
    names = ["lab/icmp-error.log", "lab/icmp-echo.log", "lab/ipv6.log", "lab/dnat.log",
             "lab/hairpin.log", "lab/two-hosts/two-hosts-a.log", "lab/two-hosts/two-hosts-b.log",
             "seed/syslog", "formats/arp-nft.log", "formats/ebtables-log.log"]  # fmt: skip
    store = Store(tmp_path / "store")
    ingest([str(SAMPLES / n) for n in names], store, year=2026)
    ingest([str(replayed_syslog(tmp_path, 6_000, seed=5, per_second=2_000))], store)
    hops = store.read_table()
    texts = tuple_nodes(hops).to_numpy(zero_copy_only=False)
    codes, count = tuple_node_codes(hops)
    assert codes.tolist() == pd.factorize(texts)[0].tolist()
    assert count == len(set(texts)) > 500
    # the two directions of a connection meet: a reply's hops share its request's node
    by_way: dict[tuple[str, str], set[int]] = {}
    for src, dst, code in zip(hops["src"].to_pylist(), hops["dst"].to_pylist(), codes.tolist(),
                              strict=True):  # fmt: skip
        by_way.setdefault((src, dst), set()).add(code)
    assert any(codes & by_way.get((dst, src), set()) for (src, dst), codes in by_way.items())
    assert len({t.split("#")[0] for t in texts}) >= 2  # two hosts


@pytest.mark.parametrize("rules", [None, "midstream.rules"])
def test_a_capture_begun_inside_a_connection_is_oriented_as_conntrack_has_it(
    tmp_path: Path, rules: str | None
) -> None:
    """lab/midstream: c1 connected through MASQUERADE before the capture began; in the log the
    peer speaks first, from its service port to c1's ephemeral one. The connection is the one
    conntrack holds (midstream.conntrack, read here): c1 → peer, SNAT; not peer → c1 with a
    DNAT to c1's ephemeral port."""
    here = SAMPLES / "lab" / "midstream"
    entry = (here / "midstream.conntrack").read_text().split()
    fields = [word.split("=", 1) for word in entry if "=" in word]
    orig = {k: v for k, v in fields[:4]}
    reply = {k: v for k, v in fields[4:8]}
    traced = trace_sample(
        tmp_path, "lab/midstream/midstream.dmesg", rules=rules and f"lab/midstream/{rules}"
    )
    (flow,) = summarise_flows(traced)
    assert (flow.orig.src, flow.orig.sport, flow.orig.dst, flow.orig.dport) == (
        orig["src"],
        int(orig["sport"]),
        orig["dst"],
        int(orig["dport"]),
    )
    assert (flow.reply.src, flow.reply.sport, flow.reply.dst, flow.reply.dport) == (
        reply["src"],
        int(reply["sport"]),
        reply["dst"],
        int(reply["dport"]),
    )
    assert [(t.type, t.to_addr) for t in flow.nat] == [("snat", f"{reply['dst']}:{reply['dport']}")]
