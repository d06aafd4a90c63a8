"""A hostile world through the CLI: damaged and misplaced stores, a full disk.

The full-disk case mounts a tmpfs (root only).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from logpath.cli import app
from logpath.cli.app import ExitStatus

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "samples" / "seed" / "syslog"
OTHER = ROOT / "samples" / "formats" / "ipv4-tcp-basic.log"  # 13 hops of another host
JOURNEY = "08e3ad5cfb-55148"  # the seed's MASQUERADE journey
# A line that looks like a netfilter line but does not parse (as in test_cli_ingest.py).
BOGUS = "fw: IN=eth0 OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=1 BOGUS\n"
CLI = "from logpath.cli import main; main()"
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


# --- damaged and misplaced stores -----------------------------------------------------------


def _part(store: Path, folder: str = "hops") -> Path:
    (part,) = (store / folder).glob("*.parquet")
    return part


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


def _commands(tmp: Path) -> dict[str, list[str]]:
    return {
        "ingest": ["ingest", str(OTHER)],
        "hops": ["hops"],
        "flows": ["flows"],
        "journey": ["journey", JOURNEY],
        "render": ["render", JOURNEY, "-o", str(tmp / "j.svg")],
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


@pytest.mark.parametrize("command", ["hops", "flows", "journey", "render", "report"])
def test_a_part_damaged_inside_is_named_by_every_command_that_reads_it(
    store: Path, tmp_path: Path, command: str
) -> None:
    part = _part(store)
    data = bytearray(part.read_bytes())
    data[1000:4000] = b"\xff" * 3000  # the footer is whole: the damage shows when decoding
    part.write_bytes(bytes(data))
    result = run(*_commands(tmp_path)[command], "--store", str(store))
    assert result.exit_code == ExitStatus.ERROR
    assert result.stderr.startswith(f"logpath: {part}: the store is damaged and cannot be read")


def test_a_port_query_names_the_damaged_part_too(store: Path) -> None:
    # a filtered query goes through the dataset scanner, whose errors name no file
    part = _part(store)
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
    log = tmp_path / "syslog"  # 30,000 lines: an 850 kB hop part
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_syslog.py"),
                    "--lines", "30000", str(log)], check=True, capture_output=True)  # fmt: skip
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as disk:
        store = Path(shutil.copytree(pristine, disk / "store"))
        (disk / "filler").write_bytes(b"\0" * 400_000)  # what else fills the disk
        free = shutil.disk_usage(disk).free
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
