"""Fates from the ruleset's verdicts: each packet judged by the rules the logs were written
under (see ``logpath.fates``, which asks here only when a ruleset is known: the evaluator is
not imported by the questions that only read stored fates).

The traversal goes on from the rule after the LOG rule that logged the packet's last hop (or
the rule a TRACE line names), through the later tables and hooks of its path, to a verdict
(``logpath.evaluate``). A packet is then ``dropped`` or ``rejected`` by a rule, ``lost`` when a
later LOG rule matches it and nothing logged it, ``unlogged`` when it went on where no LOG rule
matches, ``unknown`` when a rule cannot be evaluated or its path is not known; otherwise its
structural fate stands, now confirmed by the rules.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from logpath.conditions import PacketFacts, facts_from_hop
from logpath.evaluate import Evaluation, Evaluator, LogHit, NatHit, Position, Step
from logpath.nat import local_addresses
from logpath.netfilter import HOOK_STAGE, LATER_HOOK

__all__ = ["judged"]

# Fates a packet's last hook gives (and the rules confirm): its journey ended where it should.
ENDED = frozenset({"delivered", "forwarded", "sent", "switched", "arrived"})


def judged(
    hops: pd.DataFrame, fates: pd.DataFrame, evaluator: Evaluator, answered_flows: pd.Series
) -> pd.DataFrame:
    """``fates`` with each packet's verdict and the fate it gives (see the module);
    ``answered_flows``: per flow, whether a packet travelled the reply way."""
    states = _conntrack_states(hops)
    paths = _Paths(hops)
    local = _local_addresses(hops)
    # a LOG rule that wrote no line in these logs says nothing of one packet it did not log (the
    # ruleset may be newer than the logs: the seed article's final ruleset has such rules)
    logging = set(hops["prefix"].dropna().astype(str).str.strip().unique().tolist())
    answered = answered_flows.to_dict()
    last = hops[~hops["packet"].duplicated(keep="last").to_numpy()]
    # plain dicts in the loop: a pandas item read or write cost more than the verdict itself
    fate, verdict = fates["fate"].to_dict(), fates["verdict"].to_dict()
    nat: dict[int, tuple[NatHit, ...]] = {}
    for hop in _records(last):
        hook = hop.get("hook")
        if not isinstance(hook, str):
            continue
        packet = int(hop["packet"])
        state, confirmed = states[packet]
        host = hop.get("host")
        facts = facts_from_hop(hop, state, confirmed=confirmed, local_addrs=local.get(host))
        prefix = hop.get("prefix")
        traced = hop.get("trace_table") is not None
        if traced:
            start = _traced_position(hop, hook)
        elif isinstance(prefix, str):
            start = evaluator.log_position(prefix, facts, hook)
        else:
            start = None
        if start is None:  # a line no LOG rule of this ruleset writes (another host's)
            continue
        steps, known = paths.after(hop, local.get(host))
        either = False
        if known:
            found = _missed_only(evaluator.evaluate(facts, start, steps), logging)
        else:
            found, known, either = _either_route(evaluator, facts, start, hop, logging)
        # a LOG rule's own chain may decide too (LOG, then DROP): that is the ruleset's word
        if traced and _decided_where_traced(found, start):
            found = dataclasses.replace(
                found, verdict=dataclasses.replace(found.verdict, evidence="trace")
            )
        fate[packet] = _fate(found, str(fate[packet]), known, bool(answered[hop["flow"]]))
        verdict[packet] = json.dumps(_verdict_json(found, known, either))
        if found.nat:
            nat[packet] = found.nat
    return fates.assign(
        fate=pd.Series(fate).reindex(fates.index),
        verdict=pd.Series(verdict).reindex(fates.index),
        nat_rules=pd.Series(nat, dtype="object").reindex(fates.index),
    )


def _missed_only(found: Evaluation, logging: set[str]) -> Evaluation:
    """The evaluation with only the LOG rules it matched that wrote lines in these logs."""
    missed = [log for log in found.logs if log.prefix.strip() in logging]
    return dataclasses.replace(found, logs=tuple(missed))


# After PREROUTING the routing sends a packet to INPUT (a local address) or to FORWARD: its
# interfaces there are the in interface, and an out interface only the route knows.
ROUTES = (("INPUT",), ("FORWARD", "POSTROUTING"))


def _either_route(
    evaluator: Evaluator,
    facts: PacketFacts,
    start: Position,
    hop: Mapping[str, Any],
    logging: set[str],
) -> tuple[Evaluation, bool, bool]:
    """A packet last logged at PREROUTING whose route nothing shows (no later hop of its
    connection, not to a known local address): when, routed either way, a LOG rule that
    wrote lines in these logs matches it, no line showing it means it was lost whichever way
    the host routed it (rp_filter, a failed route: samples/lab/fates/rp-filter.*).

    Returns the evaluation, whether the packet's fate is known from it (dropped before the
    route, or lost either way), and whether it is the either-way one (the INPUT way's, with
    one missed LOG rule of each way); otherwise the evaluation to the end of PREROUTING.
    """
    found = _missed_only(evaluator.evaluate(facts, start, []), logging)
    if start.hook != "PREROUTING" or found.verdict.action != "accept":
        return found, found.verdict.action != "accept", False
    ways = []
    for route in ROUTES:
        in_iface = hop.get("in_iface")
        steps = [Step(h, in_iface if h != "POSTROUTING" else None, None) for h in route]
        way = _missed_only(evaluator.evaluate(facts, start, steps), logging)
        if not way.logs:  # the way a rule cannot be evaluated on says which
            return (way if way.verdict.action == "undecided" else found), False, False
        ways.append(way)
    return dataclasses.replace(ways[0], logs=tuple(way.logs[0] for way in ways)), True, True


def _traced_position(hop: Mapping[str, Any], hook: str) -> Position | None:
    """Where a legacy TRACE line says the packet was: a rule that matched (its target still to
    take), or a chain it fell off (the policy, or the return of a user chain: the rule after)."""
    table, chain = str(hop["trace_table"]), str(hop.get("trace_chain"))
    kind, number = hop.get("trace_type"), hop.get("trace_rulenum")
    if number is None:
        return None
    if kind == "rule":
        return Position(hook, table, chain, int(number), take_target=True)
    return Position(hook, table, chain, int(number))  # past the last rule: policy or return


def _decided_where_traced(found: Evaluation, start: Position) -> bool:
    """Whether the verdict is the traced rule's own (or the traced chain's policy)."""
    verdict = found.verdict
    if (verdict.table, verdict.chain) != (start.table, start.chain):
        return False
    return verdict.rule == start.rule or verdict.rule == "policy"


def _fate(found: Evaluation, structural: str, path_known: bool, answered: bool) -> str:
    """The fate a verdict gives. A packet of an answered connection is not called lost (the
    answer shows it got through: what did not log it is not in the ruleset), and where the
    ruleset cannot decide, its answer still tells where it went."""
    action = found.verdict.action
    if action == "drop":
        return "dropped"
    if action == "reject":
        return "rejected"
    if action != "accept":
        # undecided: an answered connection still shows the packet went where its logs end
        return structural if answered and structural in ENDED else "unknown"
    if found.logs:
        return "unknown" if answered else "lost"
    if structural in ENDED:
        return structural
    return "unlogged" if path_known else "unknown"


def _verdict_json(
    found: Evaluation, path_known: bool = True, either_way: bool = False
) -> dict[str, Any]:
    """The journey contract's ``verdict``; a lost packet's names the LOG rule that missed it
    (one for each way the host may have routed it), one whose route is not known says so."""
    v = found.verdict
    reason = v.reason
    if either_way:
        rules = " or ".join(_log_rule(missed) for missed in found.logs)
        reason = f"{rules}, whichever way the host routed it, and no line shows it there"
    elif v.action == "accept" and found.logs:
        reason = f"{_log_rule(found.logs[0])} and no line shows it there"
    elif v.action == "accept" and not path_known:
        reason = "where the host routed it after PREROUTING: no later line of its connection"
    return {
        "action": v.action,
        "hook": v.hook,
        "table": v.table,
        "chain": v.chain,
        "rule": v.rule,
        "text": v.text,
        "evidence": v.evidence,
        "reason": reason,
    }


def _log_rule(hit: LogHit) -> str:
    """A LOG rule that matches a packet, and where: ``mangle INPUT #1 (prefix 'x') matches it
    at INPUT``."""
    return (
        f"{hit.table} {hit.chain} #{hit.rule} (prefix {hit.prefix.strip()!r}) "
        f"matches it at {hit.hook}"
    )


def _records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """The rows as dicts, missing values as None (column by column, not cell by cell)."""
    names = [str(c) for c in frame.columns]
    columns = [frame[c].astype("object").where(frame[c].notna(), None).tolist() for c in names]
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def _conntrack_states(hops: pd.DataFrame) -> dict[int, tuple[str, bool]]:
    """Per packet the conntrack state the rules see, and whether its entry is confirmed: a
    connection's orig packets are NEW until an answer (the first unconfirmed, its
    retransmissions confirmed), the answer and all after ESTABLISHED, ICMP errors RELATED."""
    first = hops[~hops["packet"].duplicated().to_numpy()]
    order = first.sort_values(["flow", "clock", "packet"], kind="stable")
    answer = order["direction"].eq("reply").to_numpy() & ~order["related"].astype(bool).to_numpy()
    flow = order["flow"].to_numpy()
    since = pd.Series(answer).groupby(flow).cummax().to_numpy()  # answered by now (or itself)
    related = order["related"].astype(bool).to_numpy()
    new = ~since & ~related
    earlier_new = pd.Series(new).groupby(flow).cumsum().to_numpy() > 1
    states = np.where(related, "RELATED", np.where(since, "ESTABLISHED", "NEW"))
    return {
        int(p): (str(s), bool(c))
        for p, s, c in zip(
            order["packet"].tolist(), states.tolist(), earlier_new.tolist(), strict=True
        )
    }


def _local_addresses(hops: pd.DataFrame) -> dict[Any, frozenset[str]]:
    """Per host, its own addresses as the logs show them (``nat.local_addresses``)."""
    rows = local_addresses(hops)
    found: dict[Any, set[str]] = {}
    for host, addr in zip(rows["host"].tolist(), rows["addr"].tolist(), strict=True):
        found.setdefault(host, set()).add(addr)
    return {host: frozenset(addrs) for host, addrs in found.items()}


class _Paths:
    """The later hooks of a packet's path: by its last hook, else as the other packets of its
    connection went on from there (same direction, same host)."""

    def __init__(self, hops: pd.DataFrame) -> None:
        self.steps: dict[tuple[Any, Any, Any], list[Step]] = {}
        columns = ["packet", "flow", "direction", "host", "hook", "in_iface", "out_iface"]
        columns += [c for c in ("physin", "physout") if c in hops.columns]
        per_packet: dict[int, list[dict[str, Any]]] = {}
        for hop in _records(hops[columns]):
            per_packet.setdefault(int(hop["packet"]), []).append(hop)
        for packet_hops in per_packet.values():
            first = packet_hops[0]
            key = (first["flow"], first["direction"], first["host"])
            steps = _steps(h for h in packet_hops if h["host"] == first["host"])
            if len(steps) > len(self.steps.get(key, [])):
                self.steps[key] = steps

    def after(
        self, hop: Mapping[str, Any], local: frozenset[str] | None
    ) -> tuple[list[Step], bool]:
        """The steps after ``hop``'s hook, and whether the path is known."""
        hook = hop["hook"]
        if hook != "PREROUTING":
            # FORWARD and OUTPUT go on to POSTROUTING whatever the routing decided; INPUT and
            # POSTROUTING end a host's path. After PREROUTING, the route is known only from
            # the connection's other packets (or a local destination).
            if hook not in LATER_HOOK:
                return [], True
            out, physout = hop.get("out_iface"), hop.get("physout")
            return [Step(LATER_HOOK[hook], None, out, None, physout)], True
        known = self.steps.get((hop.get("flow"), hop.get("direction"), hop.get("host")), [])
        later = [s for s in known if HOOK_STAGE.get(s.hook, 0) > 0]
        if later:
            return later, True
        if local is not None and hop.get("dst") in local:
            return [Step("INPUT", hop.get("in_iface"), None)], True
        return [], False


def _steps(hops: Iterator[dict[str, Any]] | Any) -> list[Step]:
    """One step per hook a packet's hops show (the first hop at each), in order."""
    steps: list[Step] = []
    seen: set[str] = set()
    for hop in hops:
        hook = hop["hook"]
        if not isinstance(hook, str) or hook in seen:
            continue
        seen.add(hook)
        steps.append(Step(hook, hop.get("in_iface") or None, hop.get("out_iface") or None,
                          hop.get("physin"), hop.get("physout")))  # fmt: skip
    return steps
