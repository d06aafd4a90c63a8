"""nf_tables traces read into hops, packets and verdicts, on genuine lab captures.

``samples/lab/trace/nft-trace.txt`` is what ``nft -a monitor trace`` printed in the lab host's
namespace (tests/lab/capture_nft_trace.py) while c1 talked to lan through it: TCP :9050
accepted and masqueraded (both ways traced), TCP :9052 dropped in a user chain ``lpsub``
jumped to from ``lpfwd`` (the SYN and its retransmission), an ICMP echo. ``xtables-trace.txt``
is ``xtables-monitor --trace`` for iptables-nft ``-j TRACE`` rules: TCP :9051 accepted, :9053
dropped by a filter FORWARD rule. ``*.rules`` is ``nft -a list ruleset`` during each capture,
``*.dmesg`` the lab's LOG lines of the same packets.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyparsing as pp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from logpath.grammars import trace
from typer.testing import CliRunner

from logpath import lines
from logpath.assembly import trace_chunk
from logpath.cli import app
from logpath.hops import build_hops
from logpath.ingest import ingest
from logpath.nftrace import SKIP_FOLDED, SKIP_ORPHAN, tcp_flags
from logpath.parse import Rejected, parse_lines, trace_pattern
from logpath.query import FlowQuery, find_flows, load_journey
from logpath.rules import load_ruleset
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TRACE = SAMPLES / "lab" / "trace"
NFT, XT = TRACE / "nft-trace.txt", TRACE / "xtables-trace.txt"
FORMATS = sorted((SAMPLES / "formats").glob("*monitor-trace*.txt"))


def numbered(path: Path) -> list[tuple[int, str]]:
    return list(enumerate(path.read_text().splitlines(), 1))


def hop_table(path: Path) -> pd.DataFrame:
    return build_hops(parse_lines(path.name, numbered(path)), path.name).to_pandas()


def traced(path: Path, rules: Path | None = None) -> pd.DataFrame:
    ruleset = load_ruleset(rules) if rules else None
    hops, _ = trace_chunk(hop_table(path).assign(assembly_row=0), ruleset, None)
    return hops


# --- the grammar ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [NFT, XT, *FORMATS], ids=lambda p: p.name)
def test_every_line_of_the_captures_parses(path: Path) -> None:
    kinds = Counter(trace.parse_line(line)["trace_type"] for _, line in numbered(path))
    assert set(kinds) <= {"packet", "rule", "policy", "PACKET"}
    assert sum(kinds.values()) == len(numbered(path))


def test_an_nft_packet_line_gives_the_packet_in_the_log_vocabulary() -> None:
    line = NFT.read_text().splitlines()[225]  # line 226, the dropped SYN at lpfwd
    assert trace.parse_line(line) == {
        "trace_id": line.split()[2],
        "trace_family": "inet",
        "trace_table": "lptrace",
        "trace_chain": "lpfwd",
        "trace_type": "rule",
        "trace_rule": "tcp dport 9052 jump lpsub",
        "trace_handle": "11",
        "trace_verdict": "jump lpsub",
    }
    packet = trace.parse_line(NFT.read_text().splitlines()[224])
    assert {k: packet[k] for k in ("in_iface", "out_iface", "src", "dst", "ttl", "id", "len")} == {
        "in_iface": "lpbr0",
        "out_iface": "up0",
        "src": "172.30.0.2",
        "dst": "10.77.0.2",
        "ttl": "63",
        "id": "24163",
        "len": "60",
    }
    assert (packet["sport"], packet["dport"], packet["tcp_flags"]) == ("41170", "9052", "syn")


@pytest.mark.parametrize("path", [NFT, XT, *FORMATS], ids=lambda p: p.name)
def test_the_compiled_pattern_reads_every_line_as_the_grammar(path: Path) -> None:
    pattern = trace_pattern()
    for _, line in numbered(path):
        found = pattern.regex.match(line)
        assert found is not None, line
        assert pattern.fields(found) == trace.parse_line(line), line


@pytest.mark.parametrize(
    ("printed", "logged"),
    [("syn", "SYN"), ("0x12", "ACK SYN"), ("0x18", "ACK PSH"), ("(syn | ack)", "ACK SYN"),
     ("ACK PSH", "ACK PSH"), ("FIN ACK", "ACK FIN"), ("bogus", None)],
)  # fmt: skip
def test_tcp_flags_are_written_in_the_kernel_log_order(printed: str, logged: str | None) -> None:
    assert tcp_flags(printed) == logged


# --- hops: one per chain visit ----------------------------------------------------------------


def test_each_chain_visit_is_one_hop_with_its_verdict() -> None:
    hops = hop_table(NFT)
    assert len(hops) == 154  # of 446 lines
    drop = hops[hops["trace_verdict"].eq("drop")]
    assert drop[["lineno", "trace_table", "trace_chain", "trace_type", "trace_handle"]].to_dict(
        "records"
    ) == [
        {"lineno": 228, "trace_table": "lptrace", "trace_chain": "lpsub", "trace_type": "rule",
         "trace_handle": 13},
        {"lineno": 250, "trace_table": "lptrace", "trace_chain": "lpsub", "trace_type": "rule",
         "trace_handle": 13},
    ]  # fmt: skip
    # the user chain's visit carries the packet its base chain saw, and where it came from
    assert drop["trace_from"].tolist() == ["lpfwd", "lpfwd"]
    assert drop["trace_rule"].tolist() == ["tcp dport 9052 drop"] * 2
    assert drop[["src", "sport", "dst", "dport", "ttl", "out_iface"]].iloc[0].tolist() == [
        "172.30.0.2", 41170, "10.77.0.2", 9052, 63, "up0"
    ]  # fmt: skip
    jumps = hops[hops["trace_verdict"].eq("jump lpsub")]
    assert jumps["lineno"].tolist() == [226, 248]
    assert Counter(hops["trace_verdict"]) == {"accept": 150, "jump lpsub": 2, "drop": 2}


def test_xtables_monitor_visits_read_like_nft_ones() -> None:
    hops = hop_table(XT)
    assert len(hops) == 62  # of 186 lines
    drop = hops[hops["trace_verdict"].eq("drop")]
    assert drop[["trace_family", "trace_table", "trace_chain", "trace_handle"]].iloc[0].tolist() == [
        "ip", "filter", "FORWARD", 13
    ]  # fmt: skip
    assert (
        drop["trace_rule"].iloc[0] == "-4 -t filter -A FORWARD -p tcp -m tcp --dport 9053 -j DROP"
    )
    # MAC addresses zero padded as the LOG lines print them; no protocol printed but TCP flags
    assert (drop["macsrc"].iloc[0], drop["proto"].iloc[0]) == ("02:00:ac:1e:00:02", "tcp")


@given(st.lists(st.text(alphabet="ab\n", max_size=8).map(str.encode), min_size=1, max_size=2))
def test_the_last_line_of_a_read_is_found_without_joining_it(pieces: list[bytes]) -> None:
    """``_last_line`` of a block's last two pieces is the last line their joined text shows."""
    text = b"".join(pieces)
    joined = text[:-1].rsplit(b"\n", 1)[-1] if text.endswith(b"\n") else None
    assert lines._last_line(pieces) == joined


