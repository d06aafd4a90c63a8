"""Write a realistic Docker-host syslog by replaying the lab's genuine kernel captures (issue 10).

generate_syslog.py draws its own mix of synthetic episodes; this file is built from the lines
the kernel really wrote in the one-host lab (samples/lab/*.log, see its README): every
netfilter line is a captured line with only what must change for a new connection replaced.

* The host's LOG rules are the lab's minus the raw and mangle tables: filter and nat in every
  chain, plus raw PREROUTING for what arrives on the uplink (`-i up0`). A LOG rule changes no
  packet, so keeping only the lines those chains logged is what such a host would have written.
* Each replayed connection gets a fresh client port (or ICMP echo id), fresh IP IDs (one
  offset for the whole connection, so an ICMP error still quotes its datagram's ID), fresh
  IPv6 flow labels and, for the peers on the uplink's LAN, one of 253 addresses with the MAC
  the lab's addressing gives it (02:00 + the IPv4 address). Lab service ports become real
  ones: the published port 8080 (DNAT to the container's port 80) is 12580; a client's
  (address, port) is not reused within REUSE_US, longer than logpath's TCP idle timeout.
* Times: the hops of one packet keep their captured microsecond spacing; between packets the
  captured gap is kept and a LAN round trip, the server's think time and, before the first
  FIN, a keep-alive idle time are added, so connections last seconds and many overlap.
  Connections arrive as a Poisson process whose rate swells and ebbs over the file, with a
  few 45-second storms of connections to port 12580; the lab's `burst` (200 connections
  opened at once) is replayed whole now and then.
* About 40% of the lines are generate_syslog.py's ordinary daemon and kernel messages, spread
  evenly in time. Times and kernel uptimes only increase; one seed always gives the same bytes.

`OUT.meta.json` holds the truth for checking logpath: lines, netfilter lines, connections by
kind, by protocol/service port and by family, how many were open at once, and three questions
with their true answers: a 21-second window (`--since T --until T+20s`, both ends inclusive at
the syslog's one-second resolution) in the busiest traffic, a window holding about 1,000
connections (for `report`), and one 2-packet connection (for `journey`).

    python benchmarks/replay_syslog.py benchmarks/out/replay.log --lines 2000000 --seed 1
    python benchmarks/replay_syslog.py benchmarks/out/dense.log --lines 1200000 --per-second 45000

`--per-second` packs the same episodes into less time: the second line gives ~16,000 lines a
second of the log's own time, ~2,000 connections open at once (a live view's real load).
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_syslog import CHUNK_LINES, Clock, ordinary_message

LAB = Path(__file__).resolve().parent.parent / "samples" / "lab"
NETFILTER_SHARE = 0.6
SERVICE_PORT = 12580
HOURS_PER_2M_LINES = 6.0  # the file covers 6 hours per 2,000,000 lines (shorter when smaller)
STORMS_PER_2M_LINES = 4
STORM_SECONDS = 45.0
STORM_RATE = 70.0  # connections per second to 12580 during a storm
EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
REUSE_US = 660_000_000  # a client's (address, port) rests 11 minutes: > logpath's 600 s TCP idle
PEER = "10.77.0.2"  # the lab's one LAN host, replayed as many
PEER_MAC = "02:00:0a:4d:00:02"
SERVERS = range(2, 21)  # LAN servers the containers reach: 10.77.0.2-20
CLIENTS = range(21, 255)  # LAN clients of the published port: 10.77.0.21-254
HEADER = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: \[\s*(\d+)\.(\d{6})\] (.*)$")


@dataclass(frozen=True, slots=True)
class Capture:
    """One lab capture replayed as an episode: its lab service ports and what they become."""

    name: str
    weight: float  # episodes per 100 of the background traffic
    services: dict[int, tuple[int, ...]]  # lab port -> ports it is replayed as (drawn per conn)
    idle_mean_s: float = 1.0  # mean keep-alive idle before the server closes
    peer: bool = False  # the lab's LAN host takes part (its address is replayed)


# The background mix, in episodes. Lines per connection: dnat and masquerade 17, the other TCP
# 12, IPv6 TCP 10, ICMP echo 8, UDP 5, a refused connection 4; with the storms ~12.3 a
# connection: 2M lines hold ~97,000 connections, about half of them to 12580 (issue 10).
CAPTURES = (
    Capture("dnat", 44, {8080: (SERVICE_PORT,), 80: (80,)}, idle_mean_s=5.0, peer=True),
    Capture("hairpin", 3, {8080: (SERVICE_PORT,), 80: (80,)}, idle_mean_s=5.0),
    Capture("hairpin-self", 1, {8080: (SERVICE_PORT,), 80: (80,)}, idle_mean_s=5.0),
    Capture("masquerade", 5, {9005: (443, 443, 443, 80, 5432, 6379, 25)}, peer=True),
    Capture("c2c", 7, {9001: (5432, 5432, 6379, 3306, 9200, 27017)}),
    Capture("c1-host", 3, {9003: (9100, 2375, 8500)}),
    Capture("host-c1", 3, {9004: (9090, 8081)}),
    Capture("bridge-rst", 4, {9002: (9323, 2376, 8125)}),
    Capture("udp", 34, {9010: (53,)}, peer=True),
    Capture("icmp-echo", 4, {}, peer=True),
    Capture("icmp-error", 2, {9009: (514, 123, 161)}, peer=True),
    Capture("ipv6", 1.5, {9011: (5432, 6379), 9012: (9100, 8500)}),
    Capture("burst", 0.012, {9020: (9200, 443, 6379)}, peer=True),  # ~10 bursts in 2M lines
)
STORM = 0  # the storms replay CAPTURES[0], clients of the published port


def logged(body: str) -> bool:
    """Whether the replayed host's LOG rules log this captured hop (see the module doc)."""
    table, hook = body.split(":", 3)[1:3]
    return table in ("filter", "nat") or (table == "raw" and hook == "pre" and " IN=up0 " in body)


