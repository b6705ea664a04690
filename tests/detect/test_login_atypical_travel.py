"""Atypical travel: distance and speed thresholds, ignored sources, rating by atypicality."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login, raised

from orbwatch.baseline.logins import update_login_baselines
from orbwatch.config import Config
from orbwatch.detect.atypical_travel import AtypicalTravel
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
HOME = "73.1.1.10"  # New York
KM_PER_DEGREE = 6371.0088 * 3.141592653589793 / 180  # along the equator


def _with_points(ws: Workspace, *degrees: float) -> list[str]:
    """Addresses on the equator at ``degrees`` of longitude (residential, country XX)."""
    ips = [f"100.{i}.0.1" for i in range(1, len(degrees) + 1)]
    info = {
        ip: ("XX", f"R{i}", 0.0, lon, 64500 + i, "residential")
        for i, (ip, lon) in enumerate(zip(ips, degrees, strict=True))
    }
    append_ip_info(ws, info)
    return ips


def _pair(ws: Workspace, a: str, b: str, minutes: float, user: str = "alice") -> list[dict]:
    start = T0 + dt.timedelta(days=30)
    rows = [login(start, user, a), login(start + dt.timedelta(minutes=minutes), user, b)]
    append_logins(ws, rows, "pair.log")
    return raised(ws, AtypicalTravel())


def _history(ws: Workspace, user: str = "alice", ips: tuple[str, ...] = (HOME,)) -> None:
    rows = [login(T0 + dt.timedelta(days=d), user, ips[d % len(ips)]) for d in range(20)]
    append_logins(ws, rows, "history.log")
    append_ip_info(ws, IP_INFO)
    update_login_baselines(ws, Config())


@pytest.mark.parametrize(("degrees", "alerts"), [(799.5, 0), (800.5, 1)])
def test_minimum_distance(workspace: Workspace, degrees: float, alerts: int) -> None:
    a, b = _with_points(workspace, 0.0, degrees / KM_PER_DEGREE)
    found = _pair(workspace, a, b, minutes=10)
    assert len(found) == alerts


@pytest.mark.parametrize(("minutes", "alerts"), [(74.0, 1), (76.0, 0)])
def test_speed_threshold(workspace: Workspace, minutes: float, alerts: int) -> None:
    # 1,000 km: 800 km/h is 75 minutes.
    a, b = _with_points(workspace, 0.0, 1000 / KM_PER_DEGREE)
    found = _pair(workspace, a, b, minutes=minutes)
    assert len(found) == alerts
    if found:
        assert found[0]["evidence"]["distance_km"] == pytest.approx(1000, abs=0.5)
        assert found[0]["evidence"]["login_records"] == ["pair.log:1", "pair.log:2"]


def test_new_hosting_place_for_a_profiled_account_is_high(workspace: Workspace) -> None:
    _history(workspace)
    [alert] = _pair(workspace, HOME, "5.9.1.1", minutes=90)
    assert alert["severity"] == "high"
    assert alert["title"] == "alice: US to DE at 4,282 km/h"
    assert "6,423 km away: 4,282 km/h (2,661 mph)" in alert["explanation"]
    assert alert["evidence"]["to"]["rating"] == "new"
    assert alert["evidence"]["from"]["rating"] == "usual"


def test_two_usual_places_are_low(workspace: Workspace) -> None:
    _history(workspace, ips=(HOME, "81.1.2.3"))
    [alert] = _pair(workspace, HOME, "81.1.2.3", minutes=60)
    assert alert["severity"] == "low"


def test_unprofiled_account_is_labelled(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    [alert] = _pair(workspace, HOME, "5.9.1.1", minutes=90)
    assert alert["severity"] == "low"
    assert alert["title"].endswith("(not yet profiled)")


def test_corporate_egress_and_familiar_sources_are_ignored(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    _pair(workspace, HOME, "5.9.1.1", minutes=90)
    config = Config(corporate_egress=["5.9.1.0/24"])
    assert raised(workspace, AtypicalTravel(), config) == []
    # Three colleagues used the German address over a week: familiar to the organisation.
    for n, user in enumerate(("bob", "carol", "dave")):
        ts = T0 + dt.timedelta(days=3 * n)
        append_logins(workspace, [login(ts, user, "5.9.1.1")], f"{user}.log")
    update_login_baselines(workspace, Config())
    assert raised(workspace, AtypicalTravel()) == []


def test_only_consecutive_logins_are_compared(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    start = T0 + dt.timedelta(days=30)
    rows = [
        login(start, "alice", HOME),
        login(start + dt.timedelta(hours=12), "alice", "5.9.1.1"),  # 12 h later: possible
        login(start + dt.timedelta(hours=13), "alice", "5.9.1.1"),  # streak: distance 0
    ]
    append_logins(workspace, rows)
    assert raised(workspace, AtypicalTravel()) == []
