"""Write a deterministic RFC 3164 `/var/log/syslog` of a Docker host, for the ingest benchmark.

About 60% of the lines are netfilter LOG lines (whole connections logged at several hooks, see
docker_host.py) and 40% ordinary daemon and kernel messages, some of which look like key=value
netfilter lines without being one (`audit:`, `IPVS:`). Times and kernel uptimes only increase.
The same seed always gives the same bytes. A sidecar `OUT.meta.json` records how many lines of
each kind were written, so a benchmark can check the parser's counts against the truth.

    python benchmarks/generate_syslog.py benchmarks/out/syslog --lines 2000000 --seed 1
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docker_host import Journeys, Line

HOST = "pc-baim"
START = calendar.timegm((2026, 1, 8, 21, 40, 0))  # crosses Jan  9 / Jan 10: space-padded days
START_UPTIME_US = 830_038_910_054  # the article's host had been up ~9.6 days
NETFILTER_SHARE = 0.6
EPISODE_GAP_US = 1_500_000  # mean pause between conversations
CHUNK_LINES = 65_536
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Clock:
    """Wall clock and kernel uptime in microseconds; formats the syslog date once per second."""

    def __init__(self) -> None:
        self.uptime_us = START_UPTIME_US
        self.boot = START - START_UPTIME_US // 1_000_000
        self._second = -1
        self._stamp = ""

    def advance(self, microseconds: int) -> None:
        """Move both clocks forward (never back)."""
        self.uptime_us += microseconds

    def stamp(self) -> str:
        """`Mon DD HH:MM:SS host` with the day space-padded, as rsyslog's RFC 3164 template."""
        second = self.boot + self.uptime_us // 1_000_000
        if second != self._second:
            t = time.gmtime(second)
            self._second = second
            self._stamp = (
                f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} "
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {HOST}"
            )
        return self._stamp

    def uptime(self) -> str:
        """The printk time `[%5lu.%06lu]`."""
        seconds, micros = divmod(self.uptime_us, 1_000_000)
        return f"[{seconds:5d}.{micros:06d}]"


def hexword(rng: random.Random, digits: int) -> str:
    """Random lowercase hex digits (container ids, session ids)."""
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


def audit_stamp(rng: random.Random, clock: Clock) -> str:
    """`audit(<epoch>.<ms>:<serial>):` as the audit subsystem stamps its records."""
    epoch = clock.boot + clock.uptime_us // 1_000_000
    return f"audit({epoch}.{rng.randint(0, 999):03d}:{rng.randint(100, 9999)}): "


def ordinary_message(rng: random.Random, clock: Clock) -> str:
    """One non-netfilter message: daemons, and kernel lines that must not be taken for LOG lines."""
    pick = rng.randrange(14)
    pid = rng.randint(300, 99999)
    if pick == 0:
        return f"systemd[1]: Started session-{rng.randint(1, 9999)}.scope - Session of User root."
    if pick == 1:
        return f"CRON[{pid}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"
    if pick == 2:
        return (
            f"sshd[{pid}]: Accepted publickey for admin from 10.10.126.{rng.randint(150, 199)} "
            f"port {rng.randint(32768, 60999)} ssh2: ED25519 SHA256:{hexword(rng, 16)}"
        )
    if pick == 3:
        return (
            f'dockerd[812]: time="2026-01-09T10:00:00.{rng.randint(0, 999999):06d}Z" level=info '
            f'msg="ignoring event" container={hexword(rng, 64)} module=libcontainerd '
            f'namespace=moby topic=/tasks/delete type="*events.TaskDelete"'
        )
    if pick == 4:
        return (
            f'containerd[640]: time="2026-01-09T10:00:00Z" level=info msg="shim disconnected" '
            f"id={hexword(rng, 64)} namespace=moby"
        )
    if pick == 5:
        return (
            f"kernel: {clock.uptime()} audit: type=1400 {audit_stamp(rng, clock)}"
            f'apparmor="STATUS" operation="profile_load" '
            f'profile="unconfined" name="docker-default" pid={pid} comm="apparmor_parser"'
        )
    if pick == 6:
        return (
            f"kernel: {clock.uptime()} audit: type=1325 {audit_stamp(rng, clock)}"
            f"table=nat family=2 entries={rng.randint(5, 60)} "
            f'op=xt_replace pid={pid} subj=unconfined comm="iptables"'
        )
    if pick == 7:
        return (
            f"kernel: {clock.uptime()} IPVS: rr: TCP 10.10.126.101:{rng.choice((80, 443))} "
            f"- no destination available"
        )
    if pick == 8:
        port = rng.randint(1, 24)
        state = rng.choice(("blocking", "forwarding", "disabled"))
        veth = f"veth{hexword(rng, 7)}"
        return f"kernel: {clock.uptime()} docker0: port {port}({veth}) entered {state} state"
    if pick == 9:
        return f"kernel: {clock.uptime()} eth0: renamed from veth{hexword(rng, 7)}"
    if pick == 10:
        return f"systemd-networkd[402]: veth{hexword(rng, 7)}: Gained IPv6LL"
    if pick == 11:
        return f"rsyslogd[530]: imklog: {rng.randint(2, 40)} messages lost due to rate-limiting"
    if pick == 12:
        return f"systemd[1]: docker-{hexword(rng, 64)}.scope: Deactivated successfully."
    return f"kernel: {clock.uptime()} nf_conntrack: default automatic helper assignment off"


def generate(lines: int, seed: int) -> Iterator[tuple[list[str], int]]:
    """Yield chunks of lines (without newlines) and how many of them are netfilter lines."""
    rng = random.Random(seed)
    journeys = Journeys(rng)
    clock = Clock()
    pending: list[Line] = []
    chunk: list[str] = []
    netfilter = 0
    for _ in range(lines):
        if rng.random() < NETFILTER_SHARE:
            if not pending:
                pending = journeys.next_episode()
                pending.reverse()  # pop() from the end is O(1)
                clock.advance(int(rng.expovariate(1 / EPISODE_GAP_US)))
            delay, body = pending.pop()
            clock.advance(delay)
            chunk.append(f"{clock.stamp()} kernel: {clock.uptime()} {body}")
            netfilter += 1
        else:
            clock.advance(rng.randint(1, 3000))
            chunk.append(f"{clock.stamp()} {ordinary_message(rng, clock)}")
        if len(chunk) == CHUNK_LINES:
            yield chunk, netfilter
            chunk, netfilter = [], 0
    if chunk:
        yield chunk, netfilter


def write_syslog(out: Path, lines: int, seed: int) -> dict[str, int | str]:
    """Write the file and `.meta.json`; the mtime is the last line's time (for year inference)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    netfilter = 0
    last = START
    with out.open("w", encoding="ascii", buffering=1 << 22) as handle:
        for chunk, count in generate(lines, seed):
            handle.write("\n".join(chunk))
            handle.write("\n")
            netfilter += count
            last = calendar.timegm(time.strptime(f"2026 {chunk[-1][:15]}", "%Y %b %d %H:%M:%S"))
    os.utime(out, (last, last))
    meta: dict[str, int | str] = {
        "lines": lines,
        "netfilter_lines": netfilter,
        "other_lines": lines - netfilter,
        "seed": seed,
        "bytes": out.stat().st_size,
        "generator": "benchmarks/generate_syslog.py",
    }
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, write the file, print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="file to write")
    parser.add_argument("--lines", type=int, default=2_000_000, help="number of lines")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    meta = write_syslog(args.out, args.lines, args.seed)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {meta['lines']} lines ({meta['netfilter_lines']} netfilter) "
        f"{meta['bytes']} bytes to {args.out} in {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
