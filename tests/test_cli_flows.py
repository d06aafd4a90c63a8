"""`logpath flows` and `logpath journey` through the CLI, on the seed's lines and ruleset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app

SEED = Path(__file__).resolve().parent.parent / "samples" / "seed"
SAMPLES = SEED.parent
runner = CliRunner()
CONTRACT = {"id", "proto", "family", "orig", "reply", "nat", "packets", "hops", "first_seen",
            "last_seen", "state"}  # fmt: skip


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("store"))
    rules = str(SEED / "iptables.final.rules")
    code, _, err = run("ingest", str(SEED / "syslog"), "--store", path, "--year", "2016",
                       "--rules", rules, "--json")  # fmt: skip
    assert code == 0, err
    return path


def flows(store: str, *args: str) -> list[dict[str, object]]:
    code, out, err = run("flows", "--store", store, "--json", *args)
    listed: list[dict[str, object]] = json.loads(out)
    assert code == (0 if listed else 1), err  # 1: nothing matched, as grep
    return listed


def test_flows_json_contract(store: str) -> None:
    listed = flows(store)
    assert len(listed) == 6
    assert all(set(flow) >= CONTRACT for flow in listed)
    masquerade = listed[4]
    assert masquerade["orig"] == {
        "src": "172.17.0.2", "sport": 55148, "dst": "10.10.126.187", "dport": 12580
    }  # fmt: skip
    assert masquerade["reply"] == {
        "src": "10.10.126.187", "sport": 12580, "dst": "10.10.126.101", "dport": 55148
    }  # fmt: skip
    assert [{k: t[k] for k in ("type", "from", "to", "hook")} for t in masquerade["nat"]] == [
        {"type": "snat", "from": "172.17.0.2:55148", "to": "10.10.126.101:55148",
         "hook": "POSTROUTING"}
    ]  # fmt: skip
    assert masquerade["first_seen"] == "2016-01-14T14:47:17Z"
    assert [flow["state"] for flow in listed] == [
        "syn-recv", "reset", "established", "established", "established", "established"
    ]  # fmt: skip
    assert flows(store) == listed  # same ids run after run
    # an id carries the orig source port, so `journey` reads only that port's hops
    assert [str(flow["id"]).split("-")[1] for flow in listed] == [
        "43292", "41362", "59373", "44120", "55148", "53225"
    ]  # fmt: skip


def test_flows_json_prints_one_flow_per_line(store: str) -> None:
    code, out, _ = run("flows", "--store", store, "--json")
    lines = out.splitlines()
    assert code == 0 and (lines[0], lines[-1]) == ("[", "]")
    assert [json.loads(line.rstrip(",")) for line in lines[1:-1]] == json.loads(out)
    _, none, _ = run("flows", "--store", store, "--json", "--port", "1")
    assert json.loads(none) == []


def test_flows_filters(store: str) -> None:
    assert [f["orig"]["sport"] for f in flows(store, "--port", "55148")] == [55148]  # type: ignore[index]
    assert [f["orig"]["sport"] for f in flows(store, "--nat", "snat")] == [55148]  # type: ignore[index]
    assert flows(store, "--nat", "dnat") == []
    by_host = flows(store, "--host", "10.10.126.187")
    assert [f["orig"]["sport"] for f in by_host] == [55148, 53225]  # type: ignore[index]
    assert len(flows(store, "--port", "12580", "--proto", "tcp")) == 6
    late = flows(store, "--since", "2016-01-14T14:30")
    assert [f["orig"]["sport"] for f in late] == [55148, 53225]  # type: ignore[index]


def test_flows_csv(store: str) -> None:
    code, out, _ = run("flows", "--store", store, "--csv", "--port", "41362")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("id,proto,family,orig_src,orig_sport,orig_dst,orig_dport,")
    assert lines[1].split(",")[1:] == [
        "tcp", "4", "172.17.0.2", "41362", "172.17.0.1", "12580", "172.17.0.1", "12580",
        "172.17.0.2", "41362", "", "2", "3", "2016-01-14T12:53:02Z", "2016-01-14T12:53:02Z",
        "reset", "True", "0", "0", "0",
    ]  # fmt: skip
    assert lines[0].endswith(",state,answered,stopped,dropped,lost")


def test_flows_table(store: str) -> None:
    code, out, _ = run("flows", "--store", store, "--port", "55148")
    assert code == 0
    assert "172.17.0.2:55148 → 10.10.126.187:12580" in out
    assert "10.10.126.187:12580 → 10.10.126.101:55148" in out
    assert "snat 172.17.0.2:55148→10.10.126.101:55148" in out
    assert out.rstrip().endswith("1 flow(s)")


def test_flows_table_lines_up_its_columns(store: str) -> None:
    code, out, _ = run("flows", "--store", store)
    title, *rows, count = out.splitlines()
    assert code == 0 and len(rows) == 6 and count == "6 flow(s)"
    listed = flows(store)
    orig, pkts_end = title.index("orig"), title.index("pkts") + len("pkts")
    for row, flow in zip(rows, listed, strict=True):
        assert row.startswith(f"{flow['id']}  ")
        # text columns start under their title, numbers end under theirs
        assert row[orig:].startswith(f"{flow['orig']['src']}:{flow['orig']['sport']} → ")
        assert row[:pkts_end].endswith(f" {flow['packets']}")


def test_journey_json_contract(store: str) -> None:
    (flow,) = flows(store, "--port", "55148")
    code, out, err = run("journey", str(flow["id"]), "--store", store, "--json")
    assert code == 0, err
    journey = json.loads(out)
    assert journey["flow"] == flow
    assert [(p["n"], p["direction"], p["summary"]) for p in journey["packets"]] == [
        (1, "orig", "SYN"), (2, "reply", "SYN-ACK"), (3, "orig", "ACK")
    ]  # fmt: skip
    reply = journey["packets"][1]["hops"]
    assert [(h["chain"], h["hook"], h["evidence"], h["in"], h["out"], h["dst"], h["translated"])
            for h in reply] == [
        ("PREROUTING", "PREROUTING", "ruleset", "eth0", None, "10.10.126.101", False),
        ("FwdOd0", "FORWARD", "ruleset", "eth0", "docker0", "172.17.0.2", True),
    ]  # fmt: skip
    assert [h["role"] for h in reply] == [None, "nic"]
    assert reply[0]["flags"] == ["ACK", "SYN"] and reply[0]["lineno"] == 19
    code, out, _ = run("journey", str(flow["id"]), "--store", store, "--json", "--packet", "3")
    assert [p["n"] for p in json.loads(out)["packets"]] == [3]


def test_journey_errors(store: str) -> None:
    code, _, err = run("journey", "0123456789", "--store", store)
    assert (code, err) == (3, "logpath: no flow '0123456789' in the store (see `logpath flows`)\n")
    (flow,) = flows(store, "--port", "41362")
    code, _, err = run("journey", str(flow["id"]), "--store", store, "--packet", "7")
    assert (code, err) == (3, f"logpath: flow {flow['id']} has no packet 7 (it has 2)\n")
    code, _, err = run("flows", "--store", store, "--json", "--csv")
    assert (code, err) == (2, "logpath: --json and --csv exclude each other: choose one\n")
    code, _, err = run("flows", "--store", store, "--nat", "masquerade")
    assert (code, err) == (2, "logpath: --nat 'masquerade': use snat, dnat or any\n")


def lab_store(tmp_path: Path, name: str) -> str:
    store = str(tmp_path / name)
    code, _, err = run("ingest", str(SAMPLES / "lab" / f"{name}.log"), "--store", store)
    assert code == 0, err
    return store


def test_journey_of_an_icmp_echo_is_found_by_its_echo_id(tmp_path: Path) -> None:
    store = lab_store(tmp_path, "icmp-echo")
    (flow,) = flows(store)
    assert str(flow["id"]).endswith(f"-{flow['orig']['sport']}")  # the echo identifier
    code, out, err = run("journey", str(flow["id"]), "--store", store, "--json")
    assert code == 0, err
    journey = json.loads(out)
    assert journey["flow"]["id"] == flow["id"]
    assert {p["summary"] for p in journey["packets"]} == {"echo-request", "echo-reply"}


def test_unanswered_masqueraded_udp_takes_its_reply_tuple_from_the_icmp_error(
    tmp_path: Path,
) -> None:
    store = lab_store(tmp_path, "icmp-error")
    (flow,) = flows(store)
    sport = flow["orig"]["sport"]
    # conntrack's reply goes to the masqueraded address, which only the error's quote shows
    assert flow["reply"] == {"src": "10.77.0.2", "sport": 9009, "dst": "10.77.0.1", "dport": sport}
    code, out, err = run("journey", str(flow["id"]), "--store", store, "--json")
    assert code == 0, err
    error = json.loads(out)["packets"][1]
    assert [(h["hook"], h["dst"], h["translated"]) for h in error["hops"]] == [
        ("PREROUTING", "10.77.0.1", False),
        ("PREROUTING", "10.77.0.1", False),
        ("FORWARD", "172.30.0.2", True),
        ("FORWARD", "172.30.0.2", True),
        ("POSTROUTING", "172.30.0.2", True),
    ]


def test_every_masqueraded_packet_is_marked_not_only_the_first(store: str) -> None:
    # nat POSTROUTING logs only the SYN; conntrack masquerades the ACK too, after its FORWARD hop
    (flow,) = flows(store, "--port", "55148")
    code, out, err = run("journey", str(flow["id"]), "--store", store, "--json")
    assert code == 0, err
    packets = json.loads(out)["packets"]
    assert [(p["summary"], p["hops"][-1]["hook"], p["hops"][-1]["nat"]) for p in packets] == [
        ("SYN", "POSTROUTING", ["snat"]),
        ("SYN-ACK", "FORWARD", ["de-snat"]),
        ("ACK", "FORWARD", ["snat"]),
    ]


def test_without_a_filter_every_connection_is_listed_and_all_changes_nothing(
    store: str,
) -> None:
    # connections are assembled at ingest: listing all of them costs no tracing (issue 10)
    assert flows(store) == flows(store, "--all")
    assert len(flows(store)) == 6
    assert len(flows(store, "--port", "12580")) == 6
