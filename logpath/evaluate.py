"""Where the ruleset sends a packet after the rule that logged it: rule by rule, through jumps,
gotos and returns, to a verdict, then on through the later tables and hooks of its path.

    >>> from logpath.rules import load_ruleset
    >>> ruleset = load_ruleset("samples/rules/lab-host.iptables-save.rules")
    >>> facts = PacketFacts("ip", "tcp", "172.30.0.2", "10.77.0.2", 40000, 9005,
    ...                     in_iface="lpbr0", ctstate="NEW")
    >>> start = log_position(ruleset, "lp:nat:pre:lab ", facts, "PREROUTING")
    >>> result = evaluate(ruleset, facts, start, [Step("FORWARD", "lpbr0", "up0")])
    >>> result.verdict.action, [log.prefix for log in result.logs]
    ('accept', ['lp:mangle:fwd:lab ', 'lp:filter:fwd:lab '])

The kernel's order is netfilter.py's: the hooks a packet meets, and at each hook the base chains
by priority (iptables: raw, mangle, nat, filter, security; nft: each base chain's priority). An
accept ends one base chain, and the packet goes on to the next one at the hook (nft: "accept"
in one base chain does not stop the next); drop and reject end the packet. A user chain that
falls off its end returns to the rule after the jump; a base chain that does takes its policy;
``-g``/``goto`` does not come back. A nat chain runs only for a connection's first packet.

A condition that the facts cannot decide (a field the log did not show, a match logpath does not
evaluate) makes the outcome ``undecided``, naming the condition: never a guess.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from logpath.conditions import PacketFacts, facts_from_hop, holds
from logpath.grammars.ruleset_records import ChainRecord, Match, RuleRecord
from logpath.netfilter import CONNTRACK_PRIORITY, hook_admits, nft_priority, table_priority
from logpath.rules import Ruleset, base_chains, chain_family

__all__ = [
    "Evaluation",
    "Evaluator",
    "LogHit",
    "NatHit",
    "PacketFacts",
    "Position",
    "Step",
    "Verdict",
    "evaluate",
    "facts_from_hop",
    "log_position",
]

ChainKey = tuple[str | None, str, str]  # (family, table, chain), as rules.py keys chains

# iptables targets that do not end the traversal (they mark, log or count, then go on).
NON_TERMINATING = frozenset(
    "LOG NFLOG ULOG TRACE MARK CONNMARK TOS TTL HL TCPMSS DSCP ECN CLASSIFY CT NOTRACK CHECKSUM"
    " AUDIT SET CONNSECMARK SECMARK IDLETIMER LED RATEEST TEE".split()
)
NAT_TARGETS = frozenset({"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"})
# ICMP errors are RELATED to the connection they quote: NAT translates them with it, and the nat
# chains do not run for them (nf_nat_inet_fn, IP_CT_RELATED with an ICMP error).
ICMP_ERRORS = {"ip": {3, 4, 5, 11, 12}, "ip6": {1, 2, 3, 4}}
MAX_DEPTH = 64  # iptables refuses deeper jump nesting; guards against a loop in a damaged file


@dataclass(frozen=True)
class Position:
    """Where a traversal goes on from: the next rule of a chain, at a hook."""

    hook: str  # PREROUTING ... POSTROUTING
    table: str  # raw, mangle, nat, filter, security, or the nft table name
    chain: str
    rule: int  # 1-based position (never the nft handle) of the next rule: the LOG rule's + 1
    # nft: the rule that logged also has a verdict ("log prefix ... drop"): ``rule`` is that
    # rule, which matched already, and only its verdict is still to be taken.
    take_target: bool = False


class Step(NamedTuple):
    """One later hook of the packet's path, with the interfaces it has there.

    ``(hook, in_iface, out_iface)`` is enough for a routed packet; a bridged one (br_netfilter)
    gives its bridge ports too: ``physin`` None keeps the packet's, ``physout`` is as given.
    """

    hook: str
    in_iface: str | None
    out_iface: str | None
    physin: str | None = None
    physout: str | None = None


@dataclass(frozen=True)
class Verdict:
    """What the ruleset did with the packet, and the rule (or policy) that did it."""

    action: str  # accept | drop | reject | undecided
    hook: str | None
    table: str | None
    chain: str | None
    rule: int | str | None  # 1-based position in its chain, the nft handle, or "policy"
    text: str | None  # the rule as written ("policy DROP" for a policy)
    evidence: str = "ruleset"
    reason: str | None = None  # undecided: the condition or target that could not be evaluated


@dataclass(frozen=True)
class LogHit:
    """A LOG rule the packet matched on the way."""

    hook: str
    table: str
    chain: str
    rule: int | str  # position (or nft handle)
    prefix: str


@dataclass(frozen=True)
class NatHit:
    """A NAT rule the packet matched: its type and where it sends the packet."""

    hook: str
    table: str
    chain: str
    rule: int | str
    type: str  # DNAT, SNAT, MASQUERADE, REDIRECT, NETMAP
    to: str | None  # --to-destination / --to-source / --to-ports / nft "to"; None: not written
    text: str


@dataclass(frozen=True)
class Evaluation:
    """The verdict, and the LOG and NAT rules the packet matched before it, in order."""

    verdict: Verdict
    logs: tuple[LogHit, ...] = ()
    nat: tuple[NatHit, ...] = ()
    assumed: tuple[str, ...] = ()  # limit conditions evaluated as matching, with their rule


@dataclass(frozen=True)
class BaseChain:
    """A chain attached to a hook, with its place among the others there."""

    key: ChainKey
    hook: str
    priority: int
    policy: str | None
    nat: bool  # a nat chain: it runs for a connection's first packet only


@dataclass
class _Run:
    """What one traversal has gathered so far."""

    facts: PacketFacts
    logs: list[LogHit] = field(default_factory=list)
    nat: list[NatHit] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)

    def result(self, verdict: Verdict) -> Evaluation:
        return Evaluation(verdict, tuple(self.logs), tuple(self.nat), tuple(self.assumed))


Frame = list[object]  # [ChainKey, next rule index (0-based)]


def evaluate(
    ruleset: Ruleset,
    facts: PacketFacts,
    start: Position | str,
    path: Sequence[Step | tuple[str, str | None, str | None]] = (),
) -> Evaluation:
    """Continue the packet's traversal from ``start`` to a verdict (see ``Evaluator.evaluate``)."""
    return Evaluator(ruleset).evaluate(facts, start, path)


