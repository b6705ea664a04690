"""Shared flow queries: per pair-and-day figures, and the edge flows of a detection window."""

from __future__ import annotations

import datetime as dt
import json

import ibis
from tests.detect.flowkit import CONFIG, T0, alerts, flow, load

from orbwatch.baseline.flows import edge_flows
from orbwatch.config import Config
from orbwatch.detect.exfiltration_to_new_destination import ExfiltrationToNewDestination
from orbwatch.detect.flow_queries import outbound_days, pair_day_figures, with_pair_day_figures
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.store.workspace import Workspace

HOST, PEER, OTHER = "10.0.0.9", "81.2.2.2", "52.1.1.1"
DAY = int(T0.timestamp()) // 86_400


def test_figures_are_the_chosen_pairs_own_outbound_flows(workspace: Workspace) -> None:
    hour = dt.timedelta(hours=1)
    load(
        workspace,
        [
            flow(T0, HOST, PEER, 443),
            flow(T0 + hour, HOST, PEER, 8443, proto="udp"),
            flow(T0 + dt.timedelta(days=1), HOST, PEER, 22),  # the next day: not counted
            flow(T0 + 2 * hour, PEER, HOST, 25),  # inbound: not counted
            flow(T0, HOST, OTHER, 80),  # another pair, not chosen
        ],
    )
    engine = DuckDBEngine(workspace)
    outbound = outbound_days(engine)
    chosen = outbound.filter(outbound.dst_ip == PEER).select("src_key", "dst_key", "day")
    (row,) = [r for r in engine.execute(pair_day_figures(engine, chosen)).to_pylist()
              if r["day"] == DAY]  # fmt: skip
    assert (row["src_ip"], row["dst_ip"], row["flows"]) == (HOST, PEER, 2)
    assert (row["dst_port"], row["ports"], row["protocol"]) == (443, 2, "tcp")
    assert row["first_seen"] == T0 and row["last_start"] == T0 + hour
    assert row["last_end"] == T0 + hour + dt.timedelta(seconds=1)


def test_figures_keep_the_chosen_columns_and_keys(workspace: Workspace) -> None:
    load(workspace, [flow(T0, HOST, PEER), flow(T0, HOST, OTHER)])
    engine = DuckDBEngine(workspace)
    outbound = outbound_days(engine)
    pairs = outbound.group_by(["src_key", "dst_key", "day"]).aggregate(n=outbound.count())
    out = engine.execute(with_pair_day_figures(engine, pairs, peer="dst_ip", seen="first_seen"))
    assert sorted(out.column_names) == ["day", "dst_key", "n", "peer", "seen", "src_key"]
    assert sorted(out["peer"].to_pylist()) == [OTHER, PEER]
    assert None not in out["src_key"].to_pylist() + out["day"].to_pylist()


def test_upload_without_earlier_uploads_keeps_its_pair_and_day(workspace: Workspace) -> None:
    """The source never uploaded before (no usual volume): the alert still names its day."""
    load(workspace, [flow(T0, "10.0.0.7", OTHER, 443, 1000, 1000)])  # the data starts here
    upload_at = T0 + dt.timedelta(days=3)
    load(workspace, [flow(upload_at, HOST, PEER, 443, 80_000_000, 1000)])
    (alert,) = alerts(workspace, ExfiltrationToNewDestination())
    assert alert["src_ip"] == HOST and alert["dst_ip"] == PEER
    assert alert["first_seen"] == upload_at
    assert json.loads(alert["evidence"])["usual_daily_upload_p95"] is None


def test_edge_flows_since_equals_filtering_afterwards(workspace: Workspace) -> None:
    config = Config.model_validate(
        {
            "internal_networks": CONFIG.internal_networks,
            "edge_assets": [{"name": "vpn", "addresses": ["10.0.0.1"], "role": "vpn-gateway"}],
        }
    )
    load(workspace, [flow(T0 + dt.timedelta(hours=h), PEER, "10.0.0.1", 443) for h in range(48)])
    engine = DuckDBEngine(workspace)
    since = ibis.literal(T0 + dt.timedelta(hours=30), "timestamp('UTC')")
    early = engine.execute(edge_flows(engine, config, since=since).order_by("ts"))
    late = edge_flows(engine, config)
    late = engine.execute(late.filter(late.ts >= since).order_by("ts"))
    assert early.num_rows == 18 and early.equals(late)
