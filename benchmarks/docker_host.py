"""Netfilter LOG lines of a Docker host like the seed article's (`pc-baim`), one episode at a time.

An *episode* is what the kernel logs for one conversation: every packet of a TCP connection,
a DNS query, a ping, an ICMP error, a blocked scan. Each packet is logged at the hooks the
article's LOG rules sit on (raw PREROUTING, filter FORWARD/INPUT/OUTPUT, nat PREROUTING and
POSTROUTING), with what the kernel really shows there:

* TTL is decremented before FORWARD (ip_forward.c), not on a bridged (switched) frame;
* MASQUERADE is invisible on the NATing box (the nat POSTROUTING hop still shows the container's
  address), replies arrive addressed to eth0's address and show the container after de-NAT;
* nat-table hops log only the first packet of a connection;
* `MAC=` is the ingress frame's header (dst:src:type), absent on OUTPUT; PHYSIN/PHYSOUT name the
  veth ports of docker0 (br_netfilter);
* a Linux listener's SYN-ACK has `ID=0 DF`; ICMP errors carry `PREC=0xC0` and quote the packet.

Bodies are returned without the syslog header, each ending in the kernel's trailing space.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

ETH0_IP = "10.10.126.101"
ETH0_MAC = "2c:59:e5:01:98:28"
GATEWAY_IP = "10.10.126.1"
GATEWAY_MAC = "00:19:bb:5e:0a:86"
DOCKER0_IP = "172.17.0.1"
DOCKER0_MAC = "02:42:f9:f8:c9:ad"
APP_PORT = 12580  # the article's test port; the generator keeps it to a small share of traffic
SERVICE_PORTS = (80, 443, 443, 443, 5432, 6379, 8080, 9200, 3306, 27017, 8443, 25, 993)
PUBLISHED = ((8080, 80), (8443, 443), (15432, 5432), (16379, 6379))  # host port -> container port
P = "[TonyBai]-"  # every article prefix is glued to IN= with no space

# One delay in microseconds before each line: hops of one packet are microseconds apart.
HOP_GAP = (8, 90)
PACKET_GAP = (60, 40_000)


@dataclass(frozen=True, slots=True)
class Node:
    """A host on the wire: its IPv4 address, its MAC and, for containers, its docker0 port."""

    ip: str
    mac: str
    veth: str = ""
    ip6: str = ""


@dataclass(slots=True)
class Endpoint:
    """One side of a connection: the IP ID and TCP sequence counters the kernel would use."""

    node: Node
    port: int
    ip_id: int
    seq: int
    ttl: int = 64


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment of a conversation script: which side sends it, its flags, payload bytes."""

    reply: bool
    flags: str
    payload: int


@dataclass(frozen=True, slots=True)
class Sent:
    """A segment as sent: who sends it to whom, its IP LEN, IP ID and raw TCP window."""

    segment: Segment
    sender: Endpoint
    receiver: Endpoint
    length: int
    ip_id: int
    window: int


Line = tuple[int, str]  # (microseconds since the previous line, kernel message body)


def build_topology(rng: random.Random) -> tuple[list[Node], list[Node], list[Node]]:
    """The containers on docker0, the LAN peers, and the Internet hosts reached via the gateway."""
    containers = [
        Node(
            f"172.17.0.{i}",
            f"02:42:ac:11:00:{i:02x}",
            "veth" + "".join(rng.choice("0123456789abcdef") for _ in range(7)),
            f"2001:0db8:0001:0000:0000:0242:ac11:{i:04x}",
        )
        for i in range(2, 26)
    ]
    lan = [
        Node(f"10.10.126.{i}", f"00:1b:21:{i:02x}:{(i * 7) % 256:02x}:{(i * 13) % 256:02x}")
        for i in range(150, 200)
    ]
    internet = [
        Node(f"{net}.{i}", GATEWAY_MAC, "", f"2001:0db8:00ff:{i:04x}:0000:0000:0000:{i * 3:04x}")
        for net in ("203.0.113", "198.51.100", "192.0.2")
        for i in range(10, 60)
    ]
    return containers, lan, internet


