"""Fixtures shared across test modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from seedstore import ingest_seed

from logpath.store import Store


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The seed article's store, ingested once per run; tests only read it."""
    return ingest_seed(tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A Docker host and two host pairs whose connections cross them, over 80 minutes
    (benchmarks/generate_fleet.py), one file per host."""
    out = tmp_path_factory.mktemp("fleet")
    generator = Path(__file__).resolve().parent.parent / "benchmarks" / "generate_fleet.py"
    subprocess.run(
        [sys.executable, str(generator), str(out),
         "--hosts", "1", "--lines", "4000", "--pairs", "2", "--copies", "20", "--step", "250"],
        check=True, capture_output=True,
    )  # fmt: skip
    return sorted(str(p) for p in out.glob("*.log"))
