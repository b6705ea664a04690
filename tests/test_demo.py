"""`orbwatch demo` (behind `make demo`) finds the simulated campaign it was built to show."""

from __future__ import annotations

import json
from pathlib import Path

from orbwatch.report.terminal import console
from orbwatch.simulate.demo import run_demo


def test_demo_catches_the_listed_part_of_the_campaign(tmp_path: Path) -> None:
    run_demo(tmp_path, seed=7, console=console())
    alerts = json.loads((tmp_path / "alerts.json").read_text())
    truth = json.loads((tmp_path / "ground-truth.json").read_text())
    by_entity = {a["entity"]: a for a in alerts}
    # Every C2 relay is on the feed; both beaconing cameras are caught talking to them.
    beaconing = {a["src_ip"] for a in alerts if a["entity"] in truth["c2"]}
    assert beaconing == set(truth["compromised"][:2])
    assert {by_entity[c]["severity"] for c in truth["c2"]} == {"high"}
    # Only a quarter of the relays were listed: the feed cannot see the rest.
    caught = set(by_entity) & set(truth["relays"])
    assert 0 < len(caught) <= len(truth["relays"]) // 4
    # The feed's bogon entries (10.0.0.0/8) never turn internal hosts into "infrastructure".
    assert not any(entity.startswith("10.") for entity in by_entity)
