"""Inputs through `logpath ingest`: files recognised by their text (never confused, rotation and
growth still seen), a half-written last line held back, pipes and FIFOs read once, damaged gzip.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import logpath.lines
from logpath.cli import app
from logpath.query import PLACE_COLUMNS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SEED = SAMPLES / "seed" / "syslog"
FORMATS = SAMPLES / "formats"
LOGPATH = Path(sys.executable).parent / "logpath"
HELD_BACK = "last line has no newline yet: read on the next ingest"
runner = CliRunner()

# The start of a Debian 12 machine's dmesg: the same on every boot of the same kernel, and
# longer than the first KiB a file's candidates are found by.
BOOT = """\
[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=UUID=5f3c6b9e-2a4d-4c1e-9c53-0d7e4f9b8a21 ro quiet
[    0.000000] BIOS-provided physical RAM map:
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable
[    0.000000] BIOS-e820: [mem 0x000000007ffe0000-0x000000007fffffff] reserved
[    0.000000] NX (Execute Disable) protection: active
[    0.000000] SMBIOS 2.8 present.
[    0.000000] DMI: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    0.000000] tsc: Fast TSC calibration using PIT
[    0.000000] tsc: Detected 2894.562 MHz processor
"""


def _dmesg(line: str) -> str:
    """A /dev/kmsg record (kmsg-records.txt) as `dmesg` prints it: [seconds.micros] message."""
    prefix, message = line.split(";", 1)
    micros = int(prefix.split(",")[2])
    return f"[{micros // 1_000_000:5d}.{micros % 1_000_000:06d}] {message}"


def _first_boot() -> str:
    """The dmesg capture of one boot: its netfilter lines from dmesg-variants.txt."""
    lines = (FORMATS / "dmesg-variants.txt").read_text().splitlines(keepends=True)
    return BOOT + "".join(lines[1:3])


def _second_boot() -> str:
    """The dmesg capture of another boot of the same kernel: other netfilter lines."""
    records = (FORMATS / "kmsg-records.txt").read_text().splitlines()
    return BOOT + "".join(_dmesg(r) + "\n" for r in records)


def run(*args: str, input: str | bytes | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def ingest(store: Path, *paths: Path | str, input: str | bytes | None = None) -> dict[str, object]:
    code, out, err = run(
        "ingest", *map(str, paths), "--store", str(store), "--json", "--year", "2016", input=input
    )
    assert code == 0, err
    summary: dict[str, object] = json.loads(out)
    return summary


def hops(store: Path) -> list[dict[str, object]]:
    code, out, err = run("hops", "--store", str(store), "--json")
    assert code == 0, err
    listed: list[dict[str, object]] = json.loads(out)
    return listed


def facts(store: Path) -> list[dict[str, object]]:
    """The stored hops, each as ``said``."""
    return [said(h) for h in hops(store)]


def said(hop: dict[str, object]) -> dict[str, object]:
    """A hop without the file it came from: what its line said (not where assembly placed it:
    a packet's number depends on the store's other hops)."""
    return {k: v for k, v in hop.items() if k not in ("source", *PLACE_COLUMNS)}


def alone(tmp_path: Path, text: str) -> list[dict[str, object]]:
    """The hops of ``text`` ingested on its own, in a store of its own."""
    log = tmp_path / "alone" / "log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(text)
    store = tmp_path / "alone" / str(len(list(log.parent.iterdir())))
    ingest(store, log)
    return facts(store)


def counts_add_up(summary: dict[str, object], lines_in_file: int) -> None:
    """Every line read is parsed (a hop, rejected or skipped) or held back: none is lost."""
    assert summary["lines"] == summary["hops"] + summary["rejected"] + summary["skipped"]  # type: ignore[operator]
    read = summary["already_stored"] + summary["lines"] + summary["held_back"]  # type: ignore[operator]
    assert read == lines_in_file


# --- which file is which ---------------------------------------------------------------


def test_the_dmesg_of_two_boots_are_two_files(tmp_path: Path) -> None:
    first, second = tmp_path / "dmesg.boot1", tmp_path / "dmesg.boot2"
    first.write_text(_first_boot())
    second.write_text(_second_boot())
    assert first.read_bytes()[:1024] == second.read_bytes()[:1024]
    store = tmp_path / "s"
    assert ingest(store, first)["hops"] == 2
    summary = ingest(store, second)
    assert (summary["hops"], summary["already_stored"]) == (14, 0)
    assert summary["recognised"] == []
    assert facts(store)[2:] == alone(tmp_path, _second_boot())
    # read again, each is recognised as itself: nothing is stored twice
    again = ingest(store, second, first)
    assert (again["hops"], again["already_stored"]) == (0, 2 * BOOT.count("\n") + 16)
    assert len(hops(store)) == 16


def test_two_files_opening_with_a_blank_line_are_two_files(tmp_path: Path) -> None:
    lines = SEED.read_text().splitlines(keepends=True)
    a, b = "\n" + "".join(lines[:10]), "\n" + "".join(lines[10:])
    (tmp_path / "a.log").write_text(a)
    (tmp_path / "b.log").write_text(b)
    summary = ingest(tmp_path / "s", tmp_path / "a.log", tmp_path / "b.log")
    assert (summary["hops"], summary["already_stored"]) == (27, 0)
    assert facts(tmp_path / "s") == alone(tmp_path, a) + alone(tmp_path, b)


def test_a_copy_is_the_same_file_and_the_summary_says_so(tmp_path: Path) -> None:
    shutil.copy(SEED, tmp_path / "syslog")
    shutil.copy(SEED, tmp_path / "copy-of-syslog")
    store = tmp_path / "s"
    assert ingest(store, tmp_path / "syslog")["hops"] == 27
    summary = ingest(store, tmp_path / "copy-of-syslog")
    assert (summary["hops"], summary["already_stored"]) == (0, 27)
    assert summary["recognised"] == [
        {
            "name": str(tmp_path / "copy-of-syslog"),
            "read_as": str(tmp_path / "syslog"),
            "lines": 27,
            "new_lines": 0,
        }
    ]
    shutil.copy(SEED, tmp_path / "another-copy")
    code, out, _ = run("ingest", str(tmp_path / "another-copy"), "--store", str(store))
    assert code == 0
    said = f"{tmp_path / 'another-copy'}: the same lines as {tmp_path / 'copy-of-syslog'}"
    assert f"  {said}, already stored\n" in out
    assert len(hops(store)) == 27


def test_rotation_rename_grow_and_recompress_add_only_new_lines(tmp_path: Path) -> None:
    lines = SEED.read_text().splitlines(keepends=True)
    log, store = tmp_path / "syslog", tmp_path / "s"
    log.write_text("".join(lines[:10]))
    assert ingest(store, log)["hops"] == 10
    with log.open("a") as handle:  # rsyslog writes on, then logrotate renames (same inode)
        handle.write("".join(lines[10:20]))
    log.rename(tmp_path / "syslog.1")
    log.write_text("".join(lines[20:]))
    summary = ingest(store, tmp_path / "syslog.1", log)
    assert (summary["hops"], summary["already_stored"]) == (17, 10)
    assert summary["recognised"] == [
        {"name": str(tmp_path / "syslog.1"), "read_as": str(log), "lines": 10, "new_lines": 10}
    ]
    # the next rotation compresses syslog.1: new bytes on disk, the same text
    with (tmp_path / "syslog.2.gz").open("wb") as handle:
        handle.write(gzip.compress((tmp_path / "syslog.1").read_bytes()))
    (tmp_path / "syslog.1").unlink()
    summary = ingest(store, tmp_path / "syslog.2.gz", log)
    assert (summary["hops"], summary["already_stored"]) == (0, 27)
    assert [h["lineno"] for h in hops(store)] == [*range(1, 11), *range(11, 21), *range(1, 8)]


def test_a_store_written_before_extents_is_read_on(tmp_path: Path) -> None:
    """A manifest whose sources are keyed by a hash of the first line (logpath before extents):
    the file it names is not read again, a grown one adds its new lines, and the entry becomes
    an extent."""
    lines = SEED.read_text().splitlines(keepends=True)
    log, store = tmp_path / "syslog", tmp_path / "s"
    log.write_text("".join(lines[:10]))
    assert ingest(store, log)["hops"] == 10
    manifest = json.loads((store / "manifest.json").read_text())
    first_line = hashlib.sha1(lines[0].rstrip("\n").encode()).hexdigest()
    manifest["sources"] = {first_line: {"name": str(log), "lines": 10}}
    (store / "manifest.json").write_text(json.dumps(manifest))
    assert ingest(store, log)["hops"] == 0
    log.write_text("".join(lines))
    summary = ingest(store, log)
    assert (summary["hops"], summary["already_stored"]) == (17, 10)
    assert [h["lineno"] for h in hops(store)] == list(range(1, 28))
    (entry,) = json.loads((store / "manifest.json").read_text())["sources"].values()
    assert (entry["lines"], entry["size"]) == (27, len(SEED.read_bytes()))
    # from now on the file is recognised by its text: another file opening alike is not it
    other = tmp_path / "other.log"
    other.write_text(lines[0] + lines[5])
    assert ingest(store, other)["hops"] == 2


# --- a line still being written ---------------------------------------------------------


def test_a_half_written_last_line_waits_for_the_next_ingest(tmp_path: Path) -> None:
    text = SEED.read_text()
    lines = text.splitlines(keepends=True)
    cut = len("".join(lines[:10])) + 60  # rsyslog has written 60 bytes of line 11
    log, store = tmp_path / "syslog", tmp_path / "s"
    log.write_text(text[:cut])
    summary = ingest(store, log)
    assert (summary["hops"], summary["held_back"]) == (10, 1)
    assert summary["held_back_by_reason"] == {HELD_BACK: 1}
    counts_add_up(summary, 11)
    code, out, _ = run("ingest", str(log), "--store", str(tmp_path / "t"))
    assert code == 0 and f"held back        1  {HELD_BACK}" in out
    log.write_text(text)  # the line is finished, and more follow
    summary = ingest(store, log)
    assert (summary["hops"], summary["already_stored"], summary["held_back"]) == (17, 10, 0)
    counts_add_up(summary, 27)
    assert facts(store) == alone(tmp_path, text)


def test_a_half_written_journal_record_waits_for_the_next_ingest(tmp_path: Path) -> None:
    text = (FORMATS / "journal.json").read_text()
    log, store = tmp_path / "journal.json", tmp_path / "s"
    log.write_text(text[: text.rindex("\n", 0, -1) + 200])
    summary = ingest(store, log)
    assert (summary["hops"], summary["held_back"]) == (5, 1)
    log.write_text(text)
    summary = ingest(store, log)
    assert (summary["hops"], summary["already_stored"]) == (1, 5)
    assert [h["lineno"] for h in hops(store)] == list(range(1, 7))


def test_finished_streams_end_with_their_last_line(tmp_path: Path) -> None:
    """A gzip file or standard input is not being written: a last line without its newline
    is whole."""
    text = SEED.read_text().rstrip("\n")
    (tmp_path / "syslog.1.gz").write_bytes(gzip.compress(text.encode()))
    assert ingest(tmp_path / "s", tmp_path / "syslog.1.gz")["hops"] == 27
    summary = ingest(tmp_path / "t", "-", input=text)
    assert (summary["hops"], summary["held_back"]) == (27, 0)
    assert ingest(tmp_path / "t", "-", input=text)["hops"] == 0


# --- pipes and FIFOs --------------------------------------------------------------------


def _cli(command: str, tmp_path: Path) -> dict[str, object]:
    """Run a shell command line with the installed logpath: a real pipe, a real FIFO."""
    shell = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "LOGPATH": str(LOGPATH)},
        start_new_session=True,  # its own process group: a hang ends with all of it
    )
    try:
        out, err = shell.communicate(timeout=120)  # a hang fails the test
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)
    assert shell.returncode == 0, err
    summary: dict[str, object] = json.loads(out)
    return summary


def test_process_substitution_is_read_once_and_whole(tmp_path: Path) -> None:
    # 100 times the seed: more than a pipe's 64 KiB buffer, so cat is still writing
    (tmp_path / "big.log").write_text(SEED.read_text() * 100)
    command = '"$LOGPATH" ingest <(cat big.log) --store s --json --year 2016'
    summary = _cli(command, tmp_path)
    assert (summary["lines"], summary["hops"]) == (2700, 2700)
    assert [h["lineno"] for h in hops(tmp_path / "s")] == list(range(1, 2701))
    # the same text through a pipe again: recognised, nothing stored twice
    summary = _cli(command, tmp_path)
    assert (summary["hops"], summary["already_stored"]) == (0, 2700)


def test_a_fifo_is_streamed(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big.log").write_text(SEED.read_text() * 100)
    command = (
        "(sleep 0.5; cat big.log; sleep 0.5; cat big.log) > fifo & "
        '"$LOGPATH" ingest fifo --store s --json --year 2016; status=$?; wait; exit $status'
    )
    summary = _cli(command, tmp_path)
    assert (summary["lines"], summary["hops"]) == (5400, 5400)


def test_a_gzip_through_a_pipe(tmp_path: Path) -> None:
    (tmp_path / "syslog.2.gz").write_bytes(gzip.compress(SEED.read_bytes()))
    summary = _cli('cat syslog.2.gz | "$LOGPATH" ingest - --store s --json --year 2016', tmp_path)
    assert summary["hops"] == 27
    summary = _cli('"$LOGPATH" ingest <(cat syslog.2.gz) --store s --json --year 2016', tmp_path)
    assert (summary["hops"], summary["already_stored"]) == (0, 27)


# --- damaged gzip -----------------------------------------------------------------------


GOOD = FORMATS / "rsyslog-traditional.log"  # another host's kern.log, 40 lines, 38 hops


def _ingest_damaged(tmp_path: Path, damaged: Path) -> tuple[dict[str, object], str]:
    """Ingest a damaged file beside a good one: the run says so and stores the good one."""
    code, out, err = run(
        "ingest",
        str(damaged),
        str(GOOD),
        "--store",
        str(tmp_path / "s"),
        "--json",
        "--year",
        "2016",
    )
    summary = json.loads(out)
    assert code == 1
    assert summary["errors"] == [err.removeprefix("logpath: ").rstrip("\n")]
    assert err.startswith(f"logpath: {damaged}: compressed data is damaged")
    assert "Traceback" not in err and "Aborted" not in err
    good = [h for h in hops(tmp_path / "s") if h["source"] == str(GOOD)]
    assert [said(h) for h in good] == alone(tmp_path, GOOD.read_text())
    return summary, err


def test_garbage_after_a_gzip_magic(tmp_path: Path) -> None:
    damaged = tmp_path / "garbage.gz"
    damaged.write_bytes(b"\x1f\x8b" + b"not gzip at all, just bytes\n" * 4)
    summary, err = _ingest_damaged(tmp_path, damaged)
    assert summary["hops"] == len(alone(tmp_path, GOOD.read_text()))
    assert "before its first line (unknown compression method); nothing was read" in err


def test_a_gzip_header_alone(tmp_path: Path) -> None:
    damaged = tmp_path / "syslog.3.gz"
    damaged.write_bytes(gzip.compress(SEED.read_bytes())[:10])
    summary, err = _ingest_damaged(tmp_path, damaged)
    assert summary["hops"] == len(alone(tmp_path, GOOD.read_text()))
    assert "before its first line (it ends early: the file is truncated)" in err


def test_a_corrupt_deflate_stream_keeps_the_lines_before_it(tmp_path: Path) -> None:
    lines = SEED.read_text().splitlines(keepends=True)
    compressor = zlib.compressobj(wbits=31)  # gzip
    data = compressor.compress("".join(lines[:12]).encode())
    data += compressor.flush(zlib.Z_FULL_FLUSH)
    data += b"\x07" + os.urandom(64)  # a deflate block of type 3: there is none
    damaged = tmp_path / "syslog.2.gz"
    damaged.write_bytes(data)
    summary, err = _ingest_damaged(tmp_path, damaged)
    assert summary["lines"] == 12 + 40
    assert "after line 12 (invalid block type); lines 1-12 were read, nothing after them" in err
    stored = [h for h in hops(tmp_path / "s") if h["source"] == str(damaged)]
    assert [h["lineno"] for h in stored] == list(range(1, 13))
    # read again, the damage is met again, and what was before it is not stored twice
    code, out, err = run("ingest", str(damaged), "--store", str(tmp_path / "s"), "--json")
    assert code == 1 and "after line 12" in err
    assert (json.loads(out)["hops"], json.loads(out)["already_stored"]) == (0, 12)


def test_a_truncated_gzip_of_several_blocks_parsed_by_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of 4 MB parsed in worker processes: those in flight when the damage is met are
    stored, in order, and the file's next ingest starts after them."""
    monkeypatch.setenv("LOGPATH_WORKERS", "2")
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 4 << 20)
    text = SEED.read_bytes() * 1500  # 11 MB: three blocks
    whole = gzip.compress(text, compresslevel=1)
    damaged = tmp_path / "syslog.4.gz"
    damaged.write_bytes(whole[: len(whole) * 9 // 10])
    there = zlib.decompressobj(wbits=31).decompress(damaged.read_bytes())
    kept = there.count(b"\n")
    assert 2 * (4 << 20) < len(there) < len(text)
    summary, err = _ingest_damaged(tmp_path, damaged)
    assert summary["lines"] == kept + 40
    assert f"after line {kept:,} (it ends early: the file is truncated)" in err
    stored = [h["lineno"] for h in hops(tmp_path / "s") if h["source"] == str(damaged)]
    assert stored == list(range(1, kept + 1))
    # the whole file, found again later: only the lines after the damage are read
    damaged.write_bytes(whole)
    summary = ingest(tmp_path / "s", damaged)
    assert (summary["hops"], summary["already_stored"]) == (len(text.splitlines()) - kept, kept)


def test_fifos_written_one_after_the_other(tmp_path: Path) -> None:
    """The second FIFO's writer waits for the first to be read: opening both first would hang."""
    os.mkfifo(tmp_path / "first")
    os.mkfifo(tmp_path / "second")
    (tmp_path / "big.log").write_text(SEED.read_text() * 100)
    command = (
        "(cat big.log > first; cat big.log > second) & "
        '"$LOGPATH" ingest first second --store s --json --year 2016; status=$?; wait; exit $status'
    )
    summary = _cli(command, tmp_path)
    assert (summary["files"], summary["hops"]) == (2, 2700)
    assert summary["recognised"] == [
        {"name": "second", "read_as": "first", "lines": 2700, "new_lines": 0}
    ]


def test_a_damaged_source_entry_in_the_manifest_is_reported(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ingest(store, SEED)
    manifest = json.loads((store / "manifest.json").read_text())
    (entry,) = manifest["sources"].values()
    entry["size"] = "a lot"
    (store / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run("ingest", str(SEED), "--store", str(store))
    assert code == 1
    assert err.startswith(f"logpath: {store / 'manifest.json'}: the store's manifest is damaged")
    assert "is not one ingest wrote" in err


def test_gzip_members_padding_and_a_bad_checksum(tmp_path: Path) -> None:
    """Members one after another and zero padding are one text; a CRC that does not match is
    damage after the last line (the lines were stored: only the CRC tells they may be wrong)."""
    lines = SEED.read_text().splitlines(keepends=True)
    first, rest = "".join(lines[:10]).encode(), "".join(lines[10:]).encode()
    members = gzip.compress(first) + gzip.compress(rest) + b"\0" * 512
    (tmp_path / "syslog.2.gz").write_bytes(members)
    assert ingest(tmp_path / "s", tmp_path / "syslog.2.gz")["hops"] == 27
    whole = bytearray(gzip.compress(SEED.read_bytes()))
    whole[-8] ^= 0xFF  # the trailer's CRC-32
    (tmp_path / "syslog.3.gz").write_bytes(whole)
    code, out, err = run(
        "ingest", str(tmp_path / "syslog.3.gz"), "--store", str(tmp_path / "t"), "--json"
    )
    assert (code, json.loads(out)["hops"]) == (1, 27)
    assert err == (
        f"logpath: {tmp_path / 'syslog.3.gz'}: compressed data is damaged after line 27 "
        "(its CRC-32 does not match the text); lines 1-27 were read, nothing after them\n"
    )


def test_blocks_of_a_plain_file_say_where_their_bytes_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a cluster's workers read a block's bytes from the file themselves (logpath.fleet): each
    # block's offset must point at its bytes, also in a file read on from an earlier run's
    # extent; a gzip file's blocks are its decompressed text, at no offset of the file
    from logpath.lines import Block, Reading, open_source

    lab = (SAMPLES / "lab" / "masquerade.log").read_bytes()
    plain, packed = tmp_path / "kern.log", tmp_path / "kern.log.gz"
    monkeypatch.setattr(logpath.lines, "BLOCK_BYTES", 4 << 20)
    plain.write_bytes(lab * 600)  # several 4 MiB blocks

    def blocks(path: Path, known: dict[str, Any]) -> tuple[list[Block], Any]:
        with open_source(str(path)).open() as source:
            reading = Reading(source, known)
            return list(reading.blocks()), reading.extent()

    first, extent = blocks(plain, {})
    with plain.open("ab") as handle:
        handle.write(lab * 400)
    later, _ = blocks(plain, {extent.digest: extent})
    text = plain.read_bytes()
    assert len(first) > 2 and later and later[0].offset == extent.size
    for block in first + later:
        assert block.offset is not None
        assert text[block.offset : block.offset + len(block.data)] == block.data
    packed.write_bytes(gzip.compress(text))
    assert all(block.offset is None for block in blocks(packed, {})[0])


def test_a_journal_record_is_read_only_from_the_kernel_and_its_header_fields_checked(
    tmp_path: Path,
) -> None:
    """journalctl -o json without -k holds every program's records: one `logger` wrote, its
    text a LOG line's, is skipped as a user-space record (stored, it was a packet any local
    user could plant). A PRIORITY or _HOSTNAME that is no priority or host name (they go into
    the line's header: a forged header there made a hop of another time and host) is
    rejected, saying which field."""
    kernel = json.loads((FORMATS / "journal.json").read_text().splitlines()[0])
    records = [
        kernel,
        {**kernel, "_TRANSPORT": "syslog", "SYSLOG_IDENTIFIER": "logger"},
        {**kernel, "PRIORITY": "4>1 2001-01-01T00:00:00+00:00 forged kernel - - - x <4"},
        {**kernel, "_HOSTNAME": "forged kernel - - - [    1.000000]"},
    ]
    log = tmp_path / "journal.json"
    log.write_text("".join(json.dumps(record) + "\n" for record in records))
    store = str(tmp_path / "store")
    done = runner.invoke(app, ["ingest", str(log), "--store", store, "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert (summary["lines"], summary["hops"], summary["rejected"]) == (4, 1, 2)
    assert summary["skipped_by_reason"] == {
        "journal record of a user-space program, not the kernel": 1
    }
    rejected = json.loads(runner.invoke(app, ["rejected", "--json", "--store", store]).output)
    assert [(r["lineno"], r["expected"], r["found"][:20]) for r in rejected] == [
        (3, "a journald kernel record", "PRIORITY '4>1 2001-0"),
        (4, "a journald kernel record", "_HOSTNAME 'forged ke"),
    ]
    hops = json.loads(runner.invoke(app, ["hops", "--json", "--store", store]).output)
    assert [(h["host"], h["lineno"]) for h in hops] == [("vm", 1)]


@pytest.mark.parametrize(
    "header",
    [
        "Jan 14 10:08:12 pc-baim logger[123]: ",  # RFC 3164, as `logger` writes to syslog
        "Jan 14 10:08:12 pc-baim root: ",
        "2016-01-14T10:08:12.000000+00:00 pc-baim evil: ",  # RFC 3339
        "<13>1 2016-01-14T10:08:12.000000+00:00 pc-baim logger 123 - - ",  # RFC 5424
    ],
)
def test_a_program_s_line_that_looks_like_a_log_line_is_rejected(
    tmp_path: Path, header: str
) -> None:
    """Any local user can write a LOG line's text to /var/log/syslog (logger "IN=eth0 ...").
    Its header names another program than the kernel: not read as a packet, but rejected,
    saying so, where `logpath rejected` shows it to whoever reads the store. The same text
    after the kernel's header is a packet."""
    body = SEED.read_text().splitlines()[0].split(" kernel: ", 1)[1]
    log = tmp_path / "syslog"
    log.write_text(f"{header}{body}\nJan 14 10:08:12 pc-baim kernel: {body}\n")
    store = str(tmp_path / "store")
    done = runner.invoke(app, ["ingest", str(log), "--store", store, "--year", "2016", "--json"])
    assert done.exit_code == 0, done.output
    assert (json.loads(done.output)["hops"], json.loads(done.output)["rejected"]) == (1, 1)
    (rejected,) = json.loads(runner.invoke(app, ["rejected", "--json", "--store", store]).output)
    assert (rejected["lineno"], rejected["column"]) == (1, 1)
    assert rejected["expected"] == "a kernel message (this header names another program)"
    assert rejected["found"].startswith(header.rstrip()[:20])
