"""The first detector, end to end on the embedded engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.scenario import build

from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.run import run
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.store.workspace import Workspace


@pytest.fixture
def alert_rows(tmp_path: Path) -> list[dict]:
    config = Config(internal_networks=["10.0.0.0/8"])
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        build(tmp_path, ws, config)
        runs = run(ws, DetectContext(config, DuckDBEngine(ws)))
        assert runs[0].detector == "known_bad_infrastructure"
        return ws.table("alerts").to_pylist()


@pytest.fixture
def alerts(alert_rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return {(r["src_ip"], r["dst_ip"], r["entity"]): r for r in alert_rows}


def test_outbound_answered_is_high_with_evidence(alerts: dict) -> None:
    alert = alerts[("10.1.1.5", "45.9.148.10", "45.9.148.10")]
    assert alert["severity"] == "high"
    assert alert["event_count"] == 2
    assert alert["bytes"] == 240 + 110 + 250 + 100
    assert alert["techniques"] == "T1090,T1584.005"
    assert alert["first_seen"].isoformat() == "2026-11-02T10:05:00+00:00"
    evidence = json.loads(alert["evidence"])
    assert evidence["lists"] == ["test_feed (45.9.148.0/24)"]
    assert evidence["service_ports"] == [7777, 7777]
    assert "10.1.1.5 initiated 2 flow(s) to 45.9.148.10 on tcp/7777" in alert["explanation"]


def test_outbound_unanswered_is_medium(alerts: dict) -> None:
    assert alerts[("10.1.1.6", "45.9.148.99", "45.9.148.99")]["severity"] == "medium"


def test_inbound_from_two_lists_is_one_alert(alerts: dict) -> None:
    alert = alerts[("185.220.101.4", "10.1.1.1", "185.220.101.4")]
    assert alert["severity"] == "medium"  # one answered flow, one denied
    assert alert["event_count"] == 2
    assert json.loads(alert["evidence"])["lists"] == [
        "test_feed (185.220.101.4/32)",
        "tor_exits (185.220.101.4/32)",
    ]


def test_denied_scan_is_low(alerts: dict) -> None:
    alert = alerts[("91.92.93.94", "10.1.1.1", "91.92.93.94")]
    assert alert["severity"] == "low"
    assert json.loads(alert["evidence"])["denied_flows"] == 2


def test_ipv6_network_match(alerts: dict) -> None:
    assert alerts[("10.1.1.8", "2a06:e480::1", "2a06:e480::1")]["severity"] == "high"


def test_transit_between_two_listed_external_hosts_is_info(alerts: dict) -> None:
    transit = [a for k, a in alerts.items() if k[:2] == ("45.9.148.10", "91.92.93.94")]
    assert len(transit) == 2  # each listed end raises its own finding
    assert {a["severity"] for a in transit} == {"info"}
    assert {a["entity"] for a in transit} == {"45.9.148.10", "91.92.93.94"}


def test_internal_and_special_purpose_addresses_are_never_reported(alert_rows: list) -> None:
    entities = {a["entity"] for a in alert_rows}
    # 192.168.5.5 is on the feed (bogon range) and a peer of 10.1.1.7; 203.0.113.9 is TEST-NET-3.
    assert "192.168.5.5" not in entities and "203.0.113.9" not in entities
    assert not any(e.startswith("10.") for e in entities)
    assert len(alert_rows) == 7


def test_detect_twice_keeps_ids_and_triage(tmp_path: Path) -> None:
    config = Config(internal_networks=["10.0.0.0/8"])
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        build(tmp_path, ws, config)
        ctx = DetectContext(config, DuckDBEngine(ws))
        first = run(ws, ctx)[0]
        ws.con.execute("UPDATE alerts SET status = 'acknowledged' WHERE severity = 'high'")
        second = run(ws, ctx)[0]
        assert (first.new, second.new) == (first.alerts, 0)
        assert ws.count("alerts") == first.alerts
        assert ws.scalar("SELECT count(*) FROM alerts WHERE status = 'acknowledged'") == 2
