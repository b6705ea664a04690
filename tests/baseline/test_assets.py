"""The edge map: configured assets with their traffic, and assets discovered from flows."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

from tests.detect.flowkit import T0, flow, load
from typer.testing import CliRunner

from orbwatch.baseline.assets import toml_snippet, update_assets
from orbwatch.cli.main import app
from orbwatch.config import Config
from orbwatch.store.workspace import Workspace

CONFIG = Config(
    internal_networks=["10.0.0.0/8"],
    edge_assets=[{"name": "hq-vpn", "addresses": ["10.0.0.1"], "role": "vpn-gateway"}],
)


def _traffic(ws: Workspace, vpn_sources: int = 20) -> None:
    rows = []
    for i in range(vpn_sources):  # a forgotten SSL-VPN portal and IKE on 10.0.0.2
        at = T0 + dt.timedelta(minutes=i)
        rows.append(flow(at, f"81.0.{i}.1", "10.0.0.2", 443, 900, 4000))
        rows.append(flow(at, f"81.0.{i}.1", "10.0.0.2", 500, 300, 300, proto="udp"))
        rows.append(flow(at, f"81.0.{i}.1", "10.0.0.1", 443, 900, 4000))  # the configured one
    for cam in range(2, 6):  # cameras: one cloud peer each, one port, never called
        for k in range(5):
            rows.append(flow(T0 + dt.timedelta(hours=k), f"10.20.0.{cam}", "52.1.1.1", 443))
    rows.append(flow(T0, "10.9.9.9", "52.1.1.1", 443) | {"nat_src_ip": "4.78.20.1"})
    rows.append(flow(T0, "10.9.9.8", "52.1.1.1", 443) | {"nat_src_ip": "4.78.20.1"})
    load(ws, rows, CONFIG)


def test_discovers_remote_access_router_and_iot(workspace: Workspace) -> None:
    _traffic(workspace)
    views = {v.name: v for v in update_assets(workspace, CONFIG)}
    vpn = views["vpn-gateway-10.0.0.2"]
    assert vpn.services == [443, 500] and vpn.peers == 20 and vpn.origin == "discovered"
    assert views["iot-10.20.0.0/24"].role == "iot-subnet"
    assert views["router-4.78.20.1"].role == "router"
    assert views["hq-vpn"].origin == "config" and views["hq-vpn"].services == [443]
    stored = workspace.query("SELECT name, origin FROM assets ORDER BY name").to_pylist()
    assert {r["origin"] for r in stored} == {"config", "discovered"}
    assert len(stored) == 4


def test_source_threshold_edge(workspace: Workspace) -> None:
    _traffic(workspace, vpn_sources=19)
    names = {v.name for v in update_assets(workspace, CONFIG)}
    assert "vpn-gateway-10.0.0.2" not in names


def test_snippet_is_valid_config(workspace: Workspace) -> None:
    _traffic(workspace)
    snippet = toml_snippet(update_assets(workspace, CONFIG))
    parsed = Config.model_validate(tomllib.loads(snippet))
    assert {a.name for a in parsed.edge_assets} == {
        "vpn-gateway-10.0.0.2",
        "iot-10.20.0.0/24",
        "router-4.78.20.1",
    }


def test_cli_assets(tmp_path: Path) -> None:
    ws_path = tmp_path / "ws.duckdb"
    with Workspace.open(ws_path) as ws:
        _traffic(ws)
    config = tmp_path / "orbwatch.toml"
    config.write_text(
        'internal_networks = ["10.0.0.0/8"]\n[[edge_assets]]\nname = "hq-vpn"\n'
        'addresses = ["10.0.0.1"]\nrole = "vpn-gateway"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["--workspace", str(ws_path), "--config", str(config), "assets"]
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "[[edge_assets]]" in result.output and "vpn-gateway-10.0.0.2" in result.output
    as_json = json.loads(runner.invoke(app, [*base, "--json"]).output)
    assert {a["origin"] for a in as_json} == {"config", "discovered"}
