"""A Docker-like host built from network namespaces, with LOG rules at every hook.

Layout (every name carries the run's prefix ``lp<6 hex>-``; ``host`` stands for ``<prefix>host``)::

    c1 (eth0 172.30.0.2, fd00:30::2)--vethc1-+
                                            lpbr0 172.30.0.1/24, fd00:30::1/64   (in host)
    c2 (eth0 172.30.0.3, fd00:30::3)--vethc2-+
    c3 (eth0 172.30.1.2)--vethc3-- lpbr1 172.30.1.1/24 (in host; a second bridge, for the
                                   isolation between bridges of tests/lab/fatecases.py)
    host up0 10.77.0.1/24 ------------ lan eth0 10.77.0.2/24 (route 172.30.0.0/24 via 10.77.0.1)

host: ip_forward=1, br_netfilter with bridge-nf-call-iptables/ip6tables=1, MASQUERADE for
172.30.0.0/24 leaving by any interface but lpbr0, a published port 10.77.0.1:8080 -> c1:80
(DNAT in nat PREROUTING and OUTPUT, like ``docker run -p 8080:80`` without the userland proxy),
and hairpin: MASQUERADE for bridge clients of the published port, ``hairpin on`` on the ports.

Used by tests/lab/conftest.py and as a script: ``python -m tests.lab.topology capture OUTDIR``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
LOCK_DIR = Path(tempfile.gettempdir()) / "logpath-lab"
# the one-host lab's roles, then the two-host lab's (tests/lab/twohosts.py)
NAMESPACE_PATTERN = re.compile(r"^(lp[0-9a-f]{6}-)(host|c1|c2|c3|lan|hosta|hostb|client|server)$")

BRIDGE = "lpbr0"
SUBNET = "172.30.0.0/24"
BRIDGE2, BRIDGE2_IP, C3_IP = "lpbr1", "172.30.1.1", "172.30.1.2"
BRIDGE_IP, C1_IP, C2_IP = "172.30.0.1", "172.30.0.2", "172.30.0.3"
BRIDGE_IP6, C1_IP6, C2_IP6 = "fd00:30::1", "fd00:30::2", "fd00:30::3"
UPLINK_IP, LAN_IP = "10.77.0.1", "10.77.0.2"
PUBLISHED_PORT, C1_SERVICE_PORT = 8080, 80
MACS = {
    "lpbr0": "02:00:ac:1e:00:01",
    "vethc1": "02:00:ac:1e:01:02",
    "vethc2": "02:00:ac:1e:01:03",
    "c1": "02:00:ac:1e:00:02",
    "c2": "02:00:ac:1e:00:03",
    "lpbr1": "02:00:ac:1e:10:01",
    "vethc3": "02:00:ac:1e:11:02",
    "c3": "02:00:ac:1e:10:02",
    "up0": "02:00:0a:4d:00:01",
    "lan": "02:00:0a:4d:00:02",
}
# The LOG rules see only the lab's own test traffic, so the captures stay small.
TCP_PORTS = "80,8080,9000:9099"
UDP_PORTS = "9000:9099"
LOG_HOOKS = {
    "raw": ["PREROUTING", "OUTPUT"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
}
HOOK_WORDS = {
    "PREROUTING": "pre",
    "INPUT": "in",
    "FORWARD": "fwd",
    "OUTPUT": "out",
    "POSTROUTING": "post",
}


class LabUnavailable(RuntimeError):
    """The machine cannot host the lab (not root, no netns, missing kernel features)."""


def run(*argv: str, check: bool = True, stdin: str | None = None) -> str:
    """Run a command; raise with its stderr when it fails."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def write_sysctl(path: str, value: str, namespace: str | None = None) -> None:
    """Write /proc/sys/<path> in a namespace (None: the initial namespace)."""
    command = ["sh", "-c", f"echo {value} > /proc/sys/{path}"]
    if namespace:
        command = ["ip", "netns", "exec", namespace, *command]
    run(*command)


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Switch the calling thread into a network namespace; sockets made here stay in it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace}")
        yield
    finally:
        _libc.setns(own, CLONE_NEWNET)
        os.close(target)
        os.close(own)


def log_rules(table: str, chain: str, tag: str, family: int) -> list[str]:
    """The LOG rules for one built-in chain: test TCP/UDP ports and ICMP, prefix lp:<t>:<h>:tag."""
    prefix = f"lp:{table}:{HOOK_WORDS[chain]}:{tag} "
    target = f'-j LOG --log-prefix "{prefix}"'
    if family == 6:
        return [f"-A {chain} -p tcp -m multiport --ports {TCP_PORTS} {target}"]
    return [
        f"-A {chain} -p tcp -m multiport --ports {TCP_PORTS} {target}",
        f"-A {chain} -p udp -m multiport --ports {UDP_PORTS} {target}",
        f"-A {chain} -p icmp {target}",
    ]


