"""Schema migrations: ``MIGRATIONS[n]`` turns a version-``n`` workspace into version ``n + 1``.

Each step receives the open DuckDB connection inside the transaction that
:class:`orbwatch.store.workspace.Workspace` holds while migrating, so a failing step leaves the
workspace exactly as it was. Schema version 1 is the first release: there is nothing to migrate
from yet, and an unknown older version is refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]

MIGRATIONS: dict[int, Migration] = {}
