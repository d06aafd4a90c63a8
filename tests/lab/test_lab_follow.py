"""logpath follow on the kernel's own output (`dmesg -W`) while the lab's traffic flows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from . import topology as t
from .capture import KernelLog
from .conftest import CLI, logpath_json, write_log
from .topology import Lab
from .traffic import dnat, masquerade

pytestmark = pytest.mark.lab


class Lines(threading.Thread):
    """Collects a stream's lines as they come, with when each came."""

    def __init__(self, stream: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[tuple[float, str]] = []

    def run(self) -> None:
        for line in self.stream:
            self.lines.append((time.monotonic(), line))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for _, line in self.lines]


def test_follow_shows_the_kernels_lines_as_the_traffic_flows(lab: Lab, tmp_path: Path) -> None:
    store = tmp_path / "store"
    # the kernel log is shared with the other labs of the machine: only this lab's lines
    kernel = subprocess.Popen(
        ["sh", "-c", f"exec dmesg -W | grep --line-buffered -F ':{lab.tag} '"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    follow = subprocess.Popen(
        [*CLI, "follow", "-", "--store", str(store), "--json"],
        stdin=kernel.stdout,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stderr is not None and follow.stdout is not None
    try:
        assert follow.stderr.readline() == "logpath follow: reading standard input\n"
        printed = Lines(follow.stdout)
        printed.start()
        with KernelLog(lab.tag) as log:  # the same records, read from /dev/kmsg beside it
            assert masquerade(lab) == b"pong"
            assert dnat(lab) == b"pong"
        deadline = time.monotonic() + 30
        while sum(e["event"] == "end" for e in printed.events()) < 2:
            assert time.monotonic() < deadline, printed.events()
            time.sleep(0.2)
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=30) == 130
    finally:
        os.killpg(kernel.pid, signal.SIGTERM)
        kernel.wait(timeout=10)
        if follow.poll() is None:
            follow.kill()
    events = printed.events()
    shown = {e["id"]: e for e in events}
    by_port = {e["orig"]["dport"]: e for e in shown.values()}
    assert set(by_port) == {9005, t.PUBLISHED_PORT}
    snat, dnat_ = by_port[9005], by_port[t.PUBLISHED_PORT]
    assert (snat["orig"]["src"], snat["orig"]["dst"]) == (t.C1_IP, t.LAN_IP)
    assert [(n["type"], n["to"].split(":")[0]) for n in snat["nat"]] == [("snat", t.UPLINK_IP)]
    assert (dnat_["orig"]["dst"], dnat_["reply"]["src"]) == (t.UPLINK_IP, t.C1_IP)
    assert [n["type"] for n in dnat_["nat"]] == ["dnat"]
    assert next(e["event"] for e in events if e["id"] == snat["id"]) == "new"
    # what follow printed last of each, and stored, is what an ingest of the same records
    # (read from /dev/kmsg, written in the dmesg layout) finds
    written = tmp_path / "kernel.dmesg"
    write_log(log.records, written, "dmesg")
    logpath_json("ingest", str(written), "--store", str(tmp_path / "ingested"))
    ingested = logpath_json("flows", "--store", str(tmp_path / "ingested"))
    assert [{k: v for k, v in e.items() if k != "event"} for e in shown.values()] == ingested
    assert logpath_json("flows", "--store", str(store)) == ingested
