"""Beaconing: an internal host calling the same external address at a machine's regular rhythm.

Rationale
    Implants on hijacked cameras and routers, and the covert-network relays that carry their
    command and control, check in on a timer with requests of nearly the same size. RITA's beacon
    analysis (activecm/rita v5, ``analysis/beacons.go``) scores that regularity per
    (source, destination) pair; this detector computes the same four sub-scores inside the
    engine, so it runs on DuckDB or Spark over any flow source (RITA reads Zeek only, and drops
    external-to-internal traffic; the inbound side is covered by ``device_turned_relay``):

    * **TS** (timestamps): over the non-zero gaps between connections, the mean of
      ``1 - |Bowley skew|`` (Bowley = (Q1 + Q3 - 2 Q2) / (Q3 - Q1), taken as 0 when the
      interquartile range is under 10 or the median equals a quartile) and
      ``(median - MAD) / median`` (1 when the median is under 1 second);
    * **DS** (data sizes): the same over the bytes of each connection (0 when the median is
      under 1 byte);
    * **HIST**: the day's span of outbound flows cut into 24 bins; the larger of
      ``1 - coefficient of variation`` of the per-bin counts and the bimodal fit (share of
      non-empty bins whose count falls in the two most common count levels, levels 5% of the
      largest count wide, one outlier bin forgiven, only with at least 11 non-empty bins);
    * **DUR**: with at least 6 non-empty bins, the larger of coverage (pair span / day's span)
      and consistency (longest run of consecutive non-empty bins, wrapping around, / 12).

    score = 0.25 TS + 0.25 DS + 0.25 HIST + 0.25 DUR (RITA's published default weights), then
    RITA's modifiers: +0.15 when the destination is rare (contacted by at most 2% of internal
    hosts), -0.15 when it is common (at least 50%), both only once the day holds at least
    ``prevalence_min_hosts`` internal hosts (a share of a handful of hosts means nothing);
    +0.15 when the organisation first contacted the destination within 7 days, only when the
    flows go back further than that. One modifier of ours, in the spirit of RITA's prevalence
    modifier: a source inside an IoT subnet (an edge asset of role ``iot-subnet``, configured
    or discovered) calling a destination that is *not* new gets -0.15, like a common
    destination, and never the rare bonus. Cameras, recorders and thermostats poll their
    vendor's cloud on a timer by design, every day, and usually from a single device per site
    (a recorder for all its cameras), so a host count calls that cloud rare; what makes it
    prevalent is time: the organisation has reached it since before the new-destination window. An
    implanted IoT device beaconing to a covert network's relay still alerts, because relays
    rotate within days and are new destinations. Severity follows RITA's bands: >= 0.9 high,
    else medium; alerts need ``min_score`` (0.95, see the parameter: random traffic spanning
    a day scores ~0.76 and IoT devices polling their vendor's cloud ~0.92-0.98 by design; C2
    relays are new destinations, so they carry the +0.15).

    Differences from RITA, on purpose: quartiles are the engine's linear-interpolation
    percentiles (RITA's Go library takes medians of halves), no rounding to three decimals
    between steps, and bytes are payload bytes both ways as the flow source reports them.

ATT&CK
    T1071 (Application Layer Protocol), T1573 (Encrypted Channel): C2 through relays.

Inputs
    ``flows`` (outbound, i.e. internal initiator and external responder).

How it decides
    Per (internal source, external destination) and UTC day (every day, or the last ``days``): at
    least ``min_connections`` connections and three non-zero gaps (RITA's gate), then the score
    above; pairs scoring at least ``min_score`` are raised. All statistics (gaps through a window
    lag, quartiles, MADs, histogram, runs) are computed by the engine.

Parameters
    See the dataclass fields below (defaults from RITA v5's ``default_config.hjson``).

Known false positives
    Software update checks, NTP, telemetry and monitoring agents, VPN keep-alives, mail
    clients polling: all beacon by design. Most are common destinations (the prevalence modifier
    lowers them in a network of realistic size), and IoT devices polling their vendor's cloud
    are lowered when their subnet is an ``iot-subnet`` asset; suppress the rest by destination.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.flows import asset_ranges, epoch_seconds, index_time
from orbwatch.config import AssetRole
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.flow_queries import PAIR_DAY, PAIR_REPORT, outbound_days, with_pair_day_figures

BINS = 24
#: Per-pair statistics and sub-scores reported as evidence.
_STATISTICS = (
    *("ts_q1", "ts_q2", "ts_q3", "ts_mad", "ds_q1", "ds_q2", "ds_q3", "ds_mad"),
    *("ts_score", "ds_score", "hist_score", "dur_score", "cv_score", "bimodal_score"),
    *("coverage", "consistency", "base_score", "beacon_score"),
)


@dataclass
class Beaconing(Detector):
    """Regular, same-sized connections from an internal host to one external address."""

    id: ClassVar[str] = "beaconing"
    summary: ClassVar[str] = "RITA-style beacon score per (internal source, external destination)"
    techniques: ClassVar[tuple[str, ...]] = ("T1071", "T1573")
    requires: ClassVar[tuple[str, ...]] = ("flows",)

    #: Days analysed, ending with the latest flow's (each UTC day on its own, as RITA analyses
    #: a day of logs); 0 analyses every day in the flows.
    days: int = 0
    #: Fewer connections than this are not scored (RITA: 4).
    min_connections: int = 4
    #: Final score (after modifiers) at which an alert is raised. RITA's bands start at 0.7
    #: (medium) and 0.9 (high), but Poisson arrivals of random sizes that span a day already
    #: score ~0.76, and IoT devices polling their vendor's cloud every hour score ~0.92, every
    #: day. Covert-network C2 relays rotate within days, so they carry the +0.15 of a new
    #: destination: 0.95 keeps a near-perfect beacon to a new destination (base >= 0.8) and a
    #: perfect one to an old destination, and drops the rest.
    min_score: float = 0.95
    #: Weights of the timestamp, data-size, histogram and duration scores (sum to 1).
    ts_weight: float = 0.25
    ds_weight: float = 0.25
    hist_weight: float = 0.25
    dur_weight: float = 0.25
    #: Width of the bimodal fit's count levels, as a share of the largest bin count.
    hist_mode_sensitivity: float = 0.05
    #: Outlier bins forgiven by the bimodal fit.
    hist_bimodal_outlier_removal: int = 1
    #: Non-empty bins needed before the bimodal fit counts.
    hist_bimodal_min_bins: int = 11
    #: Non-empty bins needed before the duration score counts.
    dur_min_bins: int = 6
    #: Consecutive non-empty bins that earn full consistency.
    dur_ideal_bins: int = 12
    #: Internal hosts seen that day before prevalence modifiers apply.
    prevalence_min_hosts: int = 20
    #: Destinations reached by at most this share of internal hosts are rare (+modifier).
    rare_prevalence: float = 0.02
    #: Destinations reached by at least this share are common (-modifier).
    common_prevalence: float = 0.5
    #: Size of each modifier on the 0-1 score.
    modifier: float = 0.15
    #: A destination first contacted within this many days is new (+modifier).
    new_destination_days: int = 7

    def candidates(self, ctx: DetectContext) -> ir.Table:
        outbound = outbound_days(ctx.engine)
        # Only what the statistics need goes through the window (every outbound flow, sorted
        # per pair): the addresses as text, ports, protocol and times that an alert reports are
        # gathered at the end for the pairs that score (``with_pair_day_figures``).
        rows = outbound.select(
            "src_key",
            "dst_key",
            "day",
            t=epoch_seconds(ctx.engine, outbound.ts_start),
            size=(outbound.src_bytes.fill_null(0) + outbound.dst_bytes.fill_null(0)).cast(
                "float64"
            ),
        )
        pair = list(PAIR_DAY)
        sequenced = self._sequenced(rows, pair)
        # One row per pair and day: what the day spans, prevalence and history are counted on.
        firsts = sequenced.filter(sequenced.first_of_pair)
        recent = sequenced
        if self.days:  # pairs are per day, so filtering after the window changes no statistic
            recent = recent.filter(recent.day > recent.day.max() - self.days)
        gated = recent.filter(recent.connections >= self.min_connections)
        stats = (
            _pair_statistics(gated, pair)
            .join(self._histogram(gated, firsts, pair), pair)
            .join(self._prevalence(firsts), ["dst_key", "day"])
        )
        stats = stats.filter(stats.ts_gaps >= 3)
        scored = self._score(self._iot_sources(stats, ctx))
        scored = with_pair_day_figures(ctx.engine, scored, **PAIR_REPORT, last_seen="last_start")
        return scored.mutate(entity=scored.src_ip)

    @staticmethod
    def _iot_sources(stats: ir.Table, ctx: DetectContext) -> ir.Table:
        """Flag pairs whose source lies in an IoT subnet asset (a range join on scored pairs)."""
        ranges = asset_ranges(ctx.engine, ctx.config)
        iot = ranges.filter(ranges.role == str(AssetRole.IOT_SUBNET))
        sources = stats.select("src_key").distinct()
        inside = sources.join(
            iot, [sources.src_key >= iot.start_key, sources.src_key <= iot.end_key]
        )
        inside = inside.select("src_key").distinct().mutate(iot_source=ibis.literal(True))
        joined = stats.left_join(inside, "src_key")
        return joined.select(stats, iot_source=joined.iot_source.fill_null(False))

    @staticmethod
    def _sequenced(recent: ir.Table, pair: list[str]) -> ir.Table:
        """Each flow with its pair's connection count, the gap since the pair's previous one
        (null for the first) and whether it is the first: one partitioning of the flows by pair.

        Window functions instead of a group-by joined back: the gate (RITA's connection count),
        the gaps, the day's span and the prevalence all come out of this one pass over the
        outbound flows, and only the flows of gated pairs go on to the statistics.
        """
        ordered = ibis.window(group_by=pair, order_by="t")
        whole = ibis.window(group_by=pair, order_by="t", preceding=None, following=None)
        previous = recent.t.lag().over(ordered)
        return recent.mutate(
            connections=recent.t.count().over(whole),
            pair_last_t=recent.t.max().over(whole),
            gap=(recent.t - previous).cast("float64"),
            first_of_pair=previous.isnull(),
        )

    def _histogram(self, gated: ir.Table, firsts: ir.Table, pair: list[str]) -> ir.Table:
        """Per pair: bins used, coefficient of variation, bimodal fit and longest run."""
        span = firsts.group_by("day").aggregate(
            ds_min=firsts.t.min(), ds_max=firsts.pair_last_t.max()
        )
        binned = gated.join(span, "day")
        width = (binned.ds_max - binned.ds_min).nullif(0)
        binned = binned.mutate(
            bin=ibis.least((binned.t - binned.ds_min) * BINS // width, BINS - 1).fill_null(0)
        )
        bars = binned.group_by([*pair, "bin"]).aggregate(c=binned.count(), span=width.max())
        per_pair = bars.group_by(pair).aggregate(
            bars=bars.count(),
            total=bars.c.sum(),
            sumsq=(bars.c * bars.c).sum(),
            maxc=bars.c.max(),
            span=bars.span.max(),
        )
        levels = bars.join(per_pair.select(*pair, "maxc"), pair)
        level_width = (levels.maxc * self.hist_mode_sensitivity).ceil()
        levels = levels.mutate(level=(levels.c / level_width).floor() * level_width)
        level_counts = levels.group_by([*pair, "level"]).aggregate(n=levels.count())
        rank = ibis.row_number().over(
            group_by=[level_counts[c] for c in pair],
            order_by=[level_counts.n.desc(), level_counts.level],
        )
        top = level_counts.mutate(rank=rank)
        top = top.filter(top["rank"] < 2).group_by(pair).aggregate(top2=top.n.sum())
        return per_pair.join(top, pair).join(_longest_run(bars, pair), pair)

    def _prevalence(self, firsts: ir.Table) -> ir.Table:
        """Per destination and day: share of internal hosts reaching it; is it new?

        Counted on the first flow of each pair and day (one row per source and destination), so
        the distinct sources of a destination are a plain count, and its first contact and the
        start of the data are minima over these rows rather than over every flow.
        """
        hosts = firsts.group_by("day").aggregate(hosts=firsts.src_key.nunique())
        per_dst = firsts.group_by(["dst_key", "day"]).aggregate(sources=firsts.src_key.count())
        history = firsts.group_by("dst_key").aggregate(dst_first=firsts.t.min())
        data_start = firsts.aggregate(data_start=firsts.t.min()).data_start.as_scalar()
        joined = per_dst.join(history, "dst_key").join(hosts, "day")
        new_after = (joined.day + 1 - self.new_destination_days) * 86_400
        return joined.select(
            "dst_key",
            "day",
            "sources",
            "hosts",
            new_destination=(joined.dst_first >= new_after) & (data_start < new_after),
        )

    def _score(self, s: ir.Table) -> ir.Table:
        ts = _stat_score(s.ts_q1, s.ts_q2, s.ts_q3, s.ts_mad, default=1.0)
        ds = _stat_score(s.ds_q1, s.ds_q2, s.ds_q3, s.ds_mad, default=0.0)
        mean = s.total / BINS
        sd = ibis.greatest(s.sumsq / BINS - mean * mean, 0).sqrt()
        cv = sd / mean
        cv_score = (cv > 1).ifelse(0.0, 1 - cv)
        bimodal = (s.bars >= self.hist_bimodal_min_bins).ifelse(
            ibis.least(s.top2 / ibis.greatest(s.bars - self.hist_bimodal_outlier_removal, 1), 1.0),
            0.0,
        )
        hist = ibis.greatest(cv_score, bimodal)
        coverage = ibis.least((s.last_t - s.first_t) / s.span, 1.0).fill_null(0.0)
        consistency = ibis.least(s.longest_run / self.dur_ideal_bins, 1.0)
        dur = (s.bars >= self.dur_min_bins).ifelse(ibis.greatest(coverage, consistency), 0.0)
        base = (
            self.ts_weight * ts
            + self.ds_weight * ds
            + self.hist_weight * hist
            + self.dur_weight * dur
        )
        share = s.sources / s.hosts
        counted = s.hosts >= self.prevalence_min_hosts
        # An IoT device's established destination is its vendor's cloud: prevalent, never rare
        # (the one recorder polling it is the only host there is to count).
        iot_cloud = s.iot_source & ~s.new_destination
        rare = counted & (share <= self.rare_prevalence) & ~iot_cloud
        common = counted & (share >= self.common_prevalence)
        delta = (
            rare.ifelse(self.modifier, 0.0)
            - common.ifelse(self.modifier, 0.0)
            - iot_cloud.ifelse(self.modifier, 0.0)
            + s.new_destination.ifelse(self.modifier, 0.0)
        )
        final = ibis.greatest(ibis.least(base + delta, 1.0), 0.0)
        scored = s.mutate(
            ts_score=ts,
            ds_score=ds,
            hist_score=hist,
            dur_score=dur,
            cv_score=cv_score,
            bimodal_score=bimodal,
            coverage=coverage,
            consistency=consistency,
            base_score=base,
            rare=rare,
            common=common,
            iot_cloud=iot_cloud,
            beacon_score=final,
            event_count=s.connections,
        )
        return scored.filter(scored.beacon_score >= self.min_score)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        score = float(row["beacon_score"])
        severity = "high" if score >= 0.9 else "medium" if score >= 0.7 else "low"
        # (below 0.7 only when min_score is lowered: RITA's bands, kept for such runs)
        src, dst = row["src_ip"], row["dst_ip"]
        port = f"{row['protocol']}/{row['dst_port']}" + (
            f" and {row['ports'] - 1} other port(s)" if row["ports"] > 1 else ""
        )
        modifiers = [
            name
            for name, on in (
                ("rare destination (+)", row["rare"]),
                ("common destination (-)", row["common"]),
                ("destination new within the last days (+)", row["new_destination"]),
                ("IoT device polling an established destination (-)", row["iot_cloud"]),
            )
            if on
        ]
        story = (
            f"{src} connected to {dst} on {port} {row['connections']} times between "
            f"{row['first_seen']:%Y-%m-%d %H:%M:%S} and {row['last_seen']:%Y-%m-%d %H:%M:%S} UTC: "
            f"median gap {row['ts_q2']:.0f} s (MAD {row['ts_mad']:.0f} s), median size "
            f"{row['ds_q2']:.0f} bytes (MAD {row['ds_mad']:.0f}), active in {row['bars']} of "
            f"{BINS} bins of the window. Beacon score {score:.3f} = 0.25 x (timing "
            f"{row['ts_score']:.3f} + size {row['ds_score']:.3f} + histogram "
            f"{row['hist_score']:.3f} + duration {row['dur_score']:.3f})"
            + (f", modifiers: {', '.join(modifiers)}" if modifiers else "")
            + f"; {row['sources']} of {row['hosts']} internal hosts reach {dst}."
        )
        evidence: dict[str, Any] = {n: round(float(row[n]), 4) for n in _STATISTICS}
        evidence |= {
            "connections": row["connections"],
            "bins_used": row["bars"],
            "longest_run_bins": row["longest_run"],
            "destination_sources": row["sources"],
            "internal_hosts": row["hosts"],
            "modifiers": modifiers,
            "port": row["dst_port"],
        }
        return Finding(
            entity=src,
            severity=severity,
            score=round(100 * score, 1),
            title=f"{src} beacons to {dst} every ~{row['ts_q2']:.0f} s",
            explanation=story,
            evidence=evidence,
            src_ip=src,
            dst_ip=dst,
            bytes=row["bytes"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['src_ip']}|{row['dst_ip']}|{index_time(row['day'], 86_400):%Y-%m-%d}"


def _pair_statistics(gated: ir.Table, pair: list[str]) -> ir.Table:
    """Per gated pair: connections, first and last second, bytes, and the quartiles and MADs of
    the non-zero gaps (``ts_``) and of the sizes (``ds_``).

    Two passes over the gated flows whatever the number of statistics: one aggregate for the
    pair's figures and both sets of quartiles (the gaps' through a filter), one for both MADs
    (they need the medians first).
    """
    positive = gated.gap > 0
    stats = gated.group_by(pair).aggregate(
        connections=gated.count(),
        first_t=gated.t.min(),
        last_t=gated.t.max(),
        bytes=gated.size.sum().cast("int64"),
        ts_q1=gated.gap.quantile(0.25, where=positive),
        ts_q2=gated.gap.quantile(0.5, where=positive),
        ts_q3=gated.gap.quantile(0.75, where=positive),
        ts_gaps=gated.count(where=positive),
        ds_q1=gated.size.quantile(0.25),
        ds_q2=gated.size.quantile(0.5),
        ds_q3=gated.size.quantile(0.75),
    )
    medians = stats.select(*pair, "ts_q2", "ds_q2")
    joined = gated.join(medians, pair)
    # The gaps' filter as a null, not ``where=``: Ibis turns a filtered median into a Spark
    # percentile with a non-constant percentage, which Spark rejects.
    gap_deviation = (joined.gap > 0).ifelse((joined.gap - joined.ts_q2).abs(), ibis.null("float64"))
    mads = joined.group_by(pair).aggregate(
        ts_mad=gap_deviation.median(),
        ds_mad=(joined.size - joined.ds_q2).abs().median(),
    )
    return stats.join(mads, pair)


def _stat_score(
    q1: ir.FloatingValue,
    q2: ir.FloatingValue,
    q3: ir.FloatingValue,
    mad: ir.FloatingValue,
    default: float,
) -> ir.FloatingValue:
    """RITA's statistical score: mean of (1 - |Bowley skew|) and (median - MAD) / median."""
    iqr = q3 - q1
    skew = ((iqr >= 10) & (q2 != q1) & (q2 != q3)).ifelse((q1 + q3 - 2 * q2) / iqr, 0.0)
    mad_score = (q2 >= 1).ifelse(ibis.greatest((q2 - mad) / q2, 0.0), default)
    return ((1 - skew.abs()) + mad_score) / 2


def _longest_run(bars: ir.Table, pair: list[str]) -> ir.Table:
    """Longest run of consecutive non-empty bins per pair, wrapping from the last to the first.

    Gaps-and-islands: consecutive bins share ``bin - row_number``; runs touching bin 0 and
    bin 23 join up when the window wraps around (as RITA counts them).
    """
    window = ibis.window(group_by=[bars[c] for c in pair], order_by=bars.bin)
    islands = bars.mutate(island=bars.bin - ibis.row_number().over(window))
    runs = islands.group_by([*pair, "island"]).aggregate(
        length=islands.count(), lo=islands.bin.min(), hi=islands.bin.max()
    )
    zero = ibis.literal(0, "int64")
    per_pair = runs.group_by(pair).aggregate(
        longest=runs.length.max(),
        first_run=(runs.lo == 0).ifelse(runs.length, zero).max(),
        last_run=(runs.hi == BINS - 1).ifelse(runs.length, zero).max(),
        islands=runs.count(),
    )
    wrapped = (per_pair.islands > 1).ifelse(per_pair.first_run + per_pair.last_run, zero)
    return per_pair.select(
        *pair, longest_run=ibis.least(ibis.greatest(per_pair.longest, wrapped), BINS)
    )
