"""The HTML report (logpath.render.report) and the `logpath report` / `logpath render` commands."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.journeys import build_journey, build_journeys
from logpath.query import FlowQuery, select_flows
from logpath.render.report import (
    SCRIPT,
    page_name,
    problems,
    problems_first,
    rank,
    summary_section,
    write_report,
)
from logpath.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SEED_LINE_1 = (SAMPLES / "seed" / "syslog").read_text().splitlines()[0]
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ingest(store: Path, *files: Path, options: tuple[str, ...] = ()) -> Store:
    code, out, err = run("ingest", *map(str, files), "--store", str(store), *options)
    assert code == 0, out + err
    return Store(store)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The seed's first line with a LOG prefix that is HTML, and a line the grammar rejects."""
    folder = tmp_path_factory.mktemp("crafted")
    script = SEED_LINE_1.replace("[TonyBai]-RawPrerouting:", "<script>alert(1)</script>")
    assert script != SEED_LINE_1
    rejected = script.replace("TTL=64", "TTL=<b>64").replace("10:08:12", "10:08:13")
    log = folder / "crafted.log"
    log.write_text(script + "\n" + rejected + "\n")
    return ingest(folder / "store", log, options=("--year", "2016"))


def pages(out_dir: Path) -> tuple[str, dict[str, str]]:
    """index.html without the report's own script (checked to be there once, as written), and
    every connection page by file name."""
    index = (out_dir / "index.html").read_text(encoding="utf-8")
    ours = f"<script>{SCRIPT}</script>"
    assert index.count(ours) == 1
    flows = {
        p.name: p.read_text(encoding="utf-8") for p in sorted((out_dir / "flows").glob("*.html"))
    }
    return index.replace(ours, ""), flows


def test_log_text_is_escaped(crafted: Store, tmp_path: Path) -> None:
    result = write_report(crafted, FlowQuery(), tmp_path, WHEN)
    index, flows = pages(tmp_path)
    assert (result.flows, result.diagrams, result.pages) == (1, 1, 1)
    for page in (index, *flows.values()):
        assert "<script" not in page.lower() and "<b>64" not in page
    (flow_id,) = re.findall(r'<a href="flows/([0-9a-f]+-[0-9]+)\.html">', index)
    (name,) = flows
    assert name == f"{flow_id}.html"
    # the accepted line's prefix, in the connection's log lines
    assert (
        "[830038.910054] &lt;script&gt;alert(1)&lt;/script&gt;IN=docker0 OUT= PHYSIN=vethd9f6465"
    ) in flows[name]
    # the rejected line, counted by reason and shown in full
    assert (
        "<tr><td>LEN=&lt;n&gt; TOS=0x&lt;hex&gt; PREC=0x&lt;hex&gt; TTL=&lt;n&gt; ID=&lt;n&gt;</td>"
        '<td class="n">1</td></tr>'
    ) in index
    assert "TTL=&lt;b&gt;64 ID=24284" in index
    assert 'nothing came back</a></td><td class="n">1</td>' in index
    assert '<td class="problem">no answer</td>' in index
    assert f'<img src="{flow_id}.svg"' in flows[name]
    svg = (tmp_path / "flows" / f"{flow_id}.svg").read_text()
    assert "<script" not in svg and ET.fromstring(svg).tag.endswith("svg")
    # the prefix is drawn as text, escaped for XML
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg or "alert(1)" not in svg


def test_problems_come_first(seed_store: Store) -> None:
    """No answer, then stopped packets, then reset, then NAT, then the rest; each in time order."""
    _, flows = select_flows(seed_store, FlowQuery())
    plain = next(
        f for f in flows if f.answered and not f.stopped and not f.nat and f.state != "reset"
    )
    made = [
        replace(plain, id="a-1", nat=next(f for f in flows if f.nat).nat),
        replace(plain, id="b-2"),
        replace(plain, id="c-3", state="reset"),
        replace(plain, id="d-4", stopped=2),
        replace(plain, id="e-5", answered=False, stopped=1, state="syn-sent"),
        replace(plain, id="f-6", answered=False, state="syn-sent"),
    ]
    assert [f.id for f in problems_first(made)] == ["e-5", "f-6", "d-4", "c-3", "a-1", "b-2"]
    assert [problems(f) for f in problems_first(made)] == [
        ["no answer", "1 stopped"], ["no answer"], ["2 stopped"], ["reset"], [], []
    ]  # fmt: skip
    summary = summary_section(made)
    for what, count in [("nothing came back", 2), ("dropped, or lost to the logs", 2),
                        ("ended by a TCP reset", 1), ("NAT: SNAT", 1), ("all connections", 6)]:  # fmt: skip
        assert re.search(f'{re.escape(what)}</a></td><td class="n">{count}</td>', summary)


