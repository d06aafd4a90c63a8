"""Two Docker bridge networks, captured: Docker's own filter chains, and rp_filter.

Layout (every name carries the run's prefix ``lp<6 hex>-``)::

    c1 (eth0 172.30.0.2)--vethc1-- lpbr0 172.30.0.1/24 --+
                                                         host (ip_forward=1, br_netfilter)
    c2 (eth0 172.30.1.2)--vethc2-- lpbr1 172.30.1.1/24 --+

host's filter table is Docker's classic layout for two bridge networks (FORWARD policy DROP,
DOCKER-USER, DOCKER-ISOLATION-STAGE-1 and -2, DOCKER), with a LOG rule first in raw PREROUTING
and in filter INPUT, FORWARD and OUTPUT, and one administrator's rule in DOCKER-USER; host has strict
reverse-path filtering (``rp_filter=1``). Traffic, in this order:

- c1 -> c2:9050: dropped by DOCKER-ISOLATION-STAGE-2 (the SYN and its retransmission);
- c2 -> c1:9051: rejected with a RST by the DOCKER-USER rule;
- c1 -> host 172.30.0.1:9053: answered (the host's own address, delivered at INPUT);
- c1 -> host 172.30.0.1:9052 from 172.30.1.9 (an address of c2's network, added to c1): the
  route back to that source is lpbr1, so rp_filter drops the SYN after raw PREROUTING, where the
  filter INPUT LOG rule would have logged it.

    python -m tests.lab.dockeriso OUTDIR   (as root)

writes OUTDIR/docker-bridges.{log,dmesg,kmsg} (the LOG prefixes' tag made ``lab``) and
OUTDIR/docker-bridges.iptables-save.rules (the ruleset as ``iptables-save`` printed it during
the capture, tag made ``lab`` too).
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from . import topology as t
from .capture import FIXED_TAG, KernelLog, write_formats
from .traffic import make_socket, tcp_refused, tcp_request, tcp_server, tcp_unanswered

ISOLATED_PORT, USER_PORT, SPOOFED_PORT, LOCAL_PORT = 9050, 9051, 9052, 9053
SPOOFED_SOURCE = "172.30.1.9"  # in lpbr1's subnet, sent by c1 on lpbr0
BRIDGES = {
    "c1": ("lpbr0", "172.30.0", "02:00:ac:1e:00"),
    "c2": ("lpbr1", "172.30.1", "02:00:ac:1e:10"),
}


def ruleset(tag: str) -> str:
    """iptables-restore input: Docker's filter chains for two bridges (as dockerd 20-27 writes
    them), LOG rules first in raw PREROUTING and filter FORWARD."""
    log = "-p tcp -m multiport --ports 9050:9059 -j LOG --log-prefix"
    forward = []
    for bridge in ("lpbr0", "lpbr1"):
        forward += [
            f"-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A FORWARD -o {bridge} -j DOCKER",
            f"-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT",
            f"-A FORWARD -i {bridge} -o {bridge} -j ACCEPT",
        ]
    return "\n".join([
        "*raw", f'-A PREROUTING {log} "lp:raw:pre:{tag} "', "COMMIT",
        "*filter", ":FORWARD DROP [0:0]", ":DOCKER - [0:0]", ":DOCKER-ISOLATION-STAGE-1 - [0:0]",
        ":DOCKER-ISOLATION-STAGE-2 - [0:0]", ":DOCKER-USER - [0:0]",
        f'-A INPUT {log} "lp:filter:in:{tag} "', f'-A OUTPUT {log} "lp:filter:out:{tag} "',
        f'-A FORWARD {log} "lp:filter:fwd:{tag} "',
        "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1", *forward,
        "-A DOCKER-ISOLATION-STAGE-1 -i lpbr0 ! -o lpbr0 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -i lpbr1 ! -o lpbr1 -j DOCKER-ISOLATION-STAGE-2",
        "-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
        "-A DOCKER-ISOLATION-STAGE-2 -o lpbr0 -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -o lpbr1 -j DROP",
        "-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
        f"-A DOCKER-USER -s 172.30.1.0/24 -p tcp --dport {USER_PORT} "
        "-j REJECT --reject-with tcp-reset",
        "-A DOCKER-USER -j RETURN",
        "COMMIT", "",
    ])  # fmt: skip


def build() -> t.Lab:
    """Namespaces host, c1, c2; a bridge per container; Docker's rules in host."""
    t.check_prerequisites()
    lab = t.new_lab()
    t.take_lock(lab)
    try:
        for role in ("host", "c1", "c2"):
            t.run("ip", "netns", "add", lab.ns(role))
            lab.namespaces.append(lab.ns(role))
            lab.exec(role, "ip", "link", "set", "lo", "up")
        for role, (bridge, net, mac) in BRIDGES.items():
            add_network(lab, role, bridge, net, mac)
        t.write_sysctl("net/netfilter/nf_log_all_netns", "1")
        t.write_sysctl("net/ipv4/ip_forward", "1", lab.ns("host"))
        # strict reverse-path filtering: the kernel takes the larger of all/ and the device's
        for conf in ("all", "lpbr0"):
            t.write_sysctl(f"net/ipv4/conf/{conf}/rp_filter", "1", lab.ns("host"))
        t.load_br_netfilter()
        t.write_sysctl("net/bridge/bridge-nf-call-iptables", "1", lab.ns("host"))
        lab.exec("host", "iptables-restore", stdin=ruleset(lab.tag))
    except BaseException:
        t.teardown(lab)
        raise
    return lab


