"""Capture the kernel's LOG records of one scenario and write them in on-disk formats.

Formats written per scenario (``<name>.log`` etc.):
- ``.log``: RFC 3164 syslog as rsyslog's traditional template writes it from /proc/kmsg:
  ``Mon DD HH:MM:SS lab-host kernel: [%5lu.%06lu] text``;
- ``.dmesg``: the ``dmesg`` layout ``[%5lu.%06lu] text`` (the kernel's own print_time());
- ``.kmsg``: the /dev/kmsg records themselves, ``pri,seq,usec,flags;text``.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .backends import host_ruleset
from .topology import Lab
from .traffic import SCENARIOS, Scenario

KMSG_READER = Path(__file__).with_name("kmsg.py")
FIXED_TAG = "lab"
SYSLOG_HOST = "lab-host"
ATTEMPTS = 3


@dataclass(frozen=True)
class KernelRecord:
    """One /dev/kmsg record: syslog priority, sequence number, microseconds since boot, text."""

    level: int
    seq: int
    usec: int
    flags: str
    text: str

    @classmethod
    def from_kmsg(cls, line: str) -> KernelRecord:
        head, _, text = line.partition(";")
        pri, seq, usec, flags = head.split(",")[:4]
        return cls(int(pri) & 7, int(seq), int(usec), flags, text)

    def uptime(self) -> str:
        """The printk time stamp as the kernel prints it: %5lu.%06lu."""
        return f"[{self.usec // 1_000_000:5d}.{self.usec % 1_000_000:06d}]"


class LostRecords(RuntimeError):
    """The kernel ring buffer overran before the reader took every record."""


class KernelLog:
    """Collects the records with a tag that the kernel logs while the block runs."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.records: list[KernelRecord] = []
        self.lost = 0

    def __enter__(self) -> KernelLog:
        self.reader = subprocess.Popen(
            [sys.executable, str(KMSG_READER), self.tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.reader.stdout is not None
        if self.reader.stdout.readline().strip() != "ready":
            raise RuntimeError(f"kmsg reader failed: {self.reader.stderr.read()}")  # type: ignore[union-attr]
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # the last ACKs of a close are in flight a little after the socket calls
        out, err = self.reader.communicate(timeout=30)
        self.records = [KernelRecord.from_kmsg(line) for line in out.splitlines() if line]
        match = re.search(r"lost (\d+)", err)
        self.lost = int(match.group(1)) if match else -1


def boot_time() -> float:
    """Wall-clock time of the kmsg clock's zero (realtime minus monotonic)."""
    return time.clock_gettime(time.CLOCK_REALTIME) - time.clock_gettime(time.CLOCK_MONOTONIC)


def fix_tag(text: str, tag: str) -> str:
    """Replace the run's random tag in the LOG prefix by the fixed one (pure text substitution):
    the tag ends the prefix (``lp:<table>:<hook>:<tag> ``, ``lp-isolation:<tag> ``)."""
    return re.sub(rf"^(lp[:a-z-]*:){re.escape(tag)}(?= )", rf"\g<1>{FIXED_TAG}", text)


def fix_tag_everywhere(text: str, tag: str) -> str:
    """A ruleset listing with the run's tag made the fixed one in each LOG prefix."""
    return text.replace(f":{tag} ", f":{FIXED_TAG} ")


def syslog_line(record: KernelRecord, text: str, boot: float, host: str = SYSLOG_HOST) -> str:
    """RFC 3164 as rsyslog writes kernel lines read from /proc/kmsg (UTC wall time)."""
    stamp = time.strftime("%b %e %H:%M:%S", time.gmtime(boot + record.usec / 1e6))
    return f"{stamp} {host} kernel: {record.uptime()} {text}"


def write_formats(records: list[KernelRecord], tag: str, stem: Path) -> None:
    """Write the three on-disk formats of one scenario's records."""
    boot = boot_time()
    syslog, dmesg, kmsg = [], [], []
    for record in records:
        text = fix_tag(record.text, tag)
        syslog.append(syslog_line(record, text, boot))
        dmesg.append(f"{record.uptime()} {text}")
        kmsg.append(f"{record.level},{record.seq},{record.usec},{record.flags};{text}")
    for suffix, lines in ((".log", syslog), (".dmesg", dmesg), (".kmsg", kmsg)):
        stem.with_suffix(suffix).write_text("".join(line + "\n" for line in lines))


def capture(lab: Lab, scenario: Scenario) -> tuple[list[KernelRecord], object]:
    """Run a scenario's traffic (under its first backend) while reading the kernel log;
    returns the records and the traffic's result."""
    records, result, _ = capture_under(lab, scenario, scenario.backends[0])
    return records, result


def capture_under(
    lab: Lab, scenario: Scenario, backend: str
) -> tuple[list[KernelRecord], object, dict[str, str]]:
    """Run a scenario's traffic while reading the kernel log, under its ruleset in one backend's
    form; returns the records, the traffic's result and the listings of
    the ruleset (file suffix -> text, empty for a scenario without rules of its own).

    The ring buffer is shared with everything else the kernel logs, so an overrun (records
    lost, perhaps not even ours) makes us run the scenario again, up to ATTEMPTS times.
    """
    for _ in range(ATTEMPTS):
        with contextlib.ExitStack() as stack:
            listed = {}
            if scenario.host_rules is not None:
                listed = stack.enter_context(host_ruleset(lab, backend, scenario.host_rules))
            with KernelLog(lab.tag) as log:
                result = scenario.traffic(lab)
        if not log.lost:
            return log.records, result, listed
    raise LostRecords(f"{scenario.name}: {log.lost} kernel records lost (ring overrun)")


def capture_all(
    lab: Lab, outdir: Path, names: list[str] | None = None, scenarios: list[Scenario] | None = None
) -> None:
    """Capture every scenario (or those named, by scenario or file stem) into outdir under each
    of its backends, legacy last, printing one summary line each."""
    outdir.mkdir(parents=True, exist_ok=True)
    chosen = [
        (scenario, stem, backend)
        for scenario in scenarios or SCENARIOS
        for stem, backend in scenario.variants()
        if not names or scenario.name in names or stem in names
    ]
    # once loaded, x_tables' legacy tables stay registered (empty) until the namespace goes
    chosen.sort(key=lambda item: item[2] == "iptables-legacy")
    for scenario, stem, backend in chosen:
        records, result, listed = capture_under(lab, scenario, backend)
        write_formats(records, lab.tag, outdir / stem)
        for suffix, text in listed.items():
            (outdir / f"{stem}{suffix}").write_text(fix_tag_everywhere(text, lab.tag))
        shown = result if not isinstance(result, bytes | tuple) or len(str(result)) < 40 else "ok"
        print(f"{stem:20} {len(records):6d} lines  result={shown}")
