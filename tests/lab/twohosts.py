"""Two Docker-like hosts joined by a routed link, each a namespace with LOG rules of its own.

Layout (every name carries the run's prefix ``lp<6 hex>-``)::

    client eth0 172.31.0.2 fd00:31::2 --vethcl-- lpbra 172.31.0.1/24 fd00:31::1/64 [hosta]
                                                    wan0 10.78.0.1/24 fd00:78::1/64 [hosta]
                                                                    |  (veth)
                                                    wan0 10.78.0.2/24 fd00:78::2/64 [hostb]
    server eth0 172.29.0.2 fd00:29::2 --vethsv-- lpbrb 172.29.0.1/24 fd00:29::1/64 [hostb]

hosta: IPv4 and IPv6 forwarding, br_netfilter, MASQUERADE for 172.31.0.0/24 (and fd00:31::/64)
leaving by any interface but lpbra (Docker's rule). hostb: the same for its own bridge, plus
published ports: DNAT ``-d 10.78.0.2 -p tcp --dport 8080 --to-destination 172.29.0.2:80``
(and 8081 to :81; IPv6: ``-d fd00:78::2 --dport 8080`` to ``[fd00:29::2]:80``), UDP 8053 to
:53 and 8054 to :54 (where nothing listens) in nat PREROUTING; its filter FORWARD drops every
other SYN to the server's port 81 (``statistic`` nth), so the first SYN of a connection to 8081
dies there and its retransmission goes through. client and server only route through their
host's bridge address; neither knows the other's subnet, so the exchanges exist only thanks to
both translations. ICMP echo to hostb's WAN address is answered by hostb itself.

Each host logs first in every chain of raw, mangle, nat and filter (TCP ports 80, 81, 8080 and
8081, UDP ports 53, 54, 8053 and 8054, and ICMP; with ip6tables, the TCP ports), with the
logpath-native prefix ``lp:<table>:<hook>:<host>-<tag> ``; one kernel logs for both, and the
host word in the prefix tells whose hook wrote a record.

Two scenarios run in the same lab: ``two-hosts`` (the TCP connections) and ``udp-icmp-ipv6``
(a UDP exchange, two ICMP echoes, a UDP datagram answered by port unreachable, and an IPv6 TCP
connection).

Used by tests/lab/test_lab_two_hosts.py and as a script, to write the committed samples:
``python -m tests.lab.twohosts capture samples/lab/two-hosts``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from . import topology as t
from .capture import KernelRecord, boot_time, capture, syslog_line
from .topology import Lab
from .traffic import Scenario, ping, tcp_request, tcp_server, udp_request, udp_server

HOSTS = ("hosta", "hostb")
ROLES = ("hosta", "hostb", "client", "server")

BRIDGE_A, BRIDGE_B = "lpbra", "lpbrb"
SUBNET_A, SUBNET_B = "172.31.0.0/24", "172.29.0.0/24"
BRIDGE_A_IP, CLIENT_IP = "172.31.0.1", "172.31.0.2"
BRIDGE_B_IP, SERVER_IP = "172.29.0.1", "172.29.0.2"
WAN = "wan0"  # the link's interface has the same name on both hosts, as eth0 would
HOSTA_WAN_IP, HOSTB_WAN_IP = "10.78.0.1", "10.78.0.2"
PUBLISHED_PORT, SERVER_PORT = 8080, 80
# the second published port, where hostb drops the first SYN of each connection
LOSSY_PORT, LOSSY_SERVER_PORT = 8081, 81
# published UDP ports: a server answers on 53; nothing listens on 54 (port unreachable)
UDP_PORT, UDP_SERVER_PORT = 8053, 53
UDP_CLOSED_PORT, UDP_CLOSED_SERVER_PORT = 8054, 54
# IPv6, NATed like IPv4 (NAT66): the same published port 8080 to the server's port 80
BRIDGE_A_IP6, CLIENT_IP6 = "fd00:31::1", "fd00:31::2"
BRIDGE_B_IP6, SERVER_IP6 = "fd00:29::1", "fd00:29::2"
HOSTA_WAN_IP6, HOSTB_WAN_IP6 = "fd00:78::1", "fd00:78::2"
SUBNET_A6, SUBNET_B6 = "fd00:31::/64", "fd00:29::/64"
# the ICMP echoes' sequence numbers (their identifier is traffic.ECHO_ID)
ECHO_SEQS = (1, 2)
# (namespace role, interface) -> MAC
MACS = {
    ("hosta", BRIDGE_A): "02:00:ac:1f:00:01",
    ("hosta", "vethcl"): "02:00:ac:1f:01:02",
    ("client", "eth0"): "02:00:ac:1f:00:02",
    ("hosta", WAN): "02:00:0a:4e:00:01",
    ("hostb", WAN): "02:00:0a:4e:00:02",
    ("hostb", BRIDGE_B): "02:00:ac:1d:00:01",
    ("hostb", "vethsv"): "02:00:ac:1d:01:02",
    ("server", "eth0"): "02:00:ac:1d:00:02",
}
TCP_PORTS = f"{SERVER_PORT},{LOSSY_SERVER_PORT},{PUBLISHED_PORT},{LOSSY_PORT}"
UDP_PORTS = f"{UDP_SERVER_PORT},{UDP_CLOSED_SERVER_PORT},{UDP_PORT},{UDP_CLOSED_PORT}"
# published port on hostb -> (protocol, the server's port it is DNATed to)
PUBLISHED = {
    PUBLISHED_PORT: ("tcp", SERVER_PORT),
    LOSSY_PORT: ("tcp", LOSSY_SERVER_PORT),
    UDP_PORT: ("udp", UDP_SERVER_PORT),
    UDP_CLOSED_PORT: ("udp", UDP_CLOSED_SERVER_PORT),
}
# rules after the LOG rule of each (table, chain), per host
RULES = {
    "hosta": {
        ("nat", "POSTROUTING"): [f"-A POSTROUTING -s {SUBNET_A} ! -o {BRIDGE_A} -j MASQUERADE"]
    },
    "hostb": {
        ("nat", "PREROUTING"): [
            f"-A PREROUTING -d {HOSTB_WAN_IP}/32 -p {proto} --dport {published} "
            f"-j DNAT --to-destination {SERVER_IP}:{port}"
            for published, (proto, port) in PUBLISHED.items()
        ],
        ("nat", "POSTROUTING"): [f"-A POSTROUTING -s {SUBNET_B} ! -o {BRIDGE_B} -j MASQUERADE"],
        # nth 2 from packet 0: the 1st, 3rd... SYN to port 81 is dropped
        ("filter", "FORWARD"): [
            f"-A FORWARD -p tcp --dport {LOSSY_SERVER_PORT} --syn "
            "-m statistic --mode nth --every 2 --packet 0 -j DROP"
        ],
    },
}
# the same for ip6tables: NAT66 of the TCP connection to the published port 8080 only
RULES6 = {
    "hosta": {
        ("nat", "POSTROUTING"): [f"-A POSTROUTING -s {SUBNET_A6} ! -o {BRIDGE_A} -j MASQUERADE"]
    },
    "hostb": {
        ("nat", "PREROUTING"): [
            f"-A PREROUTING -d {HOSTB_WAN_IP6}/128 -p tcp --dport {PUBLISHED_PORT} "
            f"-j DNAT --to-destination [{SERVER_IP6}]:{SERVER_PORT}"
        ],
        ("nat", "POSTROUTING"): [f"-A POSTROUTING -s {SUBNET_B6} ! -o {BRIDGE_B} -j MASQUERADE"],
    },
}
PREFIX = re.compile(r"^lp:[a-z]+:[a-z]+:(?P<host>host[ab])-(?P<tag>\S+) ")


def host_tag(host: str, tag: str) -> str:
    """The last word of a host's LOG prefixes: ``hosta-x3f09a1``."""
    return f"{host}-{tag}"


