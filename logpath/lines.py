"""Read-lines stage: open inputs (plain, gzip, standard input, pipes, FIFOs, journald exports),
recognise the ones read before, and cut the new lines into numbered blocks.

A rotated set (``syslog``, ``syslog.1``, ``syslog.2.gz``) is read oldest first. journald's JSON and
export formats are turned into RFC 5424 lines (``<pri>1 time host kernel - - - [uptime] message``)
so that one header grammar serves every input; the line number is that of the record's start.

Every input is opened once and read once, from its start: standard input, a pipe, a process
substitution (``<(cat FILE)``) or a FIFO cannot be opened a second time, so the bytes read to
recognise such an input are kept (in memory, past a block's size in a temporary file) and read
again.

A file is recognised by its text, not by its name or its first line. What a run read of a file
is kept as an ``Extent``: how many whole lines, their bytes and a SHA-256 of those bytes. The next
run finds the extents whose first KiB is the file's first KiB, and the file continues one of them
only when its first bytes hash to that extent's digest; it is then read from the end of that
extent on. So a renamed (``syslog`` → ``syslog.1``), recompressed (``syslog.1`` →
``syslog.2.gz``) or grown file adds only its new lines, while two files that merely start alike
(the dmesg of two boots, two files opening with a blank line) are each read whole.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import re
import stat
import sys
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from logpath.errors import InputError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

STDIN = "-"
_ROTATED = re.compile(r"^(?P<base>.*?)\.(?P<n>\d+)(?:\.gz)?$")
GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 1024  # the start of a file that finds the extents it may continue
# What one worker parses at a time: ~40,000 syslog lines. A block's typing pays ~85 Arrow and
# pandas calls whatever its size: against 4 MB, 8 MB blocks took 0.94x the CPU and 0.95x the wall
# of the 2M-line replay's whole ingest (6 pairs, peak the same); 12 MB took 1.05x the CPU of 8
# (each block's buffers faulted in anew: more system time).
BLOCK_BYTES = 8 << 20
JOURNAL_BLOCK_LINES = 20_000

# Why a line read is not parsed in this run (it is in the next).
HELD_BACK_LINE = "last line has no newline yet: read on the next ingest"
HELD_BACK_RECORD = "last journal record has no blank line after it yet: read on the next ingest"

# What reading a damaged input raises: gzip's own errors, zlib's, and a stream that ends early.
_DAMAGE = (OSError, EOFError, zlib.error)


def rotation_order(paths: list[str]) -> list[str]:
    """Sort paths so that a rotated set is read oldest first: syslog.2.gz, syslog.1, syslog."""

    def key(path: str) -> tuple[str, int]:
        match = _ROTATED.match(path)
        if match:
            return match["base"], -int(match["n"])
        return path.removesuffix(".gz"), 0

    return sorted(paths, key=key)


@dataclass(frozen=True)
class Extent:
    """What a run read of a file: whole lines from its start, what recognises the file later."""

    lines: int  # lines read (physical lines: a journal export record spans several)
    size: int  # their bytes, as text (a gzip file's decompressed bytes)
    digest: str  # SHA-256 of those bytes
    head: str  # SHA-256 of the first min(HEAD_BYTES, size) of them: finds the candidates


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


NOTHING = Extent(0, 0, _sha256(b""), _sha256(b""))


class _Rewindable(io.RawIOBase):
    """A stream that cannot seek (standard input, a pipe, a FIFO, gzip read from one) keeping
    what is read until ``forget``, so that it can be read again: the start of an input is read
    to tell its format and which file it continues, and a pipe cannot be opened twice.

    An error of the stream is raised again by every later read: a damaged stream must not look
    like one that ended.
    """

    def __init__(self, stream: IO[bytes], owned: bool) -> None:
        super().__init__()
        self._stream = stream
        self._owned = owned  # closed with this one (standard input is not)
        self._kept: IO[bytes] | None = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed below
            max_size=BLOCK_BYTES
        )
        self._keeping = True
        self._end = 0  # bytes kept: everything read from the stream while keeping
        self._position = 0
        self._failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._keeping

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a pipe cannot seek from its end")
        if not self._keeping or not 0 <= offset <= self._end:
            raise io.UnsupportedOperation("a pipe can only go back to bytes kept")
        self._position = offset
        return offset

    def forget(self) -> None:
        """Keep nothing more: the bytes kept after the position are read once more, then freed."""
        self._keeping = False
        self._free_when_replayed()

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        if self._kept is not None and self._position < self._end:
            self._kept.seek(self._position)
            kept = self._kept.read(min(len(target), self._end - self._position))
            target[: len(kept)] = kept
            self._position += len(kept)
            self._free_when_replayed()
            return len(kept)
        if self._failure is not None:
            raise self._failure
        try:
            data = self._stream.read(len(target))
        except _DAMAGE as error:
            self._failure = error
            raise
        count = len(data)
        target[:count] = data
        if self._keeping and self._kept is not None:
            self._kept.seek(self._end)
            self._kept.write(data)
            self._end += count
        self._position += count
        return count

    def _free_when_replayed(self) -> None:
        if not self._keeping and self._kept is not None and self._position >= self._end:
            self._kept.close()
            self._kept = None

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None
        if self._owned:
            self._stream.close()
        super().close()


class _Gunzip(io.RawIOBase):
    """A gzip file's text, read exactly up to damage: every byte before it is given, then the
    damage is raised, and raised again by every later read.

    Python's gzip reader loses what it decompressed from the 8 KiB of input in which it met
    damage (a hundred lines and more); here that input is decompressed again a byte at a time.
    zlib checks each member's header and CRC; members follow one another, then zero padding.
    """

    def __init__(self, compressed: IO[bytes]) -> None:
        super().__init__()
        self._compressed = compressed
        self._start()

    def _start(self) -> None:
        self._inflater: Any = None  # zlib's decompressor of the member being read
        self._input = b""  # compressed bytes read and not yet inflated
        self._output = b""  # text inflated and not yet given
        self._position = 0
        self._ended = False
        self._failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._compressed.seekable()

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Forward by reading on; back by decompressing again from the start."""
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("gzip text cannot seek from its end")
        if offset < self._position:
            self._compressed.seek(0)
            self._start()
        while self._position < offset and self.read(min(offset - self._position, BLOCK_BYTES)):
            pass
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._output:
            if self._failure is not None:
                raise self._failure
            if self._ended:
                return 0
            try:
                # at least 64 KiB at a time: each inflate keeps a copy of zlib's state
                self._output = self._inflate(max(len(target), _GZIP_INPUT))
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                self._failure = error
        count = min(len(target), len(self._output))
        target[:count] = self._output[:count]
        self._output = self._output[count:]
        self._position += count
        return count

    def _inflate(self, size: int) -> bytes:
        if self._inflater is None:
            return self._next_member()
        if not self._input:
            self._input = self._compressed.read(_GZIP_INPUT)
            if not self._input:
                raise EOFError("the compressed data ends before its end marker")
        before = self._inflater.copy()
        try:
            text: bytes = self._inflater.decompress(self._input, size)
        except zlib.error as error:
            self._output = _inflate_up_to_damage(before, self._input)
            raise error from None
        self._input = self._inflater.unconsumed_tail
        if self._inflater.eof:
            self._input, self._inflater = self._inflater.unused_data, None
        return text

    def _next_member(self) -> bytes:
        """Start the next member, or end: only zero padding may follow the last."""
        while not self._input.lstrip(b"\0"):
            self._input = self._compressed.read(_GZIP_INPUT)
            if not self._input:
                self._ended = True
                return b""
        self._input = self._input.lstrip(b"\0")
        if len(self._input) < 2:
            self._input += self._compressed.read(1)
        if not self._input.startswith(GZIP_MAGIC):
            raise gzip.BadGzipFile(f"not gzip data after its end ({self._input[:2]!r})")
        self._inflater = zlib.decompressobj(wbits=31)  # gzip: header and CRC checked
        return b""

    def close(self) -> None:
        self._compressed.close()
        super().close()