def test_a_block_cut_keeps_a_visits_lines_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "BLOCK_BYTES", 3000)  # ~10 lines a block
    tally = lines._Tally(lines.NOTHING, __import__("hashlib").sha256(), b"")
    stream = io.BufferedReader(io.BytesIO(NFT.read_bytes()))  # type: ignore[arg-type]
    blocks = list(lines._text_blocks(stream, tally, False, Counter()))
    assert len(blocks) > 10
    starts = [b.data.split(b"\n", 1)[0] for b in blocks]
    assert all(b" packet: " in s for s in starts)  # each block starts at a packet line
    whole = pd.concat(
        [build_hops(parse_lines("x", list(b.texts()[0])), "x").to_pandas() for b in blocks]
    )
    alone = hop_table(NFT).assign(source="x")
    assert whole.astype(str).values.tolist() == alone.astype(str).values.tolist()


# --- packets, hooks and verdicts ---------------------------------------------------------------


def chains(packet: pd.DataFrame) -> list[str]:
    return (packet["trace_table"].astype(str) + " " + packet["trace_chain"].astype(str)).tolist()


def test_visits_of_one_packet_are_one_packet_in_line_order() -> None:
    hops = traced(NFT)
    # 10 of the TCP exchange, 2 SYNs dropped, 2 echoes, 10 of the TCP exchange over IPv6
    assert hops["packet"].nunique() == 24
    first = hops[hops["packet"].eq(0)]
    # the trace id changed between PREROUTING and FORWARD (lines 3 and 15): one packet still
    assert first["trace_id"].nunique() == 2
    assert chains(first) == [
        "lptrace pre", "raw PREROUTING", "mangle PREROUTING", "nat PREROUTING",
        "mangle FORWARD", "filter FORWARD", "lptrace lpfwd", "mangle POSTROUTING",
        "nat POSTROUTING",
    ]  # fmt: skip
    assert first["lineno"].is_monotonic_increasing
    # a later packet reuses the first one's trace id: another packet all the same
    reused = hops[hops["trace_id"].eq(first["trace_id"].iloc[0])]
    assert reused["packet"].nunique() > 1


