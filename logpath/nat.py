"""NAT: what each hop shows of it and what each connection's translations are.

Per hop, ``nat_marks`` says what NAT changed since the packet's previous hop (whether the hop
shows other addresses than its direction's tuple is ``flows``' ``translated``); per connection,
``infer_translations`` gathers the SNAT/DNAT/REDIRECT translations the evidence proves (a
changed address between hops, an ICMP error's quote, the reply tuple).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from logpath.packets import missing, row_groups
from logpath.records import PORTED, Translation, format_endpoint, key_tuple

# Up to this many rows, endpoints and tuple keys are written in one Python pass over them:
# pandas' string operations cost ~0.1 ms a call, a few per column, most of the NAT inference
# on a follow window of 5,000 hops; over many rows they are the quicker (issue 10's ingest).
FEW_ROWS = 2_000


def nat_marks(frame: pd.DataFrame) -> pd.Series:
    """What NAT changed since the previous hop of the same packet.

    dst changed on an orig packet: "dnat"; on a reply: "de-snat"; src changed (only visible on
    the next host): "snat" for orig, "de-dnat" for reply.
    """
    # an ICMP error's own addresses, not the quoted packet's, tell what NAT did to it
    related = frame["related"].astype(bool)
    shown = pd.DataFrame(
        {
            "packet": frame["packet"],
            "t_src": frame["src"],
            "t_sport": frame["t_sport"].mask(related),
            "t_dst": frame["dst"],
            "t_dport": frame["t_dport"].mask(related),
        }
    )
    prev = _previous(shown, ["t_src", "t_sport", "t_dst", "t_dport"])
    orig = frame["direction"] == "orig"
    frame = shown
    started = prev["t_src"].notna()
    dst_moved = started & (
        (prev["t_dst"] != frame["t_dst"]) | _differs(prev["t_dport"], frame["t_dport"])
    )
    src_moved = started & (
        (prev["t_src"] != frame["t_src"]) | _differs(prev["t_sport"], frame["t_sport"])
    )
    mark = pd.Series(None, index=frame.index, dtype="object")
    mark = mark.mask(dst_moved & orig, "dnat").mask(dst_moved & ~orig, "de-snat")
    mark = mark.mask(src_moved & orig, "snat").mask(src_moved & ~orig, "de-dnat")
    return mark


def _previous(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per hop, ``columns`` of the previous hop of its packet (missing on its first hop). The
    hops of a packet are together, in packet order, as ``group_packets`` leaves them: then one
    shift, masked where the packet changes, is what a groupby's shift gives, at less cost."""
    packet = frame["packet"].to_numpy()
    if not len(packet) or not (packet[1:] >= packet[:-1]).all():
        shifted: pd.DataFrame = frame.groupby("packet", sort=False)[columns].shift(1)
        return shifted
    same = pd.Series(np.r_[False, packet[1:] == packet[:-1]], index=frame.index)
    return frame[columns].shift(1).where(same, axis=0)


def _differs(a: pd.Series, b: pd.Series) -> pd.Series:
    """Element-wise inequality where two missing values are equal."""
    both_missing = a.isna() & b.isna()
    return (~both_missing & ((a != b) | a.isna() | b.isna())).fillna(True).astype(bool)


