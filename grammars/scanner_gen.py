"""Translate the fast path's regexes (``grammars.fastpath``) into re2c source: a C DFA per line shape.

The compiled grammar is one Python regex per line shape; Python's ``re`` matches it at ~150,000
lines a second. re2c turns the same regex into a deterministic automaton in C that records where
each named group starts and ends (a tag ``@s3``/``@e3`` per group), one pass over each line with
no backtracking. The regex is read with ``re._parser`` (the tree ``re.compile`` itself builds), so
nothing is written twice.

A DFA has no atomic groups and no lookarounds. The translation keeps each one's meaning or makes
the scanner take fewer lines (a line it does not take goes to the regex, so narrowing is safe):

- an atomic group ``(?>x)`` becomes ``(x)``: re2c's tags follow the leftmost greedy path, the one
  a backtracking engine tries first, which is the one the atomic group keeps wherever the line
  matches at all (the equality tests, tests/test_scanner.py, are the arbiter);
- a lookahead ``(?=lit)`` is dropped when what follows it starts with ``lit`` anyway;
- a negative lookahead ``(?!x)`` is dropped when no character ``x`` can start with can follow it
  (``URG(?![A-Z=])`` is always followed by a space or the end);
- the prefix's unrolled loop ``[^I]*(?:I(?!N=...)[^I]*)*`` (skip to the first ``IN=`` that starts
  a body) becomes "text without ``IN=``": a prefix holding ``IN=`` itself goes to the regex;
- lines are matched as bytes of UTF-8: a class such as ``\\d`` keeps its ASCII members only (a
  line with another script's digits goes to the regex), a negated class of ASCII characters takes
  every byte of a multi-byte character, as it takes the character.

Anything else (lazy quantifiers, backreferences, flags, non-ASCII literals) raises CompileError
naming the construct.
"""

from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .fastpath import CompileError, FastPattern

END = -1  # "the end of the line" in a set of first characters
NEWLINE = 10  # the end of every line the scanner reads (the wrapper guarantees it)
ALL_BYTES = frozenset(range(256)) - {NEWLINE}
DIGITS = frozenset(range(0x30, 0x3A))

Node = tuple[Any, Any]  # one item of a re._parser tree: (opcode, argument)


@dataclass(frozen=True)
class _Follow:
    """What may come after the node being translated."""

    first: frozenset[int]  # the bytes (or END) that can come next
    literal: str  # text that surely comes next ("" if none is sure)


def _chars(items: Sequence[Node]) -> frozenset[int]:
    """The bytes a class (``IN``) or a single-character node matches."""
    chosen: set[int] = set()
    negate = False
    for op, av in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            chosen.add(_ascii(av))
        elif op is sre.RANGE:
            chosen.update(range(_ascii(av[0]), _ascii(av[1]) + 1))
        elif op is sre.CATEGORY and av is sre.CATEGORY_DIGIT:
            chosen.update(DIGITS)
        else:
            raise CompileError(f"cannot translate the class member {op} {av}")
    return ALL_BYTES - chosen if negate else frozenset(chosen) - {NEWLINE}


def _ascii(code: int) -> int:
    if code > 0x7F:
        raise CompileError(f"cannot translate the non-ASCII character {chr(code)!r}")
    return code


def _single(op: Any, av: Any) -> frozenset[int] | None:
    """The bytes a one-character node matches (None: not a one-character node)."""
    if op is sre.LITERAL:
        return frozenset({_ascii(av)})
    if op is sre.NOT_LITERAL:
        return ALL_BYTES - {_ascii(av)}
    if op is sre.IN:
        return _chars(av)
    if op is sre.ANY:
        return ALL_BYTES
    return None


def _first(items: Sequence[Node], follow: frozenset[int]) -> frozenset[int]:
    """The bytes (or END) a sequence can start with, ``follow`` where it can be empty."""
    found: set[int] = set()
    for op, av in items:
        first, empty = _first_of(op, av)
        found |= first
        if not empty:
            return frozenset(found)
    return frozenset(found | follow)


def _first_of(op: Any, av: Any) -> tuple[frozenset[int], bool]:
    """(the bytes a node can start with, whether it can match the empty string)."""
    single = _single(op, av)
    if single is not None:
        return single, False
    if op in (sre.SUBPATTERN, sre.ATOMIC_GROUP):
        body = av[-1] if op is sre.SUBPATTERN else av
        return _first_seq(body)
    if op is sre.MAX_REPEAT:
        first, empty = _first_seq(av[2])
        return first, empty or av[0] == 0
    if op is sre.BRANCH:
        parts = [_first_seq(alt) for alt in av[1]]
        return frozenset().union(*(p[0] for p in parts)), any(p[1] for p in parts)
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return frozenset(), True
    if op is sre.AT:
        return (
            (frozenset({END}), True)
            if av in (sre.AT_END, sre.AT_END_STRING)
            else (
                frozenset(),
                True,
            )
        )
    raise CompileError(f"cannot translate {op}")


