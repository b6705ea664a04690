"""Machine-learning anomaly: an isolation forest over each internal address's hourly profile.

Rationale
    The advisory recommends ML anomaly detection on edge traffic because covert networks
    change their nodes daily while the victim's behaviour changes less. Rules catch the shapes
    we can name (beacons, relays, spikes); an isolation forest catches combinations nobody
    wrote a rule for: a camera whose peers suddenly sit in many ASNs, all residential, with
    more bytes out than in. Each internal address gets one feature vector per hour; the forest
    is trained on the hours before the detection window (the baseline period) and scores the
    hours inside it.

ATT&CK
    T1584.005 (Compromise Infrastructure: Botnet), T1090 (Proxy), T1071 (Application Layer
    Protocol).

Inputs
    ``flows`` and ``ip_info`` (ASN, country, network class of peers).

How it decides
    The engine aggregates, per internal address and hour, the features (all as engine
    expressions, identical on every engine): flows, bytes and distinct peers (log-scaled), the
    share of peers never contacted by that address in earlier hours (new-peer ratio), the
    Shannon entropy of the peers' ASNs and countries, the share of flows with residential or
    mobile peers, distinct service ports (log), and log(bytes in) - log(bytes out). Scoring runs
    in Python with scikit-learn's ``IsolationForest`` on those aggregated rows (not per flow),
    trained on at most ``max_training_rows`` baseline hours drawn with ``seed``; the rows are
    sorted by (address, hour) first, so the same features give the same scores on every engine
    and every run. An hour scoring at least ``min_anomaly`` (the forest's anomaly score,
    0.5 = ordinary, towards 1 = isolated quickly) raises one alert per address and day, for its
    worst hour. The explanation lists the features furthest from their baseline distribution
    in robust units ((value - median) / (1.4826 x MAD)): the extreme values that let the forest
    isolate the hour. ``high`` from 0.8.

Parameters
    See the dataclass fields below. Nothing is raised with fewer than ``min_training_rows``
    baseline hours.

Known false positives
    Any legitimate change of behaviour (new software, a new job for a server), hosts with
    little history, the first hours after enrichment starts filling ASNs and countries. It is
    reported separately from the rule-based detectors; triage it as a lead, not a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.baseline.flows import MAD_TO_SIGMA, peer_flows
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.engines.base import memtable

FEATURES: dict[str, str] = {
    "log_flows": "flows (log)",
    "log_bytes": "bytes (log)",
    "log_peers": "distinct external peers (log)",
    "new_peer_ratio": "share of peers never contacted before",
    "asn_entropy": "entropy of the peers' ASNs (bits)",
    "country_entropy": "entropy of the peers' countries (bits)",
    "residential_share": "share of flows with residential or mobile peers",
    "log_ports": "distinct service ports (log)",
    "in_out_ratio": "log(bytes in) - log(bytes out)",
}
KEYS = ("local_ip", "hour")


@dataclass
class IsolationForestAnomaly(Detector):
    """Hours in which an internal address's traffic profile is isolated by an isolation forest."""

    id: ClassVar[str] = "isolation_forest_anomaly"
    summary: ClassVar[str] = "Isolation-forest anomaly of an internal address's hourly profile"
    techniques: ClassVar[tuple[str, ...]] = ("T1584.005", "T1090", "T1071")
    requires: ClassVar[tuple[str, ...]] = ("flows", "ip_info")

    #: Hours scored, ending at the latest flow; the hours before are the baseline period.
    window_hours: int = 24
    #: Anomaly score (0-1) at which an hour is reported.
    min_anomaly: float = 0.7
    #: Baseline hours needed to train at all.
    min_training_rows: int = 200
    #: At most this many baseline hours are used for training (a seeded sample).
    max_training_rows: int = 200_000
    #: Trees in the forest.
    trees: int = 200
    #: Seed of the sample and of the forest (same seed, same features: same scores).
    seed: int = 7

    def features(self, ctx: DetectContext) -> ir.Table:
        """Per internal address and hour: the :data:`FEATURES` (all computed by the engine)."""
        peers = peer_flows(ctx.engine)
        zero = ibis.literal(0, "int64")
        # Only the columns the features use: the engine may materialise these ~10 million rows
        # once for the four aggregations below, so they should be narrow.
        peers = peers.select(
            "local_ip",
            "peer_key",
            "service_port",
            "bytes_in",
            "bytes_out",
            "asn",
            "country",
            hour=(peers.t // 3600).cast("int64"),  # hours since 1970
            residential=peers.net_class.isin(["residential", "mobile"]).ifelse(1, zero),
        )
        first = peers.group_by(["local_ip", "peer_key"]).aggregate(first_hour=peers.hour.min())
        new = first.group_by(["local_ip", first.first_hour.name("hour")]).aggregate(
            new_peers=first.count()
        )
        base = peers.group_by(list(KEYS)).aggregate(
            flows=peers.count(),
            bytes_in=peers.bytes_in.sum(),
            bytes_out=peers.bytes_out.sum(),
            peers=peers.peer_key.nunique(),
            ports=peers.service_port.nunique(),
            residential=peers.residential.sum(),
        )
        asn, country = _entropy(peers, "asn"), _entropy(peers, "country")
        joined = base.join(asn, list(KEYS)).join(country, list(KEYS)).left_join(new, list(KEYS))
        f = joined.select(
            *KEYS,
            flows="flows",
            log_flows=(joined.flows + 1).cast("float64").ln(),
            log_bytes=(joined.bytes_in + joined.bytes_out + 1).cast("float64").ln(),
            log_peers=(joined.peers + 1).cast("float64").ln(),
            new_peer_ratio=joined.new_peers.fill_null(0) / joined.peers,
            asn_entropy=joined.asn_entropy,
            country_entropy=joined.country_entropy,
            residential_share=joined.residential / joined.flows,
            log_ports=(joined.ports + 1).cast("float64").ln(),
            in_out_ratio=(joined.bytes_in + 1).cast("float64").ln()
            - (joined.bytes_out + 1).cast("float64").ln(),
            bytes=joined.bytes_in + joined.bytes_out,
        )
        return f

    def candidates(self, ctx: DetectContext) -> ir.Table:
        rows = ctx.engine.execute(self.features(ctx))
        return memtable(self.score(rows))

    def score(self, rows: pa.Table) -> pa.Table:
        """Train on the baseline hours, score the window's hours; the worst hour per address/day.

        Runs in Python on the engine's aggregated rows (one per address and hour, not per flow).
        """
        from sklearn.ensemble import IsolationForest

        empty = _empty_result()
        if rows.num_rows == 0:
            return empty
        # Arrow's sort, not numpy's lexsort: the addresses are strings, which numpy sorts as
        # Python objects (over a second for half a million rows); same order (byte order of
        # UTF-8 is code point order, both sorts are stable, and (address, hour) is unique).
        order = pc.sort_indices(rows, sort_keys=[("local_ip", "ascending"), ("hour", "ascending")])
        rows = rows.take(order)
        hours = rows["hour"].to_numpy().astype("int64")
        window_start = hours.max() - self.window_hours
        matrix = np.round(
            np.column_stack([rows[f].to_numpy(zero_copy_only=False) for f in FEATURES]), 9
        ).astype("float64")
        matrix = np.nan_to_num(matrix)
        train = np.flatnonzero(hours <= window_start)
        test = np.flatnonzero(hours > window_start)
        if len(train) < self.min_training_rows or len(test) == 0:
            return empty
        rng = np.random.default_rng(self.seed)
        if len(train) > self.max_training_rows:
            train = np.sort(rng.choice(train, self.max_training_rows, replace=False))
        forest = IsolationForest(
            n_estimators=self.trees, max_samples=min(256, len(train)), random_state=self.seed
        )
        forest.fit(matrix[train])
        anomaly = -forest.score_samples(matrix[test])
        hits = test[anomaly >= self.min_anomaly]
        if len(hits) == 0:
            return empty
        return self._report(rows, matrix, train, hits, anomaly[anomaly >= self.min_anomaly])

    def _report(self, rows: pa.Table, matrix: Any, train: Any, hits: Any, anomaly: Any) -> pa.Table:
        """One row per address and day (its worst hour), with each feature's robust deviation."""
        median = np.median(matrix[train], axis=0)
        mad = np.median(np.abs(matrix[train] - median), axis=0) * MAD_TO_SIGMA
        spread = np.where(mad > 0, mad, np.maximum(np.std(matrix[train], axis=0), 1e-3))
        z = (matrix[hits] - median) / spread
        picked = rows.take(hits)
        days = picked["hour"].to_numpy() // 24
        ips = np.asarray(picked["local_ip"].to_pylist(), dtype=object)
        best: dict[tuple[str, Any], int] = {}
        for i in np.argsort(-anomaly, kind="stable"):  # a handful of anomalous hours
            best.setdefault((ips[i], days[i]), int(i))
        chosen = sorted(best.values())
        out = {
            "entity": [ips[i] for i in chosen],
            "first_seen": pc.cast(
                pc.multiply(picked["hour"].take(chosen), pa.scalar(3_600_000_000, pa.int64())),
                pa.timestamp("us", tz="UTC"),
            ),
            "anomaly": [round(float(anomaly[i]), 4) for i in chosen],
            "event_count": picked["flows"].take(chosen),
            "bytes": picked["bytes"].take(chosen),
            # Lists travel as JSON text: every engine carries a string column unchanged.
            "values": [json.dumps([round(float(v), 4) for v in matrix[hits[i]]]) for i in chosen],
            "medians": [json.dumps([round(float(v), 4) for v in median])] * len(chosen),
            "sigmas": [json.dumps([round(float(v), 2) for v in z[i]]) for i in chosen],
            "training_rows": [len(train)] * len(chosen),
        }
        table = pa.table(out)
        last = pc.add(table["first_seen"], pa.scalar(3600 * 10**6 - 1, pa.duration("us")))
        return table.append_column("last_seen", last)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        names = list(FEATURES)
        row = row | {k: json.loads(row[k]) for k in ("values", "medians", "sigmas")}
        drivers = sorted(range(len(names)), key=lambda k: (-abs(row["sigmas"][k]), names[k]))[:3]
        described = "; ".join(
            f"{FEATURES[names[k]]} {row['values'][k]:g} against a baseline median of "
            f"{row['medians'][k]:g} ({row['sigmas'][k]:+.1f} sigmas)"
            for k in drivers
        )
        anomaly = float(row["anomaly"])
        story = (
            f"In the hour from {row['first_seen']:%Y-%m-%d %H:00} UTC the traffic profile of "
            f"{row['entity']} scored {anomaly:.3f} on an isolation forest trained on "
            f"{row['training_rows']} baseline hours of the organisation (0.5 is ordinary). "
            f"Furthest from the baseline: {described}."
        )
        evidence = {
            "anomaly_score": anomaly,
            "features": {
                n: {
                    "value": row["values"][k],
                    "baseline_median": row["medians"][k],
                    "sigmas": row["sigmas"][k],
                }
                for k, n in enumerate(names)
            },
            "drivers": [names[k] for k in drivers],
            "training_rows": row["training_rows"],
        }
        return Finding(
            entity=row["entity"],
            severity="high" if anomaly >= 0.8 else "medium",
            score=round(100 * anomaly, 1),
            title=f"{row['entity']}: anomalous traffic profile ({FEATURES[names[drivers[0]]]})",
            explanation=story,
            evidence=evidence,
            src_ip=row["entity"],
            bytes=row["bytes"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['entity']}|{row['first_seen']:%Y-%m-%d}"


def _entropy(peers: ir.Table, column: str) -> ir.Table:
    """Shannon entropy in bits of ``column`` per address and hour: log2 n - sum(c log2 c) / n."""
    counts = peers.group_by([*KEYS, column]).aggregate(c=peers.count())
    c = counts.c.cast("float64")
    counts = counts.mutate(clogc=c * c.log2())
    per = counts.group_by(list(KEYS)).aggregate(n=counts.c.sum(), s=counts.clogc.sum())
    n = per.n.cast("float64")
    return per.select(*KEYS, **{f"{column}_entropy": ibis.greatest(n.log2() - per.s / n, 0.0)})


def _empty_result() -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    floats = pa.string()
    return pa.table(
        {
            "entity": pa.array([], pa.string()),
            "first_seen": pa.array([], ts),
            "anomaly": pa.array([], pa.float64()),
            "event_count": pa.array([], pa.int64()),
            "bytes": pa.array([], pa.int64()),
            "values": pa.array([], floats),
            "medians": pa.array([], floats),
            "sigmas": pa.array([], floats),
            "training_rows": pa.array([], pa.int64()),
            "last_seen": pa.array([], ts),
        }
    )
