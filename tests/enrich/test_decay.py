"""The MISP polynomial decay against values computed by hand (shown next to each case)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pyarrow as pa
import pytest

from orbwatch.config import Config, IntelSettings
from orbwatch.enrich.decay import (
    expire,
    expires_after_days,
    expiry_times,
    intel_stats,
    reference_time,
    with_decay,
)
from orbwatch.enrich.intel import FeedSource, add_feed
from orbwatch.store.workspace import Workspace

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")


def _decay(rows: list[dict], settings: IntelSettings | None = None) -> list[dict]:
    table = pa.table(
        {
            "confidence": pa.array([r.get("confidence") for r in rows], pa.float64()),
            "intel_class": pa.array([r["cls"] for r in rows], pa.string()),
            "last_seen": pa.array([NOW - r["age"] for r in rows], TS),
            "valid_until": pa.array([r.get("until") for r in rows], TS),
            "expired_at": pa.nulls(len(rows), TS),
        }
    )
    expr = with_decay(ibis.memtable(table), settings or IntelSettings(), NOW)
    return ibis.duckdb.connect().to_pyarrow(expr).to_pylist()


def test_hand_computed_scores() -> None:
    days = dt.timedelta(days=1)
    rows = _decay(
        [
            # MISP NIDS defaults: 80 * (1 - (30 / 120) ** (1 / 2)) = 80 * (1 - 0.5) = 40
            {"cls": "unknown", "age": 30 * days},
            # SOHO: 100 * (1 - (4.25 / 17) ** 0.5) = 100 * (1 - 0.5) = 50
            {"cls": "compromised-soho", "confidence": 100.0, "age": dt.timedelta(hours=102)},
            # VPS relay: 60 * (1 - (19.25 / 77) ** 0.5) = 60 * 0.5 = 30, exactly the threshold
            {"cls": "vps-relay", "confidence": 60.0, "age": dt.timedelta(hours=462)},
            # Quad7 at its lifetime: 80 * (1 - 1) = 0
            {"cls": "quad7", "age": 90 * days},
            # Older than tau: clipped at 0, not negative
            {"cls": "compromised-soho", "age": 40 * days},
            # Fresh, but past the feed's valid_until: 0
            {"cls": "c2", "age": dt.timedelta(0), "until": NOW - days},
            # Seen "in the future" (clock skew): age 0, full base
            {"cls": "c2", "confidence": 90.0, "age": -days},
        ]
    )
    assert [r["decayed_score"] for r in rows] == [40.0, 50.0, 30.0, 0.0, 0.0, 0.0, 90.0]
    assert [r["live"] for r in rows] == [True, True, True, False, False, False, True]
    assert [r["tau_days"] for r in rows[:4]] == [120.0, 17.0, 77.0, 90.0]
    assert rows[0]["base"] == 80.0  # configured default confidence


def test_settings_change_the_model() -> None:
    settings = IntelSettings(
        delta=1.0, threshold=50.0, default_confidence=60.0, tau_days={"c2": 60.0}
    )
    # Linear (delta 1): 60 * (1 - 15 / 60) = 45, under the threshold of 50.
    (row,) = _decay([{"cls": "c2", "age": dt.timedelta(days=15)}], settings)
    assert (row["decayed_score"], row["live"], row["tau_days"]) == (45.0, False, 60.0)
    assert settings.tau()["compromised-soho"] == 17.0  # unconfigured classes keep defaults


def test_age_counts_whole_hours_from_the_hour() -> None:
    assert reference_time(dt.datetime(2026, 11, 25, 12, 59, 59, tzinfo=dt.UTC)) == NOW
    # 29 days 23.5 hours old counts as 719 hours.
    (row,) = _decay([{"cls": "unknown", "age": dt.timedelta(days=30) - dt.timedelta(minutes=30)}])
    assert row["age_days"] == 719 / 24


def test_expiry() -> None:
    # MISP NIDS: 120 * (1 - 30 / 80) ** 2 = 46.875 days ("expires after about 47 days").
    assert expires_after_days(80.0, 120.0, 2.0, 30.0) == 46.875
    assert expires_after_days(30.0, 120.0, 2.0, 30.0) == 0.0
    rows = _decay(
        [
            {"cls": "unknown", "age": dt.timedelta(0)},
            {"cls": "unknown", "age": dt.timedelta(0), "until": NOW + dt.timedelta(days=2)},
        ]
    )
    expiries = expiry_times(pa.Table.from_pylist(rows), IntelSettings()).to_pylist()
    assert expiries[0] == NOW + dt.timedelta(days=46.875)
    assert expiries[1] == NOW + dt.timedelta(days=2)  # valid_until comes first


@pytest.fixture
def aged(workspace: Workspace, tmp_path: Path) -> Workspace:
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "ip,last_seen\n"
        "1.1.1.1,2026-11-24\n"  # 1 day 12 hours old: live
        "2.2.2.2,2026-06-01\n"  # 177 days old: expired for every class
    )
    add_feed(workspace, str(feed), "aged", FeedSource(intel_class="c2"))
    return workspace


def test_stats(aged: Workspace) -> None:
    stats = intel_stats(aged, IntelSettings(), NOW)
    # 80 * (1 - (1.5 / 120) ** 0.5) = 71.06 and 0: mean 35.53
    assert stats["by_list"] == [
        {"list_name": "aged", "total": 2, "live": 1, "expired": 1, "mean_score": 35.5}
    ]
    assert [(r["age"], r["total"]) for r in stats["by_age"]] == [("1-7 days", 1), ("> 90 days", 1)]


@pytest.mark.parametrize("delete", [True, False])
def test_expire(aged: Workspace, delete: bool) -> None:
    gone = expire(aged, Config().intel, NOW, delete=delete)
    assert gone["indicator"].to_pylist() == ["2.2.2.2/32"]
    remaining = aged.query("SELECT indicator, expired_at FROM intel ORDER BY 1").to_pylist()
    if delete:
        assert [r["indicator"] for r in remaining] == ["1.1.1.1/32"]
        assert aged.count("intel_buckets") == 1
    else:
        assert [r["expired_at"] is not None for r in remaining] == [False, True]
        assert expire(aged, Config().intel, NOW, delete=False).num_rows == 0  # marked once
