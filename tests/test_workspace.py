"""Workspace creation, versioning, migration and refusal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from orbwatch.errors import WorkspaceError
from orbwatch.store import migrations, schema
from orbwatch.store.workspace import Workspace, create_table_sql


def test_new_workspace_has_every_table_and_the_version(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        assert ws.schema_version() == schema.SCHEMA_VERSION
        for name, spec in schema.TABLES.items():
            cols = ws.query(f'SELECT * FROM "{name}" LIMIT 0').column_names
            assert cols == spec.schema.names


def test_newer_workspace_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "ws.duckdb"
    Workspace.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE orbwatch_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    before = path.read_bytes()
    with pytest.raises(WorkspaceError, match="schema version 99 is newer"):
        Workspace.open(path)
    assert path.read_bytes() == before


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    with pytest.raises(WorkspaceError, match="not an orbwatch workspace"):
        Workspace.open(path)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 1000)
    with pytest.raises(WorkspaceError, match=str(path)):
        Workspace.open(path)


def test_read_only_open_of_missing_workspace_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="orbwatch ingest"):
        Workspace.open(tmp_path / "none.duckdb", read_only=True)


def _old_workspace(path: Path) -> None:
    """A workspace as version 1 would have left it, labelled as the version before now."""
    Workspace.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE orbwatch_meta SET value = '1' WHERE key = 'schema_version'")
    con.execute("INSERT INTO alerts (alert_id, detector) VALUES ('a1', 'x')")
    con.close()


def test_older_workspace_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ws.duckdb"
    _old_workspace(path)

    def add_comment(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("ALTER TABLE alerts ADD COLUMN comment VARCHAR")

    monkeypatch.setattr(migrations, "MIGRATIONS", {1: add_comment})
    monkeypatch.setattr("orbwatch.store.workspace.SCHEMA_VERSION", 2)
    with Workspace.open(path) as ws:
        assert ws.schema_version() == 2
        assert "comment" in ws.query("SELECT * FROM alerts").column_names
        assert ws.count("alerts") == 1


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ws.duckdb"
    _old_workspace(path)

    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("ALTER TABLE alerts ADD COLUMN comment VARCHAR")
        con.execute("SELECT no_such_column FROM alerts")

    monkeypatch.setattr(migrations, "MIGRATIONS", {1: broken})
    monkeypatch.setattr("orbwatch.store.workspace.SCHEMA_VERSION", 2)
    with pytest.raises(WorkspaceError, match="rolled back"):
        Workspace.open(path)
    con = duckdb.connect(str(path))
    assert con.execute("SELECT value FROM orbwatch_meta WHERE key='schema_version'").fetchone() == (
        "1",
    )
    assert "comment" not in [r[0] for r in con.execute("DESCRIBE alerts").fetchall()]
    con.close()


def test_append_conforms_and_rejects_unknown_columns(tmp_path: Path) -> None:
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        assert ws.append("assets", pa.table({"name": ["vpn"], "role": ["vpn-gateway"]})) == 1
        assert ws.table("assets").to_pylist()[0]["cidr"] is None
        with pytest.raises(ValueError, match="not in the assets schema"):
            ws.append("assets", pa.table({"name": ["x"], "colour": ["red"]}))


def test_ddl_is_derived_from_the_arrow_schema() -> None:
    assert create_table_sql("intel_buckets") == (
        'CREATE TABLE IF NOT EXISTS "intel_buckets" ("intel_id" VARCHAR, "bucket" VARCHAR)'
    )


def test_version_1_workspace_gains_the_tables_and_columns_added_since(tmp_path: Path) -> None:
    path = tmp_path / "ws.duckdb"
    _old_workspace(path)
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE ip_info")
    con.execute("ALTER TABLE alerts DROP COLUMN updated_at")
    con.execute("ALTER TABLE alerts DROP COLUMN status")
    con.close()
    with Workspace.open(path) as ws:
        assert ws.schema_version() == schema.SCHEMA_VERSION
        assert ws.count("ip_info") == 0
        assert ws.table("alerts").column_names == schema.TABLES["alerts"].schema.names
        assert ws.count("alerts") == 1
        ws.append("alerts", pa.table({"alert_id": ["a2"], "status": ["new"]}))
        assert ws.table("alerts").column("status").to_pylist() == [None, "new"]
