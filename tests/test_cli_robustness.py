"""A hostile world through the CLI: damaged and misplaced stores, a full disk, a read-only
store, killed and stopped ingests, and the exit codes that tell a script what happened.

The full-disk and read-only cases mount a tmpfs or a read-only bind mount (root only); the
process cases run `logpath ingest` as a real process on a generated 44 MB syslog and look for
what it leaves behind in /proc.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import logpath.ingest
from logpath.cli import app
from logpath.cli.app import ExitStatus
from logpath.errors import WorkerError
from logpath.ingest import _result as ingest_result
from logpath.ingest import _Workers
from logpath.lines import Block

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "samples" / "seed" / "syslog"
OTHER = ROOT / "samples" / "formats" / "ipv4-tcp-basic.log"  # 13 hops of another host
JOURNEY = "08e3ad5cfb-55148"  # a flow id (commands that fail before looking it up)
# A line that looks like a netfilter line but does not parse (as in test_cli_ingest.py).
BOGUS = "fw: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 BOGUS\n"
CLI = "from logpath.cli import main; main()"
# The same, its threads' stacks written to its standard error on SIGUSR2 (``ended``)
CLI_TRACEABLE = f"import faulthandler, signal; faulthandler.register(signal.SIGUSR2); {CLI}"
MARKER = "LOGPATH_TEST_MARKER"  # the processes of one test carry it in their environment

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """A CLI run; a traceback (an exception the CLI let through) fails the test here."""
    result = runner.invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"logpath {' '.join(args)} let an exception through") from (
            result.exception
        )
    return result


def parts(store: Path) -> dict[str, list[str]]:
    """The parts in the store's directories, and those its manifest names."""
    manifest = json.loads((store / "manifest.json").read_text())
    return {
        "hops": sorted(p.name for p in (store / "hops").glob("*.parquet")),
        "rejected": sorted(p.name for p in (store / "rejected").glob("*.parquet")),
        "named hops": sorted(manifest["parts"]),
        "named rejected": sorted(manifest["rejected_parts"]),
    }


def assert_only_committed_parts(store: Path) -> None:
    found = parts(store)
    assert found["hops"] == found["named hops"]
    assert found["rejected"] == found["named rejected"]


def hop_count(store: Path | str) -> int:
    result = run("hops", "--store", str(store), "--json")
    assert result.exit_code == 0, result.stderr
    return len(json.loads(result.stdout))


