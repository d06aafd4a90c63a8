"""Run a command and measure it from outside: wall time, peak RSS, and the machine it ran on.

Peak memory is taken two ways because logpath may use worker processes: GNU time's `%M`
(ru_maxrss: the largest single process, the child or any descendant it waited for), and a
sampler that sums the memory of the whole process tree and keeps the maximum: each process's
PSS without its shared memory, plus the machine's shared memory (``Shmem``) grown since the
command started. Processes hand tables over in files in /dev/shm: a file mapped by two
processes is in both PSS (split), one not mapped, or not wholly touched, in neither, though it
holds memory (the later half of the 2M-line replay handed to a worker: 91 MiB in /dev/shm,
~48 MiB of it in the worker's PSS); ``Shmem`` counts each such page once, mapped or not.
The command runs under /usr/bin/time rather than straight from Python because the kernel
carries the pre-exec memory's high-water mark into ru_maxrss at exec: a child forked from this
~70 MB Python would report at least 70 MB whatever it really used.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
RESULTS_DIR = BENCH_DIR / "results"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
# The process tree's PSS is read every half second: every 0.02 s, reading each process's
# smaps_rollup (the kernel walks its mappings under their lock) slowed the 2M-line replay's
# ingest from 15.5-16.0 s to 18.4-19.7 s (2026-12-06, two runs each, in turn), for a peak
# within 4% of the same. ``max_rss_kb`` (the operating system's own) is exact either way.
SAMPLE_SECONDS = 0.5
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one run of a command cost and printed."""

    command: list[str]
    returncode: int
    wall_seconds: float
    max_rss_kb: int  # largest single process (wait4 ru_maxrss)
    tree_peak_kb: int  # largest sampled PSS sum over the process tree
    cpu_seconds: float  # user + system time of the command and its waited-for children
    load_before: float  # 1-minute load average when it started: other work skews wall time
    stdout: str
    stderr: str


def children_of() -> dict[int, list[int]]:
    """Map each pid to its child pids, read from /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def memory_kb(pid: int) -> int:
    """A process's proportional set size (shared pages split among their users) without its
    shared memory (``Pss_Shmem``: counted by ``shmem_kb`` instead), in KiB.

    Worker processes forked from the parent share its pages copy-on-write; summing their RSS
    would count those pages once per worker, summing PSS counts them once.
    """
    try:
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        )
        if "Pss" in fields:
            return int(fields["Pss"].split()[0]) - int(fields.get("Pss_Shmem", "0 kB").split()[0])
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def shmem_kb() -> int:
    """The machine's shared memory (/dev/shm's files, mapped or not), in KiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return 0


def tree_rss_kb(root: int, shmem_before: int = 0) -> int:
    """Memory of `root` and all its descendants, in KiB: their PSS without shared memory, plus
    the shared memory grown since ``shmem_before`` (any other process's too: none on the
    benchmark machine)."""
    tree, total, todo = children_of(), 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        total += memory_kb(pid)
    return total + max(0, shmem_kb() - shmem_before)


def run_measured(command: list[str]) -> Measurement:
    """Run `command` to completion and measure it; its output is spooled to temporary files."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r") as rss,
    ):
        timed = [GNU_TIME, "-f", "%M %U %S", "-o", rss.name, *command] if GNU_TIME else command
        load = os.getloadavg()[0]
        shmem_before = shmem_kb()
        started = time.perf_counter()
        child = subprocess.Popen(timed, stdout=out, stderr=err, text=True)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                peak[0] = max(peak[0], tree_rss_kb(child.pid, shmem_before))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        # GNU time writes "Command exited with non-zero status N" before its line on failure.
        reported = rss.read().split()
        if GNU_TIME and len(reported) >= 3:
            max_rss, cpu = int(reported[-3]), float(reported[-2]) + float(reported[-1])
        else:
            max_rss, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        return Measurement(
            command, child.returncode, wall, max_rss, peak[0], cpu, load, out.read(), err.read()
        )


def logpath_executable() -> str:
    """The `logpath` console script next to this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "logpath"
    if beside.exists():
        return str(beside)
    found = shutil.which("logpath")
    if found is None:
        raise SystemExit("logpath is not installed: run `pip install -e .` in the repository")
    return found


def has_command(name: str) -> bool:
    """Whether `logpath NAME --help` works (the command exists in this checkout)."""
    probe = subprocess.run(
        [logpath_executable(), name, "--help"], capture_output=True, text=True, check=False
    )
    return probe.returncode == 0


def machine() -> dict[str, str]:
    """CPU model, core count, memory, OS and Python: the context a figure needs."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": model,
        "nproc": str(os.cpu_count()),
        "memory": f"{memory_kb / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def mib(kb: int) -> str:
    """KiB as MiB with one decimal."""
    return f"{kb / 1024:.1f} MiB"


def publish(report: str, output: Path) -> None:
    """Write a results page (creating its folder) and show it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    print(report)
