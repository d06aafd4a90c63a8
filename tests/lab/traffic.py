"""Bounded test traffic between the lab's namespaces: Python sockets, every call with a timeout.

Sockets are created inside a namespace (``topology.inside``) and keep it afterwards, so a
listener thread and a client can run in one process. Nothing here can reach an address outside
the lab: every destination is one of the lab's own addresses.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import topology as t
from .backends import BACKENDS, HostRules
from .topology import Lab

TIMEOUT = 5.0
ECHO_ID = 0x4C50  # "LP": the identifier of the lab's ICMP echo requests
BURST_STAGGER = 0.004  # seconds between the starts of two burst connections


def make_socket(lab: Lab, role: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket in a role's namespace."""
    with t.inside(lab.ns(role)):
        sock = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, kind, proto)
    sock.settimeout(TIMEOUT)
    return sock


def serve_tcp_connection(conn: socket.socket) -> None:
    """Answer one request: read it, reply pong, close first (the server sends the first FIN)."""
    with conn:
        conn.settimeout(TIMEOUT)
        with contextlib.suppress(OSError):
            if conn.recv(64):
                conn.sendall(b"pong")


@contextlib.contextmanager
def tcp_server(lab: Lab, role: str, port: int, family: int = 4) -> Iterator[None]:
    """A TCP listener on every address of a role, answering until the block ends."""
    sock = make_socket(lab, role, family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::" if family == 6 else "0.0.0.0", port))
    sock.listen(1024)
    sock.settimeout(0.2)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            worker = threading.Thread(target=serve_tcp_connection, args=(conn,))
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept_loop)
    acceptor.start()
    try:
        yield
    finally:
        stop.set()
        acceptor.join()
        for worker in workers:
            worker.join(TIMEOUT)
        sock.close()


def tcp_request(lab: Lab, role: str, dst: str, port: int, family: int = 4) -> bytes:
    """Connect, send ping, return the reply (read to EOF)."""
    with make_socket(lab, role, family, socket.SOCK_STREAM) as sock:
        sock.connect((dst, port))
        sock.sendall(b"ping")
        reply = b""
        while chunk := sock.recv(64):
            reply += chunk
        return reply


def tcp_refused(lab: Lab, role: str, dst: str, port: int) -> bool:
    """Connect to a port nobody listens on; True when the answer was a RST."""
    with make_socket(lab, role, 4, socket.SOCK_STREAM) as sock:
        try:
            sock.connect((dst, port))
        except ConnectionRefusedError:
            return True
        return False


