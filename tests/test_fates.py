"""Fates from evidence: the ruleset's verdict for each packet, on genuine kernel captures.

``samples/lab/verdicts.*`` was written by the lab's host while its FORWARD chain ended three
flows right after its LOG rule (LOG-then-DROP, REJECT with tcp-reset, REJECT with ICMP port
unreachable); ``samples/lab/verdicts.rules`` is that ruleset as iptables-save printed it then.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.flows import Flow
from logpath.ingest import ingest
from logpath.journeys import Journey
from logpath.query import FlowQuery, find_flows, load_journey
from logpath.render.timeline import fate_text
from logpath.rules import load_ruleset
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LAB = SAMPLES / "lab"
LAB_RULES = SAMPLES / "rules" / "lab-host.iptables-save.rules"
TRACE = LAB / "trace"
# the captures written under LAB_RULES as they are (log-options added raw rules for its port,
# verdicts its FORWARD rules: each has its own)
UNDER_LAB_RULES = sorted(
    p for p in LAB.glob("*.log") if p.stem not in ("log-options", "verdicts", "burst")
)


def ingested(tmp_path: Path, logs: list[Path], rules: Path | None) -> Store:
    store = Store(tmp_path / "store")
    ruleset = load_ruleset(rules).to_json() if rules else None
    ingest([str(p) for p in logs], store, year=2026, ruleset=ruleset)
    return store


def journeys(store: Store) -> dict[int, tuple[Flow, Journey]]:
    """Per orig destination port, the flow and its journey."""
    found = {}
    for flow in find_flows(store, FlowQuery()):
        assert flow.orig.dport is not None
        found[flow.orig.dport] = (flow, load_journey(store, flow.id))
    return found


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Flow, Journey]]:
    tmp = tmp_path_factory.mktemp("verdicts")
    return journeys(ingested(tmp, [LAB / "verdicts.log"], LAB / "verdicts.rules"))


def test_log_then_drop_is_dropped_by_the_drop_rule(verdicts) -> None:
    flow, journey = verdicts[9040]
    # the SYN and its retransmission, each logged last by filter FORWARD's LOG rule
    assert [(p.summary, p.fate) for p in journey.packets] == [
        ("SYN", "dropped"),
        ("SYN", "dropped"),
    ]
    for packet in journey.packets:
        assert packet.hops[-1].fields["prefix"] == "lp:filter:fwd:lab "
        assert packet.verdict == {
            "action": "drop",
            "hook": "FORWARD",
            "table": "filter",
            "chain": "FORWARD",
            "rule": 4,
            "text": "-p tcp -m tcp --dport 9040 -j DROP",
            "evidence": "ruleset",
            "reason": None,
        }
    assert (flow.dropped, flow.lost, flow.stopped) == (2, 0, 0)
    assert fate_text(journey.packets[0]) == (
        "dropped by filter FORWARD #4: -p tcp -m tcp --dport 9040 -j DROP (ruleset)"
    )


def test_rejects_name_their_rule(verdicts) -> None:
    reset_flow, reset = verdicts[9041]
    assert [(p.summary, p.fate) for p in reset.packets] == [("SYN", "rejected")]
    assert reset.packets[0].verdict is not None
    assert reset.packets[0].verdict["text"].endswith("-j REJECT --reject-with tcp-reset")
    udp_flow, udp = verdicts[9042]
    assert [p.fate for p in udp.packets] == ["rejected", "sent"]  # the ICMP error, from the host
    assert udp.packets[0].verdict is not None
    assert udp.packets[0].verdict["rule"] == 6
    assert (reset_flow.dropped, udp_flow.dropped) == (1, 1)


def test_without_the_ruleset_no_verdict_is_claimed(tmp_path: Path) -> None:
    found = journeys(ingested(tmp_path, [LAB / "verdicts.log"], None))
    packets = [p for _, journey in found.values() for p in journey.packets]
    assert packets and all(p.verdict is None for p in packets)
    assert not {p.fate for p in packets} & {"dropped", "rejected", "lost", "unlogged"}
    assert all(flow.dropped == flow.lost == 0 for flow, _ in found.values())


def test_without_the_ruleset_an_unanswered_packet_is_not_called_forwarded(tmp_path: Path) -> None:
    """LOG-then-DROP and LOG-then-REJECT (verdicts.log) log a packet at FORWARD exactly as a
    forwarded one: without the ruleset, and with no answer, its fate is unknown (issue 11's
    contract), even beside the port unreachable the host itself sent for the UDP datagram.
    A port unreachable that came from beyond the host (icmp-error.log: from the peer, 10.77.0.2)
    shows the datagram went on: forwarded. Answered connections keep where their logs end."""
    found = journeys(ingested(tmp_path / "v", [LAB / "verdicts.log"], None))
    for port in (9040, 9041, 9042):
        flow, journey = found[port]
        assert not flow.answered
        plain = [p for p in journey.packets if "error" not in p.summary]
        assert plain and {(p.fate, p.verdict) for p in plain} == {("unknown", None)}, port
    peer = journeys(ingested(tmp_path / "e", [LAB / "icmp-error.log"], None))[9009][1]
    assert [(p.summary, p.fate) for p in peer.packets] == [
        ("udp 32 bytes", "forwarded"),
        ("icmp error: port unreachable", "unknown"),  # nothing shows where it went after
    ]
    answered = journeys(ingested(tmp_path / "m", [LAB / "masquerade.log"], None))
    assert {p.fate for _, j in answered.values() for p in j.packets} == {"forwarded"}


def test_a_drop_the_ruleset_does_not_explain_is_lost(tmp_path: Path) -> None:
    """The same capture read with the lab's usual ruleset (no DROP rule): the dropped SYNs
    should then have been logged at mangle POSTROUTING, and nothing answered them."""
    flow, journey = journeys(ingested(tmp_path, [LAB / "verdicts.log"], LAB_RULES))[9040]
    assert [p.fate for p in journey.packets] == ["lost", "lost"]
    verdict = journey.packets[0].verdict
    assert verdict is not None
    assert verdict["reason"] == (
        "mangle POSTROUTING #1 (prefix 'lp:mangle:post:lab') matches it at POSTROUTING "
        "and no line shows it there"
    )
    assert (flow.lost, flow.dropped) == (2, 0)


def test_the_lab_ruleset_accepts_every_captured_packet(tmp_path: Path) -> None:
    """Every lab capture with the ruleset it was written under: every packet has the
    ruleset's verdict, an accept, and its journey ended where the logs say (the kernel logged
    every hook: nothing lost, nothing unlogged)."""
    store = ingested(tmp_path, UNDER_LAB_RULES, LAB_RULES)
    flows = find_flows(store, FlowQuery())
    assert len(flows) == 13  # one a capture, two in ipv6
    fates = set()
    for flow in flows:
        journey = load_journey(store, flow.id)
        for packet in journey.packets:
            assert packet.verdict is not None, (flow.id, packet.n)
            assert packet.verdict["action"] == "accept", (flow.id, packet.n, packet.verdict)
            fates.add(packet.fate)
        assert (flow.dropped, flow.lost, flow.stopped) == (0, 0, 0), flow.id
    assert fates == {"delivered", "forwarded", "sent", "switched"}


RULES = SAMPLES / "rules"
TWO_HOSTS = LAB / "two-hosts"
# Every lab capture, with the ruleset it was written under where one was kept (log-options'
# extra raw rules were not), and the seed article's; samples/lab/fates: tests/test_lab_fates.py.
CAPTURES_AND_RULES = [
    (UNDER_LAB_RULES, LAB_RULES),
    ([LAB / "burst.log"], LAB_RULES),
    ([LAB / "log-options.log"], None),
    ([LAB / "verdicts.log"], LAB / "verdicts.rules"),
    ([TWO_HOSTS / "two-hosts-a.log"], RULES / "two-hosts-hosta.iptables-save.rules"),
    ([TWO_HOSTS / "two-hosts-b.log"], RULES / "two-hosts-hostb.iptables-save.rules"),
    ([TWO_HOSTS / "udp-icmp-ipv6-a.log"], RULES / "two-hosts-hosta.iptables-save.rules"),
    ([TWO_HOSTS / "udp-icmp-ipv6-b.log"], RULES / "two-hosts-hostb.iptables-save.rules"),
    ([TRACE / "trace-legacy.dmesg"], TRACE / "trace-legacy.rules"),
    ([SAMPLES / "seed" / "syslog"], SAMPLES / "seed" / "iptables.final.rules"),
]


@pytest.mark.parametrize("with_rules", [True, False], ids=["ruleset", "no-ruleset"])
@pytest.mark.parametrize(
    ("logs", "rules"),
    CAPTURES_AND_RULES,
    ids=["lab", *(logs[0].stem for logs, _ in CAPTURES_AND_RULES[1:])],
)
def test_no_packet_of_an_answered_connection_is_dropped_stopped_or_lost(
    tmp_path: Path, logs: list[Path], rules: Path | None, with_rules: bool
) -> None:
    """With or without its ruleset, over every lab capture and the seed article's."""
    if with_rules and rules is None:
        pytest.skip("no ruleset kept for this capture")
    store = ingested(tmp_path, list(logs), rules if with_rules else None)
    answered = 0
    for flow in find_flows(store, FlowQuery()):
        if not flow.answered:
            continue
        answered += 1
        fates = {p.fate for p in load_journey(store, flow.id).packets}
        assert not fates & {"dropped", "rejected", "stopped", "lost"}, (flow.id, fates, rules)
        assert (flow.dropped, flow.lost, flow.stopped) == (0, 0, 0), flow.id
    # verdicts answered nothing; trace-legacy traced only the client's packets
    assert answered > 0 or logs[0].stem in ("verdicts", "trace-legacy")


