"""Hand-built flows for the flow-detector tests: a few keyword arguments per flow, nothing else."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from orbwatch.config import Config
from orbwatch.detect.base import DetectContext, Detector
from orbwatch.detect.run import alerts_of
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.netaddr import key
from orbwatch.sources.ingest import normalise_rows
from orbwatch.store.schema import TABLES
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)  # a Monday
CONFIG = Config(internal_networks=["10.0.0.0/8"])


def flow(
    ts: dt.datetime,
    src: str,
    dst: str,
    dport: int = 443,
    sbytes: int = 100,
    dbytes: int = 100,
    *,
    proto: str = "tcp",
    state: str = "SF",
    action: str = "allow",
    duration: float = 1.0,
) -> dict[str, Any]:
    """One flow row (``flows`` columns) with sensible defaults."""
    answered = dbytes > 0 or state in ("SF", "S1", "RSTO", "RSTR")
    return {
        "ts_start": ts,
        "ts_end": ts + dt.timedelta(seconds=duration),
        "duration_s": duration,
        "src_ip": src,
        "src_port": 40000,
        "dst_ip": dst,
        "dst_port": dport,
        "protocol": proto,
        "src_bytes": sbytes,
        "dst_bytes": dbytes,
        "src_packets": 3,
        "dst_packets": 3 if answered else 0,
        "conn_state": state,
        "action": action,
        "exporter": "test",
        "source_format": "test",
        "source_file": "hand-built",
        "source_offset": 0,
        "ingest_run_id": "test",
    }


def load(ws: Workspace, rows: list[dict[str, Any]], config: Config = CONFIG) -> None:
    """Append flows, with keys and direction computed as ingest does."""
    schema = TABLES["flows"].schema
    names = [n for n in schema.names if n not in ("src_key", "dst_key", "direction")]
    table = pa.table({n: pa.array([r.get(n) for r in rows], schema.field(n).type) for n in names})
    ws.append("flows", normalise_rows(table, config.internal_ranges()))


def ip_info(ws: Workspace, rows: dict[str, tuple[str, int, str]]) -> None:
    """Enrichment rows: address -> (country, asn, net_class)."""
    ws.append(
        "ip_info",
        pa.table(
            {
                "ip_key": [key(ip) for ip in rows],
                "ip": list(rows),
                "country": [v[0] for v in rows.values()],
                "asn": pa.array([v[1] for v in rows.values()], pa.int64()),
                "net_class": [v[2] for v in rows.values()],
            }
        ),
    )


def alerts(ws: Workspace, detector: Detector, config: Config = CONFIG) -> list[dict[str, Any]]:
    """The detector's alerts on the embedded engine, as dicts."""
    return list(alerts_of(detector, DetectContext(config, DuckDBEngine(ws))).to_pylist())


def build_edge(ws: Workspace, config: Config) -> None:
    """Edge traffic with one finding for each flow detector, after every other scenario's data.

    Ten days of an edge gateway's routine (discovered asset ``edge-gw``), then on the last day:
    a spike and new peers on the gateway, a camera that relays, a host that beacons and then
    uploads to a new residential address, and a scan followed by a working connection.
    """
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    last = start + dt.timedelta(days=9)
    gateway, camera, host = "10.60.0.1", "10.60.5.5", "10.60.1.9"
    rows = [
        flow(
            start + dt.timedelta(hours=h, minutes=m),
            f"81.60.0.{m % 3 + 1}",
            gateway,
            443,
            20_000,
            40_000,
        )
        for h in range(24 * 10)
        for m in (5, 25, 45)
    ]
    rows += [
        flow(
            last + dt.timedelta(hours=13, seconds=i),
            "77.60.9.9",
            gateway,
            443,
            1000,
            400_000_000 // 50,
        )
        for i in range(50)
    ]
    for i in range(8):  # relay on 7777, forwarded within a second, same bytes
        at = last + dt.timedelta(hours=2, minutes=9 * i)
        rows.append(flow(at, f"88.60.{i}.1", camera, 7777, 2_000, 30_000))
        rows.append(flow(at + dt.timedelta(seconds=1), camera, "95.60.0.1", 443, 2_010, 29_990))
    rows += [
        flow(last + dt.timedelta(hours=3, seconds=300 * i), host, "99.60.0.1", 8443, 300, 300)
        for i in range(100)
    ]
    rows.append(flow(last + dt.timedelta(hours=12), host, "99.60.0.2", 443, 80_000_000, 5_000))
    rows += [
        flow(
            last + dt.timedelta(hours=20, seconds=i),
            "66.60.0.1",
            gateway,
            1000 + i,
            60,
            0,
            state="REJ",
        )
        for i in range(15)
    ]
    rows.append(flow(last + dt.timedelta(hours=21), "66.60.0.1", gateway, 22, 5_000, 9_000))
    load(ws, rows, config)
    info = {f"81.60.0.{i}": ("US", 7922, "residential") for i in (1, 2, 3)}
    info |= {"77.60.9.9": ("KP", 131279, "hosting"), "99.60.0.2": ("BR", 28573, "residential")}
    ip_info(ws, info)
    ws.append(
        "assets",
        pa.Table.from_pylist(
            [
                {
                    "name": "edge-gw",
                    "cidr": f"{gateway}/32",
                    "start_key": key(gateway),
                    "end_key": key(gateway),
                    "role": "vpn-gateway",
                    "origin": "discovered",
                }
            ]
        ),
    )
    from orbwatch.baseline.flows import update_flow_baselines

    update_flow_baselines(ws, config)
