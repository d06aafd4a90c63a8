"""Read-lines stage: open files (plain, gzip, standard input, journald exports) and number lines.

A rotated set (``syslog``, ``syslog.1``, ``syslog.2.gz``) is read oldest first. journald's JSON and
export formats are turned into RFC 5424 lines (``<pri>1 time host kernel - - - [uptime] message``)
so that one header grammar serves every input; the line number is that of the record's start.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from logpath.errors import InputError

STDIN = "-"
_ROTATED = re.compile(r"^(?P<base>.*?)\.(?P<n>\d+)(?:\.gz)?$")


@dataclass(frozen=True)
class Source:
    """One input: its display name, when it was last written, and how to open it."""

    name: str  # the path as given, or "-" for standard input
    mtime: datetime  # gives RFC 3164 timestamps their year
    gzip: bool


def rotation_order(paths: list[str]) -> list[str]:
    """Sort paths so that a rotated set is read oldest first: syslog.2.gz, syslog.1, syslog."""

    def key(path: str) -> tuple[str, int]:
        match = _ROTATED.match(path)
        if match:
            return match["base"], -int(match["n"])
        return path.removesuffix(".gz"), 0

    return sorted(paths, key=key)


def open_source(name: str) -> Source:
    """Check that a path can be read, and describe it."""
    if name == STDIN:
        return Source(STDIN, datetime.now(UTC), False)
    path = Path(name)
    if not path.exists():
        raise InputError(f"{name}: no such file")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not a log file\n\nGive the files inside it.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(2)
    except OSError as error:
        raise InputError(f"{name}: cannot be read ({error.strerror})") from None
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return Source(name, mtime, magic == b"\x1f\x8b")


@dataclass
class RawLine:
    """A line that could not be turned into text, and why."""

    lineno: int
    error: str


@contextmanager
def _open_binary(source: Source) -> Iterator[IO[bytes]]:
    if source.name == STDIN:
        yield sys.stdin.buffer
    elif source.gzip:
        with gzip.open(source.name, "rb") as handle:
            yield cast("IO[bytes]", handle)
    else:
        with open(source.name, "rb") as handle:
            yield handle


def _export_lines(stream: IO[bytes]) -> Iterator[tuple[int, str | RawLine]]:
    """journalctl -o export: one line per record, numbered by the record's first line."""
    pending: list[bytes] = []
    lineno = 0
    for lineno, data in enumerate(stream, 1):
        yield from _export_record(pending, data, lineno)
    if pending:
        yield from _export_record(pending, b"\n", lineno + 1)


def _decode(data: bytes, lineno: int) -> str | RawLine:
    try:
        return data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        return RawLine(lineno, f"invalid UTF-8 at column {error.start + 1}")


def _journal_lines(stream: IO[bytes]) -> Iterator[tuple[int, str | RawLine]]:
    """journalctl -o json: one object per line."""
    for lineno, data in enumerate(stream, 1):
        if not data.strip():
            yield lineno, ""
            continue
        try:
            record = json.loads(data)
        except json.JSONDecodeError as error:
            yield lineno, RawLine(lineno, f"not a JSON object ({error.msg})")
            continue
        yield lineno, _journal_to_line(record)


def _export_record(pending: list[bytes], data: bytes, lineno: int) -> Iterator[tuple[int, str]]:
    """journalctl -o export: KEY=value lines, a blank line between records."""
    if data.strip():
        pending.append(data.rstrip(b"\n"))
        return
    fields = dict(line.decode("utf-8", "replace").partition("=")[::2] for line in pending)
    start = lineno - len(pending)
    pending.clear()
    yield start, _journal_to_line(fields)


