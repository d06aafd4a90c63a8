"""A firewall ruleset, read from ``iptables-save`` or ``nft list ruleset`` output, and where each
LOG prefix is logged: its table, its chain, and the built-in hook(s) that reach that chain.

    >>> ruleset = load_ruleset("samples/seed/iptables.final.rules")
    >>> [(loc.table, loc.chain, loc.hook) for loc in ruleset.locations("[TonyBai]-FwdOd0:")]
    [('filter', 'FwdOd0', 'FORWARD')]

The ruleset is a frozen record the store keeps (``to_json`` / ``from_json``); its damaged lines
are kept with it as ``BadLine`` records so they can be listed later.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logpath.errors import RulesetError
from logpath.grammars.ruleset_records import (
    BadLine,
    ChainRecord,
    IfaceMatch,
    Match,
    ParsedRuleset,
    RuleRecord,
    Target,
)
from logpath.netfilter import BUILTIN_CHAINS, HOOKS, hook_admits, traversal_rank

__all__ = [
    "BadLine",
    "IfaceMatch",
    "Location",
    "Ruleset",
    "describe_bad_line",
    "iface_admits",
    "load_ruleset",
    "parse_ruleset",
]

# A user chain reached by very many paths (a big Kubernetes ruleset) keeps this many; beyond it
# the interface conditions of further paths are dropped rather than enumerated.
MAX_PATHS_PER_CHAIN = 32


@dataclass(frozen=True)
class Location:
    """Where a LOG rule sits: its table and chain, and a hook whose built-in chain reaches it."""

    table: str  # raw, mangle, nat, filter, security, or the nft table name
    chain: str  # the chain holding the LOG rule (a user chain such as FwdId0Od0)
    hook: str | None  # PREROUTING ... POSTROUTING, INGRESS/EGRESS; None: no base chain reaches it
    family: str | None = None  # ip, ip6, inet, bridge, arp, netdev
    matches: tuple[IfaceMatch, ...] = ()  # -i/-o conditions on the path and on the LOG rule
    lineno: int = field(default=0, compare=False)  # line of the (first) LOG rule in the file

    def admits(
        self,
        in_iface: str | None,
        out_iface: str | None,
        physin: str | None = None,
        physout: str | None = None,
    ) -> bool:
        """True when a hop logged with these IN=/OUT= (PHYSIN=/PHYSOUT=) could be from here."""
        seen = {"in": in_iface, "out": out_iface, "physin": physin, "physout": physout}
        return hook_admits(self.hook, in_iface, out_iface) and all(
            iface_admits(match, seen) for match in self.matches
        )


def iface_admits(match: IfaceMatch, seen: dict[str, str | None]) -> bool:
    """Whether one interface condition (negated or not) holds for a hop's interfaces.

    An absent interface never matches a name, so only a negated condition holds for it; this is
    also what xt_physdev does for a packet that was not bridged (physdev_mt()).
    """
    value = seen.get(match.direction)
    return bool(iface_name_matches(match.name, value) != match.negated)


def iface_name_matches(pattern: str, name: str | None) -> bool:
    """iptables ``eth+`` and nft ``"eth*"`` are prefix wildcards; other names match exactly."""
    if not name:
        return False
    if pattern.endswith(("+", "*")):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True)
class Ruleset:
    """A ruleset as read from one file: chains, rules, and the lines that could not be read."""

    source: str  # the file it was read from ("-" for standard input)
    format: str  # "iptables-save" or "nft"
    family: str | None  # iptables-save: ip, ip6 or bridge (from its header); nft: None (per table)
    chains: tuple[ChainRecord, ...]
    rules: tuple[RuleRecord, ...]
    bad_lines: tuple[BadLine, ...]

    def locations(self, prefix: str | None) -> list[Location]:
        """Where the LOG rules with this prefix sit, in ruleset order.

        ``None`` or ``""`` finds LOG rules without a prefix. When no rule has the exact
        prefix, prefixes equal apart from surrounding spaces are used (a parser may have
        trimmed the space the rule put before ``IN=``).
        """
        index = self._prefix_index
        exact = index.get(prefix or "")
        if exact is not None:
            return list(exact)
        return list(self._stripped_index.get((prefix or "").strip(), ()))

    def hooks_of(self, table: str, chain: str) -> list[str]:
        """The hooks whose base chains reach ``chain`` of ``table`` (any family), in hook order."""
        hooks = {
            hook
            for (_family, table_name, chain_name), entries in self._entries.items()
            if table_name == table and chain_name == chain
            for hook, _matches in entries
        }
        return sorted(hooks, key=traversal_rank)

    def traced_rule(
        self, table: str, chain: str, kind: str, number: int, family: str | None = None
    ) -> str | None:
        """What a legacy ``TRACE: table:chain:kind:number`` line names, as written: rule
        ``number`` of the chain (its text), the chain's policy (``policy DROP``), or the end of a
        user chain (``return``); None when the ruleset has no such chain or rule.

        ``family``: ip or ip6 (the traced packet's), for a file holding both sections.
        """
        fits = [
            rule
            for rule in self.rules
            if rule.table == table
            and rule.chain == chain
            and (family is None or rule.family in (None, family, "inet"))
        ]
        if kind == "rule":
            return fits[number - 1].text if 0 < number <= len(fits) else None
        if kind == "policy":
            for record in self.chains:
                if record.table == table and record.name == chain and record.policy:
                    return f"policy {record.policy}"
            return None
        return "return (end of the user chain)" if kind == "return" else None

    @property
    def prefixes(self) -> list[str]:
        """Every LOG prefix in the ruleset, in first-use order."""
        return list(self._prefix_index)

    def to_json(self) -> dict[str, Any]:
        """The ruleset as a JSON-ready dict (what the store keeps in its manifest)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Ruleset:
        """The ruleset back from ``to_json`` (the dict, or its JSON text).

        Raises:
            RulesetError: the data is not a ruleset written by ``to_json``.
        """
        try:
            loaded = json.loads(data) if isinstance(data, str) else data
            return cls(
                source=loaded["source"],
                format=loaded["format"],
                family=loaded["family"],
                chains=tuple(ChainRecord(**chain) for chain in loaded["chains"]),
                rules=tuple(rule_from_dict(rule) for rule in loaded["rules"]),
                bad_lines=tuple(BadLine(**bad) for bad in loaded["bad_lines"]),
            )
        except (ValueError, TypeError, KeyError) as error:
            raise RulesetError(f"the stored ruleset is damaged ({error!r})") from None

    @functools.cached_property
    def _entries(
        self,
    ) -> dict[tuple[str | None, str, str], list[tuple[str, tuple[IfaceMatch, ...]]]]:
        return chain_entries(self)

    @functools.cached_property
    def _prefix_index(self) -> dict[str, tuple[Location, ...]]:
        return prefix_index(self, self._entries)

    @functools.cached_property
    def _stripped_index(self) -> dict[str, tuple[Location, ...]]:
        stripped: dict[str, list[Location]] = {}
        for prefix, locations in self._prefix_index.items():
            stripped.setdefault(prefix.strip(), []).extend(locations)
        return {prefix: tuple(dict.fromkeys(locs)) for prefix, locs in stripped.items()}


def rule_from_dict(data: dict[str, Any]) -> RuleRecord:
    """A RuleRecord from its ``dataclasses.asdict`` form.

    A ruleset stored before logpath kept conditions has no ``conditions``/``verdict``/``handle``:
    they stay None ("not parsed"), and the evaluator says it cannot decide.
    """
    matches = tuple(IfaceMatch(**match) for match in data["matches"])
    conditions = data.get("conditions")
    verdict = data.get("verdict")
    return RuleRecord(
        **{
            **data,
            "jumps": tuple(data["jumps"]),
            "matches": matches,
            "conditions": None if conditions is None else tuple(map(match_from_dict, conditions)),
            "verdict": None if verdict is None else target_from_dict(verdict),
        }
    )


def match_from_dict(data: dict[str, Any]) -> Match:
    """A Match from its ``dataclasses.asdict`` form."""
    return Match(data["kind"], data["negated"], tuple(data["values"]))


def target_from_dict(data: dict[str, Any]) -> Target:
    """A Target from its ``dataclasses.asdict`` form."""
    options = tuple((name, value) for name, value in data["options"])
    return Target(data["name"], data["chain"], data["goto"], options, data["text"])


# ---------------------------------------------------------------------------------------------
# Which hooks reach which chain

ChainKey = tuple[str | None, str, str]  # (family, table, chain)
Entry = tuple[str, tuple[IfaceMatch, ...]]  # (hook, interface conditions on the path)


def chain_family(ruleset: Ruleset, record: ChainRecord | RuleRecord) -> str | None:
    """The family a chain or rule belongs to (an nft table's, or the iptables-save file's)."""
    return record.family if record.family is not None else ruleset.family


def base_hook(ruleset: Ruleset, chain: ChainRecord | tuple[str, str]) -> str | None:
    """The hook a base chain is attached to; None for a user chain."""
    if isinstance(chain, ChainRecord):
        if chain.hook is not None:
            return str(chain.hook).upper()
        if ruleset.format == "nft":
            return None
        table, name = chain.table, chain.name
    else:
        table, name = chain
    builtin = BUILTIN_CHAINS.get(table, {*HOOKS, "BROUTING"})
    return name if name in builtin else None


def chain_entries(ruleset: Ruleset) -> dict[ChainKey, list[Entry]]:
    """For every chain, the hooks that reach it and the interface conditions on the way."""
    jumps = jump_graph(ruleset)
    entries: dict[ChainKey, list[Entry]] = {}
    for key, hook in base_chains(ruleset).items():
        for chain, matches in walk_jumps(jumps, key, (), frozenset()):
            add_entry(entries, chain, (hook, matches))
    return entries


def add_entry(entries: dict[ChainKey, list[Entry]], chain: ChainKey, entry: Entry) -> None:
    """Record one path into a chain, up to MAX_PATHS_PER_CHAIN (then without its conditions)."""
    known = entries.setdefault(chain, [])
    if len(known) >= MAX_PATHS_PER_CHAIN:
        entry = (entry[0], ())
    if entry not in known:
        known.append(entry)


def base_chains(ruleset: Ruleset) -> dict[ChainKey, str]:
    """The chains attached to a hook: declared ones, and iptables built-ins used undeclared."""
    keys: dict[ChainKey, str] = {}
    for chain in ruleset.chains:
        hook = base_hook(ruleset, chain)
        if hook is not None:
            keys[(chain_family(ruleset, chain), chain.table, chain.name)] = hook
    if ruleset.format != "nft":
        for rule in ruleset.rules:
            hook = base_hook(ruleset, (rule.table, rule.chain))
            if hook is not None:
                keys.setdefault((chain_family(ruleset, rule), rule.table, rule.chain), hook)
    return keys


JumpGraph = dict[ChainKey, list[tuple[ChainKey, tuple[IfaceMatch, ...]]]]


def jump_graph(ruleset: Ruleset) -> JumpGraph:
    """chain -> [(chain it jumps or goes to, interface conditions of that rule)], same table."""
    known = {(chain_family(ruleset, c), c.table, c.name) for c in ruleset.chains}
    known |= {(chain_family(ruleset, r), r.table, r.chain) for r in ruleset.rules}
    graph: JumpGraph = {}
    for rule in ruleset.rules:
        source = (chain_family(ruleset, rule), rule.table, rule.chain)
        for target in rule.jumps:
            key = (source[0], rule.table, target)
            if key in known and key != source:
                graph.setdefault(source, []).append((key, rule.matches))
    return graph


def walk_jumps(
    graph: JumpGraph, chain: ChainKey, matches: tuple[IfaceMatch, ...], seen: frozenset[ChainKey]
) -> Iterator[tuple[ChainKey, tuple[IfaceMatch, ...]]]:
    """Every chain reachable from ``chain`` with the conditions gathered on the way (no loops)."""
    yield chain, matches
    if len(seen) > 64:  # iptables refuses deeper jump nesting; guard against damaged files
        return
    for target, conditions in graph.get(chain, ()):
        if target not in seen:
            combined = tuple(dict.fromkeys(matches + conditions))
            yield from walk_jumps(graph, target, combined, seen | {chain})


def prefix_index(
    ruleset: Ruleset, entries: dict[ChainKey, list[Entry]]
) -> dict[str, tuple[Location, ...]]:
    """LOG prefix -> the locations of the rules that log with it, in ruleset order."""
    index: dict[str, dict[Location, None]] = {}
    for rule in ruleset.rules:
        if rule.logs and rule.log_prefix is not None:
            key = (chain_family(ruleset, rule), rule.table, rule.chain)
            for location in rule_locations(rule, key, entries.get(key, [])):
                index.setdefault(rule.log_prefix, {})[location] = None
    return {prefix: tuple(locations) for prefix, locations in index.items()}


def rule_locations(rule: RuleRecord, key: ChainKey, entries: list[Entry]) -> list[Location]:
    """One Location per hook path into the rule's chain (one with hook None if none reaches it)."""
    family = key[0]
    if not entries:
        return [Location(rule.table, rule.chain, None, family, rule.matches, rule.lineno)]
    return [
        Location(
            rule.table,
            rule.chain,
            hook,
            family,
            tuple(dict.fromkeys(path + rule.matches)),
            rule.lineno,
        )
        for hook, path in entries
    ]


# ---------------------------------------------------------------------------------------------
# Reading a file


def load_ruleset(path: str | Path) -> Ruleset:
    """Read a ruleset file, detecting ``iptables-save`` or ``nft list ruleset`` output.

    Args:
        path: the file (``iptables-save > rules``, ``nft list ruleset > rules.nft``).
    Returns:
        The Ruleset; lines that do not follow the grammar are in ``bad_lines``.
    Raises:
        RulesetError: the file cannot be read, is not text, or holds no ruleset at all.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RulesetError(f"{path}: no such ruleset file") from None
    except IsADirectoryError:
        raise RulesetError(f"{path}: is a directory, not a ruleset file") from None
    except OSError as error:
        raise RulesetError(f"{path}: cannot read the ruleset: {error.strerror}") from None
    return parse_ruleset(decode_ruleset(data, str(path)), str(path))


def decode_ruleset(data: bytes, source: str) -> str:
    """The file's text; a ruleset is ASCII/UTF-8, anything else is reported with its offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        lineno = data[: error.start].count(b"\n") + 1
        raise RulesetError(
            f"{source}: line {lineno}: not UTF-8 text (byte {error.start})\n\n"
            "Give the text printed by iptables-save, ip6tables-save or nft list ruleset."
        ) from None


def parse_ruleset(text: str, source: str = "-") -> Ruleset:
    """Read ruleset text (the format is detected from its first statement)."""
    # the grammars are built on import (pyparsing, ~30 ms): only commands reading a ruleset pay
    from logpath.grammars.ruleset import parse_iptables_save, parse_nft_ruleset

    form = detect_format(text, source)
    parsed: ParsedRuleset = parse_nft_ruleset(text) if form == "nft" else parse_iptables_save(text)
    if not parsed.chains and not parsed.rules:
        first = parsed.bad_lines[0] if parsed.bad_lines else None
        detail = f"\n\n{describe_bad_line(source, first)}" if first else ""
        raise RulesetError(f"{source}: no chain or rule could be read{detail}")
    return Ruleset(
        source, parsed.format, parsed.family, parsed.chains, parsed.rules, parsed.bad_lines
    )


NFT_STARTS = ("table ", "table\t", "flush ruleset", "define ")
SAVE_STARTS = ("*", ":", "-A ", "-P ", "-N ", "COMMIT", "# Generated by")


def detect_format(text: str, source: str) -> str:
    """ "nft" or "iptables-save", from the first line that is not blank or a plain comment."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(SAVE_STARTS):
            return "iptables-save"
        if stripped.startswith(NFT_STARTS):
            return "nft"
        if stripped and not stripped.startswith("#"):
            raise RulesetError(
                f"{source}: line {lineno}: not iptables-save or nft list ruleset output: "
                f"{stripped[:40]!r}\n\n"
                "Give the text printed by iptables-save, ip6tables-save or nft list ruleset."
            )
    raise RulesetError(f"{source}: the ruleset file is empty")


def describe_bad_line(source: str, bad: BadLine) -> str:
    """A bad line as the user sees it: where, what was expected, the line and a caret."""
    found = f", found {bad.found!r}" if bad.found else ", found the end of the line"
    kept = f" (kept: {bad.salvaged})" if bad.salvaged else ""
    caret = " " * (bad.column - 1) + "^"
    return (
        f"{source}:{bad.lineno}:{bad.column}: expected {bad.expected}{found}{kept}\n"
        f"  {bad.text}\n  {caret}"
    )