_GZIP_INPUT = 64 << 10  # compressed bytes inflated at a time


def _inflate_up_to_damage(inflater: Any, data: bytes) -> bytes:
    """What ``inflater`` makes of ``data`` up to the byte where zlib finds damage."""
    text: list[bytes] = []
    for offset in range(len(data)):
        try:
            text.append(inflater.decompress(data[offset : offset + 1]))
        except zlib.error:
            break
    return b"".join(text)


class Source:
    """One input named to ingest, checked to be readable; ``open`` gives its text, once."""

    def __init__(self, name: str, handle: IO[bytes] | None) -> None:
        self.name = name  # the path as given, or "-" for standard input
        self._handle = handle  # opened by open_source; None: standard input, or a FIFO

    def open(self) -> Text:
        """The input's text. A FIFO (a pipe, ``<(...)``) is opened here and not by open_source:
        opening one waits for its writer, who may be waiting for an input before it to be
        read."""
        if self.name == STDIN:
            rewindable = _Rewindable(sys.stdin.buffer, owned=False)
            return _text(self.name, datetime.now(UTC), io.BufferedReader(rewindable), rewindable)
        handle, self._handle = self._handle, None
        try:
            if handle is None:
                handle = open(self.name, "rb", buffering=0)  # noqa: SIM115 - Text closes it
            info = os.fstat(handle.fileno())
        except OSError as error:
            if handle is not None:
                handle.close()
            raise InputError(f"{self.name}: cannot be read ({error.strerror})") from None
        if stat.S_ISREG(info.st_mode):
            mtime = datetime.fromtimestamp(info.st_mtime, UTC)
            return _text(self.name, mtime, io.BufferedReader(cast("io.RawIOBase", handle)), None)
        # a pipe is being written now: its lines' year is this one
        rewindable = _Rewindable(handle, owned=True)
        return _text(self.name, datetime.now(UTC), io.BufferedReader(rewindable), rewindable)

    def close(self) -> None:
        """Close the input if it was never read."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def open_source(name: str) -> Source:
    """Check that an input can be read, and open it, unless it is a FIFO (see Source.open)."""
    if name == STDIN:
        return Source(name, None)
    path = Path(name)
    if not path.exists():
        raise InputError(f"{name}: no such file")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not a log file\n\nGive the files inside it.")
    if stat.S_ISFIFO(path.stat().st_mode):
        if not os.access(name, os.R_OK):
            raise InputError(f"{name}: cannot be read ({os.strerror(errno.EACCES)})")
        return Source(name, None)
    try:
        return Source(name, open(name, "rb", buffering=0))
    except OSError as error:
        raise InputError(f"{name}: cannot be read ({error.strerror})") from None


class Text:
    """One input's text, read once: its name, when it was last written, and a stream."""

    def __init__(
        self,
        name: str,
        mtime: datetime,
        *,
        raw: io.BufferedReader,
        regular: bool,
        rewindable: _Rewindable | None,
    ) -> None:
        self.name = name
        self.mtime = mtime  # gives RFC 3164 timestamps their year
        # a regular file may still be written to (its last line half-written); a pipe's,
        # standard input's or a gzip file's text is complete when it ends
        self.regular = regular
        self._raw = raw  # the file's bytes, compressed or not
        self._rewindable = rewindable  # keeps what is read of a text that cannot seek
        magic = raw.read(2)
        raw.seek(0)
        self.gzip = magic == GZIP_MAGIC
        self.text: io.BufferedReader = raw
        if self.gzip:
            if rewindable is not None:  # the compressed bytes are not read again
                rewindable.forget()
            self.text = self._decompressed()

    @property
    def growing(self) -> bool:
        """Whether a writer may still be appending to this input (its last line unfinished)."""
        return self.regular and not self.gzip

    def size(self) -> int | None:
        """The bytes of a plain regular file now (where its blocks' offsets are: ``Block``),
        None for any other input."""
        if not self.growing:
            return None
        try:
            return os.fstat(self._raw.fileno()).st_size
        except OSError:
            return None

    def _decompressed(self) -> io.BufferedReader:
        text = _Gunzip(self._raw)
        if self.regular:
            return io.BufferedReader(text)
        self._rewindable = _Rewindable(cast("IO[bytes]", text), owned=True)
        return io.BufferedReader(self._rewindable)

    def rewind(self, position: int) -> None:
        """Read on from ``position`` of the text, and keep nothing more (the start is known)."""
        self.text.seek(position)
        if self._rewindable is not None:
            self._rewindable.forget()

    def close(self) -> None:
        for stream in (self.text, self._raw):
            stream.close()

    def __enter__(self) -> Text:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def _text(
    name: str, mtime: datetime, raw: io.BufferedReader, rewindable: _Rewindable | None
) -> Text:
    try:
        return Text(name, mtime, raw=raw, regular=rewindable is None, rewindable=rewindable)
    except OSError as error:
        raw.close()
        raise InputError(f"{name}: cannot be read ({error.strerror or error})") from None


