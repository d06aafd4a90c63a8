"""Every command has help text with an example, and the package's public names resolve."""

from __future__ import annotations

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
