"""The connections table: one row per connection, summarised from its packets.

Counts, times, hosts, TCP state and progression, answered, stopped packets and NAT, computed
for every connection at once as columns (``FLOW_SCHEMA``, declared in ``logpath.records``), the
table assembly stores and the questions read. A ``Flow`` record per connection is made only when
one is asked for (``flows_from_table``): building a record per connection first, then a table
from the records, was a fifth of the assembly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from logpath.fates import packet_fates
from logpath.flows import ARP, TUPLE_COLUMNS, column_or_null, hop_tuples
from logpath.nat import CANDIDATE, infer_translations, translation_table, with_ruleset_translations
from logpath.records import (
    FLOW_COLUMNS,
    FLOW_SCHEMA,
    ConnTuple,
    Flow,
    Translation,
    flows_from_table,
)

__all__ = [
    "FLOW_COLUMNS",
    "FLOW_SCHEMA",
    "Summary",
    "flows_from_table",
    "flows_table",
    "summarise",
    "summarise_flows",
    "tcp_events",
]

# The fates counted as dropped: by a rule that drops or rejects.
DROPPED = ["dropped", "rejected"]


@dataclass(frozen=True)
class Summary:
    """The connections of some traced hops: the table, and their NAT as a table of translations
    (for the marks journeys show, which need them before any record is read back from the
    connections' table)."""

    table: pa.Table
    """One row per connection (FLOW_COLUMNS), in order of first appearance."""
    nat: pd.DataFrame
    """Its translations, a row each (``infer_translations``)."""


def summarise_flows(hops: pd.DataFrame, *, fates: pd.DataFrame | None = None) -> list[Flow]:
    """One Flow record per flow of ``assign_flows``'s output, in order of first appearance.

    Example:
        >>> [flow.to_json() for flow in summarise_flows(assign_flows(group_packets(hops)))]
    """
    return flows_from_table(summarise(hops, fates=fates).table)


def summarise(hops: pd.DataFrame, *, fates: pd.DataFrame | None = None) -> Summary:
    """The connections table of ``assign_flows``'s output.

    Args:
        hops: hops with their flows (``assign_flows``), the ``t_*`` tuple columns kept or not.
        fates: ``packet_fates`` of these hops, when the caller has them already.
    """
    if hops.empty:
        return Summary(FLOW_COLUMNS.empty_table(), translation_table({}))
    frame = hops.reset_index(drop=True)
    if not set(TUPLE_COLUMNS) <= set(frame.columns):
        frame = pd.concat([frame, hop_tuples(frame).drop(columns="related")], axis=1)
    # factorised as stored (Arrow's text), the few distinct ids made Python objects after
    code, distinct = pd.factorize(frame["flow"])
    ids = np.asarray(distinct, dtype=object)
    flows = _Flows(code, len(ids))
    first = flows.first_rows()
    # each flow's keys: its first row's, not every row's made objects first
    orig_key = np.asarray(frame["orig_key"].iloc[first], dtype=object)
    reply_key = np.asarray(frame["reply_key"].iloc[first], dtype=object)
    hosts = _hosts(frame, flows)
    # what infer_translations reads of each flow, indexed by flow id
    per_flow = pd.DataFrame(
        {
            "orig_key": orig_key,
            "reply_key": reply_key,
            "first_hook": flows.first_shown(frame["hook"]),
            "host": _sole(hosts),
        },
        index=pd.Index(ids, dtype=object),
    )
    fates = packet_fates(frame) if fates is None else fates
    nat = with_ruleset_translations(frame, fates, infer_translations(frame, per_flow))
    packets = _packets(frame, fates, flows)
    proto, orig = _endpoints(orig_key, "orig")
    _, reply = _endpoints(reply_key, "reply")
    tcp = proto.to_numpy(zero_copy_only=False) == "tcp"
    stamps = pd.to_datetime(column_or_null(frame, "ts"), utc=True)
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.string()),
        "proto": proto,
        "family": _families(frame, flows, orig["orig_src"]),
        **orig,
        **reply,
        "nat": nat_texts(nat, ids),
        "packets": pa.array(flows.count(packets.code)),
        "hops": pa.array(flows.count(code)),
        "first_seen": _times(stamps.groupby(code).min(), len(ids)),
        "last_seen": _times(stamps.groupby(code).max(), len(ids)),
        "state": _states(packets, flows, tcp),
        "progression": _progressions(packets, flows, tcp),
        "answered": pa.array(packets.answered(flows)),
        "hosts": hosts,
        "stopped": pa.array(flows.count(packets.code, packets.fate == "stopped")),
        "dropped": pa.array(flows.count(packets.code, np.isin(packets.fate, DROPPED))),
        "lost": pa.array(flows.count(packets.code, packets.fate == "lost")),
    }
    return Summary(pa.table(columns, schema=FLOW_COLUMNS), nat)


