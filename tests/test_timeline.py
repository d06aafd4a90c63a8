"""The terminal timeline (logpath.render.timeline) on the seed article's MASQUERADE journey."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from seedstore import journey_to
from typer.testing import CliRunner

from logpath.cli import app
from logpath.journeys import Journey
from logpath.query import FlowQuery, load_journey, select_flows
from logpath.render.timeline import print_timeline
from logpath.store import Store

SEED = Path(__file__).resolve().parent.parent / "samples" / "seed"


def render(journey: Journey, width: int, **options: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, force_terminal=False, **options)
    print_timeline(console, [journey])
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


MASQUERADE_120 = """\
flow {id} tcp  orig 172.17.0.2:55148→10.10.126.187:12580  reply 10.10.126.187:12580→10.10.126.101:55148
SNAT 172.17.0.2:55148→10.10.126.101:55148 @POSTROUTING  state established

#1 → orig SYN  len 60 id 34160  ⇒ forwarded
  raw PREROUTING                      docker0[vethd9f6465] → ·    172.17.0.2:55148 → 10.10.126.187:12580 TTL 64 nic
  filter FORWARD (FwdId0Ond0)         docker0[vethd9f6465] → eth0 172.17.0.2:55148 → 10.10.126.187:12580 TTL 63 nic
  nat POSTROUTING (LogNatPostRouting) [vethd9f6465] → eth0        172.17.0.2:55148 → 10.10.126.187:12580 TTL 63 SNAT
                                                                                                                after

#2 ← reply SYN-ACK  len 60 id 0  ⇒ forwarded
  raw PREROUTING          eth0 → ·       10.10.126.187:12580 → 10.10.126.101:55148 TTL 64
  filter FORWARD (FwdOd0) eth0 → docker0 10.10.126.187:12580 → 172.17.0.2:55148    TTL 63 nic DE-SNAT translated

#3 → orig ACK  len 52 id 34161  ⇒ forwarded
  raw PREROUTING              docker0[vethd9f6465] → ·    172.17.0.2:55148 → 10.10.126.187:12580 TTL 64 nic
  filter FORWARD (FwdId0Ond0) docker0[vethd9f6465] → eth0 172.17.0.2:55148 → 10.10.126.187:12580 TTL 63 nic SNAT after

legend
  nic         the bridge acts as the host's network card: the packet goes up to the host's IP stack (routed, L3)
  ·           no interface on that side (IN= or OUT= empty)
  SNAT        source changed by SNAT or MASQUERADE
  DE-SNAT     a reply's destination given back its original address (SNAT undone)
  after       that NAT acts after this hop: its line still shows the addresses NAT replaces
  translated  the addresses shown are NAT's, not the connection's own for this direction"""

MASQUERADE_80 = """\
flow {id} tcp  orig 172.17.0.2:55148→10.10.126.187:12580  reply
10.10.126.187:12580→10.10.126.101:55148  SNAT
172.17.0.2:55148→10.10.126.101:55148 @POSTROUTING  state established

#1 → orig SYN  len 60 id 34160  ⇒ forwarded
  raw PREROUTING      172.17.0.2:55148 → 10.10.126.187:12580 TTL 64
                      docker0[vethd9f6465] → ·  nic
  filter FORWARD      172.17.0.2:55148 → 10.10.126.187:12580 TTL 63
    FwdId0Ond0        docker0[vethd9f6465] → eth0  nic
  nat POSTROUTING     172.17.0.2:55148 → 10.10.126.187:12580 TTL 63
    LogNatPostRouting [vethd9f6465] → eth0  SNAT after

#2 ← reply SYN-ACK  len 60 id 0  ⇒ forwarded
  raw PREROUTING 10.10.126.187:12580 → 10.10.126.101:55148 TTL 64
                 eth0 → ·
  filter FORWARD 10.10.126.187:12580 → 172.17.0.2:55148    TTL 63
    FwdOd0       eth0 → docker0  nic DE-SNAT translated

#3 → orig ACK  len 52 id 34161  ⇒ forwarded
  raw PREROUTING 172.17.0.2:55148 → 10.10.126.187:12580      TTL 64
                 docker0[vethd9f6465] → ·  nic
  filter FORWARD 172.17.0.2:55148 → 10.10.126.187:12580      TTL 63
    FwdId0Ond0   docker0[vethd9f6465] → eth0  nic SNAT after

