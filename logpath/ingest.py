"""Ingest: read log files, parse their netfilter lines and add the hops to the store.

This drives the first stages of the pipeline (lines → parse → hops) chunk by chunk, so memory
stays flat however large the file, and commits everything a run read in one step at the end.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from logpath.errors import InputError
from logpath.hops import build_hops
from logpath.lines import RawLine, Source, identity, open_source, read_lines, rotation_order
from logpath.parse import Rejected, parse_lines
from logpath.store import SourceState, Store, StoreWriter

CHUNK_LINES = 100_000


@dataclass
class IngestSummary:
    """What one ingest run read and stored."""

    files: int = 0  # inputs read (fully or in part)
    lines: int = 0  # new lines read
    netfilter_lines: int = 0  # lines that look like netfilter lines (hops + rejected)
    hops: int = 0  # hops stored
    rejected: int = 0  # netfilter-looking lines that do not parse (`logpath rejected` lists them)
    skipped: int = 0  # other lines, by reason in skipped_by_reason
    already_stored: int = 0  # lines skipped because an earlier run stored them
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # inputs that could not be read (or not all)

    def to_json(self) -> dict[str, object]:
        return {
            "files": self.files,
            "lines": self.lines,
            "netfilter_lines": self.netfilter_lines,
            "hops": self.hops,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "already_stored": self.already_stored,
            "skipped_by_reason": dict(self.skipped_by_reason),
            "rejected_by_reason": dict(self.rejected_by_reason),
            "errors": self.errors,
        }


Numbered = tuple[int, str | RawLine]
Progress = Callable[[str, int], None]  # (source name, lines read so far in it)


def ingest(
    paths: Iterable[str],
    store: Store,
    *,
    year: int | None = None,
    ruleset: dict[str, object] | None = None,
    progress: Progress | None = None,
) -> IngestSummary:
    """Read ``paths`` (``-`` is standard input) into ``store``; return what was done.

    An input that cannot be read is reported in ``errors`` and the others are still ingested.
    """
    summary = IngestSummary()
    with store.writer() as writer:
        if ruleset is not None:
            writer.manifest.ruleset = ruleset
        for name in rotation_order(list(paths)):
            try:
                source = open_source(name)
                _ingest_source(source, writer, summary, year, progress)
            except InputError as error:
                summary.errors.append(str(error))
    return summary


def _ingest_source(
    source: Source,
    writer: StoreWriter,
    summary: IngestSummary,
    year: int | None,
    progress: Progress | None,
) -> None:
    summary.files += 1
    lines = read_lines(source)
    first = next(lines, None)
    if first is None:
        return
    key = identity(first[1] if isinstance(first[1], str) else "")
    state = writer.manifest.sources.get(key) or SourceState(source.name, 0)
    done = state.lines
    writer.manifest.sources[key] = state
    state.name = source.name
    numbered = _prepend(first, lines)
    try:
        for chunk in _chunks(numbered, CHUNK_LINES):
            fresh = [(n, t) for n, t in chunk if n > done]
            summary.already_stored += len(chunk) - len(fresh)
            if fresh:
                _ingest_chunk(source, fresh, writer, summary, year)
                state.lines = fresh[-1][0]
            if progress:
                progress(source.name, chunk[-1][0])
    finally:
        state.lines = max(state.lines, done)


def _ingest_chunk(
    source: Source,
    chunk: list[tuple[int, str | RawLine]],
    writer: StoreWriter,
    summary: IngestSummary,
    year: int | None,
) -> None:
    text = [(n, t) for n, t in chunk if isinstance(t, str)]
    undecodable = [
        Rejected(source.name, t.lineno, 1, "UTF-8 text", t.error, "")
        for _, t in chunk
        if isinstance(t, RawLine)
    ]
    parsed = parse_lines(source.name, text)
    parsed.rejected.extend(undecodable)
    parsed.lines += len(undecodable)
    writer.add_hops(build_hops(parsed, source.name, year=year, mtime=source.mtime))
    writer.add_rejected(parsed.rejected)
    summary.lines += parsed.lines
    summary.hops += parsed.hops
    summary.rejected += len(parsed.rejected)
    summary.netfilter_lines += parsed.hops + len(parsed.rejected)
    summary.skipped += sum(parsed.skipped.values())
    summary.skipped_by_reason.update(parsed.skipped)
    summary.rejected_by_reason.update(f"expected {r.expected}" for r in parsed.rejected)
    skipped = writer.manifest.skipped
    for reason, count in parsed.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + count


def _prepend(
    first: tuple[int, str | RawLine], rest: Iterator[tuple[int, str | RawLine]]
) -> Iterator[tuple[int, str | RawLine]]:
    yield first
    yield from rest


def _chunks(items: Iterator[Numbered], size: int) -> Iterator[list[Numbered]]:
    chunk: list[Numbered] = []
    try:
        for item in items:
            chunk.append(item)
            if len(chunk) == size:
                yield chunk
                chunk = []
    except InputError:
        if chunk:  # keep the lines read before a damaged gzip stream ended
            yield chunk
        raise
    if chunk:
        yield chunk
