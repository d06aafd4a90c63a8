"""Grammars for firewall rulesets: ``iptables-save`` / ``ip6tables-save`` and ``nft list ruleset``.

Real lines this module reads (samples/seed/iptables.final.rules, samples/rules/router.nft)::

    :FwdId0Od0 - [0:0]
    -A FwdId0Od0 -i docker0 -o docker0 -j LOG --log-prefix "[TonyBai]-FwdId0Od0:" --log-level 7
    ip saddr 198.51.100.0/24 log prefix "fmtR raw-PRE: " level debug

Both formats are read line by line, so one damaged line is reported as a ``BadLine`` (line,
column, what was expected, what was found) and the lines around it are still read. Where the
leading part of a damaged line is a valid statement (``:OUTPUT ACCEPT [6:364] :P OSTROUTING``)
that part is kept and the BadLine says so in ``salvaged``.

The records are plain frozen dataclasses (``ruleset_records.py``); this module imports nothing
from ``logpath`` but them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import pyparsing as pp
from logpath.grammars.ruleset_conditions import (
    NFT_SELECTORS,
    SaveOption,
    nft_conditions,
    save_conditions,
)
from logpath.grammars.ruleset_records import (
    BadLine,
    ChainRecord,
    IfaceMatch,
    Match,
    ParsedRuleset,
    RuleRecord,
)

ppc = pp.common


def field(results: pp.ParseResults, name: str, default: Any = None) -> Any:
    """A named result, or ``default`` (ParseResults.get is untyped)."""
    return results[name] if name in results else default  # noqa: SIM401


# ---------------------------------------------------------------------------------------------
# Records (defined in ruleset_records.py; named here for readers of this module)

__all__ = [
    "BadLine",
    "ChainRecord",
    "IfaceMatch",
    "ParsedRuleset",
    "RuleRecord",
    "parse_iptables_save",
    "parse_nft_ruleset",
]


# ---------------------------------------------------------------------------------------------
# iptables-save grammar (also ip6tables-save, ebtables-save, and `iptables -S`)

BANG, COLON = pp.Literal.using_each("!:")  # type: ignore[no-untyped-call]

quoted_string = pp.QuotedString('"', esc_char="\\", unquote_results=True).set_name('"quoted text"')


def _unterminated(text: str, loc: int, _tokens: pp.ParseResults) -> None:
    """A quote opened and never closed: stop here, naming the quote's column."""
    raise pp.ParseFatalException(text, loc, 'Expected closing quote (") of this quoted text')


unterminated_quote = pp.Regex(r'"[^"]*$').set_parse_action(_unterminated)
# A bare value: not an option (-x / --xx), not a lone "!" (that negates the next option).
bare_value = pp.Regex(r'(?!--?[A-Za-z])(?!!(\s|$))[^\s"]+').set_name("option value")
option_value = quoted_string | unterminated_quote | bare_value

table_name = pp.Regex(r"[a-z_]+").set_name("table name").leave_whitespace()
chain_name = pp.Regex(r"[^\s\"!]+").set_name("chain name").leave_whitespace()
policy = pp.Regex(r"(ACCEPT|DROP|QUEUE|RETURN|CONTINUE)(?=\s|$)|-(?=\s|$)").set_name(
    "policy (ACCEPT, DROP or -)"
)
counters = pp.Regex(r"\[(?P<packets>\d+):(?P<bytes>\d+)\]").set_name("[packets:bytes]")
option_name = pp.Regex(r"--?[A-Za-z][\w-]*").set_name("option (-x or --name)")

option = pp.Group(
    pp.Opt(BANG)("negated")
    + option_name("name")
    + pp.Opt(BANG + pp.FollowedBy(option_value))("negated_after")
    + pp.Group(pp.ZeroOrMore(option_value))("values")
)

table_line = pp.Suppress("*") + table_name("table")
chain_decl = COLON.suppress() + chain_name("chain") + policy("policy") + pp.Opt(counters)
rule_line = (
    pp.Keyword("-A").suppress()
    + chain_name.copy().set_whitespace_chars(" \t")("chain")
    + pp.Group(pp.ZeroOrMore(option))("options")
)
policy_line = pp.Keyword("-P").suppress() + pp.Regex(r"\S+")("chain") + policy("policy")
new_chain_line = pp.Keyword("-N").suppress() + pp.Regex(r"\S+")("chain")
commit_line = pp.Keyword("COMMIT")("commit")
comment_line = pp.Regex(r"#.*")("comment")

