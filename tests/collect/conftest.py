"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.collect.running import Running


@pytest.fixture
def started() -> Iterator[list[Running]]:
    """Collectors a test starts; any still running at its end are stopped."""
    runs: list[Running] = []
    yield runs
    for run in runs:
        if run.thread.is_alive():
            run.finish()
