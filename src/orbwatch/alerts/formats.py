"""Alerts in the formats that SOC tools read: OCSF, Elastic Common Schema, CEF and CSV.

Each converter takes the alert rows that :func:`orbwatch.alerts.store.list_alerts` returns
(plain dicts) and produces one record per alert, so ``orbwatch alerts --format F`` can stream
them as lines. The mappings follow the published definitions (OCSF 1.8.0 Detection Finding,
class 2004; ECS 9.x), and the tests check every emitted field against those definitions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from orbwatch import __version__

PRODUCT = "orbwatch"
OCSF_VERSION = "1.8.0"

#: OCSF ``severity_id``: 1 Informational ... 5 Critical.
OCSF_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
#: OCSF Finding ``status_id`` for orbwatch's triage states.
OCSF_STATUS = {"new": 1, "acknowledged": 2, "false-positive": 3, "resolved": 4}
#: CEF severity is 0-10; ArcSight reads 0-3 low, 4-6 medium, 7-8 high, 9-10 very high.
CEF_SEVERITY = {"info": 1, "low": 3, "medium": 5, "high": 8, "critical": 10}
#: ECS ``event.severity`` is numeric and source-defined; orbwatch uses its severity rank.
ECS_SEVERITY = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

CSV_COLUMNS = (
    "alert_id",
    "severity",
    "score",
    "detector",
    "techniques",
    "title",
    "entity",
    "src_ip",
    "dst_ip",
    "user",
    "first_seen",
    "last_seen",
    "event_count",
    "bytes",
    "status",
    "explanation",
)


def _ms(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _techniques(alert: dict[str, Any]) -> list[str]:
    return [t for t in (alert.get("techniques") or "").split(",") if t]


def _evidence(alert: dict[str, Any]) -> dict[str, Any]:
    evidence = alert.get("evidence")
    if isinstance(evidence, str):
        loaded: dict[str, Any] = json.loads(evidence or "{}")
        return loaded
    return dict(evidence or {})


def _drop_empty(value: Any) -> Any:
    """Remove None values and empty containers, recursively: absent beats null in both schemas."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as an OCSF 1.8.0 Detection Finding (class_uid 2004, activity Create)."""
    severity = alert["severity"]
    observables = [
        {"name": name, "type_id": type_id, "value": alert.get(field)}
        for name, type_id, field in (
            ("src_endpoint.ip", 2, "src_ip"),
            ("dst_endpoint.ip", 2, "dst_ip"),
            ("user.name", 4, "user"),
        )
        if alert.get(field)
    ]
    evidence: dict[str, Any] = {
        "src_endpoint": {"ip": alert.get("src_ip")} if alert.get("src_ip") else None,
        "dst_endpoint": {"ip": alert.get("dst_ip")} if alert.get("dst_ip") else None,
        "user": {"name": alert.get("user")} if alert.get("user") else None,
        "data": _evidence(alert),
    }
    record = {
        "activity_id": 1,
        "activity_name": "Create",
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "type_uid": 200401,
        "type_name": "Detection Finding: Create",
        "severity_id": OCSF_SEVERITY[severity],
        "severity": severity.capitalize() if severity != "info" else "Informational",
        "time": _ms(alert.get("updated_at") or alert.get("last_seen")),
        "start_time": _ms(alert.get("first_seen")),
        "end_time": _ms(alert.get("last_seen")),
        "count": alert.get("event_count"),
        "message": alert.get("explanation"),
        "status_id": OCSF_STATUS.get(alert.get("status") or "new", 99),
        "status": alert.get("status"),
        "risk_score": round(float(alert.get("score") or 0)),
        "is_alert": True,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": __version__},
            "uid": alert["alert_id"],
        },
        "finding_info": {
            "uid": alert["alert_id"],
            "title": alert.get("title"),
            "desc": alert.get("explanation"),
            "types": [alert["detector"]],
            "first_seen_time": _ms(alert.get("first_seen")),
            "last_seen_time": _ms(alert.get("last_seen")),
            "created_time": _ms(alert.get("created_at")),
            "analytic": {"uid": alert["detector"], "name": alert["detector"], "type_id": 1},
            "attacks": [{"technique": {"uid": t}, "version": "ATT&CK"} for t in _techniques(alert)],
        },
        "observables": observables,
        "evidences": [evidence],
    }
    cleaned: dict[str, Any] = _drop_empty(record)
    return cleaned