def assert_lock_free(store: Path) -> None:
    with (store / "lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if still held
        fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed and one rejected line, ingested: a store with a hop part and a rejected part."""
    path = tmp_path_factory.mktemp("pristine")
    (path / "bogus.log").write_text(BOGUS)
    result = run("ingest", str(SEED), str(path / "bogus.log"), "--store", str(path / "store"),
                 "--year", "2016")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return path / "store"


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine store, this test's to damage."""
    return Path(shutil.copytree(pristine, tmp_path / "store"))


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 200,000-line (44 MB) Docker-host syslog: ingest runs its parse workers for seconds."""
    path = tmp_path_factory.mktemp("big") / "syslog"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_syslog.py"),
                    "--lines", "200000", str(path)], check=True, capture_output=True)  # fmt: skip
    return path


# --- damaged and misplaced stores -----------------------------------------------------------


def _part(store: Path, folder: str = "hops") -> Path:
    (part,) = (store / folder).glob("*.parquet")
    return part


def _assembled(store: Path, kind: str) -> Path:
    """The file of the assembled table ``kind`` ("flows" or "trace") the manifest names (the
    seed's one host, over minutes: one file)."""
    manifest = json.loads((store / "manifest.json").read_text())
    (entry,) = manifest["assembly"][kind]
    return store / "assembled" / entry["file"]


def _write_manifest(text: str) -> Callable[[Path], Path]:
    def damage(store: Path) -> Path:
        (store / "manifest.json").write_text(text)
        return store / "manifest.json"

    return damage


def _remove_hop_part(store: Path) -> Path:
    part = _part(store)
    part.unlink()
    return part


def _cut_hop_part(store: Path) -> Path:
    part = _part(store)
    part.write_bytes(part.read_bytes()[:2000])  # a copy cut short: no footer
    return part


def _remove_rejected_part(store: Path) -> Path:
    part = _part(store, "rejected")
    part.unlink()
    return part


def _store_is_a_file(store: Path) -> Path:
    shutil.rmtree(store)
    store.write_text("not a store\n")
    return store


# How each damage is made (returning the damaged file), and what the message says of it.
DAMAGES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "manifest []": (_write_manifest("[]"), "the store's manifest is damaged"),
    "manifest {}": (_write_manifest("{}"), "the store's manifest is damaged"),
    "manifest names a path": (
        _write_manifest(
            '{"version": 1, "parts": ["../../x.parquet"], "rejected_parts": [], "sources": {}}'
        ),
        "the store's manifest is damaged ('../../x.parquet' is not a part's file name)",
    ),
    "hop part missing": (_remove_hop_part, "this part of the store is missing"),
    "hop part cut short": (
        _cut_hop_part,
        "this part of the store is damaged: not a whole Parquet file (2,000 bytes",
    ),
    "rejected part missing": (_remove_rejected_part, "this part of the store is missing"),
    "store is a file": (_store_is_a_file, "is a file, not a hop store"),
}


def _commands(tmp: Path, flow: str = JOURNEY) -> dict[str, list[str]]:
    return {
        "ingest": ["ingest", str(OTHER)],
        "hops": ["hops"],
        "flows": ["flows"],
        "journey": ["journey", flow],
        "render": ["render", flow, "-o", str(tmp / "j.svg")],
        "report": ["report", "-o", str(tmp / "report")],
        "rejected": ["rejected"],
    }


def _snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", list(_commands(Path())))
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_misplaced_store_is_one_message_naming_the_file(
    store: Path, tmp_path: Path, damage: str, command: str
) -> None:
    make, says = DAMAGES[damage]
    damaged = make(store)
    before = _snapshot(store)
    result = run(*_commands(tmp_path)[command], "--store", str(store))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"logpath: {damaged}: {says}")
    assert result.stdout == ""
    # nothing "repaired" away: with a manifest of {}, the parts would have been removed as a
    # killed run's leftovers
    assert _snapshot(store) == before


# The file each command reads first: hops the hop parts; flows the assembled connections; journey
# and render one connection's hops, report all of them, in the assembled trace.
READS = {"hops": "hops", "flows": "flows", "journey": "trace", "render": "trace", "report": "trace"}


@pytest.mark.parametrize("command", list(READS))
def test_a_part_damaged_inside_is_named_by_every_command_that_reads_it(
    store: Path, tmp_path: Path, command: str
) -> None:
    kind = READS[command]
    # the seed's MASQUERADE connection (its id depends on where the checkout is)
    listed = json.loads(run("flows", "--port", "55148", "--json", "--store", str(store)).stdout)
    (flow,) = [f["id"] for f in listed]
    part = _part(store) if kind == "hops" else _assembled(store, kind)
    data = bytearray(part.read_bytes())
    data[1000:4000] = b"\xff" * 3000  # the footer is whole: the damage shows when decoding
    part.write_bytes(bytes(data))
    result = run(*_commands(tmp_path, flow)[command], "--store", str(store))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"logpath: {part}: the store is damaged and cannot be read")


def test_a_port_query_names_the_damaged_part_too(store: Path) -> None:
    # a filtered query goes through the dataset scanner, whose errors name no file
    part = _assembled(store, "trace")
    data = bytearray(part.read_bytes())
    data[1000:4000] = b"\xff" * 3000
    part.write_bytes(bytes(data))
    result = run("flows", "--port", "12580", "--store", str(store))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"logpath: {part}: the store is damaged and cannot be read")


def test_a_store_inside_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    inside = tmp_path / "file" / "store"
    result = run("ingest", str(SEED), "--store", str(inside))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"logpath: {inside}: the store cannot be written (")


# --- mounts: a full disk, a read-only store ---------------------------------------------------


