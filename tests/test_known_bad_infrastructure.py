"""The first detector, end to end on the embedded engine."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from tests.scenario import build

from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.intel_neighbourhood import IntelNeighbourhood
from orbwatch.detect.run import alerts_of, run
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.enrich.intel import add_list
from orbwatch.store.workspace import Workspace


@pytest.fixture
def alert_rows(tmp_path: Path) -> list[dict]:
    config = Config(internal_networks=["10.0.0.0/8"])
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        build(tmp_path, ws, config)
        runs = run(ws, DetectContext(config, DuckDBEngine(ws)), ["known_bad_infrastructure"])
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
    assert evidence["lists"] == ["test_feed (45.9.148.0/24, unknown, score 80)"]
    assert evidence["intel_score"] == 80.0 and evidence["intel_classes"] == ["unknown"]
    assert evidence["service_ports"] == [7777, 7777]
    assert "10.1.1.5 initiated 2 flow(s) to 45.9.148.10 on tcp/7777" in alert["explanation"]


def test_outbound_unanswered_is_medium(alerts: dict) -> None:
    assert alerts[("10.1.1.6", "45.9.148.99", "45.9.148.99")]["severity"] == "medium"


def test_inbound_from_two_lists_is_one_alert(alerts: dict) -> None:
    alert = alerts[("185.220.101.4", "10.1.1.1", "185.220.101.4")]
    assert alert["severity"] == "medium"  # one answered flow, one denied
    assert alert["event_count"] == 2
    assert json.loads(alert["evidence"])["lists"] == [
        "test_feed (185.220.101.4/32, unknown, score 80)",
        "tor_exits (185.220.101.4/32, unknown, score 80)",
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
        first = run(ws, ctx, ["known_bad_infrastructure"])[0]
        ws.con.execute("UPDATE alerts SET status = 'acknowledged' WHERE severity = 'high'")
        second = run(ws, ctx, ["known_bad_infrastructure"])[0]
        assert (first.new, second.new) == (first.alerts, 0)
        assert ws.count("alerts") == first.alerts
        assert ws.scalar("SELECT count(*) FROM alerts WHERE status = 'acknowledged'") == 2


FLOWS = """\
ts,src_ip,src_port,dst_ip,dst_port,proto,src_bytes,dst_bytes,src_packets,dst_packets,action
2026-11-02T10:00:00Z,10.1.1.5,50000,77.1.2.3,7777,6,100,200,2,2,allow
2026-11-02T10:01:00Z,10.1.1.5,50001,77.1.2.9,7777,6,100,200,2,2,allow
2026-11-02T10:02:00Z,10.1.1.5,50002,88.1.1.1,443,6,100,200,2,2,allow
2026-11-02T10:03:00Z,10.1.1.5,50003,99.1.1.1,443,6,100,200,2,2,allow
2026-11-02T10:04:00Z,10.1.1.5,50004,66.1.1.1,443,6,100,200,2,2,allow
"""


def _decay_workspace(tmp_path: Path, ws: Workspace, config: Config) -> None:
    from orbwatch.enrich.intel import FeedSource, add_feed
    from orbwatch.sources.ingest import Ingestor

    flows = tmp_path / "flows.csv"
    flows.write_text(FLOWS)
    Ingestor(ws, config).ingest(str(flows))
    now = dt.datetime.now(dt.UTC)
    feed = tmp_path / "soho.csv"
    feed.write_text(
        "ip,last_seen\n"
        f"77.1.2.3,{now - dt.timedelta(days=3):%Y-%m-%d %H:%M:%S}\n"  # 80*(1-(3/17)^.5) = 46.4
        f"88.1.1.1,{now - dt.timedelta(days=30):%Y-%m-%d %H:%M:%S}\n"  # past 17 days: expired
        f"66.1.1.1,{now:%Y-%m-%d %H:%M:%S}\n"  # fresh: 80
    )
    add_feed(ws, str(feed), "soho", FeedSource(intel_class="compromised-soho"))


def test_decay_expires_and_fades(tmp_path: Path) -> None:
    config = Config(internal_networks=["10.0.0.0/8"])
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        _decay_workspace(tmp_path, ws, config)
        run(ws, DetectContext(config, DuckDBEngine(ws)), ["known_bad_infrastructure"])
        alerts = {a["dst_ip"]: a for a in ws.table("alerts").to_pylist()}
    assert set(alerts) == {"77.1.2.3", "66.1.1.1"}  # 88.1.1.1 has expired: no match
    fresh, fading = alerts["66.1.1.1"], alerts["77.1.2.3"]
    assert fresh["severity"] == "high"
    assert json.loads(fresh["evidence"])["intel_score"] == 80.0
    assert fading["severity"] == "medium"  # answered outbound, lowered for a fading indicator
    evidence = json.loads(fading["evidence"])
    assert evidence["intel_classes"] == ["compromised-soho"]
    assert 46.3 <= evidence["intel_score"] <= 46.7  # age counted in whole hours: 71 or 72
    assert "fading" in fading["explanation"]


def test_neighbourhood_is_its_own_weaker_finding(tmp_path: Path) -> None:
    from orbwatch import netaddr

    config = Config(internal_networks=["10.0.0.0/8"])
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        _decay_workspace(tmp_path, ws, config)
        ctx = DetectContext(config, DuckDBEngine(ws))
        # By default only findings that reach `low_at` with an internal host are raised.
        assert alerts_of(IntelNeighbourhood(), ctx).num_rows == 0
        verbose = IntelNeighbourhood(raise_info=True)
        before_asn = {a["entity"]: a for a in alerts_of(verbose, ctx).to_pylist()}
        # ASN evidence once ip_info knows the AS of three live indicators and of 99.1.1.1.
        (tmp_path / "asn.txt").write_text("55.0.0.1\n55.0.0.2\n55.0.0.3\n")
        add_list(ws, str(tmp_path / "asn.txt"), "asn_feed")
        for ip in ("55.0.0.1", "55.0.0.2", "55.0.0.3", "99.1.1.1"):
            ws.con.execute(
                "INSERT INTO ip_info (ip_key, ip, asn) VALUES (?, ?, 64500)", [netaddr.key(ip), ip]
            )
        after = {a["entity"]: a for a in alerts_of(verbose, ctx).to_pylist()}
    # 77.1.2.9 shares 77.1.2.0/24 with a live (fading, 46.4) indicator; listed addresses and
    # the expired indicator's neighbours are not neighbourhood findings.
    assert set(before_asn) == {"77.1.2.9"}
    near = before_asn["77.1.2.9"]
    assert near["detector"] == "intel_neighbourhood"
    assert near["severity"] == "info" and 18.5 <= near["score"] <= 18.7  # 0.4 * 46.4-46.7
    assert "77.1.2.0/24" in near["explanation"]
    asn = after["99.1.1.1"]
    assert asn["score"] == 16.0  # 0.2 * 80, bounded far under a match
    assert json.loads(asn["evidence"])["asn_live_indicators"] == 3
    assert asn["severity"] == "info"
