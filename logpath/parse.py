"""Parse stage: numbered text lines in, raw hop fields and rejected-line records out.

Every line ends up in exactly one place: a hop (the fields as the strings on the line, the decimal
numbers read as int64 (``netfilter.is_integer_field``), typed further by ``logpath.hops``), a
``Rejected`` record (it looked like a netfilter line but the grammar says
where it is wrong), or a skip count with a reason.

Speed: the grammar (``logpath.grammars``) is the one definition of a line. Its compiled form
(``grammars.fastpath``) matches most lines: first the common IPv4 shape (few groups, fast), then
the whole grammar as one regex. Only lines neither regex matches go through pyparsing, which then
says why the line is wrong.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyparsing as pp

from logpath.errors import UnsupportedPythonError
from logpath.grammars import headers, netfilter, trace
from logpath.grammars.fastpath import FastPattern, compile_grammar
from logpath.lines import USER_SPACE_RECORD
from logpath.netfilter import integers, is_integer_field
from logpath.nftrace import TRACE_FIELDS, TraceReader, is_trace_line

if TYPE_CHECKING:
    from logpath.lines import Block

SKIP_NOT_NETFILTER = "not a netfilter line"
SKIP_BLANK = "blank line"
SKIP_TOO_LONG = "line longer than 64 KiB"
SKIP_USER_SPACE = "journal record of a user-space program, not the kernel"

MAX_LINE = 65536  # nf_log lines are < 1 KiB (§10.9); anything this long is not one of them


@dataclass(frozen=True)
class Rejected:
    """A line that looked like a netfilter line but does not parse."""

    source: str  # the file it came from
    lineno: int  # 1-based line number in that file
    column: int  # 1-based column where the grammar gave up, or of the value out of range
    expected: str  # what was expected there, e.g. "SRC=<IPv4 address> DST=<...>", "a port 0-65535"
    found: str  # the text found there (a few characters)
    text: str  # the whole line


@dataclass
class ParsedLines:
    """The result of parsing a batch of lines."""

    # one array per field (header and body), one item per hop: its text, an int64 for a decimal
    # number (``netfilter.is_integer_field``)
    fields: dict[str, pa.Array]
    lineno: pa.Int64Array  # the line number of each hop
    raw: pa.StringArray  # each hop's line as read
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    lines: int = 0

    @property
    def hops(self) -> int:
        return len(self.lineno)

    def move_to_rejected(self, rejected: dict[int, Rejected]) -> pa.Array:
        """Take the hops at these indexes out (their lines are rejected after all, for a value
        the kernel cannot print) and record them as rejected, every line still in one place;
        return which hops were kept."""
        keep = pa.array([i not in rejected for i in range(self.hops)], pa.bool_())
        self.fields = {name: values.filter(keep) for name, values in self.fields.items()}
        self.lineno, self.raw = self.lineno.filter(keep), self.raw.filter(keep)
        self.rejected.extend(rejected.values())
        self.rejected.sort(key=lambda r: r.lineno)
        return keep


def _line_grammar(body: pp.ParserElement, kind: pp.ParserElement | None) -> pp.ParserElement:
    line = body if kind is None else kind + pp.Opt(headers.repeated) + body
    line = pp.And([line])
    line.leave_whitespace(recursive=True)
    return line


LINE = pp.Opt(headers.header) + netfilter.body
LINE.leave_whitespace(recursive=True)
LINE.set_name("netfilter log line")


class _Furthest:
    """Where the grammar got furthest before failing, and the tokens that failed there.

    pyparsing reports the last failure, not the furthest: a token failing inside an optional
    part (a bad TOS= in the IPv4 header) makes the part match nothing, and the error then says
    "end of line" where that part began (at SRC=). The furthest failure is where the line stops
    being a netfilter line (the usual PEG error position); every token reports its failures here.
    """

    def __init__(self) -> None:
        self.loc = -1
        self.tokens: dict[int, pp.ParserElement] = {}  # by id: pyparsing's == compares slowly

    def reset(self) -> None:
        self.loc, self.tokens = -1, {}

    def __call__(self, text: str, loc: int, token: pp.ParserElement, error: Exception) -> None:
        if loc > self.loc:
            self.loc, self.tokens = loc, {id(token): token}
        elif loc == self.loc:
            self.tokens[id(token)] = token

    def expected(self, text: str) -> str:
        """The tokens that failed there, those whose key is the text found there if any; of a
        long list the first few and the last (usually "end of line")."""
        found = text[self.loc :].lstrip(" ")
        labels = list(dict.fromkeys(t.name for t in self.tokens.values()))
        keyed = [label for label in labels if _key(label) and found.startswith(_key(label))]
        if not keyed and len(labels) > 5:
            labels = [*labels[:3], "...", labels[-1]]
        return " or ".join(keyed or labels)


def _key(label: str) -> str:
    """The literal text a token's label starts with ("SRC=" of "SRC=<IPv4 address> ...")."""
    return label.split("<", 1)[0].strip()


