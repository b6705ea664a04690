"""Isolation forest: finds the hour a host turns into something else, explains it, reproducibly."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from tests.detect.flowkit import T0, alerts, flow, ip_info, load

from orbwatch.detect.isolation_forest_anomaly import IsolationForestAnomaly
from orbwatch.store.workspace import Workspace

DAYS, HOSTS = 8, 12
ODD = "10.0.0.3"
LAST_DAY = T0 + dt.timedelta(days=DAYS - 1)


def _organisation(ws: Workspace, odd_peers: int = 40) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for hour in range(24 * DAYS):
        at = T0 + dt.timedelta(hours=hour)
        for h in range(HOSTS):
            for k in range(int(rng.integers(2, 5))):
                sent = int(rng.integers(2_000, 6_000))
                rows.append(
                    flow(
                        at + dt.timedelta(minutes=5 * k),
                        f"10.0.0.{h + 1}",
                        f"52.0.0.{k + 1}",
                        443,
                        sent,
                        sent * 8,
                    )
                )
    burst = LAST_DAY + dt.timedelta(hours=10)
    for p in range(odd_peers):
        rows.append(
            flow(burst + dt.timedelta(seconds=30 * p), ODD, f"77.{p}.0.1", 7777, 900_000, 2_000)
        )
    load(ws, rows)
    info = {f"52.0.0.{k}": ("US", 16509, "hosting") for k in range(1, 5)}
    info |= {
        f"77.{p}.0.1": (["BR", "VN", "RU", "IN"][p % 4], 10_000 + p, "residential")
        for p in range(odd_peers)
    }
    ip_info(ws, info)


@pytest.fixture
def found(workspace: Workspace) -> list[dict]:
    _organisation(workspace)
    return alerts(workspace, IsolationForestAnomaly())


def test_the_odd_hour_is_found_and_explained(found: list[dict]) -> None:
    odd = [a for a in found if a["entity"] == ODD]
    assert len(odd) == 1
    alert = odd[0]
    assert alert["first_seen"] == LAST_DAY + dt.timedelta(hours=10)
    evidence = json.loads(alert["evidence"])
    assert evidence["anomaly_score"] >= 0.7
    assert set(evidence["drivers"]) & {
        "log_peers",
        "asn_entropy",
        "residential_share",
        "new_peer_ratio",
        "in_out_ratio",
    }
    assert "sigmas" in alert["explanation"]


def test_ordinary_hosts_stay_quiet(found: list[dict]) -> None:
    assert {a["entity"] for a in found} == {ODD}


def test_same_seed_same_scores(workspace: Workspace) -> None:
    _organisation(workspace)
    first = alerts(workspace, IsolationForestAnomaly())
    second = alerts(workspace, IsolationForestAnomaly())
    assert [a["score"] for a in first] == [a["score"] for a in second]
    assert [a["evidence"] for a in first] == [a["evidence"] for a in second]


def test_too_little_history_raises_nothing(workspace: Workspace) -> None:
    _organisation(workspace)
    assert alerts(workspace, IsolationForestAnomaly(min_training_rows=10**6)) == []
