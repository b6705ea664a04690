"""The embedded default: detectors run inside the workspace's own DuckDB connection."""

from __future__ import annotations

from typing import ClassVar

import ibis

from orbwatch.engines.base import Engine
from orbwatch.store.workspace import Workspace


class DuckDBEngine(Engine):
    """Runs expressions on the open workspace, with no copy of the data."""

    name: ClassVar[str] = "duckdb"

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ibis.duckdb.from_connection(ws.con))

    def close(self) -> None:
        """Nothing to release: the workspace owns the connection."""
