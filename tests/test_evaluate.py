"""The ruleset evaluator (``evaluate.py``): on the lab's genuine kernel captures, and on small
rulesets that drop, reject and fall to a policy, in iptables-save and nft form."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest

from logpath.evaluate import (
    Evaluation,
    Evaluator,
    LogHit,
    NatHit,
    PacketFacts,
    Position,
    Step,
    Verdict,
    evaluate,
    facts_from_hop,
    log_position,
)
from logpath.hops import build_hops
from logpath.netfilter import table_priority
from logpath.parse import parse_lines
from logpath.rules import Ruleset, load_ruleset, parse_ruleset

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LAB = SAMPLES / "lab"
RULES = SAMPLES / "rules"
HOOK_WORDS = {"pre": "PREROUTING", "in": "INPUT", "fwd": "FORWARD", "out": "OUTPUT", "post": "POSTROUTING"}  # fmt: skip
# the hooks a packet can meet after each one on one host (netfilter.py: HOOK_STAGE)
NEXT_HOOKS = {"PREROUTING": {"INPUT", "FORWARD"}, "FORWARD": {"POSTROUTING"}, "OUTPUT": {"POSTROUTING"}}  # fmt: skip
# samples/lab/README.md: the servers listen on these ports; clients use ephemeral ones
SERVER_PORTS = {80, 8080, *range(9000, 9100)}
LAB_ADDRS = frozenset({"10.77.0.1/24", "172.30.0.1/24", "fd00:30::1/64"})  # the lab host's
ICMP_ERRORS = {3, 4, 5, 11, 12}


def hop_table(path: Path) -> pd.DataFrame:
    """The hop table of a capture, through the project's parser."""
    parsed = parse_lines(str(path), enumerate(path.read_text("utf-8").splitlines(), start=1))
    return build_hops(parsed, str(path), year=2026).to_pandas()


Row = dict[str, object]  # one hop, None where the line did not show a field


def value(row: Row, name: str) -> object:
    return row[name]


def integer(row: Row, name: str) -> int | None:
    item = row[name]
    return None if item is None else int(item)  # type: ignore[call-overload]


@dataclass(frozen=True)
class LabHop:
    """One logged hop: where (from its lp:<table>:<hook>:lab prefix) and the packet seen there."""

    prefix: str
    table: str
    hook: str
    row: Row

    @property
    def rank(self) -> tuple[int, int]:
        order = ["PREROUTING", "OUTPUT", "INPUT", "FORWARD", "POSTROUTING"]
        stage = {"PREROUTING": 0, "OUTPUT": 0, "INPUT": 1, "FORWARD": 1, "POSTROUTING": 2}
        return stage[self.hook], table_priority(self.table, self.hook) or order.index(self.hook)

    def step(self) -> Step:
        row = self.row
        names = ("in_iface", "out_iface", "physin", "physout")
        return Step(self.hook, *(value(row, name) for name in names))  # type: ignore[arg-type]


def lab_hops(path: Path) -> list[LabHop]:
    hops = []
    table = hop_table(path).astype(object)
    for row in table.where(table.notna(), None).to_dict("records"):
        _lp, table_name, hook, _tag = str(row["prefix"]).strip().split(":")
        hops.append(LabHop(str(row["prefix"]).strip(), table_name, HOOK_WORDS[hook], row))
    return hops


def same_packet(a: LabHop, b: LabHop) -> bool:
    """Whether two consecutive lines are one packet's hops: the same packet fields (addresses
    and ports may change only after a nat hop), and a later hook or a later table of the hook."""
    first, second = a.row, b.row
    fields = ["family", "proto", "len", "flags", "id", "flowlbl", "icmp_type"]
    if a.table != "nat":
        fields += ["src", "dst", "sport", "dport"]
    if any(value(first, name) != value(second, name) for name in fields):
        return False
    if a.hook == b.hook:
        return b.rank > a.rank
    return b.hook in NEXT_HOOKS.get(a.hook, set())


@functools.cache
def lab_packets(path: Path) -> list[list[LabHop]]:
    """A capture's hops, grouped by packet (read once for both forms of the ruleset)."""
    return packets(lab_hops(path))


