"""What the server that an ingest's workers are forked from imports (``runtime.worker_context``),
and nothing else imports.

The server lives as long as the run (``runtime.stop_worker_server``), or its process. It ignores
the signals that stop a run (``errors.STOP_SIGNALS``), as the workers do
(``ingest._worker_started``): Ctrl-C, a SIGTERM or a SIGHUP sent to the whole process group is
the ingest's to handle (it shuts the workers down and removes what it wrote), and a server
killed by it would take its workers along (they die with it) before the ingest could say it was
stopped.
"""

import atexit
import os
import signal

from logpath.errors import STOP_SIGNALS

for number in STOP_SIGNALS:
    signal.signal(number, signal.SIG_IGN)

# The server's end is the run's last wait (``runtime.stop_worker_server`` waits for it): the
# interpreter's teardown of what it imported (pandas, Arrow, the pipeline) took 0.15-0.17 s of
# each big ingest's end. It holds nothing to flush or remove (its workers end on their own,
# through os._exit, which runs no atexit function): its exit is left to the system.
atexit.register(os._exit, 0)

import logpath.assembly  # noqa: E402  (what the workers run, imported once for all)
import logpath.ingest  # noqa: E402


def _warmed_up() -> None:
    """Parse a few known lines as a worker parses a block, so that what each process builds at
    its first block (the grammar's patterns compiled and checked against this Python's ``re``,
    the typing's first calls into pandas and Arrow) is built once here, and every worker forked
    from here has it: a worker's first block of the 2M-line replay took 0.24 CPU-s, its next
    ones ~0.04 (0.05 after this).

    A failure is left to the workers: the same error comes again at their first block, and the
    ingest reports it there (a Python whose ``re`` misreads the lines, say)."""
    import contextlib
    import datetime as dt

    from logpath.lines import Block
    from logpath.parse import KNOWN_LINES

    sample = "".join(f"{line}\n" for line in KNOWN_LINES).encode()
    # a failure is reported by the workers, as said above
    with contextlib.suppress(Exception):
        logpath.ingest.parse_chunk(
            "warm-up", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), None, Block(1, 3, sample), 0
        )


_warmed_up()
