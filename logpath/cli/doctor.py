"""``logpath doctor``: check what decides whether LOG lines exist and are complete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from logpath.cli.app import JsonOption, command
from logpath.render.output import visible

# The checks are imported by the command that runs (see logpath.cli.flows).
if TYPE_CHECKING:
    from logpath.doctor import Check


def render_checks(checks: list[Check]) -> str:
    """One block per check: ``[status] name: value`` then the advice, indented (both may quote
    what a file under /proc, /sys or /etc holds, or an interface's name: ``visible``)."""
    blocks = []
    for check in checks:
        head = f"[{check.status}] {check.name}: {check.value if check.value is not None else '?'}"
        blocks.append(f"{visible(head)}\n    {visible(check.advice)}")
    return "\n".join(blocks) + "\n"


@command("doctor")
def doctor(
    json_output: JsonOption = False,
    root: Annotated[
        Path,
        typer.Option("--root", help="Read /proc, /sys and /etc under this directory instead of /."),
    ] = Path("/"),
) -> None:
    """Check the kernel and syslog settings LOG lines depend on.

    br_netfilter, nf_log_all_netns, ip_forward, the iptables backend, syslog, printk.

    Runs without root (what it cannot read is reported as unknown) and changes nothing.

    Example: logpath doctor --json
    """
    from logpath.doctor import run_checks

    checks = run_checks(root)
    if json_output:
        typer.echo(json.dumps([check.to_json() for check in checks], indent=2))
    else:
        typer.echo(render_checks(checks), nl=False)