def ruleset(host: str, tag: str, family: int = 4) -> str:
    """iptables-restore (family 4) or ip6tables-restore (6) input for one host: LOG first in
    every chain, then its other rules. IPv6 logs TCP only (ICMPv6 would log every neighbour
    solicitation)."""
    lines: list[str] = []
    for table, chains in t.LOG_HOOKS.items():
        lines.append(f"*{table}")
        for chain in chains:
            prefix = f"lp:{table}:{t.HOOK_WORDS[chain]}:{host_tag(host, tag)} "
            assert len(prefix) <= 29, prefix  # the LOG target's limit
            target = f'-j LOG --log-prefix "{prefix}"'
            lines.append(f"-A {chain} -p tcp -m multiport --ports {TCP_PORTS} {target}")
            if family == 4:
                lines += [
                    f"-A {chain} -p udp -m multiport --ports {UDP_PORTS} {target}",
                    f"-A {chain} -p icmp {target}",
                ]
            lines += (RULES if family == 4 else RULES6)[host].get((table, chain), [])
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def veth(lab: Lab, role: str, name: str, peer_role: str, peer_name: str) -> None:
    """A veth pair: ``name`` in ``role``'s namespace, ``peer_name`` in ``peer_role``'s."""
    t.run(
        *f"ip -n {lab.ns(role)} link add {name} address {MACS[role, name]} type veth".split(),
        *f"peer name {peer_name} address {MACS[peer_role, peer_name]}".split(),
        *f"netns {lab.ns(peer_role)}".split(),
    )