def add_network(lab: t.Lab, role: str, bridge: str, net: str, mac: str) -> None:
    """A bridge in host with the container ``role`` on a veth port, as ``docker network``."""
    host = lab.ns("host")
    t.run("ip", "-n", host, "link", "add", bridge, "address", f"{mac}:01", "type", "bridge")
    t.run("ip", "-n", host, "addr", "add", f"{net}.1/24", "dev", bridge)
    t.run("ip", "-n", host, "link", "set", bridge, "up")
    port = f"veth{role}"
    t.run(*f"ip -n {host} link add {port} address {mac}:11 type veth".split(),
          *f"peer name eth0 address {mac}:02 netns {lab.ns(role)}".split())  # fmt: skip
    t.run("ip", "-n", host, "link", "set", port, "master", bridge, "up")
    lab.exec(role, "ip", "addr", "add", f"{net}.2/24", "dev", "eth0")
    lab.exec(role, "ip", "link", "set", "eth0", "up")
    lab.exec(role, "ip", "route", "add", "default", "via", f"{net}.1")


def traffic(lab: t.Lab) -> tuple[bool, bool, bytes, bool]:
    """What each client saw: c1 -> c2:9050 unanswered (isolation), c2 -> c1:9051 refused
    (DOCKER-USER), c1 -> host:9053 answered, c1 -> host:9052 from a spoofed source unanswered
    (rp_filter)."""
    with tcp_server(lab, "c2", ISOLATED_PORT), tcp_server(lab, "c1", USER_PORT):
        isolated = tcp_unanswered(lab, "c1", "172.30.1.2", ISOLATED_PORT, 1.5)
        refused = tcp_refused(lab, "c2", "172.30.0.2", USER_PORT)
    with tcp_server(lab, "host", LOCAL_PORT), tcp_server(lab, "host", SPOOFED_PORT):
        answered = tcp_request(lab, "c1", "172.30.0.1", LOCAL_PORT)
        spoofed = spoofed_unanswered(lab, "172.30.0.1", SPOOFED_PORT, 1.5)
    return isolated, refused, answered, spoofed


def spoofed_unanswered(lab: t.Lab, dst: str, port: int, wait: float) -> bool:
    """Connect from c1 with the source SPOOFED_SOURCE (added to c1's eth0 for it); True when
    nothing answered within ``wait`` seconds."""
    lab.exec("c1", "ip", "addr", "add", f"{SPOOFED_SOURCE}/32", "dev", "eth0")
    with make_socket(lab, "c1", 4, socket.SOCK_STREAM) as sock:
        sock.bind((SPOOFED_SOURCE, 0))
        sock.settimeout(wait)
        try:
            sock.connect((dst, port))
        except TimeoutError:
            return True
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.lab.dockeriso OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    lab = build()
    try:
        rules = lab.exec("host", "iptables-save").replace(f":{lab.tag} ", f":{FIXED_TAG} ")
        with KernelLog(lab.tag) as log:
            seen = traffic(lab)
        if log.lost or seen != (True, True, b"pong", True):
            raise RuntimeError(f"capture failed: lost={log.lost}, the clients saw {seen}")
        write_formats(log.records, lab.tag, out / "docker-bridges")
        (out / "docker-bridges.iptables-save.rules").write_text(rules)
        print(f"docker-bridges: {len(log.records)} lines")
    finally:
        t.teardown(lab)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