@dataclass
class RawLine:
    """A line that could not be turned into text, and why (``expected``: what it should have
    been, for the rejection's message)."""

    lineno: int
    error: str
    expected: str = "UTF-8 text"


def _decode(data: bytes, lineno: int) -> str | RawLine:
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        return RawLine(lineno, f"invalid UTF-8 at column {error.start + 1}")


# What a journald record must hold for logpath to read it as a kernel line
JOURNAL_RECORD = "a journald kernel record"
# The line a user-space program's journal record stands for: no netfilter line, skipped as such
# (``parse.skip_reason``)
USER_SPACE_RECORD = "(a journal record of a user-space program)"
_HOST_NAME = re.compile(r"[^\s\[\]]+")


def _journal_to_line(record: Mapping[str, object], lineno: int) -> str | RawLine:
    """A journald record (``journalctl -o json`` or ``-o export``) as the RFC 5424 line it
    stands for; USER_SPACE_RECORD (skipped, said why) for a record a user-space program wrote
    (``_TRANSPORT`` not ``kernel``: ``logger`` or any local program can write text that looks
    like a LOG line, and the journal keeps every source); a rejection for fields that would not
    make a header (they are copied into it: a PRIORITY or _HOSTNAME holding a forged header
    made hops of another time and host)."""
    transport = record.get("_TRANSPORT")
    if transport is not None and transport != "kernel":
        return USER_SPACE_RECORD
    pri = record.get("PRIORITY", "4")
    if not (isinstance(pri, str) and pri.isdigit() and int(pri) <= 7):
        return RawLine(lineno, f"PRIORITY {str(pri)[:40]!r} is not 0-7", JOURNAL_RECORD)
    host = record.get("_HOSTNAME") or "-"
    if not (isinstance(host, str) and _HOST_NAME.fullmatch(host)):
        return RawLine(lineno, f"_HOSTNAME {str(host)[:40]!r} is not a host name", JOURNAL_RECORD)
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journald writes non-UTF-8 messages as byte arrays
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256)
        message = message.decode("utf-8", "replace")
    stamp = "-"
    realtime = record.get("__REALTIME_TIMESTAMP")
    if isinstance(realtime, str) and realtime.isdigit() and len(realtime) <= 17:
        stamp = datetime.fromtimestamp(int(realtime) / 1e6, UTC).isoformat()
    monotonic = record.get("_SOURCE_MONOTONIC_TIMESTAMP")
    uptime = ""
    if isinstance(monotonic, str) and monotonic.isdigit() and len(monotonic) <= 17:
        uptime = f"[{int(monotonic) / 1e6:12.6f}] "
    return f"<{pri}>1 {stamp} {host} kernel - - - {uptime}{message or ''}"


