"""The cases issue 11 judges fates on, each captured under the host's ruleset in the three front
ends (iptables-nft, iptables-legacy, native nft: tests/lab/backends.py) into samples/lab/fates.

    python -m tests.lab.topology capture-fates samples/lab/fates [NAME...]

Each scenario adds its own rules to the lab's (topology.ruleset and samples/rules/lab-host.nft),
written in both languages; every destination is one of the lab's own addresses.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from . import topology as t
from .backends import BACKENDS, HostRules
from .topology import Lab
from .traffic import (
    SCENARIOS as LAB_SCENARIOS,
)
from .traffic import (
    Scenario,
    tcp_request,
    tcp_server,
    tcp_unanswered,
)

ALL = tuple(BACKENDS)
UNANSWERED_WAIT = 1.5  # the SYN and its first retransmission, 1 s later

# 1. Docker's isolation between two networks: FORWARD jumps to a user chain for what leaves
# lpbr0 for another interface (a negated interface match), which logs and drops what goes to
# lpbr1 (DOCKER-ISOLATION-STAGE-1/-2 in one chain, with a LOG rule before the DROP).
ISOLATED_PORT = 9070
ISOLATION_RULES = HostRules(
    iptables={
        "filter": [
            ":LP-ISOLATION - [0:0]",
            f"-A FORWARD -i {t.BRIDGE} ! -o {t.BRIDGE} -j LP-ISOLATION",
            f'-A LP-ISOLATION -o {t.BRIDGE2} -j LOG --log-prefix "lp-isolation:{{tag}} "',
            f"-A LP-ISOLATION -o {t.BRIDGE2} -j DROP",
        ]
    },
    nft=[
        "add chain ip lp-filter lp-isolation",
        f'add rule ip lp-filter forward iifname "{t.BRIDGE}" oifname != "{t.BRIDGE}" '
        "jump lp-isolation",
        f'add rule ip lp-filter lp-isolation oifname "{t.BRIDGE2}" '
        'log prefix "lp-isolation:{tag} "',
        f'add rule ip lp-filter lp-isolation oifname "{t.BRIDGE2}" drop',
    ],
)


def isolation(lab: Lab) -> bool:
    """c1 -> c3 (the other bridge): True when nothing answered the SYN or its retransmission."""
    with tcp_server(lab, "c3", ISOLATED_PORT):
        return tcp_unanswered(lab, "c1", t.C3_IP, ISOLATED_PORT, UNANSWERED_WAIT)


# 2. FORWARD's policy DROP: no rule drops 9060, the chain's policy does; 9061 is accepted by a
# rule each way and answered.
POLICY_PORT, ACCEPTED_PORT = 9060, 9061
POLICY_RULES = HostRules(
    iptables={
        "filter": [
            ":FORWARD DROP [0:0]",
            f"-A FORWARD -p tcp --dport {ACCEPTED_PORT} -j ACCEPT",
            f"-A FORWARD -p tcp --sport {ACCEPTED_PORT} -j ACCEPT",
        ]
    },
    nft=[
        "chain ip lp-filter forward { type filter hook forward priority filter; policy drop; }",
        f"add rule ip lp-filter forward tcp dport {ACCEPTED_PORT} accept",
        f"add rule ip lp-filter forward tcp sport {ACCEPTED_PORT} accept",
    ],
)


def policy_drop(lab: Lab) -> tuple[bool, bytes]:
    """c1 -> lan :9060 (dropped by the policy), then c1 -> lan :9061 (accepted, answered)."""
    with tcp_server(lab, "lan", POLICY_PORT), tcp_server(lab, "lan", ACCEPTED_PORT):
        dropped = tcp_unanswered(lab, "c1", t.LAN_IP, POLICY_PORT, UNANSWERED_WAIT)
        answered = tcp_request(lab, "c1", t.LAN_IP, ACCEPTED_PORT)
    return dropped, answered


# 3. Reverse-path filtering: lan sends from an address of the bridge's subnet, which the host
# routes to lpbr0, in by up0; with rp_filter=1 the kernel drops it when it routes it, after
# PREROUTING's hooks (ip_route_input -> fib_validate_source). No rule drops it: the lab's
# LOG rules at INPUT and FORWARD match it, and nothing logged it there. Before it, lan's own
# connections to c1 (forwarded) and to the host (delivered) show those LOG rules at work.
SPOOFED_IP, SPOOFED_PORT = "172.30.0.99", 9080
FORWARDED_PORT, DELIVERED_PORT = 9081, 9082
RP_FILTERS = ("net/ipv4/conf/all/rp_filter", "net/ipv4/conf/up0/rp_filter")


@contextlib.contextmanager
def spoofing_lan(lab: Lab) -> Iterator[None]:
    """lan holds the spoofed address (host route only) and the host checks reverse paths."""
    host = lab.ns("host")
    before = [lab.exec("host", "cat", f"/proc/sys/{path}").strip() for path in RP_FILTERS]
    lab.exec("lan", "ip", "addr", "add", f"{SPOOFED_IP}/32", "dev", "eth0")
    for path in RP_FILTERS:
        t.write_sysctl(path, "1", host)
    try:
        yield
    finally:
        for path, value in zip(RP_FILTERS, before, strict=True):
            t.write_sysctl(path, value, host)
        lab.exec("lan", "ip", "addr", "del", f"{SPOOFED_IP}/32", "dev", "eth0")


def rp_filter(lab: Lab) -> tuple[bytes, bytes, bool]:
    """lan -> c1 :9081 and lan -> host 10.77.0.1:9082 answered, then lan (from 172.30.0.99)
    -> c1 :9080: True when nothing answered that one."""
    with (
        spoofing_lan(lab),
        tcp_server(lab, "c1", SPOOFED_PORT),
        tcp_server(lab, "c1", FORWARDED_PORT),
        tcp_server(lab, "host", DELIVERED_PORT),
    ):
        forwarded = tcp_request(lab, "lan", t.C1_IP, FORWARDED_PORT)
        delivered = tcp_request(lab, "lan", t.UPLINK_IP, DELIVERED_PORT)
        source = (SPOOFED_IP, 0)
        spoofed = tcp_unanswered(lab, "lan", t.C1_IP, SPOOFED_PORT, UNANSWERED_WAIT, source)
    return forwarded, delivered, spoofed


# 4. MASQUERADE no line shows: the connection to 9105 (outside the lab's logged ports) is
# logged in filter FORWARD only, where the orig packets still have c1's address and the
# replies have it again; a connection from lan to the host's uplink address (9106), logged in
# filter INPUT, shows which address up0 has.
MASQUERADED_PORT, UPLINK_PORT = 9105, 9106
MASQUERADE_RULES = HostRules(
    iptables={
        "filter": [
            f'-A FORWARD -p tcp --dport {MASQUERADED_PORT} -j LOG --log-prefix "lp:filter:fwd:{{tag}} "',
            f'-A FORWARD -p tcp --sport {MASQUERADED_PORT} -j LOG --log-prefix "lp:filter:fwd:{{tag}} "',
            f'-A INPUT -p tcp --dport {UPLINK_PORT} -j LOG --log-prefix "lp:filter:in:{{tag}} "',
        ]
    },
    nft=[
        f"add rule ip lp-filter forward tcp dport {MASQUERADED_PORT} "
        'log prefix "lp:filter:fwd:{tag} "',
        f"add rule ip lp-filter forward tcp sport {MASQUERADED_PORT} "
        'log prefix "lp:filter:fwd:{tag} "',
        f'add rule ip lp-filter input tcp dport {UPLINK_PORT} log prefix "lp:filter:in:{{tag}} "',
    ],
)


def masquerade_unlogged(lab: Lab) -> tuple[bytes, bytes]:
    """c1 -> lan :9105 (masqueraded), then lan -> host 10.77.0.1:9106."""
    with tcp_server(lab, "lan", MASQUERADED_PORT), tcp_server(lab, "host", UPLINK_PORT):
        masqueraded = tcp_request(lab, "c1", t.LAN_IP, MASQUERADED_PORT)
        to_uplink = tcp_request(lab, "lan", t.UPLINK_IP, UPLINK_PORT)
    return masqueraded, to_uplink


(VERDICTS,) = [s for s in LAB_SCENARIOS if s.name == "verdicts"]

SCENARIOS = [
    Scenario(
        "isolation",
        f"TCP c1 -> c3 172.30.1.2:{ISOLATED_PORT} (another bridge): FORWARD jumps to "
        "LP-ISOLATION (-i lpbr0 ! -o lpbr0), which logs and drops it (-o lpbr1)",
        isolation,
        host_rules=ISOLATION_RULES,
        backends=ALL,
    ),
    Scenario(
        "policy-drop",
        f"TCP c1 -> lan :{POLICY_PORT} dropped by filter FORWARD's policy DROP; "
        f":{ACCEPTED_PORT} accepted by a rule each way",
        policy_drop,
        host_rules=POLICY_RULES,
        backends=ALL,
    ),
    Scenario(
        "rp-filter",
        f"TCP lan -> c1 :{FORWARDED_PORT} and -> 10.77.0.1:{DELIVERED_PORT} answered, then lan "
        f"(spoofing {SPOOFED_IP}) -> c1 :{SPOOFED_PORT}, in by up0 with rp_filter=1: dropped "
        "after PREROUTING",
        rp_filter,
        host_rules=HostRules(),
        backends=ALL,
    ),
    Scenario(
        "masquerade-unlogged",
        f"TCP c1 -> lan :{MASQUERADED_PORT} masqueraded, logged in filter FORWARD only; "
        f"lan -> 10.77.0.1:{UPLINK_PORT} logged in filter INPUT",
        masquerade_unlogged,
        host_rules=MASQUERADE_RULES,
        backends=ALL,
    ),
    # the verdicts capture (samples/lab/verdicts.*, iptables-nft) in the other two front ends
    dataclasses.replace(VERDICTS, backends=("nft", "iptables-legacy")),
]
