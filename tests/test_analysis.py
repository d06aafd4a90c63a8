"""The connection analysis (logpath.analysis) and its hints file, on the lab's kernel captures:
with the ruleset they were written under (verdicts, Docker isolation), without one (every
one-host capture, the two-host capture), and the seed's journeys (all well: nothing said)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.analysis import Hint, analyse, builtin_hints, load_hints
from logpath.cli import app
from logpath.errors import InputError
from logpath.journeys import Journey
from logpath.query import FlowQuery, load_journey, select_flows
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LAB = SAMPLES / "lab"
ISOLATION = LAB / "docker-bridges" / "docker-bridges.log"
ISOLATION_RULES = SAMPLES / "rules" / "docker-bridges.iptables-save.rules"
runner = CliRunner()


def ingest(path: Path, *files: Path, rules: Path | None = None) -> Store:
    options = ["--rules", str(rules)] if rules else []
    args = ["ingest", *map(str, files), "--store", str(path), *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return Store(path)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The lab's LOG-then-DROP/REJECT capture with its ruleset."""
    path = tmp_path_factory.mktemp("verdicts")
    return ingest(path, LAB / "verdicts.log", rules=LAB / "verdicts.rules")


@pytest.fixture(scope="module")
def isolation(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Docker's isolation between two bridges, with the ruleset printed during the capture."""
    return ingest(tmp_path_factory.mktemp("isolation"), ISOLATION, rules=ISOLATION_RULES)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Every one-host lab capture, without a ruleset."""
    return ingest(tmp_path_factory.mktemp("lab"), *sorted(LAB.glob("*.log")))


def test_dropped_retransmitted_syn_is_one_finding(verdicts: Store) -> None:
    analysis = analyse(_journey(verdicts, 9040))
    assert analysis.findings == (
        "2 of 2 packets (#1 SYN, #2 SYN) were dropped by filter FORWARD #4 (ruleset) at "
        "lpbr0[vethc1] → up0.",
        "No answer was logged.",
    )
    assert analysis.hints == ()  # filter FORWARD is nobody's well-known chain


def _journey(store: Store, dport: int) -> Journey:
    """The journey of the capture's one connection to port ``dport``."""
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.dport == dport]
    return load_journey(store, flow.id)


def test_rejections_name_the_rule_and_the_icmp_error_it_sent(verdicts: Store) -> None:
    assert analyse(_journey(verdicts, 9041)).text == (
        "#1 SYN was rejected by filter FORWARD #5 (ruleset) at lpbr0[vethc1] → up0. "
        "No answer was logged."
    )
    assert analyse(_journey(verdicts, 9042)).text == (
        "#1 udp 32 bytes was rejected by filter FORWARD #6 (ruleset) at lpbr0[vethc1] → up0. "
        "No answer was logged, only an ICMP error: #2 port unreachable from 172.30.0.1."
    )


def test_docker_isolation_drop_gets_its_hint(isolation: Store) -> None:
    """The chain name comes from the ruleset Docker's layout wrote; the hint from hints.toml."""
    analysis = analyse(_journey(isolation, 9050))
    assert analysis.findings == (
        "2 of 2 packets (#1 SYN, #2 SYN) were dropped by filter DOCKER-ISOLATION-STAGE-2 #2 in "
        "FORWARD (ruleset) at lpbr0[vethc1] → lpbr1.",
        "No answer was logged.",
    )
    (hint,) = analysis.hints
    (rule,) = [r for r in builtin_hints() if r.name == "docker-isolation"]
    assert hint == Hint("docker-isolation", "filter", "DOCKER-ISOLATION-STAGE-2", (1, 2), rule.text)
    assert hint.text.startswith("Docker's network isolation: Docker drops traffic between two")


def test_docker_user_reject_gets_the_administrators_hint(isolation: Store) -> None:
    analysis = analyse(_journey(isolation, 9051))
    assert analysis.findings[0] == (
        "#1 SYN was rejected by filter DOCKER-USER #1 in FORWARD (ruleset) at lpbr1[vethc2] → lpbr0."
    )
    assert [(h.name, h.chain, h.packets) for h in analysis.hints] == [
        ("docker-user", "DOCKER-USER", (1,))
    ]


def test_without_the_ruleset_the_analysis_asks_for_it(lab: Store) -> None:
    """The same drop, logged the same way: without the ruleset logpath only knows where the
    logs end, and says so: nothing answered the SYNs, so nothing shows they went on."""
    analysis = analyse(_journey(lab, 9040))
    assert analysis.text == (
        "logpath cannot tell what became of 2 of 2 packets (#1 SYN, #2 SYN) after filter "
        "FORWARD at lpbr0[vethc1] → up0: give the ruleset with --rules. No answer was logged."
    )
    assert analysis.hints == ()