# journalctl -o export starts with a trusted field (__CURSOR=, __REALTIME_TIMESTAMP=, ...)
JOURNAL_EXPORT = re.compile(rb"__[A-Z][A-Z_]*=")


def text_kind(head: bytes) -> str:
    """What an input's text is, told by its first bytes: journald's JSON records ("json", one
    per line), its export records ("export", over several lines), or text lines ("text")."""
    if head.startswith(b"{"):
        return "json"
    return "export" if JOURNAL_EXPORT.match(head) else "text"


@dataclass
class Block:
    """Consecutive lines of one source, cut so that they can be parsed in another process."""

    start: int  # line number of the first line
    count: int  # how many lines
    data: bytes = b""  # the lines as read, each ending in a newline (the very last may not)
    # or the lines already made, with their numbers (journald records span several lines)
    lines: list[tuple[int, str | RawLine]] | None = None
    # where ``data`` starts in its file, when that is a plain regular file: a worker of a
    # cluster that reaches the same file reads the bytes there (``fleet``), not sent them
    offset: int | None = None

    @property
    def end(self) -> int:
        """Line number of the last line."""
        return self.lines[-1][0] if self.lines else self.start + self.count - 1

    def texts(self, after: int = 0) -> tuple[Iterable[tuple[int, str]], list[RawLine]]:
        """The numbered text lines above line ``after``, and the lines that are not UTF-8.

        A clean block is decoded and split in C and numbered by ``enumerate``: no per-line
        work here, the parser's loop is the first to touch each line.
        """
        if self.lines is not None:
            kept = [(n, item) for n, item in self.lines if n > after]
            return (
                [(n, t) for n, t in kept if isinstance(t, str)],
                [t for _, t in kept if isinstance(t, RawLine)],
            )
        first = max(after - self.start + 1, 0)
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError:
            return self._texts_line_by_line(first)
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        items = text.split("\n")
        if self.data.endswith(b"\n"):
            items.pop()
        return enumerate(items[first:], self.start + first), []

    def _texts_line_by_line(self, first: int) -> tuple[list[tuple[int, str]], list[RawLine]]:
        raws = self.data.split(b"\n")
        if self.data.endswith(b"\n"):
            raws.pop()
        texts: list[tuple[int, str]] = []
        undecodable: list[RawLine] = []
        for i, raw in enumerate(raws[first:], self.start + first):
            item = _decode(raw, i)
            if isinstance(item, str):
                texts.append((i, item))
            else:
                undecodable.append(item)
        return texts, undecodable

    def first_line(self) -> str:
        """The first line's text (what recognised a file in stores written before extents)."""
        if self.lines is not None:
            first = self.lines[0][1] if self.lines else ""
            return first if isinstance(first, str) else ""
        return self.data.split(b"\n", 1)[0].decode("utf-8", "replace")


