"""One bad line costs one line (issue 9), through the CLI: a line that is no netfilter line is
rejected with its file, line, column, what was expected there and what was found, and the lines
around it are stored.

Every bad line is a real sample line (samples/) with one value changed.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from logpath.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
runner = CliRunner()


def sample(name: str, lineno: int) -> str:
    return (SAMPLES / name).read_text().splitlines()[lineno - 1]


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ingest(store: Path, *paths: Path) -> dict[str, object]:
    code, out, err = run("ingest", *map(str, paths), "--store", str(store), "--json")
    assert code == 0, err
    summary: dict[str, object] = json.loads(out)
    return summary


def listed(command: str, store: Path, *args: str) -> list[dict[str, object]]:
    code, out, err = run(command, "--store", str(store), "--json", *args)
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def changed(line: str, old: str, new: str) -> str:
    assert line.count(old) == 1, (old, line)
    return line.replace(old, new)


SEED_SYN = sample("seed/syslog", 1)  # RFC 3164 header, [uptime], PHYSIN, MAC, TCP SYN


def test_a_line_the_grammar_refuses_is_reported_where_it_stops_being_one(tmp_path: Path) -> None:
    # the failure inside the optional TCP header used to be reported as "end of line" at SRC=
    bad = changed(SEED_SYN, "DPT=12580 ", "DPT=12580x ")
    log = tmp_path / "kern.log"
    log.write_text(f"{bad}\n{SEED_SYN}\n")
    ingest(tmp_path / "s", log)
    (rejected,) = listed("rejected", tmp_path / "s")
    assert (rejected["column"], rejected["expected"], rejected["found"]) == (
        bad.index("x WINDOW") + 1,
        "SEQ=<n> ACK=<n> or WINDOW=<n> RES=0x<hex>",
        "x",
    )
