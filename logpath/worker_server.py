"""What the server that an ingest's workers are forked from imports (``runtime.worker_context``),
and nothing else imports.

The server lives as long as the run (``runtime.stop_worker_server``), or its process. It ignores
the signals that stop a run (``errors.STOP_SIGNALS``), as the workers do
(``ingest._worker_started``): Ctrl-C, a SIGTERM or a SIGHUP sent to the whole process group is
the ingest's to handle (it shuts the workers down and removes what it wrote), and a server
killed by it would take its workers along (they die with it) before the ingest could say it was
stopped.
"""

import signal

from logpath.errors import STOP_SIGNALS

for number in STOP_SIGNALS:
    signal.signal(number, signal.SIG_IGN)

import logpath.assembly  # noqa: E402  (what the workers run, imported once for all)
import logpath.ingest  # noqa: E402,F401
