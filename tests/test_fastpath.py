"""Property test: the compiled fast path and the pyparsing grammar read every line the same way."""

from __future__ import annotations

import pyparsing as pp
import pytest
from hypothesis import HealthCheck, given, settings
from logpath.grammars import netfilter
from logpath.grammars.fastpath import CompileError, compile_grammar
from strategies import netfilter_line

from logpath.parse import fast_parse_line, parse_line


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
