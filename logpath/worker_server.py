"""What the server that an ingest's workers are forked from imports (``runtime.worker_context``),
and nothing else imports.

The server lives as long as the run (``runtime.stop_worker_server``), or its process. It ignores
the signals that stop a run, as the workers do (``ingest._worker_started``): a SIGTERM or SIGHUP
sent to the whole process group is the ingest's to handle (it shuts the workers down and removes
what it wrote), and a server killed by it would take its workers along (they die with it) before
the ingest could say it was stopped. Ctrl-C the server ignores by itself.
"""

import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)

import logpath.assembly  # noqa: E402  (what the workers run, imported once for all)
import logpath.ingest  # noqa: E402,F401
