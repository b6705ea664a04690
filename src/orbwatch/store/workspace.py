"""The workspace: one DuckDB file holding every normalised table of an investigation.

Opening a workspace checks its schema version. An older workspace is migrated inside one
transaction (all or nothing), a newer one or a file that is not a workspace is refused with a
clear message, so that a workspace is never half-converted or overwritten.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from orbwatch import __version__
from orbwatch.errors import WorkspaceError
from orbwatch.store import migrations
from orbwatch.store.schema import SCHEMA_VERSION, TABLES, conform

DEFAULT_WORKSPACE = "orbwatch.duckdb"
META_TABLE = "orbwatch_meta"


def default_path() -> Path:
    """``$ORBWATCH_WORKSPACE`` or ``./orbwatch.duckdb``."""
    return Path(os.environ.get("ORBWATCH_WORKSPACE") or DEFAULT_WORKSPACE)


_DUCKDB_TYPES: dict[pa.DataType, str] = {
    pa.string(): "VARCHAR",
    pa.int8(): "TINYINT",
    pa.int16(): "SMALLINT",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB column type that stores ``arrow_type``."""
    return _DUCKDB_TYPES[arrow_type]


def create_table_sql(name: str) -> str:
    """DuckDB DDL for workspace table ``name``, derived from its Arrow schema."""
    columns = ", ".join(f'"{f.name}" {duckdb_type(f.type)}' for f in TABLES[name].schema)
    return f'CREATE TABLE IF NOT EXISTS "{name}" ({columns})'


class Workspace:
    """An open workspace. Use :meth:`open`; close it (or use it as a context manager)."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        self.path = path
        self.con = con

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | None = None, *, read_only: bool = False) -> Workspace:
        """Open (creating when missing, unless ``read_only``) and bring the schema up to date."""
        path = path or default_path()
        if read_only and not path.exists():
            raise WorkspaceError(
                f"{path}: no workspace here yet (run `orbwatch ingest` first, or pass --workspace)"
            )
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            raise WorkspaceError(f"{path}: cannot open workspace: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise WorkspaceError(
                f"{path}: not a DuckDB workspace file: {_first_line(exc)}"
            ) from None
        con.execute("SET TimeZone = 'UTC'")
        ws = cls(path, con)
        try:
            ws._check_schema(read_only)
        except BaseException:
            con.close()
            raise
        return ws

    def _check_schema(self, read_only: bool) -> None:
        tables = {
            r[0] for r in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        if META_TABLE not in tables:
            if tables:
                raise WorkspaceError(
                    f"{self.path}: is a DuckDB file but not an orbwatch workspace "
                    f"(it has tables {sorted(tables)[:5]} and no {META_TABLE}); "
                    "refusing to touch it"
                )
            if read_only:
                raise WorkspaceError(f"{self.path}: empty file, not an orbwatch workspace")
            self._create()
            return
        version = self.schema_version()
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.path}: workspace schema version {version} is newer than this orbwatch "
                f"({__version__}, schema {SCHEMA_VERSION}); upgrade orbwatch to open it"
            )
        if read_only:
            raise WorkspaceError(
                f"{self.path}: workspace schema version {version} needs migrating to "
                f"{SCHEMA_VERSION}; open it once without read-only access"
            )
        self._migrate(version)

    def _create(self) -> None:
        with self.transaction():
            self.con.execute(
                f'CREATE TABLE "{META_TABLE}" (key VARCHAR PRIMARY KEY, value VARCHAR)'
            )
            for name in TABLES:
                self.con.execute(create_table_sql(name))
            now = dt.datetime.now(dt.UTC).isoformat()
            self._set_meta("schema_version", str(SCHEMA_VERSION))
            self._set_meta("created_at", now)
            self._set_meta("created_by", f"orbwatch {__version__}")

    def _migrate(self, version: int) -> None:
        try:
            with self.transaction():
                while version < SCHEMA_VERSION:
                    step = migrations.MIGRATIONS.get(version)
                    if step is None:
                        raise WorkspaceError(
                            f"{self.path}: no migration from schema version {version}; "
                            "export the tables with an older orbwatch and ingest them again"
                        )
                    step(self.con)
                    version += 1
                    self._set_meta("schema_version", str(version))
        except duckdb.Error as exc:
            raise WorkspaceError(
                f"{self.path}: migration failed and was rolled back, the workspace is unchanged: "
                f"{_first_line(exc)}"
            ) from None

    # -- metadata --------------------------------------------------------------------------
    def _set_meta(self, key: str, value: str) -> None:
        self.con.execute(f'INSERT OR REPLACE INTO "{META_TABLE}" VALUES (?, ?)', [key, value])

    def meta(self, key: str) -> str | None:
        row = self.con.execute(f'SELECT value FROM "{META_TABLE}" WHERE key = ?', [key]).fetchone()
        return None if row is None else str(row[0])

    def schema_version(self) -> int:
        value = self.meta("schema_version")
        if value is None or not value.isdigit():
            raise WorkspaceError(f"{self.path}: workspace has no valid schema_version ({value!r})")
        return int(value)

    # -- data ------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def append(self, name: str, table: pa.Table) -> int:
        """Append rows (conformed to the declared schema) to table ``name``; returns the count."""
        if table.num_rows == 0:
            return 0
        data = conform(name, table)
        self.con.register("_orbwatch_append", data)
        try:
            self.con.execute(f'INSERT INTO "{name}" BY NAME SELECT * FROM _orbwatch_append')
        finally:
            self.con.unregister("_orbwatch_append")
        return int(data.num_rows)

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Run SQL and return the result as Arrow."""
        return self.con.execute(sql, params or []).fetch_arrow_table()

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return None if row is None else row[0]

    def count(self, name: str) -> int:
        return int(self.scalar(f'SELECT count(*) FROM "{name}"'))

    def _columns(self, name: str) -> str:
        """The declared columns in declared order (a migrated table may store them otherwise)."""
        return ", ".join(f'"{c}"' for c in TABLES[name].schema.names)

    def table(self, name: str) -> pa.Table:
        return self.query(f'SELECT {self._columns(name)} FROM "{name}"')

    def status(self) -> list[dict[str, Any]]:
        """Per table: rows, time range (where the table has times) and distinct sources."""
        out = []
        for name, spec in TABLES.items():
            cols = spec.schema.names
            time_col = next(
                (c for c in ("ts_start", "ts", "first_seen", "started_at") if c in cols), None
            )
            parts = ["count(*) AS rows"]
            parts.append(
                f'min("{time_col}") AS first, max("{time_col}") AS last'
                if time_col
                else "NULL AS first, NULL AS last"
            )
            parts.append(
                "count(DISTINCT source_file) AS sources"
                if "source_file" in cols
                else "NULL AS sources"
            )
            row = self.query(f'SELECT {", ".join(parts)} FROM "{name}"').to_pylist()[0]
            out.append({"table": name, **row})
        return out

    def export_parquet(self, directory: Path) -> list[Path]:
        """Write every table to ``directory/<table>.parquet`` (the Spark engine's input)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name in TABLES:
            target = directory / f"{name}.parquet"
            escaped = str(target).replace("'", "''")
            self.con.execute(
                f"COPY (SELECT {self._columns(name)} FROM \"{name}\") TO '{escaped}' "
                "(FORMAT parquet)"
            )
            written.append(target)
        return written

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
