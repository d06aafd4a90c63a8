"""The HTML report in a real browser: headless Chromium opens index.html and a connection page
from ``file://`` (no server, no network) and the DOM it dumps after the page's script ran shows
the table rendered, filtered and sorted as the URL fragment asks (``#filter=...&sort=...``).

Needs Chromium (`apt-get install -y chromium`, Debian 12; `.ci/run` installs it); skipped
without it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from logpath.query import FlowQuery, select_flows
from logpath.render.report import problems_first, write_report
from logpath.store import Store

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(BROWSER is None, reason="no chromium on PATH (apt-get install -y chromium)"),
]
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
# A row as Chromium serialises it after the script ran: its index, hidden or not, its cells.
ROW = re.compile(r'<tr data-i="(\d+)"( hidden="")?>(.*?)</tr>', re.S)


@pytest.fixture(scope="module")
def report(seed_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    write_report(seed_store, FlowQuery(), out, WHEN, diagram_limit=2)
    return out


def dump_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` after its scripts ran, as headless Chromium serialises it."""
    assert BROWSER is not None
    command = [BROWSER, "--headless", "--disable-gpu", f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    done = subprocess.run(
        [*command, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def rows(dom: str) -> list[tuple[bool, list[str]]]:
    """Each table row in DOM order: shown or not, and its cells' text."""
    found = []
    for _, hidden, cells in ROW.findall(dom):
        texts = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells)]
        found.append((not hidden, texts))
    return found


def test_the_table_is_rendered(report: Path, tmp_path: Path, seed_store: Store) -> None:
    dom = dump_dom((report / "index.html").as_uri(), tmp_path)
    assert '<span id="shown">6 of 6 connection(s) shown</span>' in dom
    table = rows(dom)
    assert len(table) == 6 and all(shown for shown, _ in table)
    # unsorted: the report's order, problems first
    flows = problems_first(select_flows(seed_store, FlowQuery())[1])
    assert [cells[0] for _, cells in table] == [flow.id for flow in flows]
    assert dom.count('aria-sort="none"') == 12  # dropped and lost are columns too


def test_the_fragment_filters_the_table(report: Path, tmp_path: Path) -> None:
    dom = dump_dom((report / "index.html").as_uri() + "#filter=snat", tmp_path)
    assert '<span id="shown">1 of 6 connection(s) shown</span>' in dom
    assert 'id="filter" type="search"' in dom and 'data-shown="1"' in dom
    shown = [cells for visible, cells in rows(dom) if visible]
    assert len(shown) == 1 and shown[0][5] == "snat" and shown[0][3].startswith("172.17.0.2:")
    nothing = dump_dom((report / "index.html").as_uri() + "#filter=no%20such%20thing", tmp_path)
    assert '<span id="shown">0 of 6 connection(s) shown</span>' in nothing


@pytest.mark.parametrize("desc", [False, True])
def test_the_fragment_sorts_the_table(report: Path, tmp_path: Path, desc: bool) -> None:
    fragment = "#sort=packets" + ("&desc=1" if desc else "")
    dom = dump_dom((report / "index.html").as_uri() + fragment, tmp_path)
    packets = [int(cells[6]) for _, cells in rows(dom)]
    assert packets == sorted(packets, reverse=desc) and len(set(packets)) > 1
    expected = "descending" if desc else "ascending"
    assert f'<th data-key="packets" data-type="num" aria-sort="{expected}">' in dom
    # text columns too, and both a filter and a sort
    dom = dump_dom((report / "index.html").as_uri() + "#filter=tcp&sort=orig", tmp_path)
    shown = [cells for visible, cells in rows(dom) if visible]
    assert [cells[3] for cells in shown] == sorted(cells[3] for cells in shown)
    assert all(cells[2] == "tcp" for cells in shown)


def test_a_connection_page_opens_with_its_diagram(report: Path, tmp_path: Path) -> None:
    index = dump_dom((report / "index.html").as_uri(), tmp_path)
    first = re.search(r'<a href="(flows/([0-9a-f]+-[0-9]+)\.html)">', index)
    assert first is not None
    link, flow_id = first.groups()
    dom = dump_dom((report / link).as_uri(), tmp_path)
    assert f"<h1>flow {flow_id}</h1>" in dom and '<a href="../index.html">' in dom
    assert f'<img src="{flow_id}.svg"' in dom and "<h2>Timeline</h2>" in dom
    assert re.search(r"<h2>Log lines \(\d+\)</h2>", dom)
    svg = dump_dom((report / "flows" / f"{flow_id}.svg").as_uri(), tmp_path)
    assert "<svg" in svg and "</svg>" in svg
