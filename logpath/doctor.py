"""What decides whether netfilter LOG lines will exist and be complete (``logpath doctor``).

Each check reads files under a root directory (``/`` on a live system; a fake tree in tests),
never needs root (what it cannot read is reported as ``unknown`` with the reason) and changes
nothing. Each result says what to do about it.

Where doctor runs matters: inside a container or any network namespace other than the initial
one, ``nf_log_all_netns`` does not exist (it is a host setting), printk settings are global, and
``/proc/sys`` is often mounted read-only, so ``sysctl -w`` fails there: the seed's second article
hits exactly that trap with ``kernel.shmmax``. The advice then says to act on the host.

Example:
    >>> checks = run_checks(Path("/"))
    >>> sorted({check.status for check in checks}) <= ["fail", "ok", "unknown", "warn"]
    True
"""

from __future__ import annotations

import enum
import gzip
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class Status(enum.StrEnum):
    """How a check came out."""

    OK = "ok"  # logging works as logpath needs in this respect
    WARN = "warn"  # lines may be missing or incomplete for some traffic
    FAIL = "fail"  # lines that logpath needs will not be written
    UNKNOWN = "unknown"  # could not be read from here (permissions, not this namespace)


@dataclass(frozen=True)
class Check:
    """One finding of ``logpath doctor``."""

    name: str  # what was checked, e.g. "bridge-nf-call-iptables"
    status: Status  # ok, warn, fail or unknown
    value: str | None  # what was found, e.g. "0", "nf_tables", "/var/log/kern.log"
    advice: str  # what it means for the logs, and what to do

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "status": str(self.status),
            "value": self.value,
            "advice": self.advice,
        }


Runner = Callable[[list[str]], str | None]


def run_command(argv: list[str]) -> str | None:
    """Run a command and return its output; None when it cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout + done.stderr).strip() if done.returncode == 0 else None


@dataclass(frozen=True)
class System:
    """The files doctor reads, under a root directory, and a way to run commands there."""

    root: Path
    runner: Runner | None = None  # None: do not run commands (a fake root)

    def path(self, name: str) -> Path:
        return self.root / name.lstrip("/")

    def read(self, name: str) -> str | None:
        """The stripped text of a file; None when missing."""
        try:
            return self.path(name).read_text(errors="replace").strip()
        except FileNotFoundError:
            return None

    def why_unreadable(self, name: str) -> str | None:
        """None when the file can be read, else why not ("missing", "permission denied")."""
        try:
            self.path(name).read_bytes()
        except FileNotFoundError:
            return "missing"
        except PermissionError:
            return "permission denied"
        except OSError as error:
            return error.strerror or str(error)
        return None


@dataclass(frozen=True)
class Situation:
    """Where doctor runs: which network namespace, container or not, /proc/sys writable or not."""

    initial_netns: bool | None  # None: cannot tell
    container: str | None  # why we think this is a container, or None
    user_namespace: bool  # uid 0 here is not uid 0 on the host
    proc_sys_read_only: bool

    @property
    def on_host(self) -> bool:
        """Settings read here are the host's own, and can be changed here."""
        return bool(self.initial_netns) and not self.user_namespace and not self.proc_sys_read_only


def detect_situation(system: System) -> Situation:
    """Initial network namespace or not, container markers, user namespace, read-only /proc/sys."""
    netfilter = system.path("proc/sys/net/netfilter")
    initial = None
    if netfilter.is_dir():  # nf_log_all_netns is registered in the initial namespace only
        initial = (netfilter / "nf_log_all_netns").exists()
    uid_map = (system.read("proc/self/uid_map") or "0 0 4294967295").split()
    return Situation(
        initial_netns=initial,
        container=container_marker(system),
        user_namespace=uid_map[:3] != ["0", "0", "4294967295"],
        proc_sys_read_only=proc_sys_read_only(system),
    )