def to_ecs(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as an Elastic Common Schema document (nested objects, ``event.kind: alert``)."""
    techniques = _techniques(alert)
    record = {
        "@timestamp": _iso(alert.get("last_seen")),
        "message": alert.get("explanation"),
        "ecs": {"version": "9.4.0"},
        "event": {
            "kind": "alert",
            "category": ["network", "intrusion_detection"],
            "type": ["indicator"],
            "id": alert["alert_id"],
            "dataset": "orbwatch.alerts",
            "module": PRODUCT,
            "severity": ECS_SEVERITY[alert["severity"]],
            "risk_score": float(alert.get("score") or 0),
            "start": _iso(alert.get("first_seen")),
            "end": _iso(alert.get("last_seen")),
            "created": _iso(alert.get("created_at")),
            "reason": alert.get("title"),
        },
        "rule": {
            "id": alert["detector"],
            "name": alert["detector"],
            "description": alert.get("title"),
            "category": "covert-network",
        },
        "threat": {
            "framework": "MITRE ATT&CK",
            "technique": {"id": techniques} if techniques else None,
        },
        "source": {"ip": alert.get("src_ip")} if alert.get("src_ip") else None,
        "destination": {"ip": alert.get("dst_ip")} if alert.get("dst_ip") else None,
        "user": {"name": alert.get("user")} if alert.get("user") else None,
        "network": {"bytes": alert.get("bytes")} if alert.get("bytes") is not None else None,
        "observer": {"product": PRODUCT, "vendor": PRODUCT, "version": __version__},
        "labels": {"orbwatch_status": alert.get("status"), "orbwatch_entity": alert.get("entity")},
    }
    cleaned: dict[str, Any] = _drop_empty(record)
    return cleaned


def _cef_header(value: Any) -> str:
    """CEF header fields escape backslash and pipe; line breaks would end the record."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return text.replace("\r", " ").replace("\n", " ")


def _cef_value(value: Any) -> str:
    """CEF extension values escape backslash and equals, and encode line breaks."""
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def to_cef(alert: dict[str, Any]) -> str:
    """One alert as an ArcSight CEF:0 line (what a syslog-fed SIEM parses without a plugin)."""
    extension = {
        "rt": _ms(alert.get("updated_at") or alert.get("last_seen")),
        "start": _ms(alert.get("first_seen")),
        "end": _ms(alert.get("last_seen")),
        "src": alert.get("src_ip"),
        "dst": alert.get("dst_ip"),
        "suser": alert.get("user"),
        "cnt": alert.get("event_count"),
        "externalId": alert["alert_id"],
        "cat": alert["detector"],
        "cs1Label": "techniques",
        "cs1": alert.get("techniques"),
        "cs2Label": "entity",
        "cs2": alert.get("entity"),
        "cs3Label": "status",
        "cs3": alert.get("status"),
        "cn1Label": "score",
        "cn1": round(float(alert.get("score") or 0)),
        "msg": alert.get("explanation"),
    }
    ext = " ".join(f"{k}={_cef_value(v)}" for k, v in extension.items() if v not in (None, ""))
    header = "|".join(
        _cef_header(v)
        for v in (
            PRODUCT,
            PRODUCT,
            __version__,
            alert["detector"],
            alert.get("title") or alert["detector"],
            CEF_SEVERITY[alert["severity"]],
        )
    )
    return f"CEF:0|{header}|{ext}"


def to_csv_rows(alerts: Iterable[dict[str, Any]]) -> str:
    """Alerts as CSV text with a header row, for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for alert in alerts:
        writer.writerow({k: _csv_cell(alert.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


def _csv_cell(value: Any) -> Any:
    """Keep spreadsheets from running formulas hidden in attacker-controlled strings."""
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _json_line(alert: dict[str, Any]) -> str:
    return json.dumps(alert, sort_keys=True, default=str)


#: ``orbwatch alerts --format NAME``: one line per alert (CSV is handled as a whole document).
LINE_FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "json": _json_line,
    "ocsf": lambda a: json.dumps(to_ocsf(a), sort_keys=True),
    "ecs": lambda a: json.dumps(to_ecs(a), sort_keys=True),
    "cef": to_cef,
}
FORMATS = (*LINE_FORMATS, "csv")


def render(alerts: list[dict[str, Any]], fmt: str) -> str:
    """All ``alerts`` in format ``fmt`` as text (lines, or a CSV document)."""
    if fmt == "csv":
        return to_csv_rows(alerts)
    convert = LINE_FORMATS[fmt]
    return "".join(convert(a) + "\n" for a in alerts)
