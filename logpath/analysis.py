"""What went wrong with a connection, in a few sentences, each saying its evidence.

``analyse`` reads a Journey (its packets' fates, verdicts and last hops; the connection's
answer) and says which packets died where and by which rule, which ones logpath cannot follow,
and whether an answer came back; nothing when all went well. It never turns a guess into a
fact: a packet whose fate is ``unknown`` is said to be unknown, with what would tell (the
ruleset, ``--rules``). Hints for well-known chains (Docker, UFW, firewalld) come from
``grammars/hints.toml`` (``load_hints``).

    >>> analyse(journey).findings
    ('2 of 2 packets (#1 SYN, #2 SYN) were dropped by filter DOCKER-ISOLATION-STAGE-2 #2 in
    FORWARD (ruleset) at lpbr0[vethc1] → lpbr1.', 'No answer was logged.')
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from logpath.errors import InputError
from logpath.icmp import icmp_name
from logpath.journeys import Journey, JourneyHop, Packet

# Fates that mean the packet did not get where it was going, or logpath cannot tell.
TROUBLE = ("dropped", "rejected", "lost", "stopped", "unknown")
# At most this many packets are named in one sentence; the rest are counted.
NAMED = 4


@dataclass(frozen=True)
class HintRule:
    """One ``[[hint]]`` of a hints file: chains it is about, and its sentence."""

    name: str
    """Its short name, unique in the file."""
    chain: re.Pattern[str]
    """Matches the whole chain name."""
    table: re.Pattern[str] | None
    """Matches the whole table name; None for any table."""
    text: str
    """What the chain is, what to do."""

    def matches(self, table: str | None, chain: str) -> bool:
        """Whether a chain (in a table, when known) is one this hint is about."""
        if not self.chain.fullmatch(chain):
            return False
        return self.table is None or (table is not None and bool(self.table.fullmatch(table)))


@dataclass(frozen=True)
class Hint:
    """A hint chosen for a connection: the chain it is about and why it was chosen."""

    name: str
    """The hint's name in the hints file."""
    table: str | None
    """The table of the chain (None when the hop's table is not known)."""
    chain: str
    """The chain, as the verdict or the hop names it."""
    packets: tuple[int, ...]
    """The packets that died (or were last logged) in that chain: the evidence."""
    text: str
    """The hint's sentence."""

    def to_json(self) -> dict[str, Any]:
        """``{"name", "table", "chain", "packets", "text"}``."""
        return {
            "name": self.name,
            "table": self.table,
            "chain": self.chain,
            "packets": list(self.packets),
            "text": self.text,
        }


@dataclass(frozen=True)
class Analysis:
    """What went wrong with a connection (empty when nothing did)."""

    findings: tuple[str, ...]
    """Sentences, each ending with its evidence: which packets, which rule, where."""
    hints: tuple[Hint, ...]
    """Hints for the well-known chains the troubled packets died in."""

    @property
    def text(self) -> str:
        """The findings as one paragraph ("" when all went well)."""
        return " ".join(self.findings)

    def to_json(self) -> dict[str, Any]:
        """``{"text", "hints"}``: the journey contract's ``analysis``."""
        return {"text": self.text, "hints": [hint.to_json() for hint in self.hints]}


def analyse(journey: Journey, hints: Sequence[HintRule] | None = None) -> Analysis:
    """The analysis of a connection: its troubled packets grouped by what stopped them, then
    whether an answer came; hints (logpath's own unless ``hints`` is given) for their chains.

    Example:
        >>> analyse(journey).findings
        ('#1 SYN was rejected by filter DOCKER-USER #1 in FORWARD (ruleset) at lpbr1[vethc2]
        → lpbr0.', 'No answer was logged.')
    """
    hosts = len({hop.host for packet in journey.packets for hop in packet.hops}) > 1
    findings = [_finding(group, len(journey.packets), hosts) for group in _troubled_groups(journey)]
    if not journey.flow.answered:
        findings.append(_no_answer(journey, hosts))
    rules = builtin_hints() if hints is None else hints
    return Analysis(tuple(findings), tuple(choose_hints(journey, rules)))


def _troubled_groups(journey: Journey) -> list[list[Packet]]:
    """Troubled packets grouped by their fate and what decided it, in packet order."""
    groups: dict[tuple[object, ...], list[Packet]] = {}
    for packet in journey.packets:
        if packet.fate in TROUBLE and not _unjudged_error(packet):
            groups.setdefault(_cause(packet), []).append(packet)
    return list(groups.values())


def _unjudged_error(packet: Packet) -> bool:
    """An ICMP error whose fate nothing decided (no ruleset, no trace): where it went after its
    last line is no trouble of the connection's; the error is the answer the last finding
    names ("only an ICMP error")."""
    quoting = bool(packet.hops) and all(hop.quote is not None for hop in packet.hops)
    return quoting and packet.fate == "unknown" and packet.verdict is None


