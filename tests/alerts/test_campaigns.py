"""Campaign linking rules, each on hand-built alerts."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from orbwatch.alerts.campaigns import build_campaigns, set_campaign_status
from orbwatch.config import Config
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)
CONFIG = Config(internal_networks=["10.0.0.0/8"])


def _alert(alert_id: str, day: float, **fields: Any) -> dict[str, Any]:
    start = T0 + dt.timedelta(days=day)
    return {
        "alert_id": alert_id,
        "detector": fields.pop("detector", "d"),
        "severity": fields.pop("severity", "medium"),
        "score": 50.0,
        "techniques": fields.pop("techniques", "T1090"),
        "first_seen": start,
        "last_seen": start + dt.timedelta(hours=1),
        "evidence": json.dumps(fields.pop("evidence", {})),
        **fields,
    }


def _groups(ws: Workspace, alerts: list[dict[str, Any]]) -> list[set[str]]:
    columns = sorted({k for a in alerts for k in a})
    ws.append("alerts", pa.Table.from_pylist([{k: a.get(k) for k in columns} for a in alerts]))
    table = build_campaigns(ws, CONFIG)
    return sorted((set(json.loads(ids)) for ids in table["alert_ids"].to_pylist()), key=min)


def test_shared_account_links_a_spray_and_the_later_login(workspace: Workspace) -> None:
    groups = _groups(
        workspace,
        [
            _alert("spray", 0, user="alice", detector="password_spray", severity="high"),
            _alert("login", 1, user="Alice", src_ip="198.51.100.7", detector="new_network"),
            _alert("other", 1, user="bob"),
        ],
    )
    assert groups == [{"login", "spray"}]
    campaign = workspace.table("campaigns").to_pylist()[0]
    assert campaign["severity"] == "high"
    assert campaign["relays"] == '["198.51.100.7"]'
    assert campaign["alert_count"] == 2


def test_links_need_time_proximity(workspace: Workspace) -> None:
    groups = _groups(workspace, [_alert("a", 0, user="alice"), _alert("b", 10, user="alice")])
    assert groups == []


def test_neighbouring_relays_and_intrusion_set_traits_link(workspace: Workspace) -> None:
    groups = _groups(
        workspace,
        [
            _alert("n1", 0, src_ip="203.0.113.5", dst_ip="10.0.0.1"),
            _alert("n2", 0.5, src_ip="203.0.113.77", dst_ip="10.0.0.2"),
            _alert("p1", 0, src_ip="192.0.2.1", evidence={"dst_port": 7777}),
            _alert("p2", 1, src_ip="198.18.0.1", evidence={"dst_port": 7777}),
            _alert("c1", 0, src_ip="100.64.0.1", evidence={"client": "AnyConnect 4.1"}),
            _alert("c2", 2, src_ip="100.65.0.1", evidence={"client": "AnyConnect 4.1"}),
            _alert("w1", 0, src_ip="198.51.100.200", evidence={"dst_port": 443}),
            _alert("w2", 0, src_ip="198.18.50.1", evidence={"dst_port": 443}),
        ],
    )
    assert groups == [{"c1", "c2"}, {"n1", "n2"}, {"p1", "p2"}]


def test_a_campaign_is_triaged_with_its_alerts(workspace: Workspace) -> None:
    _groups(workspace, [_alert("a", 0, user="alice"), _alert("b", 1, user="alice")])
    campaign_id = workspace.table("campaigns")["campaign_id"][0].as_py()
    assert set_campaign_status(workspace, campaign_id[:6], "resolved", "reset passwords") == 2
    statuses = workspace.query("SELECT DISTINCT status, status_comment FROM alerts").to_pylist()
    assert statuses == [{"status": "resolved", "status_comment": "reset passwords"}]
    assert workspace.table("campaigns")["status"][0].as_py() == "resolved"
