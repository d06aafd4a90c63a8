"""Compile a pyparsing grammar into one regular expression with the same meaning.

pyparsing parses about 5,000 netfilter lines a second; Python's ``re`` matches one pattern over a
line a hundred times faster. Rather than write that pattern by hand (and let it drift from the
grammar), we derive it from the grammar's own elements:

- a ``Regex`` leaf becomes an atomic group ``(?>...)``: pyparsing never backtracks into a token
  once it matched, and neither does an atomic group;
- ``And`` is concatenation, ``MatchFirst`` an atomic alternation ``(?>a|b)`` (the first
  alternative that matches wins and is kept, as in a PEG);
- ``Opt``, ``ZeroOrMore`` and ``OneOrMore`` are greedy quantifiers in an atomic group,
  ``(?>(?:x)?)``, ``(?>(?:x)*)``, ``(?>(?:x)+)``: as many repetitions as match, never given back.
  That is what the possessive ``?+``, ``*+``, ``++`` mean, but Python 3.11.0-3.11.4 match nested
  possessive quantifiers wrongly (CPython gh-106052, fixed in 3.11.5 by compiling them to this
  very form), so neither the translation nor the grammar's tokens use them;
- named groups that occur more than once (``sport`` in the TCP and the UDP branch) are renamed
  ``sport__1``, ``sport__2`` ...; ``FastPattern.fields`` folds them back.

Anything else (parse actions, Forward, Or) is refused with CompileError, so a grammar change that
the fast path cannot follow fails loudly in the tests instead of silently diverging.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pyparsing as pp

_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>")


class CompileError(Exception):
    """The grammar uses an element the fast path cannot translate."""


@dataclass
class _Namer:
    """Gives every named group a unique regex name and remembers the field it stands for."""

    seen: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def rename(self, pattern: str) -> str:
        return _GROUP.sub(self._unique, pattern)

    def _unique(self, match: re.Match[str]) -> str:
        name = match.group(1)
        count = self.seen.get(name, 0) + 1
        self.seen[name] = count
        alias = name if count == 1 else f"{name}__{count}"
        self.aliases[alias] = name
        return f"(?P<{alias}>"


def _translate(expr: pp.ParserElement, namer: _Namer, end: str = r"\Z") -> str:
    if expr.parseAction:
        raise CompileError(f"parse actions cannot be compiled: {expr}")
    if isinstance(expr, pp.Regex):
        return f"(?>{namer.rename(str(expr.pattern))})"
    if isinstance(expr, pp.Literal):
        return re.escape(expr.match)
    if isinstance(expr, pp.StringEnd):
        return end
    if isinstance(expr, pp.Empty):
        return ""
    if isinstance(expr, pp.And):
        return "".join(_translate(e, namer, end) for e in expr.exprs)
    if isinstance(expr, pp.MatchFirst):
        return "(?>" + "|".join(_translate(e, namer, end) for e in expr.exprs) + ")"
    if isinstance(expr, pp.Opt):
        return f"(?>(?:{_translate(expr.expr, namer, end)})?)"
    if isinstance(expr, pp.ZeroOrMore):
        return f"(?>(?:{_translate(expr.expr, namer, end)})*)"
    if isinstance(expr, pp.OneOrMore):
        return f"(?>(?:{_translate(expr.expr, namer, end)})+)"
    if isinstance(expr, (pp.Suppress, pp.Group, pp.Combine)):
        return _translate(expr.expr, namer, end)
    raise CompileError(f"cannot compile {type(expr).__name__}: {expr}")


@dataclass(frozen=True)
class FastPattern:
    """A grammar compiled to one regular expression."""

    pattern: str  # the regular expression's text
    aliases: dict[str, str]  # regex group name -> field name
    grammar: pp.ParserElement = field(compare=False, repr=False)  # what it was compiled from

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The compiled expression; compiled on first use (a whole-grammar one takes ~50 ms)."""
        return re.compile(self.pattern)

    @property
    def field_names(self) -> list[str]:
        """Every field the grammar can produce, each once, in grammar order."""
        return list(dict.fromkeys(self.aliases.values()))

    def fields(self, match: re.Match[str]) -> dict[str, str]:
        """The fields of one match, as the grammar would give them (absent fields left out)."""
        found: dict[str, str] = {}
        for alias, value in match.groupdict().items():
            if value is not None:
                found.setdefault(self.aliases[alias], value)
        return found

    def misreading(self, line: str) -> str | None:
        """What this pattern reads in ``line`` otherwise than the grammar (None: the same).

        The translation has the grammar's meaning only where the running ``re`` implements atomic
        groups and lookarounds as documented; Python releases have had bugs there (see the module
        docstring), and this is how a caller finds out. ``line`` is given as the grammar is given
        it, without trailing white space. Both must give the same fields or both refuse the line.
        """
        try:
            match = self.regex.match(line)
        except Exception as error:  # an engine bug can also raise (SystemError, CPython gh-101955)
            return f"the pattern fails with {type(error).__name__} ({error})"
        fast = None if match is None else self.fields(match)
        try:
            result = self.grammar.parse_string(line, parse_all=True)
        except pp.ParseBaseException:
            slow = None
        else:
            slow = {k: v for k, v in result.as_dict().items() if isinstance(v, str)}
        if fast == slow:
            return None
        if fast is None:
            return "the pattern does not match it, the grammar accepts it"
        if slow is None:
            return "the pattern matches it, the grammar refuses it"
        name = min(k for k in fast.keys() | slow.keys() if fast.get(k) != slow.get(k))
        return f"the pattern reads {name}={fast.get(name)!r}, the grammar {slow.get(name)!r}"

    def group_indexes(self) -> Iterator[tuple[str, list[int]]]:
        """For each field, the group numbers that can hold it (used to build columns quickly)."""
        by_field: dict[str, list[int]] = {}
        for alias, index in self.regex.groupindex.items():
            by_field.setdefault(self.aliases[alias], []).append(index)
        yield from by_field.items()


def compile_grammar(expr: pp.ParserElement, *, head: str = "", end: str = r"\Z") -> FastPattern:
    r"""Translate ``expr`` into a regex.

    Args:
        expr: the grammar.
        head: a regex put in front (e.g. a line header).
        end: what the grammar's StringEnd becomes; r" *\Z" lets a pattern match a line with its
            trailing spaces still on, where the grammar is given the line without them.
    """
    namer = _Namer()
    pattern = namer.rename(head) + _translate(expr, namer, end)
    return FastPattern(pattern, dict(namer.aliases), expr)