def _first_seq(items: Sequence[Node]) -> tuple[frozenset[int], bool]:
    marker = frozenset({-2})
    first = _first(items, marker)
    return first - marker, -2 in first


def _literal(items: Sequence[Node]) -> str:
    """The text a sequence surely starts with."""
    text = ""
    for op, av in items:
        if op is sre.LITERAL:
            text += chr(av)
        elif op in (sre.SUBPATTERN, sre.ATOMIC_GROUP):
            body = av[-1] if op is sre.SUBPATTERN else av
            inner = _literal(body)
            text += inner
            if not _all_literal(body):
                return text
        else:
            return text
    return text


def _all_literal(items: Sequence[Node]) -> bool:
    return all(
        op is sre.LITERAL
        or (op is sre.SUBPATTERN and _all_literal(av[-1]))
        or (op is sre.ATOMIC_GROUP and _all_literal(av))
        for op, av in items
    )


def _class(chars: frozenset[int]) -> str:
    """A set of bytes as an re2c class, in ranges."""
    if not chars:
        raise CompileError("an empty character class")
    codes = sorted(chars)
    parts: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], None]:
        if code is not None and code == prev + 1:
            prev = code
            continue
        parts.append(f"\\x{start:02X}" if start == prev else f"\\x{start:02X}-\\x{prev:02X}")
        if code is not None:
            start = prev = code
    return "[" + "".join(parts) + "]"


def _string(text: str) -> str:
    return '"' + "".join(f"\\x{_ascii(ord(c)):02X}" for c in text) + '"'


def _without_word(word: str) -> str:
    """Any text of the line that does not contain ``word`` (distinct characters, two or more).

    The automaton that looks for ``word`` is in state j after its first j characters; written as
    a regex: leave state 0 with word[0], loop back to state 1 with word[0] from any state, step on
    with the next character, and return to state 0 with any other character.
    """
    if len(word) < 2 or len(set(word)) != len(word):
        raise CompileError(f"cannot exclude the word {word!r}: its characters repeat")
    w = [ord(_ascii_char(c)) for c in word]
    back = "|".join(_string(word[1:j] + word[0]) for j in range(1, len(word) - 1))
    loop = f"({_string(word[0])}|{back})*"
    exits = "|".join(
        _string(word[1:j]) + _class(ALL_BYTES - {w[0], w[j]})
        if j > 1
        else _class(ALL_BYTES - {w[0], w[1]})
        for j in range(1, len(word))
    )
    tail = "|".join(['""', *(_string(word[1:j]) for j in range(2, len(word)))])
    head = _string(word[0])
    return f"({_class(ALL_BYTES - {w[0]})}|{head}{loop}({exits}))*({head}{loop}({tail}))?"


def _ascii_char(c: str) -> str:
    _ascii(ord(c))
    return c


