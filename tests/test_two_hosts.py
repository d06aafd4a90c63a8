"""Two hosts' logs ingested together: packets join across hosts (samples/lab/two-hosts/).

The committed captures of the two-host lab (tests/lab/twohosts.py), read through the CLI like
tests/lab/test_lab_two_hosts.py reads a live capture, so CI without root checks them too: the
TCP connections (``two-hosts-*.log``) and the UDP, ICMP and IPv6 exchanges
(``udp-icmp-ipv6-*.log``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lab import twohosts as th
from lab import twohosts_checks as check
from lab import twohosts_protocol_checks as other
from typer.testing import CliRunner

from logpath.cli import app

FILES = th.sample_files("two-hosts")
OTHER = th.OTHER_PROTOCOLS.name
OTHER_FILES = th.sample_files(OTHER)
SYSLOG = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (host[ab]) kernel: (\[ *\d+\.\d{6}\] .*)$"
)
runner = CliRunner()


def run_json(*args: str) -> Any:
    """``logpath ARGS --json``, parsed; fails the test with stderr when the command fails."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def ingest(path: Path, *hosts: str, files: dict[str, Path] = FILES) -> check.Store:
    run_json("ingest", *(str(files[host]) for host in hosts), "--store", str(path))
    return check.Store(run_json, str(path))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> check.Store:
    return ingest(tmp_path_factory.mktemp("both"), "hosta", "hostb")


@pytest.mark.parametrize("scenario", [th.SCENARIO.name, OTHER])
def test_samples_are_one_kernel_log_split_by_host(scenario: str) -> None:
    dmesg = (th.SAMPLES / f"{scenario}.dmesg").read_text().splitlines()
    kmsg = (th.SAMPLES / f"{scenario}.kmsg").read_text().splitlines()
    assert [line.split(";", 1)[1] for line in kmsg] == [line.split("] ", 1)[1] for line in dmesg]
    split: dict[str, list[str]] = {}
    files = FILES if scenario == th.SCENARIO.name else OTHER_FILES
    for host, path in files.items():
        matches = [SYSLOG.match(line) for line in path.read_text().splitlines()]
        assert all(matches)
        assert {m.group(1) for m in matches if m} == {host}
        split[host] = [m.group(2) for m in matches if m]
        # each file holds exactly the lines its own host's LOG rules wrote
        assert {th.PREFIX.match(line.split("] ", 1)[1]).group("host") for line in split[host]} == {  # type: ignore[union-attr]
            host
        }
    # together, in kernel order, they are the kernel's log: nothing lost, nothing added
    assert sorted(split["hosta"] + split["hostb"], key=dmesg.index) == dmesg


@pytest.mark.parametrize("published", [th.PUBLISHED_PORT, th.LOSSY_PORT])
def test_each_connection_is_one_flow_through_both_hosts(both: check.Store, published: int) -> None:
    assert len(both.flows()) == 2
    check.check_flow(both, published, th.HOSTS)


def test_every_packet_joins_its_hops_across_hosts(both: check.Store) -> None:
    packets = check.check_joined(both)
    check.check_dropped_syn(packets[th.LOSSY_PORT])


def test_a_syn_dropped_on_the_second_host_is_stopped_there(both: check.Store) -> None:
    check.check_dropped_syn_fate(both)


def test_hosta_alone(tmp_path: Path) -> None:
    store = ingest(tmp_path, "hosta")
    packets = check.check_joined(store, ("hosta",))
    syn = check.dropped_syn(packets[th.LOSSY_PORT])
    # hosta forwarded it: that it died on hostb is not in hosta's logs
    assert (syn["fate"], syn["stopped_at"]) == ("forwarded", None)


def test_hostb_alone(tmp_path: Path) -> None:
    store = ingest(tmp_path, "hostb")
    check.check_joined(store, ("hostb",))
    check.check_dropped_syn_fate(store, ("hostb",))


@pytest.mark.parametrize("kept", check.NO_PREROUTING.values(), ids=check.NO_PREROUTING.keys())
def test_hosts_that_log_no_prerouting_hop_still_join(tmp_path: Path, kept: set[str]) -> None:
    files = check.keep_only(FILES, kept, tmp_path)
    check.check_joined_without_prerouting(ingest(tmp_path / "store", *th.HOSTS, files=files))


@pytest.mark.parametrize("ahead", [37.0, -3 * 3600.0], ids=["37 s ahead", "3 h behind"])
def test_packets_join_across_hosts_whose_clocks_differ(tmp_path: Path, ahead: float) -> None:
    # hostb's wall clock is off (no NTP, or local time in another zone): the hosts' offset is
    # learned from the packets both logged, and the connections join as with one clock
    files = {**FILES, "hostb": th.shifted(FILES["hostb"], ahead, 123_456.5, tmp_path)}
    store = ingest(tmp_path / "store", *th.HOSTS, files=files)
    assert len(store.flows()) == 2
    packets = check.check_joined(store)
    check.check_dropped_syn(packets[th.LOSSY_PORT])
    check.check_dropped_syn_fate(store)
    # and the packets of each connection come in the order they had on the shared clock
    one_clock = ingest(tmp_path / "one-clock", *th.HOSTS)
    assert packet_order(store) == packet_order(one_clock)


