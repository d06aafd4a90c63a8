"""Flow ids name the connection, not the store (issue 15): the same kernel lines, read from
another file name, in another layout (syslog, dmesg, /dev/kmsg) or into another store, give the
same ids, and any unique prefix of an id finds its flow."""

from __future__ import annotations

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
