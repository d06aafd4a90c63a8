"""Fixtures shared across test modules."""

from __future__ import annotations

import pytest
from seedstore import ingest_seed

from logpath.store import Store


@pytest.fixture(scope="session")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The seed article's store, ingested once per run; tests only read it."""
    return ingest_seed(tmp_path_factory.mktemp("seed"))