iptables_statement = (
    table_line("table_line")
    | chain_decl("chain_decl")
    | rule_line("rule_line")
    | policy_line("policy_line")
    | new_chain_line("new_chain_line")
    | commit_line
    | comment_line
).set_name("*table, :CHAIN POLICY [p:b], -A CHAIN ..., COMMIT or # comment")

# Rule targets that write a kernel log line (NFLOG/ULOG go to netlink, not to the log).
LOG_TARGETS = frozenset({"LOG"})
TRACE_TARGETS = frozenset({"TRACE"})
# iptables-save names the tool in its header: which address family the chains belong to.
SAVE_FAMILIES = {
    "iptables-save": "ip",
    "ip6tables-save": "ip6",
    "ebtables-save": "bridge",
    "arptables-save": "arp",
}


# ---------------------------------------------------------------------------------------------
# nft list ruleset grammar

LBRACE, RBRACE, SEMI, EQUALS = pp.Literal.using_each("{};=")  # type: ignore[no-untyped-call]
nft_word = pp.Regex(r'[^\s"{};#]+').set_name("word")
nft_value = quoted_string | unterminated_quote | nft_word
nft_family = pp.one_of("ip ip6 inet bridge arp netdev", as_keyword=True).set_name(
    "table family (ip, ip6, inet, bridge, arp or netdev)"
)
nft_comment = pp.Regex(r"#.*")

nft_table_open = (
    pp.Keyword("table").suppress()
    + pp.Opt(nft_family, default="ip")("family")
    + nft_value("table")
    + LBRACE.suppress()
)
nft_chain_open = pp.Keyword("chain").suppress() + nft_value("chain") + LBRACE.suppress()
# Blocks whose contents say nothing about where a packet is logged; skipped by brace depth.
nft_other_open = (
    pp.one_of("set map flowtable counter quota limit secmark synproxy ct", as_keyword=True)("block")
    + pp.Regex(r"[^{]*")
    + LBRACE.suppress()
)
nft_close = RBRACE("close")
nft_priority = pp.Regex(r"[^;]+").set_name("priority")
nft_base_chain = (
    pp.Keyword("type").suppress()
    + nft_word("type")
    + pp.Keyword("hook").suppress()
    + nft_word("hook")
    + pp.Opt(
        pp.Keyword("device") + nft_value("device")
        | pp.Keyword("devices") + pp.Regex(r"[^;]*?(?=\s+priority)")
    )
    + pp.Keyword("priority").suppress()
    + nft_priority("priority")
    + SEMI.suppress()
    + pp.Opt(pp.Keyword("policy").suppress() + nft_word("policy") + SEMI.suppress())
)
nft_policy_line = pp.Keyword("policy").suppress() + nft_word("policy") + SEMI.suppress()
nft_meta_line = (pp.Keyword("comment") + nft_value) | (pp.Keyword("flags") + pp.Regex(r".*"))