# ---- templates: a capture cut into connections, each kept line a format string -------------


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured packet: when its first hop was logged (from its connection's first hop)
    and what decides the time before it in a replay."""

    at_us: int
    from_uplink: bool  # arrived on up0: a LAN round trip after what the host last sent there
    answer: bool  # the server's data (TCP PSH) or a UDP answer: after the server's think time
    first_fin: bool  # the first FIN of the connection: after the keep-alive idle time
    echo_request: bool  # a second ping: one second after the first


@dataclass(slots=True)
class Connection:
    """One captured connection: its packets and its kept lines (packet, µs into the packet,
    text). The text is a format string: {cport} the client port, {ident} the echo id,
    {peer}/{mac} the LAN host, {s<lab port>} a service port, {i<lab ID>} an IP ID,
    {l<lab label>} an IPv6 flow label."""

    client_port: int  # the client's port, or the echo id
    proto: str
    family: int
    lab_dport: int  # the service port the client addressed in the lab (0: ICMP echo)
    start_us: int  # its first hop, from the capture's first line
    packets: list[Packet] = field(default_factory=list)
    lines: list[tuple[int, int, str]] = field(default_factory=list)
    ip_ids: set[int] = field(default_factory=set)
    labels: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Template:
    """A capture ready for replay: its connections in the order they started."""

    capture: Capture
    connections: tuple[Connection, ...]
    lines: int  # netfilter lines one replay writes


def load_template(capture: Capture) -> Template:
    """Read samples/lab/<name>.log and cut it into connections (by client port or echo id)."""
    rows = []
    for text in (LAB / f"{capture.name}.log").read_text(encoding="ascii").splitlines():
        found = HEADER.match(text)
        if found is None:
            raise SystemExit(f"{capture.name}.log: not a kernel syslog line: {text[:80]!r}")
        rows.append((int(found.group(1)) * 1_000_000 + int(found.group(2)), found.group(3)))
    origin = rows[0][0]
    connections: dict[int, Connection] = {}
    # per connection: signature -> (packet index, where its first hop was logged); hops of two
    # packets may interleave (the lab host had two CPUs), so adjacency does not tell packets
    seen: dict[int, dict[object, tuple[int, str]]] = {}
    for uptime, body in rows:
        outer, inner = _fields(body)
        conn = _connection_of(outer, inner, capture, connections, uptime - origin)
        signature = (outer.get("ID", outer.get("FLOWLBL")), outer["LEN"], _what(body))
        prefix = body.split(" ", 1)[0]
        packets = seen.setdefault(conn.client_port, {})
        known = packets.get(signature)
        if known is None or known[1] == prefix:  # new, or logged at its first place again: resent
            packets[signature] = (len(conn.packets), prefix)
            conn.packets.append(_packet(body, outer, conn, uptime - origin - conn.start_us))
        index = packets[signature][0]
        if logged(body):
            at = uptime - origin - conn.start_us - conn.packets[index].at_us
            conn.lines.append((index, at, _format(body, conn, capture)))
    ordered = tuple(sorted(connections.values(), key=lambda c: c.start_us))
    return Template(capture, ordered, sum(len(c.lines) for c in ordered))


def _fields(body: str) -> tuple[dict[str, str], dict[str, str]]:
    """KEY=VALUE of a line outside and inside an ICMP error's quote; the ICMP echo id (the
    ID= followed by SEQ=) as ID#echo."""
    outer, _, inner = body.partition(" [")
    return _pairs(outer), _pairs(inner)


