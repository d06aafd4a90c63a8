"""Text from a log line or a file name reaches the reader as data, never as a command.

The seed article's lines, with what a hostile rule author, interface or file name can put in
them: terminal escape sequences (OSC retitle, CSI clear screen, C1 CSI), a bidi override, rich
markup, HTML, spreadsheet formulas, TeX for matplotlib. Every command's output is read back
through the CLI: no control character reaches a terminal, the HTML report or a CSV file, CSV
cells cannot run as formulas, and the diagrams draw.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_doctor import HOST, fake_root
from typer.testing import CliRunner

from logpath.cli import app
from logpath.render.report import SCRIPT

SEED = Path(__file__).resolve().parent.parent / "samples" / "seed" / "syslog"
runner = CliRunner()

# What the reader must never receive raw: C0 but the newline ending each line, DEL, C1, the
# bidi and zero-width controls.
HIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")

# LOG prefixes (at most 29 bytes for iptables, anything for nft) by seed line number.
PREFIXES = {
    1: '=HYPERLINK("http://evil.example/","x"):',
    2: "+cmd|' /C calc'!A0:",
    3: "@SUM(1+1)*cmd|' /C calc'!A0:",
    4: "-2+3+cmd|' /C calc'!A0:",
    5: "\x1b]0;pwned\x07\x1b[2J:",  # retitle the terminal, clear the screen
    6: "\u202e[bold]red[/bold]\x9b31m:",  # bidi override, rich markup, C1 CSI
    8: "<script>alert(1)</script>\t:",
}
# The container's bridge port, in every line: TeX for matplotlib and an OSC sequence, in the
# 15 bytes of an interface name.
PORT = "v$\\frac$\x1b]0;x\x07"
FILE_NAME = "seed\x1b]0;file\x07.log"
# Where a line is rejected, the word found there: the reader gets the line, escaped.
REJECTED = "\x1b[2J\u202e"


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def hostile_lines() -> list[str]:
    lines = SEED.read_text().splitlines()
    for number, prefix in PREFIXES.items():
        old = lines[number - 1].split("] ", 1)[1].split("IN=", 1)[0]
        lines[number - 1] = lines[number - 1].replace(old, prefix, 1)
    lines = [line.replace("vethd9f6465", PORT) for line in lines]
    rejected = lines[0].replace("10:08:12", "10:08:13") + " " + REJECTED
    return [*lines, rejected]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    log = folder / FILE_NAME
    log.write_text("\n".join(hostile_lines()) + "\n")
    code, out, err = run("ingest", str(log), "--store", str(folder / "store"), "--year", "2016")
    assert code == 0, out + err
    assert "27 hop(s)" in out and "1 rejected" in out
    return folder / "store"


def assert_shown(output: str) -> None:
    """Nothing hidden in the output: each control character is there as its escape."""
    assert not HIDDEN.search(output), HIDDEN.findall(output)


def flow_through_port(store: Path) -> str:
    code, out, err = run("flows", "--store", str(store), "--json")
    assert code == 0, err
    return str(json.loads(out)[0]["id"])  # journey 1: a container's SYN through the port


def test_the_hops_table_shows_control_characters_escaped(store: Path) -> None:
    code, out, err = run("hops", "--store", str(store))
    assert code == 0, err
    assert_shown(out)
    rows = out.splitlines()
    assert len(rows) == 1 + 27 + 1
    assert "\\x1b]0;pwned\\x07\\x1b[2J:" in rows[5]
    # the markup is text, the bidi override and the C1 CSI are escapes
    assert "\\u202e[bold]red[/bold]\\x9b31m:" in rows[6]
    assert "<script>alert(1)</script>\\t:" in rows[8]
    assert "v$\\frac$\\x1b]0;x\\x07" in rows[1]
    # still a table: the columns after the escaped prefix line up with the title line
    assert rows[5].index("docker0") == rows[0].index(" in ") + 1


def test_rejected_lines_show_control_characters_escaped(store: Path) -> None:
    code, out, err = run("rejected", "--store", str(store))
    assert code == 0, err
    assert_shown(out)
    head, line, caret, total = out.splitlines()
    assert head.startswith(f"{store.parent}/seed\\x1b]0;file\\x07.log:28:")
    assert head.endswith(", found '\\x1b[2J\\u202e'")
    assert line.endswith("URGP=0 \\x1b[2J\\u202e")
    # the caret stands under the escaped text the grammar found
    assert line[caret.index("^") :].startswith("\\x1b[2J\\u202e")
    assert total == "1 rejected line(s)"


def test_the_ingest_summary_and_errors_show_names_escaped(tmp_path: Path) -> None:
    store = tmp_path / "store\x1b]0;store\x07"
    log = tmp_path / FILE_NAME
    log.write_text("\n".join(hostile_lines()) + "\n")
    missing = tmp_path / "gone\x1b]0;gone\x07\u202e.log"
    code, out, err = run("ingest", str(log), str(missing), "--store", str(store), "--year", "2016")
    assert_shown(out)
    assert_shown(err)
    assert f"stored in {tmp_path}/store\\x1b]0;store\\x07," in out
    assert f"logpath: {tmp_path}/gone\\x1b]0;gone\\x07\\u202e.log" in err
    # a message of logpath's own (a flow that does not exist) quotes what it was given
    code, out, err = run("journey", "x\x1b]0;id\x07", "--store", str(store))
    assert code == 3
    assert_shown(err)
    assert "x\\x1b]0;id\\x07" in err


def test_the_progress_bar_shows_a_file_name_escaped(tmp_path: Path) -> None:
    """On a terminal, ingest shows each file's name in its progress bar: as text, neither an
    escape sequence nor rich markup. (A real process on a pseudo-terminal: only there is the
    bar drawn.)"""
    log = tmp_path / "[bold]x\x1b]0;t\x07.log"
    log.write_text(SEED.read_text())
    command = [sys.executable, "-c", "from logpath.cli import main; main()", "ingest", str(log),
               "--store", str(tmp_path / "store"), "--year", "2016"]  # fmt: skip
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "500", "TERM": "xterm"}
    with subprocess.Popen(command, stdout=terminal, stderr=terminal, env=env) as process:
        os.close(terminal)
        screen = b""
        while chunk := _read(controller):
            screen += chunk
        assert process.wait(timeout=60) == 0, screen
    os.close(controller)
    shown = screen.decode("utf-8")
    # rich draws the bar with its own CSI sequences; the name brings no OSC and no BEL
    assert "\x1b]" not in shown and "\x07" not in shown, shown
    assert f"{tmp_path}/[bold]x\\x1b]0;t\\x07.log " in shown
    assert "27 hop(s) stored" in shown


def _read(controller: int) -> bytes:
    """What the terminal received next; b"" once the process closed it."""
    ready, _, _ = select.select([controller], [], [], 60)
    try:
        return os.read(controller, 65536) if ready else b""
    except OSError:  # EIO: every writer closed the terminal
        return b""


def test_a_journey_timeline_shows_interface_names_escaped(store: Path) -> None:
    code, out, err = run("journey", flow_through_port(store), "--store", str(store))
    assert code == 0, err
    assert_shown(out)
    assert "docker0[v$\\frac$\\x1b]0;x\\x07] → ·" in out


def test_csv_cells_cannot_run_as_formulas(store: Path) -> None:
    code, out, err = run("hops", "--store", str(store), "--csv")
    assert code == 0, err
    assert_shown(out)
    rows = {int(row["lineno"]): row for row in csv.DictReader(io.StringIO(out))}
    assert len(rows) == 27
    prefixes = {n: rows[n]["prefix"] for n in PREFIXES}
    assert prefixes == {
        1: '\'=HYPERLINK("http://evil.example/","x"):',
        2: "'+cmd|' /C calc'!A0:",
        3: "'@SUM(1+1)*cmd|' /C calc'!A0:",
        4: "'-2+3+cmd|' /C calc'!A0:",
        5: "\\x1b]0;pwned\\x07\\x1b[2J:",
        6: "\\u202e[bold]red[/bold]\\x9b31m:",
        8: "<script>alert(1)</script>\\t:",
    }
    # every text cell of every row: none starts as a formula
    assert not [
        (n, name, cell)
        for n, row in rows.items()
        for name, cell in row.items()
        if cell.startswith(("=", "+", "-", "@"))
    ]
    assert rows[1]["physin"] == "v$\\frac$\\x1b]0;x\\x07"
    assert rows[1]["source"].endswith("seed\\x1b]0;file\\x07.log")
    # numbers stay numbers, untouched text stays as it was
    assert (rows[1]["sport"], rows[1]["uptime"], rows[1]["ttl"]) == ("43292", "830038.910054", "64")
    assert rows[7]["prefix"] == "[TonyBai]-FilterOutput:"


def test_csv_cells_are_neutralised_in_every_batch(tmp_path: Path) -> None:
    """`hops --csv` streams the store 32,768 hops at a time, each batch a slice of what Parquet
    decoded: a formula or an escape sequence is caught wherever it falls."""
    seed = SEED.read_text().splitlines()
    lines = [seed[i % len(seed)] for i in range(40_000)]
    planted = {1: "=1+1:", 32_768: "@A1:", 32_769: "\x1b]0;x\x07:", 40_000: "-1+1:"}
    for number, prefix in planted.items():
        lines[number - 1] = lines[number - 1].replace("[TonyBai]-", prefix, 1)
    log = tmp_path / "big.log"
    log.write_text("\n".join(lines) + "\n")
    code, out, err = run("ingest", str(log), "--store", str(tmp_path / "s"), "--year", "2016")
    assert code == 0, out + err
    for options in ((), ("--port", "12580")):
        code, out, err = run("hops", "--store", str(tmp_path / "s"), "--csv", *options)
        assert code == 0, err
        assert_shown(out)
        rows = list(csv.DictReader(io.StringIO(out)))
        assert len(rows) == 40_000
        changed = {int(r["lineno"]): r["prefix"] for r in rows if not r["prefix"].startswith("[")}
        assert changed == {
            1: "'=1+1:RawPrerouting:",
            32_768: "'@A1:FwdId0Ond0:",
            32_769: "\\x1b]0;x\\x07:NatPostRouting:",
            40_000: "'-1+1:FilterOutput:",
        }


def test_json_keeps_the_exact_text_escaped(store: Path) -> None:
    """json escapes every control character: the exact text comes back, nothing raw is shown.
    (Already so before the output layer: this pins it.)"""
    code, out, err = run("hops", "--store", str(store), "--json")
    assert code == 0, err
    assert_shown(out)
    prefixes = {hop["lineno"]: hop["prefix"] for hop in json.loads(out)}
    assert {n: prefixes[n] for n in PREFIXES} == PREFIXES
    code, out, err = run("rejected", "--store", str(store), "--json")
    assert code == 0, err
    assert_shown(out)
    assert REJECTED in json.loads(out)[0]["text"]


def test_the_report_has_no_control_character_and_no_injected_tag(
    store: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "report"
    code, out, err = run("report", "--store", str(store), "-o", str(out_dir), "--diagrams", "1")
    assert code == 0, out + err
    index = (out_dir / "index.html").read_text(encoding="utf-8")
    # the report's own script, once and as written; nothing else
    ours = f"<script>{SCRIPT}</script>"
    assert index.count(ours) == 1
    index = index.replace(ours, "")
    flows = [p.read_text(encoding="utf-8") for p in sorted(out_dir.glob("flows/*.html"))]
    diagrams = [p.read_text(encoding="utf-8") for p in sorted(out_dir.glob("flows/*.svg"))]
    assert len(flows) == 6 and len(diagrams) == 1
    for page in (index, *flows, *diagrams):
        assert_shown(page)
        assert "<script" not in page
    ET.fromstring(diagrams[0])  # well-formed XML
    # the links: file names built from a safe pattern
    links = re.findall(r'<a href="([^"]*)"', index)
    assert sorted(link for link in links if link.startswith("flows/")) == sorted(
        f"flows/{p.name}" for p in out_dir.glob("flows/*.html")
    )
    assert all(re.fullmatch(r"flows/[0-9a-f]+-[0-9]+\.html|#[a-z=%0-9]*", link) for link in links)
    pages = "\n".join(flows)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\t:IN=docker0" in pages
    assert "\\x1b]0;pwned\\x07\\x1b[2J:IN=docker0" in pages
    # the file name in each log line's place, the port in a timeline (rich's HTML export)
    assert "seed\\x1b]0;file\\x07.log:1: " in pages
    assert "docker0[v$\\frac$\\x1b]0;x\\x07]" in pages
    # the rejected line, in the index
    assert "URGP=0 \\x1b[2J\\u202e" in index


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_a_diagram_draws_names_as_text(store: Path, tmp_path: Path, suffix: str) -> None:
    picture = tmp_path / f"journey{suffix}"
    code, out, err = run(
        "render", flow_through_port(store), "-o", str(picture), "--store", str(store)
    )
    assert code == 0, err
    assert out.startswith(str(picture))
    data = picture.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
        return
    svg = data.decode("utf-8")
    root = ET.fromstring(svg)  # well-formed XML: no raw control character in it
    assert root.tag.endswith("svg")
    assert_shown(svg)
    # matplotlib keeps each text in a comment above its glyphs: the name as written
    assert "<!-- v$\\frac$\\x1b]0;x\\x07 -->" in svg


def test_doctor_shows_an_interface_name_escaped(tmp_path: Path) -> None:
    files: dict[str, str | None] = {
        name: text
        for name, text in HOST.items()
        if not name.startswith(("proc/sys/net/bridge", "sys/"))
    }
    files["sys/class/net/br\x1b]0;x\x07\u202e/bridge/bridge_id"] = "8000.0242f9f8c9ad\n"
    _, out, err = run("doctor", "--root", str(fake_root(tmp_path, files)))
    assert_shown(out + err)
    assert "Bridges here: br\\x1b]0;x\\x07\\u202e." in out


def test_instrument_refuses_a_bridge_name_that_is_not_one(tmp_path: Path) -> None:
    """The rules are meant for iptables-restore and nft: a name with a space, a quote or a
    control character would write other rules than the ones asked for."""
    for name in ("br0 -j ACCEPT", 'br0" accept', "br\x1b]0;x\x07", "a-name-too-long-16"):
        code, out, err = run("instrument", "--port", "80", "--proto", "tcp", "--bridge", name)
        assert code == 2, (name, out)
        assert out == ""
        assert_shown(err)
        assert "--bridge" in err
    code, out, err = run("instrument", "--port", "80", "--proto", "tcp", "--bridge", "br-1a2b.10")
    assert code == 0, err
    assert "-i br-1a2b.10 " in out


def test_csv_columns_equal_csv_cell_on_every_kind_of_column() -> None:
    """The column-at-a-time neutraliser gives what ``csv_cell`` gives each cell, on slices
    (offsets not at zero), large strings, dictionaries and nulls."""
    import pyarrow as pa

    from logpath.render.output import csv_cell, csv_columns

    cells = ["docker0", "-", "=1", "+a", "-b", "@c", "\tx", "\rx", "a\x1bb", "é", "\u202e", "",
             None, "x=1", "--", "plain text"] * 7  # fmt: skip
    expected = [csv_cell(c) for c in cells]
    for array in (
        pa.array(cells, pa.string()),
        pa.array(cells, pa.large_string()),
        pa.array(cells, pa.string()).dictionary_encode(),
    ):
        for start, stop in ((0, len(cells)), (5, 40), (18, 19), (24, 25), (30, 30)):
            piece = array.slice(start, stop - start)
            table = pa.table({"text": piece, "number": pa.array(range(stop - start))})
            result = csv_columns(table)
            assert result.column("text").to_pylist() == expected[start:stop], (array.type, start)
            assert result.column("number").to_pylist() == list(range(stop - start))
            assert result.schema == table.schema


@pytest.mark.skipif(sys.maxunicode < 0x10FFFF, reason="narrow build")
def test_every_control_and_format_character_is_escaped() -> None:
    """The set ``visible`` escapes covers the running Python's Unicode categories Cc, Cf, Zl,
    Zp and Cs; printable text is left as it is."""
    from logpath.render.output import visible

    hidden = [chr(c) for c in range(sys.maxunicode + 1)
              if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp", "Cs")]  # fmt: skip
    assert len(hidden) > 300
    assert [c for c in hidden if visible(c) == c] == []
    assert all(visible(c).isprintable() and visible(c).isascii() for c in hidden)
    sample = "fw-IN: docker0[vethd9f6465] → 10.0.0.1 ⇄ ☃ \\x1b"
    assert visible(sample) is sample