def test_hooks_come_from_builtin_chain_names_or_the_ruleset() -> None:
    bare = traced(NFT)
    drop = bare[bare["trace_verdict"].eq("drop")].iloc[0]
    assert bare.loc[bare["trace_chain"].eq("FORWARD"), "hook"].unique().tolist() == ["FORWARD"]
    assert pd.isna(drop["hook"])  # lpsub: a user chain, no ruleset to say which hook reaches it
    ruled = traced(NFT, TRACE / "nft-trace.rules")
    where = ruled.drop_duplicates("trace_chain").set_index("trace_chain")["hook"]
    assert where[["pre", "lpfwd", "lpsub", "out"]].tolist() == [
        "PREROUTING", "FORWARD", "FORWARD", "OUTPUT"
    ]  # fmt: skip
    assert set(ruled["evidence"]) == {"trace"}


@pytest.fixture(scope="module")
def nft_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("nft") / "store")
    ruleset = load_ruleset(TRACE / "nft-trace.rules").to_json()
    ingest([str(NFT)], store, ruleset=ruleset)
    return store


def journey_of(store: Store, dport: int):  # type: ignore[no-untyped-def]
    (flow,) = [f for f in find_flows(store, FlowQuery()) if f.orig.dport == dport]
    return flow, load_journey(store, flow.id)


def test_the_dropped_packets_verdict_is_the_rule_that_dropped_them(nft_store: Store) -> None:
    flow, journey = journey_of(nft_store, 9052)
    assert [(p.summary, p.fate) for p in journey.packets] == [
        ("SYN", "dropped"),
        ("SYN", "dropped"),
    ]
    for packet in journey.packets:
        assert packet.verdict == {
            "action": "drop",
            "hook": "FORWARD",
            "table": "lptrace",
            "chain": "lpsub",
            "rule": 13,  # the nft handle
            "text": "tcp dport 9052 drop",
            "evidence": "nft-trace",
            "reason": None,
        }
    assert flow.dropped == 2