class _Flows:
    """The flows of a table of hops or packets, numbered 0.. in order of first appearance."""

    def __init__(self, code: np.ndarray, count: int) -> None:
        self.code = code  # per hop
        self.size = count

    def first_rows(self) -> np.ndarray:
        """Per flow, the row of its first hop."""
        rows = np.flatnonzero(~pd.Series(self.code).duplicated().to_numpy())
        first = np.empty(self.size, dtype=np.int64)
        first[self.code[rows]] = rows
        return first

    def first_shown(self, values: pd.Series) -> np.ndarray:
        """Per flow, the first of its hops' ``values`` that is not missing (None if none is)."""
        shown = values.notna().to_numpy()
        rows = np.flatnonzero(shown)
        flows, at = np.unique(self.code[rows], return_index=True)
        first = np.full(self.size, None, dtype=object)
        first[flows] = values.iloc[rows[at]].to_numpy(dtype=object)
        return first

    def count(self, code: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Per flow, how many of the rows with flow ``code`` (and ``where``) it has."""
        weights = None if where is None else where.astype(np.int64)
        counts = np.bincount(code, weights=weights, minlength=self.size)
        return counts.astype(np.int64)

    def any(self, code: np.ndarray, where: np.ndarray) -> np.ndarray:
        """Per flow, whether one of its rows holds ``where``."""
        found: np.ndarray = self.count(code, where) > 0
        return found


@dataclass(frozen=True)
class _Packets:
    """Per packet (its first hop, in the hops' order): flow, TCP event, direction, ..."""

    code: np.ndarray  # the flow's number (_Flows)
    event: np.ndarray  # SYN, SYN-ACK, ACK, FIN, RST (tcp_events), None without flags
    reply: np.ndarray  # travelling in the reply direction
    related: np.ndarray  # an ICMP error quoting the flow's packet
    fate: np.ndarray  # fates.packet_fates

    def answered(self, flows: _Flows) -> np.ndarray:
        return flows.any(self.code, self.reply & ~self.related)


def _packets(frame: pd.DataFrame, fates: pd.DataFrame, flows: _Flows) -> _Packets:
    rows = np.flatnonzero(~frame["packet"].duplicated().to_numpy())
    packet = frame["packet"].to_numpy()[rows]
    return _Packets(
        code=flows.code[rows],
        event=tcp_events(column_or_null(frame, "flags").iloc[rows]).to_numpy(dtype=object),
        reply=frame["direction"].iloc[rows].to_numpy(dtype=object) == "reply",
        related=frame["related"].to_numpy(dtype=bool)[rows],
        fate=fates["fate"].reindex(packet).to_numpy(dtype=object),
    )


def _endpoints(keys: np.ndarray, side: str) -> tuple[pa.Array, dict[str, pa.Array]]:
    """The protocol and the ``{side}_src/sport/dst/dport`` columns of tuple keys
    (``proto|src|sport|dst|dport``, ``logpath.records.key_tuple``)."""
    parts = pc.split_pattern(pa.array(keys, pa.string()), "|")
    field = [pc.list_element(parts, i) for i in range(5)]
    portless = pc.equal(field[0], ARP)  # its port slots mark the asker (flows.ARP_ASKER)

    def port(text: pa.Array) -> pa.Array:
        return pc.cast(pc.if_else(pc.or_(pc.equal(text, ""), portless), None, text), pa.int32())

    return field[0], {
        f"{side}_src": field[1],
        f"{side}_sport": port(field[2]),
        f"{side}_dst": field[3],
        f"{side}_dport": port(field[4]),
    }


def _families(frame: pd.DataFrame, flows: _Flows, orig_src: pa.Array) -> pa.Array:
    """4 or 6: as the flow's hops state it, else told by the orig source address."""
    stated = pd.Series(flows.first_shown(column_or_null(frame, "family")), dtype="float64")
    v6 = pc.match_substring(orig_src, ":").to_numpy(zero_copy_only=False)
    family = stated.fillna(pd.Series(np.where(v6, 6.0, 4.0)))
    return pa.array(family.to_numpy(dtype=np.int64), pa.int8())


def _times(per_flow: pd.Series, count: int) -> pa.Array:
    """Per flow, a time (None where its hops had none) in the stored unit."""
    array = pa.array(per_flow.reindex(range(count)), from_pandas=True)
    return pc.cast(array, pa.timestamp("us", tz="UTC"), safe=False)


def _hosts(frame: pd.DataFrame, flows: _Flows) -> pa.Array:
    """Per flow, the sorted names of the syslog hosts that logged it."""
    if "host" not in frame.columns:
        return pa.array([[] for _ in range(flows.size)], pa.list_(pa.string()))
    code, distinct = pd.factorize(frame["host"])  # -1: no host
    # by name, not by the order the store's host dictionary happens to list them
    names = np.asarray(distinct, dtype=object).astype(str)
    by_name = np.argsort(names, kind="stable")
    rank = np.empty(len(names), dtype=np.int64)
    rank[by_name] = np.arange(len(names))
    # each (flow, host) once, in flow then name order: one integer per pair, made unique (not
    # a frame of a million hosts' texts, without duplicates, sorted)
    shown = code >= 0
    width = max(len(names), 1)
    pairs = np.unique(flows.code[shown] * width + rank[code[shown]])
    return _lists(pairs // width, names[by_name].astype(object)[pairs % width], flows.size)


def _lists(code: np.ndarray, values: np.ndarray, count: int) -> pa.Array:
    """A list per flow of ``values``, sorted by ``code`` (their flows)."""
    offsets = np.r_[0, np.cumsum(np.bincount(code, minlength=count))].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.string()))


def _sole(hosts: pa.Array) -> np.ndarray:
    """Per flow, its one host, or None when more than one (or none) logged it."""
    one = pc.equal(pc.list_value_length(hosts), 1)
    first = pc.list_element(pc.if_else(one, hosts, None), 0)
    sole: np.ndarray = first.to_numpy(zero_copy_only=False)
    return sole


def nat_texts(nat: pd.DataFrame, ids: np.ndarray) -> pa.Array:
    """Per flow of ``ids``, ``json.dumps`` of its translations' ``to_json`` (``nat``: a table of
    translations, ``infer_translations``; "[]" for a flow without). Written column by column
    from a template where every field is text (or a missing host): json.dumps, given a dict per
    translation, took three times as long as the template filled a translation at a time, and
    that loop a fifth of the connections' summaries on a Docker host that NATs most of them. A
    translation with a field of another kind (a missing address) is written by json.dumps."""
    texts = np.full(len(ids), "[]", dtype=object)
    if nat.empty:
        return pa.array(texts, pa.string())
    fields = [_json_texts(nat[c].to_numpy(dtype=object)) for c in CANDIDATE[1:]]
    pieces: list[Any] = []
    for name, field in zip(CANDIDATE[1:], fields, strict=True):  # to_json's keys, in its order
        pieces += [f'"{name}": ', field, ", "]
    each = pc.binary_join_element_wise("{", *pieces[:-1], "}", "")  # null where a field is
    written = np.array(each.to_numpy(zero_copy_only=False), dtype=object)
    for row in np.flatnonzero(pc.is_null(each).to_numpy(zero_copy_only=False)):
        values = [nat[c].iat[int(row)] for c in CANDIDATE[1:]]
        written[row] = json.dumps(Translation(*values).to_json())  # type: ignore[arg-type]
    # each flow's rows are together (``infer_translations``): one list of texts a flow, joined
    flow = nat["flow"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, flow[1:] != flow[:-1]])
    offsets = pa.array(np.r_[starts, len(flow)].astype(np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, pa.array(written, pa.string())), ", ")
    wrapped = pc.binary_join_element_wise("[", joined, "]", "")
    at = pd.Index(ids).get_indexer(flow[starts])
    listed = at >= 0  # a translation of no flow of ``ids`` (none seen) is written nowhere
    texts[at[listed]] = wrapped.to_numpy(zero_copy_only=False)[listed]
    return pa.array(texts, pa.string())


