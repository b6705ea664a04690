"""Schema migrations: ``MIGRATIONS[n]`` turns a version-``n`` workspace into version ``n + 1``.

Each step receives the open DuckDB connection inside the transaction that
:class:`orbwatch.store.workspace.Workspace` holds while migrating, so a failing step leaves the
workspace exactly as it was. An unknown older version is refused rather than guessed at.

Most changes only add tables or nullable columns; :func:`add_missing` is the one step for all of
them, derived from the declarations in :mod:`orbwatch.store.schema`, so a release that only adds
needs no hand-written migration.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from orbwatch.store.schema import TABLES

Migration = Callable[[duckdb.DuckDBPyConnection], None]


def add_missing(con: duckdb.DuckDBPyConnection) -> None:
    """Create tables that do not exist yet and add declared columns that a table lacks (as NULL)."""
    from orbwatch.store.workspace import create_table_sql, duckdb_type

    existing: dict[str, set[str]] = {}
    for table, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns()"
    ).fetchall():
        existing.setdefault(table, set()).add(column)
    for name, spec in TABLES.items():
        if name not in existing:
            con.execute(create_table_sql(name))
            continue
        for field in spec.schema:
            if field.name not in existing[name]:
                con.execute(
                    f'ALTER TABLE "{name}" ADD COLUMN "{field.name}" {duckdb_type(field.type)}'
                )


#: Version 2 added enrichment, baselines and intel decay: tables and columns only.
MIGRATIONS: dict[int, Migration] = {1: add_missing}
