"""What an ``iptables-save`` rule's options mean: its conditions (``Match``) and target (``Target``).

Real rules this module reads (samples/rules/lab-host.iptables-save.rules, samples/seed)::

    -A PREROUTING -p tcp -m multiport --ports 80,8080,9000:9099 -j LOG --log-prefix "lp:raw:pre:lab "
    -A FwdOd0 -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
    -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER

The grammar (``ruleset.py``) reads a rule as a list of options, ``[!] -x [!] value...``; this
module gives each option its meaning by the match module (``-m NAME``) it follows, as
iptables-extensions(8) documents them. An option logpath does not know, or a whole module it
does not know (``-m string``, ``-m mark``), becomes one ``unsupported`` Match naming its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyparsing as pp
from logpath.grammars.ruleset_records import Match, Target

# Options of the iptables core, valid in any rule (iptables(8), PARAMETERS).
CORE_OPTIONS = {
    "-s": "src",
    "--source": "src",
    "--src": "src",
    "-d": "dst",
    "--destination": "dst",
    "--dst": "dst",
    "-p": "proto",
    "--protocol": "proto",
    "-i": "in",
    "--in-interface": "in",
    "-o": "out",
    "--out-interface": "out",
}
PORT_OPTIONS = {
    "--sport": "sport",
    "--source-port": "sport",
    "--dport": "dport",
    "--destination-port": "dport",
}
# -m NAME: the options logpath evaluates (iptables-extensions(8)).
MODULE_OPTIONS: dict[str, dict[str, str]] = {
    "tcp": {**PORT_OPTIONS, "--tcp-flags": "tcp_flags", "--syn": "tcp_flags"},
    "udp": PORT_OPTIONS,
    "sctp": PORT_OPTIONS,
    "udplite": PORT_OPTIONS,
    "multiport": {
        "--sports": "sport",
        "--source-ports": "sport",
        "--dports": "dport",
        "--destination-ports": "dport",
        "--ports": "port",
    },
    "conntrack": {"--ctstate": "ctstate"},
    "state": {"--state": "ctstate"},
    "addrtype": {"--src-type": "src_type", "--dst-type": "dst_type"},
    "physdev": {
        "--physdev-in": "physin",
        "--physdev-out": "physout",
        "--physdev-is-bridged": "physdev_bridged",
        "--physdev-is-in": "physdev_in",
        "--physdev-is-out": "physdev_out",
    },
    "icmp": {"--icmp-type": "icmp_type"},
    "icmp6": {"--icmpv6-type": "icmp_type"},
    "comment": {"--comment": "comment"},
    "limit": {"--limit": "limit", "--limit-burst": "limit"},
}
# Kinds whose value is a comma-separated list ("80,8080", "RELATED,ESTABLISHED").
LIST_KINDS = frozenset({"src", "dst", "sport", "dport", "port", "ctstate", "src_type", "dst_type"})
# --syn is --tcp-flags SYN,RST,ACK,FIN SYN (iptables-extensions(8), tcp).
SYN_FLAGS = ("SYN,RST,ACK,FIN", "SYN")
TARGET_OPTIONS = frozenset({"-j", "--jump", "-g", "--goto"})


@dataclass(frozen=True)
class SaveOption:
    """One option of a rule as the grammar read it: ``[!] --name [!] value...``."""

    name: str
    values: tuple[str, ...]
    negated: bool

    @property
    def text(self) -> str:
        """The option as written (values with a space quoted again)."""
        shown = [f'"{value}"' if not value or " " in value else value for value in self.values]
        return " ".join(["!"] * self.negated + [self.name, *shown])


def save_conditions(options: list[SaveOption]) -> tuple[tuple[Match, ...], Target | None]:
    """The conditions and the target of a rule, from its options in order.

    >>> opts = [SaveOption("-p", ("tcp",), False), SaveOption("-m", ("tcp",), False),
    ...         SaveOption("--dport", ("80",), True), SaveOption("-j", ("DROP",), False)]
    >>> save_conditions(opts)[0][1]
    Match(kind='dport', negated=True, values=('80',))
    """
    conditions: list[Match] = []
    module: str | None = None
    unknown: list[SaveOption] = []  # the options of a module logpath does not know
    for index, option in enumerate(options):
        if option.name in TARGET_OPTIONS:
            conditions += unsupported(unknown)
            return tuple(conditions), save_target(option, options[index + 1 :])
        if option.name in ("-m", "--match"):
            conditions += unsupported(unknown)
            module = option.values[0] if option.values else ""
            unknown = [option] if module not in MODULE_OPTIONS else []
        elif option.name in CORE_OPTIONS:
            conditions += unsupported(unknown)
            unknown = []
            conditions.append(condition(CORE_OPTIONS[option.name], option))
        elif unknown:
            unknown.append(option)
        else:
            conditions.append(module_condition(module, option))
    conditions += unsupported(unknown)
    return tuple(conditions), None


def module_condition(module: str | None, option: SaveOption) -> Match:
    """One option of ``-m module`` (or of the protocol's own module, as ``-p tcp --dport 80``)."""
    known = MODULE_OPTIONS.get(module or "tcp", {})
    kind = known.get(option.name)
    if kind is None:
        written = f"-m {module} {option.text}" if module else option.text
        return Match("unsupported", False, (written,))
    if option.name == "--syn":
        return Match(kind, option.negated, SYN_FLAGS)
    return condition(kind, option)


def condition(kind: str, option: SaveOption) -> Match:
    """A Match of ``kind`` from an option; list values are split at their commas."""
    values = option.values
    if kind in LIST_KINDS and len(values) == 1:
        values = tuple(values[0].split(","))
    return Match(kind, option.negated, values)


def unsupported(options: list[SaveOption]) -> list[Match]:
    """An unknown module with its options, as one Match naming the text (none when empty)."""
    if not options:
        return []
    return [Match("unsupported", False, (" ".join(option.text for option in options),))]


def save_target(jump: SaveOption, rest: list[SaveOption]) -> Target:
    """The target (``-j NAME``/``-g CHAIN``) and the options written after it."""
    name = jump.values[0] if jump.values else ""
    goto = jump.name in ("-g", "--goto")
    options = tuple((option.name, " ".join(option.values)) for option in rest)
    text = " ".join(option.text for option in (jump, *rest))
    return Target(name, name if goto else None, goto, options, text)


# ---------------------------------------------------------------------------------------------
# nft list ruleset: the statements of one rule line

# Selector -> Match kind: the conditions logpath evaluates (nft(8), PAYLOAD/META/CT/FIB).
NFT_SELECTORS = {
    "ip saddr": "src",
    "ip daddr": "dst",
    "ip6 saddr": "src",
    "ip6 daddr": "dst",
    "ip protocol": "proto",
    "ip6 nexthdr": "proto",
    "meta l4proto": "proto",
    "meta nfproto": "family",
    **{f"{proto} {port}": port for proto in ("tcp", "udp", "th", "sctp") for port in ("sport", "dport")},
    "ct state": "ctstate",
    "fib saddr type": "src_type",
    "fib daddr type": "dst_type",
    "icmp type": "icmp_type",
    "icmp code": "icmp_code",
    "icmpv6 type": "icmp_type",
    "icmpv6 code": "icmp_code",
    "tcp flags": "tcp_flags",
    **{f"{meta}{key}": direction for meta in ("", "meta ") for key, direction in (
        ("iifname", "in"), ("oifname", "out"), ("iif", "in"), ("oif", "out"))},
}  # fmt: skip
# A selector of a protocol's header matches that protocol only (and an ip/ip6 one its family).
NFT_IMPLIED = {"tcp": "proto", "udp": "proto", "sctp": "proto", "icmp": "proto", "icmpv6": "proto"}
NFT_LIST_KINDS = frozenset({"ctstate", "src_type", "dst_type"})
TCP_FLAGS_ALL = "fin,syn,rst,psh,ack,urg,ecn,cwr"


def nft_conditions(
    items: list[tuple[int, int, Any]], line: str
) -> tuple[tuple[Match, ...], Target | None]:
    """The conditions and the verdict of one nft rule, from its statements in order.

    ``items`` are (start, end, token) of each top-level statement the grammar read. Words the
    grammar does not know are kept, run by run, as ``unsupported`` Matches naming their text.
    """
    conditions: list[Match] = []
    target: Target | None = None
    run: list[tuple[int, int]] = []  # spans of consecutive unknown words
    for start, end, token in items:
        name = token.get_name() if isinstance(token, pp.ParseResults) else None
        if name in (None, "set"):
            run.append((start, end))
            continue
        conditions += unknown_run(run, line)
        run = []
        if name == "match":
            conditions += nft_match_conditions(token)
        elif name == "comment":
            conditions.append(Match("comment", False, (token["text"],)))
        elif name == "limit":
            conditions.append(Match("limit", False, (line[start:end].strip(),)))
        elif name in ("verdict", "jump"):
            target = nft_target(name, token, line[start:end].strip())
    conditions += unknown_run(run, line)
    return tuple(conditions), target


def unknown_run(run: list[tuple[int, int]], line: str) -> list[Match]:
    """Unknown words next to each other, as one unsupported Match with their text."""
    if not run:
        return []
    return [Match("unsupported", False, (line[run[0][0] : run[-1][1]].strip(),))]


def nft_match_conditions(token: pp.ParseResults) -> list[Match]:
    """A selector's condition, after the protocol or family its selector implies."""
    named = token["selector"]  # one word, or the phrase's one token (a ParseResults)
    selector: str = named if isinstance(named, str) else named[0]
    kind = NFT_SELECTORS[selector]
    negated = "op" in token and token["op"] == "!="
    values = tuple(token["values"])
    first = selector.split()[0]
    implied = []
    if first in NFT_IMPLIED and kind != "proto":
        implied.append(Match("proto", False, (first,)))
    elif first in ("ip", "ip6") and kind != "proto":
        implied.append(Match("family", False, (first,)))
    if kind in NFT_LIST_KINDS and len(values) == 1:
        values = tuple(values[0].split(","))
    if kind == "tcp_flags":
        return [*implied, nft_tcp_flags(token, negated, values)]
    return [*implied, Match(kind, negated, values)]


def nft_tcp_flags(token: pp.ParseResults, negated: bool, values: tuple[str, ...]) -> Match:
    """``tcp flags syn / fin,syn,rst,ack`` and ``tcp flags == syn`` as (mask, flags set)."""
    if "mask" in token and len(values) == 1:
        return Match("tcp_flags", negated, (",".join(token["mask"]), values[0]))
    if "op" in token and len(values) == 1:
        return Match("tcp_flags", negated, (TCP_FLAGS_ALL, values[0]))
    # the implicit "any of these flags" and sets of flag combinations: not evaluated
    shown = "{ " + ", ".join(values) + " }" if len(values) > 1 else values[0]
    op = "!= " if negated else ""
    return Match("unsupported", False, (f"tcp flags {op}{shown}",))


def nft_target(name: str, token: pp.ParseResults, text: str) -> Target:
    """The verdict statement: accept, drop, reject with ..., jump/goto CHAIN, dnat to ..."""
    if name == "jump":
        kind = token["kind"]
        return Target(kind, token["target"], kind == "goto", (), text)
    options = tuple((key, str(token[key])) for key in ("with", "to", "flags") if key in token)
    return Target(token["kind"], None, False, options, text)