class _Tally:
    """What has been read of a source so far: whole lines, counted, measured and hashed."""

    def __init__(self, start: Extent, hasher: hashlib._Hash, head: bytes) -> None:
        self.lines = start.lines
        self.size = start.size
        self._hasher = hasher  # has hashed the start's bytes
        self._head = head[: min(HEAD_BYTES, start.size)]

    def add(self, data: bytes, lines: int) -> None:
        self._hasher.update(data)
        self.size += len(data)
        self.lines += lines
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]

    def extent(self) -> Extent:
        return Extent(self.lines, self.size, self._hasher.hexdigest(), _sha256(self._head))


class Reading:
    """One source read on from where the runs before stopped.

    ``continues`` names the extent (of ``known``) this source starts with, ``before`` is that
    extent (nothing for a source never read): its lines are not read again. ``blocks`` yields
    the lines after it; ``extent`` is what has been read once they are consumed, and
    ``held_back`` counts the lines left for the next run, by reason.
    """

    def __init__(self, source: Text, known: Mapping[str, Extent]) -> None:
        self.source = source
        self.held_back: Counter[str] = Counter()
        self.continues, self._head, hasher = recognise(source.text, known)
        self.before = known[self.continues] if self.continues else NOTHING
        try:
            source.rewind(self.before.size)
        except _DAMAGE as error:
            raise InputError(_damaged(source, self.before.lines, error)) from None
        self._tally = _Tally(self.before, hasher, self._head)

    def extent(self) -> Extent:
        return self._tally.extent()

    def blocks(self) -> Iterator[Block]:
        """The lines after ``before``, cut into blocks; at damage, the whole lines before it,
        then InputError. journald's JSON and export formats are turned into lines here."""
        source, tally, held_back = self.source, self._tally, self.held_back
        growing = source.growing
        try:
            kind = text_kind(self._head)
            if kind == "json":
                yield from _line_blocks(_journal_lines(source.text, tally, growing, held_back))
            elif kind == "export":
                yield from _line_blocks(_export_lines(source.text, tally, growing, held_back))
            else:
                offsets = source.regular and not source.gzip
                yield from _text_blocks(source.text, tally, growing, held_back, offsets)
        except _DAMAGE as error:
            raise InputError(_damaged(source, tally.lines, error)) from None


def recognise(
    stream: io.BufferedReader, known: Mapping[str, Extent]
) -> tuple[str | None, bytes, hashlib._Hash]:
    """Which known extent this text starts with: the longest, if several do.

    Candidates are the extents whose first KiB is the text's; each is confirmed by hashing the
    text's first ``size`` bytes, read once for all of them. Returns the extent's key (None: a
    text never read), the text's first KiB, and a hash of the extent's bytes, to be continued.
    """
    hasher = hashlib.sha256()
    found: tuple[str | None, hashlib._Hash] = (None, hasher.copy())
    head = b""
    try:
        head = stream.read(HEAD_BYTES)
        heads: dict[int, str] = {}
        candidates: list[tuple[int, str]] = []
        for key, extent in known.items():
            length = min(HEAD_BYTES, extent.size)
            if length > len(head):
                continue
            if length not in heads:
                heads[length] = _sha256(head[:length])
            if heads[length] == extent.head:
                candidates.append((extent.size, key))
        hashed, unhashed = 0, head  # bytes hashed, and read after them
        for size, key in sorted(candidates):
            while hashed + len(unhashed) < size:
                hasher.update(unhashed)
                hashed += len(unhashed)
                unhashed = stream.read(min(BLOCK_BYTES, size - hashed))
                if not unhashed:
                    break
            if hashed + len(unhashed) < size:
                break  # this text is shorter than the extent: it is another text
            hasher.update(unhashed[: size - hashed])
            unhashed, hashed = unhashed[size - hashed :], size
            if hasher.hexdigest() == known[key].digest:
                found = (key, hasher.copy())
    except _DAMAGE:
        pass  # the reading, from the extent found so far, meets it again and says where
    return found[0], head, found[1]