def infer_translations(frame: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """NAT translations per flow, from what changed between hops, from ICMP errors' quotes and
    from the reply tuple; a translation found by more than one kind of evidence is kept once,
    as the first evidence showed it (in that order). A table (``CANDIDATE``: the flow id, then
    ``Translation``'s fields, a missing host None), each flow's rows together: a record per
    translation, gathered per flow, took as long as finding them on a Docker host where most
    connections are NATed, and the JSON and the marks are made from the table's columns.

    Every kind of evidence is a table of candidate translations, computed column by column: a
    record per NAT-marked hop and per flow was a sixth of the assembly on a Docker host where
    half the connections are DNATed.

    Args:
        frame: ``assign_flows`` output with the ``t_*`` tuple columns of ``hop_tuples``.
        flows: per flow id (the index), ``orig_key``, ``reply_key``, ``first_hook`` (its first
            hop's hook that is known) and ``host`` (the one host that logged it; None if more).
    """
    between = _translations_between_hops(frame)
    # quotes before tuples: without an answer, the reply tuple itself comes from an error's quote
    found = pd.concat(
        [*between, _translations_from_quotes(frame), _translations_from_tuples(frame, flows)],
        ignore_index=True,
    )
    found = found.drop_duplicates(["flow", "type", "from", "to", "hook"])
    columns = {c: found[c] for c in CANDIDATE}
    columns["host"] = found["host"].astype(object).map(_text)  # a missing host: None
    return _by_flow(pd.DataFrame({c: v.to_numpy(dtype=object) for c, v in columns.items()}))


# The columns of a table of candidate translations, one row each; a table of translations
# (``infer_translations``) has them too, a flow's rows together.
CANDIDATE = ["flow", "type", "from", "to", "hook", "host", "evidence"]


def _by_flow(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each flow's rows together, flows in order of first appearance, each
    flow's rows in their order: what a JSON text per flow is joined from (``summaries``)."""
    code = pd.factorize(table["flow"])[0]
    return table.iloc[np.argsort(code, kind="stable")].reset_index(drop=True)


def translation_table(nat: Mapping[str, Sequence[Translation]]) -> pd.DataFrame:
    """Translations as records per flow id (``Flow.nat``) made a table of translations."""
    rows = [
        (flow, t.type, t.from_addr, t.to_addr, t.hook, t.host, t.evidence)
        for flow, translations in nat.items()
        for t in translations
    ]
    return pd.DataFrame(rows, columns=CANDIDATE, dtype=object)


def _candidates(rows: pd.DataFrame | None = None, **columns: Any) -> pd.DataFrame:
    """A table of candidate translations (``CANDIDATE``); constants are broadcast to its rows."""
    index = rows.index if rows is not None else None
    return pd.DataFrame({c: columns[c] for c in CANDIDATE}, index=index)


def endpoints(addr: pd.Series, port: pd.Series, proto: pd.Series | None = None) -> pd.Series:
    """``format_endpoint`` of each row: ``addr``, ``addr:port`` or ``[addr]:port``; with
    ``proto``, a port only for the protocols that have them (``PORTED``)."""
    if len(addr) <= FEW_ROWS and pd.api.types.is_integer_dtype(port.dtype):  # one pass
        ported = [pr in PORTED for pr in proto.tolist()] if proto is not None else None
        texts = [
            np.nan
            if missing(a)
            else (_joined_one(str(a), str(p)) if not missing(p) and has else str(a))
            for a, p, has in zip(
                addr.tolist(), port.tolist(), ported or [True] * len(addr), strict=True
            )
        ]
        return pd.Series(texts, index=addr.index, dtype=object)
    text = addr.astype("object").astype(str)
    number = pd.to_numeric(port, errors="coerce")
    with_port = number.notna()
    if proto is not None:
        with_port &= proto.astype("object").isin(PORTED)
    return _joined(text, number.astype("Int64").astype(str), with_port)


def _key_endpoints(proto: pd.Series, addr: pd.Series, port: pd.Series) -> pd.Series:
    """``endpoints`` of one side of tuple keys split into their text fields (``key_tuple``)."""
    return _joined(addr, port, port.ne("") & proto.isin(PORTED))


def _joined(addr: pd.Series, port: pd.Series, with_port: pd.Series) -> pd.Series:
    """``addr:port`` (``[addr]:port`` for IPv6) where ``with_port``, else ``addr``; missing
    where either is."""
    if len(addr) > FEW_ROWS:
        v6 = addr.str.contains(":", regex=False)
        bracketed = ("[" + addr + "]").where(v6, addr)
        joined: pd.Series = (bracketed + ":" + port).where(with_port, addr)
        return joined
    texts = [
        _joined_one(a, p) if w else a
        for a, p, w in zip(addr.tolist(), port.tolist(), with_port.tolist(), strict=True)
    ]
    return pd.Series(texts, index=addr.index, dtype=object)


def _joined_one(addr: object, port: object) -> object:
    if not isinstance(addr, str) or not isinstance(port, str):
        return np.nan
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _translations_between_hops(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """Translations proven by a hop showing other addresses than the previous hop of its
    packet: one per NAT-marked hop, then those of hops where both addresses changed at once
    (``_both_changed``)."""
    columns = ["t_src", "t_sport", "t_dst", "t_dport", "hook", "host"]
    marked = (frame["nat_mark"].notna() & ~frame["related"].astype(bool)).to_numpy()
    if not marked.any():
        return []
    # the previous hop only within the packets NAT changed, not for every hop of the store
    changed = frame["packet"].isin(frame["packet"][marked].unique()).to_numpy()
    within = frame.loc[changed, ["packet", *columns]]
    prev = _previous(within, columns).add_prefix("was_")[marked[changed]]
    rows = pd.concat([frame.loc[marked, ["flow", "packet", "leg", "nat_mark", "t_proto", *columns]],
                      prev], axis=1)  # fmt: skip
    # a translation once per distinct hop and previous hop (the packet aside): the first rows
    # of their groups (drop_duplicates factorised the same columns at twice the cost)
    shown = row_groups([rows[c] for c in rows.columns if c not in ("packet", "leg")])
    rows = rows.iloc[np.sort(np.unique(shown, return_index=True)[1])]
    proto = rows["t_proto"]
    now_dst = endpoints(rows["t_dst"], rows["t_dport"], proto)
    was_dst = endpoints(rows["was_t_dst"], rows["was_t_dport"], proto)
    now_src = endpoints(rows["t_src"], rows["t_sport"], proto)
    was_src = endpoints(rows["was_t_src"], rows["was_t_sport"], proto)
    inputs = frame.loc[frame["hook"].eq("INPUT"), ["packet", "leg"]].drop_duplicates()
    local_in = pd.MultiIndex.from_frame(rows[["packet", "leg"]]).isin(
        pd.MultiIndex.from_frame(inputs)
    )
    dnat_kind = pd.Series(np.where(local_in, "redirect", "dnat"), index=rows.index)
    mark = rows["nat_mark"].to_numpy()
    dnat, de_snat, snat = mark == "dnat", mark == "de-snat", mark == "snat"
    de_dnat = ~(dnat | de_snat | snat)  # the reply's source restored where DNAT was applied
    was_hook = rows["was_hook"].astype("object")
    dnat_hook = was_hook.where(was_hook.isin(["PREROUTING", "OUTPUT"]), "PREROUTING")
    seen_from = dnat | de_snat  # the dst changed on this host; the src on the previous one
    first = _candidates(
        rows,
        flow=rows["flow"],
        type=np.select([dnat, de_dnat], [dnat_kind, "dnat"], "snat"),
        **{
            "from": np.select([dnat, de_snat, snat], [was_dst, now_dst, was_src], now_src),
            "to": np.select([dnat, de_snat, snat], [now_dst, was_dst, now_src], was_src),
        },
        hook=np.select([dnat, de_dnat], [dnat_hook, "PREROUTING"], "POSTROUTING"),
        host=rows["host"].astype("object").where(seen_from, rows["was_host"].astype("object")),
        evidence=np.where(seen_from, "dst-change", "cross-host"),
    )
    both = rows[(snat | de_dnat) & now_dst.ne(was_dst).to_numpy()]
    return [first, _both_changed(both, now_dst, was_dst, dnat_kind)]


def _both_changed(
    rows: pd.DataFrame, now_dst: pd.Series, was_dst: pd.Series, dnat_kind: pd.Series
) -> pd.DataFrame:
    """The translation this host applied when the hop is the first its host logged of the
    packet, past its PREROUTING, and the previous host had translated the source already: both
    addresses changed at once and ``nat_mark`` names only the source's change. Without it, a
    DNAT seen only so (an unanswered datagram through hosts that log from FORWARD on) had no
    host (tests/test_two_hosts.py, udp-icmp-ipv6)."""
    now_dst, was_dst = now_dst.loc[rows.index], was_dst.loc[rows.index]
    orig = (rows["nat_mark"] == "snat").to_numpy()  # an orig packet: this host's DNAT
    return _candidates(
        rows,
        flow=rows["flow"],
        type=np.where(orig, dnat_kind.loc[rows.index].to_numpy(), "snat"),
        **{"from": was_dst.where(orig, now_dst), "to": now_dst.where(orig, was_dst)},
        hook=np.where(orig, "PREROUTING", "POSTROUTING"),
        host=rows["host"].astype("object"),
        evidence="dst-change",
    )


def _text(value: object) -> str | None:
    """A string, or None for a missing value."""
    return None if missing(value) else str(value)


def _translations_from_tuples(frame: pd.DataFrame, flows: pd.DataFrame) -> pd.DataFrame:
    """SNAT when answers return to another address than the orig source; DNAT when they come
    from another address than the orig destination (the first packet never showed it).

    ``flows``: as ``infer_translations`` takes them."""
    if flows.empty:
        return pd.DataFrame(columns=CANDIDATE)
    delivered = frame["hook"].eq("INPUT") & frame["direction"].eq("orig")
    local = flows.index.isin(frame["flow"][delivered].unique())
    # the endpoints straight from the key text: a ConnTuple per flow cost more than the rest
    orig, reply = (_key_fields(flows[key]) for key in ("orig_key", "reply_key"))
    proto = orig[0]
    client = _key_endpoints(proto, orig[1], orig[2])
    server = _key_endpoints(proto, orig[3], orig[4])
    answered_to = _key_endpoints(proto, reply[3], reply[4])
    answered_from = _key_endpoints(proto, reply[1], reply[2])
    host = flows["host"]
    flow = pd.Series(flows.index.astype(str), index=flows.index)
    snat = client.ne(answered_to).to_numpy()
    dnat = server.ne(answered_from).to_numpy()
    hook = np.where(flows["first_hook"].eq("OUTPUT"), "OUTPUT", "PREROUTING")
    # per flow, its SNAT before its DNAT
    return pd.concat(
        [
            _candidates(flows, flow=flow, type="snat", **{"from": client, "to": answered_to},
                        hook="POSTROUTING", host=host, evidence="reply-dst")[snat],
            _candidates(flows, flow=flow, type=np.where(local, "redirect", "dnat"),
                        **{"from": server, "to": answered_from}, hook=hook, host=host,
                        evidence="reply-src")[dnat],
        ]
    )  # fmt: skip


def _key_fields(keys: pd.Series) -> list[pd.Series]:
    """The five text fields of each tuple key (``proto|src|sport|dst|dport``), missing where
    the key is: split in one pass (``str.split(expand=True)`` built a frame of them)."""
    if len(keys) > FEW_ROWS:
        # by Arrow's split, each field made pandas' text as str.split(expand=True) makes it
        # (that built a frame of Python strings first: most of the tuples' evidence)
        text = keys.astype(str)
        parts = pc.split_pattern(pa.array(text, pa.string(), from_pandas=True), "|")
        return [
            pd.Series(pc.list_element(parts, i), index=keys.index, dtype=text.dtype)
            for i in range(5)
        ]
    split = [k.split("|") if isinstance(k, str) else [np.nan] * 5 for k in keys.tolist()]
    return [pd.Series(field, index=keys.index, dtype=object) for field in zip(*split, strict=True)]


def _translations_from_quotes(frame: pd.DataFrame) -> pd.DataFrame:
    """SNAT shown by an ICMP error: it arrives quoting the packet as it left, source translated."""
    # the few columns read, not every hop column, filtered
    read = ["flow", "orig_key", "t_src", "t_sport", "t_dst", "host"]
    related = frame.loc[frame["related"].astype(bool).to_numpy(), read].drop_duplicates("flow")
    found = []
    for row in related.itertuples(index=False):
        proto, orig = key_tuple(str(row.orig_key))
        client = _endpoint(proto, orig.src, orig.sport)
        quoted = _endpoint(proto, row.t_src, row.t_sport)
        if quoted != client and row.t_dst == orig.dst:
            found.append((str(row.flow), "snat", client, quoted, "POSTROUTING", _text(row.host),
                          "icmp-quote"))  # fmt: skip
    return pd.DataFrame(found, columns=CANDIDATE)


def _endpoint(proto: str, addr: object, port: object) -> str:
    """``addr[:port]`` for a tuple side (ports only for protocols that have them)."""
    has_port = proto in PORTED and not missing(port)
    return format_endpoint(str(addr), int(port) if has_port else None)  # type: ignore[call-overload]


def applied_nat(hops: pd.DataFrame, nat: pd.DataFrame) -> pd.DataFrame:
    """``applied_nat``: where SNAT or a reply's de-DNAT is applied, packet by packet. It is
    never visible between two hops of the NATing host (nat POSTROUTING runs last), so
    ``nat_mark`` cannot show it.

    The mark goes on the packet's last POSTROUTING hop on the NATing host, which still shows
    the old address; when none was logged (conntrack translates every packet of a connection,
    but only the first passes the nat table), on the last hop that routed the packet out
    (FORWARD or OUTPUT) while it still showed the address NAT replaces. Not on a hop marked
    already, nor on an ICMP error. Vectorised: a loop over packets took a quarter of the
    assembly on a Docker host where half the connections are DNATed.
    """
    hops = hops.assign(applied_nat=None)
    applied = _applications(nat)
    if applied.empty:
        return hops
    # only the hops where a mark can go (a copy of every hop's columns, merged, cost the most)
    can_mark = hops["hook"].isin(["POSTROUTING", "FORWARD", "OUTPUT"]) & ~hops["related"].astype(
        bool
    )
    rows = hops.loc[can_mark, ["flow", "direction", "host", "hook", "out_iface", "src", "sport"]]
    rows = rows.astype({"host": "object"})
    rows["_at"] = rows.index
    # the hops on the NATing host (any host, when the translation's host is not known)
    anywhere = applied[applied["host"].isna()].drop(columns="host")
    known = applied[applied["host"].notna()]
    on_host = pd.concat(
        [
            rows.merge(anywhere, on=["flow", "direction"]),
            rows.merge(known, on=["flow", "direction", "host"]),
        ]
    ).drop_duplicates("_at")
    packet = hops["packet"].to_numpy()
    on_host["_packet"] = packet[on_host["_at"].to_numpy()]
    post = on_host[on_host["hook"].eq("POSTROUTING")]
    routed = on_host[
        on_host["hook"].isin(["FORWARD", "OUTPUT"])
        & on_host["out_iface"].notna()
        & endpoints(on_host["src"], on_host["sport"]).eq(on_host["replaced"])
    ]
    routed = routed[~routed["_packet"].isin(post["_packet"])]
    last = pd.concat([post, routed]).groupby("_packet")["_at"].max().to_numpy()
    last = last[hops["nat_mark"].iloc[last].isna().to_numpy()]
    marks = np.where(hops["direction"].iloc[last].eq("orig"), "snat", "de-dnat")
    hops.loc[last, "applied_nat"] = marks
    return hops


def _applications(nat: pd.DataFrame) -> pd.DataFrame:
    """Per connection and direction, where NAT is applied to its packets (``nat``: a table of
    translations): flow, direction, host and the address NAT replaces (``replaced``), for SNAT
    on orig packets and DNAT on replies (de-DNAT). The address is the first such translation's;
    one row without a host when one of them has none, else one per host."""
    columns = ["flow", "direction", "host", "replaced"]
    kinds = nat[nat["type"].isin(["snat", "dnat"]).to_numpy()]
    if kinds.empty:
        return pd.DataFrame(columns=columns, dtype=object)
    snat = (kinds["type"] == "snat").to_numpy()
    flow = kinds["flow"].to_numpy(dtype=object)
    direction = np.where(snat, "orig", "reply").astype(object)
    from_addr, to_addr = (kinds[c].to_numpy(dtype=object) for c in ("from", "to"))
    replaced = np.where(snat, from_addr, to_addr)
    host = kinds["host"].to_numpy(dtype=object, copy=True)
    group = row_groups([flow, direction])
    first = np.unique(group, return_index=True)[1]
    hostless = np.zeros(len(first), dtype=bool)
    hostless[group[pd.isna(host)]] = True
    host[hostless[group]] = None  # a group with a translation of no host: its rows alike
    table = pd.DataFrame(
        {"flow": flow, "direction": direction, "host": host, "replaced": replaced[first][group]}
    )
    return table.drop_duplicates(columns[:3])


# What each NAT target does to a connection, as Translation.type says it.
RULE_TYPES = {"MASQUERADE": "snat", "SNAT": "snat", "DNAT": "dnat", "REDIRECT": "redirect"}


def with_ruleset_translations(
    frame: pd.DataFrame, fates: pd.DataFrame, found: pd.DataFrame
) -> pd.DataFrame:
    """``found`` (the translations the lines show) with those only the ruleset shows: a NAT
    rule a packet matched after its last logged hop (``fates``' ``nat_rules``), when no line
    shows a translation of that type for its connection. MASQUERADE's address is the out
    interface's, as the logs show it (a local address seen on that interface), else said so:
    ``up0's address``.

    Args:
        frame: the traced hops (``flow``, ``packet``, ``orig_key``, the interfaces).
        fates: ``fates.packet_fates`` with the ruleset (a ``nat_rules`` column).
        found: ``infer_translations``' table.
    """
    if "nat_rules" not in fates.columns or fates["nat_rules"].isna().all():
        return found
    hits = fates["nat_rules"].dropna().to_dict()
    addresses = _interface_addresses(frame)
    rows = frame[frame["packet"].isin(list(hits))]
    last = rows[~rows["packet"].duplicated(keep="last").to_numpy()]
    columns = ["packet", "flow", "orig_key", "host", "out_iface"]
    hit_flows = set(last["flow"].tolist())
    shown_of = found[found["flow"].isin(hit_flows)].groupby("flow", sort=False)["type"]
    shown_types = {flow: set(types) for flow, types in shown_of}
    added = []
    for packet, flow, orig_key, host, out in zip(*(last[c].tolist() for c in columns), strict=True):
        shown = shown_types.setdefault(flow, set())
        proto, orig = key_tuple(str(orig_key))
        for hit in hits[packet]:
            kind = RULE_TYPES.get(hit.type)
            if kind is None or kind in shown:
                continue
            if kind == "snat":
                source = _endpoint(proto, orig.src, orig.sport)
                to = hit.to or addresses.get((host, out)) or f"{out}'s address"
            else:
                source = _endpoint(proto, orig.dst, orig.dport)
                to = hit.to or "an address the rule does not write"
            added.append((flow, kind, source, to, hit.hook, _text(host), "ruleset"))
            shown.add(kind)
    if not added:
        return found
    more = pd.DataFrame(added, columns=CANDIDATE, dtype=object)
    return _by_flow(pd.concat([found, more], ignore_index=True))


def local_addresses(frame: pd.DataFrame) -> pd.DataFrame:
    """The hosts' own addresses as the logs show them, one row each (``host``, ``iface``,
    ``addr``): the destination of a packet delivered at INPUT (the interface it came in by),
    then the source of one sent from OUTPUT (the interface it left by), in the hops' order."""
    names = ["host", "iface", "addr"]
    delivered = frame.loc[frame["hook"].eq("INPUT"), ["host", "in_iface", "dst"]]
    sent = frame.loc[frame["hook"].eq("OUTPUT"), ["host", "out_iface", "src"]]
    both = pd.concat([delivered.set_axis(names, axis=1), sent.set_axis(names, axis=1)])
    both = both.dropna(subset=["addr"]).astype({"addr": str})
    return both.drop_duplicates()


def _interface_addresses(frame: pd.DataFrame) -> dict[tuple[object, object], str]:
    """Per (host, interface), the first local address the logs show on it (``local_addresses``)."""
    rows = local_addresses(frame).dropna()
    found: dict[tuple[object, object], str] = {}
    for host, name, address in zip(*(rows[c].tolist() for c in rows.columns), strict=True):
        found.setdefault((host, name), address)
    return found