def log_position(
    ruleset: Ruleset, prefix: str, facts: PacketFacts, hook: str | None = None
) -> Position | None:
    """Where the traversal goes on after the LOG rule that logged this packet with ``prefix``."""
    return Evaluator(ruleset).log_position(prefix, facts, hook)


class Evaluator:
    """A ruleset indexed for evaluation (build it once, evaluate many packets)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules: dict[ChainKey, list[RuleRecord]] = {}
        for rule in ruleset.rules:
            self.rules.setdefault(self.key_of(rule), []).append(rule)
        self.chains = {self.key_of(chain): chain for chain in ruleset.chains}
        self.known = set(self.rules) | set(self.chains)
        self.bases = [self.base_chain(key, hook) for key, hook in base_chains(ruleset).items()]
        self.tracked = {
            family: any(needs_conntrack(rule) for key in self.rules if key[0] in (family, "inet")
                        for rule in self.rules[key])
            for family in ("ip", "ip6")
        }  # fmt: skip

    def key_of(self, record: RuleRecord | ChainRecord) -> ChainKey:
        name = record.chain if isinstance(record, RuleRecord) else record.name
        return (chain_family(self.ruleset, record), record.table, name)

    def base_chain(self, key: ChainKey, hook: str) -> BaseChain:
        chain = self.chains.get(key)
        if self.ruleset.format == "nft" and chain is not None:
            priority = nft_priority(chain.priority)
            nat = chain.type == "nat"
            policy = chain.policy or "accept"  # nft(8): a base chain's default policy
        else:
            priority = table_priority(key[1], hook)
            nat = key[1] == "nat"
            policy = chain.policy if chain is not None else None
        return BaseChain(key, hook, 0 if priority is None else priority, policy, nat)

    # --- the public entries --------------------------------------------------------------------

    def evaluate(
        self,
        facts: PacketFacts,
        start: Position | str,
        path: Sequence[Step | tuple[str, str | None, str | None]] = (),
    ) -> Evaluation:
        """Continue the packet's traversal to a verdict.

        Args:
            facts: the packet as the rules see it at ``start`` (its interfaces there included).
            start: the next rule to evaluate (``log_position``), or a hook name to start at the
                first base chain of that hook.
            path: the later hooks of the packet's path, with its interfaces at each.
        Returns:
            The verdict (the last accept when every hook accepted it) with the LOG and NAT rules
            the packet matched on the way.
        """
        steps = [Step(*step) for step in path]
        if isinstance(start, str):
            run = _Run(facts)
            return self.finish(run, self.run_hook(run, start, self.hook_bases(start, facts)), steps)
        entries = list(self.entries(start, facts))
        if not entries:
            where = f"{start.table} {start.chain}"
            return _Run(facts).result(
                undecided(
                    start.hook, None, None, None, f"no {start.hook} base chain reaches {where}"
                )
            )
        results = {self.from_entry(facts, start, base, frames, steps) for base, frames in entries}
        if len(results) == 1:
            return results.pop()
        reason = f"{start.table} {start.chain} is reached by several paths that end differently"
        return _Run(facts).result(undecided(start.hook, start.table, start.chain, None, reason))

    def log_position(
        self, prefix: str, facts: PacketFacts, hook: str | None = None
    ) -> Position | None:
        """The rule after the first LOG rule with ``prefix`` that this packet matches.

        ``hook``: where the packet was logged; None: any hook whose IN=/OUT= pattern fits the
        packet's interfaces. Prefixes equal apart from surrounding spaces are the same (a parser
        may trim the space before ``IN=``). None when no such LOG rule can have logged it.

        A LOG rule the packet surely matches wins over an earlier one whose match cannot be
        evaluated: the line is one line, so that earlier rule did not log it (had it matched,
        both would have written one). samples/lab/fates/masquerade-unlogged.nft: iptables-nft's
        own multiport rule, listed by nft, before the rule that logged the packet.
        """
        maybe = None
        for position, decided in self.log_rules(prefix, facts, hook):
            if decided:
                return position
            maybe = maybe or position
        return maybe

    def log_rules(
        self, prefix: str, facts: PacketFacts, hook: str | None
    ) -> Iterator[tuple[Position, bool]]:
        """The positions after each LOG rule with ``prefix`` the packet can match at a hook
        that fits it, and whether it surely matches."""
        for key, rules in self.rules.items():
            if not self.family_fits(key, facts):
                continue
            hooks = [hook] if hook else self.ruleset.hooks_of(key[1], key[2])
            for index, rule in enumerate(rules):
                if not rule.logs or (rule.log_prefix or "").strip() != prefix.strip():
                    continue
                results = self.condition_results(rule, facts) if rule.conditions else []
                if False in results:
                    continue
                candidate = next(
                    (h for h in hooks if hook_admits(h, facts.in_iface, facts.out_iface)), None
                )
                if candidate is None:
                    continue
                own = self.action(rule, key)[0] != "continue"  # nft: log ... drop
                where = (candidate, key[1], key[2])
                position = Position(*where, index + 1, True) if own else Position(*where, index + 2)
                yield position, rule.conditions is not None and None not in results

    # --- entering a chain ----------------------------------------------------------------------

    def entries(
        self, start: Position, facts: PacketFacts
    ) -> Iterator[tuple[BaseChain, list[Frame]]]:
        """Each base chain at the hook with a call stack that reaches ``start``'s chain."""
        for base in self.hook_bases(start.hook, facts):
            if base.key[1] != start.table:
                continue
            target = (base.key[0], start.table, start.chain)
            for frames in self.call_stacks(base.key, target, facts, 0):
                frames[-1][1] = start.rule - 1
                yield base, frames

    def call_stacks(
        self, chain: ChainKey, target: ChainKey, facts: PacketFacts, depth: int
    ) -> Iterator[list[Frame]]:
        """The stacks of frames from ``chain`` into ``target`` by rules the packet can match."""
        if chain == target:
            yield [[chain, 0]]
            return
        if depth > MAX_DEPTH:
            return
        for index, rule in enumerate(self.rules.get(chain, [])):
            action, into = self.action(rule, chain)
            if into is None or action not in ("jump", "goto"):
                continue
            if rule.conditions is not None and False in self.condition_results(rule, facts):
                continue
            for below in self.call_stacks(into, target, facts, depth + 1):
                yield below if action == "goto" else [[chain, index + 1], *below]

    def from_entry(
        self,
        facts: PacketFacts,
        start: Position,
        base: BaseChain,
        frames: list[Frame],
        steps: list[Step],
    ) -> Evaluation:
        run = _Run(facts)
        outcome = self.take_own_target(run, base, start, frames) if start.take_target else None
        if outcome is None:
            outcome = self.run_frames(run, base, frames)
        if outcome.action == "accept":
            later = self.hook_bases(start.hook, run.facts)
            following = later[later.index(base) + 1 :] if base in later else ()
            outcome = self.run_hook(run, start.hook, following) or outcome
        return self.finish(run, outcome, steps)

    def take_own_target(
        self, run: _Run, base: BaseChain, start: Position, frames: list[Frame]
    ) -> Verdict | None:
        """The verdict of the rule that logged the packet (nft ``log ... drop``)."""
        key = frames[-1][0]
        assert isinstance(key, tuple)
        index = start.rule - 1
        frames[-1][1] = index + 1
        rule = self.rules[key][index]
        where = (base.hook, key[1], key[2], rule.handle or start.rule)
        return self.take_target(run, rule, key, where, frames)

    # --- hooks and base chains -----------------------------------------------------------------

    def finish(self, run: _Run, outcome: Verdict | None, steps: list[Step]) -> Evaluation:
        """Go on through the later hooks while every base chain accepts."""
        for step in steps:
            if outcome is not None and outcome.action != "accept":
                break
            run.facts = replace(
                run.facts,
                in_iface=step.in_iface,
                out_iface=step.out_iface,
                physin=step.physin if step.physin is not None else run.facts.physin,
                physout=step.physout,
            )
            outcome = (
                self.run_hook(run, step.hook, self.hook_bases(step.hook, run.facts)) or outcome
            )
        if outcome is None:
            outcome = undecided(None, None, None, None, "no base chain on the packet's path")
        return run.result(outcome)

    def hook_bases(self, hook: str, facts: PacketFacts) -> tuple[BaseChain, ...]:
        """The base chains a packet of this family meets at ``hook``, in priority order."""
        return self.bases_at(hook, facts.family)

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one Evaluator per ruleset, kept while used)
    def bases_at(self, hook: str, family: str) -> tuple[BaseChain, ...]:
        found = [b for b in self.bases if b.hook == hook and b.key[0] in (family, "inet")]
        return tuple(sorted(found, key=lambda base: base.priority))  # stable: file order at a tie

    def family_fits(self, key: ChainKey, facts: PacketFacts) -> bool:
        return key[0] in (facts.family, "inet")

    def run_hook(self, run: _Run, hook: str, bases: Sequence[BaseChain]) -> Verdict | None:
        """Every base chain in turn; the last accept, or the first drop/reject/undecided."""
        outcome = None
        for base in bases:
            if base.nat:
                runs = self.nat_runs(run.facts)
                if runs is None:
                    reason = (
                        "a nat chain runs only for a connection's first packet: ct state unknown"
                    )
                    return undecided(hook, base.key[1], base.key[2], None, reason)
                if not runs:
                    continue
            outcome = self.run_frames(run, base, [[base.key, 0]])
            if outcome.action != "accept":
                return outcome
        return outcome

    def nat_runs(self, facts: PacketFacts) -> bool | None:
        """Whether the nat chains see this packet: a new connection's first packet only (the
        NAT of a confirmed entry is decided: nf_nat_inet_fn runs the chains while
        !nf_nat_initialized).

        Without a conntrack entry no nat chain runs (nf_nat_inet_fn accepts a packet without
        one), and a netns tracks connections of a family only once a rule needs it (a conntrack
        or state match, a NAT target: nf_ct_netns_get). samples/lab: the ip6 nat table held
        only LOG rules, and no IPv6 packet was logged by them.
        """
        if not self.tracks(facts.family):
            return False
        if facts.ctstate is None:
            return None
        state = facts.ctstate.upper()
        if state == "RELATED" and facts.proto in ("icmp", "icmpv6"):
            if facts.icmp_type is None:
                return None
            return facts.icmp_type not in ICMP_ERRORS.get(facts.family, set())
        return state in ("NEW", "RELATED") and not facts.confirmed

    def tracks(self, family: str) -> bool:
        """Whether some rule of the family makes the kernel track connections."""
        return self.tracked.get(family, False)

    # --- one chain -----------------------------------------------------------------------------

    def run_frames(self, run: _Run, base: BaseChain, frames: list[Frame]) -> Verdict:
        """Rule by rule from the top frame, through jumps and returns, to this chain's outcome."""
        while frames:
            key, index = frames[-1]
            assert isinstance(key, tuple) and isinstance(index, int)
            rules = self.rules.get(key, [])
            if index >= len(rules):
                frames.pop()  # fell off a user chain's end: back to the rule after the jump
                continue
            frames[-1][1] = index + 1
            outcome = self.run_rule(run, base, key, index, frames)
            if outcome is not None:
                return outcome
        return policy(base)

    def run_rule(
        self, run: _Run, base: BaseChain, key: ChainKey, index: int, frames: list[Frame]
    ) -> Verdict | None:
        """One rule: None to go on (to the next rule, or into the chain it jumped to)."""
        rule = self.rules[key][index]
        where = (base.hook, key[1], key[2], rule.handle or index + 1)
        facts = self.seen_by(run.facts, base)
        if rule.conditions is None:
            reason = "the stored ruleset has no conditions (give --rules again at ingest)"
            return undecided(*where, reason, rule.text)
        results = self.condition_results(rule, facts)
        if False in results:
            return None
        if None in results:
            unknown = rule.conditions[results.index(None)]
            return undecided(*where, f"cannot evaluate {describe(unknown, facts)}", rule.text)
        self.note_match(run, rule, where)
        return self.take_target(run, rule, key, where, frames)

    def seen_by(self, facts: PacketFacts, base: BaseChain) -> PacketFacts:
        """The facts as a chain sees them: before conntrack (raw) a packet has no entry, and
        its state conditions see INVALID (xt_conntrack, nft_ct), unless it comes back over
        the loopback, which keeps the entry OUTPUT gave it (nf_conntrack_in: "loopback")."""
        looped = base.hook == "PREROUTING" and facts.in_iface == "lo"
        if base.priority < CONNTRACK_PRIORITY and not looped:
            return replace(facts, ctstate="INVALID")
        return facts

    def condition_results(self, rule: RuleRecord, facts: PacketFacts) -> list[bool | None]:
        return [holds(match, facts) for match in rule.conditions or ()]

    def note_match(self, run: _Run, rule: RuleRecord, where: tuple[str, str, str, int]) -> None:
        """A matched rule's LOG, and the limits evaluated as matching."""
        hook, table, chain, position = where
        if any(match.kind == "limit" for match in rule.conditions or ()):
            run.assumed.append(f"{table} {chain} #{position}: {rule.text}")
        if rule.logs and rule.log_prefix is not None:
            run.logs.append(LogHit(hook, table, chain, position, rule.log_prefix))

    def take_target(
        self,
        run: _Run,
        rule: RuleRecord,
        key: ChainKey,
        where: tuple[str, str, str, int],
        frames: list[Frame],
    ) -> Verdict | None:
        action, into = self.action(rule, key)
        if action in ("accept", "drop", "reject"):
            return Verdict(action, *where, rule.text)
        if action == "nat":
            self.translate(run, rule, where)
            return Verdict("accept", *where, rule.text)
        if action == "return":
            frames.pop()
        elif action in ("jump", "goto"):
            assert into is not None
            if len(frames) > MAX_DEPTH:
                return undecided(*where, "jumps nested too deep (a loop?)", rule.text)
            if action == "goto":
                frames.pop()
            frames.append([into, 0])
        elif action != "continue":
            return undecided(*where, target_reason(action), rule.text)
        return None

    def action(self, rule: RuleRecord, key: ChainKey) -> tuple[str, ChainKey | None]:
        """What a matching rule does: accept, drop, reject, return, continue, nat, jump or goto
        (with the chain), or the target's name when logpath cannot tell."""
        target = rule.verdict
        if target is None:
            return "continue", None
        if target.chain is not None:
            into = (key[0], key[1], target.chain)
            if into not in self.known:
                return f"{target.text}: no such chain", None
            return ("goto" if target.goto else "jump"), into
        if (key[0], key[1], target.name) in self.known:  # iptables: a chain before an extension
            return "jump", (key[0], key[1], target.name)
        name = target.name.upper()
        if name in ("ACCEPT", "DROP", "REJECT", "RETURN", "CONTINUE"):
            return name.lower(), None
        if name in NAT_TARGETS:
            return "nat", None
        if name in NON_TERMINATING:
            return "continue", None
        return target.text, None  # QUEUE/NFQUEUE (a program decides), or unknown to logpath

    def translate(self, run: _Run, rule: RuleRecord, where: tuple[str, str, str, int]) -> None:
        """Record a NAT rule, and change the facts the later rules see as it does."""
        assert rule.verdict is not None
        kind = rule.verdict.name.upper()
        options = dict(rule.verdict.options)
        to = next((options[o] for o in NAT_OPTIONS if o in options), None)
        run.nat.append(NatHit(*where, kind, to, rule.text))
        address, port = split_address(to) if to else (None, None)
        facts = run.facts
        if kind == "DNAT":
            run.facts = replace(facts, dst=address, dport=port if port is not None else facts.dport)
        elif kind == "SNAT":
            run.facts = replace(facts, src=address, sport=port if port is not None else facts.sport)
        elif kind == "MASQUERADE":  # the out interface's address, which the facts do not hold
            run.facts = replace(facts, src=None)
        elif kind == "REDIRECT":  # the in interface's address
            run.facts = replace(facts, dst=None, dport=port if port is not None else facts.dport)
        else:
            run.facts = replace(facts, src=None, dst=None)


