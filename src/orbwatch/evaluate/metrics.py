"""Detection quality of a workspace's alerts against ground truth, per detector and overall.

Matching rule (entity level, stated once so every number below means the same): an alert
*flags* the values of its ``entity``, ``src_ip``, ``dst_ip`` and ``user``, and the addresses and
accounts that an aggregated alert lists in its evidence under :data:`EVIDENCE_LISTS` (a spray
alert names its sources there). A labelled entity is
*caught* when some alert flags its value. An alert is *true* when it flags at least one labelled
entity. Then:

* recall = caught labelled entities / labelled entities;
* precision = true alerts / alerts;
* F1 = their harmonic mean;
* false positives per 1,000 entities = flagged values that are not labelled, per 1,000 benign
  entities observed in the workspace (addresses in flows and logins, and accounts);
* time to first detection = earliest evidence of the first true alert minus the earliest
  labelled activity (what a continuous deployment would at best have achieved).

The *static blocklist baseline* is what a user with only the loaded threat lists would have
caught: labelled addresses that appear in the data and that some indicator covers, against
every address in the data that an indicator covers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.store.workspace import Workspace

ALERT_VALUES = ("entity", "src_ip", "dst_ip", "user")
#: Evidence keys whose list values are entities the alert is about (docs/detectors.md).
EVIDENCE_LISTS = ("sources", "relays", "users", "targets")


def flagged_values(alert: dict[str, Any]) -> set[str]:
    """Every entity value one alert is about (see the matching rule above)."""
    values = {str(alert[k]) for k in ALERT_VALUES if alert.get(k)}
    try:
        evidence = json.loads(alert.get("evidence") or "{}")
    except ValueError:
        evidence = {}
    if isinstance(evidence, dict):
        for key in EVIDENCE_LISTS:
            listed = evidence.get(key)
            if isinstance(listed, list):
                values |= {str(v) for v in listed if isinstance(v, str | int)}
    return values


@dataclass
class Quality:
    """Entity-level quality of one set of alerts."""

    name: str
    alerts: int = 0
    true_alerts: int = 0
    labelled: int = 0
    caught: int = 0
    false_entities: int = 0
    benign_entities: int = 0
    first_detection_s: float | None = None

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 0.0

    @property
    def recall(self) -> float:
        return self.caught / self.labelled if self.labelled else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def fp_per_1000(self) -> float:
        return 1000 * self.false_entities / self.benign_entities if self.benign_entities else 0.0

    def as_row(self) -> dict[str, Any]:
        return asdict(self) | {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "fp_per_1000": round(self.fp_per_1000, 3),
        }


@dataclass
class Evaluation:
    """Overall and per-detector quality, recall per phase, and the blocklist baseline."""

    overall: Quality
    detectors: list[Quality] = field(default_factory=list)
    phases: dict[str, tuple[int, int]] = field(default_factory=dict)
    blocklist: Quality | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": self.overall.as_row(),
            "detectors": [q.as_row() for q in self.detectors],
            "phases": {k: {"caught": c, "labelled": n} for k, (c, n) in self.phases.items()},
            "blocklist": self.blocklist.as_row() if self.blocklist else None,
        }


def _observed(ws: Workspace) -> set[str]:
    rows = ws.con.execute(
        "SELECT src_ip FROM flows UNION SELECT dst_ip FROM flows UNION "
        "SELECT src_ip FROM logins UNION SELECT user FROM logins"
    ).fetchall()
    return {r[0] for r in rows if r[0]}


def _quality(
    name: str,
    alerts: list[dict[str, Any]],
    truth: dict[str, dt.datetime | None],
    start: dt.datetime | None,
    benign: int,
) -> Quality:
    flagged: set[str] = set()
    true_alerts = 0
    first: dt.datetime | None = None
    for alert in alerts:
        values = flagged_values(alert)
        flagged |= values
        if values & truth.keys():
            true_alerts += 1
            seen = alert.get("first_seen")
            if seen is not None and (first is None or seen < first):
                first = seen
    caught = flagged & truth.keys()
    delay = None
    if first is not None and start is not None:  # evidence can predate a coarse label time
        delay = max(0.0, (first - start).total_seconds())
    return Quality(
        name=name,
        alerts=len(alerts),
        true_alerts=true_alerts,
        labelled=len(truth),
        caught=len(caught),
        false_entities=len(flagged - truth.keys()),
        benign_entities=benign,
        first_detection_s=delay,
    )


def blocklist_baseline(ws: Workspace, truth: pa.Table) -> Quality:
    """What the loaded threat lists alone would have caught among the addresses in the data."""
    observed = ws.query(
        "SELECT DISTINCT ip FROM (SELECT src_ip AS ip FROM flows UNION ALL "
        "SELECT dst_ip FROM flows UNION ALL SELECT src_ip FROM logins) WHERE ip IS NOT NULL"
    )
    keys = netaddr.keys(observed["ip"])
    keyed = pa.table(
        {
            "ip": observed["ip"],
            "k": keys,
            "bucket": netaddr.bucket_of_key(keys),
            "family": pc.if_else(pc.starts_with(keys, netaddr.V4_MAPPED_PREFIX), 4, 6),
        }
    )
    ws.con.register("_observed", keyed)
    try:
        listed = {
            r[0]
            for r in ws.con.execute(
                "SELECT DISTINCT o.ip FROM _observed o JOIN intel_buckets b"
                " ON b.bucket = o.bucket OR b.bucket = ? JOIN intel i USING (intel_id)"
                " WHERE i.family = o.family AND o.k BETWEEN i.start_key AND i.end_key",
                [netaddr.WIDE_BUCKET],
            ).fetchall()
        }
    finally:
        ws.con.unregister("_observed")
    ips = {
        v
        for v, t in zip(truth["value"].to_pylist(), truth["entity_type"].to_pylist(), strict=True)
        if t == "ip"
    }
    in_data = ips & {str(v) for v in observed["ip"].to_pylist()}
    return Quality(
        name="static blocklist",
        alerts=len(listed),
        true_alerts=len(listed & ips),
        labelled=len(in_data),
        caught=len(listed & in_data),
        false_entities=len(listed - ips),
        benign_entities=max(observed.num_rows - len(in_data), 0),
    )


_ALERTS = (
    "SELECT detector, entity, src_ip, dst_ip, user, first_seen, evidence FROM alerts "
    "WHERE suppressed_by IS NULL"
)


def _truth_times(
    ws: Workspace, truth: pa.Table
) -> tuple[dict[str, dt.datetime | None], dt.datetime | None, int]:
    """Each labelled value's first time, the earliest of them, and the benign entity count."""
    truth_first = dict(
        zip(truth["value"].to_pylist(), truth["first_seen"].to_pylist(), strict=True)
    )
    start = min((t for t in truth_first.values() if t is not None), default=None)
    return truth_first, start, len(_observed(ws) - truth_first.keys())