def packets(hops: list[LabHop]) -> list[list[LabHop]]:
    """The hops grouped by packet: each line joins the latest packet it can continue (the two
    CPUs of the lab interleave the lines of packets logged at the same time, as in burst)."""
    found: list[list[LabHop]] = []
    for hop in hops:
        recent = found[-WINDOW:]
        into = next((packet for packet in reversed(recent) if same_packet(packet[-1], hop)), None)
        if into is None:
            found.append([hop])
        else:
            into.append(hop)
    return found


WINDOW = 40  # packets open at once (burst: 200 connections, two CPUs)


class ConnectionStates:
    """The conntrack state of each packet on one host, from the lab's traffic (the README of
    samples/lab): a connection's first packet NEW (a TCP SYN, a first request), replies and
    later packets ESTABLISHED, ICMP errors RELATED; a SYN sent again after an earlier one left
    the host is NEW with a confirmed entry (its NAT is decided: no nat chain runs again)."""

    def __init__(self, server_ports: set[int]) -> None:
        self.server_ports = server_ports
        self.seen: set[tuple[object, ...]] = set()
        self.left: set[tuple[object, ...]] = set()  # connections whose first packet left

    def state(self, packet: list[LabHop]) -> tuple[str, bool]:
        """(ct state, confirmed) of a packet, from its hops."""
        first = packet[0].row
        key = (
            first["proto"],
            first["src"],
            first["sport"],
            first["dst"],
            first["dport"],
            first["icmp_id"],
        )
        confirmed = key in self.left
        if packet[-1].hook in ("POSTROUTING", "INPUT"):
            self.left.add(key)
        proto = str(first["proto"])
        flags = str(first["flags"] or "").split()
        if proto == "tcp":
            new = "SYN" in flags and "ACK" not in flags
            return ("NEW", confirmed) if new else ("ESTABLISHED", False)
        if proto in ("icmp", "icmpv6") and integer(first, "icmp_type") in ICMP_ERRORS:
            return "RELATED", False
        if proto in ("icmp", "icmpv6"):
            request = integer(first, "icmp_type") in (8, 128)
        else:
            request = integer(first, "dport") in self.server_ports
        new = request and key not in self.seen
        self.seen.add(key)
        return ("NEW", False) if new else ("ESTABLISHED", False)


def predictions(evaluator: Evaluator, packets: list[list[LabHop]], states: ConnectionStates, local_addrs: frozenset[str]) -> Iterator[tuple[LabHop, LabHop | None, Evaluation]]:  # fmt: skip
    """For each hop of each packet: the evaluation from its LOG rule up to the packet's next
    hop (its hook, when it is a later one), with the facts the hop shows."""
    for packet in packets:
        ctstate, confirmed = states.state(packet)
        for hop, following in zip(packet, [*packet[1:], None], strict=True):
            facts = facts_from_hop(hop.row, ctstate, confirmed=confirmed, local_addrs=local_addrs)
            start = evaluator.log_position(hop.prefix + " ", facts, hop.hook)
            assert start is not None, hop.prefix
            path = [] if following is None or following.hook == hop.hook else [following.step()]
            yield hop, following, evaluator.evaluate(facts, start, path)


def assert_predicted(hop: LabHop, following: LabHop | None, result: Evaluation) -> None:
    """The next LOG rule the evaluator finds is the one that logged the next hop; after the
    packet's last hop, no LOG rule at its hook matches it."""
    predicted = [log.prefix.strip() for log in result.logs]
    assert result.verdict.action == "accept", (hop.prefix, result.verdict)
    expected = [] if following is None else [following.prefix]
    assert predicted[: len(expected) or None] == expected, (hop.prefix, hop.row, result)


# the rules that wrote samples/lab/* (iptables-save, then ip6tables-save, into one file), and the
# same rules written in native nft
LAB_RULES = {name: Evaluator(load_ruleset(RULES / name)) for name in ("lab-host.iptables-save.rules", "lab-host.nft")}  # fmt: skip


