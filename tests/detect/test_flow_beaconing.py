"""Beaconing: the score matches RITA's formulas computed by hand on a constructed series."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest
from tests.detect.flowkit import T0, alerts, flow, load

from orbwatch.config import Config
from orbwatch.detect.beaconing import Beaconing
from orbwatch.store.workspace import Workspace

# A jittery 10-minute beacon: 30 gaps, and request sizes that vary a little.
GAPS = [600, 610, 590, 600, 640, 600, 580, 600, 605, 600] * 3
SIZES = [400, 410, 400, 395, 400, 420, 400, 400, 405, 390, 400] * 3  # 31 connections


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (the engine's percentile)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _statistical_score(values: list[float], default: float) -> float:
    q1, q2, q3 = (_quantile(values, q) for q in (0.25, 0.5, 0.75))
    skew = (q1 + q3 - 2 * q2) / (q3 - q1) if q3 - q1 >= 10 and q2 not in (q1, q3) else 0.0
    mad = _quantile([abs(v - q2) for v in values], 0.5)
    mad_score = max((q2 - mad) / q2, 0.0) if q2 >= 1 else default
    return ((1 - abs(skew)) + mad_score) / 2


def _expected_score(times: list[int], sizes: list[int]) -> float:
    ts = _statistical_score([float(g) for g in GAPS], 1.0)
    ds = _statistical_score([float(s) for s in sizes], 0.0)
    start, span = times[0], times[-1] - times[0]
    bins = [0] * 24
    for t in times:
        bins[min((t - start) * 24 // span, 23)] += 1
    mean = sum(bins) / 24
    cv = math.sqrt(sum((b - mean) ** 2 for b in bins) / 24) / mean
    cv_score = 0.0 if cv > 1 else 1 - cv
    used = [b for b in bins if b]
    width = math.ceil(max(used) * 0.05)
    levels: dict[int, int] = {}
    for b in used:
        levels[b // width * width] = levels.get(b // width * width, 0) + 1
    top2 = sum(sorted(levels.values(), reverse=True)[:2])
    bimodal = min(top2 / max(len(used) - 1, 1), 1.0) if len(used) >= 11 else 0.0
    hist = max(cv_score, bimodal)
    run = longest = 0
    for b in bins + bins:
        run = run + 1 if b else 0
        longest = max(longest, run)
    coverage = 1.0  # the pair spans the whole window here
    dur = max(coverage, min(min(longest, 24) / 12, 1.0)) if len(used) >= 6 else 0.0
    return 0.25 * (ts + ds + hist + dur)


def _series(n_gaps: int = len(GAPS)) -> tuple[list[int], list[int]]:
    start = int(T0.timestamp())
    times = [start]
    for gap in GAPS[:n_gaps]:
        times.append(times[-1] + gap)
    return times, SIZES[: len(times)]


def _load(ws: Workspace, times: list[int], sizes: list[int]) -> None:
    rows = [
        flow(dt.datetime.fromtimestamp(t, dt.UTC), "10.0.0.5", "45.33.1.1", 8443, s - 100, 100)
        for t, s in zip(times, sizes, strict=True)
    ]
    load(ws, rows)


def test_score_matches_hand_computed_rita_formulas(workspace: Workspace) -> None:
    times, sizes = _series()
    _load(workspace, times, sizes)
    expected = _expected_score(times, sizes)
    assert 0.7 < expected < 1.0
    found = alerts(workspace, Beaconing(min_score=0.5))
    assert len(found) == 1
    evidence = json.loads(found[0]["evidence"])
    assert evidence["beacon_score"] == pytest.approx(expected, abs=1e-4)
    assert found[0]["score"] == round(100 * expected, 1)
    assert found[0]["src_ip"] == "10.0.0.5" and found[0]["dst_ip"] == "45.33.1.1"
    assert "every ~600 s" in found[0]["title"]


def test_min_score_is_inclusive_at_the_threshold(workspace: Workspace) -> None:
    times, sizes = _series()
    _load(workspace, times, sizes)
    expected = _expected_score(times, sizes)
    assert alerts(workspace, Beaconing(min_score=expected - 1e-6))
    assert not alerts(workspace, Beaconing(min_score=expected + 1e-6))


def test_connection_gate(workspace: Workspace) -> None:
    times, sizes = _series(3)  # four connections, three non-zero gaps: scored
    _load(workspace, times, sizes)
    assert alerts(workspace, Beaconing(min_score=0.0))
    assert not alerts(workspace, Beaconing(min_score=0.0, min_connections=5))


def test_three_connections_are_never_scored(workspace: Workspace) -> None:
    times, sizes = _series(2)
    _load(workspace, times, sizes)
    assert not alerts(workspace, Beaconing(min_score=0.0, min_connections=3))


def test_random_traffic_stays_below_the_default_threshold(workspace: Workspace) -> None:
    """Poisson arrivals with random sizes: RITA's formulas still give ~0.76 (DUR and HIST reward
    any persistent pair), above RITA's 0.7 band; the default threshold leaves them out."""
    rng = np.random.default_rng(1)
    start = int(T0.timestamp())
    times = (start + np.cumsum(rng.exponential(1800, 40))).astype(int).tolist()
    _load(workspace, times, rng.integers(100, 50000, 40).tolist())
    assert not alerts(workspace, Beaconing())
    assert alerts(workspace, Beaconing(min_score=0.7))