# Inside a rule: the statements logpath needs, and any other token.
nft_set = pp.Forward()
nft_set.set_name("{ ... }")
nft_op = pp.one_of("!= ==")
nft_map_keyword = pp.one_of("vmap map", as_keyword=True)  # a verdict map is not a condition
# A condition: a selector logpath evaluates, an optional operator, one value or a set of values.
# The selectors and the Match kind each gives are in ruleset_conditions.NFT_SELECTORS.
nft_selector = pp.MatchFirst(
    pp.And([pp.Keyword(word) for word in phrase.split()]).set_parse_action(pp.replace_with(phrase))
    for phrase in sorted(NFT_SELECTORS, key=lambda phrase: -len(phrase.split()))
).set_name("selector")
nft_element = quoted_string | pp.Regex(r'[^\s"{};#,]+').set_name("set element")
nft_single_value = quoted_string | pp.Regex(r'(?!\.(\s|$))[^\s"{};#]+').set_name("value")
nft_values = pp.Group(
    LBRACE.suppress() + pp.DelimitedList(nft_element, allow_trailing_delim=True) + RBRACE.suppress()
    | nft_single_value
)
nft_match = pp.Group(
    nft_selector("selector")
    + pp.Opt(nft_op)("op")
    + ~nft_map_keyword
    + nft_values("values")
    + pp.Opt(pp.Suppress("/") + nft_values("mask"))  # tcp flags syn / fin,syn,rst,ack
    + ~pp.Literal(".")  # a concatenation (ip saddr . ip daddr) is not one condition
)("match")
# nft list ruleset prints a log prefix between quotes without escaping anything (nftables 1.0.6
# shows iptables' --log-prefix 'a"b' as: log prefix "a"b"), so the prefix ends at the first quote
# followed by a space, a semicolon or the end of the line.
nft_log_prefix = pp.Regex(r'"(?P<text>.*?)"(?=[\s;]|$)').set_name('"prefix text"')
nft_log_prefix.set_parse_action(lambda tokens: tokens["text"])
nft_log_option = (
    pp.Keyword("prefix").suppress() + (nft_log_prefix | unterminated_quote)("log_prefix")
    | pp.Keyword("level").suppress() + nft_word("log_level")
    | pp.Keyword("group").suppress() + nft_word("log_group")
    | pp.one_of("snaplen queue-threshold", as_keyword=True).suppress() + nft_word
    | pp.Keyword("flags").suppress() + pp.Regex(r"[a-z]+( [a-z]+)?(,\s*[a-z]+( [a-z]+)?)*")
)
nft_log = pp.Group(pp.Keyword("log").suppress() + pp.ZeroOrMore(nft_log_option))("log")
nft_chain_ref = quoted_string | pp.Regex(r'[^\s"{};#,]+').set_name("chain name")
nft_jump = pp.Group(pp.one_of("jump goto", as_keyword=True)("kind") + nft_chain_ref("target"))(
    "jump"
)
nft_nftrace = pp.Group(
    pp.Keyword("meta") + pp.Keyword("nftrace") + pp.Keyword("set") + pp.Literal("1")
)("nftrace")
# Statements that change nothing logpath evaluates: counters, marks, comments.
nft_counter = pp.Group(
    pp.Keyword("counter")
    + pp.Opt(
        pp.Keyword("packets") + nft_word + pp.Keyword("bytes") + nft_word
        | pp.Keyword("name") + nft_value
    )
)("counter")
nft_set_statement = pp.Group(
    pp.one_of("meta ct", as_keyword=True) + nft_word + pp.Keyword("set") + nft_value
)("set_statement")
nft_rule_comment = pp.Group(pp.Keyword("comment").suppress() + nft_value("text"))("comment")
nft_limit = pp.Group(
    pp.Keyword("limit")
    + pp.Keyword("rate")
    + pp.Opt(pp.Keyword("over"))
    + pp.Regex(r"\d+")
    + pp.Opt(pp.Regex(r"[a-z]*bytes"))
    + pp.Regex(r"/\s*[a-z]+")
    + pp.Opt(pp.Keyword("burst") + pp.Regex(r"\d+") + pp.Opt(pp.Regex(r"[a-z]*(packets|bytes)")))
)("limit")
# Verdicts: reject with its reason, the NAT statements with their address, and the plain ones.
nft_reject = pp.Group(
    pp.Keyword("reject")("kind")
    + pp.Opt(
        pp.Keyword("with").suppress()
        + (
            pp.Combine(pp.Keyword("tcp") + pp.Keyword("reset"), adjacent=False, join_string=" ")
            | pp.Combine(
                pp.one_of("icmp icmpv6 icmpx", as_keyword=True)
                + pp.Opt(pp.Keyword("type")).suppress()
                + nft_word,
                adjacent=False,
                join_string=" ",
            )
        )("with")
    )
)("verdict")
nft_nat_flags = pp.Regex(r"(random|fully-random|persistent)(,(random|fully-random|persistent))*")
nft_nat = pp.Group(
    pp.one_of("dnat snat masquerade redirect", as_keyword=True)("kind")
    + pp.Opt(pp.one_of("ip ip6", as_keyword=True)).suppress()
    + pp.Opt(pp.Keyword("to").suppress() + nft_single_value("to"))
    + pp.Opt(nft_nat_flags("flags"))
)("verdict")
nft_plain_verdict = pp.Group(
    pp.one_of("accept drop queue continue return", as_keyword=True)("kind")
)("verdict")
nft_token = (
    nft_log
    | nft_jump
    | nft_nftrace
    | nft_set_statement
    | nft_counter
    | nft_rule_comment
    | nft_limit
    | nft_reject
    | nft_nat
    | nft_plain_verdict
    | nft_match
    | nft_set
    | nft_value
)
# "-": once a set has opened, a missing "}" is reported as such, not as "end of text".
nft_set <<= pp.Group(
    LBRACE.suppress() - pp.ZeroOrMore(nft_token | pp.Literal(",")) + RBRACE.suppress()
)("set")
# "# handle N" (nft -a) is kept; any other comment is ignored.
nft_handle = pp.Suppress("#") + pp.Keyword("handle").suppress() + ppc.integer("handle")
nft_rule = pp.ZeroOrMore(pp.Group(pp.Located(nft_token))).ignore(
    pp.Regex(r"#(?!\s*handle\s+\d+\s*$).*")
) + pp.Opt(nft_handle + pp.StringEnd())