NAT_OPTIONS = ("--to-destination", "--to-source", "--to-ports", "--to", "to")


def split_address(to: str) -> tuple[str | None, int | None]:
    """``172.30.0.2:80`` / ``[fd00::2]:80`` / ``10.0.0.1`` / ``:8080`` as (address, port); a
    range of addresses or ports is no one value (None)."""
    host, port = to, None
    if to.startswith("["):
        host, _bracket, rest = to[1:].partition("]")
        port = rest.removeprefix(":") or None
    elif to.count(":") == 1:
        host, port = to.split(":")
    try:
        address = str(ipaddress.ip_address(host)) if host else None
    except ValueError:
        address = None
    return address, int(port) if port and port.isdigit() else None


def needs_conntrack(rule: RuleRecord) -> bool:
    """A rule whose match or target makes the kernel track its family's connections."""
    if rule.verdict is not None and rule.verdict.name.upper() in NAT_TARGETS | {"CT", "NOTRACK"}:
        return True
    for match in rule.conditions or ():
        text = match.values[0] if match.kind == "unsupported" and match.values else ""
        if match.kind == "ctstate" or text.startswith(("-m conntrack", "-m state", "ct ")):
            return True
    return False


def target_reason(action: str) -> str:
    """Why a target leaves the outcome undecided."""
    if action.endswith("no such chain"):
        return action
    if "QUEUE" in action.upper():
        return f"{action} (a program decides)"
    return f"{action} (a target logpath does not know)"


