"""Flow ids name the connection, not the store (issue 15): the same kernel lines, read from
another file name, in another layout (syslog, dmesg, /dev/kmsg) or into another store, give the
same ids, and any unique prefix of an id finds its flow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.ingest import ingest
from logpath.query import FlowQuery, find_flows
from logpath.store import Store

LAB = Path(__file__).resolve().parent.parent / "samples" / "lab"


@pytest.mark.parametrize("capture", ["c2c", "masquerade", "icmp-echo", "icmp-error", "ipv6"])
def test_one_connection_has_one_id_in_every_store_and_layout(tmp_path: Path, capture: str) -> None:
    ids = {}
    for layout in ("log", "dmesg", "kmsg"):
        copy = tmp_path / layout / f"renamed.{layout}"
        copy.parent.mkdir()
        shutil.copy(LAB / f"{capture}.{layout}", copy)
        store = Store(tmp_path / f"store-{layout}")
        ingest([str(copy)], store)
        ids[layout] = sorted(flow.id for flow in find_flows(store, FlowQuery()))
    assert ids["log"], "the capture has connections"
    assert ids["log"] == ids["dmesg"] == ids["kmsg"]


def test_a_unique_prefix_finds_its_flow_and_an_ambiguous_one_says_so(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(LAB / "burst.log"), "--store", store]).exit_code == 0
    ids = [f.id for f in find_flows(Store(Path(store)), FlowQuery())]
    whole = ids[7]
    short = next(
        whole[:n] for n in range(1, len(whole)) if sum(i.startswith(whole[:n]) for i in ids) == 1
    )
    shown = runner.invoke(app, ["journey", short, "--store", store])
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith(f"flow {whole} ")
    shared = next(i[:1] for i in ids if sum(j.startswith(i[:1]) for j in ids) > 1)
    refused = runner.invoke(app, ["journey", shared, "--store", store])
    assert refused.exit_code == 2, refused.output
    assert f"flow id {shared!r} is ambiguous" in refused.output


def test_each_hop_says_its_flow_packet_and_hook(tmp_path: Path) -> None:
    """From a log line to its journey: `hops` carries where assembly placed each hop."""
    store = str(tmp_path / "store")
    runner = CliRunner()
    seed = LAB.parent / "seed"
    done = runner.invoke(
        app,
        ["ingest", str(seed / "syslog"), "--rules", str(seed / "iptables.final.rules"),
         "--year", "2016", "--store", store],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    hops = json.loads(runner.invoke(app, ["hops", "--json", "--store", store]).output)
    flows = {f.id: f for f in find_flows(Store(Path(store)), FlowQuery())}
    assert len(hops) == 27 and {h["flow"] for h in hops} == set(flows)
    assert all(h["hook"] and h["table"] and h["packet"] is not None for h in hops)
    assert [sum(h["flow"] == i for h in hops) for i in flows] == [f.hops for f in flows.values()]
    # journey 5's SYN at nat POSTROUTING, the line of the seed article's SNAT
    (snat,) = [h for h in hops if h["prefix"] == "[TonyBai]-NatPostRouting:"]
    assert (snat["table"], snat["chain"], snat["hook"]) == (
        "nat",
        "LogNatPostRouting",
        "POSTROUTING",
    )
    journey = runner.invoke(app, ["journey", snat["flow"], "--json", "--store", store])
    assert (
        json.loads(journey.output)["packets"][
            snat["packet"] - min(h["packet"] for h in hops if h["flow"] == snat["flow"])
        ]["summary"]
        == "SYN"
    )
    table = runner.invoke(app, ["hops", "--store", store]).output.splitlines()
    assert table[0].split()[-2:] == ["hook", "flow"]
    assert table[1].split()[-2:] == ["PREROUTING", hops[0]["flow"]]
    csv_header = runner.invoke(app, ["hops", "--csv", "--store", store]).output.splitlines()[0]
    assert csv_header.split(",")[-5:] == ["flow", "packet", "table", "chain", "hook"]


def test_two_hosts_logging_one_tuple_at_one_kernel_time_get_two_ids(tmp_path: Path) -> None:
    """One kernel line relayed under two host names (or two hosts whose clocks since boot
    agree to the microsecond): two connections, each with an id of its own that finds its
    journey and its own report page; an id nothing clashes with stays as it was."""
    seed = (LAB.parent / "seed" / "syslog").read_text().splitlines()
    line = seed[0]
    assert " pc-baim kernel: " in line
    log = tmp_path / "relayed.log"
    log.write_text(f"{line}\n{line.replace(' pc-baim ', ' pc-other ')}\n")
    runner = CliRunner()
    store = str(tmp_path / "store")
    assert (
        runner.invoke(app, ["ingest", str(log), "--store", store, "--year", "2016"]).exit_code == 0
    )
    flows = json.loads(runner.invoke(app, ["flows", "--json", "--store", store]).output)
    assert len(flows) == 2 and len({f["id"] for f in flows}) == 2
    assert {tuple(f["hosts"]) for f in flows} == {("pc-baim",), ("pc-other",)}
    for flow in flows:
        done = runner.invoke(app, ["journey", flow["id"], "--json", "--store", store])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output)["flow"]["hosts"] == flow["hosts"]
    report = tmp_path / "report"
    assert runner.invoke(app, ["report", "--store", store, "-o", str(report)]).exit_code == 0
    assert {p.stem for p in (report / "flows").glob("*.html")} == {f["id"] for f in flows}
    # alone, the line's connection has the id every store gives it
    single = tmp_path / "single.log"
    single.write_text(f"{line}\n")
    alone = str(tmp_path / "alone")
    assert (
        runner.invoke(app, ["ingest", str(single), "--store", alone, "--year", "2016"]).exit_code
        == 0
    )
    (only,) = json.loads(runner.invoke(app, ["flows", "--json", "--store", alone]).output)
    assert only["id"] not in {f["id"] for f in flows}
    assert only["id"].endswith(f"-{only['orig']['sport']}")
