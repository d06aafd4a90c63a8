"""Imports every command module so that each registers its commands on the app.

One line per command module; keep them sorted. A command module imports typer and the shared
options at its top and the library (pandas, Arrow, rich, ...) inside the command that uses it:
all of them are imported for every command (tests/test_cli.py checks it).
"""

from logpath.cli import doctor  # noqa: F401
from logpath.cli import flows  # noqa: F401
from logpath.cli import follow  # noqa: F401
from logpath.cli import ingest  # noqa: F401
from logpath.cli import instrument  # noqa: F401
from logpath.cli import render  # noqa: F401
