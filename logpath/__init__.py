"""logpath: reconstruct packet journeys from netfilter LOG lines.

The library behind the ``logpath`` command, one module per stage of the pipeline::

    from logpath import Store, ingest, FlowQuery, find_flows, load_journey

    store = Store("/tmp/store")
    ingest(["/var/log/syslog"], store)
    flows = find_flows(store, FlowQuery(port=12580))
    journey = load_journey(store, flows[0].id)

Names are imported on first use, so that ``import logpath`` (or ``logpath.grammars``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "parse_line": "logpath.parse",
    "parse_lines": "logpath.parse",
    "HOP_SCHEMA": "logpath.hops",
    "Store": "logpath.store",
    "ingest": "logpath.ingest",
    "load_ruleset": "logpath.rules",
    "resolve_hooks": "logpath.hooks",
    "FlowQuery": "logpath.query",
    "find_flows": "logpath.query",
    "select_flows": "logpath.query",
    "load_journey": "logpath.query",
    "assemble": "logpath.assembly",
    "trace_hops": "logpath.assembly",
    "build_journeys": "logpath.journeys",
    "Flow": "logpath.flows",
    "Journey": "logpath.journeys",
    "LogpathError": "logpath.errors",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'logpath' has no attribute {name!r}")