def _pairs(text: str) -> dict[str, str]:
    tokens = text.split(" ")
    pairs = {}
    for i, token in enumerate(tokens):
        key, eq, value = token.partition("=")
        if eq:
            echo = key == "ID" and i + 1 < len(tokens) and tokens[i + 1].startswith("SEQ=")
            pairs["ID#echo" if echo else key] = value
    return pairs


def _connection_of(
    outer: dict[str, str],
    inner: dict[str, str],
    capture: Capture,
    known: dict[int, Connection],
    offset: int,
) -> Connection:
    """The connection a captured line belongs to: by the port that is not a service port
    (an ICMP error's by the datagram it quotes), an echo by its id."""
    ports = outer if "SPT" in outer else inner
    if "SPT" in ports:
        sport, dport = int(ports["SPT"]), int(ports["DPT"])
        client, server = (dport, sport) if sport in capture.services else (sport, dport)
        proto = ports["PROTO"].lower()
    else:
        client, server, proto = int(outer["ID#echo"]), 0, "icmp"
    if client not in known:
        family = 6 if "FLOWLBL" in outer else 4
        known[client] = Connection(client, proto, family, server, offset)
    return known[client]


def _what(body: str) -> str:
    """A packet's TCP flags or ICMP type, code and sequence: with the IP ID and length, what
    tells the packets of one connection apart (a SYN-ACK and a RST both carry ID=0)."""
    if " URGP=" in body:
        return body.split(" RES=", 1)[1].split(" URGP=", 1)[0]
    if " TYPE=" in body:
        return body.split(" TYPE=", 1)[1].split(" [", 1)[0]
    return ""


def _packet(body: str, outer: dict[str, str], conn: Connection, at_us: int) -> Packet:
    """What a packet's first hop tells about the time before it."""
    flags = _what(body).split() if " URGP=" in body else []
    from_client = outer.get("SPT") == str(conn.client_port) or outer.get("TYPE") == "8"
    data = "PSH" in flags or outer.get("PROTO") == "UDP"  # an ICMP error is no answer
    return Packet(
        at_us,
        from_uplink=" IN=up0 " in body,
        answer=data and not from_client,
        first_fin="FIN" in flags and not any(p.first_fin for p in conn.packets),
        echo_request=outer.get("TYPE") == "8" and bool(conn.packets),
    )


def _format(body: str, conn: Connection, capture: Capture) -> str:
    """The captured line as a format string with the connection's own values as fields."""
    tokens = body.replace("{", "{{").replace("}", "}}").split(" ")
    for i, token in enumerate(tokens):
        lead = "[" if token.startswith("[") else ""
        key, eq, value = token.removeprefix(lead).partition("=")
        if not eq:
            continue
        if key in ("SRC", "DST") and value == PEER and capture.peer:
            tokens[i] = f"{lead}{key}={{peer}}"
        elif key == "MAC" and PEER_MAC in value and capture.peer:
            tokens[i] = token.replace(PEER_MAC, "{mac}")
        elif key in ("SPT", "DPT") and int(value) == conn.client_port:
            tokens[i] = f"{lead}{key}={{cport}}"
        elif key in ("SPT", "DPT") and capture.services.get(int(value), (int(value),)) != (
            int(value),
        ):
            tokens[i] = f"{lead}{key}={{s{value}}}"
        elif key == "ID" and i + 1 < len(tokens) and tokens[i + 1].startswith("SEQ="):
            tokens[i] = "ID={ident}"
        elif key == "ID" and value != "0":  # ID=0 (SYN-ACK, RST with DF) stays 0
            conn.ip_ids.add(int(value))
            tokens[i] = f"{lead}ID={{i{value}}}"
        elif key == "FLOWLBL":
            conn.labels.add(int(value))
            tokens[i] = f"FLOWLBL={{l{value}}}"
    return " ".join(tokens)