@pytest.mark.parametrize(
    ("flow_id", "name"),
    [
        ("08e3ad5cfb-55148", "08e3ad5cfb-55148"),
        ("0a-1", "0a-1"),
        ("4606dd20fa", "4606dd20fa"),  # a connection without ports (ICMP, ARP): its id alone
        ("../../etc/passwd-1", "flow-"),
        ("<b>-1", "flow-"),
        ("08E3AD5CFB-55148", "flow-"),
        ("08e3ad5cfb-55148\n", "flow-"),
        ("08e3ad5cfb-55148/x", "flow-"),
        ("", "flow-"),
    ],
)
def test_page_names_are_built_from_a_safe_pattern(flow_id: str, name: str) -> None:
    made = page_name(flow_id)
    assert made.startswith(name) and re.fullmatch(r"[0-9a-z-]{1,60}", made)
    if name == "flow-":
        assert len(made) == 25 and made != page_name(flow_id + "x")


def test_empty_selection(seed_store: Store, tmp_path: Path) -> None:
    result = write_report(seed_store, FlowQuery(port=1), tmp_path / "empty", WHEN)
    page = result.page.read_text()
    assert (result.flows, result.diagrams, result.pages) == (0, 0, 0)
    assert "<p><code>--port 1</code>: 0 connection(s).</p>" in page
    assert "<p>No connection matches the filter.</p>" in page
    assert "<p>No translation in the selected connections.</p>" in page
    assert "<p>No hop.</p>" in page and "<p>No line rejected.</p>" in page
    assert '<table id="flows">' not in page
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["index.html"]


def test_seed_report(seed_store: Store, tmp_path: Path) -> None:
    result = write_report(seed_store, FlowQuery(), tmp_path, WHEN, diagram_limit=4)
    index, flows = pages(tmp_path)
    assert (result.flows, result.diagrams, result.pages) == (6, 4, 6)
    assert "Generated 2026-11-25T12:00:00+00:00" in index
    assert "Diagrams are drawn for the first 4 of 6 connections, problems first" in index
    assert "Pages are written for" not in index
    # the table: one row per connection, problems first, each linking to its page
    rows = re.findall(r'<tr><td><a href="flows/([^"]+)\.html">([^<]+)</a></td>'
                      r'<td class="problem">([^<]*)</td>', index)  # fmt: skip
    assert [f"{name}.html" for name, _, _ in rows] == list(
        sorted(flows, key=[f"{n}.html" for n, _, _ in rows].index)
    )
    assert sorted(f"{name}.html" for name, _, _ in rows) == sorted(flows)
    assert all(name == flow_id for name, flow_id, _ in rows)
    ranks = [rank(flow) for flow in problems_first(select_flows(seed_store, FlowQuery())[1])]
    assert ranks == sorted(ranks)
    problems_column = [problem for _, _, problem in rows]
    assert problems_column == [
        ", ".join(problems(flow))
        for flow in problems_first(select_flows(seed_store, FlowQuery())[1])
    ]
    # the summary: counts, each linking to the table filtered on it
    assert re.search(r'<tr><td><a href="#filter=no%20answer">nothing came back</a></td>'
                     r'<td class="n">\d+</td></tr>', index)  # fmt: skip
    assert '<tr><td><a href="#filter=snat">NAT: SNAT</a></td><td class="n">1</td></tr>' in index
    assert '<tr><td><a href="#">all connections</a></td><td class="n">6</td></tr>' in index
    # the NAT table: the article's MASQUERADE
    assert re.search(
        r"<td>SNAT</td><td>172\.17\.0\.2:55148</td><td>10\.10\.126\.101:55148</td>"
        r"<td>POSTROUTING</td><td>pc-baim</td>", index
    )  # fmt: skip
    # hop counts per hook, in the kernel's order: 27 hops in all
    hooks = re.findall(r"<tr><td>([A-Z]+)</td><td>(\w+)</td><td class=\"n\">(\d+)</td></tr>", index)
    assert [h[:2] for h in hooks] == [("PREROUTING", "raw"), ("INPUT", "filter"),
        ("FORWARD", "filter"), ("OUTPUT", "filter"), ("POSTROUTING", "nat")]  # fmt: skip
    assert sum(int(h[2]) for h in hooks) == 27
    assert "<tr><td>eth0</td>" in index and "<tr><td>vethd9f6465</td>" in index
    # the pages: a timeline each (the masqueraded connection's summary), 27 log lines in all
    assert sum("172.17.0.2:55148→10.10.126.187:12580" in page for page in flows.values()) == 1
    logged = [re.search(r"<h2>Log lines \((\d+)\)</h2>", page) for page in flows.values()]
    assert sum(int(m.group(1)) for m in logged if m) == 27
    assert all('<a href="../index.html">' in page for page in flows.values())
    # diagrams for the first four in the table's order, the command for the other two
    drawn = [name for name, _, _ in rows[:4]]
    assert sorted(p.stem for p in (tmp_path / "flows").glob("*.svg")) == sorted(drawn)
    for name, flow_id, _ in rows[4:]:
        assert (
            f"<pre>logpath render {flow_id} -o {flow_id}.png --store {seed_store.path}</pre>"
            in (flows[f"{name}.html"])
        )
    assert all(5_000 < svg.stat().st_size < 1_000_000 for svg in tmp_path.glob("flows/*.svg"))
    assert index.count("<tr>") < 40  # small: no timeline, no log line in the index
    assert "<pre" not in index.replace("<pre>logpath", "")


