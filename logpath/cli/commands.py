"""Imports every command module so that each registers its commands on the app.

One line per command module; keep them sorted.
"""

from logpath.cli import doctor  # noqa: F401
from logpath.cli import flows  # noqa: F401
from logpath.cli import ingest  # noqa: F401
from logpath.cli import instrument  # noqa: F401
from logpath.cli import render  # noqa: F401
