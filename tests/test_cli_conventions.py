"""The command line's conventions (issue 15 point 2): --version, a pager for long output on a
terminal, exit code 1 when a query matched nothing, times at the log's precision, the JSON's
words in the CSV, nothing created by a failed ingest, output path problems said in one line,
and help that reads on an 80-column terminal."""

from __future__ import annotations

import csv
import fcntl
import io
import itertools
import json
import os
import pty
import re
import shlex
import struct
import subprocess
import sys
import termios
from importlib.metadata import version
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from logpath.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SEED = SAMPLES / "seed" / "syslog"
CLI = [sys.executable, "-c", "from logpath.cli import main; main()"]
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
runner = CliRunner()


def run(*args: str, **env: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env or None)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("seed") / "store")
    code, _, err = run("ingest", str(SEED), "--store", path, "--year", "2016", "--json")
    assert code == 0, err
    return path


def test_version_is_the_package_version() -> None:
    assert run("--version") == (0, f"logpath {version('logpath')}\n", "")


# --- the pager ----------------------------------------------------------------------------


def fake_pager(tmp_path: Path) -> tuple[str, Path]:
    """A pager command that writes what it is given to a file, and that file."""
    received = tmp_path / "paged.txt"
    script = f"import sys; open({str(received)!r}, 'w').write(sys.stdin.read())"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}", received


def on_terminal(args: list[str], env: dict[str, str], rows: int = 20) -> str:
    """Run logpath with its standard output on a pseudo-terminal of ``rows`` x 200; what the
    terminal showed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 200, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PAGER")}
    process = subprocess.Popen([*CLI, *args], stdout=follower, env={**environ, **env})
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower's last holder exited (EIO)
            break
        if not chunk:
            break
        shown += chunk
    assert process.wait(timeout=60) == 0
    os.close(leader)
    return re.sub(r"\x1b\[[0-9;]*m", "", shown.decode().replace("\r\n", "\n"))


def test_long_output_on_a_terminal_goes_to_the_pager(seed: str, tmp_path: Path) -> None:
    pager, received = fake_pager(tmp_path)
    shown = on_terminal(["hops", "--store", seed], {"LOGPATH_PAGER": pager, "PAGER": "false"})
    assert shown == ""
    paged = re.sub(r"\x1b\[[0-9;]*m", "", received.read_text()).splitlines()
    _, piped, _ = run("hops", "--store", seed)
    assert paged == piped.splitlines()
    assert (len(paged), paged[-1]) == (29, "27 hop(s)")


@pytest.mark.parametrize(
    "args",
    [("flows", "--json"), ("hops", "--csv"), ("hops", "--json")],
    ids=["echo", "pandas", "writelines"],
)
def test_every_way_a_command_writes_reaches_the_pager(
    seed: str, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """typer.echo, pandas' to_csv and writelines all write through the pager."""
    pager, received = fake_pager(tmp_path)
    assert on_terminal([*args, "--store", seed], {"LOGPATH_PAGER": pager}, rows=5) == ""
    assert received.read_text() == run(*args, "--store", seed)[1]


def test_pager_is_pager_when_logpath_pager_is_unset(seed: str, tmp_path: Path) -> None:
    pager, received = fake_pager(tmp_path)
    on_terminal(["hops", "--store", seed], {"PAGER": pager})
    assert received.read_text().endswith("27 hop(s)\n")


def test_short_output_and_no_pager_are_written_to_the_terminal(seed: str, tmp_path: Path) -> None:
    pager, received = fake_pager(tmp_path)
    shown = on_terminal(["flows", "--store", seed], {"LOGPATH_PAGER": pager})
    assert shown.splitlines()[-1] == "6 flow(s)"  # 8 lines on a 20-line terminal
    shown = on_terminal(["--no-pager", "hops", "--store", seed], {"LOGPATH_PAGER": pager})
    assert shown.splitlines()[-1] == "27 hop(s)"
    assert not received.exists()


