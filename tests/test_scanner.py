"""The C scanner generated from the grammar (logpath/_scanner, grammars/scanner_gen.py).

Its parse of a block must be the pure-Python parse, field by field (same hops, columns, rejects
and skip counts, in the same order), on every sample and on generated lines; and the checked-in
scanner must be what the generator makes of today's grammar.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logpath.grammars.fastpath import CompileError, compile_grammar
from logpath.grammars.scanner_gen import translate
from strategies import netfilter_line

from logpath.lines import Block
from logpath.netfilter import is_integer_field
from logpath.parse import (
    _TRACE_STARTS,
    PURE_PYTHON_ENV,
    ParsedLines,
    _integer_mask,
    fast_parse_line,
    parse_block,
    parse_lines,
    scanner,
    scanner_status,
)

ROOT = Path(__file__).parent.parent
SCANNER = ROOT / "logpath" / "_scanner"
SAMPLES = sorted(p for p in (ROOT / "samples").rglob("*") if p.is_file() and p.stat().st_size)

needs_scanner = pytest.mark.skipif(scanner() is None, reason="the C scanner is not built")


def block_of(data: bytes, start: int = 1) -> Block:
    return Block(start=start, count=data.count(b"\n") + (not data.endswith(b"\n")), data=data)


def pure(name: str, block: Block, after: int = 0) -> ParsedLines:
    text, _ = block.texts(after)
    return parse_lines(name, text)


def same(a: ParsedLines, b: ParsedLines) -> None:
    assert a.lineno == b.lineno
    assert a.raw == b.raw
    assert a.rejected == b.rejected
    assert a.skipped == b.skipped
    assert a.lines == b.lines
    assert list(a.fields) == list(b.fields)
    for name in a.fields:
        assert a.fields[name].equals(b.fields[name]), name


@needs_scanner
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: str(p.relative_to(ROOT / "samples")))
def test_scanner_equals_python_on_sample(path: Path) -> None:
    data = path.read_bytes()
    block = block_of(data, start=1)
    scanned = parse_block(path.name, block)
    if scanned is None:  # carriage returns or bytes that are not UTF-8: Python reads it all
        assert b"\r" in data or not data.isascii()
        return
    same(scanned, pure(path.name, block))


@needs_scanner
def test_scanner_takes_the_seed_lines() -> None:
    """The seed article's 27 kernel lines are the common shape: the scanner takes them all."""
    from logpath._scanner import _scan

    data = (ROOT / "samples" / "seed" / "syslog").read_bytes()
    mask = _integer_mask()
    lineno, _raw, rest, _columns, others = _scan.scan(data, 1, 0, _TRACE_STARTS, mask)
    assert len(lineno) == 27 * 8  # an int64 each
    # the file's other lines are counted, not handed over
    assert not rest and others == data.count(b"\n") - 27
    parsed = parse_block("syslog", block_of(data))
    assert parsed is not None
    assert parsed.fields["dport"][0].as_py() == 12580  # read as a number in C
    assert parsed.fields["prefix"][0].as_py() == "[TonyBai]-RawPrerouting:"
    kernel = [n for n, line in enumerate(data.decode().splitlines(), 1) if " kernel: " in line]
    assert parsed.lineno.to_pylist() == kernel
    assert parsed.raw.to_pylist() == [data.decode().splitlines()[n - 1] for n in kernel]


@needs_scanner
def test_scanner_skips_lines_up_to_after() -> None:
    data = (ROOT / "samples" / "seed" / "syslog").read_bytes()
    block = block_of(data, start=100)
    scanned = parse_block("syslog", block, after=110)
    assert scanned is not None
    same(scanned, pure("syslog", block, after=110))
    assert min(scanned.lineno.to_pylist()) > 110


LINES = st.lists(netfilter_line(), min_size=1, max_size=20)


@needs_scanner
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES, st.sampled_from(["", " ", "  "]))
def test_scanner_equals_python_on_generated_lines(
    cases: list[tuple[str, object]], end: str
) -> None:
    data = "".join(text + end + "\n" for text, _ in cases).encode()
    block = block_of(data)
    scanned = parse_block("gen", block)
    assert scanned is not None
    same(scanned, pure("gen", block))