# ---------------------------------------------------------------------------------------------
# Reading line by line


def bad_line(lineno: int, text: str, error: pp.ParseBaseException, offset: int = 0) -> BadLine:
    """The BadLine record for a grammar failure at ``offset + error.loc`` of ``text``."""
    loc = offset + error.loc
    found = text[loc:].split(maxsplit=1)[0] if text[loc:].strip() else ""
    if loc < len(text) and text[loc].isspace():
        found = text[loc]
    expected = error.msg.removeprefix("Expected ")
    return BadLine(lineno, loc + 1, expected, found, text)


def parse_statement(
    grammar: pp.ParserElement, salvage: pp.ParserElement | None, lineno: int, text: str
) -> tuple[list[pp.ParseResults], BadLine | None]:
    """Parse one line; on failure keep the leading self-contained statements (salvage).

    ``salvage`` matches the statements that are complete on their own (a chain declaration),
    never a rule: a rule cut short would be a different rule. Returns the statements read and
    the BadLine (None when the whole line parsed).
    """
    results: list[pp.ParseResults] = []
    offset = 0
    while True:
        rest = text[offset:]
        try:
            results.append(grammar.parse_string(rest, parse_all=True))
            return results, None
        except pp.ParseBaseException as error:
            failure = error
        leading = leading_statement(salvage, rest) if salvage is not None else None
        if leading is None:
            record = bad_line(lineno, text, failure, offset)
            salvaged = text[:offset].strip() or None
            return results, BadLine(**{**record.__dict__, "salvaged": salvaged})
        results.append(leading[0])
        offset += leading[1]


def leading_statement(grammar: pp.ParserElement, text: str) -> tuple[pp.ParseResults, int] | None:
    """The statement at the very start of ``text`` and where it ends, if one parses there."""
    first = len(text) - len(text.lstrip())
    try:
        for tokens, start, end in grammar.scan_string(text, max_matches=1):
            return (tokens, end) if start == first and end < len(text) else None
    except pp.ParseBaseException:
        return None
    return None


def lenient_chain_decl(text: str) -> pp.ParseResults | None:
    """Read ``: PREROUTING ACCEPT [..]`` (a space after the colon) as iptables-restore does.

    iptables-restore splits the line with strtok(" \\t\\n"), which skips the space, so the
    chain is still declared; logpath reports the line and keeps the declaration.
    """
    match = re.fullmatch(r":\s+(\S+)\s+(\S+)(\s+\[\d+:\d+\])?\s*", text)
    if match is None:
        return None
    try:
        text = f":{match[1]} {match[2]}{match[3] or ''}"
        result: pp.ParseResults = chain_decl.parse_string(text, parse_all=True)
        return result
    except pp.ParseBaseException:
        return None


# ---------------------------------------------------------------------------------------------
# iptables-save: statements to records

IPTABLES_SALVAGE = chain_decl | table_line | commit_line


@dataclass
class _SaveState:
    """Where the reader is in an iptables-save text."""

    table: str | None
    family: str | None
    chains: list[ChainRecord]
    rules: list[RuleRecord]
    bad_lines: list[BadLine]
    # iptables-save then ip6tables-save into one file: the later header's family, kept on each
    # record after it (the file's family is the first header's).
    section_family: str | None = None