def add_bridge(lab: Lab, host: str, bridge: str, port: str, member: str) -> None:
    """A bridge in ``host`` with one container (``member``) on a veth port, routed via it."""
    bridge_ip, bridge_ip6, ip, ip6 = {
        "client": (BRIDGE_A_IP, BRIDGE_A_IP6, CLIENT_IP, CLIENT_IP6),
        "server": (BRIDGE_B_IP, BRIDGE_B_IP6, SERVER_IP, SERVER_IP6),
    }[member]
    t.run("ip", "-n", lab.ns(host), "link", "add", bridge, "address", MACS[host, bridge],
          "type", "bridge")  # fmt: skip
    t.run("ip", "-n", lab.ns(host), "addr", "add", f"{bridge_ip}/24", "dev", bridge)
    t.run("ip", "-n", lab.ns(host), "addr", "add", f"{bridge_ip6}/64", "dev", bridge, "nodad")
    t.run("ip", "-n", lab.ns(host), "link", "set", bridge, "up")
    veth(lab, host, port, member, "eth0")
    t.run("ip", "-n", lab.ns(host), "link", "set", port, "master", bridge, "up")
    t.address_member(lab, member, (ip, bridge_ip), (ip6, bridge_ip6))


def add_link(lab: Lab) -> None:
    """The routed link between the hosts (no route to the other's bridge subnet: NAT only)."""
    veth(lab, "hosta", WAN, "hostb", WAN)
    for host, ip, ip6 in (("hosta", HOSTA_WAN_IP, HOSTA_WAN_IP6),
                          ("hostb", HOSTB_WAN_IP, HOSTB_WAN_IP6)):  # fmt: skip
        lab.exec(host, "ip", "addr", "add", f"{ip}/24", "dev", WAN)
        lab.exec(host, "ip", "addr", "add", f"{ip6}/64", "dev", WAN, "nodad")
        lab.exec(host, "ip", "link", "set", WAN, "up")


def no_dad(lab: Lab, role: str) -> None:
    """No duplicate address detection in a new namespace, link-local addresses included: a
    tentative address delays the first IPv6 neighbour resolution by seconds (SYNs resent)."""
    for conf in ("all", "default"):
        t.write_sysctl(f"net/ipv6/conf/{conf}/accept_dad", "0", lab.ns(role))