def _leaves(expr: pp.ParserElement) -> Iterator[pp.ParserElement]:
    inner = getattr(expr, "exprs", None) or [e for e in [getattr(expr, "expr", None)] if e]
    if not inner:
        yield expr
    for sub in inner:
        yield from _leaves(sub)


_FURTHEST = _Furthest()
for _token in _leaves(LINE):
    _token.set_fail_action(_FURTHEST)
_TRACE_FURTHEST = _Furthest()
for _token in _leaves(trace.line):
    _token.set_fail_action(_TRACE_FURTHEST)


@dataclass(frozen=True)
class HeaderKind:
    """One header format with the line patterns compiled for it (None: a bare message)."""

    header: re.Pattern[str] | None  # the header alone, to pick the kind as the grammar would
    common: FastPattern  # header + the common IPv4 shape
    whole: FastPattern  # header + the whole body grammar


@cache
def header_kinds() -> tuple[HeaderKind, ...]:
    """Every header kind in grammar order, then the bare message (compiled once per process)."""
    kinds = [
        HeaderKind(
            re.compile(kind.pattern),
            compile_grammar(_line_grammar(netfilter.common_body, kind)),
            compile_grammar(_line_grammar(netfilter.body, kind)),
        )
        for kind in headers.KINDS
    ]
    bare = HeaderKind(
        None,
        compile_grammar(_line_grammar(netfilter.common_body, None)),
        compile_grammar(_line_grammar(netfilter.body, None)),
    )
    check_regex_engine((*kinds, bare))
    return (*kinds, bare)


# Real lines (samples/seed/syslog; samples/formats/prefix-pitfalls.log, bridge-br-netfilter.log)
# that the compiled patterns must read as the grammar does: the seed's first line, a prefix holding
# "IN=" itself, and an ICMP error quoting a packet (the whole grammar). Python 3.11.2's re read the
# prefix of every line wrongly (CPython gh-106052, with the possessive quantifiers logpath used
# then): a Python with such a bug is refused, not trusted with a store.
KNOWN_LINES = (
    "Jan 14 10:08:12 pc-baim kernel: [830038.910054] [TonyBai]-RawPrerouting:IN=docker0 "
    "OUT= PHYSIN=vethd9f6465 MAC=02:42:ac:11:00:03:02:42:ac:11:00:02:08:00 "
    "SRC=172.17.0.2 DST=172.17.0.3 LEN=60 TOS=0x10 PREC=0x00 TTL=64 ID=24284 DF "
    "PROTO=TCP SPT=43292 DPT=12580 WINDOW=29200 RES=0x00 SYN URGP=0",
    "[  391.998959] fmtN has=eq IN=fake OUT=x: IN=ra OUT= "
    "MAC=02:00:00:0a:00:01:02:00:00:0a:00:10:08:00 SRC=198.51.100.10 DST=203.0.113.20 "
    "LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=18268 DF PROTO=TCP SPT=39714 DPT=9443 "
    "WINDOW=64480 RES=0x00 SYN URGP=0",
    "[  376.800476] fmtBR raw-PRE: IN=br0 OUT= PHYSIN=p2 "
    "MAC=02:00:00:0c:00:11:02:00:00:0c:00:12:08:00 SRC=192.0.2.12 DST=192.0.2.11 LEN=59 "
    "TOS=0x00 PREC=0xC0 TTL=64 ID=46799 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.0.2.11 "
    "DST=192.0.2.12 LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=830 DF PROTO=UDP SPT=41000 "
    "DPT=5000 LEN=11 ]",
)


