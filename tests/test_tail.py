"""logpath.tail: files followed as tail -F does, on genuine lab lines, poll by poll."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from pathlib import Path
from typing import BinaryIO

from logpath.lines import Block
from logpath.tail import READ_BYTES, RECOGNISE_PAUSE, REFILL_WAIT, FollowedFile, FollowedStdin

LINES = (Path(__file__).parent.parent / "samples" / "lab" / "dnat.log").read_text().splitlines(True)


def polled(followed: FollowedFile | FollowedStdin) -> list[tuple[int, str]]:
    """The numbered lines one poll gives."""
    return [pair for block in followed.poll() for pair in numbered(block)]


def numbered(block: Block) -> list[tuple[int, str]]:
    texts, _ = block.texts()
    return [(n, text + "\n") for n, text in texts]


def test_appends_are_read_from_the_end_and_a_half_written_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("".join(LINES[:10]))
    followed = FollowedFile(str(log), {}, from_start=False)
    assert followed.where() == f"{log} from its end (line 11)"
    assert followed.skipped_before == 10
    with log.open("a") as handle:
        handle.write(LINES[10] + LINES[11][:40])
    assert polled(followed) == [(11, LINES[10])]
    with log.open("a") as handle:
        handle.write(LINES[11][40:])
    assert polled(followed) == [(12, LINES[11])]
    assert polled(followed) == []


def test_rotation_by_rename_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.touch()
    followed = FollowedFile(str(log), {}, from_start=False)
    with log.open("a") as handle:
        handle.writelines(LINES[:5])
    assert len(polled(followed)) == 5
    with log.open("a") as handle:  # written just before the rename, not polled yet
        handle.writelines(LINES[5:8])
    os.rename(log, f"{log}.1")
    assert polled(followed) == list(enumerate(LINES[5:8], 6))  # the new file is not there yet
    log.write_text("".join(LINES[8:12]))
    assert polled(followed) == list(enumerate(LINES[8:12], 1))
    [old] = followed.retired
    assert (old.lines, old.extent().size) == (8, len("".join(LINES[:8]).encode()))


def test_copytruncate_reads_the_lines_before_the_truncation_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.touch()
    followed = FollowedFile(str(log), {}, from_start=False)
    with log.open("a") as handle:
        handle.writelines(LINES[:5])
    assert len(polled(followed)) == 5
    with log.open("a") as handle:
        handle.writelines(LINES[5:9])  # written after the poll, before logrotate's copy
    shutil.copyfile(log, f"{log}.1")
    os.truncate(log, 0)
    with log.open("a") as handle:  # the writer goes on, past where follow had read
        handle.writelines(LINES[9:40])
    assert polled(followed) == [*enumerate(LINES[5:9], 6), *enumerate(LINES[9:40], 1)]


def test_a_file_read_before_is_read_on_from_its_extent(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("".join(LINES[:20]))
    first = FollowedFile(str(log), {}, from_start=True)
    assert len(polled(first)) == 20
    extent = first.tally.extent()
    with log.open("a") as handle:
        handle.writelines(LINES[20:30])
    again = FollowedFile(str(log), {extent.digest: extent}, from_start=False)
    assert again.where() == f"{log} from line 21 (read before up to there)"
    assert again.skipped_before == 0
    assert polled(again) == list(enumerate(LINES[20:30], 21))


def test_standard_input_gives_lines_as_they_arrive(tmp_path: Path) -> None:
    read, write = os.pipe()
    with os.fdopen(read, "rb") as stream:
        followed = FollowedStdin(stream)
        os.write(write, (LINES[0] + LINES[1][:30]).encode())
        assert polled(followed) == [(1, LINES[0])]
        os.write(write, LINES[1][30:].rstrip("\n").encode())
        os.close(write)  # the writer is done: its last line is whole without a newline
        assert polled(followed) == [(2, LINES[1])]
        assert followed.ended


def test_standard_input_that_starts_with_what_a_run_read_continues_it(tmp_path: Path) -> None:
    """``dmesg -w`` restarted gives its old lines again, then new ones: the old ones are known
    (the extent an earlier run left) and not read again; another text is read whole."""
    first = FollowedStdin(_pipe_with("".join(LINES[:20]), close=True))
    assert polled(first) == list(enumerate(LINES[:20], 1))
    extent = first.tally.extent()
    known = {extent.digest: extent}

    again = FollowedStdin(_pipe_with("".join(LINES[:25]), close=True), known)
    assert polled(again) == list(enumerate(LINES[20:25], 21))
    assert again.already_read == 20
    # what it read is one extent from the stream's start: a third run continues the second
    assert again.tally.extent().lines == 25

    other = FollowedStdin(_pipe_with("".join(LINES[5:25]), close=True), known)
    assert polled(other) == list(enumerate(LINES[5:25], 1))
    assert other.already_read == 0


def test_standard_input_shorter_than_what_it_may_continue_is_read_after_a_pause() -> None:
    """A stream that starts as an earlier run's text did and stops short of it (its writer
    waits) is told apart once it paused RECOGNISE_PAUSE: nothing waits for ever."""
    first = FollowedStdin(_pipe_with("".join(LINES[:20]), close=True))
    polled(first)
    extent = first.tally.extent()
    clock = [0.0]
    stream = _pipe_with("".join(LINES[:12]), close=False)
    held = FollowedStdin(stream, {extent.digest: extent}, clock=lambda: clock[0])
    assert polled(held) == []  # it may still be the earlier text
    clock[0] = RECOGNISE_PAUSE
    assert polled(held) == list(enumerate(LINES[:12], 1))
    assert held.already_read == 0


def _pipe_with(text: str, close: bool) -> BinaryIO:
    read, write = os.pipe()
    os.write(write, text.encode())
    if close:
        os.close(write)
    return os.fdopen(read, "rb")


def test_a_poll_reads_at_most_its_budget_in_blocks_of_read_bytes(tmp_path: Path) -> None:
    """A writer far ahead is caught up over several polls: a poll takes READ_BYTES (a block)
    unless given a larger budget (follow widens it while behind), and no line is cut or
    lost between blocks and polls."""
    log = tmp_path / "kern.log"
    log.touch()
    followed = FollowedFile(str(log), {}, from_start=False)
    text = "".join(LINES)
    copies = 3 * READ_BYTES // len(text.encode()) + 2  # a little over three blocks
    log.write_text(text * copies)
    blocks = list(followed.poll())
    assert len(blocks) == 1 and len(blocks[0].data) <= READ_BYTES
    blocks += list(followed.poll(budget=2 * READ_BYTES))
    assert len(blocks) == 3
    blocks += list(followed.poll(budget=8 * READ_BYTES))  # what is left: less than a block
    assert len(blocks) == 4 and list(followed.poll(budget=8 * READ_BYTES)) == []
    lines = [pair for block in blocks for pair in numbered(block)]
    assert lines == list(enumerate(LINES * copies, 1))


def test_standard_input_stops_reading_at_its_budget(tmp_path: Path) -> None:
    """What a poll leaves in the pipe waits for the next one, whole lines only."""
    source = tmp_path / "stream"
    text = "".join(LINES)
    copies = READ_BYTES // len(text.encode()) + 1
    source.write_text(text * copies)
    with source.open("rb") as stream:
        followed = FollowedStdin(stream)
        first = [pair for block in followed.poll(budget=len(text)) for pair in numbered(block)]
        assert followed.left_unread  # stopped by its budget: the follower is behind
        rest = [pair for block in followed.poll(budget=2 * READ_BYTES) for pair in numbered(block)]
        assert not followed.left_unread
    assert 0 < len(first) < len(LINES * copies)
    assert first + rest == list(enumerate(LINES * copies, 1))


def test_standard_input_waits_a_moment_for_a_writer_a_full_pipe_held_back() -> None:
    """A read that emptied a full pipe woke its writer, which may not run at once (a busy
    machine): the poll waits REFILL_WAIT for it, and reads on to its budget, rather than
    taking the empty pipe for the writer's pause (the follower would think it caught up)."""
    read, write = os.pipe()
    capacity = fcntl.fcntl(write, fcntl.F_GETPIPE_SZ)
    text = "".join(LINES).encode()
    data = (text * (4 * capacity // len(text) + 2))[: 4 * capacity]

    def writer() -> None:  # slow to run again after each full pipe
        with os.fdopen(write, "wb", buffering=0) as pipe:
            for start in range(0, len(data), capacity):
                pipe.write(data[start : start + capacity])
                time.sleep(REFILL_WAIT / 10)

    feeder = threading.Thread(target=writer, daemon=True)
    feeder.start()
    time.sleep(REFILL_WAIT)  # the pipe is full
    with os.fdopen(read, "rb") as stream:
        followed = FollowedStdin(stream)
        blocks = list(followed.poll(budget=3 * capacity))
        assert followed.left_unread  # stopped by its budget, not by the writer's sleep
        assert sum(len(block.data) for block in blocks) > 2 * capacity
        feeder.join()
