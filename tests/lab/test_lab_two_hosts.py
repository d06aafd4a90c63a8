"""Two hosts, each a namespace with its own LOG rules, on this machine's kernel (needs root).

The two-host lab (tests/lab/twohosts.py) is built for this module, each scenario's traffic runs
once (the TCP connections, then the UDP, ICMP and IPv6 exchanges), and the kernel's lines of
each are split into one syslog file per host (hosta, hostb), fed to logpath through its CLI:
both files into one store, and each file alone into a store of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from . import topology, twohosts
from . import twohosts_checks as check
from . import twohosts_protocol_checks as other
from .capture import KernelRecord, capture
from .conftest import logpath_json

pytestmark = pytest.mark.lab


@dataclass
class Run:
    """One live run of a scenario: the kernel records, the traffic's result and a store per
    host set."""

    records: list[KernelRecord]
    result: object
    files: dict[str, Path]
    stores: dict[tuple[str, ...], check.Store]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Build the two hosts, capture every scenario, tear down; then ingest the split files."""
    try:
        topology.check_prerequisites()
        topology.clean_leftovers()
        lab = twohosts.build()
    except topology.LabUnavailable as reason:
        pytest.skip(f"lab unavailable: {reason}")
    try:
        captured = {scenario.name: capture(lab, scenario) for scenario in twohosts.SCENARIOS}
    finally:
        topology.teardown(lab)
    found = {}
    for name, (records, result) in captured.items():
        workdir = tmp_path_factory.mktemp(name)
        files = twohosts.write_syslogs(records, workdir / name)
        stores: dict[tuple[str, ...], check.Store] = {}
        for hosts in [twohosts.HOSTS, ("hosta",), ("hostb",)]:
            path = workdir / f"store-{'-'.join(hosts)}"
            logpath_json("ingest", *(str(files[host]) for host in hosts), "--store", str(path))
            stores[hosts] = check.Store(logpath_json, str(path))
        found[name] = Run(records, result, files, stores)
    return found


@pytest.fixture(scope="module")
def run(runs: dict[str, Run]) -> Run:
    """The TCP connections' run."""
    return runs[twohosts.SCENARIO.name]


@pytest.fixture(scope="module")
def other_run(runs: dict[str, Run]) -> Run:
    """The UDP, ICMP and IPv6 exchanges' run."""
    return runs[twohosts.OTHER_PROTOCOLS.name]


@pytest.mark.parametrize("scenario", [s.name for s in twohosts.SCENARIOS])
def test_every_exchange_worked_and_each_host_logged_it(runs: dict[str, Run], scenario: str) -> None:
    run = runs[scenario]
    assert run.result == twohosts.RESULTS[scenario]
    per_host = twohosts.split(run.records)
    assert set(per_host) == {"hosta", "hostb"}
    assert all(per_host.values())
    # each syslog file holds its own host's records, under that host's name
    for host, path in run.files.items():
        lines = path.read_text().splitlines()
        assert len(lines) == len(per_host[host])
        assert all(f" {host} kernel: " in line for line in lines)


@pytest.mark.parametrize("published", [twohosts.PUBLISHED_PORT, twohosts.LOSSY_PORT])
def test_each_connection_is_one_flow_through_both_hosts(run: Run, published: int) -> None:
    store = run.stores[twohosts.HOSTS]
    assert len(store.flows()) == 2
    check.check_flow(store, published, twohosts.HOSTS)


def test_every_packet_joins_its_hops_across_hosts(run: Run) -> None:
    packets = check.check_joined(run.stores[twohosts.HOSTS])
    check.check_dropped_syn(packets[twohosts.LOSSY_PORT])


def test_a_syn_dropped_on_the_second_host_is_stopped_there(run: Run) -> None:
    check.check_dropped_syn_fate(run.stores[twohosts.HOSTS])


def test_hosta_alone(run: Run) -> None:
    packets = check.check_joined(run.stores["hosta",], ("hosta",))
    syn = check.dropped_syn(packets[twohosts.LOSSY_PORT])
    assert (syn["fate"], syn["stopped_at"]) == ("forwarded", None)


def test_hostb_alone(run: Run) -> None:
    store = run.stores["hostb",]
    check.check_joined(store, ("hostb",))
    check.check_dropped_syn_fate(store, ("hostb",))


@pytest.mark.parametrize("kept", check.NO_PREROUTING.values(), ids=check.NO_PREROUTING.keys())
def test_hosts_that_log_no_prerouting_hop_still_join(
    run: Run, kept: set[str], tmp_path: Path
) -> None:
    files = check.keep_only(run.files, kept, tmp_path)
    path = tmp_path / "store"
    logpath_json("ingest", *(str(files[host]) for host in twohosts.HOSTS), "--store", str(path))
    check.check_joined_without_prerouting(check.Store(logpath_json, str(path)))


@pytest.mark.parametrize("name", other.EXCHANGES)
def test_each_udp_icmp_ipv6_exchange_is_one_flow_through_both_hosts(
    other_run: Run, name: str
) -> None:
    store = other_run.stores[twohosts.HOSTS]
    listing = other.Listing.of(store)
    assert len(listing.flows) == len(other.EXCHANGES)
    other.check_journey(listing, other.EXCHANGES[name], twohosts.HOSTS)


def test_udp_icmp_ipv6_every_line_is_in_an_exchange(other_run: Run) -> None:
    other.check_all(other_run.stores[twohosts.HOSTS])


@pytest.mark.parametrize("host", twohosts.HOSTS)
def test_udp_icmp_ipv6_one_host_alone(other_run: Run, host: str) -> None:
    other.check_all(other_run.stores[host,], (host,))


@pytest.fixture(scope="module")
def other_without_prerouting(
    other_run: Run, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, other.Listing]:
    """Per NO_PREROUTING variant, a store of the live udp-icmp-ipv6 lines with only its lines."""
    found = {}
    for variant, kept in check.NO_PREROUTING.items():
        workdir = tmp_path_factory.mktemp(variant)
        files = check.keep_only(other_run.files, kept, workdir)
        path = workdir / "store"
        logpath_json("ingest", *(str(files[host]) for host in twohosts.HOSTS), "--store", str(path))
        found[variant] = other.Listing.of(check.Store(logpath_json, str(path)))
    return found


@pytest.mark.parametrize(("variant", "name"), other.without_prerouting())
def test_udp_icmp_ipv6_hosts_that_log_no_prerouting_hop_still_join(
    other_without_prerouting: dict[str, other.Listing], variant: str, name: str
) -> None:
    listing = other_without_prerouting[variant]
    other.check_joined_without_prerouting(listing, check.NO_PREROUTING[variant], name)