def test_an_accepted_packets_verdict_is_its_last_decision(nft_store: Store) -> None:
    _, journey = journey_of(nft_store, 9050)
    syn = journey.packets[0]
    assert (syn.summary, syn.fate) == ("SYN", "forwarded")
    assert syn.verdict == {
        "action": "accept",
        "hook": "POSTROUTING",
        "table": "nat",
        "chain": "POSTROUTING",
        "rule": 19,
        "text": 'oifname != "lpbr0" ip saddr 172.30.0.0/24 counter packets 0 bytes 0 masquerade',
        "evidence": "nft-trace",
        "reason": None,
    }
    # later packets see no nat chain: their last decision is mangle POSTROUTING's policy
    assert journey.packets[1].verdict is not None
    assert journey.packets[1].verdict["rule"] == "policy"
    assert journey.packets[1].verdict["text"] == "policy accept"
    assert {p.fate for p in journey.packets} == {"forwarded"}


def test_ipv6_visits_read_like_the_log_lines_of_the_same_packets(nft_store: Store) -> None:
    """IPv6 to the host itself: nft's ip6 length (the payload's) is LOG's LEN less the 40-byte
    header, and the host's answers are traced at output (no input interface)."""
    _, journey = journey_of(nft_store, 9054)
    assert len(journey.packets) == 10
    syn, syn_ack = journey.packets[:2]
    assert (syn.summary, syn.fate, syn_ack.summary, syn_ack.fate) == (
        "SYN", "delivered", "SYN-ACK", "sent"
    )  # fmt: skip
    assert [h.hook for h in syn_ack.hops] == ["OUTPUT"] * 4 + ["POSTROUTING"]
    assert {(h.in_iface, h.out_iface, h.src) for h in syn_ack.hops} == {
        (None, "lpbr0", "fd00:30::1")
    }
    logged = hop_table(TRACE / "nft-trace.dmesg")
    logged_syn = logged[logged["dport"].eq(9054) & logged["flags"].eq("SYN")].iloc[0]
    assert syn.hops[0].fields["len"] == logged_syn["len"] == 80


def test_xtables_monitor_drop_through_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    store = str(tmp_path / "store")
    done = runner.invoke(app, ["ingest", str(XT), "--store", store])
    assert done.exit_code == 0, done.output
    flows = json.loads(runner.invoke(app, ["flows", "--all", "--json", "--store", store]).output)
    assert sorted((f["orig"]["dport"], f["packets"], f["dropped"]) for f in flows) == [
        (9051, 10, 0),
        (9053, 2, 2),
    ]
    (dropped,) = [f["id"] for f in flows if f["dropped"]]
    shown = runner.invoke(app, ["journey", dropped, "--json", "--store", store])
    assert shown.exit_code == 0
    verdicts = [p["verdict"] for p in json.loads(shown.output)["packets"]]
    assert (
        verdicts
        == [
            {
                "action": "drop",
                "hook": "FORWARD",
                "table": "filter",
                "chain": "FORWARD",
                "rule": 13,
                "text": "-4 -t filter -A FORWARD -p tcp -m tcp --dport 9053 -j DROP",
                "evidence": "nft-trace",
                "reason": None,
            }
        ]
        * 2
    )


def test_a_file_mixing_trace_and_log_lines_reads_both(tmp_path: Path) -> None:
    """The LOG lines of the same packets (the kernel log) and the trace in one file: each
    part gives what it gives alone (a trace has no time, so its packets are not matched with
    the logged ones: they are connections of their own)."""
    logged = (TRACE / "nft-trace.dmesg").read_text()
    mixed = tmp_path / "mixed.log"
    mixed.write_text(logged + NFT.read_text())
    hops = hop_table(mixed)
    offset = len(logged.splitlines())
    alone = hop_table(NFT)
    visits = hops[hops["trace_id"].notna()]
    assert (visits["lineno"] - offset).tolist() == alone["lineno"].tolist()
    assert len(hops) - len(visits) == offset  # every LOG line a hop
    both = traced(mixed)
    assert both["packet"].nunique() == 24 + traced(TRACE / "nft-trace.dmesg")["packet"].nunique()


# --- errors ------------------------------------------------------------------------------------