def test_seed_journey_6_syn_went_on_unlogged(seed_store: Store) -> None:
    """The seed's SYN logged at raw PREROUTING only, then answered: FORWARD's LOG rules match
    only bridged or established traffic, and its policy accepts it."""
    (flow,) = [f for f in find_flows(seed_store, FlowQuery()) if f.orig.sport == 53225]
    syn = load_journey(seed_store, flow.id).packets[0]
    assert (syn.summary, syn.fate, syn.stopped_at) == ("SYN", "unlogged", "PREROUTING")
    assert syn.verdict is not None
    assert (syn.verdict["table"], syn.verdict["chain"], syn.verdict["rule"]) == (
        "filter",
        "FORWARD",
        "policy",
    )
    assert flow.stopped == 0


def test_flows_and_journey_show_the_verdicts(tmp_path: Path) -> None:
    """Through the CLI: the flows table counts the dropped packets, CSV and JSON carry the
    counts, the journey ends each packet with the rule as written."""
    store = ingested(tmp_path, [LAB / "verdicts.log"], LAB / "verdicts.rules")
    runner = CliRunner()
    table = runner.invoke(app, ["flows", "--store", str(store.path)])
    assert table.exit_code == 0, table.output
    states = [line.split("  ")[-1] for line in table.output.splitlines()[1:-1]]
    assert states == [
        "syn-sent (no answer), 2 dropped",
        "syn-sent (no answer), 1 dropped",
        "unreplied (no answer), 1 dropped",
    ]
    rows = list(csv.DictReader(io.StringIO(runner.invoke(
        app, ["flows", "--store", str(store.path), "--csv"]).output)))  # fmt: skip
    assert [(r["orig_dport"], r["dropped"], r["lost"]) for r in rows] == [
        ("9040", "2", "0"),
        ("9041", "1", "0"),
        ("9042", "1", "0"),
    ]
    flow_id = rows[1]["id"]
    journey = runner.invoke(app, ["journey", flow_id, "--store", str(store.path)])
    assert (
        "#1 → orig SYN  len 60 id 297  ⇒ rejected by filter FORWARD #5: -p tcp -m tcp --dport "
        "9041 -j REJECT --reject-with tcp-reset (ruleset)"
    ) in journey.output.splitlines()
    data = json.loads(
        runner.invoke(app, ["journey", flow_id, "--json", "--store", str(store.path)]).output
    )
    assert data["packets"][0]["fate"] == "rejected"
    assert data["packets"][0]["verdict"]["action"] == "reject"


