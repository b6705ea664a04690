"""Large uploads to destinations new for the organisation, at the edges of each threshold."""

from __future__ import annotations

import datetime as dt
import json

from tests.detect.flowkit import T0, alerts, flow, ip_info, load

from orbwatch.detect.exfiltration_to_new_destination import ExfiltrationToNewDestination
from orbwatch.store.workspace import Workspace

HOST, BACKUP, NEW = "10.0.0.9", "52.1.1.1", "81.2.2.2"


def _history(ws: Workspace, days: int = 3, daily: int = 10_000_000) -> None:
    """The host's routine: one 10 MB upload a day to a known backup service."""
    load(ws, [flow(T0 + dt.timedelta(days=d), HOST, BACKUP, 443, daily, 1000) for d in range(days)])


def _upload(ws: Workspace, sent: int, dst: str = NEW, received: int = 10_000) -> None:
    load(ws, [flow(T0 + dt.timedelta(days=3, hours=2), HOST, dst, 443, sent, received)])


def test_large_upload_to_new_residential_destination_is_high(workspace: Workspace) -> None:
    _history(workspace)
    _upload(workspace, 60_000_000)
    ip_info(workspace, {NEW: ("NL", 1136, "residential")})
    (alert,) = alerts(workspace, ExfiltrationToNewDestination())
    assert alert["severity"] == "high" and alert["dst_ip"] == NEW
    evidence = json.loads(alert["evidence"])
    assert evidence["usual_daily_upload_p95"] == 10_000_000
    assert evidence["net_class"] == "residential"


def test_unenriched_destination_is_medium(workspace: Workspace) -> None:
    _history(workspace)
    _upload(workspace, 60_000_000)
    (alert,) = alerts(workspace, ExfiltrationToNewDestination())
    assert alert["severity"] == "medium"


def test_volume_threshold_edge(workspace: Workspace) -> None:
    _history(workspace)
    _upload(workspace, 49_999_999)
    assert not alerts(workspace, ExfiltrationToNewDestination())
    assert alerts(workspace, ExfiltrationToNewDestination(min_bytes=49_999_999))


def test_history_factor_edge(workspace: Workspace) -> None:
    _history(workspace, daily=20_000_000)  # usual 20 MB: 3x = 60 MB
    _upload(workspace, 59_999_999)
    assert not alerts(workspace, ExfiltrationToNewDestination())
    _upload(workspace, 1)  # one more byte to the same destination
    assert alerts(workspace, ExfiltrationToNewDestination())


def test_known_destination_is_not_new(workspace: Workspace) -> None:
    _history(workspace)
    _upload(workspace, 100_000_000, dst=BACKUP)
    assert not alerts(workspace, ExfiltrationToNewDestination(history_factor=1.0))


def test_no_alert_without_history(workspace: Workspace) -> None:
    load(workspace, [flow(T0 + dt.timedelta(hours=h), HOST, BACKUP, 443, 10, 10) for h in (60, 70)])
    _upload(workspace, 100_000_000)
    assert not alerts(workspace, ExfiltrationToNewDestination())


def test_download_is_not_exfiltration(workspace: Workspace) -> None:
    _history(workspace)
    _upload(workspace, 60_000_000, received=40_000_000)
    assert not alerts(workspace, ExfiltrationToNewDestination())