def _cause(packet: Packet) -> tuple[object, ...]:
    """What makes two troubled packets one finding: what its sentence says, the same fate, rule
    (or reason) and place (the rule that accepted a lost packet is not said: nat chains see a
    connection's first packet only, so two lost SYNs may be accepted in different tables)."""
    verdict = packet.verdict or {}
    if packet.fate in ("dropped", "rejected") and packet.verdict:
        decided: tuple[object, ...] = (rule_name(verdict), verdict.get("evidence"))
    else:
        decided = (verdict.get("reason"), verdict.get("evidence"))
    place = _place(packet.hops[-1], True) if packet.hops else ""
    return (packet.fate, _last_hook(packet), place, decided)


def _finding(packets: list[Packet], total: int, hosts: bool) -> str:
    """One sentence about packets that share a fate and its cause (``hosts``: name the host
    of the place, the journey crossing several)."""
    first = packets[0]
    who, was = _who(packets, total)
    place = _place(first.hops[-1], hosts) if first.hops else ""
    where = f" at {place}" if place else ""
    after = f"after {_last_hook(first)}"
    verdict = first.verdict
    if first.fate in ("dropped", "rejected") and verdict is not None:
        return f"{who} {was} {first.fate} by {rule_name(verdict)} ({verdict['evidence']}){where}."
    if first.fate == "lost" and verdict is not None:
        return (
            f"{who} {was} lost {after}{where}: {verdict['reason']} ({verdict['evidence']}); "
            "what stopped it on the way is not in the logs (rp_filter, a missing route, a full "
            "queue, a rule the ruleset given does not have, or a line the kernel did not log)."
        )
    again = _sent_again(packets)
    if first.fate == "stopped":
        return (
            f"{who} stopped {after}{where}, where other packets of the connection went on{again}: "
            "dropped there or lost to the logs (the ruleset, --rules, can tell which)."
        )
    if verdict is not None and verdict.get("reason"):
        reason = f"{verdict['reason']} ({verdict['evidence']})"
        return f"logpath cannot tell what became of {who} {after}{where}{again}: {reason}."
    return (
        f"logpath cannot tell what became of {who} {after}{where}{again}: "
        "give the ruleset with --rules."
    )


def _sent_again(packets: list[Packet]) -> str:
    """`` (sent again as #2: no answer came to it)`` when the next packet repeats these (a
    TCP retransmission: the sender heard nothing back)."""
    numbers = [f"#{p.sent_again_as}" for p in packets if p.sent_again_as is not None]
    if not numbers:
        return ""
    it = "it" if len(packets) == 1 else "them"
    return f" (sent again as {', '.join(numbers)}: no answer came to {it})"


def _who(packets: list[Packet], total: int) -> tuple[str, str]:
    """``#1 SYN`` and "was", or ``2 of 3 packets (#1 SYN, #2 SYN)`` and "were"."""
    named = [f"#{p.n} {p.summary}" for p in packets[:NAMED]]
    if len(packets) > NAMED:
        named.append(f"{len(packets) - NAMED} more")
    if len(packets) == 1:
        return named[0], "was"
    return f"{len(packets)} of {total} packets ({', '.join(named)})", "were"


def _last_hook(packet: Packet) -> str:
    """The hook its logs end at (the table too when known): ``filter FORWARD``."""
    if not packet.hops:
        return "its last line"
    last = packet.hops[-1]
    hook = packet.stopped_at or last.hook
    if hook is None:
        return "its last line"
    return f"{last.table} {hook}" if last.table and hook == last.hook else hook


def _place(hop: JourneyHop, host: bool = False) -> str:
    """``lpbr0[vethc1] → up0``: the interfaces of a hop ("" when it shows none), after its
    host's name when ``host``."""
    entered = (hop.in_iface or "") + (f"[{hop.physin}]" if hop.physin else "")
    left = (hop.out_iface or "") + (f"[{hop.physout}]" if hop.physout else "")
    if not entered and not left:
        return ""
    on = f"{hop.host} " if host and hop.host else ""
    return f"{on}{entered or '·'} → {left or '·'}"


def rule_name(verdict: Mapping[str, Any], with_hook: bool = True) -> str:
    """``filter FORWARD #4``, ``filter FORWARD policy``, ``filter DOCKER-USER #2 in FORWARD``
    (the hook named, ``with_hook``, when the chain is a user chain)."""
    rule = verdict.get("rule")
    name = f"{verdict.get('table')} {verdict.get('chain')}"
    if rule == "policy":
        name += " policy"
    elif rule is not None:  # an nft trace without handles (nft list ruleset -a) names none
        name += f" #{rule}"
    hook = verdict.get("hook")
    if with_hook and hook and hook != verdict.get("chain"):
        name += f" in {hook}"
    return name


