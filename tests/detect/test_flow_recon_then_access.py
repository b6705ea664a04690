"""Scans and the scan-then-access chain, on hand-built flows and on the corpus's real port scans."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
from tests.detect.flowkit import CONFIG, T0, alerts, flow, load

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.detect.recon_then_access import ReconThenAccess
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

SCANNER = "91.92.93.94"


def _vertical(ports: int, start: dt.datetime = T0) -> list[dict]:
    return [
        flow(start + dt.timedelta(seconds=i), SCANNER, "10.0.0.1", 1000 + i, 60, 0, state="REJ")
        for i in range(ports)
    ]


def _login(ws: Workspace, ts: dt.datetime, outcome: str) -> None:
    ws.append(
        "logins",
        pa.table(
            {
                "ts": pa.array([ts], pa.timestamp("us", tz="UTC")),
                "user": ["alice"],
                "src_ip": [SCANNER],
                "src_key": [netaddr.key(SCANNER)],
                "service": ["vpn"],
                "outcome": [outcome],
            }
        ),
    )


def test_vertical_scan_threshold_edge(workspace: Workspace) -> None:
    load(workspace, _vertical(9))
    assert not alerts(workspace, ReconThenAccess())
    load(workspace, _vertical(1, T0 + dt.timedelta(minutes=5))[:1])  # port 1000 again: still 9
    assert not alerts(workspace, ReconThenAccess())
    assert len(alerts(workspace, ReconThenAccess(min_ports=9))) == 1


def test_horizontal_scan_threshold_edge(workspace: Workspace) -> None:
    rows = [
        flow(T0 + dt.timedelta(seconds=i), SCANNER, f"10.0.0.{i + 1}", 22, 60, 0, state="S0")
        for i in range(10)
    ]
    load(workspace, rows[:9])
    assert not alerts(workspace, ReconThenAccess())
    load(workspace, rows[9:])
    (alert,) = alerts(workspace, ReconThenAccess())
    assert alert["severity"] == "info"
    assert json.loads(alert["evidence"])["max_targets_on_one_port"] == 10


def test_scan_then_login_is_high(workspace: Workspace) -> None:
    load(workspace, _vertical(12))
    _login(workspace, T0 - dt.timedelta(hours=1), "success")  # before the scan: not a chain
    _login(workspace, T0 + dt.timedelta(hours=2), "failure")
    assert alerts(workspace, ReconThenAccess())[0]["severity"] == "info"
    _login(workspace, T0 + dt.timedelta(hours=3), "success")
    (alert,) = alerts(workspace, ReconThenAccess())
    assert alert["severity"] == "high"
    assert alert["user"] == "alice"
    assert "logged in successfully 1 time(s)" in alert["explanation"]


def test_scan_then_data_connection_is_medium(workspace: Workspace) -> None:
    load(workspace, _vertical(12))
    load(workspace, [flow(T0 + dt.timedelta(hours=1), SCANNER, "10.0.0.1", 443, 900, 5000)])
    (alert,) = alerts(workspace, ReconThenAccess())
    assert alert["severity"] == "medium"
    assert alert["dst_ip"] == "10.0.0.1"
    assert json.loads(alert["evidence"])["access_flows"] == 1


def _ingest(ws: Workspace, path: Path, config: Config) -> None:
    assert Ingestor(ws, config).ingest(str(path)).rows > 0


def test_corpus_port_scans_are_found(workspace: Workspace, corpus: Path) -> None:
    zeek = corpus / "zeek"
    for name in ("slips_port-scans_vertical__conn.log", "slips_port-scans_horizontal__conn.log"):
        _ingest(workspace, zeek / name, Config())
    found = {a["entity"]: a for a in alerts(workspace, ReconThenAccess(), Config())}
    assert set(found) == {"192.168.1.9", "10.0.2.112"}
    vertical = json.loads(found["192.168.1.9"]["evidence"])
    assert vertical["max_ports_on_one_target"] == 44  # nmap against scanme.nmap.org
    assert vertical["example_target"] == "45.33.32.156"
    horizontal = json.loads(found["10.0.2.112"]["evidence"])
    assert horizontal["max_targets_on_one_port"] >= 10 and "horizontal" in horizontal["kind"]
    assert {a["severity"] for a in found.values()} == {"medium"}  # internal scanners


def test_corpus_scan_seen_from_the_scanned_side(workspace: Workspace, corpus: Path) -> None:
    """Declare the scanned host as ours: the same capture is an inbound scan of our edge."""
    config = Config(internal_networks=["45.33.32.0/24"])
    _ingest(workspace, corpus / "zeek" / "slips_port-scans_vertical__conn.log", config)
    (alert,) = alerts(workspace, ReconThenAccess(), config)
    assert alert["entity"] == "192.168.1.9" and alert["severity"] == "info"
    assert CONFIG  # the hand-built tests' config stays untouched