@pytest.mark.parametrize("rules", sorted(LAB_RULES))
@pytest.mark.parametrize("capture", sorted(LAB.glob("*.log")), ids=lambda path: path.stem)
def test_each_next_hop_is_the_next_log_rule_the_ruleset_predicts(capture: Path, rules: str) -> None:
    states = ConnectionStates(SERVER_PORTS)
    pairs = 0
    for hop, following, result in predictions(
        LAB_RULES[rules], lab_packets(capture), states, LAB_ADDRS
    ):
        assert_predicted(hop, following, result)
        pairs += following is not None
    assert pairs >= 5  # the smallest capture (bridge-rst) has 8 pairs of hops


# --- LOG then DROP, REJECT, a policy: samples/rules/log-then-drop.* ----------------------------
# One ruleset printed by iptables-save (nf_tables backend) and the same written in native nft
# (printed by nft list ruleset, and with -a), loaded in a throw-away network namespace.

SAVE = load_ruleset(RULES / "log-then-drop.iptables-save.rules")
NFT = load_ruleset(RULES / "log-then-drop.nft")
NFT_HANDLES = load_ruleset(RULES / "log-then-drop-handles.nft")
IPTABLES_NFT = load_ruleset(RULES / "log-then-drop.iptables-nft.nft")


def tcp(src: str, dst: str, dport: int, in_iface: str | None, out_iface: str | None, state: str = "NEW") -> PacketFacts:  # fmt: skip
    flags = frozenset({"SYN"}) if state == "NEW" else frozenset({"ACK"})
    return PacketFacts("ip", "tcp", src, dst, 40000, dport, in_iface=in_iface,
                       out_iface=out_iface, tcp_flags=flags, ctstate=state)  # fmt: skip


BETWEEN_BRIDGES = tcp("172.18.0.2", "172.19.0.2", 80, "br-a", "br-b")


def test_the_rule_after_a_log_rule_drops_between_two_bridges() -> None:
    start = log_position(SAVE, "lp:isolated: ", BETWEEN_BRIDGES)
    assert start == Position("FORWARD", "filter", "ISOLATION", 2)
    result = evaluate(SAVE, BETWEEN_BRIDGES, start)
    assert result == Evaluation(
        Verdict("drop", "FORWARD", "filter", "ISOLATION", 2, "-o br-b -j DROP")
    )
    # from the hook's start: the jump, the LOG rule, then the DROP
    assert evaluate(SAVE, BETWEEN_BRIDGES, "FORWARD") == Evaluation(
        result.verdict, logs=(LogHit("FORWARD", "filter", "ISOLATION", 1, "lp:isolated: "),)
    )


@pytest.mark.parametrize(
    ("ruleset", "table", "chain", "rule", "text"),
    [
        (NFT, "fw", "isolation", 2, 'oifname "br-b" drop'),
        (NFT_HANDLES, "fw", "isolation", 11, 'oifname "br-b" drop'),
        (IPTABLES_NFT, "filter", "ISOLATION", 2, 'oifname "br-b" counter packets 0 bytes 0 drop'),
    ],
    ids=["nft", "nft-handles", "iptables-nft"],
)
def test_log_then_drop_in_nft(
    ruleset: Ruleset, table: str, chain: str, rule: int, text: str
) -> None:
    start = log_position(ruleset, "lp:isolated: ", BETWEEN_BRIDGES, "FORWARD")
    assert start is not None
    assert evaluate(ruleset, BETWEEN_BRIDGES, start).verdict == Verdict(
        "drop", "FORWARD", table, chain, rule, text
    )


def test_reject_with_tcp_reset_after_its_log_rule() -> None:
    syn = tcp("10.0.0.9", "10.0.0.1", 9002, "eth0", None)
    start = log_position(SAVE, "lp:reject: ", syn, "INPUT")
    assert evaluate(SAVE, syn, start).verdict == Verdict(  # type: ignore[arg-type]
        "reject",
        "INPUT",
        "filter",
        "INPUT",
        2,
        "-p tcp -m tcp --dport 9002 -j REJECT --reject-with tcp-reset",
    )
    # nft: the rule that logs is the rule that rejects ("log prefix ... reject with tcp reset")
    nft_start = log_position(NFT_HANDLES, "lp:reject: ", syn, "INPUT")
    assert nft_start == Position("INPUT", "fw", "input", 1, take_target=True)
    result = evaluate(NFT_HANDLES, syn, nft_start)
    assert result == Evaluation(
        Verdict(
            "reject",
            "INPUT",
            "fw",
            "input",
            4,
            'tcp dport 9002 log prefix "lp:reject: " reject with tcp reset',
        )
    )