def parse_iptables_save(text: str) -> ParsedRuleset:
    """Read ``iptables-save`` / ``ip6tables-save`` / ``ebtables-save`` output (or ``iptables -S``).

    Args:
        text: the whole file.
    Returns:
        The chains and rules read, and one BadLine per line that does not follow the grammar.

    >>> parse_iptables_save("*nat\\n:POSTROUTING ACCEPT [0:0]\\nCOMMIT\\n").chains[0].name
    'POSTROUTING'
    """
    # `iptables -S` prints one table with no "*table" line: its rules belong to filter.
    has_tables = re.search(r"(?m)^\*", text) is not None
    state = _SaveState(None if has_tables else "filter", None, [], [], [])
    for lineno, line in enumerate(text.splitlines(), start=1):
        read_save_line(state, lineno, line)
    return ParsedRuleset(
        "iptables-save",
        tuple(state.chains),
        tuple(state.rules),
        tuple(state.bad_lines),
        state.family or "ip",
    )


def read_save_line(state: _SaveState, lineno: int, line: str) -> None:
    """Read one line of iptables-save output into ``state``."""
    if not line.strip():
        return
    statements, bad = parse_statement(iptables_statement, IPTABLES_SALVAGE, lineno, line)
    if bad is not None and not statements:
        lenient = lenient_chain_decl(line)
        if lenient is not None:
            statements = [lenient]
            bad = BadLine(**{**bad.__dict__, "salvaged": f":{lenient['chain']}"})
    if bad is not None:
        state.bad_lines.append(bad)
    for statement in statements:
        apply_save_statement(state, lineno, line, statement)


def apply_save_statement(
    state: _SaveState, lineno: int, line: str, statement: pp.ParseResults
) -> None:
    """Update ``state`` with one parsed statement."""
    if "comment" in statement:
        header = re.match(r"# Generated by (\S+)", statement["comment"])
        if header and header[1] in SAVE_FAMILIES:
            state.family = state.family or SAVE_FAMILIES[header[1]]
            section = SAVE_FAMILIES[header[1]]
            state.section_family = None if section == state.family else section
    elif "table" in statement:
        state.table = statement["table"]
    elif "commit" in statement:
        state.table = None
    elif state.table is None:
        state.bad_lines.append(
            BadLine(
                lineno,
                1,
                "*table before this line (it is outside any table)",
                line.split()[0],
                line,
            )
        )
    elif "options" in statement:
        rule = save_rule(lineno, state.table, line, statement)
        state.rules.append(replace(rule, family=state.section_family))
    else:
        chain = save_chain(lineno, state.table, statement)
        state.chains.append(replace(chain, family=state.section_family))


def save_chain(lineno: int, table: str, statement: pp.ParseResults) -> ChainRecord:
    """A chain record from ``:CHAIN POLICY [p:b]``, ``-P CHAIN POLICY`` or ``-N CHAIN``."""
    declared = field(statement, "policy")
    chain_policy = None if declared in (None, "-") else declared
    return ChainRecord(lineno, None, table, statement["chain"], chain_policy, None, None, None)


def save_rule(lineno: int, table: str, line: str, statement: pp.ParseResults) -> RuleRecord:
    """A rule record from ``-A CHAIN options...``."""
    parsed = [save_option(option) for option in statement["options"]]
    options = [
        (option.name, option.values[0] if option.values else None, option.negated)
        for option in parsed
    ]
    values = {name: value for name, value, _negated in options}
    target = values.get("-j") or values.get("--jump") or values.get("-g") or values.get("--goto")
    goto = "-g" in values or "--goto" in values
    prefix = values.get("--log-prefix")
    logs = target in LOG_TARGETS or any(name.startswith("--log") for name in values)
    if logs and prefix is None:
        prefix = ""
    conditions, verdict = save_conditions(parsed)
    return RuleRecord(
        lineno=lineno,
        family=None,
        table=table,
        chain=statement["chain"],
        text=re.sub(r"^\s*-A\s+\S+\s*", "", line).rstrip(),
        target=target,
        jumps=(target,) if target else (),
        goto=goto,
        logs=logs,
        log_prefix=prefix,
        log_level=values.get("--log-level"),
        trace=target in TRACE_TARGETS,
        matches=tuple(save_iface_matches(options)),
        conditions=conditions,
        verdict=verdict,
    )


