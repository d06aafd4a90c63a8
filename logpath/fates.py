"""Fates: what became of each packet, and on what evidence.

A packet's structural fate is read from where its journey ends: delivered at INPUT, forwarded,
sent, switched by a bridge, arrived on the next host, or stopped where other packets of its
connection went on (``journeys.Packet.fate``). The evidence there is the hooks the
connection's packets reached, not the verdicts of the rules, which LOG lines do not show.

With the ruleset the logs were written under, the verdict comes from the rules instead
(``logpath.verdicts``): dropped or rejected by a rule, lost, unlogged, unknown, or the
structural fate confirmed.

Without a ruleset a packet whose connection was answered is never called stopped: the answer
shows the connection went on, so where its logs end is all that is known (``unknown``, with
``stopped_at``). And a packet of a connection nothing answered is not called delivered,
forwarded, sent or switched where its logs end: nothing shows it went on (it may have been
dropped by the rule after the one that logged it), so it is ``unknown`` too, unless a trace saw
it accepted there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from logpath.netfilter import HOOK_STAGE
from logpath.nftrace import with_trace_verdicts
from logpath.packets import map_few, row_groups, text_codes

if TYPE_CHECKING:  # the evaluator is imported only when a ruleset judges the packets
    from logpath.evaluate import Evaluator


def packet_fates(hops: pd.DataFrame, evaluator: Evaluator | None = None) -> pd.DataFrame:
    """Per packet its ``fate``, ``stopped_at`` (the last hook seen, when later hooks were
    expected) and ``verdict`` (JSON of the rule that decided, or None); with the ruleset also
    ``nat_rules``, the NAT rules it matched after its last hop (``evaluate.NatHit``s), for the
    NAT no line shows.

    A packet is stopped when its journey ends at a hook (on a host, entering by an interface)
    from which other packets of the same flow and direction went on to a later hook. nat-table
    hops are not evidence: nat chains see only a connection's first packet.

    Args:
        hops: traced hops (packets, flows, bridge roles).
        evaluator: the ruleset's, when known: fates then come from its verdicts.
    """
    wanted = ["packet", "hook", "leg", "flow", "direction", "host", "role", "physout", "related"]
    # each packet's last hop, only the columns read (a copy of all ~90 cost more than the rest)
    rows = ~hops["packet"].duplicated(keep="last").to_numpy()
    last = hops.loc[rows, [c for c in wanted if c in hops.columns]].set_index("packet")
    stage = map_few(last["hook"], HOOK_STAGE).fillna(0.0)
    # where the logs end says nothing more (at PREROUTING, say, with nothing of its connection
    # further on): issue 11's contract calls that "unknown", never a fate it cannot show
    fate = pd.Series("unknown", index=last.index, dtype="object")
    # IN= is empty at POSTROUTING even for forwarded packets: ask the leg's first hop instead
    entered = _leg_entries(hops)
    # where the packet's last leg entered its host (a packet may cross several hosts)
    last_entry = entered.groupby(hops["packet"].to_numpy()).last().reindex(last.index)
    local = last_entry.isna()
    fate = fate.mask(last["hook"].eq("INPUT"), "delivered")
    fate = fate.mask(last["hook"].isin(["FORWARD", "POSTROUTING"]) & ~local, "forwarded")
    fate = fate.mask(last["hook"].isin(["OUTPUT", "POSTROUTING"]) & local, "sent")
    fate = fate.mask(last["leg"].gt(0) & last["hook"].eq("PREROUTING"), "arrived")
    if "role" in last.columns:
        fate = fate.mask(last["role"].eq("bridge") & last["physout"].notna(), "switched")
    further = _furthest_stage(hops, entered, rows, last_entry) > stage.to_numpy()
    stopped = pd.Series(further, index=last.index) & ~last["related"].astype(bool)
    fate = fate.mask(stopped, "stopped")
    fates = pd.DataFrame(
        {
            "fate": fate,
            "stopped_at": last["hook"].where(stopped, None).astype("object"),
            "verdict": pd.Series(None, index=last.index, dtype="object"),
        }
    )
    answered_by_flow = answered_flows(hops)
    if evaluator is not None:
        from logpath.verdicts import judged

        return with_trace_verdicts(hops, judged(hops, fates, evaluator, answered_by_flow))
    answered = answered_by_flow.reindex(last["flow"]).to_numpy(dtype=bool)
    fates.loc[stopped.to_numpy() & answered, "fate"] = "unknown"
    # Without a ruleset, where a packet's logs end is its fate only when something later shows
    # that it went on: an answer in its connection (issue 11: "unknown: no ruleset and no later
    # evidence"). Unanswered, a packet last logged at FORWARD may as well have been dropped by
    # the rule after the LOG rule (LOG-then-DROP) as forwarded; a trace that saw it accepted
    # there shows it went on.
    where_logs_end = fates["fate"].copy()
    unevidenced = where_logs_end.isin(WENT_ON).to_numpy() & ~answered & ~_error_beyond(hops, last)
    fates.loc[unevidenced, "fate"] = "unknown"
    fates = with_trace_verdicts(hops, fates)
    accepted = fates["verdict"].map(_trace_accepted, na_action="ignore").astype("object")
    accepted = accepted.fillna(False)
    restore = unevidenced & accepted.to_numpy(dtype=bool)
    fates.loc[restore, "fate"] = where_logs_end[restore]
    return fates


def _error_beyond(hops: pd.DataFrame, last: pd.DataFrame) -> np.ndarray:
    """Per packet of ``last`` (its last hop, indexed by packet): whether an ICMP error about
    its connection, travelling the other way, came from beyond the host where the packet's
    logs end, which shows the packet went on from there: the error arrived at a host from a
    wire (its first hop at PREROUTING, INPUT or FORWARD), or was sent by another host. An error
    the host itself sent (a REJECT after the LOG rule, say) shows nothing of the kind."""
    related = hops["related"].to_numpy(dtype=bool)
    beyond = np.zeros(len(last), dtype=bool)
    if not related.any() or "flow" not in last.columns:
        return beyond
    first = ~hops["packet"].duplicated(keep="first").to_numpy()
    columns = ["flow", "direction", "hook", "host"]
    errors = hops.loc[first & related, [c for c in columns if c in hops.columns]]
    errors = errors.assign(host=_host_text(errors))
    packets = last[["flow", "direction"]].assign(host=_host_text(last), row=np.arange(len(last)))
    met = packets.merge(errors, on="flow", suffixes=("", "_error"))
    from_beyond = met["hook"].isin(["PREROUTING", "INPUT", "FORWARD"]) | (
        met["host"] != met["host_error"]
    )
    met = met[from_beyond & (met["direction"] != met["direction_error"])]
    beyond[met["row"].to_numpy()] = True
    return beyond


def _host_text(frame: pd.DataFrame) -> pd.Series:
    """A frame's hosts as text ("" where unknown: one host's log, compared equal)."""
    if "host" not in frame.columns:
        return pd.Series("", index=frame.index)
    return frame["host"].astype("object").fillna("").astype(str)


# The fates that say a packet went on from where its logs end (to a local socket, the next
# host, out of the host, across the bridge)
WENT_ON = ("delivered", "forwarded", "sent", "switched")


def _trace_accepted(verdict: str) -> bool:
    """Whether a verdict (JSON) is a trace's accept: evidence that the packet went on."""
    found = json.loads(verdict)
    return bool(found.get("action") == "accept" and found.get("evidence") in ("trace", "nft-trace"))