def test_reject_with_icmp_port_unreachable_from_the_hook() -> None:
    udp = PacketFacts(
        "ip", "udp", "10.0.0.9", "10.0.0.1", 5353, 9009, in_iface="eth0", ctstate="NEW"
    )
    save = evaluate(SAVE, udp, "INPUT").verdict
    assert (save.action, save.rule, save.text) == (
        "reject",
        3,
        "-p udp -m udp --dport 9009 -j REJECT --reject-with icmp-port-unreachable",
    )
    nft = evaluate(NFT, udp, "INPUT").verdict
    assert (nft.action, nft.table, nft.chain, nft.rule, nft.text) == (
        "reject",
        "fw",
        "input",
        2,
        "udp dport 9009 reject",
    )


def test_forward_policy_drop() -> None:
    from_b = tcp("172.19.0.2", "198.51.100.7", 443, "br-b", "eth0")
    assert evaluate(SAVE, from_b, "FORWARD").verdict == Verdict(
        "drop", "FORWARD", "filter", "FORWARD", "policy", "policy DROP"
    )
    assert evaluate(NFT, from_b, "FORWARD").verdict == Verdict(
        "drop", "FORWARD", "fw", "forward", "policy", "policy drop"
    )
    # the answers of an established connection are let through (ct state)
    answer = tcp("198.51.100.7", "172.18.0.2", 40000, "eth0", "br-a", "ESTABLISHED")
    assert evaluate(SAVE, answer, "FORWARD").verdict.rule == 3
    assert evaluate(NFT, answer, "FORWARD").verdict.rule == "policy"  # ip late: the last to accept


def test_nft_accept_in_one_base_chain_does_not_stop_the_next() -> None:
    # fw forward accepts what comes from br-a (priority filter); ip late forward (filter + 10)
    # still sees it, and drops 192.0.2.66
    blocked = tcp("192.0.2.66", "198.51.100.7", 443, "br-a", "eth0")
    assert evaluate(NFT, blocked, "FORWARD") == Evaluation(
        Verdict(
            "drop",
            "FORWARD",
            "late",
            "forward",
            1,
            'ip saddr 192.0.2.66 log prefix "lp:late: " drop',
        ),
        logs=(LogHit("FORWARD", "late", "forward", 1, "lp:late: "),),
    )
    allowed = tcp("192.0.2.1", "198.51.100.7", 443, "br-a", "eth0")
    assert evaluate(NFT, allowed, "FORWARD").verdict == Verdict(
        "accept", "FORWARD", "late", "forward", "policy", "policy accept"
    )
    # IPv6 does not meet the ip table
    six = PacketFacts(
        "ip6",
        "tcp",
        "fd00::66",
        "fd00::7",
        40000,
        443,
        in_iface="br-a",
        out_iface="eth0",
        ctstate="NEW",
    )
    assert evaluate(NFT, six, "FORWARD").verdict == Verdict(
        "accept", "FORWARD", "fw", "forward", 2, 'iifname "br-a" accept'
    )


@pytest.mark.parametrize(
    ("ruleset", "named"),
    [
        (SAVE, "-m mark --mark 0x1 (a condition logpath does not evaluate)"),
        (NFT, "meta mark 0x00000001 (a condition logpath does not evaluate)"),
    ],
    ids=["iptables", "nft"],
)
def test_a_match_logpath_cannot_evaluate_is_undecided_and_named(
    ruleset: Ruleset, named: str
) -> None:
    web = tcp("10.0.0.9", "10.0.0.1", 80, "eth0", None)
    verdict = evaluate(ruleset, web, "INPUT").verdict
    assert (verdict.action, verdict.reason) == ("undecided", f"cannot evaluate {named}")
    assert verdict.rule == 4 if ruleset is SAVE else verdict.rule == 3