def container_marker(system: System) -> str | None:
    """The first sign of a container runtime: a marker file or a cgroup path.

    Kernel threads (kthreadd is PID 2) are visible only from the host's PID namespace; seeing
    them means we are not in a container, whatever files an image left behind (this test
    machine's root file system has a /.dockerenv).
    """
    if system.read("proc/2/comm") == "kthreadd":
        return None
    for marker, runtime in ((".dockerenv", "docker"), ("run/.containerenv", "podman")):
        if system.path(marker).exists():
            return f"/{marker} exists ({runtime})"
    cgroup = system.read("proc/1/cgroup") or ""
    for word in ("docker", "kubepods", "containerd", "lxc", "libpod"):
        if word in cgroup:
            return f"/proc/1/cgroup mentions {word}"
    return None


def proc_sys_read_only(system: System) -> bool:
    """True when /proc/sys (or /proc) is mounted read-only, as in an unprivileged container."""
    for line in (system.read("proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] in ("/proc/sys", "/proc") and "ro" in fields[3].split(","):
            return True
    return False


def sysctl_name(path: str) -> str:
    """``net/bridge/bridge-nf-call-iptables`` -> ``net.bridge.bridge-nf-call-iptables``."""
    return path.replace("/", ".")


def where_to_act(situation: Situation, namespaced: bool) -> str:
    """How to change a setting from here: directly, in this namespace, or on the host."""
    if situation.on_host:
        return ""
    # a user namespace's root may change the net.* settings of the network namespaces it
    # owns (rootless containers); a read-only /proc/sys (docker's default) stops everyone
    locked = situation.proc_sys_read_only
    if not namespaced:
        return " This is a host setting: change it on the host, not in this container or namespace."
    if locked:
        return (
            " /proc/sys cannot be changed from here: on the host, set it in this namespace with "
            "`nsenter --net` / `ip netns exec`, or start the container with `--sysctl`."
        )
    return " It belongs to this network namespace: setting it here does not change the host's."


def check_where(situation: Situation) -> Check:
    """Report where doctor runs, and what that means for the other checks."""
    if situation.on_host:
        value = "initial network namespace, /proc/sys writable"
        advice = "Settings below are this host's own and can be changed here (as root)."
        if situation.container:
            advice += f" ({situation.container}, but namespaces and /proc/sys say host.)"
        return Check("where", Status.OK, value, advice)
    parts = []
    if situation.initial_netns is False:
        parts.append("non-initial network namespace")
    if situation.container:
        parts.append(situation.container)
    if situation.user_namespace:
        parts.append("user namespace (uid 0 here is not root on the host)")
    if situation.proc_sys_read_only:
        parts.append("/proc/sys read-only")
    advice = (
        "Not the host's view: nf_log_all_netns exists only on the host, and the printk "
        "settings shown are global (the host's). Run `logpath doctor` on the host too."
    )
    if situation.proc_sys_read_only:
        advice += (
            " /proc/sys is read-only here, so `sysctl -w` fails (the seed article's "
            "kernel.shmmax trap): change settings on the host."
        )
    elif situation.user_namespace:
        advice += " Root here is not root on the host: host-wide settings are out of reach."
    return Check("where", Status.WARN, ", ".join(parts) or "unknown", advice)


def read_setting(system: System, path: str) -> tuple[str | None, str | None]:
    """A /proc/sys value and, when it cannot be read, why."""
    problem = system.why_unreadable(f"proc/sys/{path}")
    return (None, problem) if problem else (system.read(f"proc/sys/{path}"), None)


def unreadable(name: str, path: str, problem: str) -> Check:
    return Check(name, Status.UNKNOWN, None, f"Could not read /proc/sys/{path}: {problem}.")


def bridges(system: System) -> list[str]:
    """The Linux bridges in this network namespace (as /sys shows them)."""
    net = system.path("sys/class/net")
    if not net.is_dir():
        return []
    return sorted(entry.name for entry in net.iterdir() if (entry / "bridge").is_dir())


def check_br_netfilter(system: System, situation: Situation) -> list[Check]:
    """br_netfilter loaded, and iptables/ip6tables called for bridged frames."""
    found = bridges(system)
    if not system.path("proc/sys/net/bridge").is_dir():
        status = Status.FAIL if found else Status.WARN
        advice = (
            "br_netfilter is not loaded: frames switched by a bridge never reach iptables, so "
            "container-to-container hops are missing and no line has PHYSIN/PHYSOUT. "
            "Run `modprobe br_netfilter` (Docker loads it when it starts)."
        )
        if found:
            advice += f" Bridges here: {', '.join(found)}."
        return [Check("br_netfilter", status, "not loaded", advice)]
    checks = [Check("br_netfilter", Status.OK, "loaded", "Bridged frames can reach iptables.")]
    for family in ("iptables", "ip6tables"):
        checks.append(check_bridge_call(system, situation, family, found))
    return checks


def check_bridge_call(system: System, situation: Situation, family: str, found: list[str]) -> Check:
    """One bridge-nf-call-* switch (per network namespace since Linux 5.3)."""
    name = f"bridge-nf-call-{family}"
    path = f"net/bridge/{name}"
    value, problem = read_setting(system, path)
    if problem:
        return unreadable(name, path, problem)
    if value == "1":
        return Check(
            name,
            Status.OK,
            value,
            f"Bridged {'IPv6' if family == 'ip6tables' else 'IPv4'} frames pass {family}.",
        )
    advice = (
        f"Bridged frames skip {family}: no PHYSIN/PHYSOUT and no hops for traffic between "
        f"ports of a bridge. Run `sysctl -w {sysctl_name(path)}=1`."
        + where_to_act(situation, namespaced=True)
    )
    return Check(name, Status.FAIL if found else Status.WARN, value, advice)


def check_nf_log_all_netns(system: System, situation: Situation) -> Check:
    """Whether LOG rules in namespaces other than the initial one write anything."""
    path = "net/netfilter/nf_log_all_netns"
    if situation.initial_netns is False:
        return Check(
            "nf_log_all_netns",
            Status.UNKNOWN,
            None,
            "Not visible here (it exists only in the host's initial network namespace). LOG "
            "rules in this namespace are silent unless the host has "
            "net.netfilter.nf_log_all_netns=1: check it there.",
        )
    value, problem = read_setting(system, path)
    if problem:
        return unreadable("nf_log_all_netns", path, problem)
    if value == "1":
        return Check("nf_log_all_netns", Status.OK, value, "LOG rules log in every namespace.")
    return Check(
        "nf_log_all_netns",
        Status.WARN,
        value,
        "LOG rules inside container or other network namespaces log nothing; only the "
        "initial namespace's rules do. Run `sysctl -w net.netfilter.nf_log_all_netns=1` "
        "(on the host).",
    )


def check_ip_forward(system: System, situation: Situation) -> Check:
    """Routing between interfaces (container <-> LAN) needs ip_forward."""
    path = "net/ipv4/ip_forward"
    value, problem = read_setting(system, path)
    if problem:
        return unreadable("ip_forward", path, problem)
    ipv6 = system.read("proc/sys/net/ipv6/conf/all/forwarding")
    shown = f"{value} (IPv6 forwarding {ipv6})" if ipv6 is not None else value
    if value == "1":
        return Check("ip_forward", Status.OK, shown, "Packets can be routed: FORWARD hops appear.")
    return Check(
        "ip_forward",
        Status.WARN,
        shown,
        "Routing is off: packets to other networks are dropped before FORWARD, so their "
        "journeys stop at PREROUTING. Run `sysctl -w net.ipv4.ip_forward=1` if this host "
        "should route (Docker sets it)." + where_to_act(situation, namespaced=True),
    )


def iptables_backend(system: System) -> str | None:
    """ "nf_tables" or "legacy": from `iptables -V`, else from the alternatives symlinks."""
    if system.runner is not None:
        output = system.runner(["iptables", "-V"])
        if output:
            match = re.search(r"\((nf_tables|legacy)\)", output)
            return match.group(1) if match else "legacy"
    target = system.path("usr/sbin/iptables")
    for _ in range(8):  # /usr/sbin/iptables -> /etc/alternatives/iptables -> iptables-nft
        if not target.is_symlink():
            break
        link = os.readlink(target)
        target = system.path(link) if link.startswith("/") else target.parent / link
    name = target.name
    if name.endswith("-nft"):
        return "nf_tables"
    if name.endswith("-legacy"):
        return "legacy"
    return None


def check_backend(system: System) -> Check:
    """Which iptables backend is active, and where TRACE output goes with it."""
    backend = iptables_backend(system)
    legacy_tables = system.read("proc/net/ip_tables_names")
    value = backend
    if legacy_tables:
        value = f"{backend or 'unknown'}; legacy tables loaded: {' '.join(legacy_tables.split())}"
    if backend is None:
        return Check(
            "iptables-backend",
            Status.UNKNOWN,
            value,
            "No iptables found. LOG lines look the same with either backend.",
        )
    if backend == "legacy":
        advice = (
            "LOG lines, and -j TRACE lines (`TRACE: table:chain:type:rule`), reach the kernel log."
        )
        return Check("iptables-backend", Status.OK, value, advice)
    advice = (
        "LOG lines reach the kernel log as usual, but -j TRACE (and nft `meta nftrace`) does "
        "not: capture it while the traffic passes with nft monitor trace (`nft -a monitor trace "
        "> FILE`: -a adds rule handles) or `xtables-monitor --trace > FILE`, and give FILE to "
        "`logpath ingest`."
    )
    if legacy_tables:
        advice += " Legacy tables are loaded too: rules in both run, check both rulesets."
    return Check("iptables-backend", Status.OK, value, advice)


def check_nf_log_binding(system: System) -> Check:
    """The default logger per family (TRACE and conntrack-invalid use it; LOG rules do not)."""
    bound = {}
    for family, number in (("ipv4", 2), ("ipv6", 10)):
        problem = system.why_unreadable(f"proc/sys/net/netfilter/nf_log/{number}")
        if problem:
            return unreadable("nf_log binding", f"net/netfilter/nf_log/{number}", problem)
        bound[family] = system.read(f"proc/sys/net/netfilter/nf_log/{number}") or "NONE"
    value = ", ".join(f"{family}={logger}" for family, logger in bound.items())
    if any("nfnetlink_log" in logger for logger in bound.values()):
        return Check(
            "nf_log binding",
            Status.WARN,
            value,
            "An NFLOG consumer (ulogd, tcpdump -i nflog) rebound the default logger: legacy "
            "TRACE and conntrack-invalid messages go to it, not to the kernel log (LOG rules "
            "are not affected). Restore with "
            "`echo nf_log_ipv4 > /proc/sys/net/netfilter/nf_log/2`.",
        )
    return Check(
        "nf_log binding",
        Status.OK,
        value,
        "LOG rules always use the syslog logger; NONE only means no TRACE/conntrack-invalid "
        "lines until a logger is bound (loading a LOG rule binds nf_log_ipv4).",
    )


def check_console(system: System, situation: Situation) -> Check:
    """Console log level: LOG's default level 4 floods a console whose level is above 4."""
    value, problem = read_setting(system, "kernel/printk")
    if problem:
        return unreadable("console loglevel", "kernel/printk", problem)
    levels = (value or "").split()
    console = int(levels[0]) if levels and levels[0].isdigit() else None
    shown = f"{' '.join(levels)} (console level {console})"
    if console is not None and console > 4:
        return Check(
            "console loglevel",
            Status.WARN,
            shown,
            "LOG lines (level 4, warning) are also printed on the console, which is slow on "
            "a serial console and can stall the machine under a burst. Lower it with "
            "`dmesg -n 4` or log with `--log-level 5` or higher."
            + where_to_act(situation, namespaced=False),
        )
    return Check("console loglevel", Status.OK, shown, "LOG lines do not go to the console.")


def check_ratelimits(system: System) -> Check:
    """printk/net rate limits and the ring buffer: what can drop or summarise lines."""
    names = {
        "printk_ratelimit": "kernel/printk_ratelimit",
        "printk_ratelimit_burst": "kernel/printk_ratelimit_burst",
        "net message_cost": "net/core/message_cost",
        "net message_burst": "net/core/message_burst",
    }
    values = {label: system.read(f"proc/sys/{path}") for label, path in names.items()}
    shown = ", ".join(f"{label}={value}" for label, value in values.items() if value is not None)
    ring = ring_buffer_size(system)
    if ring:
        shown += f", ring buffer {ring // 1024} KiB"
    advice = (
        "LOG and nft log rules are not rate limited by the kernel (only by -m limit / limit "
        "rate in the rule, which drops lines without a marker); these limits apply to other "
        "kernel messages ('N callbacks suppressed'). A burst larger than the ring buffer is "
        "lost by a reader that falls behind: gaps in kmsg sequence numbers show it."
    )
    return Check("rate limits", Status.OK if shown else Status.UNKNOWN, shown or None, advice)


def ring_buffer_size(system: System) -> int | None:
    """The kernel log ring buffer size from CONFIG_LOG_BUF_SHIFT in /proc/config.gz."""
    try:
        config = gzip.decompress(system.path("proc/config.gz").read_bytes()).decode()
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    match = re.search(r"^CONFIG_LOG_BUF_SHIFT=(\d+)$", config, re.MULTILINE)
    return 1 << int(match.group(1)) if match else None


DAEMONS = {
    "rsyslogd": "rsyslog",
    "syslog-ng": "syslog-ng",
    "systemd-journal": "journald",  # /proc/PID/comm is cut to 15 characters
    "syslogd": "syslogd",
}
KERNEL_SELECTOR = re.compile(r"^(\*|[a-z,]*\bkern\b[a-z,]*)\.(?!none\b)[!=a-z*]+$")


def running_daemons(system: System) -> set[str] | None:
    """Which syslog daemons run (as this /proc shows them); None when /proc cannot be listed."""
    try:
        entries = [entry for entry in system.path("proc").iterdir() if entry.name.isdigit()]
    except OSError:
        return None
    found = set()
    for entry in entries:
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:  # the process ended while we looked, or hidden (hidepid)
            continue
        if comm in DAEMONS:
            found.add(DAEMONS[comm])
    return found


def config_text(system: System, main: str, directory: str) -> str:
    """A daemon's main configuration file and its *.conf includes, comments removed."""
    files = [system.path(main), *sorted(system.path(directory).glob("*.conf"))]
    lines = []
    for path in files:
        try:
            lines += path.read_text(errors="replace").splitlines()
        except OSError:
            continue
    return "\n".join(line.split("#", 1)[0].rstrip() for line in lines)


def rsyslog_kernel_files(system: System) -> tuple[bool, list[str]]:
    """Whether rsyslog reads kernel messages (imklog/imkmsg) and the files it writes them to."""
    text = config_text(system, "etc/rsyslog.conf", "etc/rsyslog.d")
    reads_kernel = bool(re.search(r"\bim(klog|kmsg)\b", text))
    files = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").startswith("/"):
            continue
        if any(KERNEL_SELECTOR.match(part) for part in fields[0].split(";")):
            files.append(fields[1].lstrip("-"))
    return reads_kernel, files


def syslog_ng_kernel_files(system: System) -> list[str]:
    """The files of syslog-ng destinations that look like kernel or catch-all logs."""
    text = config_text(system, "etc/syslog-ng/syslog-ng.conf", "etc/syslog-ng/conf.d")
    destinations = re.findall(r'destination\s+(\w+)\s*\{\s*file\(\s*"([^"]+)"', text)
    kernel = [path for name, path in destinations if "kern" in name]
    return kernel or [path for name, path in destinations if name in ("d_syslog", "d_messages")]


def check_syslog(system: System, situation: Situation) -> Check:
    """Which daemon writes kernel messages, and to which files."""
    daemons = running_daemons(system)
    reads_kernel, rsyslog_files = rsyslog_kernel_files(system)
    ng_files = syslog_ng_kernel_files(system)
    journal = system.path("var/log/journal").is_dir()
    if daemons is None:
        return Check("syslog", Status.UNKNOWN, None, "Could not list /proc to see daemons.")
    found = []
    if "rsyslog" in daemons and reads_kernel and rsyslog_files:
        found.append(f"rsyslog -> {', '.join(rsyslog_files)}")
    if "syslog-ng" in daemons and ng_files:
        found.append(f"syslog-ng -> {', '.join(ng_files)}")
    if "journald" in daemons:
        found.append("journald (" + ("persistent" if journal else "volatile, lost at reboot") + ")")
    if found:
        advice = (
            "Kernel lines are kept there: `logpath ingest FILE`, or "
            "`journalctl -k -o short-iso-precise | logpath ingest -`."
        )
        return Check("syslog", Status.OK, "; ".join(found), advice)
    return Check(
        "syslog",
        Status.WARN,
        not_running(daemons, rsyslog_files, ng_files),
        no_daemon_advice(situation),
    )


def not_running(daemons: set[str], rsyslog_files: list[str], ng_files: list[str]) -> str:
    """What was found instead of a daemon that writes kernel messages."""
    configured = []
    if rsyslog_files:
        configured.append(f"rsyslog configured for {', '.join(rsyslog_files)}")
    if ng_files:
        configured.append(f"syslog-ng configured for {', '.join(ng_files)}")
    running = ", ".join(sorted(daemons)) or "none"
    return f"running: {running}" + (
        f"; {'; '.join(configured)} but not running" if configured else ""
    )


def no_daemon_advice(situation: Situation) -> str:
    """What to do when no daemon keeps the kernel's lines."""
    if situation.container and not situation.on_host:
        return (
            "No syslog daemon here, which is normal in a container: the kernel log is the "
            "host's, so read the host's syslog or journal (or `dmesg` on the host)."
        )
    return (
        "No running daemon writes kernel messages to a file: LOG lines live only in the "
        "kernel's ring buffer, overwritten as it fills. Read them soon with "
        "`dmesg > FILE` (then `logpath ingest FILE`), or start rsyslog or journald."
    )


def check_dmesg_access(system: System, situation: Situation) -> Check:
    """Whether this user may read the kernel log (kernel.dmesg_restrict)."""
    value, problem = read_setting(system, "kernel/dmesg_restrict")
    if problem:
        return unreadable("dmesg_restrict", "kernel/dmesg_restrict", problem)
    # CAP_SYSLOG counts only in the initial user namespace: a container's root is refused too
    if value == "1" and (os.geteuid() != 0 or situation.user_namespace):
        return Check(
            "dmesg_restrict",
            Status.WARN,
            value,
            "Only root (CAP_SYSLOG) may read the kernel log: run dmesg with sudo, or read the "
            "syslog files (group adm on Debian).",
        )
    return Check("dmesg_restrict", Status.OK, value, "The kernel log can be read with dmesg.")


def run_checks(root: Path = Path("/"), runner: Runner | None = run_command) -> list[Check]:
    """Every check, in the order a reader follows a packet's lines from kernel to file.

    Args:
        root: the directory standing for ``/`` (a fake tree in tests).
        runner: runs commands such as ``iptables -V``; None to only read files. Ignored
            unless root is ``/``.
    Returns:
        One Check per finding.
    """
    system = System(root, runner if root == Path("/") else None)
    situation = detect_situation(system)
    return [
        check_where(situation),
        *check_br_netfilter(system, situation),
        check_nf_log_all_netns(system, situation),
        check_ip_forward(system, situation),
        check_backend(system),
        check_nf_log_binding(system),
        check_syslog(system, situation),
        check_dmesg_access(system, situation),
        check_console(system, situation),
        check_ratelimits(system),
        # this installation's, not the tree's: only of the real system
        *([check_parser()] if root == Path("/") else []),
    ]


def check_parser() -> Check:
    """Which parser this logpath reads lines with: the C scanner generated from the grammar,
    or the pure-Python path (the same hops, ~3 times the CPU) where it was not built."""
    from logpath.parse import scanner, scanner_status

    value = scanner_status().removeprefix("parser: ")
    if scanner() is not None:
        return Check("parser", Status.OK, value, "Lines are read at the scanner's speed.")
    return Check("parser", Status.WARN, value, "Ingest reads the same hops, more slowly.")