# Lines that are no netfilter line, or nearly: blank, white space Python's str.strip() knows and
# C's isspace() does not, a trace line's beginning, IN= without OUT=, any text.
OTHER_LINES = st.one_of(
    st.sampled_from(
        ["", " ", "\t", "\x0b\x0c", "\x1c\x1d\x1e\x1f", "\u00a0", "\u2003 \u3000", " x",
         "\u00e9t\u00e9", "trace id 5 ip filter", "trace id", "PACKET: 2 abc", " TRACE: 2",
         "kernel: IN=eth0 SRC=1.2.3.4", "OUT= only", "IN=OUT=", "cron[1]: (root) CMD"]
    ),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=40),
)  # fmt: skip


@needs_scanner
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(OTHER_LINES, netfilter_line().map(lambda c: c[0])), min_size=1))
def test_scanner_counts_the_other_lines_as_python_does(lines: list[str]) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    block = block_of(data)
    scanned = parse_block("gen", block)
    assert scanned is not None
    same(scanned, pure("gen", block))


@needs_scanner
@given(netfilter_line())
@settings(max_examples=300, deadline=None)
def test_scanner_leaves_only_prefixes_holding_in(case: tuple[str, object]) -> None:
    """The scanner takes every generated line but those whose prefix holds "IN=" itself (the
    one narrowing of the grammar's language it makes: grammars/scanner_gen.py)."""
    from logpath._scanner import _scan

    text = case[0]
    lineno, _, _rest, _, _ = _scan.scan(
        (text + "\n").encode(), 1, 0, _TRACE_STARTS, _integer_mask()
    )
    fields = fast_parse_line(text)
    assert fields is not None
    assert bool(lineno) == ("IN=" not in fields.get("prefix", "")), text