def packet_order(store: check.Store) -> dict[int, list[tuple[str, str]]]:
    """Per connection (orig source port), its packets' (direction, summary) in journey order."""
    return {
        flow["orig"]["sport"]: [
            (p["direction"], p["summary"]) for p in store.journey(flow["id"])["packets"]
        ]
        for flow in store.flows()
    }


@pytest.fixture(scope="module")
def other_both(tmp_path_factory: pytest.TempPathFactory) -> check.Store:
    return ingest(tmp_path_factory.mktemp("other-both"), *th.HOSTS, files=OTHER_FILES)


def test_udp_icmp_and_ipv6_samples_hold_the_four_exchanges() -> None:
    # each exchange left lines on both hosts: the checks below are not vacuous
    hops = [
        {"host": host, "family": 6 if "HOPLIMIT=" in line else 4, "line": line}
        for host, path in OTHER_FILES.items()
        for line in path.read_text().splitlines()
    ]
    assert {(h["host"], h["family"]) for h in hops} == {
        (host, f) for host in th.HOSTS for f in (4, 6)
    }
    for marker in ("PROTO=UDP", "TYPE=8 ", "TYPE=0 ", "TYPE=3 CODE=3 [SRC="):
        assert {h["host"] for h in hops if marker in h["line"]} == set(th.HOSTS), marker


@pytest.mark.parametrize("name", other.EXCHANGES)
def test_each_udp_icmp_ipv6_exchange_is_one_flow_through_both_hosts(
    other_both: check.Store, name: str
) -> None:
    listing = other.Listing.of(other_both)
    assert len(listing.flows) == len(other.EXCHANGES)
    other.check_journey(listing, other.EXCHANGES[name], th.HOSTS)


def test_udp_icmp_ipv6_every_line_is_in_an_exchange(other_both: check.Store) -> None:
    other.check_all(other_both)


@pytest.mark.parametrize("host", th.HOSTS)
def test_udp_icmp_ipv6_one_host_alone(tmp_path: Path, host: str) -> None:
    # each host's file alone: the same exchanges, with that host's hops only
    other.check_all(ingest(tmp_path, host, files=OTHER_FILES), (host,))


@pytest.fixture(scope="module")
def other_without_prerouting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, other.Listing]:
    """Per NO_PREROUTING variant, a store of the udp-icmp-ipv6 files with only its lines."""
    found = {}
    for variant, kept in check.NO_PREROUTING.items():
        workdir = tmp_path_factory.mktemp(variant)
        files = check.keep_only(OTHER_FILES, kept, workdir)
        found[variant] = other.Listing.of(ingest(workdir / "store", *th.HOSTS, files=files))
    return found


@pytest.mark.parametrize(("variant", "name"), other.without_prerouting())
def test_udp_icmp_ipv6_hosts_that_log_no_prerouting_hop_still_join(
    other_without_prerouting: dict[str, other.Listing], variant: str, name: str
) -> None:
    listing = other_without_prerouting[variant]
    other.check_joined_without_prerouting(listing, check.NO_PREROUTING[variant], name)


@pytest.mark.parametrize("ahead", [37.0, -3 * 3600.0], ids=["37 s ahead", "3 h behind"])
def test_udp_icmp_ipv6_join_across_hosts_whose_clocks_differ(tmp_path: Path, ahead: float) -> None:
    # the offset is learned from the IPv4 packets (their IP IDs); the IPv6 ones, which have
    # none, join on the clock it gives
    files = {**OTHER_FILES, "hostb": th.shifted(OTHER_FILES["hostb"], ahead, 123_456.5, tmp_path)}
    other.check_flows(ingest(tmp_path / "store", *th.HOSTS, files=files))


@pytest.mark.parametrize("name", ["udp", "tcp6"])
def test_udp_icmp_ipv6_journeys_across_hosts_whose_clocks_differ(tmp_path: Path, name: str) -> None:
    files = {**OTHER_FILES, "hostb": th.shifted(OTHER_FILES["hostb"], 37.0, 123_456.5, tmp_path)}
    store = ingest(tmp_path / "store", *th.HOSTS, files=files)
    other.check_journey(store, other.EXCHANGES[name], th.HOSTS)