def mac_header(dst_mac: str, src_mac: str, ethertype: str = "08:00") -> str:
    """The `MAC=` token: the ingress frame's destination, source and ethertype."""
    return f"MAC={dst_mac}:{src_mac}:{ethertype} "


def ipv4_part(
    src: str, dst: str, length: int, ttl: int, ip_id: int, tos: int = 0, df: bool = True
) -> str:
    """SRC..ID and DF as nf_log_syslog prints them (TOS/PREC split from one byte, uppercase hex)."""
    flag = "DF " if df else ""
    return (
        f"SRC={src} DST={dst} LEN={length} TOS=0x{tos & 0x1E:02X} PREC=0x{tos & 0xE0:02X} "
        f"TTL={ttl} ID={ip_id} {flag}"
    )


def tcp_part(sport: int, dport: int, window: int, flags: str, seq: str = "", opt: str = "") -> str:
    """The TCP section; `seq` and `opt` only where a rule has --log-tcp-sequence/options."""
    return f"PROTO=TCP SPT={sport} DPT={dport} {seq}WINDOW={window} RES=0x00 {flags} URGP=0 {opt}"


def udp_part(sport: int, dport: int, payload: int) -> str:
    """The UDP section; its LEN is the UDP length, the IP LEN came before."""
    return f"PROTO=UDP SPT={sport} DPT={dport} LEN={payload + 8} "


def udp_quote(src: str, dst: str, ttl: int, ip_id: int, sport: int, dport: int, size: int) -> str:
    """The `[...]` an ICMP error quotes: the offending UDP datagram (no UID/MARK inside)."""
    ip = f"SRC={src} DST={dst} LEN={size + 28} TOS=0x00 PREC=0x00 TTL={ttl} ID={ip_id} "
    return f"[{ip}{udp_part(sport, dport, size)}] "


# Where a hop was logged: the article's rule prefixes with the interfaces that hook shows.
def raw_pre_docker0(veth: str) -> str:
    """raw PREROUTING of a frame a container sent into docker0."""
    return f"{P}RawPrerouting:IN=docker0 OUT= PHYSIN={veth} "


def fwd_to_eth0(veth: str) -> str:
    """filter FORWARD, container -> outside (FwdId0Ond0)."""
    return f"{P}FwdId0Ond0:IN=docker0 OUT=eth0 PHYSIN={veth} "


def nat_post(veth: str) -> str:
    """nat POSTROUTING before MASQUERADE: no IN, no MAC, but br_netfilter's PHYSIN."""
    return f"{P}NatPostRouting:IN= OUT=eth0 PHYSIN={veth} "


def input_docker0(veth: str) -> str:
    """filter INPUT of a frame docker0 handed up to the host stack."""
    return f"{P}FilterInput:IN=docker0 OUT= PHYSIN={veth} "


RAW_PRE_ETH0 = f"{P}RawPrerouting:IN=eth0 OUT= "
NAT_PRE_ETH0 = f"{P}NatPrerouting:IN=eth0 OUT= "
FWD_TO_DOCKER0 = f"{P}FwdOd0:IN=eth0 OUT=docker0 "
OUTPUT_DOCKER0 = f"{P}FilterOutput:IN= OUT=docker0 "
OUTPUT_ETH0 = f"{P}FilterOutput:IN= OUT=eth0 "
V6_PROBE = (
    "SRC=fe80:0000:0000:0000:0219:bbff:fe5e:0a86 DST=ff02:0000:0000:0000:0000:0001:ff00:0001 "
    "LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 "
)