def configure_hosts(lab: Lab) -> None:
    """Forwarding, br_netfilter and each host's rulesets; logging in every namespace."""
    t.write_sysctl("net/netfilter/nf_log_all_netns", "1")
    t.load_br_netfilter()
    for host in HOSTS:
        t.write_sysctl("net/ipv4/ip_forward", "1", lab.ns(host))
        t.write_sysctl("net/ipv6/conf/all/forwarding", "1", lab.ns(host))
        t.write_sysctl("net/bridge/bridge-nf-call-iptables", "1", lab.ns(host))
        t.write_sysctl("net/bridge/bridge-nf-call-ip6tables", "1", lab.ns(host))
        lab.exec(host, "iptables-restore", stdin=ruleset(host, lab.tag))
        lab.exec(host, "ip6tables-restore", stdin=ruleset(host, lab.tag, 6))


def build(lab: Lab | None = None) -> Lab:
    """Build the two hosts and their containers; on any failure remove what was made."""
    t.check_prerequisites()
    lab = lab or t.new_lab()
    t.take_lock(lab)
    try:
        for role in ROLES:
            t.run("ip", "netns", "add", lab.ns(role))
            lab.namespaces.append(lab.ns(role))
            no_dad(lab, role)
            lab.exec(role, "ip", "link", "set", "lo", "up")
        add_bridge(lab, "hosta", BRIDGE_A, "vethcl", "client")
        add_bridge(lab, "hostb", BRIDGE_B, "vethsv", "server")
        add_link(lab)
        configure_hosts(lab)
    except BaseException:
        t.teardown(lab)
        raise
    return lab


def requests(lab: Lab) -> tuple[bytes, bytes]:
    """Two TCP exchanges, one after the other: client -> hostb's published ports 8080, then
    8081 (whose first SYN hostb drops: the client retransmits it after a second)."""
    with tcp_server(lab, "server", SERVER_PORT), tcp_server(lab, "server", LOSSY_SERVER_PORT):
        clean = tcp_request(lab, "client", HOSTB_WAN_IP, PUBLISHED_PORT)
        lossy = tcp_request(lab, "client", HOSTB_WAN_IP, LOSSY_PORT)
    return clean, lossy


SCENARIO = Scenario(
    "two-hosts",
    "TCP client -> 10.78.0.2:8080 and :8081 via hosta (MASQUERADE) and hostb (DNAT to "
    "172.29.0.2:80 and :81; hostb drops the first SYN to :81)",
    requests,
)


def other_protocols(lab: Lab) -> tuple[bytes | None, bool, bytes | None, bytes]:
    """One exchange after the other: UDP to hostb's published 8053 (answered by the server),
    two ICMP echoes to hostb's WAN address (answered by hostb), UDP to the published 8054
    (nothing listens on the server's 54: its kernel answers port unreachable, so the result is
    None) and IPv6 TCP to [fd00:78::2]:8080."""
    with udp_server(lab, "server", UDP_SERVER_PORT):
        udp = udp_request(lab, "client", HOSTB_WAN_IP, UDP_PORT)
    echoed = all([ping(lab, "client", HOSTB_WAN_IP, seq) for seq in ECHO_SEQS])
    refused = udp_request(lab, "client", HOSTB_WAN_IP, UDP_CLOSED_PORT)
    with tcp_server(lab, "server", SERVER_PORT, family=6):
        tcp6 = tcp_request(lab, "client", HOSTB_WAN_IP6, PUBLISHED_PORT, family=6)
    return udp, echoed, refused, tcp6


OTHER_PROTOCOLS = Scenario(
    "udp-icmp-ipv6",
    "client -> hostb through hosta's MASQUERADE: UDP 10.78.0.2:8053 (DNAT to 172.29.0.2:53, "
    "answered), ICMP echo 10.78.0.2 seq 1 and 2 (hostb answers), UDP 10.78.0.2:8054 (DNAT to "
    ":54, port unreachable), TCP [fd00:78::2]:8080 (NAT66, DNAT to [fd00:29::2]:80)",
    other_protocols,
)
SCENARIOS = (SCENARIO, OTHER_PROTOCOLS)
# what each scenario's traffic returns when everything worked
RESULTS = {
    SCENARIO.name: (b"pong", b"pong"),
    OTHER_PROTOCOLS.name: (b"pong", True, None, b"pong"),
}