# zlib's words for a gzip member's trailer that does not match the text inflated
_ZLIB_REASONS = {
    "incorrect data check": "its CRC-32 does not match the text",
    "incorrect length check": "its length does not match the text",
}


def _damaged(source: Text, lines: int, error: BaseException) -> str:
    """The message for an input whose reading stopped after ``lines`` whole lines."""
    if isinstance(error, EOFError):
        reason = "it ends early: the file is truncated"
    elif isinstance(error, zlib.error):  # "Error -3 while decompressing data: invalid ..."
        reason = str(error).rpartition(": ")[2]
        reason = _ZLIB_REASONS.get(reason, reason)
    elif isinstance(error, gzip.BadGzipFile):
        reason = str(error)
    else:
        reason = getattr(error, "strerror", None) or str(error)
    what = "compressed data is damaged" if source.gzip else "cannot be read"
    if not lines:
        return f"{source.name}: {what} before its first line ({reason}); nothing was read from it"
    return (
        f"{source.name}: {what} after line {lines:,} ({reason}); "
        f"lines 1-{lines:,} were read, nothing after them"
    )


def _text_blocks(
    stream: io.BufferedReader,
    tally: _Tally,
    growing: bool,
    held_back: Counter[str],
    offsets: bool = False,
) -> Iterator[Block]:
    """Text in large reads, so that this process does no work per line (with ``offsets``,
    each block says where it starts in the file: the stream is the file's bytes).

    ``read1`` is one read of the stream below: at damage, what came before it is in hand, and
    its whole lines are yielded before the error goes on.
    """
    pending: list[bytes] = []
    size = 0
    try:
        while chunk := stream.read1(BLOCK_BYTES):
            pending.append(chunk)
            size += len(chunk)
            if size >= BLOCK_BYTES:
                pending.append(stream.readline())  # a block ends with a whole line
                after = _rest_of_trace_visit(stream, pending)
                data = b"".join(pending)
                pending, size = [after] if after else [], len(after)
                if not data.endswith(b"\n"):  # the text ends inside that line
                    pending = [data, after]
                    break
                yield _block(tally, data, offsets)
    except _DAMAGE:
        data = b"".join(pending)
        if whole := data[: data.rfind(b"\n") + 1]:  # the line the damage is in is not whole
            yield _block(tally, whole, offsets)
        raise
    data = b"".join(pending)
    if growing and data and not data.endswith(b"\n"):
        # the file ends inside a line: its writer has not finished it, the next run will
        held_back[HELD_BACK_LINE] += 1
        data = data[: data.rfind(b"\n") + 1]
    if data:
        yield _block(tally, data, offsets)


def _continues_trace_visit(line: bytes) -> bool:
    """Whether a line goes on a chain visit of a trace (``logpath.nftrace``): a rule, policy or
    return line of ``nft monitor trace`` (not a packet line), or xtables-monitor's ``TRACE:``."""
    if line.startswith(b" TRACE: "):
        return True
    return line.startswith(b"trace id ") and b" packet: " not in line


def _rest_of_trace_visit(stream: io.BufferedReader, block: list[bytes]) -> bytes:
    """Append to ``block`` the lines after it that go on its last chain visit, so that a
    visit's lines are parsed together; return the first line that does not (b"" at the end)."""
    last = _last_line(block[-2:])  # in the last read, or across two
    if last is None or not _is_trace(last):
        return b""
    while (line := stream.readline()) and _continues_trace_visit(line):
        block.append(line)
    return line