legend
  nic         the bridge acts as the host's network card: the packet goes up to
              the host's IP stack (routed, L3)
  ·           no interface on that side (IN= or OUT= empty)
  SNAT        source changed by SNAT or MASQUERADE
  DE-SNAT     a reply's destination given back its original address (SNAT
              undone)
  after       that NAT acts after this hop: its line still shows the addresses
              NAT replaces
  translated  the addresses shown are NAT's, not the connection's own for this
              direction"""


def test_masquerade_timeline_wide(seed_store: Store) -> None:
    journey = journey_to(seed_store, "10.10.126.187")  # its id hashes the source path
    assert len(journey.flow.id) == 16  # the header wraps where the expected text says
    assert render(journey, 120) == MASQUERADE_120.format(id=journey.flow.id)


def test_masquerade_timeline_narrow(seed_store: Store) -> None:
    journey = journey_to(seed_store, "10.10.126.187")
    assert render(journey, 80) == MASQUERADE_80.format(id=journey.flow.id)


def test_switched_journey_shows_bridge_role_and_both_ports(seed_store: Store) -> None:
    text = render(journey_to(seed_store, "172.17.0.3"), 140)
    lines = text.splitlines()
    assert lines[2] == "#1 → orig SYN  len 60 id 24284  ⇒ switched"
    assert lines[4] == (
        "  filter FORWARD (FwdId0Od0) docker0[vethd9f6465] → docker0[vethfcceafa] "
        "172.17.0.2:43292 → 172.17.0.3:12580 TTL 64 bridge"
    )


def test_colour_only_when_the_console_has_it(seed_store: Store) -> None:
    journey = journey_to(seed_store, "10.10.126.187")
    out = io.StringIO()
    print_timeline(Console(file=out, width=120, force_terminal=True, color_system="standard"),
                   [journey])  # fmt: skip
    assert "\x1b[" in out.getvalue()  # the NAT mark and roles are coloured
    assert "\x1b[" not in render(journey, 120)


def test_journey_command_prints_the_timeline(seed_store: Store) -> None:
    """`logpath journey` (piped: no colour, one line per hop) for journey 2 (RST from the host)."""
    journey = journey_to(seed_store, "172.17.0.1")
    result = CliRunner().invoke(app, ["journey", journey.flow.id, "--store", str(seed_store.path)])
    assert result.exit_code == 0, result.output
    assert [line.rstrip() for line in result.stdout.splitlines()] == [
        f"flow {journey.flow.id} tcp  orig 172.17.0.2:41362→172.17.0.1:12580  "
        "reply 172.17.0.1:12580→172.17.0.2:41362  state reset",
        "",
        "#1 → orig SYN  len 60 id 29166  ⇒ delivered",
        "  raw PREROUTING docker0[vethd9f6465] → · 172.17.0.2:41362 → 172.17.0.1:12580 TTL 64 nic",
        "  filter INPUT   docker0[vethd9f6465] → · 172.17.0.2:41362 → 172.17.0.1:12580 TTL 64 nic",
        "",
        "#2 ← reply RST-ACK  len 40 id 781  ⇒ sent",
        "  filter OUTPUT · → docker0 172.17.0.1:12580 → 172.17.0.2:41362 TTL 64 nic",
        "",
        "legend",
        "  nic  the bridge acts as the host's network card: the packet goes up to the host's IP "
        "stack (routed, L3)",
        "  ·    no interface on that side (IN= or OUT= empty)",
    ]


def test_syn_answered_later_went_on_unlogged(seed_store: Store) -> None:
    """Journey 6: the SYN is logged at raw PREROUTING only, yet the SYN-ACK came back; the
    ruleset says why: FORWARD's policy accepted it and no LOG rule matches it on its way."""
    journey = journey_to(seed_store, "172.17.0.2", src="10.10.126.187")
    lines = render(journey, 160).splitlines()
    assert lines[0].endswith("state established")
    assert lines[2:4] == [
        "#1 → orig SYN  len 60 id 48735  ⇒ unlogged: accepted by filter FORWARD policy, "
        "no LOG rule on its way (ruleset)",
        "  raw PREROUTING eth0 → · 10.10.126.187:53225 → 172.17.0.2:12580 TTL 64",
    ]
    assert journey.packets[0].fate == "unlogged"
    assert (journey.packets[0].answered_by, journey.packets[0].sent_again_as) == (2, None)
    assert journey.packets[1].summary == "SYN-ACK"


@pytest.mark.parametrize("width", [40, 60, 80, 109, 110, 160])
def test_no_line_is_wider_than_the_console(seed_store: Store, width: int) -> None:
    # hop rows are lined up directly when they fit, else laid out by rich's Table
    for destination in ("10.10.126.187", "172.17.0.3", "172.17.0.1"):
        lines = render(journey_to(seed_store, destination), width).splitlines()
        assert max(len(line) for line in lines) <= width
        assert any(line.startswith("  raw P") for line in lines)  # narrower: cut with …


