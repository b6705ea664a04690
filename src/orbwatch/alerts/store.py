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


TRIAGE_STATES = ("new", "acknowledged", "false-positive", "resolved")
SUPPRESSION_VIEWS = {
    "active": "suppressed_by IS NULL",
    "suppressed": "suppressed_by IS NOT NULL",
    "all": "TRUE",
}


def list_alerts(
    ws: Workspace,
    *,
    min_severity: str = "info",
    detector: str | None = None,
    status: str | None = None,
    suppressed: str = "active",
    limit: int | None = 100,
    with_evidence: bool = False,
) -> list[dict[str, Any]]:
    """Alerts at or above ``min_severity``, most severe and highest scored first.

    ``suppressed`` picks ``active`` alerts (the default), the ``suppressed`` ones, or ``all``.
    """
    if min_severity not in SEVERITY_LEVEL:
        raise OrbwatchError(f"unknown severity {min_severity!r}; use one of {list(SEVERITY_LEVEL)}")
    if status is not None and status not in TRIAGE_STATES:
        raise OrbwatchError(f"unknown status {status!r}; use one of {list(TRIAGE_STATES)}")
    if suppressed not in SUPPRESSION_VIEWS:
        raise OrbwatchError(f"unknown view {suppressed!r}; use one of {list(SUPPRESSION_VIEWS)}")
    columns = "*" if with_evidence else "* EXCLUDE (evidence)"
    sql = (
        f"SELECT {columns} FROM alerts WHERE {SEVERITY_ORDER} >= ? "
        "AND (? IS NULL OR detector = ?) AND (? IS NULL OR status = ?) "
        f"AND {SUPPRESSION_VIEWS[suppressed]} "
        f"ORDER BY {SEVERITY_ORDER} DESC, score DESC, alert_id LIMIT ?"
    )
    params = [SEVERITY_LEVEL[min_severity], detector, detector, status, status, limit]
    rows: list[dict[str, Any]] = ws.query(sql, params).to_pylist()
    return rows


def counts(ws: Workspace) -> dict[str, int]:
    """How many alerts are active and how many suppressed: nothing disappears without a trace."""
    row = ws.query(
        "SELECT count(*) FILTER (WHERE suppressed_by IS NULL) AS active, "
        "count(*) FILTER (WHERE suppressed_by IS NOT NULL) AS suppressed FROM alerts"
    ).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


def set_status(ws: Workspace, alert_ids: list[str], status: str, comment: str = "") -> int:
    """Move alerts (ids or unique prefixes) to a triage state, with a comment; returns count.

    The state survives later ``detect`` runs, which refresh an alert but keep its triage.
    """
    if status not in TRIAGE_STATES:
        raise OrbwatchError(f"unknown status {status!r}; use one of {list(TRIAGE_STATES)}")
    full_ids = [get_alert(ws, prefix, with_rows=False)["alert_id"] for prefix in alert_ids]
    with ws.transaction():
        ws.con.execute(
            "UPDATE alerts SET status = ?, status_comment = ?, status_changed_at = now() "
            "WHERE alert_id IN (SELECT unnest(?))",
            [status, comment[:2000], full_ids],
        )
    return len(full_ids)


def get_alert(ws: Workspace, alert_id: str, *, with_rows: bool = True) -> dict[str, Any]:
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
    alert["evidence_rows"] = evidence_rows(ws, alert) if with_rows else []
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
