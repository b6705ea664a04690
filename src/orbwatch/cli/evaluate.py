"""``orbwatch evaluate``: detection quality of the workspace's alerts against ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orbwatch.cli.main import JsonOpt, _emit_json, _open, out
from orbwatch.evaluate.labels import FORMATS, read_labels
from orbwatch.evaluate.metrics import Quality, evaluate
from orbwatch.report.terminal import table

COLUMNS = ["", "alerts", "true", "labelled", "caught", "precision", "recall", "F1", "FP/1k", "TTD"]


def _row(q: Quality) -> tuple[object, ...]:
    ttd = "" if q.first_detection_s is None else f"{q.first_detection_s / 3600:.1f} h"
    return (
        q.name,
        q.alerts,
        q.true_alerts,
        q.labelled,
        q.caught,
        f"{q.precision:.3f}",
        f"{q.recall:.3f}",
        f"{q.f1:.3f}",
        f"{q.fp_per_1000:.2f}",
        ttd,
    )


def evaluate_command(
    labels: Annotated[Path, typer.Option("--labels", help="Ground truth file.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"Labels format: {', '.join(FORMATS)} (default: detect)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Precision, recall, F1, false positives and time to detection, against ground truth."""
    truth = read_labels(labels, fmt)
    with _open(read_only=True) as ws:
        result = evaluate(ws, truth)
    if as_json:
        _emit_json(result.as_dict())
        return
    rows = [_row(result.overall), *(_row(q) for q in result.detectors)]
    if result.blocklist is not None:
        rows.append(_row(result.blocklist))
    out.print(table("detection quality (entity level)", COLUMNS, rows))
    out.print(
        table(
            "recall per phase",
            ["phase", "caught", "labelled"],
            [(p, c, n) for p, (c, n) in result.phases.items()],
        )
    )
    out.print(
        "TTD: time from the first labelled activity to the first evidence of a true alert. "
        "'static blocklist': the loaded threat lists alone, on the addresses in the data."
    )
