"""Edge traffic against its hour-of-week (here: hour-of-day fallback) baseline, at the z edge."""

from __future__ import annotations

import datetime as dt
import json

from tests.detect.flowkit import T0, alerts, flow, load

from orbwatch.baseline.flows import update_flow_baselines
from orbwatch.config import Config
from orbwatch.detect.edge_traffic_spike import EdgeTrafficSpike
from orbwatch.store.workspace import Workspace

VPN = "10.0.0.1"
CONFIG = Config(
    internal_networks=["10.0.0.0/8"],
    edge_assets=[{"name": "hq-vpn", "addresses": [VPN], "role": "vpn-gateway"}],
)
DAYS = 10
SPIKE_AT = T0 + dt.timedelta(days=DAYS - 1, hours=14, minutes=30)


def _routine(ws: Workspace) -> None:
    """Ten days: every hour two VPN sessions on 443, 50 kB each way."""
    rows = []
    for hour in range(24 * DAYS):
        at = T0 + dt.timedelta(hours=hour, minutes=10)
        for i in range(2):
            rows.append(
                flow(at + dt.timedelta(minutes=i), f"81.0.0.{i + 1}", VPN, 443, 50_000, 50_000)
            )
    load(ws, rows, CONFIG)


def _run(ws: Workspace, detector: EdgeTrafficSpike | None = None) -> list[dict]:
    update_flow_baselines(ws, CONFIG)
    return alerts(ws, detector or EdgeTrafficSpike(), CONFIG)


def test_quiet_asset_raises_nothing(workspace: Workspace) -> None:
    _routine(workspace)
    assert _run(workspace) == []


def test_spike_exactly_at_threshold(workspace: Workspace) -> None:
    _routine(workspace)
    # Median 100 kB out per hour, MAD 0: the 1 MB floor is the scale, so +6 MB is 6.0 sigmas.
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 6_000_000)], CONFIG)
    (alert,) = _run(workspace)
    evidence = json.loads(alert["evidence"])
    assert evidence["bytes_out"]["sigmas"] == 6.0
    assert evidence["profile"] == "hour_of_day"
    assert alert["severity"] == "medium"
    assert "6.0 sigmas" in alert["explanation"]


def test_just_below_threshold(workspace: Workspace) -> None:
    _routine(workspace)
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 5_999_999)], CONFIG)
    assert _run(workspace) == []


def test_big_spike_is_high(workspace: Workspace) -> None:
    _routine(workspace)
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 500_000_000)], CONFIG)
    (alert,) = _run(workspace)
    assert alert["severity"] == "high" and alert["entity"] == "hq-vpn"


def test_new_service_ports(workspace: Workspace) -> None:
    _routine(workspace)
    ports = [7777, 11288, 63256]
    load(workspace, [flow(SPIKE_AT, "45.9.9.9", VPN, p, 100, 100) for p in ports[:2]], CONFIG)
    assert _run(workspace) == []
    load(workspace, [flow(SPIKE_AT, "45.9.9.9", VPN, ports[2], 100, 100)], CONFIG)
    (alert,) = _run(workspace)
    assert json.loads(alert["evidence"])["new_ports"] == ports


def test_no_history_no_judgement(workspace: Workspace) -> None:
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 500_000_000)], CONFIG)
    assert _run(workspace) == []


def test_big_hour_within_the_busiest_past_hour_is_no_spike(workspace: Workspace) -> None:
    """A long session booked in its start hour: far above its slot, within the asset's week."""
    _routine(workspace)
    busy_day = T0 + dt.timedelta(days=3, hours=9, minutes=30)  # another hour of the day
    load(workspace, [flow(busy_day, "81.0.0.1", VPN, 443, 1000, 7_000_000)], CONFIG)
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 28_300_000)], CONFIG)
    assert _run(workspace) == []  # 28.3 sigmas, but exactly 4 x the busiest past hour


def test_big_hour_beyond_the_busiest_past_hour_is_a_spike(workspace: Workspace) -> None:
    _routine(workspace)
    busy_day = T0 + dt.timedelta(days=3, hours=9, minutes=30)
    load(workspace, [flow(busy_day, "81.0.0.1", VPN, 443, 1000, 7_000_000)], CONFIG)
    load(workspace, [flow(SPIKE_AT, "81.0.0.1", VPN, 443, 1000, 28_300_001)], CONFIG)
    (alert,) = _run(workspace)
    evidence = json.loads(alert["evidence"])
    assert evidence["bytes_out"]["busiest_past_hour"] == 7_100_000
    assert alert["src_ip"] == VPN  # the asset's address, not only its name
