"""Login baselines: learning-period boundaries, incremental updates, familiar sources."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login

from orbwatch.baseline.logins import (
    LearningPeriod,
    familiar_sources,
    update_login_baselines,
)
from orbwatch.config import Config
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
HOME = "73.1.1.10"


def _logins_over(ws: Workspace, user: str, count: int, days: float) -> list[dt.datetime]:
    """``count`` successful logins spread evenly over ``days`` (first at T0)."""
    step = dt.timedelta(days=days) / max(count - 1, 1)
    times = [T0 + i * step for i in range(count)]
    append_logins(ws, [login(ts, user, HOME) for ts in times], source=f"{user}.log")
    return times


def _user(ws: Workspace, user: str) -> dict:
    rows = ws.query("SELECT * FROM login_users WHERE user = ?", [user]).to_pylist()
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(
    ("count", "days", "expected"),
    [
        # 10 logins over 6 days: profiled at the 10th login.
        (10, 6, lambda t: t[9]),
        # 9 logins over 6 days: not yet; the 14-day mark decides.
        (9, 6, lambda t: T0 + dt.timedelta(days=14)),
        # 10 logins within 4 days: never before the 5-day minimum.
        (10, 4, lambda t: T0 + dt.timedelta(days=5)),
        # 10 logins over exactly 5 days: the 10th login and the minimum coincide.
        (10, 5, lambda t: t[9]),
        # 2 logins over 13 days: profiled by time at day 14.
        (2, 13, lambda t: T0 + dt.timedelta(days=14)),
        # 12 logins over 12 days: the 10th login comes before the 14-day mark ...
        (12, 12, lambda t: t[9]),
        # ... 12 logins over 20 days: the 14-day mark comes before the 10th login.
        (12, 20, lambda t: T0 + dt.timedelta(days=14)),
    ],
)
def test_learning_period_boundaries(
    workspace: Workspace, count: int, days: float, expected: object
) -> None:
    times = _logins_over(workspace, "alice", count, days)
    update_login_baselines(workspace, Config(), now=T0 + dt.timedelta(days=60))
    user = _user(workspace, "alice")
    assert user["logins"] == count
    assert user["first_seen"] == T0
    assert user["profiled_since"] == expected(times)  # type: ignore[operator]


def test_learning_period_is_a_parameter(workspace: Workspace) -> None:
    times = _logins_over(workspace, "alice", 4, 3)
    update_login_baselines(
        workspace,
        Config(),
        now=T0 + dt.timedelta(days=60),
        learning=LearningPeriod(min_days=1, full_days=30, full_logins=3),
    )
    assert _user(workspace, "alice")["profiled_since"] == times[2]


def test_incremental_update_folds_only_newer_logins(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    times = _logins_over(workspace, "alice", 12, 11)
    first = update_login_baselines(workspace, Config(), now=times[5])
    assert first["logins"] == 6 and first["profiled_users"] == 0
    assert _user(workspace, "alice")["learning_logins_at"] is None
    second = update_login_baselines(workspace, Config(), now=times[-1])
    assert second["logins"] == 6 and second["profiled_users"] == 1
    incremental = (
        workspace.query("SELECT * FROM login_profiles ORDER BY ALL").to_pylist(),
        _user(workspace, "alice"),
    )
    assert update_login_baselines(workspace, Config())["logins"] == 0
    full = update_login_baselines(workspace, Config(), full=True)
    assert full["logins"] == 12
    rebuilt = workspace.query("SELECT * FROM login_profiles ORDER BY ALL").to_pylist()
    assert incremental == (rebuilt, _user(workspace, "alice"))
    assert _user(workspace, "alice")["learning_logins_at"] == times[9]


def test_profile_holds_every_attribute_with_counts(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    append_logins(
        workspace,
        [
            login(T0, "alice", HOME),
            login(T0 + dt.timedelta(days=1), "alice", HOME),
            login(T0 + dt.timedelta(days=2), "alice", "24.5.6.7", service="ssh", target="bastion"),
            login(T0 + dt.timedelta(days=3), "alice", "5.9.1.1", outcome="failure"),
        ],
    )
    update_login_baselines(workspace, Config())
    rows = workspace.query(
        "SELECT service, attribute, value, count FROM login_profiles ORDER BY ALL"
    ).to_pylist()
    got = {(r["service"], r["attribute"], r["value"]): r["count"] for r in rows}
    assert got[("vpn", "asn", "7922")] == 2
    assert got[("vpn", "region", "US/NY")] == 2
    assert got[("vpn", "net_class", "residential")] == 2
    assert got[("ssh", "asn", "701")] == 1
    assert got[("ssh", "target", "bastion")] == 1
    assert got[("vpn", "client", "AnyConnect 5.1")] == 2
    # 2026-10-01 was a Thursday: 3 * 24 + 8.
    assert got[("vpn", "hour_of_week", "80")] == 1
    # Failures never teach the profile.
    assert not any(k[2] == "24940" for k in got)
    assert {k[1] for k in got} == {
        "country",
        "region",
        "asn",
        "net_class",
        "client",
        "hour_of_week",
        "src_net",
        "src_key",
        "target",
    }


def test_unenriched_sources_are_profiled_as_unknown(workspace: Workspace) -> None:
    append_logins(workspace, [login(T0, "bob", "198.18.0.1")])
    update_login_baselines(workspace, Config())
    values = workspace.query(
        "SELECT attribute, value FROM login_profiles WHERE user = 'bob'"
    ).to_pylist()
    attrs = {r["attribute"]: r["value"] for r in values}
    assert attrs["net_class"] == "unknown"
    assert "country" not in attrs and "asn" not in attrs


@pytest.mark.parametrize(("span_days", "familiar"), [(6.9, False), (7.0, True)])
def test_familiar_sources_need_colleagues_over_time(
    workspace: Workspace, span_days: float, familiar: bool
) -> None:
    rows = [login(T0, "alice", HOME), login(T0 + dt.timedelta(hours=1), "bob", HOME)]
    rows.append(login(T0 + dt.timedelta(days=span_days), "carol", HOME))
    append_logins(workspace, rows)
    update_login_baselines(workspace, Config())
    engine = DuckDBEngine(workspace)
    found = engine.execute(familiar_sources(engine)).to_pylist()
    assert bool(found) is familiar
    if familiar:
        assert {r["attribute"] for r in found} == {"src_key", "src_net"}
        assert all(r["users"] == 3 for r in found)