def save_option(option: pp.ParseResults) -> SaveOption:
    """One parsed ``[!] -x [!] value...`` option."""
    negated = bool(field(option, "negated")) or bool(field(option, "negated_after"))
    return SaveOption(option["name"], tuple(option["values"]), negated)


SAVE_IFACE_OPTIONS = {
    "-i": "in",
    "--in-interface": "in",
    "-o": "out",
    "--out-interface": "out",
    "--physdev-in": "physin",  # -m physdev: the bridge port (PHYSIN= on the log line)
    "--physdev-out": "physout",
}


def save_iface_matches(options: list[tuple[str, str | None, bool]]) -> list[IfaceMatch]:
    """The ``-i``/``-o``/``--physdev-in``/``--physdev-out`` conditions (with ``!``)."""
    return [
        IfaceMatch(SAVE_IFACE_OPTIONS[name], value, negated)
        for name, value, negated in options
        if name in SAVE_IFACE_OPTIONS and value is not None
    ]


# ---------------------------------------------------------------------------------------------
# nft list ruleset: statements to records

nft_top_statement = (
    (
        nft_table_open("table_open")
        | pp.Keyword("flush") + pp.Keyword("ruleset")
        | pp.Keyword("define") + pp.Regex(r".*")
    )
    .ignore(nft_comment)
    .set_name("table FAMILY NAME {")
)
nft_table_statement = (
    (nft_chain_open("chain_open") | nft_other_open | nft_close | nft_meta_line)
    .ignore(nft_comment)
    .set_name("chain NAME {, set NAME {, ... or }")
)
nft_chain_statement = (
    nft_close | nft_base_chain("base_chain") | nft_policy_line("policy_line") | nft_meta_line
).ignore(nft_comment)


@dataclass
class _NftState:
    """Where the reader is in an ``nft list ruleset`` text."""

    family: str | None = None
    table: str | None = None
    chain: ChainRecord | None = None
    skip_depth: int = 0  # > 0 inside a set/map/flowtable block
    chains: list[ChainRecord] | None = None
    rules: list[RuleRecord] | None = None
    bad_lines: list[BadLine] | None = None


def parse_nft_ruleset(text: str) -> ParsedRuleset:
    """Read ``nft list ruleset`` output (or an nft script made of ``table { }`` blocks).

    Args:
        text: the whole file.
    Returns:
        The chains (base chains with their hook) and rules read, and the lines that do not
        follow the grammar.

    >>> nft = 'table ip raw {\\nchain PRE {\\ntype filter hook prerouting priority raw;\\n}\\n}\\n'
    >>> parse_nft_ruleset(nft).chains[0].hook
    'prerouting'
    """
    state = _NftState(chains=[], rules=[], bad_lines=[])
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            read_nft_line(state, lineno, line)
    assert state.chains is not None and state.rules is not None and state.bad_lines is not None
    if state.table is not None:
        lines = len(text.splitlines())
        state.bad_lines.append(BadLine(lines, 1, "} (the file ends inside a block)", "", ""))
    return ParsedRuleset("nft", tuple(state.chains), tuple(state.rules), tuple(state.bad_lines))


def read_nft_line(state: _NftState, lineno: int, line: str) -> None:
    """Read one non-blank line of nft output into ``state``."""
    if state.skip_depth:
        state.skip_depth += brace_balance(line)
        return
    if state.chain is not None:
        read_nft_chain_line(state, lineno, line)
        return
    grammar = nft_top_statement if state.table is None else nft_table_statement
    statements, bad = parse_statement(grammar, None, lineno, line)
    if bad is not None:
        assert state.bad_lines is not None
        state.bad_lines.append(bad)
        return
    apply_nft_statement(state, lineno, line, statements[0])


def apply_nft_statement(
    state: _NftState, lineno: int, line: str, statement: pp.ParseResults
) -> None:
    """Open or close a table or chain, or start skipping a set/map block."""
    if "table" in statement:
        state.family, state.table = statement["family"], statement["table"]
    elif "chain" in statement:
        assert state.table is not None
        state.chain = ChainRecord(
            lineno, state.family, state.table, statement["chain"], None, None, None, None
        )
    elif "block" in statement:
        state.skip_depth = brace_balance(line)
    elif "close" in statement:
        state.family = state.table = None


