"""Flow baselines: hourly material, robust profiles with idle hours, incremental updates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.detect.flowkit import T0, flow, load

from orbwatch.baseline.flows import update_flow_baselines
from orbwatch.config import Config
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

CONFIG = Config(
    internal_networks=["10.0.0.0/8"],
    edge_assets=[{"name": "vpn", "addresses": ["10.0.0.1"], "role": "vpn-gateway"}],
)


def _days(ws: Workspace, days: int, start: dt.datetime = T0) -> None:
    """Working hours only (08-17 UTC): 3 sessions an hour, 10 kB each way."""
    rows = [
        flow(
            start + dt.timedelta(days=d, hours=h, minutes=m),
            f"81.0.0.{m + 1}",
            "10.0.0.1",
            443,
            10_000,
            10_000,
        )
        for d in range(days)
        for h in range(8, 18)
        for m in range(3)
    ]
    load(ws, rows, CONFIG)


def _profile(ws: Workspace, kind: str, slot: int) -> dict:
    rows = ws.query(
        "SELECT * FROM edge_baselines WHERE entity = 'vpn' AND slot_kind = ? AND slot = ?",
        [kind, slot],
    ).to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_hourly_material_and_profiles(workspace: Workspace) -> None:
    _days(workspace, 15)
    counts = update_flow_baselines(workspace, CONFIG)
    assert counts["edge_hours"] == 15 * 10
    day = _profile(workspace, "hour_of_day", 9)
    assert day["flows_in_median"] == 3 and day["flows_in_mad"] == 0
    assert day["bytes_in_median"] == 30_000 and day["peers_median"] == 3
    assert day["hours"] == 14  # the last day is the detection window, not training
    night = _profile(workspace, "hour_of_day", 3)  # idle hours are zeros, not missing
    assert night["flows_in_median"] == 0 and night["hours"] == 13  # first active hour is 08h
    week = _profile(workspace, "hour_of_week", 9)  # Monday 09h: two Mondays of training
    assert week["hours"] == 2


def test_incremental_update_only_recomputes_new_hours(workspace: Workspace, tmp_path: Path) -> None:
    _days(workspace, 3)
    update_flow_baselines(workspace, CONFIG)
    before = workspace.count("edge_hours")
    csv = tmp_path / "more.csv"
    csv.write_text(
        "ts,src_ip,src_port,dst_ip,dst_port,proto,src_bytes,dst_bytes\n"
        "2026-11-05T09:30:00Z,81.0.0.9,40000,10.0.0.1,443,6,500,700\n",
        encoding="utf-8",
    )
    Ingestor(workspace, CONFIG).ingest(str(csv))
    counts = update_flow_baselines(workspace, CONFIG)
    # The last stored hour (it may have been incomplete) and the new one; nothing older.
    assert counts["edge_hours"] == 2 and workspace.count("edge_hours") == before + 1
    hour = workspace.query(
        "SELECT flows_in, bytes_in FROM edge_hours WHERE hour = '2026-11-05 09:00:00+00'"
    ).to_pylist()
    assert hour == [{"flows_in": 1, "bytes_in": 500}]


def test_late_data_is_folded_in(workspace: Workspace, tmp_path: Path) -> None:
    _days(workspace, 3, T0 + dt.timedelta(days=5))
    update_flow_baselines(workspace, CONFIG)
    csv = tmp_path / "late.csv"
    csv.write_text(
        "ts,src_ip,src_port,dst_ip,dst_port,proto,src_bytes,dst_bytes\n"
        "2026-11-03T09:30:00Z,81.0.0.9,40000,10.0.0.1,7777,6,500,700\n",
        encoding="utf-8",
    )
    Ingestor(workspace, CONFIG).ingest(str(csv))
    update_flow_baselines(workspace, CONFIG)
    late = workspace.query(
        "SELECT first_seen FROM peer_contacts WHERE kind = 'port_in' AND value = '7777'"
    ).to_pylist()
    assert late[0]["first_seen"].date() == dt.date(2026, 11, 3)
    assert workspace.count("edge_hours") == 3 * 10 + 1


def test_rebuild_matches_incremental(workspace: Workspace) -> None:
    _days(workspace, 4)
    update_flow_baselines(workspace, CONFIG)
    incremental = workspace.query("SELECT * EXCLUDE updated_at FROM edge_baselines ORDER BY ALL")
    update_flow_baselines(workspace, CONFIG, rebuild=True)
    rebuilt = workspace.query("SELECT * EXCLUDE updated_at FROM edge_baselines ORDER BY ALL")
    assert incremental.equals(rebuilt)


def test_empty_workspace(workspace: Workspace) -> None:
    assert update_flow_baselines(workspace, CONFIG) == {
        "edge_hours": 0,
        "peer_contacts": 0,
        "edge_baselines": 0,
    }