def _last_line(pieces: list[bytes]) -> bytes | None:
    """The last line of the text ``pieces`` make (without its newline), None when the text
    does not end with one. The pieces are not joined: the first is a whole read (4 MB), and
    joining it to see its last line copied every block once more (~0.4 s of the 2M-line
    replay's ingest, in the process that hands the workers their blocks)."""
    text = [piece for piece in pieces if piece]
    if not text or not text[-1].endswith(b"\n"):
        return None
    end = text[-1][:-1]
    cut = end.rfind(b"\n")
    if cut >= 0 or len(text) == 1:
        return end[cut + 1 :]
    before = text[-2]
    return before[before.rfind(b"\n") + 1 :] + end


def _is_trace(line: bytes) -> bool:
    return line.startswith((b"trace id ", b"PACKET: ", b" TRACE: "))


def _block(tally: _Tally, data: bytes, offset: bool = False) -> Block:
    start, at = tally.lines + 1, tally.size
    count = data.count(b"\n") + (not data.endswith(b"\n"))
    tally.add(data, count)
    return Block(start, count, data, offset=at if offset else None)


def _line_blocks(lines: Iterator[tuple[int, str | RawLine]]) -> Iterator[Block]:
    pending: list[tuple[int, str | RawLine]] = []
    try:
        for item in lines:
            pending.append(item)
            if len(pending) == JOURNAL_BLOCK_LINES:
                yield Block(pending[0][0], len(pending), lines=pending)
                pending = []
    except _DAMAGE:
        if pending:
            yield Block(pending[0][0], len(pending), lines=pending)
        raise
    if pending:
        yield Block(pending[0][0], len(pending), lines=pending)


def _journal_lines(
    stream: io.BufferedReader, tally: _Tally, growing: bool, held_back: Counter[str]
) -> Iterator[tuple[int, str | RawLine]]:
    """journalctl -o json: one object per line."""
    for data in stream:
        if growing and not data.endswith(b"\n"):
            held_back[HELD_BACK_LINE] += 1
            return
        lineno = tally.lines + 1
        tally.add(data, 1)
        yield lineno, journal_record(lineno, data)


def journal_record(lineno: int, data: bytes) -> str | RawLine:
    """One line of ``journalctl -o json`` as the line it stands for ("" for a blank line)."""
    if not data.strip():
        return ""
    try:
        record = json.loads(data)
    except ValueError as error:  # not JSON, or not UTF-8
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        return RawLine(lineno, f"not a JSON object ({reason})", JOURNAL_RECORD)
    if not isinstance(record, dict):
        return RawLine(lineno, f"not a JSON object (a {type(record).__name__})", JOURNAL_RECORD)
    return _journal_to_line(record, lineno)


def _export_lines(
    stream: io.BufferedReader, tally: _Tally, growing: bool, held_back: Counter[str]
) -> Iterator[tuple[int, str | RawLine]]:
    """journalctl -o export: KEY=value lines, a blank line after each record; one line per
    record, numbered by the record's first line."""
    record: list[bytes] = []
    for data in stream:
        if growing and not data.endswith(b"\n"):
            record.append(data)  # held back below, with its record
            break
        if data.strip():
            record.append(data)
            continue
        lineno = tally.lines + 1
        tally.add(b"".join(record) + data, len(record) + 1)
        yield lineno, _export_record(record, lineno) if record else ""
        record = []
    if record and growing:
        held_back[HELD_BACK_RECORD] += 1
    elif record:  # a finished stream: its last record is whole
        lineno = tally.lines + 1
        tally.add(b"".join(record), len(record))
        yield lineno, _export_record(record, lineno)


def export_records(start: int, whole: bytes) -> list[tuple[int, str | RawLine]]:
    """journalctl -o export's records in ``whole`` (ending with a record's blank line), as
    ``_export_lines`` makes them: each numbered by its first line (``whole``'s first is
    ``start``), a blank line between records as an empty line."""
    items: list[tuple[int, str | RawLine]] = []
    record: list[bytes] = []
    first = start
    for lineno, line in enumerate(whole.split(b"\n")[:-1], start):
        if line.strip():
            if not record:
                first = lineno
            record.append(line + b"\n")
            continue
        items.append((first, _export_record(record, first)) if record else (lineno, ""))
        record = []
    return items


def _export_record(lines: list[bytes], lineno: int) -> str | RawLine:
    fields = dict(
        line.rstrip(b"\n").decode("utf-8", "replace").partition("=")[::2] for line in lines
    )
    return _journal_to_line(fields, lineno)


def first_line_identity(first_line: str) -> str:
    """What recognised a file in stores written before extents: a hash of its first line."""
    return hashlib.sha1(first_line.encode("utf-8", "surrogateescape")).hexdigest()