def test_icmp_error_from_the_peer_is_the_answer_shown(lab: Store) -> None:
    assert analyse(_journey(lab, 9009)).text == (
        "No answer was logged, only an ICMP error: #2 port unreachable from 10.77.0.2."
    )


def test_answered_lab_connections_need_no_analysis(lab: Store) -> None:
    """Every capture but the unanswered ones: nothing went wrong, nothing is said."""
    _, flows = select_flows(lab, FlowQuery())
    answered = [f for f in flows if f.answered]
    assert len(answered) > 200  # the burst and every other scenario
    said = {f.id: analyse(load_journey(lab, f.id)).text for f in answered}
    assert {text for text in said.values()} == {""}
    unanswered = sorted(f.orig.dport for f in flows if not f.answered)
    assert unanswered == [9009, 9040, 9041, 9042]


def test_two_hosts_unknown_fate_is_not_presented_as_fact(tmp_path: Path) -> None:
    """hostb's statistic DROP took the first SYN; without a ruleset logpath cannot tell."""
    store = ingest(tmp_path, *sorted((LAB / "two-hosts").glob("two-hosts-*.log")))
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.dport == 8081]
    journey = load_journey(store, flow.id)
    assert journey.packets[0].fate == "unknown"
    assert analyse(journey).text == (
        "logpath cannot tell what became of #1 SYN after filter FORWARD at hostb wan0 → lpbrb "
        "(sent again as #2: no answer came to it): give the ruleset with --rules."
    )


def test_seed_journeys_need_no_analysis(seed_store: Store) -> None:
    _, flows = select_flows(seed_store, FlowQuery())
    assert len(flows) == 6
    assert [analyse(load_journey(seed_store, f.id)).to_json() for f in flows] == [
        {"text": "", "hints": []}
    ] * 6


def test_journey_json_adds_the_analysis_and_keeps_the_contract(isolation: Store) -> None:
    journey = _journey(isolation, 9050)
    args = ["journey", journey.flow.id, "--store", str(isolation.path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["flow", "packets", "analysis"]
    assert {k: v for k, v in data.items() if k != "analysis"} == json.loads(
        json.dumps(journey.to_json())
    )
    assert data["analysis"]["text"].startswith("2 of 2 packets (#1 SYN, #2 SYN) were dropped")
    assert [
        (h["name"], h["table"], h["chain"], h["packets"]) for h in data["analysis"]["hints"]
    ] == [("docker-isolation", "filter", "DOCKER-ISOLATION-STAGE-2", [1, 2])]


def test_builtin_hints_cover_the_well_known_chains() -> None:
    rules = builtin_hints()

    def named(table: str | None, chain: str) -> str | None:
        return next((r.name for r in rules if r.matches(table, chain)), None)

    assert [named("filter", c) for c in ("DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2",
             "DOCKER-USER", "DOCKER", "DOCKER-FORWARD", "ufw-user-input", "ufw6-user-forward",
             "ufw-reject-forward", "FWD_public", "IN_public_deny")] == [
        "docker-isolation", "docker-isolation", "docker-user", "docker", "docker", "ufw-user",
        "ufw-user", "ufw", "firewalld-iptables", "firewalld-iptables"]  # fmt: skip
    assert named("firewalld", "filter_FWD_public") == "firewalld"
    # a whole-name match: a user's chain that merely starts alike is not Docker's
    assert [named("filter", c) for c in ("DOCKERFILE", "DOCKER-USERS", "FORWARD", "lpchain")] == [
        None
    ] * 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[hint]\n", "hints.toml: not valid TOML: Expected ']]' at the end of an array "
         "declaration (at line 1, column 7)"),
        ('[hints]\nname = "x"\n', "hints.toml: expected only [[hint]] tables, found [hints]"),
        ('[[hint]]\nname = "x"\nchain = "X"\n',
         "hints.toml: hint 1 ('x'): missing text = \"...\""),
        ('[[hint]]\nname = "x"\nchain = "X"\ntext = "t"\nchains = "Y"\n',
         "hints.toml: hint 1 ('x'): unknown key 'chains'\n\n"
         "A hint has the keys name, chain, text, table."),
        ('[[hint]]\nname = "x"\nchain = "DOCKER-("\ntext = "t"\n',
         "hints.toml: hint 1 ('x'): chain: not a regular expression: missing ), unterminated "
         "subpattern at position 7"),
        ('[[hint]]\nname = "x"\nchain = 3\ntext = "t"\n',
         "hints.toml: hint 1 ('x'): chain must be a non-empty string"),
        ('[[hint]]\nname = "x"\nchain = "A"\ntext = "t"\n[[hint]]\nname = "x"\nchain = "B"\n'
         'text = "u"\n', "hints.toml: hint name 'x' is used twice: names must be unique"),
    ],
)  # fmt: skip
def test_malformed_hints_file_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        load_hints(text, "hints.toml")
    assert str(caught.value) == message