def _no_answer(journey: Journey, hosts: bool) -> str:
    """No reply came back: the ICMP errors that did, else where its last orig packet went."""
    errors = [p for p in journey.packets if p.hops and p.hops[0].fields.get("inner")]
    if errors:
        kinds = "an ICMP error" if len(errors) == 1 else f"{len(errors)} ICMP errors"
        named = ", ".join(map(_icmp_error, errors[:NAMED]))
        return f"No answer was logged, only {kinds}: {named}."
    orig = [p for p in journey.packets if p.direction == "orig"]
    if not orig or orig[-1].fate in TROUBLE:
        return "No answer was logged."
    last = orig[-1]
    place = _place(last.hops[-1], hosts) if last.hops else ""
    where = f" ({place})" if place else ""
    text = (
        f"No answer was logged: #{last.n} {last.summary}, the last orig packet, was "
        f"{last.fate}, last logged at {_last_hook(last)}{where}; nothing in these logs shows "
        "what came after"
    )
    if last.verdict is None and last.fate != "delivered":
        text += " (the ruleset, --rules, can tell whether a later rule dropped it)"
    return text + "."


def _icmp_error(packet: Packet) -> str:
    """``#2 port unreachable from 10.77.0.2`` for an ICMP error of the connection."""
    hop = packet.hops[0]
    fields = hop.fields
    kind = icmp_name(fields.get("proto"), fields.get("icmp_type"), fields.get("icmp_code"))
    return f"#{packet.n} {kind or packet.summary} from {hop.src}"


def choose_hints(journey: Journey, rules: Sequence[HintRule]) -> list[Hint]:
    """A hint per well-known chain the connection's troubled packets died in (the verdict's
    chain) or were last logged in; for an unanswered connection, also its last orig packet's."""
    places: dict[tuple[str | None, str], list[int]] = {}
    for packet, table, chain in _chains_to_explain(journey):
        numbers = places.setdefault((table, chain), [])
        if packet.n not in numbers:
            numbers.append(packet.n)
    found: list[Hint] = []
    for (table, chain), numbers in places.items():
        rule = next((r for r in rules if r.matches(table, chain)), None)
        if rule is not None:
            found.append(Hint(rule.name, table, chain, tuple(numbers), rule.text))
    return found


def _chains_to_explain(journey: Journey) -> Iterable[tuple[Packet, str | None, str]]:
    """(packet, table, chain) of each chain a troubled packet's story names."""
    chosen = [p for p in journey.packets if p.fate in TROUBLE]
    orig = [p for p in journey.packets if p.direction == "orig"]
    if not journey.flow.answered and orig and orig[-1] not in chosen:
        chosen.append(orig[-1])
    for packet in chosen:
        verdict = packet.verdict
        if verdict is not None and packet.fate in ("dropped", "rejected") and verdict["chain"]:
            yield packet, verdict.get("table"), str(verdict["chain"])
        if packet.hops and packet.hops[-1].chain:
            yield packet, packet.hops[-1].table, str(packet.hops[-1].chain)


@functools.cache
def builtin_hints() -> tuple[HintRule, ...]:
    """logpath's own ``hints.toml`` (read once)."""
    text = resources.files("logpath.grammars").joinpath("hints.toml").read_text("utf-8")
    return load_hints(text, "logpath's hints.toml")


# The keys a [[hint]] may have; the first three are required.
HINT_KEYS = ("name", "chain", "text", "table")


def load_hints(text: str, source: str) -> tuple[HintRule, ...]:
    """The hints of a hints file's text, checked (see ``grammars/hints.toml`` for the format).

    Raises:
        InputError: not TOML, or a hint with a missing, unknown or ill-typed key, a pattern
            that is not a regular expression, or a name used twice.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{source}: not valid TOML: {error}") from None
    extra = sorted(set(data) - {"hint"})
    entries = data.get("hint", [])
    if extra or not isinstance(entries, list):
        found = f"[{extra[0]}]" if extra else "hint = ..."
        raise InputError(f"{source}: expected only [[hint]] tables, found {found}")
    rules = [_hint_rule(entry, n, source) for n, entry in enumerate(entries, start=1)]
    names = [rule.name for rule in rules]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise InputError(f"{source}: hint name {twice[0]!r} is used twice: names must be unique")
    return tuple(rules)


def _hint_rule(entry: object, n: int, source: str) -> HintRule:
    """One checked ``[[hint]]`` (the ``n``-th of the file)."""
    if not isinstance(entry, dict):
        raise InputError(f"{source}: hint {n}: expected a [[hint]] table")
    where = f"{source}: hint {n} ({entry.get('name', 'no name')!r})"
    unknown = sorted(set(entry) - set(HINT_KEYS))
    if unknown:
        raise InputError(
            f"{where}: unknown key {unknown[0]!r}\n\nA hint has the keys {', '.join(HINT_KEYS)}."
        )
    for key in HINT_KEYS:
        if key not in entry and key != "table":
            raise InputError(f'{where}: missing {key} = "..."')
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise InputError(f"{where}: {key} must be a non-empty string")
    table = entry.get("table")
    return HintRule(
        name=entry["name"],
        chain=_pattern(entry["chain"], f"{where}: chain"),
        table=None if table is None else _pattern(table, f"{where}: table"),
        text=" ".join(entry["text"].split()),
    )


def _pattern(text: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as error:
        raise InputError(f"{where}: not a regular expression: {error}") from None