def _json_texts(values: np.ndarray) -> pa.Array:
    """Per value, its text as json.dumps writes it (ASCII, escaped; None as null); null where
    it is neither text nor None. Each distinct value written once."""
    code, distinct = pd.factorize(values)  # None and NaN alike: -1
    written = [encode_basestring_ascii(v) if isinstance(v, str) else None for v in distinct]
    texts = np.asarray([*written, "null"], dtype=object)[code]
    for row in np.flatnonzero(code < 0):
        if values[row] is not None:  # NaN, say: not written here
            texts[row] = None
    return pa.array(texts, pa.string())


def _states(packets: _Packets, flows: _Flows, tcp: np.ndarray) -> pa.Array:
    """Per flow, its state after its packets (conntrack's names, simplified): for TCP,
    ``reset`` after an RST, ``closed`` after FINs both ways, ``fin-wait`` after one,
    ``established`` once an ACK follows the SYN-ACK (``syn-recv`` until then), ``syn-sent``
    while only SYNs were seen, else ``established``; for the others, and a TCP flow of which
    only ICMP errors were logged (no TCP flags of its own: nothing says it was established),
    ``replied`` or ``unreplied``."""
    code, event = packets.code, packets.event

    def seen(name: str, where: np.ndarray | bool = True) -> np.ndarray:
        return flows.any(code, (event == name) & where)

    # "ACK after the first SYN-ACK": packets are in time order within a flow
    order = np.arange(len(code))
    first_synack = np.full(flows.size, len(code))
    synack = np.flatnonzero(event == "SYN-ACK")
    np.minimum.at(first_synack, code[synack], order[synack])
    ack_after = seen("ACK", order > first_synack[code])
    events = flows.count(code, event != None)  # noqa: E711 (element-wise)
    fin_both = seen("FIN", ~packets.reply) & seen("FIN", packets.reply)
    state = np.select(
        [
            seen("RST"),
            fin_both,
            seen("FIN"),
            seen("SYN-ACK") & ack_after,
            seen("SYN-ACK"),
            seen("SYN") & (flows.count(code, event == "SYN") == events),
        ],
        ["reset", "closed", "fin-wait", "established", "syn-recv", "syn-sent"],
        "established",
    )
    other = np.where(packets.answered(flows), "replied", "unreplied")
    return pa.array(np.where(tcp & (events > 0), state, other).astype(object), pa.string())


