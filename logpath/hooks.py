"""Where each hop was logged: its table, chain and netfilter hook, and the evidence for it.

In order of trust: a legacy TRACE line names table and chain itself; a ruleset maps the LOG
prefix to the rule's table and chain (and a user chain to the hooks that reach it); prefix
conventions (``grammars/prefixes.toml``) read them from the prefix's words; otherwise the IN=/OUT=
pattern gives a guess that the packet stage may refine by the order of the hops.

Example (``hops`` a hop table of ``samples/seed/syslog``)::

    resolved = resolve_hooks(hops, load_ruleset("samples/seed/iptables.final.rules"))
    # the "[TonyBai]-FwdId0Od0:" hops: table filter, chain FwdId0Od0, hook FORWARD, "ruleset"
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logpath.errors import InputError
from logpath.netfilter import HOOK_NAMES, HOOKS, filter_hook, guess_hook, hook_admits
from logpath.provenance import user_prefixes_file
from logpath.rules import Location, Ruleset

__all__ = [
    "RESOLVED_COLUMNS",
    "Conventions",
    "PrefixMatch",
    "guess_hook",
    "load_conventions",
    "resolve_hooks",
]

# Columns resolve_hooks adds; categoricals, because millions of hops share a few values.
# nf_family: the nft family of the chain when a ruleset says (bridge/netdev hooks have the same
# names as the IP ones; this tells them apart), else null.
RESOLVED_COLUMNS = ("table", "chain", "hook", "evidence", "nf_family")

# The hop columns a hop's location depends on: one resolution per distinct combination.
KEY_COLUMNS = (
    "prefix",
    "in_iface",
    "out_iface",
    "physin",
    "physout",
    "trace_table",
    "trace_chain",
    "kind",
)

EVIDENCE = ("trace", "ruleset", "prefix", "guess")


# ---------------------------------------------------------------------------------------------
# Prefix conventions


@dataclass(frozen=True)
class PrefixMatch:
    """What a prefix convention says about a hop."""

    table: str | None
    chain: str | None
    hook: str | None
    convention: str  # the name of the convention that matched


@dataclass(frozen=True)
class Convention:
    """One ``[[convention]]`` of a prefixes file."""

    name: str
    pattern: re.Pattern[str] | None  # None for the generic word reader
    table: str | None
    hook: str | None  # a hook, "{group}", "by-interfaces", or None
    chain: str | None
    source: str  # the file it came from
    hook_map: tuple[tuple[str, str], ...] = ()  # this convention's own words for hooks


@dataclass(frozen=True)
class Conventions:
    """The prefix conventions in force: ordered conventions and the words for tables and hooks."""

    conventions: tuple[Convention, ...]
    table_words: tuple[tuple[str, str], ...]  # (word, table)
    hook_words: tuple[tuple[str, str], ...]  # (word, HOOK)

    @functools.cached_property
    def hook_vocabulary(self) -> dict[str, str]:
        """word -> hook; where files disagree on a word, the first (the user's) wins."""
        return dict(reversed(self.hook_words))

    @functools.cached_property
    def table_vocabulary(self) -> dict[str, str]:
        """word -> table; where files disagree on a word, the first (the user's) wins."""
        return dict(reversed(self.table_words))

    def match(
        self, prefix: str | None, in_iface: str | None = None, out_iface: str | None = None
    ) -> PrefixMatch | None:
        """The first convention that reads a hook out of ``prefix``, or None."""
        if not prefix:
            return None
        for convention in self.conventions:
            found = self._apply(convention, prefix, in_iface, out_iface)
            if found is not None and found.hook is not None:
                return found
        return None

    def _apply(
        self, convention: Convention, prefix: str, in_iface: str | None, out_iface: str | None
    ) -> PrefixMatch | None:
        if convention.pattern is None:
            return self._read_words(convention.name, prefix)
        match = convention.pattern.search(prefix)
        if match is None:
            return None
        groups = {key: value for key, value in match.groupdict().items() if value is not None}
        hook = expand(convention.hook, groups)
        if hook == "by-interfaces":
            hook = filter_hook(in_iface, out_iface)
        else:
            hook = dict(convention.hook_map).get(hook or "") or self.hook_named(hook)
        table = expand(convention.table, groups)
        table = self.table_named(table) or table
        return PrefixMatch(table, expand(convention.chain, groups), hook, convention.name)

    def hook_named(self, word: str | None) -> str | None:
        """The hook a word names (``pre`` -> PREROUTING), or the word if it is a hook already."""
        if word is None:
            return None
        if word.upper() in HOOK_NAMES:
            return word.upper()
        return self.hook_vocabulary.get(word.lower())

    def table_named(self, word: str | None) -> str | None:
        """The table a word names (``mgl`` -> mangle), or None."""
        return None if word is None else self.table_vocabulary.get(word.lower())

    def _read_words(self, name: str, prefix: str) -> PrefixMatch | None:
        words = [word.lower() for word in WORD.findall(prefix)]
        hooks = set(names_in(words, self.hook_vocabulary))
        tables = set(names_in(words, self.table_vocabulary))
        if len(hooks) != 1 or len(tables) > 1:
            return None
        return PrefixMatch(next(iter(tables), None), None, hooks.pop(), name)


# Words of a prefix: camelCase humps, runs of capitals, lower-case runs, digit runs.
WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def names_in(words: list[str], vocabulary: dict[str, str]) -> Iterable[str]:
    """What the words name, joining up to three neighbours ("post" "routing" -> postrouting)."""
    for start in range(len(words)):
        for end in range(start + 1, min(start + 3, len(words)) + 1):
            named = vocabulary.get("".join(words[start:end]))
            if named is not None:
                yield named


def expand(template: str | None, groups: dict[str, str]) -> str | None:
    """A convention value with ``{group}`` replaced by the text the pattern captured."""
    if template is None:
        return None
    try:
        return template.format(**groups)
    except KeyError:
        return None


def load_conventions(paths: Sequence[str | Path] = (), *, user: bool = True) -> Conventions:
    """The conventions in force: the user's files first, then logpath's own.

    Args:
        paths: extra prefixes files (``--prefixes FILE``); the last one given is tried first.
        user: also read ``prefixes.toml`` in the user's config directory if it exists.
    Raises:
        InputError: a prefixes file cannot be read or does not follow the format.
    """
    builtin = resources.files("logpath.grammars").joinpath("prefixes.toml")
    files: list[tuple[str, str]] = [("logpath's prefixes.toml", builtin.read_text("utf-8"))]
    if user and user_prefixes_file().is_file():
        files.append(read_prefixes_file(user_prefixes_file()))
    files.extend(read_prefixes_file(Path(path)) for path in paths)
    parsed = [parse_prefixes(text, source) for source, text in files]
    conventions = tuple(c for _, _, file_conventions in reversed(parsed) for c in file_conventions)
    tables = tuple(word for table_words, _, _ in reversed(parsed) for word in table_words)
    hooks = tuple(word for _, hook_words, _ in reversed(parsed) for word in hook_words)
    return Conventions(conventions, tables, hooks)


def read_prefixes_file(path: Path) -> tuple[str, str]:
    """(name, text) of a prefixes file, or an InputError naming it."""
    try:
        return str(path), path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the prefixes file: {error}") from None


def parse_prefixes(
    text: str, source: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[Convention]]:
    """The table words, hook words and conventions of one prefixes file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{source}: not valid TOML: {error}") from None
    vocabulary = data.get("vocabulary", {})
    tables = vocabulary_words(vocabulary.get("tables", {}), source, upper=False)
    hooks = vocabulary_words(vocabulary.get("hooks", {}), source, upper=True)
    entries = data.get("convention", [])
    return tables, hooks, [make_convention(entry, source) for entry in entries]


def vocabulary_words(section: dict[str, Any], source: str, upper: bool) -> list[tuple[str, str]]:
    """(word, name) pairs of a ``[vocabulary.*]`` table, checked."""
    pairs: list[tuple[str, str]] = []
    for name, words in section.items():
        if upper and name.upper() not in HOOK_NAMES:
            raise InputError(f"{source}: [vocabulary.hooks] {name} is not a netfilter hook")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise InputError(f"{source}: vocabulary {name} must be a list of words")
        pairs.extend((word.lower(), name.upper() if upper else name) for word in words)
    return pairs


def make_convention(entry: dict[str, Any], source: str) -> Convention:
    """One checked ``[[convention]]``."""
    name = str(entry.get("name", "?"))
    if entry.get("words"):
        return Convention(name, None, None, None, None, source)
    if "pattern" not in entry or "hook" not in entry:
        raise InputError(f"{source}: convention {name!r} needs a pattern and a hook")
    flags = re.IGNORECASE if entry.get("ignore_case") else 0
    try:
        pattern = re.compile(entry["pattern"], flags)
    except re.error as error:
        raise InputError(f"{source}: convention {name!r}: bad pattern: {error}") from None
    hook_map = entry.get("hook_map", {})
    if not isinstance(hook_map, dict) or any(
        str(hook).upper() not in HOOK_NAMES for hook in hook_map.values()
    ):
        raise InputError(f"{source}: convention {name!r}: hook_map values must be hooks")
    pairs = tuple((word, str(hook).upper()) for word, hook in hook_map.items())
    return Convention(
        name, pattern, entry.get("table"), entry["hook"], entry.get("chain"), source, pairs
    )


# ---------------------------------------------------------------------------------------------
# Resolving a hop table


@dataclass(frozen=True)
class Resolved:
    """Where one (prefix, IN, OUT, TRACE) combination was logged."""

    table: str | None
    chain: str | None
    hook: str | None
    evidence: str
    nf_family: str | None = None


def resolve_hooks(
    hops: pd.DataFrame,
    ruleset: Ruleset | Sequence[Ruleset] | None = None,
    conventions: Conventions | None = None,
) -> pd.DataFrame:
    """The hop table with ``table``, ``chain``, ``hook``, ``evidence`` and ``nf_family`` added.

    Each distinct combination of KEY_COLUMNS (prefix, interfaces, TRACE table and chain, kind)
    is resolved once, so millions of hops cost what their few distinct combinations cost.

    Args:
        hops: the hop table (columns of ``logpath.hops``; missing key columns count as null).
        ruleset: the ruleset the logs were written under, if known; or several (for example
            iptables-save and ip6tables-save output), whose fitting rules are pooled.
        conventions: prefix conventions; by default ``load_conventions()``.
    Returns:
        A copy of ``hops`` with the five columns added (categoricals; null where unknown).
    """
    conventions = conventions if conventions is not None else load_conventions()
    rulesets = [ruleset] if isinstance(ruleset, Ruleset) else list(ruleset or [])
    codes, first_rows = factorize_rows(hops)
    present = [column for column in KEY_COLUMNS if column in hops.columns]
    uniques = key_frame(hops[present].iloc[first_rows])
    resolved = [resolve_one(row, rulesets, conventions) for row in uniques.itertuples(index=False)]
    result = hops.copy(deep=False)  # the new columns only; the hop columns are shared
    for column in RESOLVED_COLUMNS:
        categories = pd.Categorical([getattr(item, column) for item in resolved])
        result[column] = pd.Categorical.from_codes(
            categories.codes[codes], categories=categories.categories
        )
    result["rule"] = traced_rules(hops, rulesets)
    return result


# What a TRACE line names of its rule, besides the table and chain (resolve_hooks' key has those).
TRACED = ("family", "trace_table", "trace_chain", "trace_type", "trace_rulenum")


def traced_rules(hops: pd.DataFrame, rulesets: Sequence[Ruleset]) -> pd.Series:
    """Per hop, the rule a legacy TRACE line names, as written in the ruleset (its text, the
    chain's policy, or the end of a user chain); None for other lines or without the rule.
    Each distinct (family, table, chain, kind, number) is looked up once."""
    rules = pd.Series(None, index=hops.index, dtype="object")
    if not rulesets or "trace_table" not in hops.columns or hops["trace_table"].isna().all():
        return rules
    traced = hops.loc[hops["trace_table"].notna(), [c for c in TRACED if c in hops.columns]]
    for key, rows in traced.groupby([c for c in TRACED if c in traced.columns], dropna=False):
        values: dict[str, Any] = dict(
            zip([c for c in TRACED if c in traced.columns], key, strict=True)
        )
        family = {4: "ip", 6: "ip6"}.get(values.get("family", 0))
        number = values.get("trace_rulenum")
        if number is None or pd.isna(number):
            continue
        texts = (
            ruleset.traced_rule(
                str(values["trace_table"]),
                str(values["trace_chain"]),
                str(values["trace_type"]),
                int(number),
                family,
            )
            for ruleset in rulesets
        )
        rules[rows.index] = next((text for text in texts if text is not None), None)
    return rules


def key_column(hops: pd.DataFrame, column: str) -> pd.Series:
    """One key column; a missing column is all null."""
    if column in hops.columns:
        return hops[column]
    return pd.Series(None, index=hops.index, dtype="object")


def key_frame(hops: pd.DataFrame) -> pd.DataFrame:
    """The key columns as plain objects, "" and NaN both turned into None."""
    # a pass over each column's values (four pandas operations each cost more, on few rows)
    return pd.DataFrame(
        {
            column: pd.Series(
                [_key_value(v) for v in key_column(hops, column).astype("object").tolist()],
                index=hops.index,
                dtype=object,
            )
            for column in KEY_COLUMNS
        },
        index=hops.index,
    )


def _key_value(value: object) -> object:
    """A key value, None for a missing or empty one."""
    if value is None or value is pd.NA or value is pd.NaT or value == "":
        return None
    return None if isinstance(value, float) and math.isnan(value) else value


def factorize_rows(hops: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(code of each hop's key combination, the position of each combination's first hop).

    Column by column with ``pd.factorize`` (categoricals factorize by their codes), folding the
    codes into one compact integer per row: no Python objects per hop.
    """
    codes = np.zeros(len(hops), dtype=np.int64)
    for column in KEY_COLUMNS:
        column_codes, uniques = pd.factorize(key_column(hops, column))
        column_codes = np.where(np.isin(column_codes, empty_positions(uniques)), -1, column_codes)
        codes, _ = pd.factorize(codes * (len(uniques) + 1) + (column_codes + 1))
    _, first_rows = np.unique(codes, return_index=True)
    return codes, first_rows


def empty_positions(uniques: Any) -> list[int]:
    """Where "" sits among a column's distinct values (it means the same as null)."""
    return [position for position, value in enumerate(uniques) if value == ""]


def resolve_one(row: Any, rulesets: list[Ruleset], conventions: Conventions) -> Resolved:
    """Where one key combination was logged, from the best evidence available."""
    if row.trace_table is not None:
        return from_trace(row, rulesets)
    found = from_rulesets(row, rulesets)
    if found is not None:
        return found
    match = conventions.match(row.prefix, row.in_iface, row.out_iface)
    if match is not None:
        return Resolved(match.table, match.chain, match.hook, "prefix")
    return Resolved(None, None, guess_hook(row.in_iface, row.out_iface, row.kind), "guess")


def from_trace(row: Any, rulesets: list[Ruleset]) -> Resolved:
    """A TRACE line names table and chain; a user chain's hook comes from the ruleset."""
    chain = row.trace_chain
    if chain in HOOKS:
        return Resolved(row.trace_table, chain, chain, "trace")
    hooks = {hook for ruleset in rulesets for hook in ruleset.hooks_of(row.trace_table, chain)}
    fitting = [hook for hook in hooks if hook_admits(hook, row.in_iface, row.out_iface)]
    hook = fitting[0] if len(fitting) == 1 else None
    return Resolved(row.trace_table, chain, hook, "trace")


def from_rulesets(row: Any, rulesets: list[Ruleset]) -> Resolved | None:
    """The LOG rules with this prefix whose interface conditions and hook fit the hop.

    Fields on which the fitting rules disagree are left null; None when no rule fits.
    """
    fitting = [
        location
        for ruleset in rulesets
        for location in ruleset.locations(row.prefix)
        if location.admits(row.in_iface, row.out_iface, row.physin, row.physout)
    ]
    if not fitting:
        return None
    return Resolved(
        agreed(fitting, "table"),
        agreed(fitting, "chain"),
        agreed(fitting, "hook"),
        "ruleset",
        agreed(fitting, "family"),
    )


def agreed(locations: list[Location], field: str) -> str | None:
    """The value all locations share for ``field``, or None if they differ."""
    values = {getattr(location, field) for location in locations}
    return values.pop() if len(values) == 1 else None
