"""The HTML report (logpath.render.report) and the `logpath report` / `logpath render` commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.journeys import FlowQuery, build_journey, build_journeys, select_flows
from logpath.render.report import write_report
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


def test_log_text_is_escaped(crafted: Store, tmp_path: Path) -> None:
    result = write_report(crafted, FlowQuery(), tmp_path, WHEN)
    page = result.page.read_text()
    assert result.flows == 1 and result.diagrams == 1
    assert "<script" not in page.lower() and "<b>64" not in page
    # the accepted line's prefix, in the connection's log lines
    assert (
        "[830038.910054] &lt;script&gt;alert(1)&lt;/script&gt;IN=docker0 OUT= PHYSIN=vethd9f6465"
    ) in page
    # the rejected line, counted by reason and shown in full
    assert (
        "<tr><td>LEN=&lt;n&gt; TOS=0x&lt;hex&gt; PREC=0x&lt;hex&gt; TTL=&lt;n&gt; ID=&lt;n&gt;</td>"
        '<td class="n">1</td></tr>'
    ) in page
    assert "TTL=&lt;b&gt;64 ID=24284" in page
    assert (tmp_path / f"{re.sub(r'[^A-Za-z0-9._-]', '_', _only_flow(page))}.png").exists()


def _only_flow(page: str) -> str:
    (flow_id,) = re.findall(r'<section class="flow" id="flow-([^"]+)">', page)
    return flow_id


def test_empty_selection(seed_store: Store, tmp_path: Path) -> None:
    result = write_report(seed_store, FlowQuery(port=1), tmp_path / "empty", WHEN)
    page = result.page.read_text()
    assert (result.flows, result.diagrams) == (0, 0)
    assert "<p><code>--port 1</code>: 0 connection(s).</p>" in page
    assert "<p>No connection matches the filter.</p>" in page
    assert "<p>No translation in the selected connections.</p>" in page
    assert "<p>No hop.</p>" in page and "<p>No line rejected.</p>" in page
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["index.html"]


def test_seed_report(seed_store: Store, tmp_path: Path) -> None:
    result = write_report(seed_store, FlowQuery(), tmp_path, WHEN, diagram_limit=4)
    page = result.page.read_text()
    assert (result.flows, result.diagrams) == (6, 4)
    assert "Generated 2026-11-25T12:00:00+00:00" in page
    assert "Diagrams are drawn for the first 4 of 6 connections" in page
    assert page.count('<section class="flow"') == 6
    assert page.count("(no diagram: beyond the diagram limit)") == 2
    # the NAT table: the article's MASQUERADE
    assert re.search(
        r"<td>SNAT</td><td>172\.17\.0\.2:55148</td><td>10\.10\.126\.101:55148</td>"
        r"<td>POSTROUTING</td><td>pc-baim</td>", page
    )  # fmt: skip
    # hop counts per hook, in the kernel's order: 27 hops in all
    hooks = re.findall(r"<tr><td>([A-Z]+)</td><td>(\w+)</td><td class=\"n\">(\d+)</td></tr>", page)
    assert [h[:2] for h in hooks] == [("PREROUTING", "raw"), ("INPUT", "filter"),
        ("FORWARD", "filter"), ("OUTPUT", "filter"), ("POSTROUTING", "nat")]  # fmt: skip
    assert sum(int(h[2]) for h in hooks) == 27
    assert "<tr><td>eth0</td>" in page and "<tr><td>vethd9f6465</td>" in page
    # the timeline as HTML, with the summary of the masqueraded connection
    assert "172.17.0.2:55148→10.10.126.187:12580" in page
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert all(20_000 < png.stat().st_size < 1_000_000 for png in tmp_path.glob("*.png"))


def test_report_and_render_commands(seed_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, stdout, err = run(
        "report", "--store", str(seed_store.path), "--nat", "snat", "-o", str(out)
    )
    assert code == 0, err
    assert stdout == f"{out / 'index.html'}: 1 connection(s), 1 diagram(s)\n"
    (flow_id,) = re.findall(r'id="flow-([^"]+)"', (out / "index.html").read_text())
    picture = tmp_path / "j5.svg"
    code, stdout, err = run("render", flow_id, "--store", str(seed_store.path), "-o", str(picture))
    assert code == 0, err
    assert stdout == f"{picture}: 3 packet(s), 7 hop arrow(s), 6 lifeline(s)\n"
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
