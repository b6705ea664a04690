"""`orbwatch demo` (behind `make demo`) runs the whole pipeline on the simulator and scores it."""

from __future__ import annotations

import json
from pathlib import Path

from orbwatch.report.terminal import console
from orbwatch.simulate.demo import run_demo


def test_demo_runs_the_pipeline_and_scores_it_against_the_labels(tmp_path: Path) -> None:
    result = run_demo(tmp_path, seed=7, console=console())
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())
    q = result.evaluation.overall
    assert (tmp_path / "data" / "labels.csv").exists()
    assert result.report.stat().st_size > 1_000_000  # Plotly and the map are embedded
    assert q.alerts == len(alerts) > 0
    assert evaluation["overall"]["recall"] == round(q.recall, 4)
    assert 0 < q.caught <= q.labelled
    # The feed lists last month's relays: on its own it misses much of the campaign.
    feed = result.evaluation.blocklist
    assert feed is not None and feed.recall < q.recall
    # Internal addresses are never reported as malicious infrastructure.
    feed_hits = {a["entity"] for a in alerts if a["detector"] == "known_bad_infrastructure"}
    assert not any(str(e).startswith("10.") for e in feed_hits)