@contextmanager
def mounted(target: Path, *options: str) -> Iterator[Path]:
    """``mount`` at target (made), unmounted afterwards; skipped where this user cannot mount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs or a bind mount needs root")
    target.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def test_a_full_disk_is_one_message_and_the_run_leaves_nothing_behind(
    pristine: Path, tmp_path: Path
) -> None:
    log = tmp_path / "syslog"  # 30,000 lines: a 740 kB hop part, 520 kB assembled
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_syslog.py"),
                    "--lines", "30000", str(log)], check=True, capture_output=True)  # fmt: skip
    # the hop part it makes, on a disk with room: the full disk leaves half of that free
    assert run("ingest", str(log), "--store", str(tmp_path / "roomy")).exit_code == 0
    (part,) = (tmp_path / "roomy" / "hops").glob("*.parquet")
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=2m", "tmpfs") as disk:
        store = Path(shutil.copytree(pristine, disk / "store"))
        room = shutil.disk_usage(disk).free - part.stat().st_size // 2
        (disk / "filler").write_bytes(b"\0" * room)  # what else fills the disk
        free = shutil.disk_usage(disk).free
        # a new store that fills the disk on its first run: nothing of it is left
        result = run("ingest", str(log), "--store", str(disk / "new" / "store"))
        assert result.exit_code == ExitStatus.ERROR
        assert "No space left on device" in result.stderr
        assert not (disk / "new").exists()
        assert shutil.disk_usage(disk).free == free
        result = run("ingest", str(log), "--store", str(store))
        assert result.exit_code == ExitStatus.ERROR
        (written,) = [line for line in result.stderr.splitlines() if line.startswith("logpath:")]
        assert written.startswith(f"logpath: {store / 'hops'}/hops-")
        assert written.endswith(
            ".parquet: No space left on device; nothing of this run was stored, and what it "
            "wrote was removed"
        )
        # this run's files are gone: the disk is as free as before, the store as it was
        assert shutil.disk_usage(disk).free == free
        assert_only_committed_parts(store)
        assert_lock_free(store)
        assert hop_count(store) == 27
        # the next ingest works at once (it used to fail writing the lock file)
        assert run("ingest", str(OTHER), "--store", str(store)).exit_code == 0
        assert hop_count(store) == 27 + 13
        # and with space freed, the big file goes in whole
        (disk / "filler").unlink()
        result = run("ingest", str(log), "--store", str(store), "--json")
        assert result.exit_code == 0, result.stderr
        hops = json.loads(result.stdout)["hops"]
        assert hops > 15_000
        assert hop_count(store) == 27 + 13 + hops
        assert_only_committed_parts(store)


def test_a_read_only_store_is_refused_before_any_input_is_read(
    pristine: Path, tmp_path: Path
) -> None:
    source = Path(shutil.copytree(pristine, tmp_path / "store"))
    with mounted(tmp_path / "ro", "--bind", str(source)) as ro:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        # standard input stays open: an ingest that read it before looking at the store would
        # wait for ever
        process = subprocess.Popen(
            [sys.executable, "-c", CLI, "ingest", "-", "--store", str(ro)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            code = process.wait(timeout=60)
        finally:
            process.kill()
            out, err = process.communicate()
        assert code == ExitStatus.ERROR
        assert err == (
            f"logpath: {ro}: the store cannot be written (Read-only file system)\n\n"
            "Nothing was read. Use another --store, or make this one writable.\n"
        )
        assert out == ""
        assert hop_count(ro) == 27  # and it is still read


# --- killed and stopped ingests ----------------------------------------------------------------


def marked(marker: str) -> dict[int, str]:
    """The live processes whose environment carries this test's marker, with their command."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if f"{MARKER}={marker}".encode() in environ and state != "Z":
            found[int(entry.name)] = command
    return found


def workers(marker: str) -> list[int]:
    """The parse workers among the marked processes: forked by the workers' server (a
    multiprocessing forkserver, forked by the ingest), so a forkserver's children."""
    servers = {pid for pid, command in marked(marker).items() if "forkserver" in command}
    found = []
    for pid in servers:
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent in servers:
            found.append(pid)
    return sorted(found)


def _workers_busy(marker: str) -> bool:
    """Both parse workers started and past their initialiser (they ignore SIGTERM, the ingest
    handles it), or, without one, parsing for a while."""
    busy = 0
    for pid in workers(marker):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ignored = int(status.split("SigIgn:")[1].split()[0], 16)
        cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        busy += bool(ignored & (1 << (signal.SIGTERM - 1))) or cpu > 4
    return busy >= 2


