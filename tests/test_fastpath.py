"""Property test: the compiled fast path and the pyparsing grammar read every line the same way."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]
from typing import Any

import pyparsing as pp
import pytest
from hypothesis import HealthCheck, given, settings
from logpath.grammars import headers, netfilter, ruleset
from logpath.grammars.fastpath import CompileError, FastPattern, compile_grammar
from strategies import netfilter_line
from typer.testing import CliRunner

from logpath import parse
from logpath.cli import app
from logpath.parse import fast_parse_line, parse_line

SEED = Path(__file__).resolve().parent.parent / "samples" / "seed" / "syslog"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(netfilter_line())
def test_fast_path_equals_grammar_on_generated_lines(case: tuple[str, dict[str, object]]) -> None:
    line, expected = case
    grammar = parse_line(line)  # every generated line is a valid line: the grammar must accept it
    assert fast_parse_line(line) == grammar
    assert grammar.get("prefix", "") == (expected.get("prefix") or "")
    for name in ("sport", "dport", "ttl"):
        if expected.get(name) is not None:
            assert grammar[name] == str(expected[name])


def test_the_compiler_refuses_what_it_cannot_translate() -> None:
    with pytest.raises(CompileError, match="parse actions"):
        compile_grammar(pp.Regex("a").add_parse_action(lambda t: t))
    with pytest.raises(CompileError, match="cannot compile Or"):
        compile_grammar(pp.Regex("a") ^ pp.Regex("b"))


def test_the_compiled_body_keeps_peg_semantics() -> None:
    # A backtracking regex would let the flag list give back "URG" to match "URGP=";
    # pyparsing does not backtrack into a token, and neither does the compiled atomic group.
    pattern = compile_grammar(netfilter.body)
    line = "x: IN=a OUT= SRC=1.1.1.1 DST=2.2.2.2 LEN=40 TOS=0x00 PREC=0x00 TTL=1 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 URG ACK URGP=0"
    match = pattern.regex.match(line)
    assert match is not None and pattern.fields(match)["flags"] == "URG ACK"


# --- no possessive quantifiers: Python 3.11.0-3.11.4 match them wrongly (CPython gh-106052) ------


def has_possessive_quantifier(pattern: str) -> bool:
    """Whether ``re`` parses ``pattern`` into a possessive repeat (not fooled by \\+ or [+])."""

    def walk(node: object) -> bool:
        if isinstance(node, sre_parser.SubPattern):
            return any(op is sre_constants.POSSESSIVE_REPEAT or walk(av) for op, av in node.data)
        if isinstance(node, tuple | list):
            return any(walk(item) for item in node)
        return False

    return walk(sre_parser.parse(pattern))


@pytest.mark.parametrize(
    ("pattern", "possessive"),
    [
        (r"[^I]*+(?:I(?!N=)[^I]*+)*+", True),
        (r"(?:ab)++", True),
        (r"a?+", True),
        (r"\d{1,3}+", True),
        (r"[*+]++", True),
        (r"(?>(?:ab)+)", False),
        (r"a\++", False),
        (r"[+]+", False),
        (r"\d{1,3}\+", False),
        (r"(?P<x>a+)(?=\+)", False),
    ],
)
def test_the_possessive_finder_reads_patterns_as_re_does(pattern: str, possessive: bool) -> None:
    assert has_possessive_quantifier(pattern) is possessive


def grammar_tokens() -> Iterator[pp.Regex]:
    """Every Regex token reachable from the grammar modules' elements (and the parse stage's)."""
    roots = [
        value
        for module in (headers, netfilter, ruleset, parse)
        for value in vars(module).values()
        if isinstance(value, pp.ParserElement)
    ]
    seen: set[int] = set()
    while roots:
        element = roots.pop()
        if id(element) in seen:
            continue
        seen.add(id(element))
        if isinstance(element, pp.Regex):
            yield element
        roots.extend(getattr(element, "exprs", []))
        if isinstance(getattr(element, "expr", None), pp.ParserElement):
            roots.append(element.expr)


def compiled_patterns() -> Iterator[tuple[str, FastPattern]]:
    for index, kind in enumerate(parse.header_kinds()):
        yield f"kind {index} common", kind.common
        yield f"kind {index} whole", kind.whole
    yield "syslog", parse.syslog_pattern()


def test_no_compiled_pattern_has_a_possessive_quantifier() -> None:
    patterns = list(compiled_patterns())
    assert len(patterns) == 2 * (len(headers.KINDS) + 1) + 1
    offending = [name for name, fast in patterns if has_possessive_quantifier(fast.pattern)]
    assert offending == []


def test_no_grammar_token_has_a_possessive_quantifier() -> None:
    tokens = list(grammar_tokens())
    assert netfilter.free_prefix in tokens and headers.rfc3164 in tokens
    assert len(tokens) > 50
    offending = [str(t.pattern) for t in tokens if has_possessive_quantifier(str(t.pattern))]
    assert offending == []


# --- the check of the running re at first use of the compiled patterns -------------------------


def gh106052() -> bool:
    """Python 3.11.0-3.11.4: a possessive repeat of a pattern that backtracks matches too much."""
    match = re.match(r"(?:ab?c)*+", "aca")
    return match is None or match.span() != (0, 2)


def gh101955() -> bool:
    """Every 3.11, 3.12 before 3.12.8, 3.13.0: a possessive repeat over captures can raise."""
    try:
        re.match(r"((x)|y|z)*+", "xyz")
    except SystemError:
        return True
    return False


# The prefix token after its group name: the loop that the cases below replace.
PREFIX_LOOP = netfilter.free_prefix.pattern.removeprefix("(?P<prefix>")
AHEAD = netfilter.BODY_START[1:]


@pytest.mark.parametrize(
    ("loop", "misbehaves"),
    [
        # logpath's own prefix up to this change: read nothing on Debian 12's Python 3.11.2
        pytest.param(rf"[^I]*+(?:I(?!{AHEAD})[^I]*+)*+)(?=IN=)", gh106052, id="gh-106052"),
        # raises SystemError on the second known line, a prefix holding "IN="
        pytest.param(rf"((I(?!{AHEAD}))|[^I])*+)(?=IN=)", gh101955, id="gh-101955"),
        # on every Python: a pattern that stops at the first "IN=", as a broken engine might
        pytest.param(r".*?)(?=IN=)", lambda: True, id="first-IN="),
    ],
)
def test_a_python_whose_re_misreads_the_grammar_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, loop: str, misbehaves: Callable[[], bool]
) -> None:
    if not misbehaves():
        pytest.skip(f"Python {platform.python_version()}'s re reads this pattern right")

    def compile_misbehaving(expr: pp.ParserElement, **options: Any) -> FastPattern:
        fast = compile_grammar(expr, **options)
        assert PREFIX_LOOP in fast.pattern
        return replace(fast, pattern=fast.pattern.replace(PREFIX_LOOP, loop))

    store = tmp_path / "store"
    monkeypatch.setattr(parse, "compile_grammar", compile_misbehaving)
    parse.header_kinds.cache_clear()
    parse.syslog_pattern.cache_clear()
    try:
        result = runner.invoke(app, ["ingest", str(SEED), "--store", str(store), "--year", "2016"])
    finally:
        monkeypatch.undo()
        parse.header_kinds.cache_clear()
        parse.syslog_pattern.cache_clear()
    assert result.exit_code == 1, result.output
    message = result.stderr
    assert message.startswith(f"logpath: Python {platform.python_version()} (")
    assert "cannot run logpath: its re module reads netfilter lines otherwise" in message
    assert "On the known line '" in message
    assert "Install logpath with another Python 3.11 or newer" in message
    assert "Traceback" not in message
    # nothing was stored, and the same command on this Python's re as it is stores every hop
    listed = runner.invoke(app, ["hops", "--store", str(store), "--json"])
    assert listed.exit_code != 0 or json.loads(listed.stdout) == []
    result = runner.invoke(
        app, ["ingest", str(SEED), "--store", str(store), "--year", "2016", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["hops"] == 27


def test_the_check_passes_on_this_python_and_the_known_lines_are_real() -> None:
    samples = Path(__file__).resolve().parent.parent / "samples"
    real = {
        line.rstrip()
        for name in (
            "seed/syslog",
            "formats/prefix-pitfalls.log",
            "formats/bridge-br-netfilter.log",
        )
        for path in [samples / name]
        for line in path.read_text().splitlines()
    }
    assert set(parse.KNOWN_LINES) <= real
    parse.check_regex_engine(parse.header_kinds())  # raises on a Python that misreads them


runner = CliRunner()