NAT_RULES_V4 = {
    "PREROUTING": [
        f"-A PREROUTING -d {UPLINK_IP}/32 -p tcp --dport {PUBLISHED_PORT} "
        f"-j DNAT --to-destination {C1_IP}:{C1_SERVICE_PORT}"
    ],
    "OUTPUT": [
        f"-A OUTPUT -d {UPLINK_IP}/32 -p tcp --dport {PUBLISHED_PORT} "
        f"-j DNAT --to-destination {C1_IP}:{C1_SERVICE_PORT}"
    ],
    "POSTROUTING": [
        f"-A POSTROUTING -s {SUBNET} ! -o {BRIDGE} -j MASQUERADE",
        # hairpin: a bridge client of the published port must get c1's answer back through
        # the host (to be de-DNATed), so its source becomes the bridge address
        f"-A POSTROUTING -s {SUBNET} -d {C1_IP}/32 -o {BRIDGE} -p tcp --dport {C1_SERVICE_PORT} "
        "-j MASQUERADE",
    ],
}


def ruleset(tag: str, family: int) -> str:
    """iptables-restore input for the host: LOG first in every chain, then the NAT rules."""
    lines: list[str] = []
    for table, chains in LOG_HOOKS.items():
        lines.append(f"*{table}")
        for chain in chains:
            lines += log_rules(table, chain, tag, family)
            if table == "nat" and family == 4:
                lines += NAT_RULES_V4.get(chain, [])
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@dataclass
class Lab:
    """One built lab: its namespace names and the tag its LOG prefixes carry."""

    prefix: str
    tag: str
    lock: int = -1
    namespaces: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        """The namespace name of a role: host, c1, c2, c3 or lan."""
        return f"{self.prefix}{role}"

    def exec(self, role: str, *argv: str, stdin: str | None = None) -> str:
        """Run a command inside a role's namespace."""
        return run("ip", "netns", "exec", self.ns(role), *argv, stdin=stdin)


def new_lab() -> Lab:
    """A lab with a fresh random prefix and tag (not built yet)."""
    token = secrets.token_hex(3)
    return Lab(prefix=f"lp{token}-", tag=f"x{token}")


