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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

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
            yield handle
    else:
        with open(source.name, "rb") as handle:
            yield handle


def read_lines(source: Source) -> Iterator[tuple[int, str | RawLine]]:
    """Yield (line number, text) for every line; undecodable lines come as RawLine.

    A truncated or damaged gzip stops the iteration with InputError after every complete line.
    """
    with _open_binary(source) as stream:
        first = stream.peek(1)[:1] if hasattr(stream, "peek") else b""
        records = _journal_lines(stream) if first == b"{" else _text_lines(stream)
        try:
            yield from records
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise InputError(
                f"{source.name}: compressed data is truncated or damaged ({error}); "
                "the lines before the damage were read"
            ) from None


def _text_lines(stream: IO[bytes]) -> Iterator[tuple[int, str | RawLine]]:
    lineno = 0
    export: list[bytes] | None = None
    for lineno, data in enumerate(stream, 1):
        if (lineno == 1 and data.startswith(b"__CURSOR=")) or export is not None:
            export = export if export is not None else []
            yield from _export_record(export, data, lineno)
            continue
        yield lineno, _decode(data, lineno)
    if export:
        yield from _export_record(export, b"\n", lineno + 1)


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
        except ValueError as error:
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


def _journal_to_line(record: dict[str, object]) -> str:
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


def identity(first_line: str) -> str:
    """What identifies a file's content across renames (rotation): a hash of its first line."""
    return hashlib.sha1(first_line.encode("utf-8", "surrogateescape")).hexdigest()
