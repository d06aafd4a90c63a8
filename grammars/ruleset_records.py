"""What the ruleset grammars (``ruleset.py``) produce: plain frozen dataclasses.

Kept apart from the grammars so that reading a ruleset kept in the store (``Ruleset.from_json``)
does not import pyparsing and build the grammars: that cost every command ~30 ms at start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IfaceMatch:
    """An interface condition of a rule: ``-i docker0``, ``! -o docker0``, ``oifname != "eth0"``."""

    direction: str  # "in" (-i, iifname, iif), "out" (-o, oifname, oif), "physin"/"physout"
    name: str  # interface name; iptables' trailing "+" and nft's trailing "*" are wildcards
    negated: bool  # True for "! -o docker0" / "oifname != ..."


@dataclass(frozen=True)
class Match:
    """One condition of a rule, as written: ``-s 10.0.0.0/8``, ``! --dport 80``, ``ct state new``.

    ``kind`` is one word of logpath's vocabulary (the hop table's where there is one): ``src``,
    ``dst``, ``proto``, ``sport``, ``dport``, ``port`` (multiport --ports: either), ``in``,
    ``out``, ``physin``, ``physout``, ``physdev_bridged``, ``physdev_in``, ``physdev_out`` (the
    --physdev-is-* tests), ``ctstate``, ``src_type``, ``dst_type``, ``icmp_type``, ``icmp_code``,
    ``tcp_flags``, ``family`` (nft ``ip``/``ip6`` selectors, ``meta nfproto``), ``comment`` (no
    condition), ``limit`` (rate limits: evaluated as matching, and said so) and ``unsupported``
    (any other condition: ``values`` holds its text, so it is never dropped silently).
    """

    kind: str
    negated: bool  # "! -s ...", "!= ..."
    values: tuple[str, ...]  # as written, one element per list item ("80", "9000:9099", "NEW")


@dataclass(frozen=True)
class Target:
    """What a rule does when it matches: ``-j REJECT --reject-with tcp-reset``, ``dnat to 1.2.3.4``."""

    name: str  # -j/-g name as written (ACCEPT, DNAT, a chain); nft: accept, drop, jump, dnat, ...
    chain: str | None  # the chain of "-g CHAIN" / nft "jump CHAIN"/"goto CHAIN"; -j CHAIN: None
    goto: bool  # -g / goto: the chain does not return here
    options: tuple[tuple[str, str], ...]  # ("--reject-with", "tcp-reset"); nft: ("to", "1.2.3.4")
    text: str  # the target as written: "-j DNAT --to-destination 172.30.0.2:80", "masquerade"


@dataclass(frozen=True)
class ChainRecord:
    """A chain declaration: ``:FORWARD ACCEPT [0:0]`` or an nft ``chain NAME { ... }`` block."""

    lineno: int  # 1-based line of the declaration
    family: str | None  # nft table family (ip, ip6, inet, bridge, arp, netdev); None: *-save
    table: str  # raw, mangle, nat, filter, security, or an nft table name
    name: str  # chain name as written
    policy: str | None  # ACCEPT/DROP/accept/drop; None for a user chain ("-")
    hook: str | None  # nft base chain hook (prerouting, input, ...); None: not stated
    type: str | None  # nft base chain type (filter, nat, route)
    priority: str | None  # nft base chain priority as written ("raw", "srcnat + 10", "-300")


@dataclass(frozen=True)
class RuleRecord:
    """One rule: ``-A CHAIN ...`` or one nft rule line inside a chain."""

    lineno: int
    family: str | None
    table: str
    chain: str
    text: str  # the rule as written after "-A CHAIN" (nft: the whole line, stripped)
    target: str | None  # -j/-g target, or the nft verdict (accept, drop, jump, goto, ...)
    jumps: tuple[str, ...]  # chains this rule may enter by jump or goto (nft: also in vmaps)
    goto: bool  # entered by -g / goto (no return to this chain)
    logs: bool  # writes a kernel log line: -j LOG, ebtables --log*, nft "log" without "group"
    log_prefix: str | None  # --log-prefix / log prefix text, verbatim; "" when logging without one
    log_level: str | None  # --log-level / log level as written
    trace: bool  # -j TRACE or nft "meta nftrace set 1"
    matches: tuple[IfaceMatch, ...]  # interface conditions of the rule itself
    # Every condition of the rule in order, and its target; None: not parsed (a ruleset stored
    # before logpath kept them), which the evaluator reports as undecided, never as a match.
    conditions: tuple[Match, ...] | None = None
    verdict: Target | None = None  # None: no target (the rule only counts or logs)
    handle: int | None = None  # nft -a: the rule's "# handle N"


@dataclass(frozen=True)
class BadLine:
    """A line that does not follow the grammar; the rest of the file is still read."""

    lineno: int
    column: int  # 1-based column where the grammar stopped
    expected: str  # what the grammar expected there, e.g. "policy (ACCEPT, DROP or -)"
    found: str  # the text found there (up to the next space), "" at the end of the line
    text: str  # the whole line
    salvaged: str | None = None  # the leading statement still read from this line, if any


@dataclass(frozen=True)
class ParsedRuleset:
    """What one ruleset text holds: chains, rules, and the lines that could not be read."""

    format: str  # "iptables-save" or "nft"
    chains: tuple[ChainRecord, ...]
    rules: tuple[RuleRecord, ...]
    bad_lines: tuple[BadLine, ...]
    family: str | None = None  # iptables-save: from "# Generated by ip6tables-save" etc.