def test_docker_hosts_busy_at_once_keep_their_own_connections(tmp_path: Path) -> None:
    # A fleet's Docker hosts number their containers alike (172.30.0.x here) and reuse each
    # other's ports: two of them replaying the lab's Docker host at the same time, beside a
    # host pair whose connections cross (gw0 -> srv0). Each host's connections must be those
    # its own log gives, and the pair's those the pair's logs give; a SYN-ACK (IP ID 0) from
    # one container's port 80 used to join another host's, and tuples seen on two hosts at
    # once were one connection.
    out = tmp_path / "fleet"
    generator = Path(__file__).resolve().parent.parent / "benchmarks" / "generate_fleet.py"
    subprocess.run(
        [sys.executable, str(generator), str(out), "--hosts", "2", "--lines", "30000",
         "--pairs", "1", "--copies", "4", "--stagger", "0"],
        check=True, capture_output=True,
    )  # fmt: skip
    groups = [["docker0.log"], ["docker1.log"], ["gw0.log", "srv0.log"]]

    def flows(names: list[str], store: Path) -> dict[str, Any]:
        run_json("ingest", *(str(out / name) for name in names), "--store", str(store))
        listed = run_json("flows", "--all", "--store", str(store))
        return {flow["id"]: flow for flow in listed}

    fleet = flows([name for group in groups for name in group], tmp_path / "all")
    alone: dict[str, Any] = {}
    for n, group in enumerate(groups):
        alone.update(flows(group, tmp_path / f"alone-{n}"))
    assert fleet == alone
    hosts = {tuple(flow["hosts"]) for flow in fleet.values()}
    assert hosts == {("docker0",), ("docker1",), ("gw0", "srv0")}


@pytest.mark.parametrize("scenario", [th.SCENARIO.name, OTHER])
def test_one_tuple_on_two_unlinked_hosts_at_once_is_two_connections(
    tmp_path: Path, scenario: str
) -> None:
    # hostc: hosta's capture as another gateway with the same container addresses would log
    # it, 5 s later, with other IP IDs (so no packet links the two hosts): every tuple is on
    # both hosts within the idle timeout. Conntrack is per host: each host keeps the
    # connections its own log gives (they were one connection across both, keyed by tuple).
    captured = th.sample_files(scenario)["hosta"]
    moved = th.shifted(captured, 5.0, 777.0, tmp_path)
    hostc = tmp_path / "hostc.log"
    hostc.write_text(
        re.sub(
            r"\bID=(\d+)",
            lambda m: f"ID={int(m[1]) % 65535 + 1}" if m[1] != "0" else m[0],
            moved.read_text().replace(" hosta kernel: ", " hostc kernel: "),
        )
    )
    files = {"hosta": captured, "hostc": hostc}
    flows = ingest(tmp_path / "both", "hosta", "hostc", files=files).flows()
    alone = [flow for host in files for flow in ingest(tmp_path / host, host, files=files).flows()]
    assert {tuple(flow["hosts"]) for flow in flows} == {("hosta",), ("hostc",)}
    assert sorted(flows, key=lambda f: f["id"]) == sorted(alone, key=lambda f: f["id"])


def test_alike_ipv6_packets_join_in_the_order_they_crossed(tmp_path: Path) -> None:
    # Both hosts logging at filter FORWARD only, the IPv6 connection's bare ACKs from the
    # client are alike (length, window, flags; IPv6 has no IP ID). Re-timed as on a loaded
    # hostb that takes packets off its link late: the first ACK enters hostb 0.8 ms after it
    # left hosta, the second leaves hosta 0.3 ms after that and enters hostb 0.9 ms later.
    # Each joins the entry that followed it in order. Taking each exit's closest entry gave
    # the first's entry to the second (3 packets where hosta forwarded 2, in a live CI run
    # 11 for 10); the UDP and ICMP exchanges, as captured, link the hosts' clocks.
    moments = {("hosta", 0): 0.0, ("hostb", 0): 0.0008, ("hosta", 1): 0.0011, ("hostb", 1): 0.002}
    lines = []
    for host, crossing in (("hosta", " OUT=wan0 "), ("hostb", " IN=wan0 ")):
        fwd = [
            line for line in OTHER_FILES[host].read_text().splitlines() if ":filter:fwd:" in line
        ]
        lines += [line for line in fwd if "PROTO=TCP " not in line]
        acks = [line for line in fwd if crossing in line and "LEN=72 " in line
                and "WINDOW=64 " in line and line.endswith(" ACK URGP=0 ")][:2]  # fmt: skip
        for n, line in enumerate(acks):
            head, rest = line.split("[", 1)
            lines.append(f"{head}[{10885.781689 + moments[host, n]:12.6f}]{rest.split(']', 1)[1]}")
    lines.sort(key=lambda line: float(line.split("[", 1)[1].split("]", 1)[0]))
    (tmp_path / "both.log").write_text("".join(line + "\n" for line in lines))
    store = ingest(tmp_path / "store", "both", files={"both": tmp_path / "both.log"})
    tcp = next(flow for flow in store.flows() if flow["proto"] == "tcp")
    packets = store.journey(tcp["id"])["packets"]
    # two packets, each the n-th ACK leaving hosta (lines N-3, N-1) and the n-th entering hostb
    last = len(lines)
    assert [[hop["lineno"] for hop in p["hops"]] for p in packets] == [
        [last - 3, last - 2],
        [last - 1, last],
    ]
