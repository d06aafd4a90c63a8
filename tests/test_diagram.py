"""The sequence diagram (logpath.render.diagram): the layout model against the journeys, then
the painted PNG/SVG."""

from __future__ import annotations

import struct
from pathlib import Path

import matplotlib.image
import pytest
from seedstore import journey_to
from typer.testing import CliRunner

from logpath.cli import app
from logpath.errors import UsageError
from logpath.journeys import Journey, build_journeys
from logpath.query import FlowQuery, load_journey, select_flows
from logpath.render.diagram import (
    ENDING_STYLE,
    MAX_PACKETS,
    Diagram,
    Ending,
    Lifeline,
    Marker,
    RoleBand,
    bridges_seen,
    bridges_shown,
    figure_size,
    fold_packets,
    layout,
    paint,
    save_diagram,
    summarise_packets,
    title_lines,
)
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
runner = CliRunner()


def ingest(path: Path, *files: Path, options: tuple[str, ...] = ()) -> Store:
    result = runner.invoke(app, ["ingest", *map(str, files), "--store", str(path), *options])
    assert result.exit_code == 0, result.output
    return Store(path)


@pytest.fixture(scope="module")
def dnat(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return ingest(tmp_path_factory.mktemp("dnat"), SAMPLES / "lab" / "dnat.log")


def unfolded(journey: Journey) -> Diagram:
    """The diagram model with every hop and packet drawn (``render --unfold``)."""
    return layout(journey, fold=False)


def arrows(journey: Journey) -> list[tuple[int, int, int, str, str, bool, tuple[int, ...]]]:
    """(row, start, end, label, kind, translated, via) of every arrow."""
    return [(a.row, a.start, a.end, a.label, a.kind, a.translated, a.via)
            for a in unfolded(journey).arrows]  # fmt: skip


def test_journey_1_stays_on_the_bridge(seed_store: Store) -> None:
    """container1 → container2: every hop on docker0 as a switch, between its two ports."""
    journey = journey_to(seed_store, "172.17.0.3")
    diagram = unfolded(journey)
    assert diagram.lifelines == (
        Lifeline("sender", "endpoint", "172.17.0.2", "02:42:ac:11:00:02"),
        Lifeline("port:pc-baim:vethd9f6465", "port", "vethd9f6465", "port of docker0"),
        Lifeline("dev:pc-baim:docker0", "bridge", "docker0", "bridge"),
        Lifeline("port:pc-baim:vethfcceafa", "port", "vethfcceafa", "port of docker0"),
        Lifeline("receiver", "endpoint", "172.17.0.3", "02:42:ac:11:00:03"),
    )
    # fmt: off
    assert arrows(journey) == [
        (1, 0, 2, "SYN  172.17.0.2:43292 → 172.17.0.3:12580", "hop", False, (1,)),
        (2, 2, 2, "SYN  172.17.0.2:43292 → 172.17.0.3:12580", "hop", False, ()),
        (3, 2, 4, "leaves by vethfcceafa  172.17.0.2:43292 → 172.17.0.3:12580", "leave", False, (3,)),
        (5, 4, 2, "SYN-ACK  172.17.0.3:12580 → 172.17.0.2:43292", "hop", False, (3,)),
        (6, 2, 2, "SYN-ACK  172.17.0.3:12580 → 172.17.0.2:43292", "hop", False, ()),
        (7, 2, 0, "leaves by vethd9f6465  172.17.0.3:12580 → 172.17.0.2:43292", "leave", False, (1,)),
    ]
    # fmt: on
    assert [a.where for a in diagram.arrows if a.kind == "hop"] == [
        "raw PREROUTING · TTL 64 · bridge",
        "filter FORWARD (FwdId0Od0) · TTL 64 · bridge",
        "raw PREROUTING · TTL 64 · bridge",
        "filter FORWARD (FwdOd0) · TTL 64 · bridge",
    ]
    assert [(p.row, p.text) for p in diagram.packets] == [
        (0, "#1 → orig  SYN  ⇒ switched"), (4, "#2 ← reply  SYN-ACK  ⇒ switched")
    ]  # fmt: skip
    assert diagram.bands == (RoleBand(1, 2, "bridge"), RoleBand(5, 6, "bridge"))
    assert diagram.switches == () and diagram.nat_marks == () and diagram.notes == ()
    assert diagram.rows == 8


def test_journey_5_masquerade(seed_store: Store) -> None:
    """container1 → LAN host: routed by the host, MASQUERADE after nat POSTROUTING logged,
    the SYN-ACK de-NATed between raw PREROUTING and FORWARD."""
    journey = journey_to(seed_store, "10.10.126.187")
    diagram = unfolded(journey)
    assert [(line.key, line.kind, line.title, line.detail) for line in diagram.lifelines] == [
        ("sender", "endpoint", "172.17.0.2", "02:42:ac:11:00:02"),
        ("port:pc-baim:vethd9f6465", "port", "vethd9f6465", "port of docker0"),
        ("dev:pc-baim:docker0", "bridge", "docker0", "bridge 02:42:f9:f8:c9:ad"),
        ("stack:pc-baim", "stack", "pc-baim", "host stack"),
        ("dev:pc-baim:eth0", "iface", "eth0", "interface"),
        ("receiver", "endpoint", "10.10.126.187", "00:19:bb:5e:0a:86"),
    ]
    # fmt: off
    assert arrows(journey) == [
        (1, 0, 3, "SYN  172.17.0.2:55148 → 10.10.126.187:12580", "hop", False, (1, 2)),
        (2, 3, 3, "SYN  172.17.0.2:55148 → 10.10.126.187:12580", "hop", False, ()),
        (3, 3, 3, "SYN  172.17.0.2:55148 → 10.10.126.187:12580", "hop", False, ()),
        # MASQUERADE acts after the nat POSTROUTING LOG: the SYN leaves with the host's address
        (5, 3, 5, "leaves by eth0  10.10.126.101:55148 → 10.10.126.187:12580", "leave", True, (4,)),
        (7, 5, 3, "SYN-ACK  10.10.126.187:12580 → 10.10.126.101:55148", "hop", False, (4,)),
        (8, 3, 3, "SYN-ACK  10.10.126.187:12580 → 172.17.0.2:55148", "hop", True, ()),
        (10, 3, 0, "leaves by docker0  10.10.126.187:12580 → 172.17.0.2:55148", "leave", True, (2,)),
        (12, 0, 3, "ACK  172.17.0.2:55148 → 10.10.126.187:12580", "hop", False, (1, 2)),
        (13, 3, 3, "ACK  172.17.0.2:55148 → 10.10.126.187:12580", "hop", False, ()),
        # only the SYN passed the nat table, but conntrack masquerades the ACK all the same
        (15, 3, 5, "leaves by eth0  10.10.126.101:55148 → 10.10.126.187:12580", "leave", True, (4,)),
    ]
    # fmt: on
    assert [a.where for a in diagram.arrows][:3] == [
        "raw PREROUTING · TTL 64 · nic",
        "filter FORWARD (FwdId0Ond0) · TTL 63 · nic",
        "nat POSTROUTING (LogNatPostRouting) · TTL 63",
    ]
    assert diagram.nat_marks == (
        Marker(4, 3, "SNAT 172.17.0.2:55148 → 10.10.126.101:55148  (applied at POSTROUTING)"),
        Marker(9, 3, "DE-SNAT 10.10.126.101:55148 → 172.17.0.2:55148"),
        Marker(14, 3, "SNAT 172.17.0.2:55148 → 10.10.126.101:55148  (applied at POSTROUTING)"),
    )
    assert diagram.bands == (RoleBand(1, 2, "nic"), RoleBand(8, 9, "nic"), RoleBand(12, 14, "nic"))
    assert diagram.switches == ()


def test_lab_dnat_published_port(dnat: Store) -> None:
    """LAN → 10.77.0.1:8080, DNAT to 172.30.0.2:80 behind the lab bridge (real kernel lines)."""
    journey = journey_to(dnat, "10.77.0.1")
    diagram = unfolded(journey)
    assert [(line.kind, line.title, line.detail) for line in diagram.lifelines] == [
        ("endpoint", "10.77.0.2", "02:00:0a:4d:00:02"),
        ("iface", "up0", "interface"),
        ("stack", "lab-host", "host stack"),
        ("bridge", "lpbr0", "bridge 02:00:ac:1e:00:01"),
        ("port", "vethc1", "port of lpbr0"),
        ("endpoint", "172.30.0.2", "02:00:ac:1e:00:02 (asked as 10.77.0.1)"),
    ]
    assert arrows(journey)[:10] == [
        (1, 0, 2, "SYN  10.77.0.2:49338 → 10.77.0.1:8080", "hop", False, (1,)),
        (2, 2, 2, "SYN  10.77.0.2:49338 → 10.77.0.1:8080", "hop", False, ()),
        (3, 2, 2, "SYN  10.77.0.2:49338 → 10.77.0.1:8080", "hop", False, ()),
        # the first hop after nat PREROUTING shows the new destination
        (4, 2, 2, "SYN  10.77.0.2:49338 → 172.30.0.2:80", "hop", True, ()),
        (6, 2, 2, "SYN  10.77.0.2:49338 → 172.30.0.2:80", "hop", True, ()),
        (7, 2, 2, "SYN  10.77.0.2:49338 → 172.30.0.2:80", "hop", True, ()),
        (8, 2, 2, "SYN  10.77.0.2:49338 → 172.30.0.2:80", "hop", True, ()),
        (9, 2, 5, "leaves by lpbr0  10.77.0.2:49338 → 172.30.0.2:80", "leave", True, (3,)),
        (11, 5, 2, "SYN-ACK  172.30.0.2:80 → 10.77.0.2:49338", "hop", False, (4, 3)),
        (12, 2, 2, "SYN-ACK  172.30.0.2:80 → 10.77.0.2:49338", "hop", False, ()),
    ]
    hops = sum(len(p.hops) for p in journey.packets)
    assert len([a for a in diagram.arrows if a.kind == "hop"]) == hops == 52
    assert [a.hook for a in diagram.arrows[:8]] == ["PREROUTING"] * 3 + ["FORWARD"] * 2 + [
        "POSTROUTING"] * 2 + [None]  # fmt: skip
    dnat_marks = [m.text for m in diagram.nat_marks if m.text.startswith("DNAT")]
    de_dnat = [m.text for m in diagram.nat_marks if m.text.startswith("DE-DNAT")]
    assert dnat_marks == ["DNAT 10.77.0.1:8080 → 172.30.0.2:80  (applied at PREROUTING)"] * 5
    assert de_dnat == ["DE-DNAT 172.30.0.2:80 → 10.77.0.1:8080"] * 5
    # the reply leaves with the published address restored (de-DNAT after POSTROUTING)
    leaving = [a.label for a in diagram.arrows if a.kind == "leave"]
    assert leaving[:2] == ["leaves by lpbr0  10.77.0.2:49338 → 172.30.0.2:80",
                           "leaves by up0  10.77.0.1:8080 → 10.77.0.2:49338"]  # fmt: skip
    assert [p.text for p in diagram.packets][:2] == [
        "#1 → orig  SYN  ⇒ forwarded", "#2 ← reply  SYN-ACK  ⇒ forwarded"
    ]  # fmt: skip


def test_big_connection_is_summarised(dnat: Store) -> None:
    """Repeat the lab connection's packets 8 times: 80 packets collapse to fewer than 30."""
    journey = journey_to(dnat, "10.77.0.1")
    many = [p for _ in range(8) for p in journey.packets]
    many = [type(p)(n, p.direction, p.summary, p.fate, p.stopped_at, p.hops)
            for n, p in enumerate(many, start=1)]  # fmt: skip
    items = summarise_packets(many)
    drawn = [item for item in items if not isinstance(item, str)]
    notes = [item for item in items if isinstance(item, str)]
    assert len(many) > MAX_PACKETS >= len(drawn)
    assert [p.n for p in drawn] == [1, 2, 3, 4, 5, 6, 8, 9]  # 7 and 10 repeat 3 and 5
    assert notes[0] == "… 1 more packet(s) like the ones above (#7–#7: orig ACK)"
    assert notes[-1].startswith("… 71 more packet(s) like the ones above (#10–#80: ")
    # the summary drops packets, never hops of a drawn packet
    assert summarise_packets(journey.packets) == list(journey.packets)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_png_and_svg_have_sane_sizes(seed_store: Store, dnat: Store, tmp_path: Path) -> None:
    small = tmp_path / "j1.png"
    save_diagram(journey_to(seed_store, "172.17.0.3"), small)
    width, height = png_size(small)
    assert 1000 <= width <= 2500 and 300 <= height <= 900
    big = tmp_path / "dnat.png"
    save_diagram(journey_to(dnat, "10.77.0.1"), big, fold=False)
    width, height = png_size(big)
    assert 1000 <= width <= 2500 and 2000 <= height <= 5000  # 52 hops, 10 packets, unfolded
    save_diagram(journey_to(dnat, "10.77.0.1"), big)
    assert png_size(big) == (width, 965)  # folded: 3 packets drawn, 7 in one row, a legend
    svg = tmp_path / "j5.svg"
    save_diagram(journey_to(seed_store, "10.10.126.187"), svg)
    text = svg.read_text()
    assert text.startswith("<?xml") and "</svg>" in text and 20_000 < len(text) < 2_000_000
    with pytest.raises(UsageError, match=r"write a \.png or a \.svg file"):
        save_diagram(journey_to(seed_store, "172.17.0.3"), tmp_path / "j1.jpg")


def test_lab_hairpin_marks_the_role_switches(tmp_path: Path) -> None:
    """c2 → 10.77.0.1:8080 DNATed back to c1 on the same bridge: routed (nic) at PREROUTING,
    then bridged (br_netfilter keeps it on lpbr0) from FORWARD on; both NATs are marked."""
    store = ingest(tmp_path, SAMPLES / "lab" / "hairpin.log")
    diagram = unfolded(journey_to(store, "10.77.0.1"))
    assert [line.title for line in diagram.lifelines] == [
        "172.30.0.3", "vethc2", "lpbr0", "lab-host", "vethc1", "172.30.0.2"
    ]  # fmt: skip
    first_packet = [m for m in (*diagram.switches, *diagram.nat_marks) if m.row < 12]
    assert sorted(first_packet, key=lambda m: m.row) == [
        Marker(5, 2, "lpbr0: nic ⇄ bridge"),
        Marker(6, 2, "DNAT 10.77.0.1:8080 → 172.30.0.2:80  (applied at PREROUTING)"),
        Marker(10, 2, "SNAT 172.30.0.3:52806 → 172.30.0.1:52806  (applied at POSTROUTING)"),
    ]
    assert diagram.bands[:2] == (RoleBand(1, 3, "nic"), RoleBand(4, 10, "bridge"))
    assert diagram.arrows[3].start == 3 and diagram.arrows[3].end == 2  # stack → bridge


def to_port(store: Store, dport: int) -> Journey:
    """The journey of a capture's one connection to port ``dport``."""
    _, flows = select_flows(store, FlowQuery())
    (flow,) = [f for f in flows if f.orig.dport == dport]
    return load_journey(store, flow.id)


@pytest.fixture(scope="module")
def isolation(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Docker's isolation between two bridges: a real capture, with its ruleset."""
    rules = SAMPLES / "rules" / "docker-bridges.iptables-save.rules"
    log = SAMPLES / "lab" / "docker-bridges" / "docker-bridges.log"
    return ingest(tmp_path_factory.mktemp("iso"), log, options=("--rules", str(rules)))


def test_dropped_packets_end_with_a_mark_naming_the_rule(isolation: Store) -> None:
    """Each SYN ends on the host stack (where filter FORWARD logged it) with the rule of
    DOCKER-ISOLATION-STAGE-2 that dropped it, on a row of its own; the legend says the mark."""
    diagram = unfolded(journey_to(isolation, "172.30.1.2"))
    assert [line.title for line in diagram.lifelines] == [
        "172.30.0.2", "vethc1", "lpbr0", "lab-host", "lpbr1", "172.30.1.2"
    ]  # fmt: skip
    assert diagram.endings == (
        Ending(3, 3, "dropped", "dropped by filter DOCKER-ISOLATION-STAGE-2 #2"),
        Ending(7, 3, "dropped", "dropped by filter DOCKER-ISOLATION-STAGE-2 #2"),
    )
    assert [a.kind for a in diagram.arrows] == ["hop"] * 4  # no arrow leaves: it died there
    assert diagram.legend == ("dropped",) and diagram.rows == 8


def test_rejected_and_unknown_and_unlogged_are_told_apart(
    seed_store: Store, dnat: Store, tmp_path: Path
) -> None:
    verdicts = ingest(tmp_path / "v", SAMPLES / "lab" / "verdicts.log",
                      options=("--rules", str(SAMPLES / "lab" / "verdicts.rules")))  # fmt: skip
    # the UDP datagram rejected; the ICMP error the host sent back leaves as any packet
    udp = unfolded(to_port(verdicts, 9042))
    assert [(e.row, e.lifeline, e.fate, e.text) for e in udp.endings] == [
        (6, 3, "rejected", "rejected by filter FORWARD #6")
    ]
    assert [a.kind for a in udp.arrows][-1] == "leave"
    two_hosts = ingest(tmp_path / "2h", *sorted((SAMPLES / "lab" / "two-hosts").glob("two-*.log")))
    diagram = unfolded(to_port(two_hosts, 8081))
    assert [(e.fate, e.text) for e in diagram.endings] == [
        ("unknown", "unknown after FWD (no verdict)")
    ]
    # seed journey 6: the SYN went on where no LOG rule matches (FORWARD's policy accepted it)
    unlogged = unfolded(journey_to(seed_store, "172.17.0.2", src="10.10.126.187"))
    assert [(e.row, e.lifeline, e.fate, e.text) for e in unlogged.endings] == [
        (2, 2, "unlogged", "goes on unlogged (filter FORWARD policy)")
    ]
    assert unlogged.legend == ("unlogged",)
    # the other seed journeys and the lab's answered ones end well: no mark, no legend
    for diagram in [unfolded(journey_to(seed_store, d)) for d in ("172.17.0.3", "10.10.126.187")]:
        assert diagram.endings == () and diagram.legend == ()
    assert unfolded(journey_to(dnat, "10.77.0.1")).endings == ()


def test_end_mark_is_painted_where_the_packet_died(isolation: Store, tmp_path: Path) -> None:
    """The painted figure has the red cross at the last hop's lifeline on each ending's row,
    its text beside it, and the legend; the PNG shows the red there."""
    journey = journey_to(isolation, "172.30.1.2")
    diagram = unfolded(journey)
    figure = paint(diagram)
    (axes,) = figure.axes
    crosses = [line for line in axes.get_lines() if line.get_marker() == "X"]
    assert len(crosses) == 3  # two endings and the legend's mark
    assert {line.get_color() for line in crosses} == {ENDING_STYLE["dropped"][1]}
    texts = [text.get_text() for text in axes.texts]
    assert texts.count("dropped by filter DOCKER-ISOLATION-STAGE-2 #2") == 2
    assert "dropped or rejected by the rule named (ruleset or trace)" in texts
    path = tmp_path / "iso.png"
    save_diagram(journey, path, dpi=100, fold=False)
    pixels = matplotlib.image.imread(path)
    width, height = figure_size(diagram)
    assert pixels.shape[:2] == (round(height * 100), round(width * 100))
    for line in crosses[:2]:
        x, y = line.get_xdata()[0], line.get_ydata()[0]
        col, row = round(x * 100), round((height - y) * 100)
        patch = pixels[row - 4 : row + 5, col - 4 : col + 5, :3]
        red = (patch[..., 0] > 0.7) & (patch[..., 1] < 0.3) & (patch[..., 2] < 0.3)
        assert red.sum() >= 20  # the cross's fill, not a stray pixel


def test_every_sample_journey_still_lays_out_and_troubled_ones_paint(
    seed_store: Store, tmp_path: Path
) -> None:
    """The seed's six journeys and every lab capture (without a ruleset, and the verdicts
    capture with one) lay out; those with end marks paint into an SVG."""
    lab = ingest(tmp_path / "lab", *sorted((SAMPLES / "lab").glob("*.log")))
    verdicts = ingest(tmp_path / "v", SAMPLES / "lab" / "verdicts.log",
                      options=("--rules", str(SAMPLES / "lab" / "verdicts.rules")))  # fmt: skip
    marked = []
    for store in (seed_store, lab, verdicts):
        for journey in build_journeys(*select_flows(store, FlowQuery())):
            diagram = layout(journey)
            hops = sum(len(p.hops) for p in fold_packets(journey.packets) if hasattr(p, "hops"))
            assert sum(a.count for a in diagram.arrows if a.kind == "hop") == hops
            if diagram.endings:
                marked.append(journey.flow.orig.dport)
                save_diagram(journey, tmp_path / f"{len(marked)}.svg")
    # seed journey 6 (unlogged); the verdicts capture's three connections, with its ruleset
    # (dropped, rejected) and without it (unknown: nothing answered them); the port
    # unreachable of the icmp-error capture (unknown: nothing shows where it went after
    # leaving for the client)
    assert sorted(marked) == [9009, 9040, 9040, 9041, 9041, 9042, 9042, 12580]
    assert len(list(tmp_path.glob("*.svg"))) == 8


def test_lost_packets_end_with_their_own_mark(isolation: Store) -> None:
    """rp_filter's victims (logged at raw PREROUTING only, the INPUT LOG rule missed): an
    orange triangle, not a cross; the legend explains it."""
    diagram = unfolded(to_port(isolation, 9052))
    assert [(e.row, e.fate, e.text) for e in diagram.endings] == [
        (2, "lost", "lost after PRE"), (5, "lost", "lost after PRE")
    ]  # fmt: skip
    assert diagram.legend == ("lost",)
    (axes,) = paint(diagram).axes
    marks = [line.get_marker() for line in axes.get_lines()]
    assert (marks.count("v"), marks.count("X")) == (3, 0)  # two endings, one legend row


def test_dnat_connection_folds_to_a_glance(dnat: Store) -> None:
    """The lab's 10-packet DNAT connection: each run of hops at one place showing the same
    addresses is one arrow that counts them, and the 7 packets that went the way of #2 or #3
    are one row; nothing is lost (every hop of a drawn packet is counted in an arrow)."""
    journey = journey_to(dnat, "10.77.0.1")
    diagram = layout(journey)
    assert [p.n for p in diagram.packets] == [1, 2, 3]
    assert [n.text for n in diagram.notes] == [
        "×7 #4–#10: orig PSH-ACK, orig ACK, orig FIN-ACK the same way as #3; "
        "reply ACK, reply PSH-ACK, reply FIN-ACK the same way as #2"
    ]
    hops = [a for a in diagram.arrows if a.kind == "hop"]
    assert [(a.count, a.hook, a.last_hook, a.where) for a in hops] == [
        (3, "PREROUTING", None, "raw, mangle, nat PREROUTING · TTL 64"),
        (4, "FORWARD", "POSTROUTING", "mangle, filter FORWARD; mangle, nat POSTROUTING · TTL 63 · nic"),
        (5, "PREROUTING", "POSTROUTING",
         "raw, mangle PREROUTING; mangle, filter FORWARD; mangle POSTROUTING · TTL 64→63 · nic"),
        (2, "PREROUTING", None, "raw, mangle PREROUTING · TTL 64"),
        (3, "FORWARD", "POSTROUTING", "mangle, filter FORWARD; mangle POSTROUTING · TTL 63 · nic"),
    ]  # fmt: skip
    assert sum(a.count for a in hops) == sum(len(journey.packets[n - 1].hops) for n in (1, 2, 3))
    # the NAT marks stay where the addresses change (DNAT) or NAT acts after the run (DE-DNAT)
    assert [m.text.split()[0] for m in diagram.nat_marks] == ["DNAT", "DE-DNAT", "DNAT"]
    assert dict(diagram.words)["×N"].startswith("N hops at one place")
    assert dict(diagram.words)["DE-DNAT"] == (
        "a reply's source given back the address the client asked for (DNAT undone)"
    )
    (axes,) = paint(diagram).axes
    texts = [text.get_text() for text in axes.texts]
    assert "legend" in texts and "×N" in texts and "DE-DNAT" in texts
    # the gutter's text wrapped to its width, with the count
    assert (
        "raw, mangle PREROUTING; mangle, filter FORWARD;\nmangle POSTROUTING · TTL 64→63 · nic  ×5"
        in texts
    )
    assert "FWD–POST" in texts  # the hooks under the folded arrow


def test_render_packets_handshake_and_unfold(dnat: Store, tmp_path: Path) -> None:
    """`render --packets` and `--handshake` draw only those packets; `--unfold` every hop."""
    journey = journey_to(dnat, "10.77.0.1")
    store, flow_id = str(dnat.path), journey.flow.id

    def render(*options: str) -> str:
        result = runner.invoke(app, ["render", flow_id, "--store", store, *options])
        assert result.exit_code == 0, result.output
        return result.stdout.strip()

    picture = tmp_path / "p.png"
    assert render("-o", str(picture), "--packets", "1-2,9") == (
        f"{picture}: 3 packet(s), 17 hop(s) in 5 arrow(s), 6 lifeline(s)"
    )  # #9 (orig FIN-ACK) passes no nat table: not the way of #1, drawn
    assert render("-o", str(picture), "--handshake") == (
        f"{picture}: 4 packet(s) (1 folded: same way as one drawn), 17 hop(s) in 5 arrow(s), "
        "6 lifeline(s)"
    )  # SYN, SYN-ACK, ACK and the first PSH-ACK
    assert png_size(picture)[1] < 1000
    assert render("-o", str(picture), "--unfold") == (
        f"{picture}: 10 packet(s), 52 hop(s) in 52 arrow(s), 6 lifeline(s)"
    )
    assert png_size(picture)[1] > 3000
    for options, message in (
        (["--packets", "3-1"], "--packets '3-1': the range 3-1 runs backwards"),
        (["--packets", "x"], "--packets 'x': write packet numbers and ranges from 1, e.g. 1-3,7"),
        (["--packets", "11"], f"flow {flow_id} has no packet 11 (it has 10: #1 to #10)"),
    ):
        result = runner.invoke(app, ["render", flow_id, "--store", store, "-o", str(picture),
                                     *options])  # fmt: skip
        assert result.exit_code != 0 and message in result.stderr, result.output


def test_handshake_refuses_a_connection_without_one(tmp_path: Path) -> None:
    store = ingest(tmp_path, SAMPLES / "lab" / "icmp-error.log")
    (flow,) = select_flows(store, FlowQuery(everything=True))[1]
    result = runner.invoke(app, ["render", flow.id, "--store", str(store.path), "--handshake",
                                 "-o", str(tmp_path / "x.png")])  # fmt: skip
    assert result.exit_code != 0
    assert f"--handshake: flow {flow.id} is udp, not tcp (try --packets)" in result.stderr


def test_trace_connection_folds(tmp_path: Path) -> None:
    """The TRACE capture's connection: 6 packets of 4 TRACE hops each, all the same way but
    the SYN; folded it is one packet and a row (423 px high, 1,387 unfolded)."""
    trace = SAMPLES / "lab" / "trace"
    store = ingest(tmp_path / "s", trace / "trace-legacy.dmesg",
                   options=("--rules", str(trace / "trace-legacy.rules")))  # fmt: skip
    (flow,) = select_flows(store, FlowQuery(everything=True))[1]
    journey = load_journey(store, flow.id)
    diagram = layout(journey)
    assert [a.where for a in diagram.arrows] == [
        "raw PREROUTING; filter INPUT (lptrchain) · TTL 64"
    ]
    assert [n.text for n in diagram.notes] == [
        "×5 #2–#6: orig ACK, orig PSH-ACK, orig FIN-ACK the same way as #1"
    ]
    folded, whole = tmp_path / "f.png", tmp_path / "u.png"
    save_diagram(journey, folded)
    save_diagram(journey, whole, fold=False)
    assert png_size(folded)[1] * 3 < png_size(whole)[1]


def test_hairpin_title_wraps_and_every_line_fits(tmp_path: Path) -> None:
    """The hairpin's title (two translations) is longer than the figure is wide: it wraps
    between its parts, and every painted line of it fits inside the figure."""
    store = ingest(tmp_path, SAMPLES / "lab" / "hairpin.log")
    diagram = layout(journey_to(store, "10.77.0.1"))
    width, _ = figure_size(diagram)
    lines = title_lines(diagram.title, width)
    assert len(lines) == 2 and " ".join(" ".join(lines).split()) == " ".join(diagram.title.split())
    assert lines[1] == "SNAT 172.30.0.3:52806 → 172.30.0.1:52806   closed"
    figure = paint(diagram)
    (axes,) = figure.axes
    (title,) = [t for t in axes.texts if t.get_text().startswith("flow ")]
    assert title.get_text() == "\n".join(lines)
    box = title.get_window_extent(figure.canvas.get_renderer())  # type: ignore[attr-defined]
    assert box.x0 > 0 and box.x1 < figure.bbox.width


def test_a_second_bridge_is_labelled_a_bridge(isolation: Store, tmp_path: Path) -> None:
    """Docker's two bridges: the SYN dropped on its way to lpbr1 never shows lpbr1's port,
    another connection does (it came in by vethc2): the lifeline says bridge, not interface."""
    journey = journey_to(isolation, "172.30.1.2")
    assert unfolded(journey).lifelines[4].detail == "interface"  # this journey alone
    assert bridges_seen(isolation, journey) == {("lab-host", "lpbr1")}
    assert layout(journey, bridges=bridges_seen(isolation, journey)).lifelines[4] == Lifeline(
        "dev:lab-host:lpbr1", "bridge", "lpbr1", "bridge"
    )
    journeys = build_journeys(*select_flows(isolation, FlowQuery()))
    assert ("lab-host", "lpbr1") in bridges_shown(journeys)  # what the report passes on
    picture = tmp_path / "iso.svg"
    result = runner.invoke(app, ["render", journey.flow.id, "--store", str(isolation.path),
                                 "-o", str(picture)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "interface" not in picture.read_text()