def host_of(record: KernelRecord) -> str:
    """The host whose LOG rule wrote a record, read from its prefix."""
    match = PREFIX.match(record.text)
    assert match, record.text
    return match.group("host")


def split(records: Iterable[KernelRecord]) -> dict[str, list[KernelRecord]]:
    """The records per host, in kernel order."""
    per_host: dict[str, list[KernelRecord]] = {host: [] for host in HOSTS}
    for record in records:
        per_host[host_of(record)].append(record)
    return per_host


# Where `capture` writes the committed samples (samples/lab/two-hosts/).
SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "lab" / "two-hosts"


def sample_files(scenario: str) -> dict[str, Path]:
    """The committed syslog file of each host for ``scenario``, named as write_syslogs names
    them."""
    return {host: SAMPLES / f"{scenario}-{host[-1]}.log" for host in HOSTS}


def shifted(path: Path, seconds: float, uptime: float, outdir: Path) -> Path:
    """A copy of a host's log as if its clock ran ``seconds`` ahead and it had booted at
    another time (its kernel [uptime] moved by ``uptime``): a second machine's view."""

    def shift(line: str) -> str:
        stamp = datetime.strptime(f"2026 {line[:15]}", "%Y %b %d %H:%M:%S")
        moved = (stamp + timedelta(seconds=seconds)).strftime("%b %d %H:%M:%S")
        head, rest = line[15:].split("[", 1)
        up, tail = rest.split("]", 1)
        return f"{moved}{head}[{float(up) + uptime:12.6f}]{tail}"

    target = outdir / f"shifted-{path.name}"
    target.write_text("".join(shift(line) + "\n" for line in path.read_text().splitlines()))
    return target


def write_syslogs(records: list[KernelRecord], stem: Path) -> dict[str, Path]:
    """``<stem>-a.log`` for hosta and ``<stem>-b.log`` for hostb, each under its own host name.

    The record texts are written as the kernel wrote them (the run's tag is kept).
    """
    boot = boot_time()
    written = {}
    for host, own in split(records).items():
        path = stem.with_name(f"{stem.name}-{host[-1]}.log")
        path.write_text("".join(syslog_line(r, r.text, boot, host) + "\n" for r in own))
        written[host] = path
    return written


def write_samples(
    records: list[KernelRecord], outdir: Path, scenario: Scenario = SCENARIO
) -> dict[str, Path]:
    """The two syslog files, and both hosts' records together as dmesg and /dev/kmsg show them."""
    stem = outdir / scenario.name
    written = write_syslogs(records, stem)
    dmesg = [f"{r.uptime()} {r.text}\n" for r in records]
    kmsg = [f"{r.level},{r.seq},{r.usec},{r.flags};{r.text}\n" for r in records]
    stem.with_suffix(".dmesg").write_text("".join(dmesg))
    stem.with_suffix(".kmsg").write_text("".join(kmsg))
    return written


def main(argv: list[str]) -> int:
    """``capture OUTDIR``: build the two hosts, run the scenarios, write the samples, tear down."""
    if len(argv) != 2 or argv[0] != "capture":
        print("usage: python -m tests.lab.twohosts capture OUTDIR")
        return 2
    t.clean_leftovers()
    lab = build()
    try:
        outdir = Path(argv[1])
        outdir.mkdir(parents=True, exist_ok=True)
        for scenario in SCENARIOS:
            records, result = capture(lab, scenario)
            if result != RESULTS[scenario.name]:
                print(f"{scenario.name}: result {result!r}, not {RESULTS[scenario.name]!r}")
                return 1
            written = write_samples(records, outdir, scenario)
            counts = {host: len(lines) for host, lines in split(records).items()}
            print(f"{scenario.name}: {counts} lines, result={result!r}, files {sorted(written)}")
    finally:
        t.teardown(lab)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