def check_regex_engine(kinds: tuple[HeaderKind, ...]) -> None:
    """Raise UnsupportedPythonError unless every pattern reads the known lines as the grammar.

    Falling back to pyparsing would not help: its tokens are matched by the same ``re``, a
    hundred times slower.
    """
    for line in KNOWN_LINES:
        index = kind_of(line, kinds)
        patterns = [kinds[index].common, kinds[index].whole]
        if index == 0:
            patterns.insert(0, syslog_pattern())
        problems = [p for p in (pattern.misreading(line) for pattern in patterns) if p]
        if not problems and kinds[index].whole.regex.match(line) is None:
            problems.append("both the pattern and the grammar refuse it")
        if problems:
            shown = line if len(line) <= 80 else f"{line[:80]}..."
            raise UnsupportedPythonError(
                f"Python {platform.python_version()} ({sys.executable}) cannot run logpath: its "
                "re module reads netfilter lines otherwise than logpath's grammar, so every line "
                f"would be misread. On the known line {shown!r}: {problems[0]}. Install logpath "
                "with another Python 3.11 or newer, and report this Python version."
            )


@cache
def all_fields() -> tuple[str, ...]:
    """Every field a line can produce, header fields first, then a trace visit's own."""
    names: dict[str, None] = {}
    for kind in header_kinds():
        names.update(dict.fromkeys(kind.whole.field_names))
    names.update(dict.fromkeys(TRACE_FIELDS))
    return tuple(names)


def kind_of(line: str, kinds: tuple[HeaderKind, ...]) -> int:
    """The index of the first header kind that fits the start of the line (last: bare)."""
    for index, kind in enumerate(kinds):
        if kind.header is None or kind.header.match(line):
            return index
    return len(kinds) - 1


def message_end(line: str) -> int:
    """Where the message ends: trailing space dropped, and rsyslog's "repeated" bracket too."""
    text = line.rstrip()
    if text.endswith("]") and "message repeated " in text[:120]:
        text = text[:-1].rstrip()
    return len(text)


def parse_line(text: str) -> dict[str, str]:
    """Parse one whole line with the pyparsing grammar; raises pp.ParseException if it is wrong."""
    result = LINE.parse_string(text[: message_end(text)], parse_all=True)
    return {k: v for k, v in result.as_dict().items() if isinstance(v, str)}


def fast_parse_line(text: str) -> dict[str, str] | None:
    """Parse one line with the compiled regexes; None where neither matches."""
    end = message_end(text)
    kinds = header_kinds()
    kind = kinds[kind_of(text, kinds)]
    for pattern in (kind.common, kind.whole):
        match = pattern.regex.match(text, 0, end)
        if match:
            fields: dict[str, str] = pattern.fields(match)
            return fields
    return None


def skip_reason(line: str) -> str:
    """Why a line without IN=/OUT= (and no trace line) is passed over."""
    if not line.strip():
        return SKIP_BLANK
    if line == USER_SPACE_RECORD:
        return SKIP_USER_SPACE
    return SKIP_NOT_NETFILTER


def is_candidate(line: str) -> bool:
    """Cheap test for "might be a netfilter line": every format has IN= and OUT= in it."""
    return "OUT=" in line and "IN=" in line


def reject(source: str, lineno: int, text: str) -> Rejected:
    """Ask the grammar why a line does not parse and record its answer."""
    _FURTHEST.reset()  # one line's failures at a time
    try:
        parse_line(text)
    except pp.ParseBaseException as error:
        loc, expected = error.loc, str(error.msg).removeprefix("Expected ")
        if _FURTHEST.loc >= loc:
            loc, expected = _FURTHEST.loc, _FURTHEST.expected(text)
        # tokens carry their leading space; point at the word, not at the space before it
        column = loc + 1 + (text[loc : loc + 1] == " ")
        found = text[loc:].lstrip(" ").split(" ")[0][:40]
        return Rejected(source, lineno, column, expected, found or "end of line", text)
    raise AssertionError(f"the fast path refused a line the grammar accepts: {text!r}")