def answered_flows(hops: pd.DataFrame) -> pd.Series:
    """Per flow: whether a packet travelled the reply way (not an ICMP error)."""
    reply = hops["direction"].eq("reply") & ~hops["related"].astype(bool)
    # numbered by factorising, not grouped by the flow ids' text (sorting them cost the most)
    flow, ids = pd.factorize(hops["flow"])
    shown = flow >= 0
    count = np.bincount(flow[shown], weights=reply.to_numpy()[shown], minlength=len(ids))
    return pd.Series(count > 0, index=ids)


def _leg_entries(hops: pd.DataFrame) -> pd.Series:
    """Per hop, the interface its packet entered the hop's host by: the first IN= of the
    packet's leg on that host (None for a packet sent from the host itself)."""
    packet, leg = hops["packet"].to_numpy(), hops["leg"].to_numpy()
    shown = hops["in_iface"].astype("object")
    later = (packet[1:] > packet[:-1]) | ((packet[1:] == packet[:-1]) & (leg[1:] >= leg[:-1]))
    if not len(packet) or not later.all():
        entered: pd.Series = shown.groupby([packet, leg]).transform("first")
        return entered
    # each leg's hops together (group_packets' order): its first IN= found by numpy, not
    # by a groupby over two keys
    begins = np.r_[True, (packet[1:] != packet[:-1]) | (leg[1:] != leg[:-1])]
    starts = np.flatnonzero(begins)
    count = len(packet)
    known = np.where(shown.notna().to_numpy(), np.arange(count), count)
    at = np.minimum.reduceat(known, starts)
    first = np.full(len(starts), None, dtype=object)
    inside = at < np.r_[starts[1:], count]
    first[inside] = shown.to_numpy()[at[inside]]
    # the type inferred, as the groupby's transform infers it (text: pandas' str)
    return pd.Series(first[np.cumsum(begins) - 1], index=hops.index)


def _furthest_stage(
    hops: pd.DataFrame, entered: pd.Series, last: np.ndarray, last_entry: pd.Series
) -> np.ndarray:
    """Per packet (the rows of its ``last`` hop, the interface ``last_entry`` its last leg
    entered by): the furthest hook stage the hops of its flow and direction reached on its
    host, entering by that interface (NaN where none did but nat-table hops).

    The places numbered as integers (each key factorised once over the hops), the hops' and
    the packets' together, the furthest stage taken per number: a groupby on four text keys,
    then a reindex by them, cost a third of the fates."""
    flow = pd.factorize(hops["flow"])[0]  # -1 where missing: a groupby drops those
    direction = pd.factorize(hops["direction"])[0]
    host = text_codes(hops["host"])
    entry, entries = pd.factorize(entered.fillna(""))
    last_entry_code = pd.Index(entries).get_indexer(last_entry.fillna(""))
    # only the hops outside the nat table are evidence (nat chains see a connection's first packet)
    evidence = hops["table"].ne("nat").to_numpy(dtype=bool)
    evidence = evidence & (flow >= 0) & (direction >= 0)
    count = int(evidence.sum())
    place = row_groups(
        [
            np.concatenate([flow[evidence], flow[last]]),
            np.concatenate([direction[evidence], direction[last]]),
            np.concatenate([host[evidence], host[last]]),
            np.concatenate([entry[evidence], last_entry_code]),
        ]
    )
    stage = map_few(hops["hook"], HOOK_STAGE).fillna(0.0).to_numpy()[evidence]
    reached = np.full(int(place.max(initial=-1)) + 1, -np.inf)
    np.maximum.at(reached, place[:count], stage)
    furthest: np.ndarray = reached[place[count:]]
    furthest[np.isneginf(furthest) | (flow[last] < 0) | (direction[last] < 0)] = np.nan
    return furthest
