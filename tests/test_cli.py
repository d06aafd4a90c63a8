"""Every command has help text with an example, and the package's public names resolve."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer.main
from typer.testing import CliRunner

import logpath
from logpath.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def test_the_commands_the_brief_promises_exist() -> None:
    assert {"ingest", "hops", "rejected", "flows", "journey", "render", "report", "instrument",
            "doctor"} <= set(COMMANDS)  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Example: logpath {command}" in result.stdout


@pytest.mark.parametrize("name", logpath.__all__)
def test_public_names_resolve(name: str) -> None:
    assert getattr(logpath, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        logpath.nope  # noqa: B018


@pytest.mark.parametrize(("chosen", "used"), [(None, "jemalloc"), ("system", "system")])
def test_the_cli_gives_arrow_jemalloc_unless_the_user_chose(chosen: str | None, used: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    code = "import logpath.cli, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == used


def test_starting_the_cli_imports_no_library_a_command_loads() -> None:
    """Listing the commands imports their modules: each imports its library (pandas, Arrow,
    numpy, rich's console, matplotlib) in the command, so that a command pays for its own."""
    heavy = ("pandas", "pyarrow", "numpy", "matplotlib", "rich.console", "pyparsing")
    code = f"import sys, logpath.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