def test_a_given_hints_list_replaces_logpaths_own(isolation: Store) -> None:
    own = load_hints(
        '[[hint]]\nname = "mine"\ntable = "filter"\nchain = "DOCKER-.*"\ntext = "Ask Ana."\n',
        "mine.toml",
    )
    analysis = analyse(_journey(isolation, 9050), own)
    assert [h.to_json() for h in analysis.hints] == [
        {"name": "mine", "table": "filter", "chain": "DOCKER-ISOLATION-STAGE-2",
         "packets": [1, 2], "text": "Ask Ana."}
    ]  # fmt: skip


def test_rp_filter_drop_is_lost_with_the_log_rule_that_missed_it(isolation: Store) -> None:
    """c1 → host from an address of the other bridge: rp_filter drops the SYNs after raw
    PREROUTING. The ruleset says filter INPUT's LOG rule matches them next: lost, not dropped."""
    journey = _journey(isolation, 9052)
    assert [p.fate for p in journey.packets] == ["lost", "lost"]
    assert analyse(journey).findings == (
        "2 of 2 packets (#1 SYN, #2 SYN) were lost after raw PREROUTING at lpbr0[vethc1] → ·: "
        "filter INPUT #1 (prefix 'lp:filter:in:lab') matches it at INPUT and no line shows it "
        "there (ruleset); what stopped it on the way is not in the logs (rp_filter, a missing "
        "route, a full queue, a rule the ruleset given does not have, or a line the kernel did "
        "not log).",
        "No answer was logged.",
    )
    # the same host answered c1 from its own address: nothing to say there
    answered = _journey(isolation, 9053)
    assert answered.flow.answered and analyse(answered).to_json() == {"text": "", "hints": []}


def test_lost_under_a_ruleset_without_the_drop_rules_says_that_cause(tmp_path: Path) -> None:
    """The verdicts capture judged by the lab's usual ruleset (without the DROP and REJECT rules
    that were in force): the ruleset says mangle POSTROUTING's LOG rule would have logged the
    SYNs, so they are lost; the list of causes includes a rule the ruleset given lacks."""
    store = ingest(tmp_path, LAB / "verdicts.log",
                   rules=SAMPLES / "rules" / "lab-host.iptables-save.rules")  # fmt: skip
    journey = _journey(store, 9040)
    assert [p.fate for p in journey.packets] == ["lost", "lost"]
    (lost, no_answer) = analyse(journey).findings
    assert lost.startswith(
        "2 of 2 packets (#1 SYN, #2 SYN) were lost after filter FORWARD at lpbr0[vethc1] → up0: "
        "mangle POSTROUTING #1 (prefix 'lp:mangle:post:lab') matches it at POSTROUTING and no "
        "line shows it there (ruleset); "
    )
    assert "a rule the ruleset given does not have" in lost and no_answer == "No answer was logged."


def test_lost_syns_accepted_in_different_tables_are_one_finding(tmp_path: Path) -> None:
    """samples/lab/fates/rp-filter: the spoofed SYN and its retransmission, both lost after nat
    PREROUTING; the first is accepted by nat INPUT's policy, the second (which the nat table does
    not see again) by filter INPUT's. The sentence names neither, so it is said once."""
    fates = LAB / "fates"
    store = ingest(tmp_path, fates / "rp-filter.log", rules=fates / "rp-filter.rules")
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.src == "172.30.0.99"]
    journey = load_journey(store, flow.id)
    assert [(p.fate, p.verdict and p.verdict["table"]) for p in journey.packets] == [
        ("lost", "nat"), ("lost", "filter")
    ]  # fmt: skip
    (lost, no_answer) = analyse(journey).findings
    assert lost.startswith("2 of 2 packets (#1 SYN, #2 SYN) were lost after nat PREROUTING at up0")
    assert no_answer == "No answer was logged."
