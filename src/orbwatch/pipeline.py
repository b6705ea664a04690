"""The analysis after ingest, as one call: enrich -> baseline -> detect -> campaigns.

``orbwatch analyse`` and the demo run this; each step is also its own command (``orbwatch
enrich``, ``baseline``, ``detect``, ``campaigns``) for people who want to run them one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orbwatch.alerts.campaigns import build_campaigns
from orbwatch.alerts.suppress import SuppressionRule
from orbwatch.baseline import update_baselines
from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.run import DetectorRun
from orbwatch.detect.run import run as run_detectors
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.enrich.geo import EnrichResult, enrich_workspace
from orbwatch.store.workspace import Workspace

STEPS = ("enrich", "baseline", "detect", "campaigns")


@dataclass
class Analysis:
    """What each step did, and how long it took."""

    enrich: EnrichResult | None = None
    baselines: dict[str, dict[str, int]] = field(default_factory=dict)
    detectors: list[DetectorRun] = field(default_factory=list)
    campaigns: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def analyse(
    ws: Workspace,
    config: Config,
    *,
    only: list[str] | None = None,
    suppressions: list[SuppressionRule] | None = None,
    on_step: Callable[[str], Any] | None = None,
) -> Analysis:
    """Run every step after ingest on the embedded engine and return what each did."""
    result = Analysis()

    def step(name: str, work: Callable[[], None]) -> None:
        if on_step is not None:
            on_step(name)
        started = time.monotonic()
        work()
        result.seconds[name] = time.monotonic() - started

    def enrich() -> None:
        result.enrich = enrich_workspace(ws, config)

    def baseline() -> None:
        result.baselines = update_baselines(ws, config)

    def detect() -> None:
        engine = DuckDBEngine(ws)
        result.detectors = run_detectors(ws, DetectContext(config, engine), only, suppressions)

    def campaigns() -> None:
        result.campaigns = build_campaigns(ws, config).num_rows

    for name, work in zip(STEPS, (enrich, baseline, detect, campaigns), strict=True):
        step(name, work)
    return result