def check_prerequisites() -> None:
    """Raise LabUnavailable with the reason when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (network namespaces, iptables, /dev/kmsg)")
    for tool in ("ip", "iptables-restore", "ip6tables-restore", "bridge"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise LabUnavailable(f"{tool} is missing (apt-get install iproute2 iptables)")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        raise LabUnavailable("`ip netns list` fails: no network namespace support")
    if not Path("/proc/sys/net/netfilter/nf_log_all_netns").exists():
        raise LabUnavailable("no /proc/sys/net/netfilter/nf_log_all_netns: nf_log missing")
    if not Path("/dev/kmsg").exists():
        raise LabUnavailable("no /dev/kmsg to read kernel log lines from")


def clean_leftovers() -> list[str]:
    """Delete namespaces of earlier lab runs that crashed: our pattern and no live lock holder."""
    removed = []
    for line in run("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = NAMESPACE_PATTERN.match(name)
        if match and not lock_is_held(match.group(1)):
            run("ip", "netns", "delete", name, check=False)
            removed.append(name)
    return removed


def lock_is_held(prefix: str) -> bool:
    """True while the process that built the lab with this prefix is alive (holds its lock)."""
    path = LOCK_DIR / f"{prefix}lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)
    return False


def take_lock(lab: Lab) -> None:
    """Hold a lock file for the lab's lifetime so that concurrent runs leave it alone."""
    LOCK_DIR.mkdir(exist_ok=True)
    lab.lock = os.open(LOCK_DIR / f"{lab.prefix}lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lab.lock, fcntl.LOCK_EX)


def add_namespaces(lab: Lab) -> None:
    """Create the five namespaces with loopback up."""
    for role in ("host", "c1", "c2", "c3", "lan"):
        run("ip", "netns", "add", lab.ns(role))
        lab.namespaces.append(lab.ns(role))
        lab.exec(role, "ip", "link", "set", "lo", "up")


def add_veth(host: str, name: str, peer_namespace: str) -> None:
    """A veth pair: ``name`` in host, ``eth0`` in the peer's namespace, both with fixed MACs."""
    peer_mac = MACS[peer_namespace.rsplit("-", 1)[1]]
    run(
        *f"ip -n {host} link add {name} address {MACS[name]} type veth".split(),
        *f"peer name eth0 address {peer_mac} netns {peer_namespace}".split(),
    )


def add_bridge(lab: Lab) -> None:
    """The bridge in host, with both containers on veth ports (hairpin on, like docker)."""
    host = lab.ns("host")
    run("ip", "-n", host, "link", "add", BRIDGE, "address", MACS[BRIDGE], "type", "bridge")
    run("ip", "-n", host, "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
    run("ip", "-n", host, "addr", "add", f"{BRIDGE_IP6}/64", "dev", BRIDGE, "nodad")
    run("ip", "-n", host, "link", "set", BRIDGE, "up")
    for role, ip4, ip6 in (("c1", C1_IP, C1_IP6), ("c2", C2_IP, C2_IP6)):
        port = f"veth{role}"
        add_veth(host, port, lab.ns(role))
        run("ip", "-n", host, "link", "set", port, "master", BRIDGE, "up")
        lab.exec("host", "bridge", "link", "set", "dev", port, "hairpin", "on")
        address_member(lab, role, (ip4, BRIDGE_IP), (ip6, BRIDGE_IP6))


def add_second_bridge(lab: Lab) -> None:
    """The bridge lpbr1 in host with c3 on its port (IPv4 only): another Docker network."""
    host = lab.ns("host")
    run("ip", "-n", host, "link", "add", BRIDGE2, "address", MACS[BRIDGE2], "type", "bridge")
    run("ip", "-n", host, "addr", "add", f"{BRIDGE2_IP}/24", "dev", BRIDGE2)
    run("ip", "-n", host, "link", "set", BRIDGE2, "up")
    add_veth(host, "vethc3", lab.ns("c3"))
    run("ip", "-n", host, "link", "set", "vethc3", "master", BRIDGE2, "up")
    lab.exec("c3", "ip", "addr", "add", f"{C3_IP}/24", "dev", "eth0")
    lab.exec("c3", "ip", "link", "set", "eth0", "up")
    lab.exec("c3", "ip", "route", "add", "default", "via", BRIDGE2_IP)


def address_member(lab: Lab, role: str, ipv4: tuple[str, str], ipv6: tuple[str, str]) -> None:
    """A container's eth0 on a bridge: its (address, gateway) for IPv4 (/24) and IPv6 (/64,
    no duplicate address detection, which would hold the first connection back ~2 s)."""
    lab.exec(role, "ip", "addr", "add", f"{ipv4[0]}/24", "dev", "eth0")
    lab.exec(role, "ip", "addr", "add", f"{ipv6[0]}/64", "dev", "eth0", "nodad")
    lab.exec(role, "ip", "link", "set", "eth0", "up")
    lab.exec(role, "ip", "route", "add", "default", "via", ipv4[1])
    lab.exec(role, "ip", "-6", "route", "add", "default", "via", ipv6[1])


def add_uplink(lab: Lab) -> None:
    """The host's uplink up0 to the lan namespace, which routes the bridge subnet back."""
    host = lab.ns("host")
    add_veth(host, "up0", lab.ns("lan"))
    run("ip", "-n", host, "addr", "add", f"{UPLINK_IP}/24", "dev", "up0")
    run("ip", "-n", host, "link", "set", "up0", "up")
    lab.exec("lan", "ip", "addr", "add", f"{LAN_IP}/24", "dev", "eth0")
    lab.exec("lan", "ip", "link", "set", "eth0", "up")
    lab.exec("lan", "ip", "route", "add", SUBNET, "via", UPLINK_IP)


def load_br_netfilter() -> None:
    """Make sure br_netfilter is there (built in, or loaded with modprobe on a modular kernel)."""
    if not Path("/proc/sys/net/bridge").is_dir():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True, check=False)
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        raise LabUnavailable("br_netfilter is not available (modprobe br_netfilter failed)")


def configure_host(lab: Lab) -> None:
    """Forwarding, br_netfilter, logging in every namespace, and the host's ruleset."""
    write_sysctl("net/netfilter/nf_log_all_netns", "1")  # host settings: initial namespace
    host = lab.ns("host")
    write_sysctl("net/ipv4/ip_forward", "1", host)
    write_sysctl("net/ipv6/conf/all/forwarding", "1", host)
    load_br_netfilter()
    for name in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        write_sysctl(f"net/bridge/{name}", "1", host)
    lab.exec("host", "iptables-restore", stdin=ruleset(lab.tag, 4))
    lab.exec("host", "ip6tables-restore", stdin=ruleset(lab.tag, 6))


def build(lab: Lab | None = None) -> Lab:
    """Build the whole lab; on any failure remove what was made and re-raise."""
    check_prerequisites()
    lab = lab or new_lab()
    take_lock(lab)
    try:
        add_namespaces(lab)
        add_bridge(lab)
        add_second_bridge(lab)
        add_uplink(lab)
        configure_host(lab)
    except BaseException:
        teardown(lab)
        raise
    return lab


def teardown(lab: Lab) -> None:
    """Remove the lab's namespaces (their interfaces and rules go with them) and its lock."""
    for name in lab.namespaces:
        run("ip", "netns", "delete", name, check=False)
    lab.namespaces.clear()
    if lab.lock >= 0:
        os.close(lab.lock)
        (LOCK_DIR / f"{lab.prefix}lock").unlink(missing_ok=True)
        lab.lock = -1


def main(argv: list[str]) -> int:
    """``capture OUTDIR [SCENARIO...]``: build the lab, run every scenario (or those named),
    write the samples, tear down; ``capture-fates``: the same with tests/lab/fatecases.py's."""
    from . import fatecases
    from .capture import capture_all

    if len(argv) < 2 or argv[0] not in ("capture", "capture-fates"):
        print("usage: python -m tests.lab.topology capture|capture-fates OUTDIR [SCENARIO...]")
        return 2
    scenarios = fatecases.SCENARIOS if argv[0] == "capture-fates" else None
    clean_leftovers()
    lab = build()
    try:
        capture_all(lab, Path(argv[1]), argv[2:], scenarios)
    finally:
        teardown(lab)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
