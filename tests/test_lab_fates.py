"""Fates and NAT from the ruleset on genuine kernel captures of issue 11's cases, each written by
the lab's host under its ruleset in the three front ends (``samples/lab/fates``, made by
``python -m tests.lab.topology capture-fates samples/lab/fates``; tests/lab/fatecases.py).

Each case is read with each listing of the ruleset it was written under: ``<case>.rules``
(iptables-save, nf_tables backend) and ``<case>.nft`` (the same tables as nft lists them) for
``<case>.log``; ``<case>-legacy.rules`` (iptables-legacy-save) for ``<case>-legacy.log``;
``<case>-nft.nft`` (a native nft ruleset) for ``<case>-nft.log``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.flows import Flow
from logpath.ingest import ingest
from logpath.journeys import Journey
from logpath.query import FlowQuery, find_flows, load_journey
from logpath.rules import load_ruleset
from logpath.store import Store

LAB = Path(__file__).resolve().parent.parent / "samples" / "lab"
FATES = LAB / "fates"
# form -> (the capture's file stem after the case's name, the ruleset's file after it)
FORMS = {
    "iptables-nft": ("", ".rules"),
    "iptables-nft listed by nft": ("", ".nft"),
    "iptables-legacy": ("-legacy", "-legacy.rules"),
    "nft": ("-nft", "-nft.nft"),
}
# the forms logpath evaluates whole: nft 1.0.6 lists iptables-nft's `-m multiport --ports` as a
# concatenation of ranges it prints as their ends only (`0-65535 . 9000, 9000 . 0-65535, ...`
# for 9000:9099), which logpath does not evaluate
EVALUATED = ("iptables-nft", "iptables-legacy", "nft")
# the rule and chain names each form gives the host's filter table and its FORWARD chain
FILTER = {"iptables-nft": "filter", "iptables-legacy": "filter", "nft": "lp-filter"}
FORWARD = {"iptables-nft": "FORWARD", "iptables-legacy": "FORWARD", "nft": "forward"}

Found = dict[int, tuple[Flow, Journey]]
_cache: dict[tuple[str, str | None], tuple[Store, Found]] = {}


def files(case: str, form: str | None) -> tuple[Path, Path | None]:
    """The capture of a case in a form, and that form's ruleset (None: no ruleset, the
    iptables-nft capture). The verdicts case's iptables-nft capture is samples/lab/verdicts.*
    (its nft listing was not kept)."""
    stem, rules = FORMS[form or "iptables-nft"]
    folder = LAB if (case, stem) == ("verdicts", "") else FATES
    return folder / f"{case}{stem}.log", folder / f"{case}{rules}" if form else None


def read(tmp: pytest.TempPathFactory, case: str, form: str | None) -> tuple[Store, Found]:
    """The case's capture ingested with one form of its ruleset (None: without one); per orig
    destination port, the flow and its journey."""
    if (case, form) not in _cache:
        log, rules = files(case, form)
        store = Store(tmp.mktemp(case) / "store")
        ruleset = load_ruleset(rules).to_json() if rules else None
        ingest([str(log)], store, year=2026, ruleset=ruleset)
        found = {}
        for flow in find_flows(store, FlowQuery()):
            assert flow.orig.dport is not None
            found[flow.orig.dport] = (flow, load_journey(store, flow.id))
        _cache[(case, form)] = (store, found)
    return _cache[(case, form)]


def verdict(
    action: str,
    table: str,
    chain: str,
    rule: int | str,
    text: str,
    reason: str | None = None,
    hook: str = "FORWARD",
) -> dict[str, Any]:
    return {
        "action": action,
        "hook": hook,
        "table": table,
        "chain": chain,
        "rule": rule,
        "text": text,
        "evidence": "ruleset",
        "reason": reason,
    }


# --- 1. LOG-then-DROP between two bridges (Docker's isolation) --------------------------------

ISOLATION_DROP = {
    "iptables-nft": ("filter", "LP-ISOLATION", "-o lpbr1 -j DROP"),
    "iptables-nft listed by nft": (
        "filter",
        "LP-ISOLATION",
        'oifname "lpbr1" counter packets 0 bytes 0 drop',
    ),
    "iptables-legacy": ("filter", "LP-ISOLATION", "-o lpbr1 -j DROP"),
    "nft": ("lp-filter", "lp-isolation", 'oifname "lpbr1" drop'),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_isolation_between_bridges_drops_in_the_user_chain(tmp_path_factory, form) -> None:
    """c1 -> c3 on the other bridge: FORWARD jumps to the isolation chain by `-i lpbr0 ! -o
    lpbr0`, whose LOG rule logs the SYN and whose next rule drops it."""
    _, found = read(tmp_path_factory, "isolation", form)
    flow, journey = found[9070]
    table, chain, text = ISOLATION_DROP[form]
    assert [(p.summary, p.fate) for p in journey.packets] == [("SYN", "dropped")] * 2
    for packet in journey.packets:
        assert packet.verdict == verdict("drop", table, chain, 2, text)
        last = packet.hops[-1]
        # the LOG rule's hop is placed through the negated-interface jump, by the ruleset
        assert (last.fields["prefix"], last.table, last.chain, last.hook, last.evidence) == (
            "lp-isolation:lab ",
            table,
            chain,
            "FORWARD",
            "ruleset",
        )
        assert (last.in_iface, last.out_iface, last.physin) == ("lpbr0", "lpbr1", "vethc1")
    assert (flow.answered, flow.dropped, flow.lost, flow.stopped) == (False, 2, 0, 0)


def test_isolation_without_the_ruleset_claims_no_drop(tmp_path_factory) -> None:
    _, found = read(tmp_path_factory, "isolation", None)
    flow, journey = found[9070]
    assert [p.verdict for p in journey.packets] == [None, None]
    assert not {p.fate for p in journey.packets} & {"dropped", "rejected", "lost", "unlogged"}
    # the prefix names no hook: without the ruleset the hop's hook is only a guess, said so
    last = journey.packets[0].hops[-1]
    assert (last.hook, last.chain, last.evidence) == ("FORWARD", None, "guess")
    assert flow.dropped == 0


# --- 2. FORWARD's policy DROP ------------------------------------------------------------------


@pytest.mark.parametrize("form", EVALUATED)
def test_forward_policy_drop_names_the_policy(tmp_path_factory, form) -> None:
    """The SYNs to 9060 pass every FORWARD rule and fall to the chain's policy; 9061, accepted
    by a rule each way, is answered and forwarded throughout."""
    _, found = read(tmp_path_factory, "policy-drop", form)
    flow, journey = found[9060]
    policy = "policy drop" if form == "nft" else "policy DROP"
    assert [(p.summary, p.fate) for p in journey.packets] == [("SYN", "dropped")] * 2
    for packet in journey.packets:
        assert packet.hops[-1].fields["prefix"] == "lp:filter:fwd:lab "
        assert packet.verdict == verdict("drop", FILTER[form], FORWARD[form], "policy", policy)
    assert (flow.dropped, flow.lost) == (2, 0)
    accepted, journey = found[9061]
    assert accepted.answered and (accepted.dropped, accepted.lost, accepted.stopped) == (0, 0, 0)
    assert len(journey.packets) == 10
    for packet in journey.packets:
        assert packet.fate == "forwarded"
        assert packet.verdict is not None and packet.verdict["action"] == "accept"


# --- 3. rp_filter drops a packet after PREROUTING: lost ----------------------------------------

RP_LOST = {
    "iptables-nft": (("mangle", "INPUT", 1), ("mangle", "FORWARD", 1)),
    "iptables-legacy": (("mangle", "INPUT", 1), ("mangle", "FORWARD", 1)),
    # the native ruleset writes --ports as two rules: by sport, then by dport (sport !=)
    "nft": (("lp-mangle", "input", 2), ("lp-mangle", "forward", 2)),
}


@pytest.mark.parametrize("form", EVALUATED)
def test_a_packet_rp_filter_dropped_is_lost(tmp_path_factory, form) -> None:
    """lan's SYN from a spoofed bridge address, logged at raw, mangle and nat PREROUTING only:
    routed to INPUT or to FORWARD, a LOG rule that logs lan's other connections there matches
    it, and no line shows it: lost, whichever way the host routed it."""
    _, found = read(tmp_path_factory, "rp-filter", form)
    flow, journey = found[9080]
    assert flow.orig.src == "172.30.0.99"
    assert [(p.summary, p.fate) for p in journey.packets] == [("SYN", "lost")] * 2
    (in_table, in_chain, in_rule), (fwd_table, fwd_chain, fwd_rule) = RP_LOST[form]
    for packet in journey.packets:
        assert [h.hook for h in packet.hops] == ["PREROUTING"] * 3
        assert packet.hops[-1].fields["prefix"] == "lp:nat:pre:lab "
        assert packet.verdict is not None
        assert (packet.verdict["action"], packet.verdict["evidence"]) == ("accept", "ruleset")
        assert packet.verdict["reason"] == (
            f"{in_table} {in_chain} #{in_rule} (prefix 'lp:mangle:in:lab') matches it at INPUT"
            f" or {fwd_table} {fwd_chain} #{fwd_rule} (prefix 'lp:mangle:fwd:lab') matches it"
            " at FORWARD, whichever way the host routed it, and no line shows it there"
        )
    assert (flow.lost, flow.dropped) == (2, 0)
    # lan's own connections, to c1 and to the host, are answered and lost nothing
    fates = {port: {p.fate for p in found[port][1].packets} for port in (9081, 9082)}
    assert fates == {9081: {"forwarded"}, 9082: {"delivered", "sent"}}


def test_rp_filter_with_rules_logpath_cannot_evaluate_is_unknown(tmp_path_factory) -> None:
    """With the iptables-nft tables as nft lists them, the LOG rules at INPUT and FORWARD are
    concatenations logpath does not evaluate: the spoofed SYNs are unknown, and say why."""
    _, found = read(tmp_path_factory, "rp-filter", "iptables-nft listed by nft")
    flow, journey = found[9080]
    assert [p.fate for p in journey.packets] == ["unknown", "unknown"]
    for packet in journey.packets:
        assert packet.verdict is not None
        assert packet.verdict["action"] == "undecided"
        assert packet.verdict["reason"].startswith("cannot evaluate tcp sport . tcp dport {")
    assert flow.lost == 0


def test_rp_filter_without_the_ruleset_claims_nothing(tmp_path_factory) -> None:
    _, found = read(tmp_path_factory, "rp-filter", None)
    flow, journey = found[9080]
    # its logs end at PREROUTING and nothing of its connection went further: no claim
    assert [(p.fate, p.stopped_at, p.verdict) for p in journey.packets] == [
        ("unknown", None, None)
    ] * 2
    assert (flow.lost, flow.dropped, flow.stopped) == (0, 0, 0)


# --- 4. MASQUERADE no line shows ---------------------------------------------------------------


@pytest.mark.parametrize("form", EVALUATED)
def test_masquerade_only_the_ruleset_shows(tmp_path_factory, form) -> None:
    """c1 -> lan:9105 logged at filter FORWARD only (c1's address both ways): the MASQUERADE
    rule the ruleset gives after it is the SNAT, to up0's address as lan -> 10.77.0.1:9106,
    delivered on up0, shows it."""
    _, found = read(tmp_path_factory, "masquerade-unlogged", form)
    flow, journey = found[9105]
    assert [t.to_json() for t in flow.nat] == [
        {
            "type": "snat",
            "from": f"172.30.0.2:{flow.orig.sport}",
            "to": "10.77.0.1",
            "hook": "POSTROUTING",
            "host": "lab-host",
            "evidence": "ruleset",
        }
    ]
    assert {p.fate for p in journey.packets} == {"forwarded"}
    assert all(h.src != "10.77.0.1" and h.dst != "10.77.0.1" for p in journey.packets
               for h in p.hops)  # fmt: skip
    # the connection to the host: every packet delivered (the LOG rule that wrote its lines is
    # found, not an earlier one with the same prefix)
    delivered, journey = found[9106]
    assert {p.fate for p in journey.packets} == {"delivered"}
    assert (delivered.lost, delivered.dropped) == (0, 0)


def test_masquerade_unlogged_without_an_evaluable_rule_is_not_claimed(tmp_path_factory) -> None:
    """Without the ruleset no line shows the SNAT; with the nft listing of iptables-nft's
    tables the MASQUERADE is behind undecided rules: no NAT claimed, packets still forwarded
    (the connection was answered), and the host's connection is never lost."""
    for form in (None, "iptables-nft listed by nft"):
        _, found = read(tmp_path_factory, "masquerade-unlogged", form)
        flow, journey = found[9105]
        assert flow.nat == (), form
        assert {p.fate for p in journey.packets} == {"forwarded"}, form
        assert found[9106][0].lost == 0, form
    # with the nft listing: the rule that logged the host's packets at filter INPUT is the
    # case's own (`tcp dport 9106 log`), not the concatenation before it with the same prefix;
    # the SYN then meets nat INPUT's concatenation, which cannot be evaluated
    (syn, *others) = found[9106][1].packets
    assert syn.fate == "unknown" and syn.verdict is not None
    assert (syn.verdict["action"], syn.verdict["table"], syn.verdict["chain"]) == (
        "undecided",
        "nat",
        "INPUT",
    )
    assert [p.fate for p in others] == ["delivered"] * 4


def test_flows_json_gives_the_ruleset_snat(tmp_path_factory) -> None:
    store, _ = read(tmp_path_factory, "masquerade-unlogged", "iptables-legacy")
    result = CliRunner().invoke(app, ["flows", "--store", str(store.path), "--json"])
    assert result.exit_code == 0, result.output
    nat = {row["orig"]["dport"]: row["nat"] for row in json.loads(result.output)}
    assert [(n["type"], n["to"], n["evidence"]) for n in nat[9105]] == [
        ("snat", "10.77.0.1", "ruleset")
    ]
    assert nat[9106] == []


# --- 5. LOG-then-DROP and REJECTs in the three forms -------------------------------------------

VERDICT_RULES = {
    "iptables-nft": [
        (4, "-p tcp -m tcp --dport 9040 -j DROP"),
        (5, "-p tcp -m tcp --dport 9041 -j REJECT --reject-with tcp-reset"),
        (6, "-p udp -m udp --dport 9042 -j REJECT --reject-with icmp-port-unreachable"),
    ],
    "nft": [
        (6, "tcp dport 9040 drop"),
        (7, "tcp dport 9041 reject with tcp reset"),
        (8, "udp dport 9042 reject"),
    ],
}
VERDICT_RULES["iptables-legacy"] = VERDICT_RULES["iptables-nft"]


@pytest.mark.parametrize("form", EVALUATED)
def test_drop_and_rejects_agree_in_the_three_forms(tmp_path_factory, form) -> None:
    _, found = read(tmp_path_factory, "verdicts", form)
    fates = {port: [(p.summary, p.fate) for p in j.packets] for port, (_, j) in found.items()}
    assert fates == {
        9040: [("SYN", "dropped"), ("SYN", "dropped")],
        9041: [("SYN", "rejected")],
        9042: [("udp 32 bytes", "rejected"), ("icmp error: port unreachable", "sent")],
    }
    actions = ["drop", "reject", "reject"]
    for (port, (flow, journey)), action, (rule, text) in zip(
        sorted(found.items()), actions, VERDICT_RULES[form], strict=True
    ):
        assert journey.packets[0].verdict == verdict(
            action, FILTER[form], FORWARD[form], rule, text
        ), port
        assert (flow.dropped, flow.lost) == (2 if port == 9040 else 1, 0)


# --- every capture: an answered connection loses nothing ---------------------------------------

CASES = ["isolation", "policy-drop", "rp-filter", "masquerade-unlogged", "verdicts"]


@pytest.mark.parametrize("form", [None, *FORMS])
@pytest.mark.parametrize("case", CASES)
def test_no_packet_of_an_answered_connection_is_dropped_stopped_or_lost(
    tmp_path_factory, case, form
) -> None:
    if (case, form) == ("verdicts", "iptables-nft listed by nft"):
        pytest.skip("samples/lab/verdicts.* has no nft listing")
    _, found = read(tmp_path_factory, case, form)
    answered = 0
    for flow, journey in found.values():
        if flow.answered:
            answered += 1
            fates = {p.fate for p in journey.packets}
            assert not fates & {"dropped", "rejected", "stopped", "lost"}, (flow.id, fates)
            assert (flow.dropped, flow.lost, flow.stopped) == (0, 0, 0), flow.id
    assert answered == {"policy-drop": 1, "rp-filter": 2, "masquerade-unlogged": 1}.get(case, 0)


def test_journey_ends_the_packet_with_the_isolation_rule(tmp_path_factory) -> None:
    store, found = read(tmp_path_factory, "isolation", "iptables-legacy")
    flow, _ = found[9070]
    runner = CliRunner()
    shown = runner.invoke(app, ["journey", flow.id, "--store", str(store.path)])
    assert shown.exit_code == 0, shown.output
    packet_lines = [line for line in shown.output.splitlines() if line.startswith("#")]
    assert [line.split("⇒ ")[1] for line in packet_lines] == [
        "dropped by filter LP-ISOLATION #2: -o lpbr1 -j DROP (ruleset)"
    ] * 2
    data = json.loads(
        runner.invoke(app, ["journey", flow.id, "--json", "--store", str(store.path)]).output
    )
    assert [(p["fate"], p["verdict"]["chain"]) for p in data["packets"]] == [
        ("dropped", "LP-ISOLATION")
    ] * 2


def test_every_kept_listing_reads_whole() -> None:
    """Each ruleset the tools printed during the captures is read without a bad line, in the
    format it is in."""
    listings = sorted(p for p in FATES.iterdir() if p.suffix in (".rules", ".nft"))
    assert len(listings) == 18  # 4 cases x 4 listings, verdicts' legacy and nft
    for path in listings:
        ruleset = load_ruleset(path)
        assert ruleset.bad_lines == (), path.name
        assert ruleset.format == ("nft" if path.suffix == ".nft" else "iptables-save"), path.name