BAD = [
    # a verdict nft does not print
    ("trace id 7cf5d558 inet lptrace lpsub rule tcp dport 9052 drop # handle 8 (verdict dorp)",
     Rejected("t", 1, 83, "<verdict>)", "dorp)", "")),
    # a TTL no IPv4 header holds
    ('trace id 7cf5d558 ip raw PREROUTING packet: iif "lpbr0" ip saddr 172.30.0.2 '
     "ip daddr 10.77.0.2 ip ttl 300 ip id 1 ip length 60",
     Rejected("t", 1, 103, "a TTL 0-255", "300", "")),
    # an expression of no protocol nft knows
    ('trace id 7cf5d558 ip raw PREROUTING packet: iif "lpbr0" frob 1',
     Rejected("t", 1, 57, 'iif "<interface>" or oif "<interface>" or ether saddr <MAC address> '
              "or ... or end of line", "frob", "")),
    # xtables-monitor: a rule handle not in hex
    (" TRACE: 2 65f10f24 raw:PREROUTING:rule:9:CONTINUE",
     Rejected("t", 1, 35, "rule:0x<handle>:<VERDICT> or policy:<VERDICT>", "rule:9:CONTINUE", "")),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), BAD, ids=["verdict", "ttl", "expression", "handle"])
def test_a_wrong_trace_line_is_rejected_saying_where_and_what(
    line: str, expected: Rejected
) -> None:
    parsed = parse_lines("t", [(1, line)])
    assert parsed.hops == 0
    assert parsed.rejected == [
        Rejected(expected.source, 1, expected.column, expected.expected, expected.found, line)
    ]


def test_a_verdict_line_without_its_packet_line_is_skipped_with_a_reason() -> None:
    # a capture started in the middle of a packet's traversal: its first lines are no visit
    body = numbered(NFT)[1:3]  # line 2 (a rule) and 3 (the policy) of the first visit
    parsed = parse_lines("t", body)
    assert (parsed.hops, parsed.rejected, dict(parsed.skipped)) == (0, [], {SKIP_ORPHAN: 2})


def test_every_line_is_a_hop_a_rejection_or_a_skip() -> None:
    for path in (NFT, XT):
        parsed = parse_lines(path.name, numbered(path))
        assert parsed.lines == parsed.hops + len(parsed.rejected) + sum(parsed.skipped.values())
        assert dict(parsed.skipped) == {SKIP_FOLDED: parsed.lines - parsed.hops}


def test_the_grammar_names_the_expected_token() -> None:
    with pytest.raises(pp.ParseException):
        trace.parse_line("trace id 7cf5d558 inet lptrace")


def test_the_timeline_shows_each_visits_verdict_and_rule(tmp_path: Path) -> None:
    """Each chain visit of nft monitor trace is shown with its verdict and the rule that gave
    it (`policy None` before: the legacy TRACE words)."""
    runner = CliRunner()
    store = str(tmp_path / "store")
    done = runner.invoke(app, ["ingest", str(NFT), "--store", store])
    assert done.exit_code == 0, done.output
    flows = json.loads(runner.invoke(app, ["flows", "--all", "--json", "--store", store]).output)
    (dropped, *_) = [f["id"] for f in flows if f["dropped"]]
    shown = runner.invoke(app, ["journey", dropped, "--store", store, "--packet", "1"])
    assert shown.exit_code == 0, shown.output
    timeline = shown.output.split("\nlegend\n")[0]  # the hops, not the legend's rows after them
    hops = [line.split() for line in timeline.splitlines() if line.startswith("  ")]
    assert "None" not in shown.output
    assert hops[0][-2:] == ["policy", "accept"]
    assert " ".join(hops[-2][-10:]) == "jump lpsub by handle 11: tcp dport 9052 jump lpsub"
    assert " ".join(hops[-1][-8:]) == "drop by handle 13: tcp dport 9052 drop"
