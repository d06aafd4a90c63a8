"""The host's ruleset in each of netfilter's three front ends, for the captures of issue 11.

The same rules (the lab's LOG and NAT rules, ``topology.ruleset``, plus a scenario's own) are
loaded with ``iptables-restore`` (the nf_tables backend, the lab's default), with
``iptables-legacy-restore`` (x_tables), or written in native nft (``samples/rules/lab-host.nft``,
the lab's ruleset by meaning, then the scenario's ``nft`` commands). A capture under each shows
what the kernel does under each; the listings the tools print are kept beside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import topology as t
from .topology import Lab

LAB_NFT = Path(__file__).resolve().parents[2] / "samples" / "rules" / "lab-host.nft"
# The file name a backend's capture gets after the scenario's name ("" for the lab's default).
BACKENDS = {"iptables-nft": "", "nft": "-nft", "iptables-legacy": "-legacy"}
TABLES = {
    "raw": ["PREROUTING", "OUTPUT"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
}


@dataclass(frozen=True)
class HostRules:
    """A scenario's rules on top of the lab's, in both languages; ``{tag}`` stands for the run's
    tag in a LOG prefix."""

    # table -> iptables-restore lines: chain lines (":LP-ISOLATION - [0:0]", ":FORWARD DROP
    # [0:0]") are put before the table's rules, "-A" rules after the lab's own
    iptables: dict[str, list[str]] = field(default_factory=dict)
    # nft commands run after lab-host.nft is loaded ("add rule ip lp-filter forward ...")
    nft: list[str] = field(default_factory=list)


def iptables_ruleset(tag: str, rules: HostRules) -> str:
    """The lab's IPv4 iptables-restore input with a scenario's rules in their tables."""
    text = t.ruleset(tag, 4)
    for table, lines in rules.iptables.items():
        chains = [line.replace("{tag}", tag) for line in lines if line.startswith(":")]
        appended = [line.replace("{tag}", tag) for line in lines if not line.startswith(":")]
        head, _, rest = text.partition(f"*{table}\n")
        body, _, tail = rest.partition("COMMIT\n")
        text = "".join(
            [head, f"*{table}\n", *(f"{c}\n" for c in chains), body]
            + [f"{rule}\n" for rule in appended]
            + ["COMMIT\n", tail]
        )
    return text


def nft_ruleset(tag: str, rules: HostRules) -> str:
    """The lab's ruleset in native nft (both families) with a scenario's commands."""
    base = LAB_NFT.read_text().replace(":lab ", f":{tag} ")
    commands = [command.replace("{tag}", tag) + "\n" for command in rules.nft]
    return "flush ruleset\n" + base + "".join(commands)


def empty_legacy_ruleset() -> str:
    """iptables-legacy-restore input that empties every table and accepts by policy."""
    lines = []
    for table, chains in TABLES.items():
        lines += [f"*{table}", *(f":{chain} ACCEPT [0:0]" for chain in chains), "COMMIT"]
    return "\n".join(lines) + "\n"


def load(lab: Lab, backend: str, rules: HostRules) -> None:
    """Replace the host's ruleset by the lab's and the scenario's, written for one backend."""
    lab.exec("host", "nft", "flush", "ruleset")  # iptables-nft's tables are nft tables too
    if backend == "nft":
        lab.exec("host", "nft", "-f", "-", stdin=nft_ruleset(lab.tag, rules))
        return
    command = "iptables-legacy-restore" if backend == "iptables-legacy" else "iptables-restore"
    lab.exec("host", command, stdin=iptables_ruleset(lab.tag, rules))
    lab.exec("host", command.replace("iptables", "ip6tables"), stdin=t.ruleset(lab.tag, 6))


def listings(lab: Lab, backend: str) -> dict[str, str]:
    """What the backend's own tools print of the host's ruleset, per file suffix: ``.rules``
    for iptables-save (iptables-legacy-save), ``.nft`` for ``nft list ruleset``."""
    if backend == "iptables-legacy":
        return {".rules": lab.exec("host", "iptables-legacy-save")}
    printed = {".nft": lab.exec("host", "nft", "list", "ruleset")}
    if backend == "iptables-nft":
        printed[".rules"] = lab.exec("host", "iptables-save")
    return printed


def restore_default(lab: Lab, backend: str) -> None:
    """Back to the lab's own ruleset (iptables-nft), emptying the legacy tables if used."""
    if backend == "iptables-legacy":
        lab.exec("host", "iptables-legacy-restore", stdin=empty_legacy_ruleset())
        lab.exec("host", "ip6tables-legacy-restore", stdin=empty_legacy_ruleset())
    load(lab, "iptables-nft", HostRules())


@contextlib.contextmanager
def host_ruleset(lab: Lab, backend: str, rules: HostRules) -> Iterator[dict[str, str]]:
    """The host under one backend's ruleset for the block; yields its listings."""
    try:
        load(lab, backend, rules)
        yield listings(lab, backend)
    finally:
        restore_default(lab, backend)