def test_a_condition_that_fails_decides_even_beside_one_that_cannot_be_evaluated() -> None:
    rules = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n"
        '-A INPUT -p tcp -m tcp --dport 9050 -m string --string "GET /" --algo bm -j DROP\n'
        "COMMIT\n"
    )
    web = tcp("10.0.0.9", "10.0.0.1", 80, "eth0", None)
    assert evaluate(rules, web, "INPUT").verdict.action == "accept"  # dport 80: not this rule
    string = evaluate(rules, tcp("10.0.0.9", "10.0.0.1", 9050, "eth0", None), "INPUT").verdict
    assert (
        string.reason
        == 'cannot evaluate -m string --string "GET /" --algo bm (a condition logpath does not evaluate)'
    )
    # a fact the log did not show is named too
    unknown = replace(web, dport=9050, ctstate=None, tcp_flags=None)
    assert evaluate(rules, replace(unknown, dport=None), "INPUT").verdict.reason == (
        "cannot evaluate dport 9050 (not known: the packet's dport)"
    )


# --- jumps, gotos, returns ---------------------------------------------------------------------

CHAINS = parse_ruleset(
    "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":A - [0:0]\n:B - [0:0]\n:C - [0:0]\n"
    "-A INPUT -p tcp -j A\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n"
    "-A A -p tcp -m tcp --dport 80 -j RETURN\n"
    "-A A -p tcp -m tcp --dport 81 -g B\n"
    "-A A -p tcp -m tcp --dport 82 -j B\n"
    '-A A -p tcp -j LOG --log-prefix "in A: "\n'
    "-A B -p tcp -m tcp --dport 82 -j C\n"
    "-A C -s 10.0.0.0/8 -j DROP\n"
    "-A A -p tcp -m tcp --dport 83 -j ACCEPT\n"
    "COMMIT\n"
)


@pytest.mark.parametrize(
    ("dport", "src", "rule", "chain", "logs"),
    [
        (80, "192.0.2.1", "policy", "INPUT", 0),  # RETURN from A, nothing else: INPUT's policy
        (22, "192.0.2.1", 2, "INPUT", 1),  # A falls off its end: back to INPUT's next rule
        (81, "192.0.2.1", "policy", "INPUT", 0),  # -g B: B falls off, back to INPUT (not to A)
        (82, "192.0.2.1", "policy", "INPUT", 1),  # -j B, -j C fall off: back in A, its LOG rule
        (82, "10.1.2.3", 1, "C", 0),  # C drops
        (83, "192.0.2.1", 5, "A", 1),
    ],
)
def test_user_chains_return_gotos_do_not(
    dport: int, src: str, rule: object, chain: str, logs: int
) -> None:
    result = evaluate(CHAINS, tcp(src, "10.0.0.1", dport, "eth0", None), "INPUT")
    assert (result.verdict.rule, result.verdict.chain, len(result.logs)) == (rule, chain, logs)
    assert result.verdict.action == ("drop" if rule in ("policy", 1) else "accept")


def test_starting_in_a_user_chain_returns_to_the_rule_after_the_jump() -> None:
    packet = tcp("192.0.2.1", "10.0.0.1", 22, "eth0", None)
    start = log_position(CHAINS, "in A: ", packet)
    assert start == Position("INPUT", "filter", "A", 5)
    assert evaluate(CHAINS, packet, start).verdict == Verdict(
        "accept", "INPUT", "filter", "INPUT", 2, "-p tcp -m tcp --dport 22 -j ACCEPT"
    )


def test_nft_goto_and_return() -> None:
    rules = parse_ruleset(
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n"
        "\t\ttcp dport 22 goto g\n\t\tjump j\n\t\ttcp dport 443 accept\n\t}\n"
        "\tchain g {\n\t\tip saddr 10.0.0.0/8 accept\n\t}\n"
        '\tchain j {\n\t\ttcp dport 443 return\n\t\tlog prefix "j: "\n\t}\n}\n'
    )
    ssh = evaluate(rules, tcp("10.1.1.1", "10.0.0.1", 22, "eth0", None), "INPUT")
    assert (ssh.verdict.action, ssh.verdict.chain, ssh.verdict.rule) == ("accept", "g", 1)
    outside = evaluate(rules, tcp("192.0.2.1", "10.0.0.1", 22, "eth0", None), "INPUT")
    assert (outside.verdict.action, outside.verdict.rule) == ("drop", "policy")  # goto: no way back
    web = evaluate(rules, tcp("192.0.2.1", "10.0.0.1", 443, "eth0", None), "INPUT")
    assert (web.verdict.action, web.verdict.rule, web.logs) == ("accept", 3, ())


