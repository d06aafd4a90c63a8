"""Command line: a thin shell over the library. ``main`` is the console script."""

from __future__ import annotations

import gc
import os
import sys

# Arrow's default allocator, mimalloc, keeps the decode buffers of the store's scans: `flows
# --port` on the 2M-line store peaked at 410 MiB with it and at 280 MiB with jemalloc, at the same
# speed. Arrow reads the choice once, when its first buffer is allocated, so it is made before
# anything imports pyarrow; ingest's worker processes inherit it. A user's own choice stands.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

# Importing the command modules registers their commands on ``app``.
from logpath.cli import commands as _commands  # noqa: F401
from logpath.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI. ``--traceback`` anywhere shows tracebacks instead of one-line messages."""
    if "--traceback" in sys.argv:
        sys.argv.remove("--traceback")
        os.environ["LOGPATH_TRACEBACK"] = "1"
    try:
        app()
    finally:
        # The command is done; at exit the interpreter would walk every object the tables
        # left behind (0.2 s after `flows` on a big store). Frozen objects are skipped.
        gc.freeze()
