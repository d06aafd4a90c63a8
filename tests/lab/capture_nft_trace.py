"""Capture genuine ``nft monitor trace`` and ``xtables-monitor --trace`` output from the lab.

nf_tables sends its trace events over netlink only while a listener is subscribed (§5.2 of
the format reference): nothing reaches the kernel log. So the monitors run inside the lab's
host namespace, where the rules are, while the lab's traffic crosses it.

Scenarios (ports inside the lab LOG rules' 9000-9099, so that the same packets are logged by
the LOG rules too, and a file can mix both):

- ``nft-trace``: a table ``inet lptrace`` of our own sets ``meta nftrace set 1`` at
  prerouting for TCP ports 9050 and 9052. c1 -> lan 10.77.0.2:9050 is accepted (masqueraded,
  ping/pong); c1 -> lan :9052 is dropped in a user chain ``lpsub`` that a forward base chain
  jumps to (the SYN and its retransmission); an ICMP echo c1 -> lan; TCP over IPv6 c1 ->
  [fd00:30::1]:9054 (the host itself), whose answers an output chain traces. The server's
  answers (sport 9050) are traced too. ``nft -a monitor trace`` prints rule handles.
- ``xtables-trace``: iptables-nft ``-t raw -A PREROUTING -p tcp --dport 9051 -j TRACE``
  (translated to ``meta nftrace set 1``); c1 -> lan :9051 accepted, and a DROP appended to
  filter FORWARD for :9053 (the SYN and its retransmission), read by ``xtables-monitor
  --trace``.

Each scenario writes ``<name>.txt`` (the monitor's stdout, as printed), ``<name>.rules``
(``nft list ruleset`` of the host namespace during the capture, with handles) and
``<name>.dmesg`` (the lab's LOG lines of the same packets, tag fixed to ``lab``).

Usage (as root, from the repository root)::

    .venv/bin/python -m tests.lab.capture_nft_trace samples/lab/trace
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

from . import topology as t
from . import traffic
from .capture import FIXED_TAG, KernelLog, fix_tag

ACCEPTED_PORT, XT_ACCEPTED_PORT, DROPPED_PORT, XT_DROPPED_PORT = 9050, 9051, 9052, 9053
IPV6_PORT = 9054  # c1 -> the host's bridge address fd00:30::1, its answers traced at output

NFT_TABLE = f"""
table inet lptrace {{
    chain pre {{
        type filter hook prerouting priority -350; policy accept;
        tcp dport {{ {ACCEPTED_PORT}, {DROPPED_PORT} }} meta nftrace set 1
        tcp sport {ACCEPTED_PORT} meta nftrace set 1
        icmp type {{ echo-request, echo-reply }} meta nftrace set 1
        tcp dport {IPV6_PORT} meta nftrace set 1
    }}
    chain lpfwd {{
        type filter hook forward priority 10; policy accept;
        tcp dport {DROPPED_PORT} jump lpsub
    }}
    chain lpsub {{
        ip saddr 172.30.0.0/24 counter
        tcp dport {DROPPED_PORT} drop
    }}
    chain out {{
        type filter hook output priority -350; policy accept;
        tcp sport {IPV6_PORT} meta nftrace set 1
    }}
}}
"""

XT_RULES = [
    ["-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", str(XT_ACCEPTED_PORT), "-j", "TRACE"],
    ["-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--sport", str(XT_ACCEPTED_PORT), "-j", "TRACE"],
    ["-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", str(XT_DROPPED_PORT), "-j", "TRACE"],
    ["-A", "FORWARD", "-p", "tcp", "--dport", str(XT_DROPPED_PORT), "-j", "DROP"],
]


class Monitor:
    """A trace monitor running in the host namespace while the block runs.

    Its output goes to a pseudo-terminal: the tools print with stdio, which holds up to 4 KiB
    for a pipe (even under ``stdbuf -oL``, for nft) and loses it when the monitor is stopped; a
    terminal makes stdio write each line as it is printed.

    A monitor that falls behind the kernel loses events: its netlink socket overflows, it says
    "No buffer space available" and exits by itself. ``lost`` says so, and the capture is run
    again rather than kept short (seen under load: 2 of 186 trace lines).
    """

    def __init__(self, lab: t.Lab, argv: list[str]) -> None:
        self.argv = ["ip", "netns", "exec", lab.ns("host"), *argv]
        self.output = ""
        self.lost = ""
        self._chunks: list[bytes] = []

    def __enter__(self) -> Monitor:
        master, slave = pty.openpty()
        tty.setraw(slave)  # no "\r\n" for "\n"
        self.process = subprocess.Popen(self.argv, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        self._master = master
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        time.sleep(0.5)  # subscribed before the first packet
        return self

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the terminal's other end is closed: the monitor ended
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def __exit__(self, *exc: object) -> None:
        time.sleep(1.0)  # the last events of a close, and the monitor printing them
        ended_by_itself = self.process.poll() is not None
        self.process.terminate()
        _, stderr = self.process.communicate(timeout=10)
        if ended_by_itself:
            self.lost = stderr.decode(errors="replace").strip() or f"exit {self.process.returncode}"
        self._reader.join(timeout=10)
        os.close(self._master)
        self.output = b"".join(self._chunks).decode()


def nft_traffic(lab: t.Lab) -> object:
    with (
        traffic.tcp_server(lab, "lan", ACCEPTED_PORT),
        traffic.tcp_server(lab, "lan", DROPPED_PORT),
    ):
        answer = traffic.tcp_request(lab, "c1", t.LAN_IP, ACCEPTED_PORT)
        dropped = traffic.tcp_unanswered(lab, "c1", t.LAN_IP, DROPPED_PORT, 1.5)
    echoed = traffic.ping(lab, "c1", t.LAN_IP, 1)
    with traffic.tcp_server(lab, "host", IPV6_PORT, family=6):
        local = traffic.tcp_request(lab, "c1", t.BRIDGE_IP6, IPV6_PORT, family=6)
    return answer, dropped, echoed, local


def xt_traffic(lab: t.Lab) -> object:
    with (
        traffic.tcp_server(lab, "lan", XT_ACCEPTED_PORT),
        traffic.tcp_server(lab, "lan", XT_DROPPED_PORT),
    ):
        answer = traffic.tcp_request(lab, "c1", t.LAN_IP, XT_ACCEPTED_PORT)
        dropped = traffic.tcp_unanswered(lab, "c1", t.LAN_IP, XT_DROPPED_PORT, 1.5)
    return answer, dropped


def capture(
    lab: t.Lab, outdir: Path, name: str, monitor: list[str], run: Callable[[t.Lab], object]
) -> None:
    rules = lab.exec("host", "nft", "-a", "list", "ruleset")
    for _attempt in range(3):
        with KernelLog(lab.tag) as log, Monitor(lab, monitor) as trace:
            result = run(lab)
        if not trace.lost:
            break
        print(f"{name}: the monitor lost events ({trace.lost}); captured again")
    else:
        raise RuntimeError(f"{name}: the monitor lost events three times: {trace.lost}")
    # the run's random tag, in the LOG rules' prefixes that the trace prints, made "lab"
    (outdir / f"{name}.txt").write_text(trace.output.replace(f":{lab.tag} ", f":{FIXED_TAG} "))
    (outdir / f"{name}.rules").write_text(rules.replace(f":{lab.tag} ", f":{FIXED_TAG} "))
    dmesg = [f"{r.uptime()} {fix_tag(r.text, lab.tag)}" for r in log.records]
    (outdir / f"{name}.dmesg").write_text("".join(line + "\n" for line in dmesg))
    print(f"{name}: {len(trace.output.splitlines())} trace lines, {len(dmesg)} LOG lines, {result}")


def nft_trace(lab: t.Lab, outdir: Path) -> None:
    """The nft-trace scenario, its table removed after (the lab is left as it was)."""
    lab.exec("host", "nft", "-f", "-", stdin=NFT_TABLE)
    try:
        capture(lab, outdir, "nft-trace", ["nft", "-a", "monitor", "trace"], nft_traffic)
    finally:
        lab.exec("host", "nft", "delete", "table", "inet", "lptrace")


def xtables_trace(lab: t.Lab, outdir: Path) -> None:
    """The xtables-trace scenario, its rules removed after."""
    for rule in XT_RULES:
        lab.exec("host", "iptables-nft", *rule)
    try:
        capture(lab, outdir, "xtables-trace", ["xtables-monitor", "--trace"], xt_traffic)
    finally:
        for rule in XT_RULES:
            lab.exec("host", "iptables-nft", *[("-D" if a == "-A" else a) for a in rule])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.lab.capture_nft_trace OUTDIR")
        return 2
    outdir = Path(argv[0])
    outdir.mkdir(parents=True, exist_ok=True)
    t.clean_leftovers()
    lab = t.build()
    try:
        nft_trace(lab, outdir)
        xtables_trace(lab, outdir)
    finally:
        t.teardown(lab)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
