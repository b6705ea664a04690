"""A device that forwards inbound connections byte for byte, at the edges of each threshold."""

from __future__ import annotations

import datetime as dt
import json

from tests.detect.flowkit import T0, alerts, flow, load

from orbwatch.detect.device_turned_relay import DeviceTurnedRelay
from orbwatch.store.workspace import Workspace

DEVICE, UPSTREAM = "10.0.0.7", "45.1.1.1"


def _relayed(sources: int, lag_s: float = 1.0, port: int = 7777, out_bytes: int = 1500):
    rows = []
    for i in range(sources):
        start = T0 + dt.timedelta(minutes=7 * i)
        rows.append(flow(start, f"91.0.0.{i + 1}", DEVICE, port, 1500, 20000))
        rows.append(
            flow(start + dt.timedelta(seconds=lag_s), DEVICE, UPSTREAM, 443, out_bytes, 20010)
        )
    return rows


def test_relay_on_unusual_port_is_high(workspace: Workspace) -> None:
    load(workspace, _relayed(6))
    (alert,) = alerts(workspace, DeviceTurnedRelay())
    assert alert["severity"] == "high" and alert["entity"] == DEVICE
    evidence = json.loads(alert["evidence"])
    assert evidence["mirrored_flows"] == 6 and evidence["source_count"] == 6
    assert evidence["sources"] == [f"91.0.0.{i}" for i in range(1, 7)]
    assert evidence["example_upstream"] == UPSTREAM
    assert alert["techniques"] == "T1090,T1584.005"


def test_source_threshold_edge(workspace: Workspace) -> None:
    load(workspace, _relayed(4))
    assert not alerts(workspace, DeviceTurnedRelay())
    assert alerts(workspace, DeviceTurnedRelay(min_sources=4, min_mirrored=4))


def test_lag_edge(workspace: Workspace) -> None:
    load(workspace, _relayed(6, lag_s=2.0))
    assert alerts(workspace, DeviceTurnedRelay())  # exactly max_lag_s: still a mirror
    assert not alerts(workspace, DeviceTurnedRelay(max_lag_s=1))


def test_bytes_must_mirror(workspace: Workspace) -> None:
    load(workspace, _relayed(6, out_bytes=1500 + 150))  # 10% of 1650 = 165: within
    assert alerts(workspace, DeviceTurnedRelay())


def test_different_bytes_are_not_a_relay(workspace: Workspace) -> None:
    load(workspace, _relayed(6, out_bytes=3000))
    assert not alerts(workspace, DeviceTurnedRelay())


def test_usual_port_is_left_alone(workspace: Workspace) -> None:
    load(workspace, _relayed(6, port=443))
    assert not alerts(workspace, DeviceTurnedRelay())