def test_piped_output_is_never_paged(seed: str, tmp_path: Path) -> None:
    pager, received = fake_pager(tmp_path)
    done = subprocess.run([*CLI, "hops", "--store", seed], capture_output=True, text=True,
                          env={**os.environ, "LOGPATH_PAGER": pager, "LINES": "5"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "27 hop(s)"
    assert not received.exists()


# --- exit code 1 when nothing matched ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "printed"),
    [
        (("flows", "--port", "1"), "0 flow(s)"),
        (("flows", "--port", "1", "--json"), "[]"),
        (("hops", "--port", "1"), "0 hop(s)"),
        (("hops", "--port", "1", "--json"), "[]"),
    ],
)
def test_a_query_that_matched_nothing_exits_1(seed: str, args: tuple[str, ...], printed: str):
    code, out, err = run(*args, "--store", seed)
    assert (code, err) == (1, "")
    assert out.splitlines()[-1] == printed


@pytest.mark.parametrize(
    "args", [("flows", "--port", "1", "--csv"), ("hops", "--port", "1", "--csv")]
)
def test_an_empty_csv_is_its_header_and_exit_1(seed: str, args: tuple[str, ...]) -> None:
    code, out, _ = run(*args, "--store", seed)
    assert code == 1
    assert len(out.splitlines()) == 1 and out.startswith(("id,", "ts,"))


def test_a_query_that_matched_exits_0(seed: str) -> None:
    assert run("flows", "--store", seed, "--port", "12580")[0] == 0
    assert run("hops", "--store", seed, "--port", "12580", "--csv")[0] == 0


@pytest.mark.parametrize("command", ["flows", "hops"])
def test_the_help_of_a_query_says_exit_1(command: str) -> None:
    assert "Exit code 1 when no" in run(command, "--help")[1]


# --- times at the log's precision ------------------------------------------------------------


def test_whole_second_syslog_times_have_no_invented_microseconds(seed: str) -> None:
    _, out, _ = run("hops", "--store", seed)
    assert out.splitlines()[1].startswith("2016-01-14 10:08:12  pc-baim  [TonyBai]-RawPrerouting:")
    assert ".000000" not in out


def test_journal_microseconds_are_kept(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    run("ingest", str(SAMPLES / "formats" / "journal.json"), "--store", store)
    _, out, _ = run("hops", "--store", store)
    assert out.splitlines()[1].startswith("2026-11-25 16:54:47.311694  vm")


# --- one vocabulary: the CSV says what the JSON says ---------------------------------------


def test_hops_csv_has_the_json_names_and_times(seed: str) -> None:
    _, out, _ = run("hops", "--store", seed, "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    hops = json.loads(run("hops", "--store", seed, "--json")[1])
    assert "in_iface" not in rows[0] and "out_iface" not in rows[0]
    assert [(r["ts"], r["in"], r["out"]) for r in rows] == [
        (h["ts"], h["in"] or "", h["out"] or "") for h in hops
    ]
    assert rows[0]["ts"] == "2016-01-14T10:08:12Z"
    _, header, _ = run("hops", "--store", seed, "--csv", "--port", "1")
    assert header.split(",")[5:8] == ["prefix", "in", "out"]


# --- nothing created by a failed ingest; output paths ---------------------------------------


def test_ingest_of_a_missing_file_creates_no_store(tmp_path: Path) -> None:
    store = tmp_path / "new"
    code, out, err = run("ingest", str(tmp_path / "missing.log"), "--store", str(store))
    assert (code, out, err) == (1, "", f"logpath: {tmp_path / 'missing.log'}: no such file\n")
    assert not store.exists()


def test_render_into_a_missing_directory_is_one_line(seed: str, tmp_path: Path) -> None:
    picture = tmp_path / "out" / "nodir" / "x.png"
    flow = json.loads(run("flows", "--store", seed, "--json")[1])[0]["id"]
    code, out, err = run("render", flow, "--store", seed, "-o", str(picture))
    assert (code, out) == (1, "")
    assert (
        err == f"logpath: {picture}: cannot write: the directory {picture.parent} does not exist\n"
    )


def test_output_paths_under_a_file_are_one_line(seed: str, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    flow = json.loads(run("flows", "--store", seed, "--json")[1])[0]["id"]
    picture = afile / "x.svg"
    assert run("render", flow, "--store", seed, "-o", str(picture)) == (
        1, "", f"logpath: {picture}: cannot write: {afile} is not a directory\n"
    )  # fmt: skip
    assert run("report", "--store", seed, "-o", str(afile / "r")) == (
        1, "", f"logpath: {afile / 'r'}: cannot write: {afile} is not a directory\n"
    )  # fmt: skip
    assert run("report", "--store", seed, "-o", str(afile)) == (
        1, "", f"logpath: {afile}: cannot write: it is a file, not a directory\n"
    )  # fmt: skip


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only directory")
def test_an_unwritable_directory_is_one_line(seed: str, tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o500)
    flow = json.loads(run("flows", "--store", seed, "--json")[1])[0]["id"]
    code, _, err = run("render", flow, "--store", seed, "-o", str(closed / "x.png"))
    assert (code, err) == (1, f"logpath: {closed / 'x.png'}: cannot write: no permission to "
                              f"write in {closed}\n")  # fmt: skip


# --- help on an 80-column terminal ----------------------------------------------------------


def help_at_80(*args: str) -> list[str]:
    code, out, _ = run(*args, "--help", COLUMNS="80")
    assert code == 0
    return out.splitlines()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_fits_80_columns_and_breaks_only_where_full(command: str) -> None:
    lines = help_at_80(command)
    assert max(map(len, lines)) <= 80
    # the text above the option panels: a paragraph's line ends early only at its end
    text = lines[lines.index(next(x for x in lines if "Usage:" in x)) + 1 :]
    text = text[: text.index(next(x for x in text if x.startswith("╭")))]
    for before, after in itertools.pairwise(text):
        if before.strip() and after.strip():
            assert len(before.rstrip()) > 60, (before, after)


def test_each_command_summary_is_one_line_of_the_main_help() -> None:
    lines = help_at_80()
    start = lines.index(next(x for x in lines if "Commands" in x))
    rows = lines[start + 1 : start + 1 + len(COMMANDS)]
    assert sorted(row.split()[1] for row in rows) == COMMANDS
    assert max(map(len, lines)) <= 80
