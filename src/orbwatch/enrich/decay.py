"""Indicator decay: how much an indicator is still worth, as an Ibis expression for any engine.

The model is MISP's polynomial decaying model (MISP ``DecayingModel``, "Polynomial" formula)::

    score(t) = base * (1 - (t / tau) ^ (1 / delta)),   clipped at 0

with ``t`` the age of the indicator since its last sighting (``intel.last_seen``), ``tau`` the
lifetime after which the score is 0 and ``delta`` the speed of decay (delta > 1 drops fast at
first, then slowly). An indicator whose score is under ``threshold`` is *expired*: it no longer
matches and is not exported to blocklists. So is one past its feed's ``valid_until``.

Defaults (all configurable in ``[intel]``, see :class:`orbwatch.config.IntelSettings`):

* ``delta = 2`` and ``threshold = 30``: MISP's NIDS model (tau 120 days, delta 2, threshold 30,
  base 80 expires an indicator after about 47 days);
* ``base`` = the indicator's confidence (0-100) as the feed gave it (IPsum: from its count of
  lists, :mod:`orbwatch.enrich.feeds.ipsum`), else ``default_confidence`` = 80, MISP's base;
* ``tau`` per class from public reporting on covert-network node lifetimes: compromised SOHO
  devices of Raptor Train ~17 days, its VPS tiers ~77 days (Lumen Black Lotus Labs, 2024);
  CovertNetwork-1658 / Quad7 nodes ~90 days on average (Microsoft, Sekoia, Team Cymru); the
  other classes keep MISP's NIDS 120 days (:data:`orbwatch.config.DEFAULT_TAU_DAYS`).

Age is counted in whole hours from ``now`` rounded down to the hour, so that two engines
running the same detection a few seconds apart compute the same scores.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.config import IntelSettings
from orbwatch.store.workspace import Workspace

SECONDS_PER_HOUR = 3600
HOURS_PER_DAY = 24.0


def reference_time(now: dt.datetime) -> dt.datetime:
    """``now`` rounded down to the hour (see the module docstring)."""
    return now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def tau_days(intel_class: ir.StringValue, settings: IntelSettings) -> ir.FloatingValue:
    """Lifetime in days of each indicator's class (``unknown`` for classes not configured)."""
    tau = settings.tau()
    branches = [(intel_class == name, ibis.literal(days)) for name, days in tau.items()]
    return ibis.cases(*branches, else_=ibis.literal(tau["unknown"]))


def with_decay(intel: ir.Table, settings: IntelSettings, now: dt.datetime) -> ir.Table:
    """``intel`` plus ``base``, ``age_days``, ``tau_days``, ``decayed_score``, ``live``.

    ``live`` is false when the score is under the threshold, the feed's ``valid_until`` has
    passed, or ``orbwatch intel expire --mark`` marked the indicator.
    """
    ref = reference_time(now)
    ref_epoch = int(ref.timestamp())
    base = intel.confidence.fill_null(settings.default_confidence).cast("float64")
    seen_epoch = intel.last_seen.epoch_seconds().cast("int64")
    age_hours = ((ibis.literal(ref_epoch) - seen_epoch) / SECONDS_PER_HOUR).floor()
    age_days = ibis.greatest(age_hours, 0).cast("float64") / HOURS_PER_DAY
    tau = tau_days(intel.intel_class, settings)
    ratio = ibis.least(age_days / tau, 1.0)
    raw = base * (1.0 - ratio ** (1.0 / settings.delta))
    past_validity = intel.valid_until.notnull() & (
        intel.valid_until.epoch_seconds().cast("int64") < ref_epoch
    )
    decayed = past_validity.ifelse(0.0, ibis.greatest(raw, 0.0)).round(2)
    live = (decayed >= settings.threshold) & (decayed > 0) & intel.expired_at.isnull()
    return intel.mutate(
        base=base, age_days=age_days, tau_days=tau, decayed_score=decayed, live=live
    )


def expires_after_days(base: float, tau: float, delta: float, threshold: float) -> float:
    """Days after the last sighting at which ``base`` decays to ``threshold``.

    Solving ``threshold = base * (1 - (t / tau)^(1/delta))`` for ``t`` gives
    ``t = tau * (1 - threshold / base)^delta``; an indicator whose base is not above the
    threshold is expired from the start (0 days).
    """
    if base <= threshold or base <= 0:
        return 0.0
    return float(tau * (1.0 - threshold / base) ** delta)