# --- NAT, conntrack and the lab ruleset --------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Ruleset:
    return load_ruleset(RULES / "lab-host.iptables-save.rules")


def test_dnat_is_reported_and_the_later_hooks_see_the_new_destination(lab: Ruleset) -> None:
    syn = tcp("10.77.0.2", "10.77.0.1", 8080, "up0", None)
    result = evaluate(
        lab,
        syn,
        "PREROUTING",
        [Step("FORWARD", "up0", "lpbr0"), Step("POSTROUTING", None, "lpbr0")],
    )
    assert result.nat == (
        NatHit("PREROUTING", "nat", "PREROUTING", 4, "DNAT", "172.30.0.2:80",
               "-d 10.77.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.30.0.2:80"),
    )  # fmt: skip
    assert [(log.hook, log.table) for log in result.logs] == [
        ("PREROUTING", "raw"), ("PREROUTING", "mangle"), ("PREROUTING", "nat"),
        ("FORWARD", "mangle"), ("FORWARD", "filter"), ("POSTROUTING", "mangle"), ("POSTROUTING", "nat"),
    ]  # fmt: skip
    assert result.verdict == Verdict(
        "accept", "POSTROUTING", "nat", "POSTROUTING", "policy", "policy ACCEPT"
    )


def test_masquerade_after_the_nat_postrouting_log_rule(lab: Ruleset) -> None:
    syn = tcp("172.30.0.2", "10.77.0.2", 9005, None, "up0")
    start = log_position(lab, "lp:nat:post:lab ", syn, "POSTROUTING")
    assert evaluate(lab, syn, start).nat == (  # type: ignore[arg-type]
        NatHit(
            "POSTROUTING",
            "nat",
            "POSTROUTING",
            4,
            "MASQUERADE",
            None,
            "-s 172.30.0.0/24 ! -o lpbr0 -j MASQUERADE",
        ),
    )


def test_nat_chains_see_a_connections_first_packet_only(lab: Ruleset) -> None:
    for state, nat_logged in (("NEW", True), ("ESTABLISHED", False), ("INVALID", False)):
        packet = tcp("172.30.0.2", "10.77.0.2", 9005, "lpbr0", None, state)
        tables = {log.table for log in evaluate(lab, packet, "PREROUTING").logs}
        assert ("nat" in tables) is nat_logged, state
    unknown = replace(tcp("172.30.0.2", "10.77.0.2", 9005, "lpbr0", None), ctstate=None)
    verdict = evaluate(lab, unknown, "PREROUTING").verdict
    assert (verdict.action, verdict.table, verdict.reason) == (
        "undecided",
        "nat",
        "a nat chain runs only for a connection's first packet: ct state unknown",
    )
    # ICMP errors are RELATED to the connection they quote: no nat chain runs for them
    error = PacketFacts(
        "ip",
        "icmp",
        "10.77.0.2",
        "10.77.0.1",
        icmp_type=3,
        icmp_code=3,
        in_iface="up0",
        ctstate="RELATED",
    )
    assert "nat" not in {log.table for log in evaluate(lab, error, "PREROUTING").logs}


def test_a_ruleset_stored_without_conditions_decides_nothing(lab: Ruleset) -> None:
    stored = lab.to_json()
    for rule in stored["rules"]:
        del rule["conditions"], rule["verdict"], rule["handle"]
    old = Ruleset.from_json(stored)
    verdict = evaluate(
        old, tcp("172.30.0.2", "10.77.0.2", 9005, "lpbr0", None), "PREROUTING"
    ).verdict
    assert (verdict.action, verdict.table, verdict.rule) == ("undecided", "raw", 1)
    assert verdict.reason == "the stored ruleset has no conditions (give --rules again at ingest)"