def policy(base: BaseChain) -> Verdict:
    """The base chain's policy, for a packet that fell off its end (or returned from it)."""
    hook, table, chain = base.hook, base.key[1], base.key[2]
    if base.policy is None:
        return undecided(hook, table, chain, "policy", "the chain's policy is not in the ruleset")
    action = base.policy.lower()
    if action not in ("accept", "drop"):
        return undecided(hook, table, chain, "policy", f"policy {base.policy}")
    return Verdict(action, hook, table, chain, "policy", f"policy {base.policy}")


def undecided(
    hook: str | None,
    table: str | None,
    chain: str | None,
    rule: int | str | None,
    reason: str,
    text: str | None = None,
) -> Verdict:
    return Verdict("undecided", hook, table, chain, rule, text, reason=reason)


# The facts each kind of condition reads, and how the user calls them.
FACT_FIELDS = {
    "src": ("src",), "dst": ("dst",), "sport": ("sport",), "dport": ("dport",),
    "port": ("sport", "dport"), "proto": ("proto",), "ctstate": ("ctstate",),
    "src_type": ("src", "local_addrs"), "dst_type": ("dst", "local_addrs"),
    "icmp_type": ("icmp_type", "icmp_code"), "icmp_code": ("icmp_code",),
    "tcp_flags": ("tcp_flags",),
}  # fmt: skip
FACT_NAMES = {"local_addrs": "the host's addresses", "ctstate": "the conntrack state"}


def describe(match: Match, facts: PacketFacts) -> str:
    """The condition as the user reads it, and why it cannot be evaluated.

    >>> print(describe(Match("dport", False, ("80",)), PacketFacts("ip", "tcp", "1.1.1.1", None)))
    dport 80 (not known: the packet's dport)
    """
    if match.kind == "unsupported":
        return f"{match.values[0]} (a condition logpath does not evaluate)"
    shown = f"{'! ' if match.negated else ''}{match.kind} {','.join(match.values)}"
    missing = [name for name in FACT_FIELDS.get(match.kind, ()) if getattr(facts, name) is None]
    if missing:
        names = [FACT_NAMES.get(name, f"the packet's {name}") for name in missing]
        return f"{shown} (not known: {', '.join(names)})"
    return f"{shown} (a value logpath does not read)"