def test_new_destination_modifier_needs_history(workspace: Workspace) -> None:
    times, sizes = _series()
    _load(workspace, times, sizes)
    expected = _expected_score(times, sizes)
    (alert,) = alerts(workspace, Beaconing(min_score=0.5))  # data begins today: no modifier
    assert json.loads(alert["evidence"])["modifiers"] == []
    load(workspace, [flow(T0 - dt.timedelta(days=10), "10.0.0.6", "52.1.1.1")])
    (alert,) = alerts(workspace, Beaconing(min_score=0.5))
    evidence = json.loads(alert["evidence"])
    assert evidence["modifiers"] == ["destination new within the last days (+)"]
    assert evidence["beacon_score"] == pytest.approx(min(expected + 0.15, 1.0), abs=1e-4)
    load(workspace, [flow(T0 - dt.timedelta(days=9), "10.0.0.6", "45.33.1.1")])
    (alert,) = alerts(workspace, Beaconing(min_score=0.5))  # known for 9 days: not new
    assert json.loads(alert["evidence"])["modifiers"] == []


def test_iot_device_polling_an_established_destination_is_lowered(workspace: Workspace) -> None:
    """A camera's vendor cloud: an IoT-subnet source, a destination known for over a week."""
    iot = Config(
        internal_networks=["10.0.0.0/8"],
        edge_assets=[{"name": "cameras", "addresses": ["10.0.0.0/24"], "role": "iot-subnet"}],
    )
    times, sizes = _series()
    _load(workspace, times, sizes)
    expected = _expected_score(times, sizes)
    load(workspace, [flow(T0 - dt.timedelta(days=9), "10.0.0.5", "45.33.1.1")])
    (alert,) = alerts(workspace, Beaconing(min_score=0.5), iot)
    evidence = json.loads(alert["evidence"])
    assert evidence["modifiers"] == ["IoT device polling an established destination (-)"]
    assert evidence["beacon_score"] == pytest.approx(expected - 0.15, abs=1e-4)
    assert alerts(workspace, Beaconing(min_score=0.5))  # outside an IoT subnet: unchanged


def test_iot_device_beaconing_to_a_new_destination_keeps_its_score(workspace: Workspace) -> None:
    iot = Config(
        internal_networks=["10.0.0.0/8"],
        edge_assets=[{"name": "cameras", "addresses": ["10.0.0.0/24"], "role": "iot-subnet"}],
    )
    times, sizes = _series()
    _load(workspace, times, sizes)
    load(workspace, [flow(T0 - dt.timedelta(days=10), "10.0.0.6", "52.1.1.1")])
    (alert,) = alerts(workspace, Beaconing(min_score=0.5), iot)
    assert json.loads(alert["evidence"])["modifiers"] == [
        "destination new within the last days (+)"
    ]