class _Translator:
    """Walks one regex tree and writes its re2c text, one tag pair per named group."""

    def __init__(self, tag: str, *, tags: bool = True) -> None:
        self.tag = tag  # prefix of this pattern's tag names
        self.tags = tags  # False: groups are only grouping (a header picks the kind, no field)
        self.groups: list[int] = []  # group numbers met, in order

    def sequence(self, items: Sequence[Node], follow: _Follow) -> str:
        out: list[str] = []
        for index, (op, av) in enumerate(items):
            rest = items[index + 1 :]
            idiom = self._unrolled_prefix(items[index:])
            if idiom is not None:
                if rest[1:]:
                    raise CompileError("the unrolled prefix loop must end its group")
                return " ".join([*out, idiom])
            after = _Follow(_first(rest, follow.first), _literal(rest) or follow.literal)
            if not rest:
                after = follow
            elif _all_literal(rest):
                after = _Follow(after.first, _literal(rest) + follow.literal)
            out.append(self.node(op, av, after))
        return " ".join(part for part in out if part) or '""'

    def node(self, op: Any, av: Any, follow: _Follow) -> str:
        single = _single(op, av)
        if single is not None:
            return _string(chr(av)) if op is sre.LITERAL else _class(single)
        if op is sre.SUBPATTERN:
            group, add_flags, del_flags, body = av
            if add_flags or del_flags:
                raise CompileError(f"cannot translate inline flags in group {group}")
            inner = f"({self.sequence(body, follow)})"
            if group is None or not self.tags:
                return inner
            self.groups.append(group)
            return f"@{self.tag}s{group} {inner} @{self.tag}e{group}"
        if op is sre.ATOMIC_GROUP:
            return f"({self.sequence(av, follow)})"
        if op is sre.BRANCH:
            return "(" + " | ".join(self.sequence(alt, follow) for alt in av[1]) + ")"
        if op is sre.MAX_REPEAT:
            return self._repeat(av, follow)
        if op is sre.AT and av is sre.AT_END_STRING:
            return '"\\n"'
        if op is sre.ASSERT and av[0] == 1:
            wanted = _literal(av[1])
            if _all_literal(av[1]) and follow.literal.startswith(wanted):
                return ""  # what follows starts with it anyway
            raise CompileError(f"cannot translate the lookahead (?={wanted}...)")
        if op is sre.ASSERT_NOT and av[0] == 1:
            first, empty = _first_seq(av[1])
            if not empty and not first & follow.first:
                return ""  # nothing that can follow starts as the lookahead does
            raise CompileError("cannot translate a negative lookahead that may match")
        raise CompileError(f"cannot translate {op} {av}")

    def _repeat(self, av: Any, follow: _Follow) -> str:
        low, high, body = av
        first, _ = _first_seq(body)
        inner = f"({self.sequence(body, _Follow(first | follow.first, ''))})"
        if high is sre.MAXREPEAT:
            return f"{inner}{{{low},}}" if low > 1 else inner + ("*" if low == 0 else "+")
        return f"{inner}{{{low},{high}}}" if (low, high) != (0, 1) else inner + "?"

    def _unrolled_prefix(self, items: Sequence[Node]) -> str | None:
        """``[^c]*(?:c(?!w...)[^c]*)*``: text in which c never starts ``c + w``."""
        if len(items) < 2:
            return None
        (op1, av1), (op2, av2) = items[0], items[1]
        if op1 is not sre.MAX_REPEAT or op2 is not sre.MAX_REPEAT:
            return None
        skip, loop = av1[2], av2[2]
        if len(skip) != 1 or skip[0][0] is not sre.NOT_LITERAL or av1[:2] != (0, sre.MAXREPEAT):
            return None
        if len(loop) == 1 and loop[0][0] is sre.SUBPATTERN and loop[0][1][0] is None:
            loop = loop[0][1][3]
        c = skip[0][1]
        if (
            len(loop) != 3
            or loop[0] != (sre.LITERAL, c)
            or loop[1][0] is not sre.ASSERT_NOT
            or [repr(node) for node in loop[2:]] != [repr(items[0])]
        ):
            return None
        word = chr(c) + _literal(loop[1][1][1])
        return _without_word(word)


@dataclass(frozen=True)
class Scanner:
    """One pattern translated: its re2c regex and the fields its tags stand for."""

    name: str  # the C function's name (lp_scan_<name>)
    regex: str  # re2c regular expression
    groups: tuple[tuple[int, str], ...]  # (group number, field name) in group order


def _tree(text: str) -> list[Node]:
    tree = sre_parse.parse(text)
    if tree.state.flags & ~sre.SRE_FLAG_UNICODE:
        raise CompileError(f"cannot translate the flags {tree.state.flags:#x}")
    return list(tree)


def translate(name: str, pattern: FastPattern, *, anchored: bool = True) -> Scanner:
    """Translate one compiled pattern, which must match the whole line (``anchored``) or which
    matches its start (a header: anything may follow)."""
    translator = _Translator(f"{name}_")
    follow = _Follow(frozenset({END}) if anchored else ALL_BYTES | {END}, "")
    regex = translator.sequence(_tree(pattern.pattern), follow)
    numbers = {index: alias for alias, index in re.compile(pattern.pattern).groupindex.items()}
    groups = tuple((g, pattern.aliases[numbers[g]]) for g in sorted(translator.groups))
    return Scanner(name, regex, groups)


HEAD = """\
/* Generated by grammars/scanner_gen.py from logpath's grammar: do not edit. */
/* (python -m logpath._scanner.generate writes it; tests/test_scanner.py checks it is current.) */
"""

