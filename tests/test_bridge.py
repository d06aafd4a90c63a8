"""A bridge's two roles, learned from the logs: the seed's docker0 and the lab's lpbr0."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from seedstore import trace_sample

from logpath.bridge import (
    READ_COLUMNS,
    TIMES,
    BridgeFacts,
    assign_roles,
    decided_bridges,
    learn_bridges,
)
from logpath.journeys import build_journey
from logpath.summaries import summarise_flows


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return trace_sample(
        tmp_path_factory.mktemp("seed"), "seed/syslog", rules="seed/iptables.final.rules"
    )


def roles(traced: pd.DataFrame, sport: int) -> list[list[tuple[str | None, str | None]]]:
    """(hook, role) of every hop, packet by packet, of the flow with this orig source port."""
    (flow,) = [f for f in summarise_flows(traced) if f.orig.sport == sport]
    journey = build_journey(traced, flow.id)
    return [[(h.hook, h.role) for h in packet.hops] for packet in journey.packets]


def test_docker0_learned_from_the_seed(seed: pd.DataFrame) -> None:
    assert learn_bridges(seed) == {
        ("pc-baim", "docker0"): BridgeFacts(
            host="pc-baim",
            name="docker0",
            mac="02:42:f9:f8:c9:ad",
            port_macs={
                "vethd9f6465": ("02:42:ac:11:00:02",),
                "vethfcceafa": ("02:42:ac:11:00:03",),
            },
            port_addresses={"vethd9f6465": ("172.17.0.2",), "vethfcceafa": ("172.17.0.3",)},
        )
    }


def test_facts_and_roles_are_the_same_however_the_columns_are_typed(seed: pd.DataFrame) -> None:
    """The hops' texts as categories (an ingest's chunks: in the order first seen, here
    reversed), Arrow texts or Python objects: the same bridges, their ports in the same
    order (by name), the same roles."""
    categories = ["host", "in_iface", "out_iface", "physin", "physout"]
    assert all(isinstance(seed[c].dtype, pd.CategoricalDtype) for c in categories)
    reversed_order = seed.assign(
        **{c: seed[c].cat.reorder_categories(seed[c].cat.categories[::-1]) for c in categories}
    )
    assert reversed_order["physin"].cat.categories.tolist() == sorted(
        seed["physin"].dropna().unique(), reverse=True
    )
    as_objects = seed.astype({c: "object" for c in READ_COLUMNS if c in seed.columns})
    facts = learn_bridges(seed)
    (bridge,) = facts.values()
    assert list(bridge.port_macs) == sorted(bridge.port_macs) and len(bridge.port_macs) == 2
    for frame in (reversed_order, as_objects):
        assert learn_bridges(frame) == facts
        assert [list(f.port_macs) for f in learn_bridges(frame).values()] == [
            list(bridge.port_macs)
        ]
        roles = assign_roles(frame.drop(columns=["role", "role_switch"]))
        assert roles["role"].tolist() == seed["role"].tolist()
        assert roles["role_switch"].tolist() == seed["role_switch"].tolist()
    assert set(seed["role"].dropna()) == {"bridge", "nic"}


def test_journey_1_docker0_switches(seed: pd.DataFrame) -> None:
    assert roles(seed, 43292) == [
        [("PREROUTING", "bridge"), ("FORWARD", "bridge")],
        [("PREROUTING", "bridge"), ("FORWARD", "bridge")],
    ]


def test_journey_2_docker0_is_the_hosts_nic(seed: pd.DataFrame) -> None:
    assert roles(seed, 41362) == [
        [("PREROUTING", "nic"), ("INPUT", "nic")],
        [("OUTPUT", "nic")],
    ]


def test_journey_5_only_docker0_hops_have_a_role(seed: pd.DataFrame) -> None:
    # eth0 is no bridge; nat POSTROUTING shows IN= empty and OUT=eth0
    assert roles(seed, 55148) == [
        [("PREROUTING", "nic"), ("FORWARD", "nic"), ("POSTROUTING", None)],
        [("PREROUTING", None), ("FORWARD", "nic")],
        [("PREROUTING", "nic"), ("FORWARD", "nic")],
    ]


def test_lab_hairpin_switches_role_after_dnat(tmp_path: Path) -> None:
    traced = trace_sample(tmp_path, "lab/hairpin.log")
    assert learn_bridges(traced)[("lab-host", "lpbr0")].mac == "02:00:ac:1e:00:01"
    (flow,) = summarise_flows(traced)
    syn = build_journey(traced, flow.id).packets[0]
    # addressed to the bridge (the gateway), DNATed back to c1: br_netfilter bridges it
    assert [(h.table, h.hook, h.role, h.role_switch) for h in syn.hops] == [
        ("raw", "PREROUTING", "nic", False),
        ("mangle", "PREROUTING", "nic", False),
        ("nat", "PREROUTING", "nic", False),
        ("mangle", "FORWARD", "bridge", True),
        ("filter", "FORWARD", "bridge", False),
        ("mangle", "POSTROUTING", "bridge", False),
        ("nat", "POSTROUTING", "bridge", False),
    ]
    assert [h.ttl for h in syn.hops] == [64] * 7
    assert syn.fate == "switched"


def test_lab_c2c_is_switched_throughout(tmp_path: Path) -> None:
    traced = trace_sample(tmp_path, "lab/c2c.log")
    assert set(traced["role"]) == {"bridge"}
    assert not traced["role_switch"].any()


def counted(hops: pd.DataFrame) -> pd.DataFrame:
    """Each distinct row of what bridges are learned from once, with the times it was seen
    (TIMES): how follow's window gives its hops (``assembly.learned_bridges``)."""
    read = [*READ_COLUMNS, "dst"]
    frame = hops[read].astype("object")
    return frame.groupby(read, dropna=False).size().rename(TIMES).reset_index()


def test_rows_counted_once_with_their_times_teach_the_same_facts(seed: pd.DataFrame) -> None:
    distinct = counted(seed)
    assert len(distinct) < len(seed)
    assert decided_bridges(distinct) == decided_bridges(seed) == learn_bridges(seed)


def test_a_tie_is_told_by_the_times_rows_were_seen(seed: pd.DataFrame) -> None:
    """Another MAC handed up as often as docker0's own, though on fewer distinct rows: a tie
    (no facts); seen once less, docker0's own MAC stands."""
    distinct = counted(seed)
    # handed up to the host: delivered (INPUT) or routed (FORWARD, not out by a port)
    up = distinct["hook"].eq("INPUT") | distinct["hook"].eq("FORWARD") & distinct["physout"].isna()
    handed_up = distinct[up & distinct["in_iface"].eq("docker0")]
    own = handed_up[handed_up["macdst"].eq("02:42:f9:f8:c9:ad")]
    assert len(own) > 1 and own[TIMES].sum() > len(own)
    other = own.head(1).assign(macdst="02:42:00:00:00:99", **{TIMES: own[TIMES].sum()})
    assert decided_bridges(pd.concat([distinct, other], ignore_index=True)) is None
    other = other.assign(**{TIMES: own[TIMES].sum() - 1})
    facts = decided_bridges(pd.concat([distinct, other], ignore_index=True))
    assert facts is not None and facts[("pc-baim", "docker0")].mac == "02:42:f9:f8:c9:ad"