@contextlib.contextmanager
def udp_server(lab: Lab, role: str, port: int) -> Iterator[None]:
    """A UDP echo server answering each datagram with pong."""
    sock = make_socket(lab, role, 4, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                _, peer = sock.recvfrom(64)
                sock.sendto(b"pong", peer)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sock.close()


def udp_request(lab: Lab, role: str, dst: str, port: int) -> bytes | None:
    """Send one datagram from a connected socket; None when an ICMP error refused it."""
    with make_socket(lab, role, 4, socket.SOCK_DGRAM) as sock:
        sock.connect((dst, port))
        sock.send(b"ping")
        try:
            return sock.recv(64)
        except ConnectionRefusedError:  # the ICMP port unreachable came back
            return None


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(lab: Lab, role: str, dst: str, seq: int) -> bool:
    """One ICMP echo request from a raw socket; True when the matching reply came back."""
    header = struct.pack("!BBHHH", 8, 0, 0, ECHO_ID, seq)
    payload = b"logpath-lab-echo"
    packet = struct.pack("!BBHHH", 8, 0, icmp_checksum(header + payload), ECHO_ID, seq) + payload
    with make_socket(lab, role, 4, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(packet, (dst, 0))
        while True:
            data, _ = sock.recvfrom(2048)
            icmp = data[(data[0] & 0x0F) * 4 :]
            if icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ECHO_ID, seq):
                return True


def burst(lab: Lab, role: str, dst: str, port: int, count: int) -> int:
    """Open ``count`` connections at once (all established together), then close them all.

    Returns how many were established.
    """
    sockets = [make_socket(lab, role, 4, socket.SOCK_STREAM) for _ in range(count)]
    barrier = threading.Barrier(count, timeout=60)

    def one(index: int, sock: socket.socket) -> bool:
        # Staggered by a few ms so the kernel's 128 KiB log ring does not overrun before the
        # reader takes the records; all connections are still open together at the barrier.
        with sock:
            time.sleep(index * BURST_STAGGER)
            sock.connect((dst, port))
            barrier.wait()
            time.sleep(index * BURST_STAGGER)
            sock.sendall(b"ping")
            return sock.recv(64) == b"pong"

    with ThreadPoolExecutor(max_workers=count) as pool:
        return sum(pool.map(one, range(count), sockets))


@dataclass(frozen=True)
class Scenario:
    """One case of the lab: a name (the sample file's stem), what it shows, and its traffic."""

    name: str
    description: str
    traffic: Callable[[Lab], object]
    # rules of its own on top of the lab's: the host's ruleset is loaded with them for the
    # capture, and what the tools print of it is written beside the capture (``<name>.rules``
    # from iptables-save, ``<name>.nft`` from nft list ruleset)
    host_rules: HostRules | None = None
    # the front ends it is captured under (tests/lab/backends.py), each into ``<name><suffix>``
    backends: tuple[str, ...] = ("iptables-nft",)

    @property
    def keeps_rules(self) -> bool:
        """Whether the ruleset is written beside the capture."""
        return self.host_rules is not None

    def variants(self) -> list[tuple[str, str]]:
        """(file stem, backend) of each capture of the scenario."""
        return [(self.name + BACKENDS[backend], backend) for backend in self.backends]


def c2c(lab: Lab) -> bytes:
    with tcp_server(lab, "c2", 9001):
        return tcp_request(lab, "c1", t.C2_IP, 9001)


def bridge_rst(lab: Lab) -> bool:
    return tcp_refused(lab, "c1", t.BRIDGE_IP, 9002)


def c1_host(lab: Lab) -> bytes:
    with tcp_server(lab, "host", 9003):
        return tcp_request(lab, "c1", t.UPLINK_IP, 9003)


def host_c1(lab: Lab) -> bytes:
    with tcp_server(lab, "c1", 9004):
        return tcp_request(lab, "host", t.C1_IP, 9004)


def masquerade(lab: Lab) -> bytes:
    with tcp_server(lab, "lan", 9005):
        return tcp_request(lab, "c1", t.LAN_IP, 9005)


def dnat(lab: Lab) -> bytes:
    with tcp_server(lab, "c1", t.C1_SERVICE_PORT):
        return tcp_request(lab, "lan", t.UPLINK_IP, t.PUBLISHED_PORT)


def hairpin(lab: Lab) -> bytes:
    with tcp_server(lab, "c1", t.C1_SERVICE_PORT):
        return tcp_request(lab, "c2", t.UPLINK_IP, t.PUBLISHED_PORT)


def hairpin_self(lab: Lab) -> bytes:
    with tcp_server(lab, "c1", t.C1_SERVICE_PORT):
        return tcp_request(lab, "c1", t.UPLINK_IP, t.PUBLISHED_PORT)


def icmp_echo(lab: Lab) -> bool:
    return ping(lab, "c1", t.LAN_IP, 1) and ping(lab, "c1", t.LAN_IP, 2)


def icmp_error(lab: Lab) -> bytes | None:
    return udp_request(lab, "c1", t.LAN_IP, 9009)


def udp(lab: Lab) -> bytes | None:
    with udp_server(lab, "lan", 9010):
        return udp_request(lab, "c1", t.LAN_IP, 9010)


def ipv6(lab: Lab) -> tuple[bytes, bytes]:
    with tcp_server(lab, "c2", 9011, family=6), tcp_server(lab, "host", 9012, family=6):
        bridged = tcp_request(lab, "c1", t.C2_IP6, 9011, family=6)
        to_host = tcp_request(lab, "c1", t.BRIDGE_IP6, 9012, family=6)
    return bridged, to_host


# Every option the LOG target has (SEQ/ACK, TCP and IP options, UID/GID of a local socket).
ALL_LOG_OPTIONS = "--log-tcp-sequence --log-tcp-options --log-ip-options --log-uid"
OPTIONS_PORT = 9030


@contextlib.contextmanager
def raw_rules_with_every_option(lab: Lab) -> Iterator[None]:
    """For OPTIONS_PORT, the raw table's LOG rules print every option and the others none.

    Inserted before the standard raw LOG rules, with the same prefix, and followed by an ACCEPT
    that ends the raw table for the port: one hop per hook still, as when a ruleset's author
    gave one of a packet's LOG rules more options than the next."""
    rules = []
    for chain, word in (("PREROUTING", "pre"), ("OUTPUT", "out")):
        prefix = f"lp:raw:{word}:{lab.tag} "
        for side in ("--dport", "--sport"):
            match = ["-p", "tcp", side, str(OPTIONS_PORT)]
            rules.append((chain, [*match, "-j", "LOG", "--log-prefix", prefix,
                                  *ALL_LOG_OPTIONS.split()]))  # fmt: skip
            rules.append((chain, [*match, "-j", "ACCEPT"]))
    for position, (chain, rule) in enumerate(rules):
        number = str(1 + position % 4)
        lab.exec("host", "iptables", "-t", "raw", "-I", chain, number, *rule)
    try:
        yield
    finally:
        for chain, rule in rules:
            lab.exec("host", "iptables", "-t", "raw", "-D", chain, *rule)


def log_options(lab: Lab) -> bytes:
    with raw_rules_with_every_option(lab), tcp_server(lab, "host", OPTIONS_PORT):
        return tcp_request(lab, "c1", t.UPLINK_IP, OPTIONS_PORT)


# Ports the host's FORWARD chain ends for, after its LOG rule logged them (LOG-then-DROP).
DROPPED_PORT, RESET_PORT, UNREACHABLE_PORT = 9040, 9041, 9042
VERDICT_RULES = HostRules(
    iptables={
        "filter": [
            f"-A FORWARD -p tcp --dport {DROPPED_PORT} -j DROP",
            f"-A FORWARD -p tcp --dport {RESET_PORT} -j REJECT --reject-with tcp-reset",
            f"-A FORWARD -p udp --dport {UNREACHABLE_PORT} -j REJECT",
        ]
    },
    nft=[
        f"add rule ip lp-filter forward tcp dport {DROPPED_PORT} drop",
        f"add rule ip lp-filter forward tcp dport {RESET_PORT} reject with tcp reset",
        f"add rule ip lp-filter forward udp dport {UNREACHABLE_PORT} reject",
    ],
)


def tcp_unanswered(
    lab: Lab, role: str, dst: str, port: int, wait: float, source: tuple[str, int] | None = None
) -> bool:
    """Connect (from ``source`` when given) and give up after ``wait`` seconds (the SYN and its
    first retransmission, 1 s later); True when nothing answered."""
    with make_socket(lab, role, 4, socket.SOCK_STREAM) as sock:
        if source is not None:
            sock.bind(source)
        sock.settimeout(wait)
        try:
            sock.connect((dst, port))
        except TimeoutError:
            return True
        except OSError:
            return False
        return False


def verdicts(lab: Lab) -> tuple[bool, bool, bytes | None]:
    """c1 -> lan through the host's FORWARD chain, which ends each flow after its LOG rule: a
    DROP (the SYN and its retransmission), a REJECT with tcp-reset, a REJECT with the default
    icmp-port-unreachable (VERDICT_RULES). Returns what each client saw."""
    with tcp_server(lab, "lan", DROPPED_PORT), tcp_server(lab, "lan", RESET_PORT):
        dropped = tcp_unanswered(lab, "c1", t.LAN_IP, DROPPED_PORT, 1.5)
        reset = tcp_refused(lab, "c1", t.LAN_IP, RESET_PORT)
    with udp_server(lab, "lan", UNREACHABLE_PORT):
        answer = udp_request(lab, "c1", t.LAN_IP, UNREACHABLE_PORT)
    return dropped, reset, answer


BURST_SIZE = 200


def burst_masquerade(lab: Lab) -> int:
    with tcp_server(lab, "lan", 9020):
        return burst(lab, "c1", t.LAN_IP, 9020, BURST_SIZE)


SCENARIOS = [
    Scenario("c2c", "TCP c1 -> c2 172.30.0.3:9001, switched by the bridge", c2c),
    Scenario(
        "bridge-rst", "TCP c1 -> 172.30.0.1:9002 (bridge address), no listener: RST", bridge_rst
    ),
    Scenario("c1-host", "TCP c1 -> 10.77.0.1:9003 (host's uplink address)", c1_host),
    Scenario("host-c1", "TCP host -> c1 172.30.0.2:9004", host_c1),
    Scenario("masquerade", "TCP c1 -> lan 10.77.0.2:9005, MASQUERADE to 10.77.0.1", masquerade),
    Scenario("dnat", "TCP lan -> 10.77.0.1:8080, DNAT to c1 172.30.0.2:80", dnat),
    Scenario(
        "hairpin", "TCP c2 -> 10.77.0.1:8080, DNAT to c1:80 + MASQUERADE to 172.30.0.1", hairpin
    ),
    Scenario(
        "hairpin-self", "TCP c1 -> 10.77.0.1:8080 -> c1:80 itself (hairpin port)", hairpin_self
    ),
    Scenario(
        "icmp-echo", "ICMP echo c1 -> lan 10.77.0.2, id 0x4c50 seq 1 and 2, masqueraded", icmp_echo
    ),
    Scenario(
        "icmp-error", "UDP c1 -> lan 10.77.0.2:9009 closed: ICMP port unreachable", icmp_error
    ),
    Scenario("udp", "UDP c1 -> lan 10.77.0.2:9010, one request one response, masqueraded", udp),
    Scenario("ipv6", "TCP c1 -> [fd00:30::3]:9011 (bridged), c1 -> [fd00:30::1]:9012 (host)", ipv6),
    Scenario(
        "burst", f"{BURST_SIZE} concurrent TCP c1 -> 10.77.0.2:9020, masqueraded", burst_masquerade
    ),
    Scenario(
        "log-options",
        f"TCP c1 -> 10.77.0.1:{OPTIONS_PORT}, the raw LOG rules printing every option",
        log_options,
    ),
    Scenario(
        "verdicts",
        f"TCP c1 -> lan :{DROPPED_PORT} dropped, :{RESET_PORT} rejected with a RST, UDP "
        f":{UNREACHABLE_PORT} rejected with ICMP, each after the FORWARD LOG rule",
        verdicts,
        host_rules=VERDICT_RULES,
    ),
]
