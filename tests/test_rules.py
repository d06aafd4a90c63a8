"""Rulesets: loading, LOG prefix locations through jumps, interface conditions, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logpath.errors import RulesetError
from logpath.rules import (
    IfaceMatch,
    Location,
    Ruleset,
    describe_bad_line,
    load_ruleset,
    parse_ruleset,
)

SAMPLES = Path(__file__).parent.parent / "samples"
SEED_RULES = SAMPLES / "seed" / "iptables.final.rules"
RULES = SAMPLES / "rules"


def where(ruleset: Ruleset, prefix: str) -> list[tuple[str, str, str | None]]:
    return [(loc.table, loc.chain, loc.hook) for loc in ruleset.locations(prefix)]


@pytest.fixture(scope="module")
def seed() -> Ruleset:
    return load_ruleset(SEED_RULES)


# --- the seed ruleset: every prefix of the article (SUMMARY.md, "The author's LOG rules") -------


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("[TonyBai]-RawPrerouting:", [("raw", "PREROUTING", "PREROUTING")]),
        ("[TonyBai]-RawOutput:", [("raw", "OUTPUT", "OUTPUT")]),
        ("[TonyBai]-EnterFilterInput:", [("filter", "INPUT", "INPUT")]),
        ("[TonyBai]-FilterInput:", [("filter", "INPUT", "INPUT")]),
        ("[TonyBai]-EnterFilterOutput:", [("filter", "OUTPUT", "OUTPUT")]),
        ("[TonyBai]-FilterOutput:", [("filter", "OUTPUT", "OUTPUT")]),
        ("[TonyBai]-FwdId0Od0:", [("filter", "FwdId0Od0", "FORWARD")]),
        ("[TonyBai]-FwdId0Ond0:", [("filter", "FwdId0Ond0", "FORWARD")]),
        ("[TonyBai]-FwdOd0:", [("filter", "FwdOd0", "FORWARD")]),
        ("[TonyBai]-Enter iptables:", [("nat", "PREROUTING", "PREROUTING")]),
        ("[TonyBai]-NatPrerouting:", [("nat", "PREROUTING", "PREROUTING")]),
        ("[TonyBai]-EnterNatInput:", [("nat", "INPUT", "INPUT")]),
        ("[TonyBai]-NatInput:", [("nat", "INPUT", "INPUT")]),
        ("[TonyBai]-NatPostRouting:", [("nat", "LogNatPostRouting", "POSTROUTING")]),
    ],
)
def test_seed_prefix_locations(seed: Ruleset, prefix: str, expected: list[tuple[str, ...]]) -> None:
    assert where(seed, prefix) == expected


def test_seed_user_chains_keep_the_interface_conditions_of_the_path(seed: Ruleset) -> None:
    (fwd,) = seed.locations("[TonyBai]-FwdId0Ond0:")
    # FORWARD -i docker0 ! -o docker0 -j FwdId0Ond0, then the LOG rule repeats the same matches.
    assert fwd == Location(
        "filter",
        "FwdId0Ond0",
        "FORWARD",
        "ip",
        (IfaceMatch("in", "docker0", False), IfaceMatch("out", "docker0", True)),
    )
    assert fwd.lineno == 32
    assert fwd.admits("docker0", "eth0")
    assert not fwd.admits("docker0", "docker0")
    assert not fwd.admits("docker0", None)  # FORWARD hops have both IN= and OUT=
    (masq,) = seed.locations("[TonyBai]-NatPostRouting:")
    assert masq.admits(None, "eth0") and not masq.admits(None, "docker0")


def test_seed_prefixes_in_ruleset_order(seed: Ruleset) -> None:
    assert seed.prefixes[:3] == [
        "[TonyBai]-RawPrerouting:",
        "[TonyBai]-RawOutput:",
        "[TonyBai]-EnterFilterInput:",
    ]
    assert len(seed.prefixes) == 14


def test_hooks_of_chains(seed: Ruleset) -> None:
    assert seed.hooks_of("filter", "FwdOd0") == ["FORWARD"]
    assert seed.hooks_of("nat", "LogNatPostRouting") == ["POSTROUTING"]
    assert seed.hooks_of("nat", "DOCKER") == ["OUTPUT"]  # the final rules dropped PREROUTING's jump
    assert seed.hooks_of("filter", "DOCKER") == ["FORWARD"]
    assert seed.hooks_of("filter", "nosuchchain") == []


def test_prefix_lookup_tolerates_surrounding_space(seed: Ruleset) -> None:
    assert where(seed, "[TonyBai]-FwdOd0: ") == [("filter", "FwdOd0", "FORWARD")]
    assert seed.locations("[TonyBai]-Nowhere:") == []
    assert seed.locations(None) == []  # no LOG rule without a prefix here


def test_seed_bad_lines_kept_and_described(seed: Ruleset) -> None:
    assert [bad.lineno for bad in seed.bad_lines] == [3, 16, 40, 42, 43]
    assert describe_bad_line(seed.source, seed.bad_lines[3]) == (
        f"{SEED_RULES}:42:27: expected policy (ACCEPT, DROP or -), found 'OSTROUTING'"
        " (kept: :OUTPUT ACCEPT [6:364])\n"
        "  :OUTPUT ACCEPT [6:364] :P OSTROUTING ACCEPT [6:364]\n"
        "  " + " " * 26 + "^"
    )


def test_json_round_trip(seed: Ruleset) -> None:
    stored = json.loads(json.dumps(seed.to_json()))  # as the store's manifest keeps it
    back = Ruleset.from_json(stored)
    assert back == seed
    assert Ruleset.from_json(json.dumps(stored)) == seed
    assert back.locations("[TonyBai]-FwdId0Ond0:") == seed.locations("[TonyBai]-FwdId0Ond0:")
    assert back.bad_lines[3].salvaged == ":OUTPUT ACCEPT [6:364]"
    damaged = {key: value for key, value in stored.items() if key != "rules"}
    with pytest.raises(RulesetError) as error:
        Ruleset.from_json(damaged)
    assert str(error.value) == "the stored ruleset is damaged (KeyError('rules'))"


def test_json_round_trip_keeps_conditions_and_targets() -> None:
    for name in ("host-handles.nft", "lab-host.iptables-save.rules"):
        ruleset = load_ruleset(RULES / name)
        assert Ruleset.from_json(json.loads(json.dumps(ruleset.to_json()))) == ruleset
    # a ruleset stored before conditions were kept: read, with nothing parsed (None), not "none"
    old = load_ruleset(RULES / "router.iptables-legacy-save.rules").to_json()
    for rule in old["rules"]:
        del rule["conditions"], rule["verdict"], rule["handle"]
    back = Ruleset.from_json(json.loads(json.dumps(old)))
    assert {(rule.conditions, rule.verdict, rule.handle) for rule in back.rules} == {
        (None, None, None)
    }
    assert back.locations("fmtR drop: ") == load_ruleset(
        RULES / "router.iptables-legacy-save.rules"
    ).locations("fmtR drop: ")


# --- nft and the router ------------------------------------------------------------------------


def test_nft_locations_through_jump_goto_and_verdict_map() -> None:
    host = load_ruleset(RULES / "host.nft")
    assert host.format == "nft"
    found = [
        (loc.family, loc.table, loc.chain, loc.hook, loc.matches)
        for loc in host.locations("from containers: ")
    ]
    assert found == [
        ("inet", "lp", "from_containers", "INPUT", ()),  # iifname vmap { "docker0" : jump ... }
        (
            "inet",
            "lp",
            "from_containers",
            "FORWARD",
            (IfaceMatch("in", "docker0", False), IfaceMatch("out", "docker0", True)),
        ),
    ]
    assert where(host, "ssh in: ") == [("lp", "wan_in", "INPUT")]
    assert where(host, "lp:raw:pre ") == [("lp", "pre", "PREROUTING")]
    assert where(host, "masq: ") == [("natty", "postrouting", "POSTROUTING")]
    assert [(loc.family, loc.hook) for loc in host.locations("br fwd: ")] == [("bridge", "FORWARD")]
    assert [(loc.family, loc.hook) for loc in host.locations("edge in: ")] == [
        ("netdev", "INGRESS")
    ]
    assert host.locations("nflog only: ") == []  # log group 5: NFLOG, never a kernel line
    assert host.hooks_of("lp", "counted") == ["INPUT", "FORWARD"]  # via goto from from_containers


def test_one_prefix_in_two_places_is_told_apart_by_in_and_out() -> None:
    router = load_ruleset(RULES / "router.iptables-legacy-save.rules")
    drop = router.locations("fmtR drop: ")
    assert [(loc.chain, loc.hook) for loc in drop] == [
        ("fmt-drop", "INPUT"),
        ("fmt-drop", "FORWARD"),
    ]
    assert [loc.hook for loc in drop if loc.admits("ra", None)] == ["INPUT"]
    assert [loc.hook for loc in drop if loc.admits("ra", "rb")] == ["FORWARD"]
    assert [loc.hook for loc in drop if loc.admits("lo", None)] == []  # INPUT has ! -i lo


def test_iptables_nft_listing_and_iptables_save_give_the_same_locations() -> None:
    saved = load_ruleset(RULES / "router.iptables-nft-save.rules")
    listed = load_ruleset(RULES / "router.iptables-nft.nft")
    assert saved.format == "iptables-save" and listed.format == "nft"
    for prefix in saved.prefixes:
        assert where(listed, prefix) == where(saved, prefix), prefix
    assert where(saved, "fmtR nat-PRE: ") == [("nat", "fmt-dnat", "PREROUTING")]


def test_wildcard_interfaces() -> None:
    text = (
        "*filter\n:FORWARD ACCEPT [0:0]\n:veths - [0:0]\n"
        "-A FORWARD -i veth+ -j veths\n"
        '-A veths -j LOG --log-prefix "from a veth: "\nCOMMIT\n'
    )
    (loc,) = parse_ruleset(text).locations("from a veth: ")
    assert loc.admits("veth1234", "eth0")
    assert not loc.admits("eth1", "eth0")


def test_unreachable_user_chain_has_no_hook() -> None:
    text = '*filter\n:orphan - [0:0]\n-A orphan -j LOG --log-prefix "orphan: "\nCOMMIT\n'
    assert where(parse_ruleset(text), "orphan: ") == [("filter", "orphan", None)]


def test_jump_loops_end() -> None:
    text = (
        "*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n"
        "-A INPUT -j a\n-A a -j b\n-A b -j a\n"
        '-A b -j LOG --log-prefix "loop: "\nCOMMIT\n'
    )
    assert where(parse_ruleset(text), "loop: ") == [("filter", "b", "INPUT")]


# --- files that are not rulesets ---------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesetError) as error:
        load_ruleset(tmp_path / "nope.rules")
    assert str(error.value) == f"{tmp_path / 'nope.rules'}: no such ruleset file"


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(RulesetError) as error:
        load_ruleset(tmp_path)
    assert str(error.value) == f"{tmp_path}: is a directory, not a ruleset file"


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.gz"
    path.write_bytes(b"*filter\n\x1f\x8b\x08\x00binary")
    with pytest.raises(RulesetError) as error:
        load_ruleset(path)
    assert str(error.value) == (
        f"{path}: line 2: not UTF-8 text (byte 9)\n\n"
        "Give the text printed by iptables-save, ip6tables-save or nft list ruleset."
    )


def test_not_a_ruleset(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    path.write_text("Jan 14 09:30:01 pc-baim kernel: [TonyBai]-FwdOd0:IN=eth0 OUT=docker0\n")
    with pytest.raises(RulesetError) as error:
        load_ruleset(path)
    assert str(error.value) == (
        f"{path}: line 1: not iptables-save or nft list ruleset output: "
        "'Jan 14 09:30:01 pc-baim kernel: [TonyBai'\n\n"
        "Give the text printed by iptables-save, ip6tables-save or nft list ruleset."
    )


def test_empty_and_unreadable_rulesets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.rules"
    empty.write_text("# nothing\n\n")
    with pytest.raises(RulesetError) as error:
        load_ruleset(empty)
    assert str(error.value) == f"{empty}: the ruleset file is empty"
    with pytest.raises(RulesetError) as error:
        parse_ruleset("*filter\n:P OSTROUTING ACCEPT\n", "broken.rules")
    assert str(error.value) == (
        "broken.rules: no chain or rule could be read\n\n"
        "broken.rules:2:4: expected policy (ACCEPT, DROP or -), found 'OSTROUTING'\n"
        "  :P OSTROUTING ACCEPT\n"
        "     ^"
    )


def test_seed_ruleset_as_nft_lists_it_gives_the_same_locations(seed: Ruleset) -> None:
    # samples/rules/seed.iptables-nft.nft: the article's file loaded with iptables-nft-restore,
    # then `nft list ruleset`.
    listed = load_ruleset(RULES / "seed.iptables-nft.nft")
    assert listed.bad_lines == ()
    assert listed.prefixes == seed.prefixes
    for prefix in seed.prefixes:
        assert listed.locations(prefix) == seed.locations(prefix), prefix