def test_masquerade_no_line_shows_comes_from_the_ruleset(tmp_path: Path) -> None:
    """The masquerade capture without its replies' raw and mangle PREROUTING lines (what a
    host logging its uplink only from nat PREROUTING on would have written): no line shows the
    translated address, the ruleset's MASQUERADE rule still does."""
    lines = (LAB / "masquerade.log").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not re.search(r"lp:(raw|mangle):pre:lab IN=up0 ", line)]
    assert len(kept) == len(lines) - 10
    capture = tmp_path / "masquerade-no-uplink-prerouting.log"
    capture.write_text("".join(kept))
    (bare,) = find_flows(ingested(tmp_path / "bare", [capture], None), FlowQuery())
    assert bare.nat == ()
    (flow,) = find_flows(ingested(tmp_path / "ruled", [capture], LAB_RULES), FlowQuery())
    assert [t.to_json() for t in flow.nat] == [
        {
            "type": "snat",
            "from": f"172.30.0.2:{flow.orig.sport}",
            "to": "up0's address",
            "hook": "POSTROUTING",
            "host": "lab-host",
            "evidence": "ruleset",
        }
    ]
    # with its replies' lines, the translation is the lines' own, address and port
    (whole,) = find_flows(
        ingested(tmp_path / "whole", [LAB / "masquerade.log"], LAB_RULES), FlowQuery()
    )
    assert [(t.to_addr, t.evidence) for t in whole.nat] == [
        (f"10.77.0.1:{whole.orig.sport}", "dst-change")
    ]