def test_journey_ends_with_the_analysis_and_the_chains_hint(tmp_path: Path) -> None:
    """Docker's isolation between two lab bridges (a real capture and the ruleset it was
    written under): the verdicts, then what went wrong and the hint for Docker's chain."""
    lab = SEED.parent / "lab" / "docker-bridges" / "docker-bridges.log"
    rules = SEED.parent / "rules" / "docker-bridges.iptables-save.rules"
    store = Store(tmp_path)
    ingest = ["ingest", str(lab), "--store", str(tmp_path), "--rules", str(rules)]
    assert CliRunner().invoke(app, ingest).exit_code == 0
    journey = journey_to(store, "172.30.1.2")
    result = CliRunner().invoke(app, ["journey", journey.flow.id, "--store", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[2] == (
        "#1 → orig SYN  len 60 id 44848  ⇒ dropped by filter DOCKER-ISOLATION-STAGE-2 #2: "
        "-o lpbr1 -j DROP (ruleset)"
    )
    legend = lines.index("legend")  # after the analysis, the words the timeline used
    assert [line.split()[0] for line in lines[legend + 1 :]] == ["nic", "·", "(ruleset)"]
    assert lines[legend - 4 : legend - 1] == [
        "",
        "analysis: 2 of 2 packets (#1 SYN, #2 SYN) were dropped by filter "
        "DOCKER-ISOLATION-STAGE-2 #2 in FORWARD (ruleset) at lpbr0[vethc1] → lpbr1. "
        "No answer was logged.",
        "hint (filter DOCKER-ISOLATION-STAGE-2): Docker's network isolation: Docker drops "
        "traffic between two of its bridge networks (stage 1 picks the packets leaving one "
        "Docker bridge for another, stage 2 drops them). Containers that must talk should share "
        "a network (`docker network connect NETWORK CONTAINER`); Docker rewrites these chains, "
        "so a rule added to them does not last: put an exception in DOCKER-USER.",
    ]


def test_analysis_wraps_to_the_console(tmp_path: Path) -> None:
    """On a narrow console the analysis wraps like any text; nothing is cut."""
    lab = SEED.parent / "lab" / "verdicts.log"
    store = Store(tmp_path)
    ingest = [
        "ingest",
        str(lab),
        "--store",
        str(tmp_path),
        "--rules",
        str(lab.with_suffix(".rules")),
    ]
    assert CliRunner().invoke(app, ingest).exit_code == 0
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.dport == 9041]
    text = render(load_journey(store, flow.id), 60)
    tail = text[text.index("analysis:") : text.index("\nlegend")]
    assert max(len(line) for line in tail.splitlines()) <= 60
    assert " ".join(tail.split()) == (
        "analysis: #1 SYN was rejected by filter FORWARD #5 (ruleset) at lpbr0[vethc1] → up0. "
        "No answer was logged."
    )


def _lab_journey(tmp_path: Path, name: str, rules: str | None = None) -> Journey:
    """The one connection of a lab capture (samples/lab/NAME, or a path), read back from a
    store."""
    ingest = ["ingest", str(SEED.parent / "lab" / name), "--store", str(tmp_path)]
    if rules:
        ingest += ["--rules", str(SEED.parent / "lab" / rules)]
    assert CliRunner().invoke(app, ingest).exit_code == 0
    store = Store(tmp_path)
    _, flows = select_flows(store, FlowQuery(everything=True))
    (flow,) = flows
    return load_journey(store, flow.id)


def test_icmp_error_by_name_with_the_packet_it_quotes(tmp_path: Path) -> None:
    """icmp-error: the port unreachable quotes the UDP packet as SNAT made it until the host
    gives the error (and its quote) back the container's address."""
    journey = _lab_journey(tmp_path, "icmp-error.log")
    lines = render(journey, 170).splitlines()
    # nothing (no ruleset, no later line) shows where the error went after it left the host
    error = lines.index("#2 ← reply icmp error: port unreachable  len 60 id 26282  ⇒ unknown")
    assert lines[error + 1].endswith("TTL 64 quotes udp 10.77.0.1:34834 → 10.77.0.2:9009 (SNAT)")
    assert lines[error + 2].endswith("TTL 64")  # the same quote is not repeated
    assert lines[error + 3].endswith(
        "nic DE-SNAT translated quotes udp 172.30.0.2:34834 → 10.77.0.2:9009"
    )
    assert "  quotes      the packet an ICMP error is about, as the error carries it" in lines
    hops = journey.to_json()["packets"][1]["hops"]
    assert {hop["icmp"] for hop in hops} == {"port unreachable"}
    assert [(hop["quote"]["src"], hop["quote"]["nat"]) for hop in hops] == [
        ("10.77.0.1", ["snat"]),
        ("10.77.0.1", ["snat"]),
        *[("172.30.0.2", [])] * 3,
    ]


def test_de_dnat_is_marked_as_applied_after_the_hop(tmp_path: Path) -> None:
    """dnat: a reply's last logged hop (mangle POSTROUTING) still shows the container's
    address; de-DNAT acts after it, and the timeline says so rather than marking it done."""
    journey = _lab_journey(tmp_path, "dnat.log")
    syn_ack = journey.packets[1]
    last = syn_ack.hops[-1]
    assert (last.hook, last.src, last.nat, last.nat_after) == (
        "POSTROUTING",
        "172.30.0.2",
        ("de-dnat",),
        True,
    )
    forward = next(hop for hop in journey.packets[0].hops if hop.nat)  # DNAT shown done
    assert (forward.hook, forward.dst, forward.nat, forward.nat_after) == (
        "FORWARD",
        "172.30.0.2",
        ("dnat",),
        False,
    )
    lines = render(journey, 170).splitlines()
    assert sum(line.endswith("nic DE-DNAT after") for line in lines) == 5  # the five replies
    assert not any("FORWARD" in line and "DE-DNAT" in line for line in lines)


def test_trace_rules_by_number_and_text(tmp_path: Path) -> None:
    """A TRACE capture with its ruleset: every hop names its rule's number and text."""
    journey = _lab_journey(tmp_path, "trace/trace-legacy.dmesg", "trace/trace-legacy.rules")
    lines = render(journey, 180).splitlines()
    assert lines[3:7] == [
        "  raw PREROUTING           lptrb0 → · 10.99.0.1:39842 → 10.99.0.2:7300 TTL 64 policy ACCEPT",
        "  filter INPUT             lptrb0 → · 10.99.0.1:39842 → 10.99.0.2:7300 TTL 64 "
        "rule #2: -p tcp -j lptrchain",
        "  filter INPUT (lptrchain) lptrb0 → · 10.99.0.1:39842 → 10.99.0.2:7300 TTL 64 "
        "return #2: return (end of the user chain)",
        "  filter INPUT             lptrb0 → · 10.99.0.1:39842 → 10.99.0.2:7300 TTL 64 "
        "rule #3: -p tcp -m tcp --dport 7300 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT",
    ]
    assert "  rule #N  TRACE: the rule's number in its chain (iptables -L --line-numbers)" in lines


def test_de_dnat_on_a_forward_hop_says_it_acts_after(tmp_path: Path) -> None:
    """The issue's case: LOG rules at raw PREROUTING and filter FORWARD only (the dnat
    capture's own lines for those two, as `instrument` would log them). The reply's FORWARD hop
    still shows the container's address; de-DNAT happens after it, at POSTROUTING."""
    lines = (SEED.parent / "lab" / "dnat.log").read_text().splitlines(keepends=True)
    kept = tmp_path / "pre-and-forward.log"
    kept.write_text("".join(line for line in lines if re.search(r"lp:(raw:pre|filter:fwd):", line)))
    journey = _lab_journey(tmp_path / "s", str(kept))
    replies = [p for p in journey.packets if p.direction == "reply"]
    assert [(h.hook, h.src, h.nat, h.nat_after) for p in replies for h in p.hops[-1:]] == [
        ("FORWARD", "172.30.0.2", ("de-dnat",), True)
    ] * len(replies) and len(replies) == 5
    text = render(journey, 150)
    forward = [line for line in text.splitlines() if "filter FORWARD lpbr0[vethc1] → up0" in line]
    assert len(forward) == 5 and all(line.endswith(" nic DE-DNAT after") for line in forward)


FORMATS = sorted((SEED.parent / "formats").iterdir())


@pytest.mark.parametrize("sample", FORMATS, ids=lambda path: path.name)
def test_no_journey_of_a_sample_says_none(tmp_path: Path, sample: Path) -> None:
    """Every connection of every format sample (ARP with no IP header, an ICMP header cut
    before its type, an IPv6 packet whose protocol LOG did not print, nft traces without rule
    handles or rule texts): the timeline says what is missing, never Python's None."""
    done = CliRunner().invoke(
        app, ["ingest", str(sample), "--store", str(tmp_path), "--year", "2026"]
    )
    if done.exit_code == 5:  # not LOG lines (nflog's tcpdump text)
        return
    assert done.exit_code == 0, done.output
    store = Store(tmp_path)
    _, flows = select_flows(store, FlowQuery(everything=True))
    assert flows
    for flow in flows:
        text = render(load_journey(store, flow.id), 200)
        assert not re.search(r"\bNone\b", text), (flow.id, text)
