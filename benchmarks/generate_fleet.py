"""Write a fleet's kernel logs, one file per host, from genuine lab captures (issue 14).

Each of ``--hosts`` Docker hosts logs what benchmarks/replay_syslog.py replays from the one-host
lab (its own seed, its own host name in every header: the fleet's hosts share Docker's
addressing, as real ones do, and are told apart by name). Beside them, pairs of hosts log
connections that cross them: the two-host lab's captures (samples/lab/two-hosts/: a client
behind a MASQUERADE gateway, a routed link, a server behind DNAT), replayed ``--copies`` times
``--step`` seconds apart, each copy with fresh client ports, IP IDs, ICMP echo ids and IPv6
flow labels (one offset for the whole copy, the same on both hosts: a routed packet keeps
them), its header times and kernel uptimes moved together; each pair's copies PAIR_SECONDS
after the previous pair's.

With ``--stagger M`` the Docker hosts' busy spells follow one another rather than coincide:
host n's replay is moved n * M minutes later (header times and uptimes together, as the pairs'
copies are), so that a fleet of a few hundred thousand lines a host spans hours and is cut into
several of fleet.assemble_in_windows' windows (each at least 40 minutes long) without the tens of
millions of lines hosts busy at once for hours would log. A stagger longer than a host's replay
(330,000 lines: ~60 minutes) keeps the Docker hosts' spells apart. (Hosts busy at once share
Docker's addresses and ports: that once mixed their connections; clocks.Clocks.links keeps them
apart now, and tests/test_two_hosts.py runs this generator with --stagger 0.)

    python benchmarks/generate_fleet.py OUTDIR --hosts 4 --lines 50000 --pairs 2 --copies 40
    python benchmarks/generate_fleet.py OUTDIR --hosts 4 --lines 330000 --stagger 65
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
TWO_HOSTS = HERE.parent / "samples" / "lab" / "two-hosts"
SCENARIOS = ("two-hosts", "udp-icmp-ipv6")
LINE = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) (host[ab]) kernel: \[ *(\d+\.\d{6})\] (.*)$")
# a client's ephemeral port (Linux: 32768-60999), moved within that range by each copy
EPHEMERAL = range(32768, 61000)
PORT = re.compile(r"\b(SPT|DPT)=(\d+)")
IDENT = re.compile(r"\bID=(\d+)")
LABEL = re.compile(r"\bFLOWLBL=(\d+)")
# seconds between the host pairs' copies: two pairs never log a copy at the same time (an IPv6
# packet has no IP ID to tell it from another pair's)
PAIR_SECONDS = 17


def shifted(line: str, names: dict[str, str], seconds: int, offset: int) -> str:
    """One captured line moved ``seconds`` later, its host renamed, its client port, IP ID and
    echo id moved by ``offset``."""
    match = LINE.match(line)
    if match is None:
        raise ValueError(f"not a two-host lab line: {line!r}")
    header, host, uptime, body = match.groups()
    when = datetime.strptime(f"2025 {header}", "%Y %b %d %H:%M:%S") + timedelta(seconds=seconds)
    body = PORT.sub(lambda m: f"{m[1]}={_port(int(m[2]), offset)}", body)
    body = IDENT.sub(lambda m: f"ID={(int(m[1]) + offset) % 65536}", body)
    body = LABEL.sub(lambda m: f"FLOWLBL={(int(m[1]) + offset) % (1 << 20)}", body)
    stamp = f"{when:%b} {when.day:2d} {when:%H:%M:%S}"
    return f"{stamp} {names[host]} kernel: [{float(uptime) + seconds:12.6f}] {body}"


def _port(port: int, offset: int) -> int:
    if port not in EPHEMERAL:
        return port  # a service's port stays
    return EPHEMERAL.start + (port - EPHEMERAL.start + offset) % len(EPHEMERAL)


def crossing(pair: int, copies: int, step: int) -> dict[str, list[str]]:
    """The two-host captures replayed ``copies`` times for host pair ``pair``: per host, its
    lines in time order."""
    names = {"hosta": f"gw{pair}", "hostb": f"srv{pair}"}
    out: dict[str, list[str]] = {name: [] for name in names.values()}
    for copy in range(copies):
        offset = 7919 * (pair * copies + copy) + 1
        for scenario in SCENARIOS:
            for host, name in names.items():
                path = TWO_HOSTS / f"{scenario}-{host[-1]}.log"
                seconds = copy * step + SCENARIOS.index(scenario) * (step // 2)
                seconds += pair * PAIR_SECONDS
                out[name] += [
                    shifted(line, names, seconds, offset) for line in path.read_text().splitlines()
                ]
    return out


def docker_host(out: Path, name: str, lines: int, seed: int, later: int = 0) -> None:
    """One Docker host's replayed syslog (replay_syslog.py), its host name ``name``, its times
    ``later`` seconds later than the replay's."""
    raw = out / f".{name}.replay"
    subprocess.run(
        [sys.executable, str(HERE / "replay_syslog.py"), str(raw), "--lines", str(lines),
         "--seed", str(seed)],
        check=True, capture_output=True,
    )  # fmt: skip
    with raw.open() as source, (out / f"{name}.log").open("w") as target:
        for line in source:
            target.write(_moved(line, name, later))
    raw.unlink()
    for extra in out.glob(f".{name}.replay*"):
        extra.unlink()


