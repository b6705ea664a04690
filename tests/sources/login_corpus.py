"""Helpers shared by the VPN and authentication log tests: ingest a corpus file, read its rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orbwatch.config import Config
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

#: What every login row must hold, whatever its format (an SQL condition over ``logins``).
WELL_FORMED = (
    "ts IS NOT NULL AND outcome IN ('success', 'failure', 'end', 'info') "
    "AND machine_cert IN ('yes', 'no', 'unknown') AND (src_ip IS NULL OR src_key IS NOT NULL)"
)


def ingest(ws: Workspace, path: Path, fmt: str | None = None, year: int | None = None) -> Any:
    """The ingest result of one file (format detected unless ``fmt`` is given)."""
    return Ingestor(ws, Config()).ingest(str(path), fmt, year=year)


def login_rows(ws: Workspace, path: Path) -> list[dict[str, Any]]:
    """The ``logins`` rows of one file, in line order."""
    rows: list[dict[str, Any]] = ws.query(
        "SELECT * FROM logins WHERE source_file = ? ORDER BY source_offset", [str(path)]
    ).to_pylist()
    return rows


def logins_by_line(ws: Workspace, path: Path) -> dict[int, dict[str, Any]]:
    """The ``logins`` rows of one file by line number."""
    return {r["source_offset"]: r for r in login_rows(ws, path)}


def assert_accounted_for(result: Any, expected: tuple[str, int, int, int]) -> None:
    """The file was detected as ``fmt`` and split into rows, quarantine and skips as expected."""
    fmt, rows, quarantined, skipped = expected
    assert (result.format, result.status) == (fmt, "loaded")
    assert (result.rows, result.quarantined, sum(result.skipped.values())) == (
        rows,
        quarantined,
        skipped,
    )


def count_logins(ws: Workspace, path: Path, condition: str) -> int:
    """How many of the file's rows are well formed and meet ``condition`` (SQL)."""
    query = f"SELECT count(*) FROM logins WHERE source_file = ? AND {WELL_FORMED} AND {condition}"
    count = ws.scalar(query, [str(path)])
    assert isinstance(count, int)
    return count