def reject_trace(source: str, lineno: int, text: str, error: pp.ParseBaseException) -> Rejected:
    """A trace line the trace grammar refuses, where it got furthest and what it expected."""
    loc, expected = error.loc, str(error.msg).removeprefix("Expected ")
    if _TRACE_FURTHEST.loc >= loc:
        loc, expected = _TRACE_FURTHEST.loc, _TRACE_FURTHEST.expected(text)
    column = loc + 1 + (text[loc : loc + 1] == " ")
    found = text[loc:].lstrip(" ").split(" ")[0][:40]
    return Rejected(source, lineno, column, expected, found or "end of line", text)


@cache
def trace_pattern() -> FastPattern:
    """The trace grammar compiled (``grammars.fastpath``), trailing spaces allowed: 60,000 lines
    a second where pyparsing reads 1,300 (samples/lab/trace/nft-trace.txt, this machine)."""
    return compile_grammar(trace.line, end=r" *\Z")


def read_trace_lines(source: str, lines: list[tuple[int, str]], result: ParsedLines) -> _Columns:
    """The trace lines of a block (nft monitor trace, xtables-monitor --trace) as one hop per
    chain visit (``logpath.nftrace``), in a bucket of their own; wrong lines to ``result``."""
    reader = TraceReader()
    match = trace_pattern().regex.match
    fields = trace_pattern().fields
    for lineno, line in lines:
        found = match(line)
        if found:
            parsed = fields(found)
        else:
            _TRACE_FURTHEST.reset()
            try:
                parsed = trace.parse_line(line)
            except pp.ParseBaseException as error:
                result.rejected.append(reject_trace(source, lineno, line, error))
                continue
        wrong = reader.add(lineno, line, parsed)
        if wrong is not None:
            rejected = Rejected(source, lineno, wrong.column, wrong.expected, wrong.found, line)
            result.rejected.append(rejected)
    bucket = _TraceColumns()
    for lineno, raw, hop in reader.hops():
        bucket.add_hop(hop, lineno, raw)
    result.skipped.update(reader.skipped)  # after hops(): it closes the visits still open
    return bucket