# A line shape: the whole rest of the line must match (up to its newline); fills the spans.
FUNCTION = """
static int lp_scan_{name}(const unsigned char *YYCURSOR, const unsigned char **span)
{{
    const unsigned char *YYMARKER = YYCURSOR;
    const unsigned char {tags};
    /*!stags:re2c:{name} format = "const unsigned char *@@ = NULL;\\n"; */
    (void)YYMARKER;
    /*!re2c:{name}
        re2c:define:YYCTYPE = "unsigned char";
        re2c:yyfill:enable = 0;
        re2c:sentinel = 10;
        re2c:flags:tags = 1;
        {regex} {{
{fold}
            return 1;
        }}
        * {{ return 0; }}
    */
}}
"""

# A header: a prefix of the line; fills its spans and returns where the header ends (or NULL).
HEADER = """
static const unsigned char *lp_header_{name}(const unsigned char *YYCURSOR, const unsigned char **span)
{{
    const unsigned char *YYMARKER = YYCURSOR;
    const unsigned char {tags};
    /*!stags:re2c:{name} format = "const unsigned char *@@ = NULL;\\n"; */
    (void)YYMARKER;
    /*!re2c:{name}
        re2c:define:YYCTYPE = "unsigned char";
        re2c:yyfill:enable = 0;
        re2c:sentinel = 10;
        re2c:flags:tags = 1;
        {regex} {{
{fold}
            return YYCURSOR;
        }}
        * {{ return NULL; }}
    */
}}
"""


def _fold(scanner: Scanner, fields: Sequence[str]) -> str:
    """C that puts each field's first non-empty group in span[2f], span[2f+1] (as coalesce)."""
    lines: list[str] = []
    by_field: dict[str, list[int]] = {}
    for group, name in scanner.groups:
        by_field.setdefault(name, []).append(group)
    for name, groups in by_field.items():
        f = fields.index(name)
        tests = []
        for g in groups:
            s, e = f"{scanner.name}_s{g}", f"{scanner.name}_e{g}"
            tests.append(
                f"if ({s} && {e} > {s}) {{ span[{2 * f}] = {s}; span[{2 * f + 1}] = {e}; }}"
            )
        lines.append("            " + " else ".join(tests))
    return "\n".join(lines) or "            (void)span;"


def _function(template: str, scanner: Scanner, fields: Sequence[str]) -> str:
    tags = ", ".join(
        f"*{scanner.name}_{side}{g} = NULL" for g, _ in scanner.groups for side in "se"
    )
    return template.format(
        name=scanner.name,
        tags=tags or "*unused = NULL; (void)unused",
        regex=scanner.regex,
        fold=_fold(scanner, fields),
    )


def emit(
    headers: Sequence[FastPattern],
    bodies: Sequence[FastPattern],
    bare: Sequence[FastPattern],
    fields: Sequence[str],
) -> str:
    """The re2c source of a scanner that picks a line's kind and shape as ``logpath.parse`` does.

    A line's kind is the first header that fits its start (none: a bare message); what follows
    the header must then match one of ``bodies`` (tried in order), a bare line one of ``bare``.
    The body is generated once, not once per header: the DFA is a tenth of the size.

    Args:
        headers: each header kind's pattern, in the order the grammar tries them.
        bodies: the line shapes after a header, each matching up to the end of the line.
        bare: the line shapes of a message without a header.
        fields: every field name, in the order of the columns the scanner fills.
    """
    out = [HEAD, f"#define LP_FIELDS {len(fields)}\n"]
    names = ", ".join(f'"{name}"' for name in fields)
    out.append(f"static const char *const lp_field_names[LP_FIELDS] = {{{names}}};\n")
    for index, header in enumerate(headers):
        out.append(_function(HEADER, translate(f"h{index}", header, anchored=False), fields))
    for prefix, shapes in (("body", bodies), ("bare", bare)):
        for index, shape in enumerate(shapes):
            out.append(_function(FUNCTION, translate(f"{prefix}{index}", shape), fields))
    tried = " || ".join(f"lp_scan_body{i}(rest, span)" for i in range(len(bodies)))
    tried_bare = " || ".join(f"lp_scan_bare{i}(line, span)" for i in range(len(bare)))
    dispatch = [
        f"    if ((rest = lp_header_h{i}(line, span))) return ({tried}) ? {i + 1} : 0;"
        for i in range(len(headers))
    ]
    out.append(
        "\n/* The line's kind (1-based; the last: bare) if one of its shapes takes it, else 0. */\n"
        "static int lp_scan_line(const unsigned char *line, const unsigned char **span)\n{\n"
        "    const unsigned char *rest;\n"
        + "\n".join(dispatch)
        + f"\n    return ({tried_bare}) ? {len(headers) + 1} : 0;\n}}\n"
    )
    return "".join(out)
