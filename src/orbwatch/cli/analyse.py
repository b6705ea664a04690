"""``orbwatch baseline`` and ``orbwatch analyse``: the steps between ingest and the report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from orbwatch.baseline import update_baselines
from orbwatch.cli.main import (
    DetectorsOpt,
    JsonOpt,
    SuppressionsOpt,
    _config,
    _emit_json,
    _open,
    _progress,
    out,
    print_detector_runs,
    suppression_rules,
)
from orbwatch.pipeline import STEPS, analyse
from orbwatch.report.terminal import table


def baseline(
    rebuild: Annotated[
        bool, typer.Option(help="Recompute from all data (after config or late data changes).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Update the edge map, the login profiles and the flow baselines incrementally."""
    cfg = _config()
    with _open() as ws:
        counts = update_baselines(ws, cfg, rebuild=rebuild)
    if as_json:
        _emit_json(counts)
        return
    rows = [(name, k, v) for name, part in counts.items() for k, v in part.items()]
    out.print(table("baselines", ["baseline", "what", "count"], rows))


def analyse_command(
    detector: DetectorsOpt = None,
    suppressions: SuppressionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Enrich, update baselines, detect and group campaigns: everything after ingest."""
    cfg = _config()
    rules = suppression_rules(suppressions)
    with _open() as ws, _progress() as progress:
        task = progress.add_task("analyse", total=len(STEPS))

        def on_step(name: str) -> None:
            progress.update(task, description=name, advance=0 if name == STEPS[0] else 1)

        result = analyse(ws, cfg, only=detector, suppressions=rules, on_step=on_step)
        progress.update(task, completed=len(STEPS), description="done")
    if as_json:
        _emit_json(asdict(result))
        return
    print_detector_runs("detectors", result.detectors)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    out.print(f"{result.campaigns} campaigns; {timing}")
