"""Hosts' clocks: one clock for the lines of several hosts.

Packets are joined across hosts by wall-clock time, and hosts without NTP, or logging local time
in different zones, disagree by seconds to hours. A packet with a non-zero IP ID shows the same
identity (IP ID, length, flags, TCP window...) on every host it crosses, whatever their clocks
say: the median time difference of such packets between two hosts is their offset (the transit
itself takes microseconds).

``learn_offsets`` learns them from a whole store (``logpath.journeys.store_clock_offsets``
keeps the answer beside the store), so that a question about one connection, too few packets to
learn from, still puts both hosts' lines on one clock; ``logpath.packets`` learns them from the
hops it groups when it is given none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# What a packet keeps from host to host, whatever NAT and routing do to it (not its addresses,
# ports or TTL); the IP ID makes it nearly unique.
PACKET_IDENTITY = ["proto", "len", "id", "flags", "window", "seq", "ack", "icmp_type",
                   "icmp_code", "icmp_id", "icmp_seq"]  # fmt: skip
# What learn_offsets reads of each hop.
CLOCK_COLUMNS = ["host", "ts", "uptime", *PACKET_IDENTITY]
# Two hosts' clocks are compared only on this many packets or more, most of which agree with
# their median within AGREEMENT seconds: a chance match of identities moves no clock.
MIN_CLOCK_PAIRS = 3
AGREEMENT = 2.0
# A packet identity logged on one host over a longer span than this is two packets (the IP ID
# came round again): it is left out.
SAME_PACKET_SPAN = 10.0
# How far boot + uptime may be from a line's own (whole-second) stamp.
FINE_CLOCK_SLACK = 1.5


@dataclass(frozen=True)
class Clocks:
    """One clock for several hosts' lines, learned from a whole store (``learn_clocks``)."""

    boot: Mapping[str, float] = field(default_factory=dict)
    """Per host, when it booted by its own wall clock (epoch seconds at uptime 0)."""
    ahead: Mapping[str, float] = field(default_factory=dict)
    """Per host, how many seconds its wall clock runs ahead of the reference host's."""
    links: frozenset[tuple[str, str]] | None = None
    """The pairs of hosts (each pair sorted) that packets were seen to cross: the only hosts
    ``logpath.packets`` joins a packet between. None where they were not learned (then any)."""

    def to_json(self) -> dict[str, Any]:
        kept: dict[str, Any] = {"boot": dict(self.boot), "ahead": dict(self.ahead)}
        if self.links is not None:
            kept["links"] = [list(pair) for pair in sorted(self.links)]
        return kept

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Clocks:
        links = data.get("links")
        return cls(
            boot={str(h): float(t) for h, t in data["boot"].items()},
            ahead={str(h): float(t) for h, t in data["ahead"].items()},
            links=None if links is None else frozenset((str(a), str(b)) for a, b in links),
        )

    def linked(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Per pair of host names, whether a packet may pass between them: the same host, an
        unnamed one (a log without host names), or a learned link."""
        if self.links is None:
            return np.ones(len(first), dtype=bool)
        a = pd.Series(first, dtype="object")
        b = pd.Series(second, dtype="object")
        unnamed = a.isna() | b.isna()
        a, b = a.fillna("").astype(str), b.fillna("").astype(str)
        lo, hi = a.where(a <= b, b), b.where(a <= b, a)
        known = (lo + "\0" + hi).isin({f"{x}\0{y}" for x, y in self.links})
        linked: np.ndarray = (unnamed | (a == b) | known).to_numpy(dtype=bool)
        return linked


def host_groups(names: list[str], links: frozenset[tuple[str, str]]) -> list[int]:
    """Per host name, its group: the hosts ``links`` join, transitively (a number per group,
    the smallest index of its hosts). Hosts in two groups share no packet, so no connection."""
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    index = {name: i for i, name in enumerate(names)}
    for a, b in links:
        if a in index and b in index:
            low, high = sorted((root(index[a]), root(index[b])))
            parent[high] = low
    return [root(i) for i in range(len(names))]


def host_groups_of(hosts: pa.Array, links: frozenset[tuple[str, str]]) -> np.ndarray:
    """Per host name of ``hosts`` (none null), its group (``host_groups``)."""
    encoded = pc.dictionary_encode(hosts)
    of_name = np.array(host_groups(encoded.dictionary.to_pylist(), links), dtype=np.int64)
    group: np.ndarray = of_name[encoded.indices.to_numpy(zero_copy_only=False)]
    return group


def host_codes(host: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per line, the number of its host in the names returned (a line without a host is
    host ""). From a categorical column's codes, without a Python string per line: on the 1.2M
    hops of the 2M-line replay, turning the column into objects to group or map it cost
    0.1-0.3 s at each of three places, in the ingest's one-core part."""
    code, found = pd.factorize(host)
    names = [str(name) for name in found]
    if (code < 0).any():
        if "" not in names:
            names.append("")
        code = np.where(code < 0, names.index(""), code)
    return code.astype(np.int64), names


def boot_times(stamps: pd.Series, uptime: pd.Series, host: pd.Series) -> dict[str, float]:
    """Per host, the median of stamp - uptime over its lines: its boot by its wall clock."""
    code, names = host_codes(host)
    boots = (stamps - uptime).groupby(code).median().dropna()
    found = {names[int(c)]: float(t) for c, t in zip(boots.index, boots.to_numpy(), strict=True)}
    return dict(sorted(found.items()))


# Per host, how many lines' stamp - uptime (their boot time by the wall clock) fell in each
# millisecond: the boot times of lines no longer read are learned from these (a median needs
# every value; a follow at 20,000 lines/s read the stamps of 21.6M stored hops at each store
# assembly after 30 minutes, 7 s and 2.2 GB, growing with the run). Their size is bounded by
# the values' spread (a stamp is a whole second: ~1,000 per host and clock), not by the lines;
# the median they give is within a millisecond of the lines' own, and boot times learned again
# are compared with the stored ones to within BOOT_DRIFT (100 ms, ``logpath.assembly``).
BootCounts = dict[str, dict[int, int]]


def boot_counts(lines: pd.DataFrame) -> BootCounts:
    """``lines``' (host, ts, uptime) stamp - uptime counted per host and millisecond."""
    values = (_epoch(lines["ts"]) - _uptime(lines)).to_numpy(dtype="float64")
    code, names = host_codes(lines["host"])
    known = ~np.isnan(values)
    frame = pd.DataFrame(
        {"host": code[known], "ms": np.floor(values[known] * 1000).astype(np.int64)}
    )
    sizes = frame.groupby(["host", "ms"], sort=True).size()
    counted: BootCounts = {}
    for (host, ms), n in zip(sizes.index.tolist(), sizes.tolist(), strict=True):
        counted.setdefault(names[int(host)], {})[int(ms)] = int(n)
    return counted


def clocks_counted(
    counted: list[BootCounts],
    shared: list[LinkCounts] | None = None,
    read: pd.DataFrame | None = None,
) -> Clocks:
    """The clocks (``learn_clocks``) of lines known by what was counted of them: each host's
    median of stamp - uptime (``boot_times``) from their ``boot_counts``, to the millisecond,
    and the links (and offsets) of the packets hosts shared from their ``link_counts``
    (``links_counted``); with the lines ``read`` (CLOCK_COLUMNS, or host, ts and uptime of
    one host's), not counted yet: counted here."""
    if read is not None:
        counted = [*counted, boot_counts(read)]
    merged: dict[str, dict[int, int]] = {}
    for counts in counted:
        for host, bins in counts.items():
            into = merged.setdefault(host, {})
            for at, n in bins.items():
                into[at] = into.get(at, 0) + n
    boot: dict[str, float] = {}
    for host, bins in merged.items():
        ms = np.array(sorted(bins), dtype=np.int64)
        lines = np.array([bins[m] for m in ms.tolist()], dtype=np.int64)
        boot[host] = (_middle(ms, lines) + 0.5) / 1000  # its millisecond's middle
    links: dict[tuple[str, str], float] = {}
    if shared is not None and len(boot) > 1:
        if read is not None:
            shared = [*shared, link_counts(read, boot)]
        links = links_counted(shared, boot)
    return Clocks(boot=dict(sorted(boot.items())), ahead=walk(links), links=linked_pairs(links))


def _middle(values: np.ndarray, counts: np.ndarray) -> float:
    """The median of the sorted ``values``, each seen ``counts`` times: the middle one, or the
    mean of the two middle ones (as pandas' median of the values written out)."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    low, high = (
        values[np.searchsorted(cumulative, rank, side="right")]
        for rank in ((total - 1) // 2, total // 2)
    )
    return float(low + high) / 2


def fine_wall_clock(
    stamps: pd.Series, uptime: pd.Series, host: pd.Series, boot: Mapping[str, float] | None = None
) -> pd.Series:
    """Wall-clock seconds with the kernel's microseconds, where a line has both.

    Syslog stamps whole seconds; the kernel's [uptime] is precise but counts from each host's
    own boot, so it orders one host's lines and not two hosts'. A line's time is its host's
    boot time + its uptime when that lies within FINE_CLOCK_SLACK of its own stamp (not after a
    reboot or a clock step), else its stamp. The boot times are ``boot`` (learned from a whole
    store: every subset of its lines must land on the same clock), else the median of stamp -
    uptime over these lines.
    """
    fine = _boot_plus_uptime(stamps, uptime, host, boot)
    return fine.where((fine - stamps).abs() <= FINE_CLOCK_SLACK, stamps)


def fine_clocked(lines: pd.DataFrame, boot: Mapping[str, float]) -> np.ndarray:
    """Per line (host, ts, uptime), whether ``fine_wall_clock`` gives it its fine time (else
    its stamp): a boot time learned again moves every fine time alike, but a line near
    FINE_CLOCK_SLACK may change sides (what follow's window checks before it keeps a
    connection as it was assembled)."""
    stamps = _epoch(lines["ts"])
    fine = _boot_plus_uptime(stamps, _uptime(lines), lines["host"], boot)
    taken: np.ndarray = ((fine - stamps).abs() <= FINE_CLOCK_SLACK).to_numpy(dtype=bool)
    return taken


def _boot_plus_uptime(
    stamps: pd.Series, uptime: pd.Series, host: pd.Series, boot: Mapping[str, float] | None
) -> pd.Series:
    """Per line, its host's boot time (``fine_wall_clock``'s) plus its uptime."""
    code, names = host_codes(host)
    if boot and all(name in boot for name in names):
        known = dict(boot)  # the lines' own medians would all be overridden: not computed
    else:
        known = {**boot_times(stamps, uptime, host), **(boot or {})}
    # looked up once per host, then per line by its host's code (a map over a million lines)
    boot_of = np.array([known.get(name, np.nan) for name in names], dtype="float64")
    return pd.Series(boot_of[code], index=host.index) + uptime


def learn_clocks(lines: pd.DataFrame, shared: pd.DataFrame) -> Clocks:
    """Each host's boot time and clock offset.

    Args:
        lines: host, ts and uptime of every line (the boot times are taken over all of them).
        shared: the CLOCK_COLUMNS of the lines with a non-zero IP ID (the packets hosts share).
    """
    boot = boot_times(_epoch(lines["ts"]), _uptime(lines), lines["host"])
    links = learn_links(shared, boot)
    return Clocks(boot=boot, ahead=walk(links), links=linked_pairs(links))


def one_clock(lines: pd.DataFrame, clocks: Clocks) -> np.ndarray:
    """Per line (host, ts, uptime), seconds on one clock for all hosts: its fine wall-clock time
    set back by its host's offset, as ``logpath.packets`` places hops; NaN without a date."""
    fine = fine_wall_clock(_epoch(lines["ts"]), _uptime(lines), lines["host"], clocks.boot)
    seconds: np.ndarray = fine.to_numpy(dtype="float64") - offsets_of(lines["host"], clocks.ahead)
    return seconds


