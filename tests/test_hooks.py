"""Where each hop was logged: TRACE, ruleset, prefix conventions, guess (real parsed lines)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logpath.errors import InputError
from logpath.hooks import Conventions, PrefixMatch, load_conventions, resolve_hooks
from logpath.hops import build_hops
from logpath.parse import parse_lines
from logpath.rules import load_ruleset, parse_ruleset

SAMPLES = Path(__file__).parent.parent / "samples"
SEED_LOG = SAMPLES / "seed" / "syslog"
SEED_RULES = SAMPLES / "seed" / "iptables.final.rules"
FORMATS = SAMPLES / "formats"
RULES = SAMPLES / "rules"


def hop_table(path: Path, lines: list[str] | None = None) -> pd.DataFrame:
    """The hop table of a log file (or of the given lines), through the real parser."""
    text = lines if lines is not None else path.read_text("utf-8").splitlines()
    parsed = parse_lines(str(path), enumerate(text, start=1))
    return build_hops(parsed, str(path), year=2016).to_pandas()


def located(hops: pd.DataFrame, *extra: str) -> list[tuple[object, ...]]:
    columns = ["table", "chain", "hook", "evidence", *extra]
    frame = hops[columns].astype("object")
    return [tuple(None if pd.isna(v) else v for v in row) for row in frame.itertuples(index=False)]


@pytest.fixture(scope="module")
def conventions() -> Conventions:
    return load_conventions(user=False)


# --- the seed: lines and ruleset of the article -----------------------------------------------

RAW_PRE = ("raw", "PREROUTING", "PREROUTING", "ruleset")
F_IN = ("filter", "INPUT", "INPUT", "ruleset")
F_OUT = ("filter", "OUTPUT", "OUTPUT", "ruleset")
FWD_D0_D0 = ("filter", "FwdId0Od0", "FORWARD", "ruleset")
FWD_D0_ND0 = ("filter", "FwdId0Ond0", "FORWARD", "ruleset")
FWD_OD0 = ("filter", "FwdOd0", "FORWARD", "ruleset")
NAT_POST = ("nat", "LogNatPostRouting", "POSTROUTING", "ruleset")

# samples/seed/README.md: journeys 1-6 are lines 1-4, 5-7, 8-12, 13-15, 16-22, 23-27.
SEED_EXPECTED = [
    RAW_PRE, FWD_D0_D0, RAW_PRE, FWD_OD0,  # 1: container1 -> container2, on the bridge
    RAW_PRE, F_IN, F_OUT,  # 2: container1 -> 172.17.0.1, RST
    RAW_PRE, F_IN, F_OUT, RAW_PRE, F_IN,  # 3: container1 -> 10.10.126.101
    F_OUT, F_IN, F_OUT,  # 4: host -> container1
    RAW_PRE, FWD_D0_ND0, NAT_POST, RAW_PRE, FWD_OD0, RAW_PRE, FWD_D0_ND0,  # 5: MASQUERADE
    RAW_PRE, RAW_PRE, FWD_D0_ND0, RAW_PRE, FWD_OD0,  # 6: LAN -> container1
]  # fmt: skip


def test_seed_hops_resolved_with_the_seed_ruleset(conventions: Conventions) -> None:
    hops = hop_table(SEED_LOG)
    resolved = resolve_hooks(hops, load_ruleset(SEED_RULES), conventions)
    assert len(resolved) == 27
    assert located(resolved) == SEED_EXPECTED
    assert set(resolved["nf_family"].astype("object")) == {"ip"}
    # the hop table itself is unchanged, the new columns come on a copy
    assert "hook" not in hops.columns
    assert resolved["lineno"].tolist() == list(range(1, 28))


def test_seed_hops_without_ruleset_read_the_prefixes(conventions: Conventions) -> None:
    resolved = resolve_hooks(hop_table(SEED_LOG), None, conventions)
    by_prefix = dict(zip(resolved["prefix"].astype(str), located(resolved), strict=True))
    assert by_prefix == {
        "[TonyBai]-RawPrerouting:": ("raw", None, "PREROUTING", "prefix"),
        "[TonyBai]-FwdId0Od0:": (None, None, "FORWARD", "prefix"),  # "Fwd"
        "[TonyBai]-FwdOd0:": (None, None, "FORWARD", "prefix"),
        "[TonyBai]-FilterInput:": ("filter", None, "INPUT", "prefix"),
        "[TonyBai]-FilterOutput:": ("filter", None, "OUTPUT", "prefix"),
        "[TonyBai]-FwdId0Ond0:": (None, None, "FORWARD", "prefix"),
        "[TonyBai]-NatPostRouting:": ("nat", None, "POSTROUTING", "prefix"),
    }


def test_many_hops_resolved_per_distinct_combination(conventions: Conventions) -> None:
    hops = hop_table(SEED_LOG)
    many = pd.concat([hops] * 400, ignore_index=True)  # 10,800 hops, 14 distinct combinations
    resolved = resolve_hooks(many, load_ruleset(SEED_RULES), conventions)
    assert located(resolved) == SEED_EXPECTED * 400
    assert resolved["hook"].dtype == "category"


# --- the formats reference's router: conventions, then its genuine ruleset --------------------

NAT_FORWARD = FORMATS / "ipv4-nat-forward.log"


def test_formats_prefixes_by_convention(conventions: Conventions) -> None:
    resolved = resolve_hooks(hop_table(NAT_FORWARD), None, conventions)
    seen = dict(zip(resolved["prefix"].astype(str), located(resolved), strict=True))
    assert seen == {
        "fmtR raw-PRE: ": ("raw", None, "PREROUTING", "prefix"),
        "fmtR mangle-PRE: ": ("mangle", None, "PREROUTING", "prefix"),
        "fmtR nat-PRE: ": ("nat", None, "PREROUTING", "prefix"),
        "fmtR filter-FWD: ": ("filter", None, "FORWARD", "prefix"),
        "fmtR mangle-POST: ": ("mangle", None, "POSTROUTING", "prefix"),
        "fmtR nat-POST: ": ("nat", None, "POSTROUTING", "prefix"),
        "fmtB raw-PRE: ": ("raw", None, "PREROUTING", "prefix"),
        "fmtR raw-PRE-rep: ": ("raw", None, "PREROUTING", "prefix"),
        "fmtR filter-FWD-rep: ": ("filter", None, "FORWARD", "prefix"),
        "fmtR mangle-POST-rep: ": ("mangle", None, "POSTROUTING", "prefix"),
    }


def test_formats_router_with_its_ruleset(conventions: Conventions) -> None:
    router = load_ruleset(RULES / "router.iptables-legacy-save.rules")
    resolved = resolve_hooks(hop_table(NAT_FORWARD), router, conventions)
    seen = dict(zip(resolved["prefix"].astype(str), located(resolved), strict=True))
    assert seen == {
        "fmtR raw-PRE: ": ("raw", "PREROUTING", "PREROUTING", "ruleset"),
        "fmtR mangle-PRE: ": ("mangle", "PREROUTING", "PREROUTING", "ruleset"),
        "fmtR nat-PRE: ": ("nat", "fmt-dnat", "PREROUTING", "ruleset"),
        "fmtR filter-FWD: ": ("filter", "fmt-fwd", "FORWARD", "ruleset"),
        "fmtR mangle-POST: ": ("mangle", "POSTROUTING", "POSTROUTING", "ruleset"),
        "fmtR nat-POST: ": ("nat", "POSTROUTING", "POSTROUTING", "ruleset"),
        # the server's line: not in the router's ruleset, so the prefix decides
        "fmtB raw-PRE: ": ("raw", None, "PREROUTING", "prefix"),
        "fmtR raw-PRE-rep: ": ("raw", "PREROUTING", "PREROUTING", "ruleset"),
        "fmtR filter-FWD-rep: ": ("filter", "fmt-fwd", "FORWARD", "ruleset"),
        "fmtR mangle-POST-rep: ": ("mangle", "POSTROUTING", "POSTROUTING", "ruleset"),
    }


def test_one_prefix_in_two_chains_picked_by_in_and_out(conventions: Conventions) -> None:
    # Two of the router's real lines, relabelled with the prefix its fmt-drop chain logs with
    # (reached from INPUT with ! -i lo, and from FORWARD).
    lines = NAT_FORWARD.read_text("utf-8").splitlines()
    raw_pre, filter_fwd = lines[0], lines[3]
    relabelled = [
        raw_pre.replace("fmtR raw-PRE: ", "fmtR drop: "),
        filter_fwd.replace("fmtR filter-FWD: ", "fmtR drop: "),
        raw_pre.replace("fmtR raw-PRE: ", "fmtR drop: ").replace("IN=ra ", "IN=lo "),
    ]
    router = load_ruleset(RULES / "router.iptables-legacy-save.rules")
    resolved = resolve_hooks(hop_table(NAT_FORWARD, relabelled), router, conventions)
    assert located(resolved) == [
        ("filter", "fmt-drop", "INPUT", "ruleset"),
        ("filter", "fmt-drop", "FORWARD", "ruleset"),
        # IN=lo: no rule with this prefix fits (! -i lo), and "drop" names no hook: a guess
        (None, None, "PREROUTING", "guess"),
    ]


# --- TRACE lines -------------------------------------------------------------------------------

TRACE_LOG = FORMATS / "trace-legacy.log"


def test_trace_lines_name_table_and_chain(conventions: Conventions) -> None:
    resolved = resolve_hooks(hop_table(TRACE_LOG), None, conventions)
    seen = dict(
        zip(
            zip(
                resolved["trace_table"].astype(str),
                resolved["trace_chain"].astype(str),
                strict=True,
            ),
            located(resolved),
            strict=True,
        )
    )
    assert seen[("raw", "PREROUTING")] == ("raw", "PREROUTING", "PREROUTING", "trace")
    assert seen[("nat", "INPUT")] == ("nat", "INPUT", "INPUT", "trace")
    # a user chain without a ruleset: the chain is known, the hook is not
    assert seen[("filter", "fmtchain")] == ("filter", "fmtchain", None, "trace")


def test_trace_user_chain_maps_through_the_ruleset(conventions: Conventions) -> None:
    # The formats reference's server: filter INPUT rule 2 jumps to fmtchain (§5.1).
    ruleset = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n:fmtchain - [0:0]\n"
        "-A INPUT -p tcp -m tcp --dport 7000 -j TRACE\n-A INPUT -p tcp -j fmtchain\n"
        "-A fmtchain -s 10.0.0.0/8 -j RETURN\nCOMMIT\n"
    )
    resolved = resolve_hooks(hop_table(TRACE_LOG), ruleset, conventions)
    user = resolved[resolved["trace_chain"].astype(str) == "fmtchain"]
    assert len(user) == 5
    assert set(located(user)) == {("filter", "fmtchain", "INPUT", "trace")}


# --- conventions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "in_iface", "out_iface", "expected"),
    [
        ("lp:nat:post ", "ra", "rb", PrefixMatch("nat", None, "POSTROUTING", "logpath")),
        ("lp:raw:pre:web ", "eth0", None, PrefixMatch("raw", None, "PREROUTING", "logpath")),
        ("lp:security:fwd:x ", "a", "b", PrefixMatch("security", None, "FORWARD", "logpath")),
        ("[UFW BLOCK] ", "eth0", None, PrefixMatch("filter", None, "INPUT", "ufw")),
        ("[UFW BLOCK] ", "eth0", "eth1", PrefixMatch("filter", None, "FORWARD", "ufw")),
        ("[UFW AUDIT] ", None, "eth0", PrefixMatch("filter", None, "OUTPUT", "ufw")),
        ("filter_IN_public_REJECT: ", "eth0", None, PrefixMatch("filter", None, "INPUT", "firewalld")),
        ("filter_FWD_internal_DROP: ", "a", "b", PrefixMatch("filter", None, "FORWARD", "firewalld")),
        ("filter_FWDO_work_REJECT: ", "a", "b", PrefixMatch("filter", None, "FORWARD", "firewalld")),
        ("FINAL_REJECT: ", "eth0", None, PrefixMatch("filter", None, "INPUT", "firewalld-final")),
        ("rpfilter_DROP: ", "eth0", None, PrefixMatch(None, None, "PREROUTING", "firewalld-rpfilter")),
        ("DOCKER-USER drop: ", "eth0", "docker0", PrefixMatch("filter", "DOCKER-USER", "FORWARD", "docker-user")),
        ("[TonyBai]-EnterNatInput:", "docker0", None, PrefixMatch("nat", None, "INPUT", "names")),
        ("MANGLE_POST_ROUTING ", None, "eth0", PrefixMatch("mangle", None, "POSTROUTING", "names")),
        ("fmtND ingress: ", "p1", None, PrefixMatch(None, None, "INGRESS", "names")),
    ],
)  # fmt: skip
def test_conventions(
    conventions: Conventions,
    prefix: str,
    in_iface: str | None,
    out_iface: str | None,
    expected: PrefixMatch,
) -> None:
    assert conventions.match(prefix, in_iface, out_iface) == expected


@pytest.mark.parametrize(
    "prefix",
    [
        "fmtN has=eq IN=fake OUT=x: ",  # names two hooks: no convention decides
        "[TonyBai]-Enter iptables:",
        "nf_ct_proto_6: invalid new ",
        "raw-nat-PRE: ",  # two tables
        "",
        None,
    ],
)
def test_prefixes_that_name_no_single_hook(conventions: Conventions, prefix: str | None) -> None:
    assert conventions.match(prefix, "eth0", None) is None


def test_guess_from_in_and_out(conventions: Conventions) -> None:
    resolved = resolve_hooks(hop_table(FORMATS / "prefix-pitfalls.log"), None, conventions)
    seen = dict(zip(resolved["prefix"].astype(str), located(resolved), strict=True))
    assert seen["fmtN has=eq IN=fake OUT=x: "] == (None, None, "PREROUTING", "guess")  # IN=ra
    assert seen["PPPPPPPPPPPPPPPPPPPPPPPPPPPPP"] == (None, None, "OUTPUT", "guess")  # OUT=a0
    (lines,) = [r for r in FORMATS.joinpath("ipv4-nat-forward.log").read_text().splitlines()[3:4]]
    unlabelled = hop_table(NAT_FORWARD, [lines.replace("fmtR filter-FWD: ", "")])
    assert located(resolve_hooks(unlabelled, None, conventions)) == [
        (None, None, "FORWARD", "guess")
    ]


def test_user_conventions_come_first(tmp_path: Path) -> None:
    mine = tmp_path / "prefixes.toml"
    mine.write_text(
        "[vocabulary.hooks]\nPREROUTING = ['vorher']\nFORWARD = ['pre']\n\n"
        "[[convention]]\nname = 'acme'\npattern = '^ACME-(?P<where>A|B) '\n"
        "table = 'mangle'\nhook = '{where}'\nchain = 'acme-{where}'\n\n"
        "[[convention]]\nname = 'acme-fallback'\npattern = '^ACME-'\nhook = 'by-interfaces'\n"
    )
    # 'A'/'B' are no hook words: the convention says nothing, the next one decides
    conventions = load_conventions([mine], user=False)
    assert conventions.match("ACME-A x", "eth0", None) == PrefixMatch(
        None, None, "INPUT", "acme-fallback"
    )
    assert conventions.match("nat-vorher: ", "eth0", None) == PrefixMatch(
        "nat", None, "PREROUTING", "names"
    )
    # the user's word wins over logpath's ("pre" is PREROUTING in logpath's own vocabulary)
    assert conventions.match("my-pre-x ", "a", "b") == PrefixMatch(None, None, "FORWARD", "names")
    # ... but logpath's own scheme keeps its words (its hook_map)
    assert conventions.match("lp:raw:pre ", "a", None) == PrefixMatch(
        "raw", None, "PREROUTING", "logpath"
    )
    assert conventions.match("lp:nat:post ", "a", "b") == PrefixMatch(
        "nat", None, "POSTROUTING", "logpath"
    )


def test_bad_prefixes_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[convention]\nname = 1\n")
    with pytest.raises(InputError) as error:
        load_conventions([broken], user=False)
    assert str(error.value).startswith(f"{broken}: not valid TOML: ")
    bad_regex = tmp_path / "regex.toml"
    bad_regex.write_text("[[convention]]\nname = 'x'\npattern = '(('\nhook = 'INPUT'\n")
    with pytest.raises(InputError) as error:
        load_conventions([bad_regex], user=False)
    assert str(error.value) == (
        f"{bad_regex}: convention 'x': bad pattern: missing ), unterminated subpattern at position 1"
    )
    no_hook = tmp_path / "nohook.toml"
    no_hook.write_text("[vocabulary.hooks]\nSIDEWAYS = ['side']\n")
    with pytest.raises(InputError) as error:
        load_conventions([no_hook], user=False)
    assert str(error.value) == f"{no_hook}: [vocabulary.hooks] SIDEWAYS is not a netfilter hook"
    bad_map = tmp_path / "map.toml"
    bad_map.write_text(
        "[[convention]]\nname = 'm'\npattern = 'x'\nhook = 'x'\nhook_map = { x = 'UP' }\n"
    )
    with pytest.raises(InputError) as error:
        load_conventions([bad_map], user=False)
    assert str(error.value) == f"{bad_map}: convention 'm': hook_map values must be hooks"
    with pytest.raises(InputError) as error:
        load_conventions([tmp_path / "absent.toml"], user=False)
    assert str(error.value).startswith(f"{tmp_path / 'absent.toml'}: cannot read the prefixes file")


# --- nft bridge and netdev families ------------------------------------------------------------

BRIDGE_NFT = """table bridge fmtnb {
\tchain fwd {
\t\ttype filter hook forward priority filter; policy accept;
\t\tlog prefix "fmtNB fwd: "
\t\tlog prefix "fmtNB fwd-ether: " flags ether
\t}
}
table netdev fmtnd {
\tchain ingress {
\t\ttype filter hook ingress device "p1" priority filter; policy accept;
\t\tlog prefix "fmtND ingress: "
\t}
}
"""


def test_nft_bridge_and_netdev_hooks(conventions: Conventions) -> None:
    resolved = resolve_hooks(
        hop_table(FORMATS / "nft-bridge-netdev.log"), parse_ruleset(BRIDGE_NFT), conventions
    )
    seen = dict(zip(resolved["prefix"].astype(str), located(resolved, "nf_family"), strict=True))
    assert seen == {
        "fmtNB fwd: ": ("fmtnb", "fwd", "FORWARD", "ruleset", "bridge"),
        "fmtNB fwd-ether: ": ("fmtnb", "fwd", "FORWARD", "ruleset", "bridge"),
        "fmtND ingress: ": ("fmtnd", "ingress", "INGRESS", "ruleset", "netdev"),
    }


def test_empty_hop_table(conventions: Conventions) -> None:
    empty = hop_table(SEED_LOG, [])
    resolved = resolve_hooks(empty, load_ruleset(SEED_RULES), conventions)
    assert len(resolved) == 0
    assert {"table", "chain", "hook", "evidence", "nf_family"} <= set(resolved.columns)


# --- bridge ports, disagreeing rules, several rulesets -----------------------------------------

BRIDGE_LOG = FORMATS / "bridge-br-netfilter.log"
BRIDGE_RULES = """*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j LOG --log-prefix "fmtBR raw-PRE: "
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j LOG --log-prefix "fmtBR raw-PRE: "
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:from-p1 - [0:0]
:from-p2 - [0:0]
-A FORWARD -m physdev --physdev-in p1 -j from-p1
-A FORWARD -m physdev ! --physdev-in p1 -j from-p2
-A from-p1 -j LOG --log-prefix "fmtBR filter-FWD: "
-A from-p2 -m physdev --physdev-out p1 -j LOG --log-prefix "fmtBR filter-FWD: "
COMMIT
"""


def test_bridge_ports_pick_the_chain(conventions: Conventions) -> None:
    hops = hop_table(BRIDGE_LOG)
    resolved = resolve_hooks(hops, parse_ruleset(BRIDGE_RULES), conventions)
    forward = resolved[resolved["prefix"].astype(str) == "fmtBR filter-FWD: "]
    ports = list(zip(forward["physin"].astype(str), forward["physout"].astype(str), strict=True))
    assert sorted(set(ports)) == [("p1", "p2"), ("p2", "p1")]
    chains = {port: row for port, row in zip(ports, located(forward), strict=True)}
    assert chains[("p1", "p2")] == ("filter", "from-p1", "FORWARD", "ruleset")
    assert chains[("p2", "p1")] == ("filter", "from-p2", "FORWARD", "ruleset")


def test_rules_that_disagree_leave_the_field_open(conventions: Conventions) -> None:
    # The same prefix logged in raw and in mangle PREROUTING: the hook is sure, the table is not.
    resolved = resolve_hooks(hop_table(BRIDGE_LOG), parse_ruleset(BRIDGE_RULES), conventions)
    pre = resolved[resolved["prefix"].astype(str) == "fmtBR raw-PRE: "]
    assert set(located(pre)) == {(None, "PREROUTING", "PREROUTING", "ruleset")}


def test_several_rulesets_are_pooled(conventions: Conventions) -> None:
    hops = pd.concat([hop_table(SEED_LOG), hop_table(NAT_FORWARD)], ignore_index=True)
    rulesets = [load_ruleset(SEED_RULES), load_ruleset(RULES / "router.iptables-nft.nft")]
    resolved = resolve_hooks(hops, rulesets, conventions)
    assert located(resolved)[:27] == SEED_EXPECTED
    router = dict(zip(resolved["prefix"].astype(str)[27:], located(resolved)[27:], strict=True))
    assert router["fmtR filter-FWD: "] == ("filter", "fmt-fwd", "FORWARD", "ruleset")
    assert router["fmtR nat-PRE: "] == ("nat", "fmt-dnat", "PREROUTING", "ruleset")


# --- genuine kernel captures of the lab (samples/lab) -----------------------------------------

LAB = SAMPLES / "lab"
HOOK_WORDS = {"pre": "PREROUTING", "in": "INPUT", "fwd": "FORWARD", "out": "OUTPUT"}


def test_lab_captures_agree_with_their_ruleset_and_their_prefixes(
    conventions: Conventions,
) -> None:
    # samples/rules/lab-host.iptables-save.rules: the lab host's ruleset (tests/lab/topology.py,
    # tag "lab") loaded with iptables-restore and ip6tables-restore, saved with both -save tools.
    hops = pd.concat([hop_table(path) for path in sorted(LAB.glob("*.log"))], ignore_index=True)
    assert len(hops) > 10_000
    ruleset = load_ruleset(RULES / "lab-host.iptables-save.rules")
    assert ruleset.bad_lines == ()
    by_rules = resolve_hooks(hops, ruleset, conventions)
    by_prefix = resolve_hooks(hops, None, conventions)
    # every real hop fits its LOG rule's hook (IN=/OUT= pattern included): none falls through
    assert set(by_rules["evidence"].astype(str)) == {"ruleset"}
    assert set(by_prefix["evidence"].astype(str)) == {"prefix"}
    parts = hops["prefix"].astype(str).str.split(":")
    expected_hook = parts.str[2].map({**HOOK_WORDS, "post": "POSTROUTING"})
    for resolved in (by_rules, by_prefix):
        assert resolved["table"].astype(str).tolist() == parts.str[1].tolist()
        assert resolved["hook"].astype(str).tolist() == expected_hook.tolist()
    assert by_rules["chain"].astype(str).tolist() == expected_hook.tolist()  # built-in chains


BUILTIN_CONVENTIONS = load_conventions(user=False)
LP_TABLES = ["raw", "mangle", "nat", "filter", "security"]
LP_HOOKS = {**HOOK_WORDS, "post": "POSTROUTING"}


@given(
    st.sampled_from(LP_TABLES),
    st.sampled_from(sorted(LP_HOOKS)),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)),
)
def test_logpath_scheme_always_read(table: str, hook: str, tag: str | None) -> None:
    conventions = BUILTIN_CONVENTIONS
    prefix = f"lp:{table}:{hook}" + (f":{tag}" if tag else "") + " "
    found = conventions.match(prefix, "eth0", None)
    assert found == PrefixMatch(table, None, LP_HOOKS[hook], "logpath")


def test_arp_lines_are_guessed_input(conventions: Conventions) -> None:
    # samples/formats/arp-nft.log: nft arp family, "fmtN arp-ether:" names no hook
    resolved = resolve_hooks(hop_table(FORMATS / "arp-nft.log"), None, conventions)
    seen = dict(zip(resolved["prefix"].astype(str), located(resolved), strict=True))
    assert seen == {
        "fmtN arp-in: ": (None, None, "INPUT", "prefix"),
        "fmtN arp-ether: ": (None, None, "INPUT", "guess"),
    }