def field_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where each field of a line the compiled patterns accept lies in it (start, end).

    Only asked for the few lines whose value is rejected after matching: the patterns give what
    the grammar gives (tests/test_parse.py), so the spans are the grammar's.
    """
    kinds = header_kinds()
    kind = kinds[kind_of(text, kinds)]
    for pattern in (kind.common, kind.whole):
        match = pattern.regex.match(text, 0, message_end(text))
        if match:
            spans: dict[str, tuple[int, int]] = {}
            for alias, name in pattern.aliases.items():
                if match.group(alias) is not None:
                    spans.setdefault(name, match.span(alias))
            return spans
    raise AssertionError(f"no compiled pattern matches a line they matched before: {text!r}")


def reject_value(
    source: str, lineno: int, text: str, name: str, expected: str, key: str = ""
) -> Rejected:
    """A line whose field ``name`` holds a value the kernel cannot print there.

    The column and the text found are those of the value with its key, as for a line the
    grammar rejects ("TTL=99999", "SRC=999.17.0.2" in "[SRC=999.17.0.2"). ``key`` finds a value
    inside a field that holds several (``FRAG:`` in ``exthdrs``); the time of an RFC 3164 header
    is its month, day and clock together.
    """
    spans = field_spans(text)
    start, end = spans[name]
    if key:
        start = text.index(key, start, end) + len(key)
        end = start + len(text[start:end].split(" ", 1)[0])
    elif name == "month":
        end = spans["clock"][1]
    if text[start - 1 : start] in ("=", ":"):  # from the key on
        start -= 1
        while start and (text[start - 1].isalnum() or text[start - 1] == "_"):
            start -= 1
    # a whole IPv6 address or MAC header with its key (the grammar's found text stops at 40)
    return Rejected(source, lineno, start + 1, expected, text[start:end][:64], text)


def _to_array(values: tuple[str, ...]) -> pa.Array:
    """One field of many lines as an arrow string array; "" (group not matched) becomes null.

    Converting Python strings one by one cost more than matching the line. Lines never contain
    a newline, so the values are joined with one in C and split again by arrow.
    """
    if not any(values):
        return pa.nulls(len(values), pa.string())
    parts = pc.split_pattern(pa.array(["\n".join(values)], pa.large_string()), "\n")
    strings = parts.flatten().cast(pa.string())
    return pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)


class _Columns:
    """Collects matches of one pattern into per-field lists without building a dict per line."""

    def __init__(self, pattern: FastPattern) -> None:
        self.pattern = pattern
        self.rows: list[tuple[str, ...]] = []
        self.lineno: list[int] = []
        self.raw: list[str] = []

    @property
    def regex(self) -> re.Pattern[str]:
        compiled: re.Pattern[str] = self.pattern.regex
        return compiled

    def add(self, groups: tuple[str, ...], lineno: int, line: str) -> None:
        self.rows.append(groups)
        self.lineno.append(lineno)
        self.raw.append(line)

    def to_fields(self, names: tuple[str, ...]) -> dict[str, pa.Array]:
        # Transpose in C (zip), convert in C (pa.array) and fold renamed groups in C (coalesce):
        # a Python loop over fields x lines here cost more than the matching itself.
        n = len(self.rows)
        transposed = list(zip(*self.rows, strict=True)) if n else []
        out: dict[str, pa.Array] = {}
        for name, indexes in self.pattern.group_indexes():
            if not n:
                break
            columns = [_to_array(transposed[i - 1]) for i in indexes]
            out[name] = columns[0] if len(columns) == 1 else pc.coalesce(*columns)
        empty = pa.nulls(n, pa.string())
        return _numbers_read({name: out.get(name, empty) for name in names})

    def lines(self) -> tuple[pa.Int64Array, pa.StringArray]:
        """The number and text of each of its lines."""
        return pa.array(self.lineno, pa.int64()), pa.array(self.raw, pa.string())


class _TraceColumns(_Columns):
    """The hops of trace visits: fields by name (not a pattern's groups), fewer by far."""

    def __init__(self) -> None:
        self.hops: list[dict[str, str]] = []
        self.rows = []
        self.lineno = []
        self.raw = []

    def add_hop(self, hop: dict[str, str], lineno: int, raw: str) -> None:
        self.hops.append(hop)
        self.add((), lineno, raw)

    def to_fields(self, names: tuple[str, ...]) -> dict[str, pa.Array]:
        texts = {
            name: pa.array([hop.get(name) for hop in self.hops], pa.string()) for name in names
        }
        return _numbers_read(texts)


def _numbers_read(fields: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """``fields`` (texts) with the decimal numbers read (``netfilter.is_integer_field``), as the
    C scanner reads them where it took the lines."""
    read = {}
    for name, values in fields.items():
        if values.type != pa.string() or not _integer_fields().get(name, False):
            read[name] = values
        elif values.null_count == len(values):  # no line shows it (most fields): no cast
            read[name] = pa.nulls(len(values), pa.int64())
        else:
            read[name] = integers(values)
    return read


@cache
def syslog_pattern() -> FastPattern:
    """The common shape after an RFC 3164 header, matching with trailing spaces still on."""
    grammar = _line_grammar(netfilter.common_body, headers.KINDS[0])
    return compile_grammar(grammar, end=r" *\Z")


def parse_lines(
    source: str, lines: Iterable[tuple[int, str]], scanned: _Columns | None = None
) -> ParsedLines:
    """Parse numbered lines from one source into raw hop fields, rejects and skip counts.

    The hops come out in line order. ``scanned``: the hops the C scanner already took from the
    same block (``parse_block``), merged in line order.
    """
    kinds = header_kinds()
    # the whole-grammar patterns are compiled only when a line needs one
    buckets = [_Columns(p) for kind in kinds for p in (kind.common, kind.whole)]
    # The hot path, for most lines of a syslog file: kind 0 (RFC 3164) is the grammar's first
    # header choice, so a line this pattern matches needs no search for its kind, and the pattern
    # allows the trailing spaces that message_end() would strip. Appends are bound once.
    syslog = syslog_pattern().regex.match
    syslog_rows, syslog_lineno, syslog_raw = [], [], []
    skipped = Counter[str]()
    result = ParsedLines(
        fields={}, lineno=pa.array([], pa.int64()), raw=pa.array([], pa.string()), skipped=skipped
    )
    traces: list[tuple[int, str]] = []  # read together at the end: a visit spans lines
    count = 0
    for lineno, line in lines:
        count += 1
        if "OUT=" not in line or "IN=" not in line:  # is_candidate(), inlined
            if line.startswith(trace.STARTS):  # is_trace_line(), inlined
                traces.append((lineno, line))
                continue
            skipped[skip_reason(line)] += 1
            continue
        if len(line) > MAX_LINE:
            skipped[SKIP_TOO_LONG] += 1
            continue
        match = syslog(line)
        if match:
            syslog_rows.append(match.groups(""))
            syslog_lineno.append(lineno)
            syslog_raw.append(line)
            continue
        end = message_end(line)
        index = 2 * kind_of(line, kinds)
        for bucket in buckets[index : index + 2]:
            match = bucket.regex.match(line, 0, end)
            if match:
                bucket.add(match.groups(""), lineno, line)
                break
        else:
            if is_trace_line(line):  # xtables-monitor's PACKET: lines have IN= and OUT=
                traces.append((lineno, line))
                continue
            result.rejected.append(reject(source, lineno, line))
    hot = _Columns(syslog_pattern())
    hot.rows, hot.lineno, hot.raw = syslog_rows, syslog_lineno, syslog_raw
    buckets.insert(0, hot)
    if scanned is not None:
        buckets.insert(0, scanned)
        count += len(scanned.lines()[0])
    result.lines = count
    if traces:
        buckets.append(read_trace_lines(source, traces, result))
        result.rejected.sort(key=lambda r: r.lineno)
    names = all_fields()
    used = [bucket for bucket in buckets if bucket.rows]
    if len(used) == 1:  # one pattern's lines (the scanner took every hop): its columns as they are
        result.fields = used[0].to_fields(names)
        result.lineno, result.raw = used[0].lines()
        return result
    parts = [bucket.to_fields(names) for bucket in used]
    fields = {
        name: pa.concat_arrays([part[name] for part in parts])
        if parts
        else pa.nulls(0, pa.int64() if _integer_fields()[name] else pa.string())
        for name in names
    }
    lines = [bucket.lines() for bucket in used]
    numbers = pa.concat_arrays([number for number, _ in lines] or [pa.array([], pa.int64())])
    raw = pa.concat_arrays([text for _, text in lines] or [pa.array([], pa.string())])
    if len(used) > 1:  # buckets hold different patterns' lines: put them back in line order
        order = pc.sort_indices(numbers)
        fields = {name: values.take(order) for name, values in fields.items()}
        numbers, raw = numbers.take(order), raw.take(order)
    result.fields, result.lineno, result.raw = fields, numbers, raw
    return result


# --- the C scanner (issue 13) --------------------------------------------------------------------

PURE_PYTHON_ENV = "LOGPATH_PURE_PYTHON"  # set (to anything but "" or "0"): never use the scanner


def scanner() -> ModuleType | None:
    """The C scanner generated from the grammar (``logpath._scanner``), or None where it was not
    built (no C compiler when logpath was installed) or ``$LOGPATH_PURE_PYTHON`` is set."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    return _built_scanner()


@cache
def _built_scanner() -> ModuleType | None:
    try:
        module = importlib.import_module("logpath._scanner._scan")
    except ImportError:
        return None
    if module.field_names() != all_fields():  # built from another grammar than this one's
        return None
    if getattr(module, "INTERFACE", 1) != SCANNER_INTERFACE:  # from another logpath's module.c
        return None
    return module


# What logpath/_scanner/module.c's scan() takes and returns (its INTERFACE): 2 since the decimal
# numbers are read there and the lines' numbers and texts come back as Arrow buffers
SCANNER_INTERFACE = 2


def scanner_built() -> bool:
    """Whether the C scanner was built for this grammar (whether or not it is switched off)."""
    return _built_scanner() is not None


def scanner_status() -> str:
    """One line saying which parser runs, for ``logpath doctor`` and ingest."""
    if scanner() is not None:
        return "parser: the C scanner generated from the grammar"
    if _built_scanner() is not None:
        return f"parser: pure Python (${PURE_PYTHON_ENV} is set)"
    return SCANNER_NOT_BUILT


SCANNER_NOT_BUILT = (
    "parser: pure Python, about 3 times slower: the C scanner was not built (install a C "
    "compiler and the Python headers, then reinstall logpath)"
)


class _ScannedColumns(_Columns):
    """The hops the C scanner took: each field already an Arrow array (text, or an int64
    number), and the lines' numbers and texts."""

    def __init__(
        self, columns: dict[str, pa.Array], lineno: pa.Int64Array, raw: pa.StringArray
    ) -> None:
        super().__init__(syslog_pattern())
        self.columns = columns
        self.numbers, self.texts = lineno, raw
        self.rows = [()] if len(lineno) else []  # rows only tell parse_lines it is not empty

    def to_fields(self, names: tuple[str, ...]) -> dict[str, pa.Array]:
        count = len(self.numbers)
        return _numbers_read(
            {name: self.columns.get(name, pa.nulls(count, pa.string())) for name in names}
        )

    def lines(self) -> tuple[pa.Int64Array, pa.StringArray]:
        return self.numbers, self.texts


@cache
def _integer_fields() -> dict[str, bool]:
    """Per field (``all_fields``), whether the parse reads it as a number."""
    return {name: is_integer_field(name) for name in all_fields()}


@cache
def _integer_mask() -> bytes:
    """``_integer_fields`` as the scanner takes it: a byte per field, in its order."""
    return bytes(_integer_fields()[name] for name in all_fields())


def _scanner_columns(
    n: int,
    buffers: list[tuple[bytes | None, bytes, bytes, int] | tuple[bytes | None, bytes, int] | None],
) -> dict[str, pa.Array]:
    """The scanner's columns as Arrow arrays: (validity, offsets, data, nulls) a text's,
    (validity, values, nulls) a number's (int64)."""
    columns: dict[str, pa.Array] = {}
    for name, column in zip(all_fields(), buffers, strict=True):
        if column is None:
            continue
        validity, *data, nulls = column
        parts = [None if validity is None else pa.py_buffer(validity)]
        parts += [pa.py_buffer(buffer) for buffer in data]
        type_ = pa.string() if len(data) == 2 else pa.int64()
        columns[name] = pa.Array.from_buffers(type_, n, parts, null_count=nulls)
    return columns


def parse_block(source: str, block: Block, after: int = 0) -> ParsedLines | None:
    """Parse a block's lines numbered above ``after`` with the C scanner, the lines it does not
    take with ``parse_lines``; None where the scanner cannot read the block (not built, lines
    already split, a carriage return, text that is not UTF-8): then ``parse_lines`` reads it all.
    """
    scan = scanner()
    data = block.data
    if scan is None or block.lines is not None or b"\r" in data or not _is_utf8(data):
        return None
    if data and not data.endswith(b"\n"):
        data += b"\n"
    lineno, raw, rest, buffers, others = scan.scan(
        data, block.start, after, _TRACE_STARTS, _integer_mask()
    )
    count = len(lineno) // 8  # an int64 each
    numbers = pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(lineno)])
    offsets, text = raw
    texts = pa.Array.from_buffers(
        pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(text)]
    )
    scanned = _ScannedColumns(_scanner_columns(count, buffers), numbers, texts)
    parsed = parse_lines(source, rest, scanned)
    if others:  # the lines the scanner told apart as no netfilter line (and did not hand over)
        parsed.skipped[SKIP_NOT_NETFILTER] += others
        parsed.lines += others
    return parsed


# what parse_lines looks for at the start of a line without IN= and OUT=, as the scanner does
_TRACE_STARTS = tuple(start.encode() for start in trace.STARTS)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