def _journal_to_line(record: Mapping[str, object]) -> str:
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journald writes non-UTF-8 messages as byte arrays
        message = bytes(int(b) for b in message).decode("utf-8", "replace")
    realtime = record.get("__REALTIME_TIMESTAMP")
    stamp = "-"
    if isinstance(realtime, str) and realtime.isdigit():
        stamp = datetime.fromtimestamp(int(realtime) / 1e6, UTC).isoformat()
    monotonic = record.get("_SOURCE_MONOTONIC_TIMESTAMP")
    uptime = ""
    if isinstance(monotonic, str) and monotonic.isdigit():
        uptime = f"[{int(monotonic) / 1e6:12.6f}] "
    pri = record.get("PRIORITY", "4")
    host = record.get("_HOSTNAME") or "-"
    return f"<{pri}>1 {stamp} {host} kernel - - - {uptime}{message or ''}"


# journalctl -o export starts with a trusted field (__CURSOR=, __REALTIME_TIMESTAMP=, ...)
JOURNAL_EXPORT = re.compile(rb"__[A-Z][A-Z_]*=")
BLOCK_BYTES = 4 << 20  # what one worker parses at a time: ~20,000 syslog lines
JOURNAL_BLOCK_LINES = 20_000


@dataclass
class Block:
    """Consecutive lines of one source, cut so that they can be parsed in another process."""

    start: int  # line number of the first line
    count: int  # how many lines
    data: bytes = b""  # the lines as read, each ending in a newline (the very last may not)
    # or the lines already made, with their numbers (journald records span several lines)
    lines: list[tuple[int, str | RawLine]] | None = None

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
        """The first line's text (it identifies the file across renames)."""
        if self.lines is not None:
            first = self.lines[0][1] if self.lines else ""
            return first if isinstance(first, str) else ""
        return self.data.split(b"\n", 1)[0].decode("utf-8", "replace")


def read_blocks(source: Source) -> Iterator[Block]:
    """Cut a source into blocks of whole lines.

    Plain text is read in large reads, so that this process does no work per line; gzip is read
    line by line, so that a truncated stream still yields every complete line before InputError.
    journald's JSON and export formats are turned into lines here.
    """
    with _open_binary(source) as stream:
        head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
        try:
            if head.startswith(b"{") or JOURNAL_EXPORT.match(head):
                yield from _line_blocks(read_lines_from(stream, head))
            elif source.gzip or source.name == STDIN:
                yield from _gathered_blocks(stream)
            else:
                yield from _read_blocks(stream)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise InputError(
                f"{source.name}: compressed data is truncated or damaged ({error}); "
                "the lines before the damage were read"
            ) from None


def _read_blocks(stream: IO[bytes]) -> Iterator[Block]:
    start = 1
    while data := stream.read(BLOCK_BYTES):
        if not data.endswith(b"\n"):
            data += stream.readline()
        count = data.count(b"\n") + (not data.endswith(b"\n"))
        yield Block(start, count, data)
        start += count


def _gathered_blocks(stream: IO[bytes]) -> Iterator[Block]:
    start, pending, size = 1, [], 0
    try:
        for raw in stream:
            pending.append(raw)
            size += len(raw)
            if size >= BLOCK_BYTES:
                yield Block(start, len(pending), b"".join(pending))
                start, pending, size = start + len(pending), [], 0
    except (EOFError, zlib.error, gzip.BadGzipFile):
        if pending:  # a damaged stream still gives the complete lines read before it
            yield Block(start, len(pending), b"".join(pending))
        raise
    if pending:
        yield Block(start, len(pending), b"".join(pending))


def _line_blocks(lines: Iterator[tuple[int, str | RawLine]]) -> Iterator[Block]:
    pending: list[tuple[int, str | RawLine]] = []
    for item in lines:
        pending.append(item)
        if len(pending) == JOURNAL_BLOCK_LINES:
            yield Block(pending[0][0], len(pending), lines=pending)
            pending = []
    if pending:
        yield Block(pending[0][0], len(pending), lines=pending)


def read_lines_from(stream: IO[bytes], head: bytes) -> Iterator[tuple[int, str | RawLine]]:
    """Numbered lines of a journald JSON or export stream."""
    return _journal_lines(stream) if head.startswith(b"{") else _export_lines(stream)


def identity(first_line: str) -> str:
    """What identifies a file's content across renames (rotation): a hash of its first line."""
    return hashlib.sha1(first_line.encode("utf-8", "surrogateescape")).hexdigest()
