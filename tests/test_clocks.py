"""Hosts' clocks, learned from the two-host lab capture with one host's clock moved."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lab import twohosts as th
from seedstore import replayed_syslog

from logpath.clocks import (
    CLOCK_COLUMNS,
    MIN_CLOCK_PAIRS,
    _epoch,
    _sightings,
    _uptime,
    boot_counts,
    boot_times,
    clocks_counted,
    fine_wall_clock,
    learn_clocks,
    learn_links,
    learn_offsets,
    link_counts,
    links_counted,
    one_clock,
)
from logpath.ingest import ingest
from logpath.query import FlowQuery, find_flows, store_clocks
from logpath.store import Store

FILES = th.sample_files("two-hosts")


def two_hosts(tmp_path: Path, ahead: float) -> Store:
    """Both hosts' logs in one store, hostb's clock ``ahead`` seconds off (and rebooted)."""
    store = Store(tmp_path / "store")
    hostb = th.shifted(FILES["hostb"], ahead, 123_456.5, tmp_path)
    ingest([str(FILES["hosta"]), str(hostb)], store, year=2026)
    return store


@pytest.mark.parametrize("ahead", [0.0, 37.0, -3 * 3600.0])
def test_the_offset_is_learned_to_the_millisecond(tmp_path: Path, ahead: float) -> None:
    # both namespaces logged on one kernel clock: the moved clock is the only difference
    learned = learn_offsets(two_hosts(tmp_path, ahead).read_hops(columns=CLOCK_COLUMNS))
    assert set(learned) == {"hosta", "hostb"} and 0.0 in learned.values()
    assert learned["hostb"] - learned["hosta"] == pytest.approx(ahead, abs=0.001)


def test_one_host_has_no_offset(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    ingest([str(FILES["hosta"])], store, year=2026)
    assert learn_offsets(store.read_hops(columns=CLOCK_COLUMNS)) == {}
    clocks = store_clocks(store)
    assert clocks.ahead == {} and set(clocks.boot) == {"hosta"}


def test_the_store_keeps_its_clocks_until_a_part_is_added(tmp_path: Path) -> None:
    store = two_hosts(tmp_path, 37.0)
    clocks = store_clocks(store)
    assert clocks.ahead["hostb"] - clocks.ahead["hosta"] == pytest.approx(37.0, abs=0.001)
    # hostb "booted" 123,456.5 s earlier by its moved clock, and 37 s later
    assert clocks.boot["hostb"] - clocks.boot["hosta"] == pytest.approx(37.0 - 123_456.5, abs=1)
    # learned at ingest, under the store's lock, and kept in the manifest with the assembly
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert manifest["assembly"]["clocks"] == clocks.to_json()
    assert manifest["assembly"]["parts"] == store.require().parts
    # a new part (another ingest) makes it learn again
    extra = tmp_path / "extra.log"
    extra.write_text(FILES["hosta"].read_text().replace("hosta", "hostc"))
    ingest([str(extra)], store, year=2026)
    again = store_clocks(store).ahead
    assert again["hostb"] - again["hosta"] == pytest.approx(37.0, abs=0.001)
    assert again["hostc"] == pytest.approx(again["hosta"], abs=0.001)
    assert (
        json.loads((store.path / "manifest.json").read_text())["assembly"]["clocks"]["ahead"]
        == again
    )


def test_any_subset_of_a_hosts_lines_lands_on_the_same_clock(tmp_path: Path) -> None:
    # the boot time comes from all the host's lines: a few of them alone give the same times
    store = two_hosts(tmp_path, 37.0)
    lines = store.read_hops(columns=["host", "ts", "uptime"])
    clocks = store_clocks(store)
    stamps = (pd.to_datetime(lines["ts"], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    uptime = lines["uptime"].astype("float64")
    whole = fine_wall_clock(stamps, uptime, lines["host"], clocks.boot)
    part = lines.index[::7]
    some = fine_wall_clock(stamps[part], uptime[part], lines["host"][part], clocks.boot)
    assert some.tolist() == whole[part].tolist()


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_seconds_since_the_epoch_are_those_of_timedelta_arithmetic(
    tmp_path: Path, unit: str
) -> None:
    # the lab's stamps (microseconds, a few lines without one), in every unit a column may
    # have, aware and naive: the same floats as (ts - epoch).dt.total_seconds()
    store = Store(tmp_path / "store")
    lab = Path(__file__).resolve().parent.parent / "samples" / "lab"
    ingest([str(lab / "hairpin.log"), str(lab / "ipv6.dmesg")], store)
    ts = store.read_hops(columns=["ts"])["ts"]
    assert ts.isna().any() and ts.notna().sum() > 50
    for stamps in (ts.dt.as_unit(unit), ts.dt.tz_localize(None).dt.as_unit(unit)):
        expected = (pd.to_datetime(stamps, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        assert _epoch(stamps).equals(expected.astype("float64"))


def test_boot_times_counted_by_the_millisecond_are_the_lines_medians(tmp_path: Path) -> None:
    """A store's files keep their hops' stamp - uptime counted per millisecond: the boot time
    learned from those counts, of any cut of the lines into files, is the median of every
    line's to the millisecond (odd and even counts, lines without a stamp or an uptime)."""
    store = Store(tmp_path / "store")
    lab = Path(__file__).resolve().parent.parent / "samples" / "lab"
    ingest([str(lab / "hairpin.log"), str(lab / "masquerade.log"), str(lab / "ipv6.dmesg")], store)
    lines = store.read_hops(columns=["host", "ts", "uptime"])
    assert lines["ts"].isna().any() and lines["host"].nunique() == 1
    for count in (len(lines), len(lines) - 1):
        some = lines.iloc[:count]
        exact = boot_times(_epoch(some["ts"]), _uptime(some), some["host"])
        for cuts in ([], [count // 3], [1, count // 2, count - 2]):
            edges = [0, *cuts, count]
            counted = [boot_counts(some.iloc[a:b]) for a, b in itertools.pairwise(edges)]
            clocks = clocks_counted(counted)
            assert clocks.boot.keys() == exact.keys()
            for host, boot in exact.items():
                assert clocks.boot[host] == pytest.approx(boot, abs=0.001)
            assert clocks.ahead == {} and not clocks.links


@pytest.mark.parametrize("ahead", [37.0, -3 * 3600.0])
def test_links_counted_by_the_file_are_the_links_of_every_line(
    tmp_path: Path, ahead: float
) -> None:
    """A store's files keep the time differences of the packets hosts shared, counted per
    10 µs with the boot times of when they were written: the links learned again from those
    counts, under the boot times learned again (which moved since: each file's counts move
    with them), are those learned from every line, whatever the cut into files."""
    hops = two_hosts(tmp_path, ahead).read_hops(columns=CLOCK_COLUMNS)
    exact = learn_clocks(hops, hops)
    assert exact.links == {("hosta", "hostb")}
    links = learn_links(hops, exact.boot)
    # the clocks the files were written with: each host's boot time since learned again, a
    # few tens of milliseconds apart (within the 100 ms by which stored clocks still stand)
    written = {"hosta": exact.boot["hosta"] + 0.031, "hostb": exact.boot["hostb"] - 0.047}
    assert learn_links(hops, written)[("hosta", "hostb")] != pytest.approx(
        links[("hosta", "hostb")], abs=0.01
    )
    # cut in time (on the one clock), as slices of connections are (a packet's sightings on the two hosts are
    # microseconds apart: a cut may part a few)
    order = np.argsort(one_clock(hops, exact), kind="stable")
    hops = hops.iloc[order].reset_index(drop=True)
    count = len(hops)
    for cuts in ([], [count // 3], [count // 4, count // 2]):
        edges = [0, *cuts, count]
        files = [hops.iloc[a:b] for a, b in itertools.pairwise(edges)]
        clocks = clocks_counted(
            [boot_counts(f) for f in files], [link_counts(f, written) for f in files]
        )
        assert clocks.links == exact.links
        assert all(abs(clocks.boot[h] - exact.boot[h]) <= 0.001 for h in exact.boot)
        # the hosts' placement on the one clock, as PLACEMENT_DRIFT compares it
        placed, exactly = (
            (c.boot["hostb"] - c.ahead["hostb"]) - (c.boot["hosta"] - c.ahead["hosta"])
            for c in (clocks, exact)
        )
        assert placed == pytest.approx(exactly, abs=0.001)
        if not cuts:  # every pair counted: the median of every line's, to the bin
            again = learn_links(hops, clocks.boot)[("hosta", "hostb")]
            assert clocks.ahead["hostb"] - clocks.ahead["hosta"] == pytest.approx(again, abs=1e-5)
    # a note's counts survive their JSON, and a host alone has none
    once = link_counts(hops, written)
    assert type(once).from_json(json.loads(json.dumps(once.to_json()))) == once
    assert link_counts(hops[hops["host"].eq("hosta")], written).pairs == {}


def two_busy_hosts(tmp_path: Path, seeds: tuple[int, int], lines: int, per_second: int) -> Store:
    """A store of two busy hosts no packet crosses: two replays of the lab's captures
    (``seeds``), the second under another host name (pc-two)."""
    logs = []
    for seed, host in zip(seeds, ("pc-baim", "pc-two"), strict=True):
        (tmp_path / host).mkdir()
        log = replayed_syslog(tmp_path / host, lines, seed, per_second=per_second)
        log.write_text(log.read_text().replace(" pc-baim ", f" {host} "))
        logs.append(str(log))
    store = Store(tmp_path / "store")
    ingest(logs, store)
    return store


def test_packets_matched_by_chance_keep_a_footer_small(tmp_path: Path) -> None:
    """Two busy hosts that share no packet (two replays, 20 s of 10,000 lines/s each) still
    show the same IP ID, length, flags and window thousands of times by chance: their counts
    are a few hundred bins (1 ms near the median, 1 s beyond), not one per difference, and
    give the same answer as every line: no link."""
    hops = two_busy_hosts(tmp_path, (5, 6), 200_000, 10_000).read_hops(columns=CLOCK_COLUMNS)
    boot = learn_clocks(hops, hops).boot
    counted = link_counts(hops, boot)
    matched = sum(n for bins in counted.pairs.values() for n in bins.values())
    bins = sum(len(bins) for bins in counted.pairs.values())
    assert matched > 5_000 and bins < matched / 3, (matched, bins)
    assert links_counted([counted], boot) == learn_links(hops, boot) == {}
    span = (hops["ts"].max() - hops["ts"].min()).total_seconds()
    for (*_, width), found in counted.pairs.items():
        assert width in (1e-5, 1e-3, 1.0)
        if width == 1.0:
            assert len(found) <= 2 * span + 1


@pytest.mark.parametrize("seed", [3, 10])
def test_hosts_whose_connections_match_by_chance_are_not_linked(tmp_path: Path, seed: int) -> None:
    """Two busy hosts replaying the same captures at the same pace (other IP IDs, counting up
    alike per connection): whole connections match by chance, each at a difference of its own
    within a second, and the hosts were learned linked (every seed tried, 3 to 11): packets
    were joined across them. A link's differences must be one run (LINK_GAP apart): none."""
    store = two_busy_hosts(tmp_path, (2, seed), 8_000, 45_000)
    hops = store.read_hops(columns=CLOCK_COLUMNS)
    boot = learn_clocks(hops, hops).boot
    pairs = _sightings(hops, boot)
    assert pairs is not None and len(pairs) >= MIN_CLOCK_PAIRS  # matched by chance
    assert learn_links(hops, boot) == {}
    assert links_counted([link_counts(hops, boot)], boot) == {}
    hosts = {tuple(flow.hosts) for flow in find_flows(store, FlowQuery())}
    assert hosts == {("pc-baim",), ("pc-two",)}