def _progressions(packets: _Packets, flows: _Flows, tcp: np.ndarray) -> pa.Array:
    """Per TCP flow, its events in order of first appearance (empty for the others)."""
    shown = (packets.event != None) & tcp[packets.code]  # noqa: E711 (element-wise)
    seen = pd.DataFrame({"flow": packets.code[shown], "event": packets.event[shown]})
    seen = seen.drop_duplicates().sort_values("flow", kind="stable")
    return _lists(seen["flow"].to_numpy(), seen["event"].to_numpy(dtype=object), flows.size)


def tcp_events(flags: pd.Series) -> pd.Series:
    """The TCP event a packet shows: SYN, SYN-ACK, RST, FIN or ACK (None without flags)."""
    text = flags.astype("object").fillna("")
    # few distinct flag sets: decide each once, then look it up per packet
    event_of = {value: _tcp_event(value) for value in text.unique().tolist()}
    return pd.Series(
        [event_of[value] for value in text.tolist()], index=flags.index, dtype="object"
    )


def _tcp_event(flags: str) -> str | None:
    words = set(flags.split())
    if "RST" in words:
        return "RST"
    if "SYN" in words:
        return "SYN-ACK" if "ACK" in words else "SYN"
    if "FIN" in words:
        return "FIN"
    return "ACK" if "ACK" in words else None


def flows_table(flows: Sequence[Flow]) -> pa.Table:
    """Flow records as FLOW_SCHEMA rows (``flow_n`` left out: numbered once all are known)."""

    def side(flow: Flow, which: str) -> list[Any]:
        t: ConnTuple = getattr(flow, which)
        return [t.src, t.sport, t.dst, t.dport]

    rows = {name: [] for name in FLOW_SCHEMA.names if name != "flow_n"}  # type: dict[str, list[Any]]
    for flow in flows:
        rows["id"].append(flow.id)
        rows["proto"].append(flow.proto)
        rows["family"].append(flow.family)
        for which in ("orig", "reply"):
            for name, value in zip(
                ("src", "sport", "dst", "dport"), side(flow, which), strict=True
            ):
                rows[f"{which}_{name}"].append(value)
        rows["nat"].append(json.dumps([t.to_json() for t in flow.nat]))
        rows["packets"].append(flow.packets)
        rows["hops"].append(flow.hops)
        rows["first_seen"].append(flow.first_seen)
        rows["last_seen"].append(flow.last_seen)
        rows["state"].append(flow.state)
        rows["progression"].append(list(flow.progression))
        rows["answered"].append(flow.answered)
        rows["hosts"].append(list(flow.hosts))
        rows["stopped"].append(flow.stopped)
        rows["dropped"].append(flow.dropped)
        rows["lost"].append(flow.lost)
    return pa.table(rows, schema=FLOW_COLUMNS)