# --- addrtype, physdev, limits -----------------------------------------------------------------


def test_addrtype_local_from_the_hosts_addresses() -> None:
    seed = load_ruleset(SAMPLES / "seed" / "iptables.final.rules")
    to_self = PacketFacts(
        "ip", "tcp", "192.168.0.10", "192.168.0.10", 40000, 12580, out_iface="lo", ctstate="NEW"
    )
    local = replace(to_self, local_addrs=frozenset({"192.168.0.10/24", "172.17.0.1/16"}))
    # nat OUTPUT: ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER (an empty chain)
    assert evaluate(seed, to_self, "OUTPUT").verdict.reason == (
        "cannot evaluate dst_type LOCAL (not known: the host's addresses)"
    )
    assert evaluate(seed, local, "OUTPUT").verdict.action == "accept"


def test_physdev_and_limit() -> None:
    rules = parse_ruleset(
        "*filter\n:FORWARD ACCEPT [0:0]\n"
        "-A FORWARD -m physdev --physdev-in vethc1 --physdev-is-bridged -m limit --limit 5/min -j DROP\n"
        "COMMIT\n"
    )
    bridged = replace(
        tcp("172.30.0.2", "172.30.0.3", 9001, "lpbr0", "lpbr0"), physin="vethc1", physout="vethc2"
    )
    result = evaluate(rules, bridged, "FORWARD")
    assert result.verdict.action == "drop"
    assert result.assumed == (
        "filter FORWARD #1: -m physdev --physdev-in vethc1 --physdev-is-bridged -m limit --limit 5/min -j DROP",
    )
    routed = replace(bridged, physout=None)
    assert evaluate(rules, routed, "FORWARD").verdict.rule == "policy"


def test_the_examples_in_the_docstrings(monkeypatch: pytest.MonkeyPatch) -> None:
    import doctest

    import logpath.conditions
    import logpath.evaluate

    monkeypatch.chdir(SAMPLES.parent)  # the examples read samples/rules/...
    for module in (logpath.evaluate, logpath.conditions):
        failed, attempted = doctest.testmod(module)
        assert (failed, attempted > 0) == (0, True), module.__name__


def test_a_chain_before_conntrack_sees_no_connection() -> None:
    rules = parse_ruleset(
        "*raw\n:PREROUTING ACCEPT [0:0]\n"
        '-A PREROUTING -m conntrack --ctstate INVALID -j LOG --log-prefix "raw invalid: "\n'
        "COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n"
        '-A INPUT -m conntrack --ctstate INVALID -j LOG --log-prefix "filter invalid: "\n'
        "COMMIT\n"
    )
    answer = tcp("10.0.0.9", "10.0.0.1", 40000, "eth0", None, "ESTABLISHED")
    result = evaluate(rules, answer, "PREROUTING", [Step("INPUT", "eth0", None)])
    assert [log.prefix for log in result.logs] == ["raw invalid: "]
    looped = replace(answer, in_iface="lo")  # the loopback keeps the entry OUTPUT gave it
    assert evaluate(rules, looped, "PREROUTING", [Step("INPUT", "lo", None)]).logs == ()


def test_snat_and_redirect_are_reported_with_their_address() -> None:
    rules = parse_ruleset(
        "table ip nat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        '\t\tiifname "eth0" tcp dport 80 redirect to :8080\n\t}\n'
        "\tchain post {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\tip saddr 172.30.0.0/24 snat to 192.0.2.1\n\t}\n}\n"
    )
    web = tcp("172.30.0.2", "198.51.100.7", 80, "eth0", None)
    result = evaluate(rules, web, "PREROUTING", [Step("POSTROUTING", None, "eth1")])
    assert [(hit.type, hit.to, hit.rule) for hit in result.nat] == [
        ("REDIRECT", ":8080", 1),
        ("SNAT", "192.0.2.1", 1),
    ]


# --- the two-host lab: samples/lab/two-hosts, each host with its own ruleset -------------------