def read_nft_chain_line(state: _NftState, lineno: int, line: str) -> None:
    """A line inside a chain: its base chain spec, its policy, a rule, or the closing brace."""
    assert state.chain is not None and state.chains is not None and state.bad_lines is not None
    try:
        statement = nft_chain_statement.parse_string(line, parse_all=True)
    except pp.ParseBaseException:
        read_nft_rule(state, lineno, line)
        return
    if "close" in statement:
        state.chains.append(state.chain)
        state.chain = None
    elif "base_chain" in statement:
        state.chain = ChainRecord(
            state.chain.lineno,
            state.chain.family,
            state.chain.table,
            state.chain.name,
            field(statement, "policy"),
            statement["hook"],
            statement["type"],
            statement["priority"].strip(),
        )
    elif "policy_line" in statement:
        state.chain = ChainRecord(**{**state.chain.__dict__, "policy": statement["policy"]})


def read_nft_rule(state: _NftState, lineno: int, line: str) -> None:
    """One rule line of the current chain."""
    assert state.chain is not None and state.rules is not None and state.bad_lines is not None
    try:
        tokens = nft_rule.parse_string(line, parse_all=True)
    except pp.ParseBaseException as error:
        state.bad_lines.append(bad_line(lineno, line, error))
        return
    state.rules.append(nft_rule_record(state.chain, lineno, line, tokens))


def nft_rule_record(
    chain: ChainRecord, lineno: int, line: str, tokens: pp.ParseResults
) -> RuleRecord:
    """The RuleRecord of one parsed nft rule line."""
    items = [
        (item["locn_start"], item["locn_end"], item["value"][0])
        for item in tokens
        if isinstance(item, pp.ParseResults) and "locn_start" in item
    ]
    top = [token for _start, _end, token in items]
    logs = [token for token in top if named(token) == "log"]
    printed = [log for log in logs if "log_group" not in log]  # "log group N" goes to NFLOG
    jumps = [jump for jump in walk(tokens) if named(jump) == "jump" and "target" in jump]
    conditions, verdict = nft_conditions(items, line)
    target = None if verdict is None else (verdict.chain or verdict.name)
    prefix = field(printed[0], "log_prefix", "") if printed else None
    return RuleRecord(
        lineno=lineno,
        family=chain.family,
        table=chain.table,
        chain=chain.name,
        text=nft_comment_free(line),
        target=target,
        jumps=tuple(jump["target"] for jump in jumps),
        goto=verdict is not None and verdict.goto,
        logs=bool(printed),
        log_prefix=prefix,
        log_level=field(printed[0], "log_level") if printed else None,
        trace=any(named(token) == "nftrace" for token in top),
        matches=tuple(nft_iface_matches(conditions)),
        conditions=conditions,
        verdict=verdict,
        handle=field(tokens, "handle"),
    )


def named(token: object) -> str | None:
    """The results name of a grouped statement inside a rule, None for a plain token."""
    return token.get_name() if isinstance(token, pp.ParseResults) else None


def walk(tokens: pp.ParseResults) -> list[pp.ParseResults]:
    """Every grouped statement in a rule, including those inside sets and verdict maps."""
    found: list[pp.ParseResults] = []
    for token in tokens:
        if isinstance(token, pp.ParseResults):
            found.append(token)
            found.extend(walk(token))
    return found


def nft_iface_matches(conditions: tuple[Match, ...]) -> list[IfaceMatch]:
    """The rule's own interface conditions (a set of names is an "any of": not kept)."""
    return [
        IfaceMatch(match.kind, match.values[0], match.negated)
        for match in conditions
        if match.kind in ("in", "out") and len(match.values) == 1
    ]


def brace_balance(line: str) -> int:
    """Opened minus closed braces on a line, ignoring quoted text and comments."""
    code = re.sub(r'"(?:\\.|[^"\\])*"', "", line).split("#", 1)[0]
    return code.count("{") - code.count("}")


def nft_comment_free(line: str) -> str:
    """A rule line without its ``# handle N`` comment and indentation."""
    return re.sub(r'\s+#[^"]*$', "", line).strip()


# pyparsing expands tabs before parsing unless told not to; nft indents with tabs, and a BadLine
# column must point into the line as written.
for _grammar in (
    iptables_statement,
    IPTABLES_SALVAGE,
    chain_decl,
    nft_top_statement,
    nft_table_statement,
    nft_chain_statement,
    nft_rule,
):
    _grammar.parse_with_tabs()