# a datetime column's integers per second, by its unit
_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _epoch(ts: pd.Series) -> pd.Series:
    """Seconds since the epoch (UTC), NaN without a time. A datetime column's integers are
    divided by its unit as ``(ts - epoch).dt.total_seconds()`` divides them (the same floats),
    without its Timedelta arithmetic: 0.18 s against 0.007 on 2.9M hops, and the clocks take
    these of every hop of a store several times an assembly."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(ts.dtype):
        per = _PER_SECOND.get(ts.dt.unit)
        if per is not None:
            values = ts.array.asi8 / per
            values[ts.isna().to_numpy()] = np.nan
            return pd.Series(values, index=ts.index, dtype="float64")
    seconds = (pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.astype("float64")


def _uptime(lines: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(lines["uptime"], errors="coerce").astype("float64")


def learn_offsets(hops: pd.DataFrame, boot: Mapping[str, float] | None = None) -> dict[str, float]:
    """Seconds each host's wall clock runs ahead, from every packet several hosts logged.

    Args:
        hops: hop rows with the CLOCK_COLUMNS (``Store.read_hops(columns=CLOCK_COLUMNS)``).
        boot: the hosts' boot times (``boot_times`` of all their lines), for fine clocks.

    Returns:
        Host name to seconds ahead of the reference host (the one linked to most others, at
        0.0); {} when fewer than two hosts share packets.
    """
    return walk(learn_links(hops, boot))


def learn_links(
    hops: pd.DataFrame, boot: Mapping[str, float] | None = None
) -> dict[tuple[str, str], float]:
    """The pairs of hosts that logged the same packets, with how many seconds the second's
    clock runs ahead of the first's (``learn_offsets``' arguments)."""
    pairs = _sightings(hops, boot)
    if pairs is None:
        return {}
    return solve(
        pairs["host_a"],
        pairs["host_b"],
        pairs["d"],
        fine=pairs["fine_a"] & pairs["fine_b"],
        ids=pairs["id"],
    )


def _sightings(hops: pd.DataFrame, boot: Mapping[str, float] | None) -> pd.DataFrame | None:
    """Per packet two hosts logged (the same PACKET_IDENTITY, a non-zero IP ID), the hosts
    (host_a < host_b), how much later host_b stamped it than host_a (d, seconds: when each
    first logged it, by ``fine_wall_clock``), and whether each time was the fine one (fine_a,
    fine_b); None when no two hosts logged a packet."""
    if hops.empty:
        return None
    ids = pd.to_numeric(hops["id"], errors="coerce")
    frame = hops[ids.notna() & ids.ne(0) & hops["host"].notna()]
    if frame.empty or frame["host"].nunique() < 2:
        return None
    frame = frame.reset_index(drop=True)  # each row its own label: found again by idxmin
    stamps = _epoch(frame["ts"])
    fine = _boot_plus_uptime(stamps, _uptime(frame), frame["host"], boot)
    taken = (fine - stamps).abs() <= FINE_CLOCK_SLACK
    frame = frame.assign(_t=fine.where(taken, stamps), _fine=taken)
    frame = frame[_on_several_hosts(frame)]
    frame = frame.assign(host=frame["host"].astype(str))
    frame = frame.dropna(subset=["_t"])
    # one time per packet and host: when the host first logged it
    seen = frame.groupby(["host", *PACKET_IDENTITY], dropna=False, observed=True)["_t"].agg(
        ["min", "max", "idxmin"]
    )
    seen = seen[seen["max"] - seen["min"] <= SAME_PACKET_SPAN]
    seen = seen.assign(_fine=frame["_fine"].loc[seen["idxmin"]].to_numpy())
    seen = seen[["min", "_fine"]].rename(columns={"min": "_t"}).reset_index()
    pairs = seen.merge(seen, on=PACKET_IDENTITY, suffixes=("_a", "_b"))
    pairs = pairs[pairs["host_a"] < pairs["host_b"]]
    return pd.DataFrame(
        {
            "host_a": pairs["host_a"].to_numpy(),
            "host_b": pairs["host_b"].to_numpy(),
            "d": (pairs["_t_b"] - pairs["_t_a"]).to_numpy(dtype="float64"),
            "fine_a": pairs["_fine_a"].to_numpy(dtype=bool),
            "fine_b": pairs["_fine_b"].to_numpy(dtype=bool),
            "id": pairs["id"].to_numpy(),
        }
    )


def _on_several_hosts(frame: pd.DataFrame) -> np.ndarray:
    """Which rows show an identity (PACKET_IDENTITY) that rows of another host show too: by a
    hash of it (a collision only keeps a row more), before grouping by the identity's eleven
    columns. Hosts that share few packets share few identities: on two busy hosts' 1.5M rows
    that shared none, the grouping of every row was most of ``link_counts``' second."""
    key = pd.util.hash_pandas_object(frame[PACKET_IDENTITY], index=False).to_numpy()
    code, _ = host_codes(frame["host"])
    seen = pd.DataFrame({"key": key, "host": code}).drop_duplicates()
    shared = seen["key"][seen["key"].duplicated(keep=False)].unique()
    on_several: np.ndarray = np.isin(key, shared)
    return on_several


