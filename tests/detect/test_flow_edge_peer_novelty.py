"""New countries, ASNs and network classes among an asset's peers, weighted by org-wide rarity."""

from __future__ import annotations

import datetime as dt
import json

from tests.detect.flowkit import T0, alerts, flow, ip_info, load

from orbwatch.baseline.flows import update_flow_baselines
from orbwatch.config import Config
from orbwatch.detect.edge_peer_novelty import EdgePeerNovelty
from orbwatch.store.workspace import Workspace

CAMERA, LAPTOP = "10.20.0.5", "10.1.1.1"
CONFIG = Config(
    internal_networks=["10.0.0.0/8"],
    home_countries=["US"],
    edge_assets=[{"name": "cameras", "addresses": ["10.20.0.0/24"], "role": "iot-subnet"}],
)
PEERS = {
    "52.0.0.1": ("US", 16509, "hosting"),  # the camera vendor's cloud
    "52.9.0.1": ("US", 14618, "hosting"),  # same country and class, another AS
    "85.0.0.1": ("DE", 3320, "hosting"),  # a German cloud the laptop also uses
    "88.0.0.1": ("DE", 24940, "hosting"),  # another German cloud, nobody's AS
    "5.5.5.5": ("RU", 12389, "residential"),  # a home router abroad
}
NOW = T0 + dt.timedelta(days=10, hours=12)


def _history(ws: Workspace) -> None:
    rows = [flow(T0 + dt.timedelta(days=d), CAMERA, "52.0.0.1", 443) for d in range(10)]
    rows += [flow(T0 + dt.timedelta(days=d), LAPTOP, "85.0.0.1", 443) for d in range(10)]
    load(ws, rows, CONFIG)
    ip_info(ws, PEERS)


def _run(ws: Workspace, peer: str, detector: EdgePeerNovelty | None = None) -> list[dict]:
    load(ws, [flow(NOW, CAMERA, peer, 443)], CONFIG)
    update_flow_baselines(ws, CONFIG)
    return alerts(ws, detector or EdgePeerNovelty(), CONFIG)


def test_residential_peer_abroad_is_high(workspace: Workspace) -> None:
    _history(workspace)
    (alert,) = _run(workspace, "5.5.5.5")
    assert alert["severity"] == "high" and alert["entity"] == "cameras"
    evidence = json.loads(alert["evidence"])
    assert evidence["novelty"] == 2.5  # country 1 + class 1 + AS 0.5, nobody else uses them
    assert {v["value"] for v in evidence["new_values"]} == {"RU", "AS12389", "residential"}


def test_new_asn_alone_stays_below_the_threshold(workspace: Workspace) -> None:
    _history(workspace)
    assert _run(workspace, "52.9.0.1") == []


def test_new_asn_alone_at_a_lower_threshold(workspace: Workspace) -> None:
    _history(workspace)
    assert _run(workspace, "52.9.0.1", EdgePeerNovelty(min_score=0.5))


def test_prevalence_halves_the_weight(workspace: Workspace) -> None:
    """DE is used by one of two internal hosts: country 1 x 0.5 + new AS 0.5 x 1 = 1.0."""
    _history(workspace)
    (alert,) = _run(workspace, "88.0.0.1")
    evidence = json.loads(alert["evidence"])
    assert evidence["novelty"] == 1.0
    assert alert["severity"] == "high"  # DE is outside the home countries


def test_young_asset_is_not_judged(workspace: Workspace) -> None:
    _history(workspace)
    assert _run(workspace, "5.5.5.5", EdgePeerNovelty(min_history_days=11)) == []


def test_prevalence_below_the_threshold(workspace: Workspace) -> None:
    """The laptop's own German cloud: country 0.5 + AS 0.5 x 0.5 = 0.75."""
    _history(workspace)
    assert _run(workspace, "85.0.0.1") == []