# ---- replay: fresh values and times for each connection ----------------------------------


@dataclass(slots=True)
class Replayed:
    """What the truth needs of one replayed connection."""

    kind: str
    proto: str
    family: int
    dport: int  # the service port as the client addressed it (0: ICMP echo)
    client: str
    client_port: int
    first_us: int
    last_us: int
    seconds: list[int] = field(default_factory=list)  # syslog seconds of its lines, as written


class Replayer:
    """Turns templates into the lines of new connections: fresh ports, ids, labels, times."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rests: dict[tuple[str, str], dict[int, int]] = {}  # (client, proto) -> port -> µs
        self.connections: list[Replayed] = []
        self.first_us = self.last_us = 0  # the file's first and last lines
        self.netfilter_lines = 0

    def episode(self, template: Template, start_us: int) -> list[tuple[int, int, str]]:
        """(µs, connection number, text) of every kept line of one replay of the capture."""
        rng, capture = self.rng, template.capture
        services = {lab: rng.choice(ports) for lab, ports in capture.services.items()}
        values: dict[str, object] = {f"s{lab}": port for lab, port in services.items()}
        peer = 0
        if capture.peer:  # the LAN host is the client of the published port, else a server
            peer = rng.choice(CLIENTS if capture.name == "dnat" else SERVERS)
            values |= {"peer": f"10.77.0.{peer}", "mac": f"02:00:0a:4d:00:{peer:02x}"}
        out = []
        for conn in template.connections:
            first = start_us + conn.start_us
            starts = self.timeline(conn, capture)
            times = [first + starts[packet] + at for packet, at, _ in conn.lines]
            client = f"10.77.0.{peer}" if capture.name == "dnat" else "local"
            port = self.fresh_port(client, conn.proto, first, max(times))
            offset = rng.randrange(65535)
            own = values | {"cport": port, "ident": port}
            own |= {f"i{n}": (n - 1 + offset) % 65535 + 1 for n in conn.ip_ids}
            own |= {f"l{n}": rng.getrandbits(20) for n in conn.labels}
            number = len(self.connections)
            dport = services.get(conn.lab_dport, conn.lab_dport)
            self.connections.append(
                Replayed(
                    capture.name, conn.proto, conn.family, dport, client, port, first, max(times)
                )
            )
            out += [
                (when, number, text.format_map(own))
                for when, (_, _, text) in zip(times, conn.lines, strict=True)
            ]
        return out

    def timeline(self, conn: Connection, capture: Capture) -> list[int]:
        """When each packet starts, from the connection's first: the captured gap plus a LAN
        round trip when the uplink answers, the server's think time before its answer, the
        keep-alive idle time before the first FIN, a second between pings."""
        rng = self.rng
        rtt = min(int(rng.lognormvariate(math.log(400), 0.6)), 20_000)
        think = min(int(rng.lognormvariate(math.log(2_000), 1.0)), 2_000_000)
        idle = min(int(rng.expovariate(1 / capture.idle_mean_s) * 1e6), 60_000_000)
        starts = [0]
        for before, packet in itertools.pairwise(conn.packets):
            gap = packet.at_us - before.at_us
            gap += rtt if packet.from_uplink and not before.from_uplink else 0
            gap += think if packet.answer else 0
            gap += idle if packet.first_fin else 0
            gap += rng.randint(990_000, 1_010_000) if packet.echo_request else 0
            starts.append(starts[-1] + gap)
        return starts

    def fresh_port(self, client: str, proto: str, first: int, last: int) -> int:
        """A client port (or echo id) this client has not used for REUSE_US: connections stay
        distinct to conntrack and to logpath (its TCP idle timeout is 600 s)."""
        rests = self.rests.setdefault((client, proto), {})
        low, high = (1, 65535) if proto == "icmp" else EPHEMERAL
        for _ in range(10_000):
            port = self.rng.randint(low, high)
            if rests.get(port, -1) < first:
                rests[port] = last + REUSE_US
                return port
        raise SystemExit(f"{client} {proto}: no port free for 11 minutes (too many connections)")


# ---- the plan: which capture is replayed when ----------------------------------------------


def plan(
    lines: int, rng: random.Random, templates: list[Template], per_second: float = 0.0
) -> list[tuple[int, int]]:
    """(start µs from the file's start, template number) of every episode, in time order.

    Background episodes arrive as a Poisson process whose rate swells and ebbs (one and a half
    cycles over the file); storms of connections to 12580 come on top. Episodes are drawn until
    their lines reach NETFILTER_SHARE of the file. The file spans HOURS_PER_2M_LINES, or
    ``per_second`` lines a second of its own time (a dense host: what `follow` meets live)."""
    span = HOURS_PER_2M_LINES * 3600e6 * lines / 2_000_000
    if per_second:
        span = 1e6 * lines / per_second
    target = NETFILTER_SHARE * lines
    storms = max(1, round(STORMS_PER_2M_LINES * lines / 2_000_000))
    # a smaller file has shorter storms, so that they keep their share of the connections
    storm_us = STORM_SECONDS * 1e6 * min(1.0, STORMS_PER_2M_LINES * lines / 2_000_000 / storms)
    storm_us = min(storm_us, span / 10)  # a dense file's storms keep to a tenth of it
    storm_lines = storms * storm_us / 1e6 * STORM_RATE * templates[STORM].lines
    weights = [t.capture.weight for t in templates]
    per_episode = sum(w * t.lines for w, t in zip(weights, templates, strict=True)) / sum(weights)
    peak = 1.5 * (target - storm_lines) / per_episode / span  # episodes per µs at the crest
    episodes: list[tuple[int, int]] = []
    written, now = 0.0, 0.0
    numbers = range(len(templates))
    while written < target - storm_lines:
        now += rng.expovariate(peak)
        if rng.random() * 1.5 > 1 + 0.5 * math.sin(3 * math.pi * now / span - math.pi / 2):
            continue  # thinning: the rate at `now` is 0.5-1.5 times the mean
        (number,) = rng.choices(numbers, weights)
        episodes.append((int(now), number))
        written += templates[number].lines
    for _ in range(storms):
        at = rng.uniform(0.1, 0.9) * now
        end = at + storm_us
        while (at := at + rng.expovariate(STORM_RATE / 1e6)) < end:
            episodes.append((int(at), STORM))
    episodes.sort()
    return episodes


# ---- writing --------------------------------------------------------------------------------


def generate(
    lines: int,
    seed: int,
    replayer: Replayer,
    per_second: float = 0.0,
    origin_us: int | None = None,
) -> Iterator[list[str]]:
    """Yield chunks of the file's lines (without newlines), in time order, from the clock's
    start or from ``origin_us`` of kernel uptime (a repetition, ``write_replay``)."""
    templates = [load_template(capture) for capture in CAPTURES]
    episodes = plan(lines, random.Random(f"{seed}-plan"), templates, per_second)
    netfilter = sum(templates[number].lines for _, number in episodes)
    ordinary = max(lines - netfilter, 0)
    words = random.Random(f"{seed}-ordinary")
    clock = Clock()
    if origin_us is not None:
        clock.uptime_us = origin_us
    origin = clock.uptime_us
    span = episodes[-1][0] if episodes else 3600e6
    rate = ordinary / span  # ordinary lines per µs, evenly over the traffic's span
    next_ordinary = origin + words.expovariate(rate) if ordinary else math.inf
    pending: list[tuple[int, int, int, str]] = []  # (µs, order, connection, text): a heap
    order = 0
    episode = 0
    last = origin - 1
    first = None  # the first line's µs from origin
    chunk: list[str] = []
    conns = replayer.connections
    while episode < len(episodes) or pending or ordinary:
        starts = origin + episodes[episode][0] if episode < len(episodes) else math.inf
        due = pending[0][0] if pending else math.inf
        if starts <= due and starts <= next_ordinary:
            template = templates[episodes[episode][1]]
            for when, number, text in replayer.episode(template, int(starts)):
                heapq.heappush(pending, (when, order, number, text))
                order += 1
            episode += 1
            continue
        if due <= next_ordinary:
            _, _, number, text = heapq.heappop(pending)
            last = clock.uptime_us = max(int(due), last + 1)
            chunk.append(f"{clock.stamp()} kernel: {clock.uptime()} {text}")
            replayer.netfilter_lines += 1
            second = clock.boot + last // 1_000_000
            seconds = conns[number].seconds
            if not seconds or seconds[-1] != second:
                seconds.append(second)
        else:
            last = clock.uptime_us = max(int(next_ordinary), last + 1)
            chunk.append(f"{clock.stamp()} {ordinary_message(words, clock)}")
            ordinary -= 1
            next_ordinary += words.expovariate(rate) if ordinary else math.inf
        if first is None:
            first = last - origin
        if len(chunk) == CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
    if origin_us is None:
        replayer.first_us = origin + (first or 0)
    replayer.last_us = last


def write_replay(
    out: Path, lines: int, seed: int, per_second: float = 0.0, repeat: int = 1
) -> dict[str, object]:
    """Write the file and `OUT.meta.json`; the mtime is the last line's time (for the year).

    ``repeat``: that many files' worth of lines, one after the other, each planned from its
    own seed (seed, seed + 1...) and starting REUSE_US after the one before ended, when every
    client port rests again: a long file at a density one plan cannot reach (its clients'
    ports run out past ~1.2M lines at 20,000 lines a second). The log is silent in each gap."""
    out.parent.mkdir(parents=True, exist_ok=True)
    replayer = Replayer(random.Random(f"{seed}-replay"))
    written = 0
    with out.open("w", encoding="ascii", buffering=1 << 22) as handle:
        for time_round in range(repeat):
            origin = replayer.last_us + REUSE_US if time_round else None
            for chunk in generate(lines, seed + time_round, replayer, per_second, origin):
                handle.write("\n".join(chunk))
                handle.write("\n")
                written += len(chunk)
    boot = Clock().boot
    last = boot + replayer.last_us // 1_000_000
    os.utime(out, (last, last))
    meta: dict[str, object] = {
        "lines": written,
        "netfilter_lines": replayer.netfilter_lines,
        "other_lines": written - replayer.netfilter_lines,
        "seed": seed,
        "bytes": out.stat().st_size,
        "generator": "benchmarks/replay_syslog.py",
        "first_line": stamp(boot + replayer.first_us // 1_000_000),
        "last_line": stamp(last),
        **truth(replayer.connections),
    }
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def host_ruleset() -> str:
    """The replayed host's ruleset as `iptables-save` and `ip6tables-save` print it: a LOG rule
    first in every chain of filter and nat, and in raw PREROUTING for what arrives on the
    uplink (the lines the replay keeps, see the module doc; the lab's LOG rules matched its test
    ports, which the replay turns into service ports, so here they match every packet), then
    the lab's NAT with the published port 12580 (`ingest --rules`: what `bench_queries.py
    --rules` gives the ingest)."""

    def log(table: str, chain: str, match: str = "") -> str:
        word = {"PREROUTING": "pre", "INPUT": "in", "FORWARD": "fwd", "OUTPUT": "out",
                "POSTROUTING": "post"}[chain]  # fmt: skip
        return f'-A {chain} {match}-j LOG --log-prefix "lp:{table}:{word}:lab "'

    def family(tool: str, nat: dict[str, list[str]]) -> list[str]:
        lines = [f"# Generated by {tool} v1.8.9 (nf_tables)", "*raw"]
        lines += [":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        lines += [log("raw", "PREROUTING", "-i up0 "), "COMMIT", "*nat"]
        chains = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
        lines += [f":{chain} ACCEPT [0:0]" for chain in chains]
        for chain in chains:
            lines += [log("nat", chain), *nat.get(chain, [])]
        lines += ["COMMIT", "*filter"]
        chains = ("INPUT", "FORWARD", "OUTPUT")
        lines += [f":{chain} ACCEPT [0:0]" for chain in chains]
        lines += [log("filter", chain) for chain in chains]
        return [*lines, "COMMIT", f"# Completed on {tool}"]

    published = (
        f"-d 10.77.0.1/32 -p tcp -m tcp --dport {SERVICE_PORT} "
        "-j DNAT --to-destination 172.30.0.2:80"
    )
    nat = {
        "PREROUTING": [f"-A PREROUTING {published}"],
        "OUTPUT": [f"-A OUTPUT {published}"],
        "POSTROUTING": [
            "-A POSTROUTING -s 172.30.0.0/24 ! -o lpbr0 -j MASQUERADE",
            "-A POSTROUTING -s 172.30.0.0/24 -d 172.30.0.2/32 -o lpbr0 -p tcp -m tcp "
            "--dport 80 -j MASQUERADE",
        ],
    }
    return "\n".join(family("iptables-save", nat) + family("ip6tables-save", {})) + "\n"


def stamp(second: int) -> str:
    """An epoch second as the ISO 8601 logpath's --since/--until take (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def truth(conns: list[Replayed]) -> dict[str, object]:
    """The counts and the three questions with their true answers (see the module doc)."""
    by_port = Counter(f"{c.proto}{'' if c.family == 4 else '6'}/{c.dport or 'echo'}" for c in conns)
    # how many were open at once: +1 at a first line, -1 after a last one
    events = sorted([(c.first_us, 1) for c in conns] + [(c.last_us, -1) for c in conns])
    open_now = most = 0
    for _, step in events:
        open_now += step
        most = max(most, open_now)
    span = max(c.last_us for c in conns) - min(c.first_us for c in conns)
    return {
        "connections": len(conns),
        "connections_by_kind": dict(Counter(c.kind for c in conns).most_common()),
        "connections_by_port": dict(by_port.most_common()),
        "connections_by_family": {
            f"ipv{k}": n for k, n in Counter(c.family for c in conns).items()
        },
        "open_at_once": {
            "max": most,
            "mean": round(sum(c.last_us - c.first_us for c in conns) / max(span, 1), 1),
        },
        "busiest_window": busiest_window(conns, 20),
        "report_window": window_of(conns, 1000),
        "two_packet_connection": two_packet(conns),
        "note": "a window [since, until] holds the connections with a line whose syslog second "
        "is in it, both ends included: what `logpath flows --since --until` selects",
    }


def in_window(conns: list[Replayed], since: int, until: int) -> int:
    """Connections with a line in the syslog seconds [since, until]."""
    count = 0
    for conn in conns:
        at = bisect.bisect_left(conn.seconds, since)
        count += at < len(conn.seconds) and conn.seconds[at] <= until
    return count


def busiest_window(conns: list[Replayed], seconds: int) -> dict[str, object]:
    """The `--since T --until T+seconds` window in which the most connections start."""
    starts = Counter(c.seconds[0] for c in conns if c.seconds)
    low, high = min(starts), max(starts)
    counts = [starts.get(s, 0) for s in range(low, high + 1)]
    best, best_at, running = -1, low, sum(counts[: seconds + 1])
    for i in range(len(counts) - seconds):
        if running > best:
            best, best_at = running, low + i
        running += (counts[i + seconds + 1] if i + seconds + 1 < len(counts) else 0) - counts[i]
    until = best_at + seconds
    return {
        "since": stamp(best_at),
        "until": stamp(until),
        "connections": in_window(conns, best_at, until),
    }


def window_of(conns: list[Replayed], wanted: int) -> dict[str, object]:
    """A window from 40% into the file that holds `wanted` connections (ties may add some)."""
    ordered = sorted(c.first_us for c in conns)
    pivot = next(c for c in conns if c.first_us >= ordered[len(ordered) * 2 // 5])
    since = pivot.seconds[0]
    reached = sorted(
        c.seconds[at]
        for c in conns
        if (at := bisect.bisect_left(c.seconds, since)) < len(c.seconds)
    )
    until = reached[min(wanted, len(reached)) - 1]
    return {
        "since": stamp(since),
        "until": stamp(until),
        "connections": in_window(conns, since, until),
    }


def two_packet(conns: list[Replayed]) -> dict[str, object]:
    """A DNS query and its answer (2 packets) from the middle of the file, for `journey`."""
    middle = (conns[0].first_us + conns[-1].first_us) // 2
    dns = min(
        (c for c in conns if c.kind == "udp"),
        key=lambda c: abs(c.first_us - middle),
    )
    return {
        "kind": dns.kind,
        "proto": dns.proto,
        "client_port": dns.client_port,
        "dport": dns.dport,
        "packets": 2,
        "since": stamp(dns.seconds[0]),
        "until": stamp(dns.seconds[-1]),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, write the file, print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="file to write")
    parser.add_argument("--lines", type=int, default=2_000_000, help="number of lines")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument(
        "--per-second",
        type=float,
        default=0.0,
        help="lines per second of the log's own time (default: 6 hours per 2M lines)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="write that many plans of --lines one after the other (11 silent minutes between)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    meta = write_replay(args.out, args.lines, args.seed, args.per_second, args.repeat)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {meta['lines']} lines ({meta['netfilter_lines']} netfilter, "
        f"{meta['connections']} connections) {meta['bytes']} bytes to {args.out} "
        f"in {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
