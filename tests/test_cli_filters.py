"""`flows` and `hops` filters as a user types them (issue 15 point 1): a network for --host,
a protocol checked against the ones logpath knows, times relative to now, and a word on why
`--proto icmp` lists UDP connections. On genuine lab captures (samples/lab)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logpath.cli import app
from logpath.errors import UsageError
from logpath.store import hop_filter

LAB = Path(__file__).resolve().parent.parent / "samples" / "lab"
runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("filters") / "store")
    logs = [str(LAB / f"{name}.log") for name in ("masquerade", "icmp-error", "udp", "c2c")]
    done = runner.invoke(app, ["ingest", *logs, "--store", path])
    assert done.exit_code == 0, done.output
    return path


def flows(store: str, *options: str) -> tuple[int, list[dict[str, object]]]:
    done = runner.invoke(app, ["flows", *options, "--json", "--store", store])
    return done.exit_code, json.loads(done.output) if done.exit_code in (0, 1) else []


def test_host_takes_a_network(store: str) -> None:
    code, lan = flows(store, "--host", "10.77.0.0/24")
    assert code == 0
    _, peer = flows(store, "--host", "10.77.0.2")
    _, everything = flows(store)
    assert {f["id"] for f in lan} == {f["id"] for f in peer}  # the one LAN host of the lab
    assert {f["id"] for f in lan} < {f["id"] for f in everything}  # c2c stays on the bridge
    _, bridge = flows(store, "--host", "172.30.0.0/16")
    assert {f["id"] for f in bridge} == {f["id"] for f in everything}
    hops = runner.invoke(app, ["hops", "--host", "10.77.0.0/30", "--json", "--store", store])
    assert hops.exit_code == 0
    assert all(
        "10.77.0." in f"{h['src']} {h['dst']}" for h in json.loads(hops.output)
    ) and json.loads(hops.output)
    bad = runner.invoke(app, ["flows", "--host", "10.77.0.0/33", "--store", store])
    assert bad.exit_code == 2 and "not an IPv4 or IPv6 network" in bad.output


def test_an_unknown_protocol_is_refused_with_the_known_ones(store: str) -> None:
    done = runner.invoke(app, ["flows", "--proto", "tcpp", "--store", store])
    assert done.exit_code == 2
    assert "--proto 'tcpp' is not a protocol logpath knows: use tcp, udp" in done.output
    assert flows(store, "--proto", "17")[1] == flows(store, "--proto", "udp")[1]
    assert flows(store, "--proto", "UDP")[1] == flows(store, "--proto", "udp")[1]


def test_proto_icmp_says_why_it_lists_a_udp_connection(store: str) -> None:
    code, listed = flows(store, "--proto", "icmp")
    assert code == 0
    assert {f["proto"] for f in listed} == {"udp"}  # the port unreachable's datagram
    table = runner.invoke(app, ["flows", "--proto", "icmp", "--store", store]).output
    assert table.splitlines()[-1] == (
        f"({len(listed)} of them not icmp connections: listed for the icmp errors about them)"
    )


def test_times_relative_to_now(store: str) -> None:
    _, everything = flows(store)
    assert flows(store, "--since", "-3650d")[1] == everything  # captured in 2026
    code, none = flows(store, "--since", "-1s")  # nothing is logged in the future
    assert (code, none) == (1, [])
    assert flows(store, "--until", "-3650d") == (1, [])
    now = dt.datetime.now().astimezone()
    (term,) = hop_filter(since="today 09:00").terms
    assert term[2] == now.replace(hour=9, minute=0, second=0, microsecond=0).astimezone(dt.UTC)
    (term,) = hop_filter(until="yesterday").terms
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    assert term[2] == midnight.astimezone(dt.UTC)
    (term,) = hop_filter(since="-2h").terms
    assert abs(term[2] - (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))) < dt.timedelta(
        seconds=5
    )
    with pytest.raises(UsageError, match="is not a time of day"):
        hop_filter(since="today 25:00")
    with pytest.raises(UsageError, match="-2h, -30m, -1d, now, today, yesterday"):
        hop_filter(since="last tuesday")


@pytest.mark.parametrize(
    ("sample", "spellings", "proto"),
    [
        ("ebtables-log.log", ("udp", "17", "UDP"), "udp"),  # ebtables: IP proto=17
        ("ebtables-log.log", ("icmpv6", "58"), "icmpv6"),  # ebtables: Next Header=58
        ("ipv4-crafted.log", ("sctp", "132"), "sctp"),  # LOG: PROTO=132
        ("ipv4-crafted.log", ("gre", "47"), "47"),  # LOG: PROTO=47, kept as its number
    ],
)
def test_a_protocol_is_found_however_the_log_wrote_it(
    tmp_path: Path, sample: str, spellings: tuple[str, ...], proto: str
) -> None:
    path = str(tmp_path / "store")
    log = LAB.parent / "formats" / sample
    assert runner.invoke(app, ["ingest", str(log), "--store", path]).exit_code == 0
    found = [flows(path, "--proto", spelling) for spelling in spellings]
    assert found[0][0] == 0 and found[0][1], found
    assert all(each == found[0] for each in found)
    assert {f["proto"] for f in found[0][1]} == {proto}