def ended(
    process: subprocess.Popen[bytes], marker: str, tmp_path: Path, timeout: float = 60
) -> int:
    """The exit code of an ``ingesting`` process, once it ends; failing the test with what was
    left running, and the ingest's stacks (``CLI_TRACEABLE``), when it has not ended in
    ``timeout`` seconds (under two full suites at once, a stopped ingest twice did not end in
    60 s, and the test said no more than that)."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGUSR2)
        time.sleep(2)
        left = {}
        for pid, command in marked(marker).items():
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                left[pid] = (command[:80], state, Path(f"/proc/{pid}/wchan").read_text())
        err = (tmp_path / "err").read_text(errors="replace")
        pytest.fail(f"the ingest did not end in {timeout} s; left: {left}\nits stderr:\n{err}")


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@contextmanager
def ingesting(
    log: Path,
    store: Path,
    tmp_path: Path,
    *,
    own_group: bool = False,
    until: Callable[[str], bool] | None = None,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`logpath ingest` as a process with two workers, marked (in a process group of its own
    when ``own_group``), handed over once ``until(marker)`` holds (by default: both workers
    busy); whatever it leaves is killed afterwards (by pid) so that a failing test does not
    leave it running either."""
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER: marker, "LOGPATH_WORKERS": "2"}
    # files, not pipes: a worker left behind would hold a pipe open and hang the test
    with (tmp_path / "out").open("wb") as out, (tmp_path / "err").open("wb") as err:
        process = subprocess.Popen([sys.executable, "-c", CLI_TRACEABLE, "ingest", str(log),
                                    "--store", str(store)], env=env, stdout=out, stderr=err,
                                   start_new_session=own_group)  # fmt: skip
    try:
        assert wait_for(lambda: (until or _workers_busy)(marker), 120), "not started"
        yield process, marker
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for pid in marked(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_or_stopped_ingest_leaves_no_process_behind(
    store: Path, big_log: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    with ingesting(big_log, store, tmp_path) as (process, marker):
        running = " ".join(marked(marker).values())
        assert "multiprocessing.resource_tracker" in running and len(workers(marker)) == 2
        process.send_signal(signum)
        code = ended(process, marker, tmp_path)
        # the workers, their server and multiprocessing's resource tracker go with it
        assert wait_for(lambda: not marked(marker), 10), marked(marker)
    err = (tmp_path / "err").read_text()
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        # the parts it was writing are left; the next writer removes them
        result = run("ingest", str(SEED), "--store", str(store))
        assert result.exit_code == 0, result.stderr
    else:  # stopped: cleaned up, and says so
        assert (code, err) == (
            128 + signum,
            f"logpath: stopped by {signum.name}; nothing of this run was stored\n",
        )
    assert_only_committed_parts(store)
    assert_lock_free(store)
    assert hop_count(store) == 27


def _server_started(marker: str) -> bool:
    return any("forkserver" in command for command in marked(marker).values())


@pytest.mark.parametrize(
    ("signum", "until"),
    [(signal.SIGTERM, None), (signal.SIGHUP, None), (signal.SIGINT, _server_started)],
    ids=["SIGTERM-parsing", "SIGHUP-parsing", "SIGINT-starting"],
)
def test_a_stop_sent_to_the_whole_process_group_is_the_ingests_to_handle(
    store: Path,
    big_log: Path,
    tmp_path: Path,
    signum: signal.Signals,
    until: Callable[[str], bool] | None,
) -> None:
    """As a service manager, a closed terminal or Ctrl-C sends it: the workers and their server
    ignore it (a server killed by it would take the workers with it, and the ingest would report
    a dead worker instead of its stop). Even in the run's first second: the server and
    multiprocessing's resource tracker ignore it only once started, and the ingest turned it
    into its stop only once it had imported the pipeline (a Ctrl-C then ended the server or the
    tracker with a traceback on the ingest's standard error, and the ingest without a word)."""
    with ingesting(big_log, store, tmp_path, own_group=True, until=until) as (process, marker):
        os.killpg(process.pid, signum)
        code = ended(process, marker, tmp_path)
        assert wait_for(lambda: not marked(marker), 10), marked(marker)
    assert (code, (tmp_path / "err").read_text()) == (
        128 + signum,
        f"logpath: stopped by {signum.name}; nothing of this run was stored\n",
    )
    assert_only_committed_parts(store)
    assert_lock_free(store)
    assert hop_count(store) == 27


def test_a_killed_worker_ends_the_run_with_a_message(
    store: Path, big_log: Path, tmp_path: Path
) -> None:
    with ingesting(big_log, store, tmp_path) as (process, marker):
        worker = workers(marker)[0]
        os.kill(worker, signal.SIGKILL)  # as the OOM killer would
        code = ended(process, marker, tmp_path)
        assert wait_for(lambda: not marked(marker), 10), marked(marker)
    assert code == ExitStatus.ERROR
    assert (tmp_path / "err").read_text() == (
        "logpath: a parse worker process died (killed, or out of memory?); nothing of this run "
        "was stored\n"
    )
    assert_only_committed_parts(store)
    assert hop_count(store) == 27


def _stuck_mid_result(workers: _Workers) -> Future[object]:
    """A pool in the state a worker killed while it wrote its result leaves behind: the pool's
    manager has read the head of a message (1 MiB announced, 100 bytes come) and waits in
    ``recv`` for the rest; the one worker sleeps on its task meanwhile."""
    pool = workers.started()
    future = pool.submit(time.sleep, 120)
    assert wait_for(lambda: len(pool._processes) == 1 and future.running(), 60)
    pipe = pool._result_queue._writer  # type: ignore[attr-defined]
    os.write(pipe.fileno(), struct.pack("!i", 1 << 20) + b"\0" * 100)
    return future


def _within(seconds: float, work: Callable[[], object]) -> BaseException | None:
    """Run ``work`` in a thread; fail if it does not end within ``seconds``; what it raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the test
            raised.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s"
    return raised[0] if raised else None


def test_a_worker_killed_while_writing_its_result_ends_the_run() -> None:
    workers = _Workers(2)
    future = _stuck_mid_result(workers)
    (worker,) = workers.started()._processes.values()
    os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer would
    raised = _within(30, lambda: ingest_result(future))
    assert isinstance(raised, WorkerError), raised
    assert _within(30, workers.close) is None


def test_a_worker_dead_before_the_next_block_is_handed_over_ends_the_run(tmp_path: Path) -> None:
    """The pool breaks when a worker dies; handing it the next block then raised
    BrokenProcessPool, a traceback where the run's message belongs (seen on Debian's Python when
    a worker was killed between two blocks)."""
    data = SEED.read_bytes()
    block = Block(1, data.count(b"\n"), data)
    workers = _Workers(2)
    mtime = datetime.now(UTC)
    assert len(list(workers.submit("syslog", mtime, None, block, 0))) == 1  # parsed here
    try:
        list(workers.submit("syslog", mtime, None, block, 0))  # the pool starts
        pool = workers.started()
        assert wait_for(lambda: len(pool._processes) >= 1, 60)
        for worker in list(pool._processes.values()):
            os.kill(worker.pid, signal.SIGKILL)  # as the OOM killer would
        assert wait_for(lambda: pool._broken, 30)
        with pytest.raises(WorkerError, match="a parse worker process died"):
            list(workers.submit("syslog", mtime, None, block, 0))
    finally:
        workers.kill()
        assert _within(30, workers.close) is None


def test_a_run_shuts_its_pool_down_after_the_watchdogs_kill_not_beside_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watchdog kills the workers (a worker died) while the run, ended by that death,
    shuts its pool down: both closed the pool's pipes at once, and the second close of one
    raised EBADF in place of the run's WorkerError (1 in 20 runs of the test above under
    load). The shutdown waits for the kill, and no kill starts after it."""
    events: list[str] = []
    kill_workers = logpath.ingest.kill_workers

    def slow_kill(pool: Any) -> None:
        events.append("kill begins")
        time.sleep(0.5)
        kill_workers(pool)
        events.append("kill ends")

    monkeypatch.setattr(logpath.ingest, "kill_workers", slow_kill)
    workers = _Workers(2)
    future = _stuck_mid_result(workers)
    pool = workers.started()
    shutdown = pool.shutdown

    def noted_shutdown(*args: Any, **kwargs: Any) -> None:
        events.append("shutdown")
        shutdown(*args, **kwargs)

    monkeypatch.setattr(pool, "shutdown", noted_shutdown)
    (worker,) = pool._processes.values()
    os.kill(worker.pid, signal.SIGKILL)
    assert wait_for(lambda: events == ["kill begins"], 10), events  # the watchdog's
    assert _within(30, workers.close) is None
    assert events == ["kill begins", "kill ends", "shutdown"]
    assert isinstance(_within(30, lambda: ingest_result(future)), WorkerError)
    workers.kill()  # after the shutdown: nothing
    assert events == ["kill begins", "kill ends", "shutdown"]


def test_a_stopped_run_shuts_down_a_pool_stuck_on_a_result() -> None:
    workers = _Workers(2)
    future = _stuck_mid_result(workers)
    workers.kill()  # what ingest does on a stop (SIGTERM, Ctrl-C) before closing
    assert _within(30, workers.close) is None
    assert future.done()


def _server_children() -> list[int]:
    """The live processes the workers' server forked (its workers)."""
    from multiprocessing import forkserver

    server = forkserver._forkserver._forkserver_pid
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == server and stat[0] != "Z":
                    found.append(int(entry.name))
    return found


def test_a_stop_while_a_worker_is_forked_leaves_no_worker_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop that arrives while the pool forks a worker, between the server's fork and the
    worker's pid reaching the ingest (as under load: the ingest waits on the server): raised
    there, it left a worker the pool never knew of, which the stop's kill missed; the stopped
    run then waited for ever (seen twice under two full suites: the pool's manager joined a
    feeder blocked writing a block into a pipe only that worker held, as ``ended`` showed).
    The stop now takes effect once the worker is the pool's: the kill ends it."""
    from multiprocessing import forkserver

    from logpath.cli.app import stopped_by_signals
    from logpath.errors import Stopped

    real = forkserver.read_signed

    def read_signed(fd: int) -> int:
        pid: int = real(fd)
        signal.raise_signal(signal.SIGTERM)  # on its way: the handler runs on the return
        return pid

    monkeypatch.setattr(forkserver, "read_signed", read_signed)
    workers = _Workers(2)
    mtime = datetime(2026, 1, 14, tzinfo=UTC)
    block = Block(1, 1, SEED.read_bytes().splitlines(keepends=True)[0])
    stopped = None
    with stopped_by_signals():
        try:
            list(workers.submit("seed", mtime, 2026, block, 0))  # parsed here
            list(workers.submit("seed", mtime, 2026, block, 0))  # a worker forked
        except Stopped as stop:
            stopped = stop
            workers.kill()  # as ingest does on a stop
        try:
            # every worker the server forked was the pool's, and killed
            left = [] if wait_for(lambda: not _server_children(), 10) else _server_children()
            closed = _within(30, workers.close)
        finally:
            for pid in _server_children():  # what a failed run leaves, not to hang the suite
                os.kill(pid, signal.SIGKILL)
    assert stopped is not None and stopped.signal == signal.SIGTERM
    assert left == []
    assert closed is None


# --- exit codes -----------------------------------------------------------------------------


def test_an_ingest_that_can_read_no_input_makes_no_store(tmp_path: Path) -> None:
    new = tmp_path / "new"
    result = run("ingest", str(tmp_path / "missing.log"), str(tmp_path), "--store", str(new))
    assert result.exit_code == ExitStatus.ERROR
    assert f"logpath: {tmp_path / 'missing.log'}: no such file\n" in result.stderr
    assert f"logpath: {tmp_path}: is a directory, not a log file\n" in result.stderr
    assert result.stdout == ""
    assert not new.exists()


def _truncated_gzip(tmp: Path) -> Path:
    data = gzip.compress(OTHER.read_bytes() * 50)
    path = tmp / "kern.log.1.gz"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    "bad",
    [
        lambda tmp: tmp / "missing.log",
        lambda tmp: tmp,  # a directory
        _truncated_gzip,
    ],
    ids=["missing", "directory", "truncated gzip"],
)
def test_an_unreadable_input_is_exit_1_and_the_others_are_stored(
    tmp_path: Path, bad: Callable[[Path], Path]
) -> None:
    path = bad(tmp_path)
    store = tmp_path / "store"
    result = run("ingest", str(path), str(SEED), "--store", str(store), "--year", "2016")
    assert result.exit_code == ExitStatus.ERROR
    assert f"logpath: {path}: " in result.stderr
    hops = json.loads(run("hops", "--store", str(store), "--json").stdout)
    assert sum(h["source"] == str(SEED) for h in hops) == 27


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (BOGUS * 3, "all 3 netfilter line(s) rejected (`logpath rejected` says why)"),
        (
            "Jan 14 10:08:12 pc-baim sshd[812]: Accepted publickey for root from 10.0.0.9\n"
            "Jan 14 10:08:13 pc-baim systemd[1]: Started Session 4 of user root.\n",
            "none is a netfilter LOG line",
        ),
    ],
    ids=["every line rejected", "no netfilter line"],
)
def test_lines_read_but_no_hop_stored_is_exit_5(tmp_path: Path, lines: str, says: str) -> None:
    log = tmp_path / "kern.log"
    log.write_text(lines)
    store = str(tmp_path / "store")
    result = run("ingest", str(log), "--store", store)
    assert result.exit_code == ExitStatus.NOTHING_PARSED == 5
    count = len(lines.splitlines())
    assert result.stderr == f"logpath: {count} new line(s) read, no hop stored: {says}\n"
    # read again, nothing is new: that is no failure
    assert run("ingest", str(log), "--store", store).exit_code == 0