def detectors_quality(
    ws: Workspace, truth: pa.Table, name: str, detectors: Sequence[str]
) -> Quality:
    """The quality of the active alerts of ``detectors`` alone, against ``truth``."""
    alerts = ws.query(_ALERTS + " AND detector IN (SELECT unnest(?))", [list(detectors)])
    return _quality(name, alerts.to_pylist(), *_truth_times(ws, truth))


def evaluate(ws: Workspace, truth: pa.Table) -> Evaluation:
    """Score every active alert of ``ws`` against ``truth`` (see :mod:`labels`)."""
    values = truth["value"].to_pylist()
    truth_first, start, benign = _truth_times(ws, truth)
    alerts = ws.query(_ALERTS).to_pylist()
    result = Evaluation(overall=_quality("all detectors", alerts, truth_first, start, benign))
    for detector in sorted({a["detector"] for a in alerts}):
        chosen = [a for a in alerts if a["detector"] == detector]
        result.detectors.append(_quality(detector, chosen, truth_first, start, benign))
    flagged = set().union(*(flagged_values(a) for a in alerts)) if alerts else set()
    phases: dict[str, list[str]] = {}
    for value, joined in zip(values, truth["phase"].to_pylist(), strict=True):
        for phase in (joined or "unknown").split("+"):  # an entity can act in several phases
            phases.setdefault(phase, []).append(value)
    result.phases = {p: (len(set(v) & flagged), len(set(v))) for p, v in sorted(phases.items())}
    result.blocklist = blocklist_baseline(ws, truth)
    return result