class Journeys:
    """Draws episodes for the Docker host; `next_episode()` returns the lines of one of them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.containers, self.lan, self.internet = build_topology(rng)
        self.kinds: list[tuple[int, Callable[[], list[Line]]]] = [
            (30, self.container_to_remote_tcp),
            (10, self.container_to_container_tcp),
            (12, self.remote_to_published_tcp),
            (5, self.container_to_host_tcp),
            (5, self.host_to_container_tcp),
            (4, self.ssh_to_host),
            (12, self.dns_query),
            (5, self.ping),
            (3, self.icmp_errors),
            (4, self.ipv6_traffic),
            (8, self.blocked_scan),
            (1, self.conntrack_invalid),
        ]
        self.weights = [weight for weight, _ in self.kinds]

    # ---- helpers -------------------------------------------------------------------------
    def packet(self, where: str, body: str) -> Line:
        """The first hop of a packet: a longer pause since the previous packet."""
        return (self.rng.randint(*PACKET_GAP), where + body)

    def hop(self, where: str, body: str) -> Line:
        """A further hop of the same packet, microseconds later."""
        return (self.rng.randint(*HOP_GAP), where + body)

    def ephemeral(self) -> int:
        """A client port from Linux's default ephemeral range (never 12580)."""
        return self.rng.randint(32768, 60999)

    def service_port(self) -> int:
        """A destination port; the article's 12580 for about one connection in fifty."""
        if self.rng.random() < 0.02:
            return APP_PORT
        return self.rng.choice(SERVICE_PORTS)

    def endpoint(self, node: Node, port: int, ttl: int = 64) -> Endpoint:
        """A fresh socket with random initial IP ID and sequence number."""
        rng = self.rng
        return Endpoint(node, port, rng.randint(1, 65000), rng.randint(0, 2**32 - 1), ttl)

    def remote(self) -> tuple[Node, int]:
        """A LAN peer (TTL 64) or an Internet host (behind the gateway, fewer hops left)."""
        if self.rng.random() < 0.4:
            return self.rng.choice(self.lan), 64
        return self.rng.choice(self.internet), self.rng.randint(44, 58)

    def tcp_script(self, refused: bool = False) -> list[Segment]:
        """Handshake, a few request/response rounds, and an orderly close (or a refusal)."""
        if refused:
            return [Segment(False, "SYN", 0), Segment(True, "ACK RST", 0)]
        rng = self.rng
        script = [Segment(False, "SYN", 0), Segment(True, "ACK SYN", 0), Segment(False, "ACK", 0)]
        for _ in range(rng.randint(0, 3)):
            script += [
                Segment(False, "ACK PSH", rng.randint(20, 600)),
                Segment(True, "ACK", 0),
                Segment(True, "ACK PSH", rng.randint(40, 1400)),
                Segment(False, "ACK", 0),
            ]
        closing = [Segment(False, "ACK FIN", 0), Segment(True, "ACK FIN", 0)]
        return [*script, *closing, Segment(False, "ACK", 0)]

    def tcp_packets(self, script: list[Segment], client: Endpoint, server: Endpoint) -> list[Sent]:
        """Each segment with its sender, receiver, IP LEN, IP ID and window, counters advanced."""
        packets = []
        for segment in script:
            sender, receiver = (server, client) if segment.reply else (client, server)
            length, window = self.size_and_window(segment)
            if segment.flags in ("ACK SYN", "ACK RST"):
                ip_id = 0  # a listener's SYN-ACK and a kernel RST carry ID=0 with DF
            else:
                ip_id = sender.ip_id = (sender.ip_id + 1) & 0xFFFF
            packets.append(Sent(segment, sender, receiver, length, ip_id, window))
            step = segment.payload + ("SYN" in segment.flags or "FIN" in segment.flags)
            sender.seq = (sender.seq + step) & 0xFFFFFFFF
        return packets

    def size_and_window(self, segment: Segment) -> tuple[int, int]:
        """IP total length (20 + 20 + options + payload) and the raw, unscaled window."""
        if segment.flags == "SYN":
            return 60, self.rng.choice((64240, 29200))
        if segment.flags == "ACK SYN":
            return 60, self.rng.choice((65160, 28960))
        return 52 + segment.payload, self.rng.choice((229, 502, 501, 63))

    # ---- episodes ------------------------------------------------------------------------
    def next_episode(self) -> list[Line]:
        """The lines of one randomly chosen conversation."""
        ((_, make),) = self.rng.choices(self.kinds, self.weights)
        return make()

    def container_to_remote_tcp(self) -> list[Line]:
        """Journey 5: container -> LAN/Internet through FORWARD and MASQUERADE."""
        rng = self.rng
        box, (far, far_ttl) = rng.choice(self.containers), self.remote()
        client = self.endpoint(box, self.ephemeral())
        server = self.endpoint(far, self.service_port(), far_ttl)
        tos, marked, first = rng.choice((0x00, 0x10)), rng.random() < 0.15, True
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(rng.random() < 0.05), client, server):
            if sent.segment.reply:
                lines += self.masqueraded_reply(sent, box, far, client.port, server.port)
                continue
            length, ip_id = sent.length, sent.ip_id
            mac = mac_header(DOCKER0_MAC, box.mac)
            l4 = tcp_part(client.port, server.port, sent.window, sent.segment.flags)
            routed = ipv4_part(box.ip, far.ip, length, 63, ip_id, tos) + l4
            lines.append(
                self.packet(
                    raw_pre_docker0(box.veth),
                    mac + ipv4_part(box.ip, far.ip, length, 64, ip_id, tos) + l4,
                )
            )
            lines.append(self.hop(fwd_to_eth0(box.veth), mac + routed))
            if marked:
                where = f"{P}ManglePost:IN= OUT=eth0 PHYSIN={box.veth} "
                lines.append(self.hop(where, routed + "MARK=0x2a "))
            if first:  # nat chains see only the first packet; MASQUERADE acts after this LOG
                lines.append(self.hop(nat_post(box.veth), routed))
                first = False
        return lines

    def masqueraded_reply(
        self, sent: Sent, box: Node, far: Node, cport: int, sport: int
    ) -> list[Line]:
        """A reply arrives for eth0's address; FORWARD shows the container after de-MASQUERADE."""
        mac = mac_header(ETH0_MAC, far.mac)
        l4 = tcp_part(sport, cport, sent.window, sent.segment.flags)
        ttl, length, ip_id = sent.sender.ttl, sent.length, sent.ip_id
        return [
            self.packet(RAW_PRE_ETH0, mac + ipv4_part(far.ip, ETH0_IP, length, ttl, ip_id) + l4),
            self.hop(FWD_TO_DOCKER0, mac + ipv4_part(far.ip, box.ip, length, ttl - 1, ip_id) + l4),
        ]

    def container_to_container_tcp(self) -> list[Line]:
        """Journey 1: both ends on docker0; the bridge switches the frame, TTL stays 64."""
        rng = self.rng
        a, b = rng.sample(self.containers, 2)
        client, server = self.endpoint(a, self.ephemeral()), self.endpoint(b, self.service_port())
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(rng.random() < 0.05), client, server):
            src, dst = sent.sender.node, sent.receiver.node
            l4 = tcp_part(sent.sender.port, sent.receiver.port, sent.window, sent.segment.flags)
            body = (
                mac_header(dst.mac, src.mac)
                + ipv4_part(src.ip, dst.ip, sent.length, 64, sent.ip_id)
                + l4
            )
            chain = "FwdOd0" if sent.segment.reply else "FwdId0Od0"
            where = f"{P}{chain}:IN=docker0 OUT=docker0 PHYSIN={src.veth} PHYSOUT={dst.veth} "
            lines += [self.packet(raw_pre_docker0(src.veth), body), self.hop(where, body)]
        return lines

    def remote_to_published_tcp(self) -> list[Line]:
        """A LAN/Internet client reaches a published port: DNAT in nat PREROUTING, then FORWARD."""
        rng = self.rng
        box, (far, ttl) = rng.choice(self.containers), self.remote()
        host_port, box_port = rng.choice(PUBLISHED)
        client, server = self.endpoint(far, self.ephemeral(), ttl), self.endpoint(box, box_port)
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(), client, server):
            flags, length, ip_id = sent.segment.flags, sent.length, sent.ip_id
            if sent.segment.reply:  # un-DNAT of the reply happens in POSTROUTING, after these hops
                mac = mac_header(DOCKER0_MAC, box.mac)
                l4 = tcp_part(box_port, client.port, sent.window, flags)
                lines.append(
                    self.packet(
                        raw_pre_docker0(box.veth),
                        mac + ipv4_part(box.ip, far.ip, length, 64, ip_id) + l4,
                    )
                )
                lines.append(
                    self.hop(
                        fwd_to_eth0(box.veth),
                        mac + ipv4_part(box.ip, far.ip, length, 63, ip_id) + l4,
                    )
                )
                continue
            mac = mac_header(ETH0_MAC, far.mac)
            before = mac + ipv4_part(far.ip, ETH0_IP, length, ttl, ip_id)
            before += tcp_part(client.port, host_port, sent.window, flags)
            lines.append(self.packet(RAW_PRE_ETH0, before))
            if flags == "SYN":
                lines.append(self.hop(NAT_PRE_ETH0, before))
            after = mac + ipv4_part(far.ip, box.ip, length, ttl - 1, ip_id)
            lines.append(
                self.hop(
                    FWD_TO_DOCKER0, after + tcp_part(client.port, box_port, sent.window, flags)
                )
            )
        return lines

    def container_to_host_tcp(self) -> list[Line]:
        """Journeys 2/3: a container talks to the host (docker0 acts as the host's NIC)."""
        rng = self.rng
        box = rng.choice(self.containers)
        host = Node(rng.choice((DOCKER0_IP, ETH0_IP)), DOCKER0_MAC)
        client = self.endpoint(box, self.ephemeral())
        server = self.endpoint(host, rng.choice((APP_PORT, 2375, 9100, 53, 8125)))
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(rng.random() < 0.2), client, server):
            flags = sent.segment.flags
            if sent.segment.reply:
                full_socket = flags not in ("ACK SYN", "ACK RST") and rng.random() < 0.5
                body = ipv4_part(host.ip, box.ip, sent.length, 64, sent.ip_id)
                body += tcp_part(server.port, client.port, sent.window, flags)
                lines.append(
                    self.packet(OUTPUT_DOCKER0, body + ("UID=0 GID=0 " if full_socket else ""))
                )
                continue
            body = mac_header(DOCKER0_MAC, box.mac) + ipv4_part(
                box.ip, host.ip, sent.length, 64, sent.ip_id, 0x10
            )
            body += tcp_part(client.port, server.port, sent.window, flags)
            lines += [
                self.packet(raw_pre_docker0(box.veth), body),
                self.hop(input_docker0(box.veth), body),
            ]
        return lines

    def host_to_container_tcp(self) -> list[Line]:
        """Journey 4: the host opens a connection to a container from 172.17.0.1."""
        rng = self.rng
        box = rng.choice(self.containers)
        client = self.endpoint(Node(DOCKER0_IP, DOCKER0_MAC), self.ephemeral())
        server = self.endpoint(box, self.service_port())
        uid = rng.choice(("", "UID=0 GID=0 ", "UID=1000 GID=1000 "))
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(), client, server):
            flags = sent.segment.flags
            if not sent.segment.reply:
                body = ipv4_part(DOCKER0_IP, box.ip, sent.length, 64, sent.ip_id, 0x10)
                body += tcp_part(client.port, server.port, sent.window, flags)
                lines.append(self.packet(OUTPUT_DOCKER0, body + uid))
                continue
            body = mac_header(DOCKER0_MAC, box.mac) + ipv4_part(
                box.ip, DOCKER0_IP, sent.length, 64, sent.ip_id
            )
            body += tcp_part(server.port, client.port, sent.window, flags)
            lines += [
                self.packet(raw_pre_docker0(box.veth), body),
                self.hop(input_docker0(box.veth), body),
            ]
        return lines

    def ssh_to_host(self) -> list[Line]:
        """A LAN admin's ssh session, logged by a rule with --log-tcp-sequence/--log-tcp-options."""
        rng = self.rng
        far = rng.choice(self.lan)
        client = self.endpoint(far, self.ephemeral())
        server = self.endpoint(Node(ETH0_IP, ETH0_MAC), 22)
        lines: list[Line] = []
        for sent in self.tcp_packets(self.tcp_script(), client, server):
            flags = sent.segment.flags
            ack = sent.receiver.seq if "ACK" in flags else 0  # a bare SYN logs ACK=0
            seq = f"SEQ={sent.sender.seq} ACK={ack} "
            opt = ""
            if "SYN" in flags:
                echo = 0 if flags == "SYN" else rng.getrandbits(32)
                opt = f"OPT (020405B40402080A{rng.getrandbits(32):08X}{echo:08X}01030307) "
            ports = (sent.sender.port, sent.receiver.port)
            l4 = tcp_part(*ports, sent.window, flags, seq, opt)
            if sent.segment.reply:
                uid = "" if flags == "ACK SYN" else "UID=0 GID=0 "  # request socket: no owner
                body = ipv4_part(ETH0_IP, far.ip, sent.length, 64, sent.ip_id, 0x10) + l4 + uid
                lines.append(self.packet(f"{P}OutputSsh:IN= OUT=eth0 ", body))
            else:
                body = (
                    mac_header(ETH0_MAC, far.mac)
                    + ipv4_part(far.ip, ETH0_IP, sent.length, 64, sent.ip_id, 0x10)
                    + l4
                )
                lines.append(self.packet(f"{P}InputSsh:IN=eth0 OUT= ", body))
        return lines

    def dns_query(self) -> list[Line]:
        """A container's DNS query to the gateway's resolver, masqueraded, and its answer."""
        rng = self.rng
        box = rng.choice(self.containers)
        sport, query, answer = self.ephemeral(), rng.randint(20, 60), rng.randint(40, 300)
        id_q, id_a = rng.randint(1, 65535), rng.randint(1, 65535)
        mac, back_mac = mac_header(DOCKER0_MAC, box.mac), mac_header(ETH0_MAC, GATEWAY_MAC)
        out_l4, back_l4 = udp_part(sport, 53, query), udp_part(53, sport, answer)
        routed = ipv4_part(box.ip, GATEWAY_IP, query + 28, 63, id_q, df=False) + out_l4
        return [
            self.packet(
                raw_pre_docker0(box.veth),
                mac + ipv4_part(box.ip, GATEWAY_IP, query + 28, 64, id_q, df=False) + out_l4,
            ),
            self.hop(fwd_to_eth0(box.veth), mac + routed),
            self.hop(nat_post(box.veth), routed),
            self.packet(
                RAW_PRE_ETH0,
                back_mac
                + ipv4_part(GATEWAY_IP, ETH0_IP, answer + 28, 64, id_a, df=False)
                + back_l4,
            ),
            self.hop(
                FWD_TO_DOCKER0,
                back_mac + ipv4_part(GATEWAY_IP, box.ip, answer + 28, 63, id_a, df=False) + back_l4,
            ),
        ]

    def ping(self) -> list[Line]:
        """A container pings a LAN peer: echo requests and replies (ID= appears twice)."""
        rng = self.rng
        box, far = rng.choice(self.containers), rng.choice(self.lan)
        ident, ip_id = rng.randint(1, 65535), rng.randint(1, 65000)
        mac, back = mac_header(DOCKER0_MAC, box.mac), mac_header(ETH0_MAC, far.mac)
        lines: list[Line] = []
        for seq in range(1, rng.randint(2, 5)):
            ip_id, reply_id = ip_id + 1, rng.randint(1, 65000)
            echo = f"PROTO=ICMP TYPE=8 CODE=0 ID={ident} SEQ={seq} "
            reply = f"PROTO=ICMP TYPE=0 CODE=0 ID={ident} SEQ={seq} "
            lines += [
                self.packet(
                    raw_pre_docker0(box.veth), mac + ipv4_part(box.ip, far.ip, 84, 64, ip_id) + echo
                ),
                self.hop(
                    fwd_to_eth0(box.veth), mac + ipv4_part(box.ip, far.ip, 84, 63, ip_id) + echo
                ),
                self.packet(
                    RAW_PRE_ETH0,
                    back + ipv4_part(far.ip, ETH0_IP, 84, 64, reply_id, df=False) + reply,
                ),
                self.hop(
                    FWD_TO_DOCKER0,
                    back + ipv4_part(far.ip, box.ip, 84, 63, reply_id, df=False) + reply,
                ),
            ]
        return lines

    def icmp_errors(self) -> list[Line]:
        """Port unreachable (peer, host), time exceeded, frag needed: each quotes a packet."""
        rng = self.rng
        box, far = rng.choice(self.containers), rng.choice(self.lan)
        sport, dport, probe = self.ephemeral(), rng.randint(33434, 33534), rng.randint(1, 65000)
        err_id, host_id = rng.randint(1, 65000), rng.randint(1, 65000)
        back, via_gateway = mac_header(ETH0_MAC, far.mac), mac_header(ETH0_MAC, GATEWAY_MAC)
        unreachable = "PROTO=ICMP TYPE=3 CODE=3 "
        # The peer quotes the masqueraded packet; conntrack de-NATs the quote with the error.
        quote_out = udp_quote(ETH0_IP, far.ip, 63, probe, sport, dport, 12)
        quote_in = udp_quote(box.ip, far.ip, 63, probe, sport, dport, 12)
        snmp = udp_quote(far.ip, ETH0_IP, 64, probe + 1, self.ephemeral(), 161, 0)
        traced = udp_quote(ETH0_IP, "203.0.113.77", 1, probe + 2, sport, dport, 32)
        big = f"[SRC={ETH0_IP} DST=198.51.100.20 LEN=1500 TOS=0x00 PREC=0x00 TTL=63 "
        big += f"ID={probe + 3} DF "
        big += tcp_part(
            sport, 443, 502, "ACK PSH", f"SEQ={rng.getrandbits(32)} ACK={rng.getrandbits(32)} "
        )
        return [
            self.packet(
                RAW_PRE_ETH0,
                back
                + ipv4_part(far.ip, ETH0_IP, 68, 64, err_id, 0xC0, df=False)
                + unreachable
                + quote_out,
            ),
            self.hop(
                FWD_TO_DOCKER0,
                back
                + ipv4_part(far.ip, box.ip, 68, 63, err_id, 0xC0, df=False)
                + unreachable
                + quote_in,
            ),
            self.packet(
                OUTPUT_ETH0,
                ipv4_part(ETH0_IP, far.ip, 56, 64, host_id, 0xC0, df=False) + unreachable + snmp,
            ),
            self.packet(
                RAW_PRE_ETH0,
                via_gateway
                + ipv4_part(GATEWAY_IP, ETH0_IP, 88, 64, host_id + 1, 0xC0, df=False)
                + "PROTO=ICMP TYPE=11 CODE=0 "
                + traced,
            ),
            self.packet(
                RAW_PRE_ETH0,
                via_gateway
                + ipv4_part(GATEWAY_IP, ETH0_IP, 576, 64, host_id + 2, 0xC0, df=False)
                + "PROTO=ICMP TYPE=3 CODE=4 "
                + big
                + "] MTU=1400 ",
            ),
        ]

    def ipv6_traffic(self) -> list[Line]:
        """IPv6 through docker0 (2001:db8:1::/64): TCP handshake, ICMPv6 echo, a neighbour probe."""
        rng = self.rng
        box, far = rng.choice(self.containers), rng.choice(self.internet)
        sport, dport, ident = self.ephemeral(), self.service_port(), rng.randint(1, 65535)
        label, back_label = rng.randint(0, 0xFFFFF), rng.randint(0, 0xFFFFF)
        out = f"SRC={box.ip6} DST={far.ip6} LEN={{}} TC=0 HOPLIMIT={{}} FLOWLBL={label} "
        back = f"SRC={far.ip6} DST={box.ip6} LEN={{}} TC=0 HOPLIMIT={{}} FLOWLBL={back_label} "
        mac, back_mac = (
            mac_header(DOCKER0_MAC, box.mac, "86:dd"),
            mac_header(ETH0_MAC, GATEWAY_MAC, "86:dd"),
        )
        syn, synack = tcp_part(sport, dport, 64800, "SYN"), tcp_part(dport, sport, 64260, "ACK SYN")
        multicast = mac_header("33:33:ff:00:00:01", GATEWAY_MAC, "86:dd")
        return [
            self.packet(raw_pre_docker0(box.veth), mac + out.format(80, 64) + syn),
            self.hop(fwd_to_eth0(box.veth), mac + out.format(80, 63) + syn),
            self.packet(RAW_PRE_ETH0, back_mac + back.format(80, 55) + synack),
            self.hop(FWD_TO_DOCKER0, back_mac + back.format(80, 54) + synack),
            self.packet(
                fwd_to_eth0(box.veth),
                mac + out.format(104, 63) + f"PROTO=ICMPv6 TYPE=128 CODE=0 ID={ident} SEQ=1 ",
            ),
            self.packet(
                FWD_TO_DOCKER0,
                back_mac + back.format(104, 54) + f"PROTO=ICMPv6 TYPE=129 CODE=0 ID={ident} SEQ=1 ",
            ),
            self.packet("IN=eth0 OUT= ", multicast + V6_PROBE),  # nft `log` with no prefix
        ]

    def blocked_scan(self) -> list[Line]:
        """Internet scanners hitting closed ports: ufw-style and odd or empty prefixes."""
        rng = self.rng
        lines: list[Line] = []
        for _ in range(rng.randint(1, 4)):
            far = rng.choice(self.internet)
            dport = rng.randint(1, 65535)
            dport += dport == APP_PORT  # keep --port 12580 to the article's traffic
            prefix = rng.choice(
                ("[UFW BLOCK] ", "[UFW BLOCK] ", "", "DROP IN=eth0: ", "scan-drop:")
            )
            ip = ipv4_part(
                far.ip, ETH0_IP, 40, rng.randint(40, 250), rng.randint(1, 65000), df=False
            )
            l4 = tcp_part(self.ephemeral(), dport, 1024, "SYN")
            delay = rng.randint(*PACKET_GAP) * 20
            lines.append(
                (delay, f"{prefix}IN=eth0 OUT= {mac_header(ETH0_MAC, GATEWAY_MAC)}{ip}{l4}")
            )
        return lines

    def conntrack_invalid(self) -> list[Line]:
        """nf_conntrack's own "invalid" diagnostics (logged with the TCP sequence numbers)."""
        rng = self.rng
        far = rng.choice(self.internet)
        ip = ipv4_part(far.ip, ETH0_IP, 40, 50, rng.randint(1, 65000), df=False)
        seq = f"SEQ={rng.getrandbits(32)} ACK=0 "
        l4 = tcp_part(rng.randint(1024, 65535), 443, 8192, "SYN FIN", seq)
        where = "nf_ct_proto_6: invalid tcp flag combination IN=eth0 OUT= "
        return [self.packet(where, mac_header(ETH0_MAC, GATEWAY_MAC) + ip + l4)]
