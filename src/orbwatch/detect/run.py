"""Running detectors: execute each on an engine, explain, and upsert alerts into the workspace."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from orbwatch.alerts.suppress import SuppressionRule, suppressed_by
from orbwatch.detect.base import DetectContext, Detector
from orbwatch.detect.registry import detectors
from orbwatch.errors import OrbwatchError
from orbwatch.store.schema import ALERTS
from orbwatch.store.workspace import Workspace

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass
class DetectorRun:
    """What one detector produced in one run."""

    detector: str
    alerts: int = 0
    new: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    suppressed: int = 0
    seconds: float = 0.0


def alerts_of(detector: Detector, ctx: DetectContext) -> pa.Table:
    """Execute ``detector`` on ``ctx.engine`` and return its alerts (``alerts`` schema)."""
    rows = ctx.engine.execute(detector.candidates(ctx)).to_pylist()
    records: list[dict[str, Any]] = []
    for row in rows:
        finding = detector.explain(row, ctx)
        records.append(
            {
                "alert_id": detector.alert_id(detector.key(row)),
                "detector": detector.id,
                "title": finding.title,
                "severity": finding.severity,
                "score": finding.score,
                "techniques": ",".join(detector.techniques),
                "entity": finding.entity,
                "src_ip": finding.src_ip,
                "dst_ip": finding.dst_ip,
                "user": finding.user,
                "first_seen": row["first_seen"],
                "last_seen": row["last_seen"],
                "event_count": row["event_count"],
                "bytes": finding.bytes,
                "explanation": finding.explanation,
                "evidence": json.dumps(finding.evidence, sort_keys=True, default=str),
                "status": "new",
                "created_at": ctx.now,
                "updated_at": ctx.now,
            }
        )
    records.sort(key=lambda r: (-SEVERITY_RANK[r["severity"]], -r["score"], r["alert_id"]))
    return pa.Table.from_pylist(records, schema=ALERTS.schema)


def upsert_alerts(ws: Workspace, alerts: pa.Table) -> int:
    """Insert new alerts and refresh known ones, keeping their triage status and creation time.

    Returns how many were new.
    """
    if alerts.num_rows == 0:
        return 0
    ws.con.register("_new_alerts", alerts)
    try:
        with ws.transaction():
            new = ws.scalar(
                "SELECT count(*) FROM _new_alerts n WHERE n.alert_id NOT IN "
                "(SELECT alert_id FROM alerts)"
            )
            ws.con.execute(
                "CREATE OR REPLACE TEMP TABLE _merged AS SELECT n.* REPLACE ("
                " coalesce(o.status, n.status) AS status,"
                " coalesce(o.created_at, n.created_at) AS created_at,"
                " o.status_comment AS status_comment,"
                " o.status_changed_at AS status_changed_at,"
                " o.campaign_id AS campaign_id)"
                " FROM _new_alerts n LEFT JOIN alerts o USING (alert_id)"
            )
            ws.con.execute("DELETE FROM alerts WHERE alert_id IN (SELECT alert_id FROM _merged)")
            ws.con.execute("INSERT INTO alerts BY NAME SELECT * FROM _merged")
            ws.con.execute("DROP TABLE _merged")
    finally:
        ws.con.unregister("_new_alerts")
    return int(new)


def _asns(ws: Workspace, alerts: pa.Table) -> dict[str, int]:
    """AS numbers of the alerts' addresses, from the enrichment cache (empty before enrich)."""
    ips = {ip for col in ("src_ip", "dst_ip") for ip in alerts[col].to_pylist() if ip}
    if not ips:
        return {}
    rows = ws.query(
        "SELECT ip, asn FROM ip_info WHERE ip IN (SELECT unnest(?)) AND asn IS NOT NULL",
        [sorted(ips)],
    ).to_pylist()
    return {r["ip"]: r["asn"] for r in rows}


def apply_suppressions(
    ws: Workspace, alerts: pa.Table, rules: list[SuppressionRule], today: dt.date
) -> pa.Table:
    """Fill ``suppressed_by``: covered alerts are kept and counted, only marked."""
    if not rules or alerts.num_rows == 0:
        return alerts
    names = suppressed_by(alerts.to_pylist(), rules, _asns(ws, alerts), today)
    index = alerts.column_names.index("suppressed_by")
    return alerts.set_column(index, "suppressed_by", pa.array(names, pa.string()))


def run(
    ws: Workspace,
    ctx: DetectContext,
    only: list[str] | None = None,
    suppressions: list[SuppressionRule] | None = None,
) -> list[DetectorRun]:
    """Run the chosen detectors (all by default) and store their alerts in ``ws``.

    ``suppressions`` come on top of the config's ``[[suppress]]`` rules.
    """
    rules = [*ctx.config.suppress, *(suppressions or [])]
    available = detectors()
    unknown = sorted(set(only or []) - set(available))
    if unknown:
        raise OrbwatchError(f"unknown detector(s) {unknown}; known: {sorted(available)}")
    results = []
    for det_id, cls in available.items():
        if only and det_id not in only:
            continue
        started = time.monotonic()
        detector = cls()
        alerts = apply_suppressions(ws, alerts_of(detector, ctx), rules, ctx.now.date())
        summary = DetectorRun(det_id, alerts=alerts.num_rows)
        summary.suppressed = alerts.num_rows - alerts["suppressed_by"].null_count
        summary.new = upsert_alerts(ws, alerts)
        for sev in alerts["severity"].to_pylist():
            summary.by_severity[sev] = summary.by_severity.get(sev, 0) + 1
        summary.seconds = time.monotonic() - started
        results.append(summary)
    ws.con.execute(
        "INSERT OR REPLACE INTO orbwatch_meta VALUES ('last_detect_at', ?)",
        [dt.datetime.now(dt.UTC).isoformat()],
    )
    return results
