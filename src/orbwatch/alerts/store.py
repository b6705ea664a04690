"""Reading alerts back: lists for people and tools, one alert with its evidence rows."""

from __future__ import annotations

import json
from typing import Any

from orbwatch.errors import OrbwatchError
from orbwatch.store.workspace import Workspace

SEVERITY_ORDER = (
    "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 "
    "WHEN 'low' THEN 1 ELSE 0 END"
)
SEVERITY_LEVEL = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
EVIDENCE_ROWS = 20


def list_alerts(
    ws: Workspace, *, min_severity: str = "info", detector: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Alerts at or above ``min_severity``, most severe and highest scored first."""
    if min_severity not in SEVERITY_LEVEL:
        raise OrbwatchError(f"unknown severity {min_severity!r}; use one of {list(SEVERITY_LEVEL)}")
    sql = (
        f"SELECT * EXCLUDE (evidence) FROM alerts WHERE {SEVERITY_ORDER} >= ? "
        "AND (? IS NULL OR detector = ?) "
        f"ORDER BY {SEVERITY_ORDER} DESC, score DESC, alert_id LIMIT ?"
    )
    level = SEVERITY_LEVEL[min_severity]
    rows: list[dict[str, Any]] = ws.query(sql, [level, detector, detector, limit]).to_pylist()
    return rows


def get_alert(ws: Workspace, alert_id: str) -> dict[str, Any]:
    """One alert by id (or unique id prefix), with its evidence decoded and example rows."""
    matches = ws.query(
        "SELECT * FROM alerts WHERE starts_with(alert_id, ?)", [alert_id]
    ).to_pylist()
    if not matches:
        raise OrbwatchError(f"no alert with id {alert_id!r} (list them with `orbwatch alerts`)")
    if len(matches) > 1:
        raise OrbwatchError(
            f"id prefix {alert_id!r} matches {len(matches)} alerts; give more of it"
        )
    alert: dict[str, Any] = matches[0]
    alert["evidence"] = json.loads(alert["evidence"] or "{}")
    alert["evidence_rows"] = evidence_rows(ws, alert)
    return alert


def evidence_rows(ws: Workspace, alert: dict[str, Any]) -> list[dict[str, Any]]:
    """Up to :data:`EVIDENCE_ROWS` flows behind a connection alert, with their provenance."""
    if not alert.get("src_ip") or not alert.get("dst_ip"):
        return []
    sql = (
        "SELECT ts_start, src_ip, src_port, dst_ip, dst_port, protocol, src_bytes, dst_bytes, "
        "action, conn_state, source_file, source_offset FROM flows "
        "WHERE src_ip = ? AND dst_ip = ? ORDER BY ts_start, source_file, source_offset LIMIT ?"
    )
    rows: list[dict[str, Any]] = ws.query(
        sql, [alert["src_ip"], alert["dst_ip"], EVIDENCE_ROWS]
    ).to_pylist()
    return rows