def test_pages_beyond_the_page_limit(seed_store: Store, tmp_path: Path) -> None:
    """Past the page limit the table still lists every connection, with the command."""
    result = write_report(seed_store, FlowQuery(), tmp_path, WHEN, diagram_limit=1, page_limit=2)
    index, flows = pages(tmp_path)
    assert (result.flows, result.diagrams, result.pages) == (6, 1, 2)
    assert len(flows) == 2 and len(list(tmp_path.glob("flows/*.svg"))) == 1
    assert "Pages are written for the first 2 of 6 connections, problems first" in index
    listed = re.findall(
        r"<tr><td>([0-9a-f]+-[0-9]+) <code>logpath journey \1 --store ([^<]+)</code></td>", index
    )
    assert len(listed) == 4 and {store for _, store in listed} == {str(seed_store.path)}
    linked = re.findall(r'<tr><td><a href="flows/([^"]+)\.html">', index)
    assert sorted(f"{name}.html" for name in linked) == sorted(flows)
    assert index.rindex('<tr><td><a href="flows/') < index.index("<tr><td>" + listed[0][0])


def test_report_and_render_commands(seed_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, stdout, err = run(
        "report", "--store", str(seed_store.path), "--nat", "snat", "-o", str(out)
    )
    assert code == 0, err
    assert stdout == f"{out / 'index.html'}: 1 connection(s), 1 diagram(s)\n"
    (flow_id,) = re.findall(r'<a href="flows/([^"]+)\.html">', (out / "index.html").read_text())
    assert (out / "flows" / f"{flow_id}.svg").exists()
    picture = tmp_path / "j5.svg"
    code, stdout, err = run("render", flow_id, "--store", str(seed_store.path), "-o", str(picture))
    assert code == 0, err
    assert stdout == f"{picture}: 3 packet(s), 7 hop(s) in 5 arrow(s), 6 lifeline(s)\n"
    assert picture.read_text().rstrip().endswith("</svg>")
    code, _, err = run("render", flow_id, "--store", str(seed_store.path), "-o", "x.gif")
    assert (code, err) == (
        2,
        "logpath: x.gif: write a .png or a .svg file (the name ends in '.gif')\n",
    )
    code, _, err = run("render", "nope", "--store", str(seed_store.path), "-o", str(picture))
    assert (code, err) == (3, "logpath: no flow 'nope' in the store (see `logpath flows`)\n")


def test_batch_journeys_equal_build_journey(seed_store: Store, tmp_path: Path) -> None:
    """The report builds every journey in one pass; each equals build_journey's, field by field."""
    hairpin = ingest(tmp_path / "hairpin", SAMPLES / "lab" / "hairpin.log")
    for store in (seed_store, hairpin):
        traced, flows = select_flows(store, FlowQuery())
        batch = build_journeys(traced, flows)
        one_by_one = [build_journey(traced, flow.id) for flow in flows]
        assert batch == one_by_one
        assert [h.fields for j in batch for p in j.packets for h in p.hops] == [
            h.fields for j in one_by_one for p in j.packets for h in p.hops
        ]
        marks = [m for j in batch for p in j.packets for h in p.hops for m in h.nat]
        assert marks.count("snat") >= 1  # the MASQUERADE (seed) and the hairpin SNAT are marked


def test_verdicts_are_listed_and_escaped(tmp_path: Path) -> None:
    """The lab's LOG-then-DROP capture under its ruleset, the DROP rule given a comment that is
    HTML: the table counts each connection's dropped and lost packets, and its page lists the
    packets' verdicts with the rule as written, escaped (ruleset text is data)."""
    rules = (SAMPLES / "lab" / "verdicts.rules").read_text()
    drop = "-A FORWARD -p tcp -m tcp --dport 9040 -j DROP"
    assert drop in rules
    crafted = tmp_path / "crafted.rules"
    crafted.write_text(rules.replace(drop, drop.replace(
        "-j DROP", '-m comment --comment "<img src=x onerror=alert(1)>" -j DROP')))  # fmt: skip
    store = ingest(tmp_path / "store", SAMPLES / "lab" / "verdicts.log",
                   options=("--rules", str(crafted)))  # fmt: skip
    write_report(store, FlowQuery(), tmp_path / "out", WHEN)
    index, flows = pages(tmp_path / "out")
    assert all("<img src=x" not in page for page in (index, *flows.values()))
    svgs = [p.read_text() for p in (tmp_path / "out" / "flows").glob("*.svg")]
    assert len(svgs) == 3 and all("<img" not in svg for svg in svgs)
    assert sum("onerror=alert(1)&gt;" in svg for svg in svgs) == 1  # the header, as text
    counts = re.findall(r'<td class="n">(\d+)</td><td class="n">(\d+)</td><td class="n">(\d+)'
                        r'</td><td class="n">(\d+)</td><td>[^<]*</td><td>([a-z-]+)</td>', index)  # fmt: skip
    # packets, hops, dropped, lost, state: the UDP datagram's ICMP error is its 2nd packet
    assert sorted(counts) == [("1", "5", "1", "0", "syn-sent"), ("2", "10", "2", "0", "syn-sent"),
                              ("2", "9", "1", "0", "unreplied")]  # fmt: skip
    (page,) = [p for p in flows.values() if "10.77.0.2:9040" in p]
    assert (
        "<tr><td>#1</td><td>orig</td><td>SYN</td><td>dropped</td><td>filter FORWARD #4</td>"
        "<td>-p tcp -m tcp --dport 9040 -m comment --comment &quot;&lt;img src=x "
        "onerror=alert(1)&gt;&quot; -j DROP</td><td>ruleset</td><td></td></tr>"
    ) in page
    assert "<tr><th>dropped</th><td>2 (dropped or rejected by a rule)</td></tr>" in page
    assert (
        '<h2>What went wrong</h2>\n<ul class="problem"><li>2 of 2 packets (#1 SYN, #2 SYN) '
        "were dropped by filter FORWARD #4 (ruleset) at lpbr0[vethc1] → up0.</li>"
        "<li>No answer was logged.</li></ul>"
    ) in page
    # the timeline says it too, escaped by rich's export
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.split("<h2>Timeline</h2>")[1]


def test_isolation_page_gives_dockers_hint(tmp_path: Path) -> None:
    store = ingest(tmp_path / "store", SAMPLES / "lab" / "docker-bridges" / "docker-bridges.log",
                   options=("--rules", str(SAMPLES / "rules" / "docker-bridges.iptables-save.rules")))  # fmt: skip
    write_report(store, FlowQuery(), tmp_path / "out", WHEN)
    _, flows = pages(tmp_path / "out")
    (isolated,) = [p for p in flows.values() if "172.30.1.2:9050" in p]
    assert (
        "<h3>Hints</h3>\n<ul><li><b>filter DOCKER-ISOLATION-STAGE-2</b> (packets #1, #2): "
        "Docker&#x27;s network isolation: Docker drops traffic between two of its bridge networks"
    ) in isolated
    assert (
        "<td>dropped</td><td>filter DOCKER-ISOLATION-STAGE-2 #2 in FORWARD</td>"
        "<td>-o lpbr1 -j DROP</td><td>ruleset</td>"
    ) in isolated
    (refused,) = [p for p in flows.values() if "172.30.0.2:9051" in p]
    assert "<li><b>filter DOCKER-USER</b> (packets #1): DOCKER-USER is the chain" in refused
    # rp_filter's victims: counted lost, in the table and on their page
    index, _ = pages(tmp_path / "out")
    assert re.search(r'<td class="n">2</td><td class="n">2</td><td class="n">0</td>'
                     r'<td class="n">2</td><td>[^<]+</td><td>syn-sent</td>', index)  # fmt: skip
    (lost,) = [p for p in flows.values() if "172.30.0.1:9052" in p]
    assert "<tr><th>lost</th><td>2 (a later LOG rule matches, no line shows them)</td></tr>" in lost
    assert (
        "<tr><td>#1</td><td>orig</td><td>SYN</td><td>lost</td><td>filter INPUT policy</td>"
        "<td>policy ACCEPT</td><td>ruleset</td><td>filter INPUT #1 (prefix &#x27;lp:filter:in:lab"
        "&#x27;) matches it at INPUT and no line shows it there</td></tr>"
    ) in lost


def test_seed_pages_say_nothing_went_wrong(seed_store: Store, tmp_path: Path) -> None:
    write_report(seed_store, FlowQuery(), tmp_path, WHEN, diagram_limit=0)
    _, flows = pages(tmp_path)
    nothing = (
        "<h2>What went wrong</h2>\n<p>Nothing: no packet was dropped, lost or stopped, and an "
        "answer came back.</p>"
    )
    assert [nothing in page for page in flows.values()] == [True] * 6
    # the seed's ruleset judged the packets: each page lists the verdicts
    assert all("<h2>Verdicts</h2>\n<table>" in page for page in flows.values())
    assert sum("<td>unlogged</td><td>filter FORWARD policy</td>" in p for p in flows.values()) == 1


def test_each_page_has_one_legend_of_its_words(seed_store: Store, tmp_path: Path) -> None:
    """Every connection's page explains the words its timeline uses, once; the MASQUERADE
    page's explains SNAT, DE-SNAT and 'after' (the seed's nat POSTROUTING hop logs before)."""
    write_report(seed_store, FlowQuery(), tmp_path, WHEN, diagram_limit=0)
    _, flows = pages(tmp_path)
    assert [page.count(">legend<") for page in flows.values()] == [1] * 6
    (masquerade,) = [p for p in flows.values() if "10.10.126.187:12580" in p]
    text = html.unescape(re.sub(r"<[^>]+>", "", masquerade))
    for line in (
        "SNAT        source changed by SNAT or MASQUERADE",
        "DE-SNAT     a reply's destination given back its original address (SNAT undone)",
        "after       that NAT acts after this hop: its line still shows the addresses NAT replaces",
    ):
        assert line in text
    assert text.index("legend") > text.index("#3 → orig ACK")  # after the packets


def test_report_diagrams_name_every_bridge(tmp_path: Path) -> None:
    """Docker's two bridges: the dropped SYN's diagram labels lpbr1 a bridge because another
    connection of the report entered it by a port (the SVG keeps its text as text)."""
    store = ingest(tmp_path / "store", SAMPLES / "lab" / "docker-bridges" / "docker-bridges.log")
    write_report(store, FlowQuery(), tmp_path / "out", WHEN)
    svgs = {p.name: p.read_text() for p in (tmp_path / "out" / "flows").glob("*.svg")}
    (dropped,) = [svg for svg in svgs.values() if "172.30.1.2:9050" in svg]
    assert "lpbr1" in dropped and ">interface<" not in dropped and "interface" not in dropped