# a replayed syslog line: its header's time, its host, and the rest (a kernel line's uptime
# first, as replay_syslog.py writes it: `[%5lu.%06lu]`)
SYSLOG_LINE = re.compile(r"^(\w{3} [ \d]\d \d\d:\d\d:\d\d) \S+ (.*)$", re.DOTALL)
KERNEL_UPTIME = re.compile(r"^kernel: \[ *(\d+)\.(\d{6})\]")


def _moved(line: str, name: str, seconds: int) -> str:
    """A replayed syslog line with ``name`` as its host, ``seconds`` later (its header's time
    and, on a kernel line, its uptime: the host's boot time stays)."""
    match = SYSLOG_LINE.match(line)
    if match is None:
        raise ValueError(f"not a replayed syslog line: {line!r}")
    header, rest = match.groups()
    if seconds:
        # the replay's year (generate_syslog.START): a header has none, and Feb 29 needs one
        when = datetime.strptime(f"2026 {header}", "%Y %b %d %H:%M:%S") + timedelta(seconds=seconds)
        header = f"{when:%b} {when.day:2d} {when:%H:%M:%S}"
        rest = KERNEL_UPTIME.sub(lambda m: f"kernel: [{int(m[1]) + seconds:5d}.{m[2]}]", rest)
    return f"{header} {name} {rest}"


def generate(
    out: Path, hosts: int, lines: int, pairs: int, copies: int, step: int, stagger: int = 0
) -> dict[str, int]:
    """Write the fleet into ``out`` (Docker host n ``n * stagger`` minutes later than the
    first); how many lines each file has."""
    out.mkdir(parents=True, exist_ok=True)
    for n in range(hosts):
        docker_host(out, f"docker{n}", lines, seed=n + 1, later=60 * stagger * n)
    for pair in range(pairs):
        for name, logged in crossing(pair, copies, step).items():
            (out / f"{name}.log").write_text("\n".join(sorted_by_time(logged)) + "\n")
    return {p.name: sum(1 for _ in p.open()) for p in sorted(out.glob("*.log"))}


def sorted_by_time(lines: list[str]) -> Iterator[str]:
    """The lines in kernel-uptime order: copies of the two scenarios interleave."""
    return iter(sorted(lines, key=lambda line: float(LINE_UPTIME.search(line)[1])))  # type: ignore[index]


LINE_UPTIME = re.compile(r"kernel: \[ *(\d+\.\d{6})\]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--hosts", type=int, default=2, help="Docker hosts (replayed syslogs)")
    parser.add_argument("--lines", type=int, default=20000, help="lines per Docker host")
    parser.add_argument("--pairs", type=int, default=1, help="host pairs with crossing traffic")
    parser.add_argument("--copies", type=int, default=10, help="replays of the two-host lab")
    parser.add_argument("--step", type=int, default=250, help="seconds between replays")
    parser.add_argument(
        "--stagger", type=int, default=0, help="minutes between the Docker hosts' starts"
    )
    args = parser.parse_args(argv)
    written = generate(
        args.out, args.hosts, args.lines, args.pairs, args.copies, args.step, args.stagger
    )
    print(json.dumps(written, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