@needs_scanner
def test_a_scanner_built_for_another_interface_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module left from an older logpath (before a reinstall) takes other arguments: the
    pure-Python path runs instead of a TypeError at the first block."""
    from logpath._scanner import _scan
    from logpath.parse import _built_scanner

    monkeypatch.setattr(_scan, "INTERFACE", 1)
    _built_scanner.cache_clear()
    try:
        assert scanner() is None
        assert parse_block("syslog", block_of((ROOT / "samples/seed/syslog").read_bytes())) is None
    finally:
        monkeypatch.undo()
        _built_scanner.cache_clear()
    assert scanner() is not None


def test_pure_python_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    assert scanner() is None
    assert parse_block("syslog", block_of((ROOT / "samples/seed/syslog").read_bytes())) is None
    assert scanner_status().startswith("parser: pure Python")


def test_ingest_without_the_scanner_stores_the_same_hops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import datetime

    from logpath.ingest import parse_chunk

    data = (ROOT / "samples/seed/syslog").read_bytes()
    moment = datetime(2016, 1, 20, tzinfo=UTC)
    with_scanner = parse_chunk("syslog", moment, 2016, block_of(data), 0)
    monkeypatch.setenv(PURE_PYTHON_ENV, "1")
    without = parse_chunk("syslog", moment, 2016, block_of(data), 0)
    assert with_scanner.hops.num_rows == 27
    assert with_scanner.hops.equals(without.hops)
    assert with_scanner.lines == without.lines


def test_generator_refuses_what_a_dfa_cannot_do() -> None:
    import pyparsing as pp

    lazy = compile_grammar(pp.Regex(r"(?P<prefix>.*?) (?=IN=)"))
    with pytest.raises(CompileError, match="cannot translate"):
        translate("x", lazy)
    back = compile_grammar(pp.Regex(r"(?P<a>x)(?P=a)"))
    with pytest.raises(CompileError, match="cannot translate"):
        translate("x", back)


@pytest.mark.skipif(shutil.which("re2c") is None, reason="re2c is not installed")
def test_checked_in_scanner_is_generated_from_the_grammar(tmp_path: Path) -> None:
    from logpath._scanner.generate import generate

    generate(tmp_path)
    for name in ("scanner.re", "scanner.c"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (SCANNER / name).read_text(), f"{name} is stale: run make scanner"


def test_field_columns_are_arrow_texts_and_numbers() -> None:
    """The scanner's columns: Arrow texts, and int64 numbers for the decimal fields, as the
    Python path gives them."""
    if scanner() is None:
        pytest.skip("the C scanner is not built")
    parsed = parse_block("syslog", block_of((ROOT / "samples/seed/syslog").read_bytes()))
    assert parsed is not None
    numbers = {name for name in parsed.fields if is_integer_field(name)}
    assert {"sport", "dport", "len", "ttl", "id", "inner_sport", "usec"} <= numbers
    assert "proto" not in numbers and "uptime" not in numbers  # a name; a fraction
    for name, column in parsed.fields.items():
        assert column.type == (pa.int64() if name in numbers else pa.string()), name


@needs_scanner
@pytest.mark.parametrize(
    ("value", "number"),
    [("0", 0), ("65535", 65535), ("007", 7), ("9" * 18, 10**18 - 1), ("9" * 19, 10**18 - 1),
     ("123456789012345678901234567890", 10**18 - 1)],
)  # fmt: skip
def test_the_scanner_reads_numbers_as_the_python_path_does(value: str, number: int) -> None:
    """More than 18 digits read as one above every limit (netfilter.TOO_LONG), in C as in
    Python; the line is then rejected for its value, not stored wrapped around."""
    line = (
        "Jan  8 21:40:00 host kernel: [1.000000] IN=eth0 OUT= MAC=02:42:ac:11:00:02:02:42:ac:11"
        f":00:03:08:00 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 DF "
        f"PROTO=TCP SPT={value} DPT=80 WINDOW=1 RES=0x00 SYN URGP=0 \n"
    )
    block = block_of(line.encode())
    scanned = parse_block("gen", block)
    assert scanned is not None
    assert scanned.fields["sport"].to_pylist() == [number]
    same(scanned, pure("gen", block))


def _logpath_without_scanner(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``logpath ARGS`` in a fresh process in which the C extension cannot be imported, as on a
    machine where pip found no compiler (None in sys.modules makes its import fail)."""
    script = (
        "import sys\n"
        "sys.modules['logpath._scanner._scan'] = None\n"
        f"sys.argv = ['logpath', *{args!r}]\n"
        "from logpath.cli import main\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )


def test_a_logpath_without_the_scanner_says_so_once_and_stores_the_same(tmp_path: Path) -> None:
    seed = str(ROOT / "samples/seed/syslog")
    store = str(tmp_path / "store")
    run = _logpath_without_scanner(["ingest", seed, "--store", store, "--year", "2016"], tmp_path)
    assert run.returncode == 0, run.stderr
    said = [line for line in run.stderr.splitlines() if "parser:" in line]
    assert said == [f"logpath: {_NOT_BUILT}"]
    from logpath.store import Store

    assert Store(Path(store)).count_hops(None) == 27  # the seed's 27 lines, by the Python path
    doctor = _logpath_without_scanner(["doctor", "--json"], tmp_path)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["parser"]["status"] == "warn"
    assert checks["parser"]["value"] == _NOT_BUILT.removeprefix("parser: ")


@needs_scanner
def test_a_logpath_with_the_scanner_says_nothing_of_it_at_ingest(tmp_path: Path) -> None:
    script = (
        f"import sys\nsys.argv = ['logpath', 'ingest', {str(ROOT / 'samples/seed/syslog')!r}, "
        f"'--store', {str(tmp_path / 'store')!r}, '--year', '2016']\n"
        "from logpath.cli import main\nmain()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "parser:" not in run.stderr


_NOT_BUILT = (
    "parser: pure Python, about 3 times slower: the C scanner was not built (install a C "
    "compiler and the Python headers, then reinstall logpath)"
)