# The time differences of the packets two hosts logged, counted per pair of hosts, per whether
# each time was its host's fine one, and per bin: the links are learned again from these when
# the hops are no longer read (``links_counted``), as the boot times are from ``boot_counts``.
# Each difference is taken with the boot times of when it was counted (``LinkCounts.boot``);
# boot times learned again move a fine time by as much as its host's moved, so each count
# moves by its hosts' change. A link's median needs precision; its agreement (AGREEMENT) and
# the rest only a count on each side: the bins are LINK_BINS wide (seconds) within their reach
# of the pair's median difference among these hops, 1 s beyond. Packets whose identities match
# by chance (65,536 IP IDs; a busy host's hour holds millions of packets) give as many
# differences, spread over the slice's time: in 1 s bins there are at most as many as its
# seconds, and a file's footer stays small. A median is kept far within PLACEMENT_DRIFT (1 ms,
# ``logpath.assembly``).
LINK_BINS = ((1e-5, 0.01), (1e-3, AGREEMENT + 1.0))


@dataclass(frozen=True)
class LinkCounts:
    """``link_counts`` of some hops: per (host_a, host_b, fine_a, fine_b, bin width), per
    bin (the difference / the width, rounded), how many."""

    boot: Mapping[str, float]
    pairs: Mapping[tuple[str, str, bool, bool, float], Mapping[int, int]]

    def to_json(self) -> dict[str, Any]:
        return {
            "boot": dict(self.boot),
            "pairs": [[*key, list(bins), list(bins.values())] for key, bins in self.pairs.items()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinkCounts:
        pairs = {
            (str(a), str(b), bool(fa), bool(fb), float(width)): dict(zip(at, n, strict=True))
            for a, b, fa, fb, width, at, n in data["pairs"]
        }
        return cls({str(h): float(t) for h, t in data["boot"].items()}, pairs)


def link_counts(hops: pd.DataFrame, boot: Mapping[str, float]) -> LinkCounts:
    """The time differences of the packets hosts shared among ``hops`` (CLOCK_COLUMNS, the
    ``learn_links`` they give with ``boot``), counted per bin (LINK_BINS)."""
    pairs = _sightings(hops, boot)
    counted: dict[tuple[str, str, bool, bool, float], dict[int, int]] = {}
    if pairs is None or not len(pairs):
        return LinkCounts({str(h): float(t) for h, t in boot.items()}, counted)
    d = pairs["d"].to_numpy()
    median = pairs.groupby(["host_a", "host_b"])["d"].transform("median").to_numpy()
    width = np.ones(len(d))
    for narrow, reach in reversed(LINK_BINS):
        width[np.abs(d - median) <= reach] = narrow
    binned = pairs.assign(width=width, at=np.round(d / width).astype(np.int64))
    keys = ["host_a", "host_b", "fine_a", "fine_b", "width", "at"]
    sizes = binned.groupby(keys, sort=True).size()
    for (a, b, fa, fb, w, at), n in zip(sizes.index.tolist(), sizes.tolist(), strict=True):
        counted.setdefault((str(a), str(b), bool(fa), bool(fb), float(w)), {})[int(at)] = int(n)
    return LinkCounts({str(h): float(t) for h, t in boot.items()}, counted)


def links_counted(
    counted: list[LinkCounts], boot: Mapping[str, float]
) -> dict[tuple[str, str], float]:
    """``learn_links`` of the hops these counts were taken from, with the boot times ``boot``:
    each count moved by its hosts' boot change since it was taken (a stamp, not fine, does
    not move), then ``solve``'s median and agreement over the counts of each pair."""
    values: dict[tuple[str, str], list[np.ndarray]] = {}
    weights: dict[tuple[str, str], list[np.ndarray]] = {}
    fine_weight: dict[tuple[str, str], int] = {}  # the differences of two fine times
    for counts in counted:
        for (a, b, fine_a, fine_b, width), bins in counts.pairs.items():
            if fine_a and fine_b:
                fine_weight[(a, b)] = fine_weight.get((a, b), 0) + sum(bins.values())
            moved = (boot[b] - counts.boot[b] if fine_b else 0.0) - (
                boot[a] - counts.boot[a] if fine_a else 0.0
            )
            values.setdefault((a, b), []).append(
                np.fromiter(bins, dtype=np.int64, count=len(bins)) * width + moved
            )
            weights.setdefault((a, b), []).append(
                np.fromiter(bins.values(), dtype=np.int64, count=len(bins))
            )
    links: dict[tuple[str, str], float] = {}
    for pair, found in values.items():
        d, n = np.concatenate(found), np.concatenate(weights[pair])
        order = np.argsort(d, kind="stable")
        d, n = d[order], n[order]
        total = int(n.sum())
        median = _middle(d, n)
        agreeing = int(n[np.abs(d - median) <= AGREEMENT].sum())
        gap = LINK_GAP if fine_weight.get(pair, 0) * 2 > total else STAMP_GAP
        if total >= MIN_CLOCK_PAIRS and agreeing / total > 0.5 and _one_run(d, n, gap) is not None:
            links[pair] = median
    return dict(sorted(links.items()))


# Packets matched by chance (identities alike: a host's IP IDs count up per connection, and
# two hosts running the same traffic match whole connections) agree within AGREEMENT when the
# hops span seconds: 234 of two unrelated busy hosts' 4,195 connections in 5 s of their log
# were joined across them. But each connection matched gives a difference of its own, while
# packets that did cross two hosts give one (their transit: microseconds; drifting slowly with
# the hosts' clocks): sorted, a link's differences follow each other closely. Most of them
# must be one run, each at most LINK_GAP from the next (fine times; where most are whole-
# second stamps, STAMP_GAP: a run of stamps tells nothing).
LINK_GAP = 0.01
STAMP_GAP = 1.5


def _one_run(d: np.ndarray, n: np.ndarray, gap: float) -> np.ndarray | None:
    """Where most of the weight ``n`` of the sorted differences ``d`` is one run (each
    difference at most ``gap`` from the next): that run's mask; None when it is not."""
    run = np.r_[0, np.cumsum(np.diff(d) > gap)]
    weight = np.bincount(run, weights=n)
    if weight.max() * 2 <= n.sum():
        return None
    found: np.ndarray = run == int(weight.argmax())
    return found


# One connection matched by chance gives a run of its own: its packets' differences are one
# (the two hosts' traffic alike), and a few seconds of two busy hosts' log (follow's window)
# hold only a few such runs: the hosts were learned linked from one. A link's run must hold
# packets of two connections or more at least, told apart by their IP IDs (a connection's
# count up from its own start): two further apart than ID_SPAN.
ID_SPAN = 256


def solve(
    first: pd.Series,
    second: pd.Series,
    later: pd.Series,
    agreement: float = AGREEMENT,
    fine: pd.Series | None = None,
    ids: pd.Series | None = None,
) -> dict[tuple[str, str], float]:
    """The links between hosts, from time differences of packets seen by two hosts.

    Args:
        first, second: per pair of sightings, the host that saw the packet and the other one.
        later: how many seconds later ``second``'s clock stamped it than ``first``'s.
        agreement: how close to their median most differences of a link must be.
        fine: per pair, whether both times are fine ones (``fine_wall_clock``); None: not
            known (whole-second stamps are assumed: ``_one_run`` with STAMP_GAP).
        ids: per pair, the packet's IP ID: a link's run must hold two connections (ID_SPAN);
            None: not asked.

    Returns:
        Per pair of hosts (first, second) that most differences agree on, how many seconds
        the second's clock runs ahead of the first's (``walk`` turns them into each host's
        offset).
    """
    frame = pd.DataFrame(
        {
            "a": first.to_numpy(),
            "b": second.to_numpy(),
            "d": later.to_numpy(dtype="float64"),
            "fine": False if fine is None else fine.to_numpy(dtype=bool),
            "id": 0 if ids is None else pd.to_numeric(ids).to_numpy(dtype="int64"),
        }
    )
    links: dict[tuple[str, str], float] = {}
    for (a, b), group in frame.groupby(["a", "b"]):
        d = group["d"]
        median = float(d.median())
        if len(d) >= MIN_CLOCK_PAIRS and (d - median).abs().le(agreement).mean() > 0.5:
            gap = LINK_GAP if group["fine"].mean() > 0.5 else STAMP_GAP
            order = np.argsort(d.to_numpy(), kind="stable")
            run = _one_run(d.to_numpy()[order], np.ones(len(order)), gap)
            if run is None:
                continue
            packets = np.unique(group["id"].to_numpy()[order][run])
            if ids is None or (np.diff(packets) > ID_SPAN).any():
                links[(str(a), str(b))] = median
    return links


def linked_pairs(links: Mapping[tuple[str, str], float]) -> frozenset[tuple[str, str]]:
    """The hosts of each link, sorted: a packet crosses a link either way."""
    return frozenset((min(a, b), max(a, b)) for a, b in links)


def walk(links: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Offsets along the links, from the host in most of them (its clock is the reference)."""
    ahead: dict[str, float] = {}
    counts = pd.Series([host for pair in links for host in pair]).value_counts()
    for reference in counts.index:
        if reference in ahead:
            continue
        ahead[str(reference)] = 0.0
        todo = [str(reference)]
        while todo:
            host = todo.pop()
            for (a, b), median in links.items():
                if a == host and b not in ahead:
                    ahead[b] = ahead[a] + median
                    todo.append(b)
                elif b == host and a not in ahead:
                    ahead[a] = ahead[b] - median
                    todo.append(a)
    return ahead


def offsets_of(hosts: pd.Series, ahead: Mapping[str, float]) -> np.ndarray:
    """Per row, its host's offset in seconds (0 for a host without one)."""
    code, names = pd.factorize(hosts)  # a line without a host: -1, no offset
    of_name = np.array([float(ahead.get(str(name), 0.0)) for name in names] + [0.0])
    offsets: np.ndarray = of_name[code]
    return offsets
