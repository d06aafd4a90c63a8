"""The committed captures in samples/lab agree across their layouts (no root needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .traffic import SCENARIOS

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "lab"
PREFIX = re.compile(r"^lp:(raw|mangle|nat|filter):(pre|in|fwd|out|post):lab IN=")
DMESG = re.compile(r"^\[ *(\d+)\.(\d{6})\] (.*)$")
SYSLOG = re.compile(
    r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d lab-host kernel: (\[ *\d+\.\d{6}\] .*)$"
)


def texts(name: str, suffix: str) -> list[str]:
    return (SAMPLES / f"{name}{suffix}").read_text().splitlines()


@pytest.mark.parametrize("name", [scenario.name for scenario in SCENARIOS])
def test_sample_layouts_carry_the_same_kernel_text(name):
    dmesg = texts(name, ".dmesg")
    syslog = texts(name, ".log")
    assert len(dmesg) > 0
    assert [SYSLOG.match(line).group(1) for line in syslog] == dmesg
    bodies = [DMESG.match(line).group(3) for line in dmesg]
    assert all(PREFIX.match(body) for body in bodies)
    stamps = [int(DMESG.match(line).group(1) + DMESG.match(line).group(2)) for line in dmesg]
    assert stamps == sorted(stamps)
    if name != "burst":  # the burst's kmsg layout is not kept (size)
        kmsg = texts(name, ".kmsg")
        usecs = [int(line.split(",")[2]) for line in kmsg]
        assert [line.split(";", 1)[1] for line in kmsg] == bodies
        assert usecs == stamps
        assert {line.split(",")[0] for line in kmsg} == {"4"}  # LOG's default level: warning