TWO_HOSTS = LAB / "two-hosts"
TWO_HOST_PORTS = {53, 54, 80, 81, 8053, 8054, 8080, 8081}
HOST_RULES = {
    "a": (
        Evaluator(load_ruleset(RULES / "two-hosts-hosta.iptables-save.rules")),
        frozenset({"10.78.0.1/24", "172.31.0.1/24", "fd00:78::1/64", "fd00:31::1/64"}),
    ),
    "b": (
        Evaluator(load_ruleset(RULES / "two-hosts-hostb.iptables-save.rules")),
        frozenset({"10.78.0.2/24", "172.29.0.1/24", "fd00:78::2/64", "fd00:29::1/64"}),
    ),
}
STATISTIC = "cannot evaluate -m statistic --mode nth --every 2 --packet 0 (a condition logpath does not evaluate)"


@pytest.mark.parametrize("capture", sorted(TWO_HOSTS.glob("*.log")), ids=lambda path: path.stem)
def test_two_hosts_each_next_hop_is_predicted_or_undecided_by_name(capture: Path) -> None:
    evaluator, addrs = HOST_RULES[capture.stem[-1]]
    undecided = []
    states = ConnectionStates(TWO_HOST_PORTS)
    for hop, following, result in predictions(evaluator, lab_packets(capture), states, addrs):
        if result.verdict.action != "undecided":
            assert_predicted(hop, following, result)
            continue
        assert (result.verdict.rule, result.verdict.reason) == (4, STATISTIC)
        predicted = [log.prefix.strip() for log in result.logs][:1]
        if following is None or predicted != [following.prefix]:  # the next hop is beyond it
            undecided.append((hop.prefix, following and following.prefix))
    # hostb drops every other SYN to :81 after its FORWARD LOG rule (-m statistic): logpath says
    # it cannot tell, for the SYN it dropped (nothing after) and for the one it let through
    expected = [
        ("lp:filter:fwd:hostb-x752842", None),
        ("lp:filter:fwd:hostb-x752842", "lp:mangle:post:hostb-x752842"),
    ]
    assert undecided == (expected if capture.stem == "two-hosts-b" else [])


def test_named_sets_and_verdict_maps_are_undecided_by_name() -> None:
    # samples/rules/host.nft, inet lp input: ct state, iif "lo", ip saddr @blocked, a vmap
    host = Evaluator(load_ruleset(RULES / "host.nft"))
    syn = tcp("192.0.2.7", "198.51.100.1", 22, "eth0", None)
    assert host.evaluate(syn, "INPUT").verdict == Verdict(
        "undecided", "INPUT", "lp", "input", 3, 'ip saddr @blocked log prefix "host blocked: " drop',
        reason="cannot evaluate src @blocked (a value logpath does not read)",
    )  # fmt: skip
    six = PacketFacts("ip6", "tcp", "fd00::7", "fd00::1", 40000, 22, in_iface="eth0", ctstate="NEW")
    assert host.evaluate(six, "INPUT").verdict.reason == (  # an ip selector: not for IPv6
        'cannot evaluate iifname vmap { "eth0" : jump wan_in, "docker0" : jump from_containers }'
        " (a condition logpath does not evaluate)"
    )
    answer = replace(syn, ctstate="ESTABLISHED")
    assert host.evaluate(answer, "INPUT").verdict.rule == 1


def test_targets_logpath_cannot_follow_are_undecided_by_name() -> None:
    rules = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n"
        "-A INPUT -p udp -j NFQUEUE --queue-num 1\n-A INPUT -p tcp -j TARPIT\nCOMMIT\n"
    )
    udp = PacketFacts("ip", "udp", "10.0.0.9", "10.0.0.1", 5353, 53, in_iface="eth0", ctstate="NEW")
    assert (
        evaluate(rules, udp, "INPUT").verdict.reason
        == "-j NFQUEUE --queue-num 1 (a program decides)"
    )
    syn = tcp("10.0.0.9", "10.0.0.1", 22, "eth0", None)
    assert (
        evaluate(rules, syn, "INPUT").verdict.reason == "-j TARPIT (a target logpath does not know)"
    )
    nft = parse_ruleset(
        "table inet t {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n"
        "\t\tjump missing\n\t}\n}\n"
    )
    assert evaluate(nft, syn, "INPUT").verdict.reason == "jump missing: no such chain"
