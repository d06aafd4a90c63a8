"""Tail: the lines written to log files after they were opened, followed as ``tail -F`` does.

A followed file is read on from where it was (appends); when its name comes to hold another
file (rotation by rename, as logrotate and rsyslog do it, or a file that appears later), the
old file is read to its end and the new one from its start; when it shrinks, or its first
bytes change (``copytruncate``: the file is copied, then emptied in place), it is read again
from its start. Standard input (``-``) is read as it arrives.

What has been read of each file is kept as the manifest's ``Extent`` (whole lines from its
start, hashed), so a later run, ``follow`` or ``ingest``, continues where this one stopped.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from logpath.errors import InputError
from logpath.lines import (
    HEAD_BYTES,
    NOTHING,
    STDIN,
    Block,
    Extent,
    export_records,
    journal_record,
    recognise,
    text_kind,
)

# What one read of a file takes at most, a block parsed at once; a poll reads at most its
# ``budget`` (READ_BYTES unless the follower asks more: logpath.follow widens it while it is
# behind), so a writer far ahead is caught up over several polls and memory stays flat.
READ_BYTES = 4 << 20
# Standard input's first bytes wait this long for more before it is told whether they continue
# an earlier run: a restarted dmesg -w or journalctl writes its old lines at once.
RECOGNISE_PAUSE = 0.5
# A read that took a full pipe's bytes woke a writer waiting for room: the next poll waits this
# long for it to write again, not a moment (``select`` with no wait found the pipe empty, and the
# follower caught up, when the writer had not run yet on a busy machine).
REFILL_WAIT = 0.05


@dataclass
class Tally:
    """What has been read of one file (one inode): whole lines from its start, hashed."""

    lines: int = 0
    size: int = 0
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    head: bytes = b""
    continues: str | None = None
    """The manifest key of the extent this file was found to continue (replaced at commit)."""

    def add(self, data: bytes) -> int:
        """Count ``data`` (whole lines) as read; return how many lines it holds."""
        count = data.count(b"\n")
        self.hasher.update(data)
        self.size += len(data)
        self.lines += count
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        return count

    @classmethod
    def continuing(cls, key: str, extent: Extent, head: bytes, hasher: hashlib._Hash) -> Tally:
        """What was read of a text found to continue the known ``extent`` (``recognise``'s
        ``head`` and ``hasher`` of it): its lines count as read."""
        return cls(extent.lines, extent.size, hasher, head[: extent.size], key)

    def extent(self) -> Extent:
        if not self.size:
            return NOTHING
        digest = self.hasher.copy().hexdigest()
        return Extent(self.lines, self.size, digest, hashlib.sha256(self.head).hexdigest())


class Shape:
    """What an input's lines are: text lines, journald's JSON records (``journalctl -o
    json``, one per line) or its export records (``-o export``: KEY=value lines, a blank line
    after each), made into the lines ingest makes of them. Told by the input's first line, as
    ingest tells it."""

    def __init__(self) -> None:
        self.kind: str | None = None  # "text", "json" or "export"

    def whole(self, data: bytes) -> bytes:
        """The start of ``data`` that holds whole lines: of an export, whole records (a record
        is read, and its lines counted as read, once its blank line is written)."""
        if self.kind is None and b"\n" in data:
            self.kind = text_kind(data)
        if self.kind == "export":
            end = data.rfind(b"\n\n")
            return data[: end + 2] if end >= 0 else b""
        return data[: data.rfind(b"\n") + 1]

    def block(self, start: int, whole: bytes) -> Block:
        """The lines ``whole`` (what ``whole`` kept), numbered from ``start``."""
        if self.kind == "export":
            records = export_records(start, whole)
            return Block(start, len(records), lines=records)
        if self.kind != "json":
            return Block(start, whole.count(b"\n"), whole)
        items = [
            (n, journal_record(n, raw)) for n, raw in enumerate(whole.split(b"\n")[:-1], start)
        ]
        return Block(start, len(items), lines=items)


class FollowedFile:
    """One path followed as ``tail -F`` follows it (see the module's docstring)."""

    def __init__(self, path: str, known: Mapping[str, Extent], from_start: bool) -> None:
        self.path = path
        self.known = known
        self.from_start = from_start
        self.handle: IO[bytes] | None = None
        self.identity: tuple[int, int] | None = None  # (device, inode) of the file read
        self.tally = Tally()
        self.retired: list[Tally] = []  # files read to their end since the last commit
        self.skipped_before = 0  # lines that were there before follow started (not read)
        self.already_read = 0  # (standard input's: a file's read lines are not read again)
        # a file that appears after follow started is read from its start, as is the next
        # file after a rotation; the one there at the start, from its end
        self.shape = Shape()
        self.started = not os.path.exists(path)
        if not self.started:
            self._open()  # now: its end is where it is when follow starts
        self.unfinished_dropped = 0  # a rotated file's last line, never finished

    def where(self) -> str:
        """Where this file is read from, said when follow starts."""
        if self.handle is None:
            return f"{self.path} (not there yet: read from its start when it appears)"
        if self.tally.continues is not None:
            return f"{self.path} from line {self.tally.lines + 1:,} (read before up to there)"
        if self.tally.lines:
            return f"{self.path} from its end (line {self.tally.lines + 1:,})"
        return f"{self.path} from its start"

    def poll(self, budget: int = READ_BYTES) -> Iterator[Block]:
        """The whole lines written since the last poll, in order, across a rotation: at most
        ``budget`` bytes of them (at least a block) from the file followed now."""
        current = _identity(self.path)
        if self.handle is not None and current != self.identity:
            if current is None:  # renamed away, the new file not made yet: read on
                yield from self._read()
                return
            yield from self._read(to_end=True)  # the rotated file's last lines
            self._retire()
        if self.handle is None and current is not None:
            self._open()
        if self.handle is not None:
            if self._rewritten():
                yield from self._rest_of_copy()
                self._retire(reopen=True)
            yield from self._read(budget=budget)

    def _open(self) -> None:
        try:
            handle = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by _retire
        except FileNotFoundError:
            return  # rotated between the stat and the open: the next poll finds the new one
        except OSError as error:
            raise InputError(f"{self.path}: cannot be read ({error.strerror})") from None
        info = os.fstat(handle.fileno())
        self.handle, self.identity = handle, (info.st_dev, info.st_ino)
        self.tally = self._placed(handle)
        self.started = True

    def _placed(self, handle: IO[bytes]) -> Tally:
        """Where to read the file just opened from: after what an earlier run read of it; from
        its start when it is new since follow started (or ``--from-start``); else at its end,
        counting the lines before it as read (``skipped_before``)."""
        stream = os.fdopen(os.dup(handle.fileno()), "rb")
        with stream:
            continues, head, hasher = recognise(stream, self.known)
        if continues is not None:
            extent = self.known[continues]
            handle.seek(extent.size)
            return Tally.continuing(continues, extent, head, hasher)
        handle.seek(0)
        tally = Tally()
        if self.from_start or self.started:
            return tally
        while data := handle.read(READ_BYTES):
            whole = self.shape.whole(data)
            self.skipped_before += tally.add(whole)
            if len(whole) < len(data):
                handle.seek(tally.size)
                break
        return tally

    def _rewritten(self) -> bool:
        """Whether the file was emptied (and maybe written again) since it was read: it is
        shorter than what was read, or its first bytes are not those read (copytruncate)."""
        assert self.handle is not None
        fd = self.handle.fileno()
        if os.fstat(fd).st_size < self.tally.size:
            return True
        return os.pread(fd, len(self.tally.head), 0) != self.tally.head

    def _rest_of_copy(self) -> Iterator[Block]:
        """The lines written after the last poll and before a copytruncate emptied the file,
        read from the copy (``PATH.1``, logrotate's name) when it starts with what was read."""
        copy = f"{self.path}.1"
        try:
            with open(copy, "rb") as stream:
                hasher = hashlib.sha256()
                left = self.tally.size
                while left and (data := stream.read(min(READ_BYTES, left))):
                    hasher.update(data)
                    left -= len(data)
                if left or hasher.hexdigest() != self.tally.hasher.hexdigest():
                    return  # not the copy of this file (or an older one)
                while data := stream.read(READ_BYTES):
                    whole = self.shape.whole(data)
                    if whole:
                        start = self.tally.lines + 1
                        self.tally.add(whole)
                        yield self.shape.block(start, whole)
                    if len(whole) < len(data):
                        return  # the copy ends inside a line: nothing after it is whole
        except OSError:
            return  # no copy: what was written since the last poll is lost, as with tail -F

    def _read(self, to_end: bool = False, budget: int = READ_BYTES) -> Iterator[Block]:
        """The whole lines after what was read, READ_BYTES at a time: ``budget`` bytes at most
        (every one ``to_end``)."""
        assert self.handle is not None
        taken = 0
        while True:
            data = os.pread(self.handle.fileno(), READ_BYTES, self.tally.size)
            whole = self.shape.whole(data)
            if to_end and len(data) < READ_BYTES and len(whole) < len(data):
                self.unfinished_dropped += 1  # its writer moved to the new file
            if not whole:
                return
            start = self.tally.lines + 1
            self.tally.add(whole)
            yield self.shape.block(start, whole)
            taken += len(whole)
            if len(data) < READ_BYTES or (not to_end and taken + READ_BYTES > budget):
                return

    def _retire(self, reopen: bool = False) -> None:
        """Keep what was read of the file for the commit, and close it."""
        if self.tally.size or self.tally.continues:
            self.retired.append(self.tally)
        self.tally = Tally()
        if reopen:  # the same file, emptied: read again from its start
            return
        assert self.handle is not None
        self.handle.close()
        self.handle, self.identity = None, None

    def unread(self) -> int:
        """The bytes written to the file followed now and not read yet."""
        if self.handle is None:
            return 0
        return max(0, os.fstat(self.handle.fileno()).st_size - self.tally.size)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


class FollowedStdin:
    """Standard input, read as it arrives (``dmesg -w | logpath follow -``).

    A stream that starts with what an earlier run read (``dmesg -w`` and ``journalctl -k -b -f
    -o json -n all`` restarted give the lines they gave before, then new ones) continues it: its
    first bytes are held until they show whether they are a known extent (RECOGNISE_PAUSE: a
    stream that stops short of it is another text), and that extent's lines are not read again.
    """

    path = STDIN

    def __init__(
        self,
        stream: IO[bytes] | None = None,
        known: Mapping[str, Extent] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stdin.buffer
        self.fd = self.stream.fileno()
        self.capacity = _pipe_capacity(self.fd)  # None: not a pipe
        self.pending = b""
        self.lines = 0
        self.ended = False
        self.retired: list[Tally] = []
        self.skipped_before = 0
        self.already_read = 0  # lines an earlier run read: the stream started with them
        self.continued: int | None = None  # the lines of the extent it was found to continue
        self.unfinished_dropped = 0
        self.left_unread = False  # the last poll stopped at its budget, the stream still writing
        self.tally = Tally()
        self.shape = Shape()
        self.clock = clock
        # held until recognised: only the extents that begin with text (not empty ones)
        self.known = {key: extent for key, extent in (known or {}).items() if extent.size}
        self.recognising = bool(self.known)
        self.last_data = clock()

    def where(self) -> str:
        return "standard input"  # what it continues is told once its first lines arrived

    def poll(self, budget: int = READ_BYTES) -> Iterator[Block]:
        """The whole lines that arrived, without waiting for more (but REFILL_WAIT for a writer a
        full pipe held back): reading stops once ``budget`` bytes were read (the rest waits in
        the pipe for the next poll)."""
        taken, wait = 0, 0.0
        while not self.ended and taken < budget and select.select([self.fd], [], [], wait)[0]:
            data = os.read(self.fd, READ_BYTES)
            taken += len(data)
            wait = REFILL_WAIT if self.capacity and len(data) >= self.capacity else 0.0
            self.last_data = self.clock()
            if not data:  # the writer closed the pipe: its last line (or record) is whole
                self.ended = True
                data = b"\n" if self.pending and not self.pending.endswith(b"\n") else b""
                if self.shape.kind == "export" and not (self.pending + data).endswith(b"\n\n"):
                    data += b"\n"
            self.pending += data
            yield from self._released()
        # stopped by the budget with more to read: the follower is behind (logpath.follow)
        self.left_unread = not self.ended and taken >= budget
        if self.recognising and self.pending and self.clock() - self.last_data >= RECOGNISE_PAUSE:
            yield from self._released(paused=True)

    def _released(self, paused: bool = False) -> Iterator[Block]:
        """The whole lines held, once the stream's start is told."""
        if self.recognising and not self._recognised(paused):
            return
        whole = self.shape.whole(self.pending)
        if whole:
            self.pending = self.pending[len(whole) :]
            yield self.shape.block(self.lines + 1, whole)
            self.lines += self.tally.add(whole)

    def _recognised(self, paused: bool = False) -> bool:
        """Whether the stream's start is told: it is long enough for every known extent its
        head may begin (or it ended, or paused); then what it continues is skipped."""
        held = self.pending
        if not (self.ended or paused):
            for extent in self.known.values():
                length = min(HEAD_BYTES, extent.size)
                if len(held) < length or (
                    len(held) < extent.size
                    and hashlib.sha256(held[:length]).hexdigest() == extent.head
                ):
                    return False  # it may still be this extent
        self.recognising = False
        continues, head, hasher = recognise(io.BufferedReader(io.BytesIO(held)), self.known)
        if continues is not None:
            extent = self.known[continues]
            self.tally = Tally.continuing(continues, extent, head, hasher)
            self.pending = held[extent.size :]
            self.lines = self.already_read = self.continued = extent.lines
        return True

    def unread(self) -> int:
        """0: a pipe tells no length (``left_unread`` says whether a poll left some)."""
        return 0

    def close(self) -> None:
        pass


def _pipe_capacity(fd: int) -> int | None:
    """The bytes the pipe ``fd`` holds at most (Linux), None for anything else."""
    asked = getattr(fcntl, "F_GETPIPE_SZ", None)  # Linux's
    try:
        return fcntl.fcntl(fd, asked) if asked is not None else None
    except OSError:  # not a pipe (a file, a terminal)
        return None


def followed(paths: list[str], known: Mapping[str, Extent], from_start: bool) -> list[Followed]:
    """The inputs to follow; a path that names a directory is refused (a missing file is
    waited for, as ``tail -F`` does)."""
    inputs: list[Followed] = []
    for path in paths:
        if path == STDIN:
            inputs.append(FollowedStdin(known=known))
            continue
        if os.path.isdir(path):
            raise InputError(f"{path}: is a directory, not a log file\n\nGive the files inside it.")
        inputs.append(FollowedFile(path, known, from_start))
    return inputs


Followed = FollowedFile | FollowedStdin


def written(source: Followed) -> datetime:
    """When the input was last written: what gives its RFC 3164 stamps their year, as ingest
    takes it (a file's mtime; standard input's lines are written now)."""
    if isinstance(source, FollowedFile) and source.handle is not None:
        return datetime.fromtimestamp(os.fstat(source.handle.fileno()).st_mtime, UTC)
    return datetime.now(UTC)
