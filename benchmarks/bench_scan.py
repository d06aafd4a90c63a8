"""Parse-only benchmark (issue 13): the C scanner against the pure-Python path, one process.

Cuts FILE into blocks of whole lines of ``lines.BLOCK_BYTES`` (8 MiB), as ingest does, and runs
on every block either ``parse_block``/``parse_lines`` (``--stage extract``: the fields as string
columns) or ingest's ``parse_chunk`` (``--stage chunk``: also typed into the hop table by
``build_hops``). Prints the lines, hops and lines per CPU-second; ``LOGPATH_PURE_PYTHON=1``
forces the pure-Python path.
``--check`` compares both paths field by field on every block instead of timing.

    .venv/bin/python benchmarks/bench_scan.py FILE [--stage extract|chunk] [--check]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

from logpath.ingest import parse_chunk
from logpath.lines import BLOCK_BYTES, Block
from logpath.parse import PURE_PYTHON_ENV, ParsedLines, parse_block, parse_lines, scanner_status
from logpath.runtime import without_cyclic_gc


def blocks(path: Path) -> Iterator[Block]:
    """The file in blocks of whole lines of about BLOCK_BYTES, numbered as ingest numbers them."""
    start, carry = 1, b""
    with path.open("rb") as file:
        while chunk := file.read(BLOCK_BYTES):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            data, carry = data[:cut], data[cut:]
            count = data.count(b"\n")
            yield Block(start=start, count=count, data=data)
            start += count
    if carry:
        yield Block(start=start, count=1, data=carry)


def extract(block: Block) -> ParsedLines:
    parsed = parse_block("bench", block)
    if parsed is None:
        text, _ = block.texts()
        parsed = parse_lines("bench", text)
    return parsed


def check(path: Path) -> None:
    """Both paths give the same fields, hops, rejects and counts on every block."""
    for block in blocks(path):
        scanned = extract(block)
        os.environ[PURE_PYTHON_ENV] = "1"
        pure = extract(block)
        del os.environ[PURE_PYTHON_ENV]
        assert (scanned.lineno, scanned.raw, scanned.rejected) == (
            pure.lineno,
            pure.raw,
            pure.rejected,
        )
        assert (scanned.skipped, scanned.lines) == (pure.skipped, pure.lines)
        for name, values in pure.fields.items():
            assert scanned.fields[name].equals(values), (block.start, name)
    print(f"{path}: the scanner equals the pure-Python path on every block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--stage", choices=["extract", "chunk"], default="extract")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        check(args.file)
        return
    mtime = dt.datetime.fromtimestamp(args.file.stat().st_mtime, dt.UTC)
    lines = hops = 0
    cpu = time.process_time()
    with without_cyclic_gc():  # as in ingest's workers
        for block in blocks(args.file):
            if args.stage == "extract":
                parsed = extract(block)
                lines, hops = lines + parsed.lines, hops + parsed.hops
            else:
                result = parse_chunk("bench", mtime, None, block, 0)
                lines, hops = lines + result.lines, hops + result.hops.num_rows
    cpu = time.process_time() - cpu
    print(
        f"{scanner_status()}; {args.stage}: {lines} lines, {hops} hops, {cpu:.2f} CPU-s, "
        f"{lines / cpu:,.0f} lines/CPU-s"
    )


if __name__ == "__main__":
    main()