def test_the_exit_codes_are_in_the_help_and_the_readme() -> None:
    result = run("--help")
    assert result.exit_code == 0
    help_lines = [line.strip() for line in result.stdout.splitlines()]
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    for status in ExitStatus:
        assert any(line.startswith(f"{status.value}  ") for line in help_lines), status
        assert f"| {status.value} |" in section, status
    assert any(line.startswith("128+N  stopped by signal N") for line in help_lines)
    assert "| 128+N |" in section


def test_a_stop_keeps_the_pool_threads_invalid_state_off_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # python/cpython#107219 (not fixed in 3.11): a pool's manager thread, finding its workers
    # killed, raised InvalidStateError on a future the stop had cancelled. The filter a pool of
    # _Workers installs drops that exception of a pool's manager thread, and only that.
    import threading
    from concurrent.futures import InvalidStateError, ProcessPoolExecutor

    from logpath.ingest import _quiet_pool_managers

    seen: list[tuple[type[BaseException], threading.Thread | None]] = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: seen.append((args.exc_type, args.thread))
    )
    with ProcessPoolExecutor(1) as pool:
        pool.submit(int, 1).result()
        manager = pool._executor_manager_thread  # type: ignore[attr-defined]
        _quiet_pool_managers()
        installed = threading.excepthook
        _quiet_pool_managers()  # a second pool's start installs nothing more
        assert threading.excepthook is installed
        for exc_type, thread in [
            (InvalidStateError, manager),
            (RuntimeError, manager),
            (InvalidStateError, threading.current_thread()),
        ]:
            args = threading.ExceptHookArgs([exc_type, exc_type("x"), None, thread])
            threading.excepthook(args)
    assert seen == [(RuntimeError, manager), (InvalidStateError, threading.current_thread())]


@pytest.mark.parametrize(
    "question", [["flows"], ["hops", "--csv"], ["journey", "1"], ["rejected"], ["flows", "--json"]]
)
def test_an_output_that_cannot_be_written_is_one_line_not_a_traceback(
    tmp_path: Path, question: list[str]
) -> None:
    """Standard output on a full device (/dev/full): the question says so in one line and
    exits 1, with no traceback, and nothing more when the interpreter exits."""
    store = str(tmp_path / "store")
    ingest = ["ingest", str(SEED), "--rules", str(SEED.parent / "iptables.final.rules")]
    assert runner.invoke(app, [*ingest, "--store", store, "--year", "2016"]).exit_code == 0
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", CLI, *question, "--store", store],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr == "logpath: the output could not be written (No space left on device)\n"
