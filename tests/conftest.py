"""Fixtures shared by the test suite: the shared corpus, a fresh workspace, the default config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orbwatch.config import Config
from orbwatch.store.workspace import Workspace

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    """The shared corpus of real-world sample files (skips the test when it is absent)."""
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh, empty workspace in the test's temporary folder, closed afterwards."""
    ws = Workspace.open(tmp_path / "ws.duckdb")
    try:
        yield ws
    finally:
        ws.close()


@pytest.fixture
def config() -> Config:
    """The default configuration (RFC 1918 and friends are internal)."""
    return Config()