def expiry_times(decayed: pa.Table, settings: IntelSettings) -> pa.Array:
    """When each row of an executed :func:`with_decay` table expires: the earlier of its decay
    reaching the threshold (:func:`expires_after_days`, vectorised) and its ``valid_until``.
    This is the timeout blocklist exports give each entry."""
    base = decayed["base"].to_numpy(zero_copy_only=False).astype(float)
    tau = decayed["tau_days"].to_numpy(zero_copy_only=False).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(
            base > settings.threshold,
            tau * np.clip(1.0 - settings.threshold / base, 0.0, 1.0) ** settings.delta,
            0.0,
        )
    seen = pc.cast(decayed["last_seen"], pa.timestamp("us", tz="UTC"))
    offset = pa.array(np.round(days * 86_400).astype("int64") * 1_000_000, pa.duration("us"))
    by_decay = pc.add(seen, offset)
    until = pc.cast(decayed["valid_until"], pa.timestamp("us", tz="UTC"))
    earlier = pc.if_else(pc.fill_null(pc.less(until, by_decay), False), until, by_decay)
    return pc.cast(earlier, pa.timestamp("us", tz="UTC"))


def decayed_intel(ws: Workspace, settings: IntelSettings, now: dt.datetime) -> pa.Table:
    """Every indicator of the workspace with its decay columns (on the embedded engine)."""
    from orbwatch.engines.duckdb_engine import DuckDBEngine

    engine = DuckDBEngine(ws)
    return engine.execute(with_decay(engine.table("intel"), settings, now))


#: Upper bounds (days) of the age classes ``orbwatch intel stats`` reports.
AGE_BINS = ((1, "< 1 day"), (7, "1-7 days"), (30, "7-30 days"), (90, "30-90 days"))


def intel_stats(ws: Workspace, settings: IntelSettings, now: dt.datetime) -> dict[str, Any]:
    """Counts per list and per class (live and expired) and the age distribution."""
    decayed = decayed_intel(ws, settings, now)
    ages = decayed["age_days"]
    label = pa.array(["> 90 days"] * decayed.num_rows, pa.string())
    for upper, name in reversed(AGE_BINS):
        label = pc.if_else(pc.less(ages, float(upper)), name, label)
    table = decayed.select(["list_name", "intel_class", "live", "decayed_score"]).append_column(
        "age", label
    )

    def counts(keys: list[str]) -> list[dict[str, Any]]:
        grouped = table.group_by(keys).aggregate(
            [("live", "sum"), ("live", "count"), ("decayed_score", "mean")]
        )
        out = []
        for row in grouped.to_pylist():
            total, live = row["live_count"], int(row["live_sum"] or 0)
            entry = {k: row[k] for k in keys}
            entry.update(
                total=total,
                live=live,
                expired=total - live,
                mean_score=round(row["decayed_score_mean"] or 0.0, 1),
            )
            out.append(entry)
        return sorted(out, key=lambda r: tuple(str(r[k]) for k in keys))

    order = [name for _, name in AGE_BINS] + ["> 90 days"]
    by_age = {r["age"]: r for r in counts(["age"])}
    return {
        "by_list": counts(["list_name"]),
        "by_class": counts(["intel_class"]),
        "by_age": [by_age[a] for a in order if a in by_age],
    }


def expire(ws: Workspace, settings: IntelSettings, now: dt.datetime, *, delete: bool) -> pa.Table:
    """Expired indicators (decayed under the threshold or past ``valid_until``), removed with
    their buckets (``delete``) or marked with ``expired_at``; returns what went."""
    decayed = decayed_intel(ws, settings, now)
    gone = decayed.filter(
        pc.and_(pc.invert(decayed["live"]), pc.is_null(decayed["expired_at"]))
    ).select(["intel_id", "list_name", "indicator", "intel_class", "decayed_score", "last_seen"])
    if gone.num_rows == 0:
        return gone
    ws.con.register("_expired", gone)
    try:
        with ws.transaction():
            if delete:
                ws.con.execute(
                    "DELETE FROM intel_buckets WHERE intel_id IN (SELECT intel_id FROM _expired)"
                )
                ws.con.execute(
                    "DELETE FROM intel WHERE intel_id IN (SELECT intel_id FROM _expired)"
                )
            else:
                ws.con.execute(
                    "UPDATE intel SET expired_at = ? WHERE intel_id IN "
                    "(SELECT intel_id FROM _expired)",
                    [now],
                )
    finally:
        ws.con.unregister("_expired")
    return gone