def test_trace_lines_name_their_rules_and_decide_the_verdict(tmp_path: Path) -> None:
    """A genuine iptables-legacy TRACE capture (tests/lab/capture_trace.sh) with the ruleset
    iptables-legacy-save printed: each hop names its rule as written, the user chain's hop is
    placed at INPUT, and the last traced rule, an ACCEPT, is each packet's verdict (trace)."""
    store = ingested(tmp_path, [TRACE / "trace-legacy.dmesg"], TRACE / "trace-legacy.rules")
    (flow,) = find_flows(store, FlowQuery())
    journey = load_journey(store, flow.id)
    assert len(journey.packets) == 6
    for packet in journey.packets:
        where = [(h.table, h.chain, h.hook, h.fields["trace"]["type"], h.rule) for h in packet.hops]
        accept = "-p tcp -m tcp --dport 7300 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT"
        assert where == [
            ("raw", "PREROUTING", "PREROUTING", "policy", "policy ACCEPT"),
            ("filter", "INPUT", "INPUT", "rule", "-p tcp -j lptrchain"),
            ("filter", "lptrchain", "INPUT", "return", "return (end of the user chain)"),
            ("filter", "INPUT", "INPUT", "rule", accept),
        ]
        assert packet.fate == "delivered"
        assert packet.verdict is not None
        assert (packet.verdict["action"], packet.verdict["rule"], packet.verdict["evidence"]) == (
            "accept",
            3,
            "trace",
        )
    runner = CliRunner()
    shown = runner.invoke(app, ["journey", flow.id, "--store", str(store.path)]).output
    assert "rule #2: -p tcp -j lptrchain" in shown
    # without the ruleset the lines still name their rules, by number only
    bare = ingested(tmp_path / "bare", [TRACE / "trace-legacy.dmesg"], None)
    (hop, *_) = load_journey(bare, flow.id).packets[0].hops
    assert (hop.rule, hop.fields["trace"]["rulenum"]) == (None, 2)


def test_one_ruleset_for_several_hosts_judges_nothing(tmp_path: Path) -> None:
    """The two-host lab's logs with host A's ruleset: the store cannot tell which host the
    ruleset is of, so no packet gets a verdict; A's logs alone get them."""
    logs = [LAB / "two-hosts" / "two-hosts-a.log", LAB / "two-hosts" / "two-hosts-b.log"]
    rules = SAMPLES / "rules" / "two-hosts-hosta.iptables-save.rules"
    both = ingested(tmp_path / "both", logs, rules)
    packets = [
        p for flow in find_flows(both, FlowQuery()) for p in load_journey(both, flow.id).packets
    ]
    assert packets and all(p.verdict is None for p in packets)
    alone = ingested(tmp_path / "alone", logs[:1], rules)
    judged = [
        p for flow in find_flows(alone, FlowQuery()) for p in load_journey(alone, flow.id).packets
    ]
    assert judged and all(p.verdict is not None for p in judged if p.hops[-1].fields["prefix"])
