"""Expression helpers every engine shares: the latest flow and whole seconds since 1970."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.detect.flowkit import T0, flow, load

from orbwatch.baseline.flows import data_end, edge_flows
from orbwatch.config import Config
from orbwatch.engines.base import epoch_seconds
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.store.workspace import Workspace

CONFIG = Config(
    internal_networks=["10.0.0.0/8"],
    edge_assets=[{"name": "vpn", "addresses": ["10.0.0.1"], "role": "vpn-gateway"}],
)


def test_data_end_is_the_latest_of_all_flows_even_in_a_filter_of_derived_rows(
    tmp_path: Path,
) -> None:
    """The latest flow is not the edge asset's: Ibis must not rewrite it onto the filtered table."""
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        load(
            ws,
            [
                flow(T0, "81.0.0.1", "10.0.0.1"),  # the edge asset, early
                flow(T0 + dt.timedelta(hours=30), "10.0.0.9", "93.0.0.1"),  # another host, last
            ],
            CONFIG,
        )
        engine = DuckDBEngine(ws)
        edge = edge_flows(engine, CONFIG)
        window_start = data_end(engine) - dt.timedelta(hours=24)
        recent = engine.execute(edge.filter(edge.ts >= window_start))
        everything = engine.execute(edge.mutate(end=data_end(engine)))
    assert recent.num_rows == 0  # the asset's flow is 30 hours before the latest flow
    assert everything["end"].to_pylist() == [T0 + dt.timedelta(hours=30)]


def test_epoch_seconds_matches_the_portable_expression(tmp_path: Path) -> None:
    stamps = [
        T0,
        T0 + dt.timedelta(seconds=59, microseconds=999_999),
        dt.datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=dt.UTC),
    ]
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        load(ws, [flow(ts, "10.0.0.9", "93.0.0.1") for ts in stamps], CONFIG)
        engine = DuckDBEngine(ws)
        flows = engine.table("flows")
        both = flows.select(
            native=epoch_seconds(engine, flows.ts_start),
            portable=flows.ts_start.epoch_seconds().floor().cast("int64"),
        )
        rows = engine.execute(both).to_pylist()
    assert [r["native"] for r in rows] == [r["portable"] for r in rows]
    assert sorted(r["native"] for r in rows) == [-1, int(T0.timestamp()), int(T0.timestamp()) + 59]
