"""Traffic spike from or to an edge device, SOHO or IoT subnet against its hour-of-week baseline.

Rationale
    A hijacked edge device changes what it does on the Internet: a VPN gateway suddenly sends
    gigabytes at 3 a.m., a camera subnet talks to a hundred peers instead of its two cloud
    services, a router opens ports it never used. Per-device thresholds do not work (a VPN
    gateway and a thermostat differ by orders of magnitude), so each asset is compared with its
    own history at the same hour of the week (falling back to the same hour of the day while
    fewer than ``min_weeks`` weeks exist), in robust units: the median and the median absolute
    deviation (MAD), so one past incident does not inflate the baseline.

ATT&CK
    T1584.005 (Compromise Infrastructure: Botnet), T1090 (Proxy), T1041 (Exfiltration Over C2
    Channel): what a spike on an edge asset usually means.

Inputs
    ``flows``, ``ip_info``, ``assets``, the config's ``edge_assets``; ``edge_baselines`` and
    ``peer_contacts`` from ``orbwatch baseline`` (without them nothing is raised: no history, no
    judgement).

How it decides
    For each asset and each hour of the last ``window_hours`` of flows, every judged metric
    (bytes in and out, flows in and out, distinct external peers) gets a deviation
    ``z = (value - median) / scale`` with ``scale = max(1.4826 x MAD, rel_floor x median,
    the metric's absolute floor)``: 1.4826 x MAD estimates a standard deviation, so z reads as
    sigmas; the floors keep a flat history (MAD 0) from turning a few bytes into a spike.
    Hours with ``z >= z_threshold`` on any metric are spikes, with one more condition on the
    byte metrics: the hour must also move more bytes (that way) than the asset's busiest hour of
    the whole training period, any hour of the week (``edge_hours``), times
    ``busiest_hour_factor``. A flow's bytes are booked in the hour it starts, so the bytes of a
    gateway's hour are those of the few sessions that began in it: a remote worker's
    eight-hour tunnel on a Sunday morning is tens of sigmas above that slot's median of a few
    kilobytes, yet smaller than what the gateway carries every working day (the same holds for
    patch days and backups). Counts (flows, distinct peers) add up many independent
    connections and keep the slot's z alone. Service ports the asset used in
    the window but never before (``peer_contacts``) are new ports; ``min_new_ports`` of them
    raise an alert on their own. One alert per asset and window, with the worst hour's
    figures. ``high`` from ``2 x z_threshold`` or with new ports as well as a volume spike.
    ``src_ip`` is the asset's own address (its lowest single-host address: for a device
    configured with its public and its inside address, the public one in the usual plans), so
    the alert names the device as well as the asset; subnets have none.

Parameters
    See the dataclass fields below.

Known false positives
    Planned changes (a new VPN profile, backups moved, a firmware update), an incident response
    pulling logs, the first week after the asset's traffic grew for good reasons; the baseline
    adapts as the new level becomes history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.flows import (
    MAD_TO_SIGMA,
    asset_ranges,
    data_end,
    edge_flows,
    hourly,
    slot_of_hour_index,
)
from orbwatch.config import Config
from orbwatch.detect.base import DetectContext, Detector, Finding

#: Metrics judged, with the absolute floor of their scale (a deviation smaller than this is
#: never a spike, however flat the history).
JUDGED: dict[str, float] = {
    "bytes_out": 1_000_000.0,
    "bytes_in": 1_000_000.0,
    "flows_out": 20.0,
    "flows_in": 20.0,
    "peers": 5.0,
}
#: Judged metrics that are byte totals: a spike of these must also beat the busiest past hour.
BYTE_METRICS = ("bytes_out", "bytes_in")


@dataclass
class EdgeTrafficSpike(Detector):
    """An edge asset's hourly traffic far outside its hour-of-week baseline, or new ports."""

    id: ClassVar[str] = "edge_traffic_spike"
    summary: ClassVar[str] = "Edge asset traffic far above its hour-of-week baseline, new ports"
    techniques: ClassVar[tuple[str, ...]] = ("T1584.005", "T1090", "T1041")
    requires: ClassVar[tuple[str, ...]] = (
        "flows",
        "ip_info",
        "assets",
        "edge_baselines",
        "edge_hours",
        "peer_contacts",
    )

    #: Hours judged, ending at the latest flow.
    window_hours: int = 24
    #: Deviation, in robust sigmas, that makes an hour a spike.
    z_threshold: float = 6.0
    #: Scale floor as a share of the median (a busy asset varies in proportion).
    rel_floor: float = 0.25
    #: Weeks of history of one hour of the week before it is used.
    min_weeks: int = 3
    #: Days of history of one hour of the day before the fallback is used.
    min_days: int = 7
    #: New service ports that raise an alert on their own.
    min_new_ports: int = 3
    #: A byte spike must exceed the asset's busiest training hour (any hour of the week) times
    #: this: within the asset's weekly range, a big hour is a big session, not a spike. Hourly
    #: bytes of a gateway are a handful of long-tailed session sizes, so a new maximum 2-3
    #: times the old one is ordinary (measured: a 2.9 GB remote-worker tunnel against a busiest
    #: past hour of 0.8 GB in a 30-person simulation); four times is not.
    busiest_hour_factor: float = 4.0
    #: Absolute scale floors per judged metric.
    floors: dict[str, float] = field(default_factory=lambda: dict(JUDGED))

    def candidates(self, ctx: DetectContext) -> ir.Table:
        engine = ctx.engine
        window_start = data_end(engine) - ibis.interval(hours=self.window_hours)
        edge = edge_flows(engine, ctx.config, since=window_start)
        hours = self._with_busiest(hourly(edge), engine.table("edge_hours"), window_start)
        judged = self._judge(hours, engine.table("edge_baselines"))
        worst = self._worst(judged)
        ports = self._new_ports(edge, engine, ctx, window_start)
        joined = worst.outer_join(ports, worst.entity == ports.p_entity)
        out = joined.mutate(
            entity=joined.entity.fill_null(joined.p_entity),
            new_ports=joined.new_ports.fill_null(0),
            spike_hours=joined.spike_hours.fill_null(0),
        )
        out = out.filter((out.spike_hours > 0) | (out.new_ports >= self.min_new_ports))
        out = out.mutate(
            first_seen=out.first_seen.fill_null(out.p_first),
            last_seen=out.last_seen.fill_null(out.p_last),
            event_count=out.spike_flows.fill_null(0) + out.port_flows.fill_null(0),
        )
        address = asset_address(engine, ctx.config)
        joined = out.left_join(address, out.entity == address.a_entity)
        return joined.select(out, "address")

    @staticmethod
    def _with_busiest(
        hours: ir.Table, history: ir.Table, window_start: ir.TimestampScalar
    ) -> ir.Table:
        """Add each asset's largest hourly bytes in and out before the window (0 without any)."""
        past = history.filter(history.hour < window_start)
        busiest = past.group_by(past.entity.name("b_entity")).aggregate(
            **{f"{m}_busiest": past[m].max() for m in BYTE_METRICS}
        )
        joined = hours.left_join(busiest, hours.entity == busiest.b_entity)
        return joined.select(
            hours, **{f"{m}_busiest": joined[f"{m}_busiest"].fill_null(0) for m in BYTE_METRICS}
        )

    def _judge(self, hours: ir.Table, baselines: ir.Table) -> ir.Table:
        """Hourly metrics with the baseline of their slot and a z per metric."""
        how, hod = slot_of_hour_index(hours.hour_index)
        hours = hours.mutate(how=how, hod=hod)
        week = baselines.filter(
            (baselines.slot_kind == "hour_of_week") & (baselines.hours >= self.min_weeks)
        )
        day = baselines.filter(
            (baselines.slot_kind == "hour_of_day") & (baselines.hours >= self.min_days)
        )
        cols = [c for m in JUDGED for c in (f"{m}_median", f"{m}_mad")]
        w = week.select("entity", "slot", "hours", *cols).rename(
            {f"w_{c}": c for c in ["entity", "slot", "hours", *cols]}
        )
        d = day.select("entity", "slot", "hours", *cols).rename(
            {f"d_{c}": c for c in ["entity", "slot", "hours", *cols]}
        )
        j = hours.left_join(w, [hours.entity == w.w_entity, hours.how == w.w_slot])
        j = j.left_join(d, [j.entity == d.d_entity, j.hod == d.d_slot])
        use_week = j.w_hours.notnull()
        picked = {c: use_week.ifelse(j[f"w_{c}"], j[f"d_{c}"]) for c in cols}
        j = j.mutate(
            history=use_week.ifelse(j.w_hours, j.d_hours),
            profile=use_week.ifelse(ibis.literal("hour_of_week"), ibis.literal("hour_of_day")),
            **picked,
        )
        j = j.filter(j.history.notnull())
        zs = {}
        for metric, floor in self.floors.items():
            med, mad = j[f"{metric}_median"], j[f"{metric}_mad"]
            scale = ibis.greatest(MAD_TO_SIGMA * mad, self.rel_floor * med, ibis.literal(floor))
            zs[f"{metric}_z"] = (j[metric] - med) / scale
        j = j.mutate(**zs)
        counted = {
            m: (j[m] > j[f"{m}_busiest"] * self.busiest_hour_factor).ifelse(j[f"{m}_z"], 0.0)
            if m in BYTE_METRICS
            else j[f"{m}_z"]
            for m in self.floors
        }
        return j.mutate(max_z=ibis.greatest(*counted.values()))

    def _worst(self, judged: ir.Table) -> ir.Table:
        """Per entity: spike hours, their flows, and the worst hour's figures."""
        spikes = judged.filter(judged.max_z >= self.z_threshold)
        # Totals as window aggregates over the entity, not a join back to a group-by of the
        # same rows: one pass, and no self-join for Spark's analyser to deduplicate.
        entity = ibis.window(group_by=spikes.entity)
        rank = ibis.row_number().over(
            group_by=spikes.entity, order_by=[spikes.max_z.desc(), spikes.hour_index]
        )
        worst = spikes.mutate(
            rank=rank,
            spike_hours=spikes.hour_index.count().over(entity),
            spike_flows=(spikes.flows_in + spikes.flows_out).sum().over(entity),
            first_seen=spikes.first_ts.min().over(entity),
            last_seen=spikes.last_ts.max().over(entity),
        )
        return worst.filter(worst["rank"] == 0).drop("rank")

    def _new_ports(
        self,
        edge: ir.Table,
        engine: Any,
        ctx: DetectContext,
        window_start: ir.TimestampScalar,
    ) -> ir.Table:
        """Service ports each asset used in the window and never before."""
        used = edge.mutate(
            kind=edge.outbound.ifelse(ibis.literal("port_out"), ibis.literal("port_in"))
        )
        used = used.group_by(["entity", "kind", "service_port"]).aggregate(
            flows=used.count(), first=used.ts.min(), last=used.ts_end.max()
        )
        used = used.mutate(port_text=used.service_port.cast("string"))
        contacts = engine.table("peer_contacts")
        ranges = asset_ranges(engine, ctx.config)
        history = contacts.join(
            ranges, [contacts.local_key >= ranges.start_key, contacts.local_key <= ranges.end_key]
        )
        history = history.select(
            entity=history.name, kind=history.kind, value=history.value, seen=history.first_seen
        )
        before = history.filter(history.seen < window_start)
        # New: no contact on that port before the window, for an asset that has some history.
        new = used.anti_join(
            before,
            [
                used.entity == before.entity,
                used.kind == before.kind,
                used.port_text == before.value,
            ],
        )
        new = new.semi_join(before, "entity")
        return (
            new.group_by("entity")
            .aggregate(
                new_ports=new.service_port.nunique(),
                port_list=new.service_port.cast("string").collect(),
                port_flows=new.flows.sum(),
                p_first=new.first.min(),
                p_last=new.last.max(),
            )
            .rename(p_entity="entity")
        )

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        entity = row["entity"]
        ports = sorted(int(p) for p in (row["port_list"] or []))
        parts, evidence = [], {"new_ports": ports, "spike_hours": row["spike_hours"]}
        worst_z = float(row["max_z"] or 0.0)
        if row["spike_hours"]:
            for metric in JUDGED:
                z = float(row[f"{metric}_z"])
                evidence[metric] = {
                    "value": row[metric],
                    "median": row[f"{metric}_median"],
                    "mad": row[f"{metric}_mad"],
                    "sigmas": round(z, 1),
                }
                usual = metric in BYTE_METRICS and row[metric] <= (
                    row[f"{metric}_busiest"] * self.busiest_hour_factor
                )
                if metric in BYTE_METRICS:
                    evidence[metric]["busiest_past_hour"] = row[f"{metric}_busiest"]
                if z >= self.z_threshold and not usual:
                    parts.append(
                        f"{metric.replace('_', ' ')} {row[metric]:,} against a median of "
                        f"{row[f'{metric}_median']:,.0f} (MAD {row[f'{metric}_mad']:,.0f}): "
                        f"{z:.1f} sigmas"
                    )
            evidence |= {"profile": row["profile"], "history": row["history"]}
            story = (
                f"{entity} ({row['role']}) was far outside its {row['profile'].replace('_', '-')} "
                f"baseline ({row['history']} past hours of the same slot) in {row['spike_hours']} "
                f"hour(s); worst at {row['first_ts']:%Y-%m-%d %H:00} UTC: {'; '.join(parts)}."
            )
        else:
            story = f"{entity} traffic volume stayed within its baseline."
        if ports:
            story += (
                f" It used {len(ports)} service port(s) never seen for it before: "
                f"{', '.join(map(str, ports[:20]))}."
            )
        severity = (
            "high"
            if worst_z >= 2 * self.z_threshold or (row["spike_hours"] and ports)
            else "medium"
        )
        title = (
            f"{entity}: traffic {worst_z:.0f} sigmas above its baseline"
            if row["spike_hours"]
            else f"{entity}: {len(ports)} new service ports"
        )
        return Finding(
            entity=entity,
            severity=severity,
            score=round(min(100.0, 3 * worst_z + 5 * len(ports)), 1),
            title=title,
            explanation=story,
            evidence=evidence,
            src_ip=row["address"],
            bytes=None if row["bytes_out"] is None else row["bytes_out"] + row["bytes_in"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['entity']}|{row['first_seen']:%Y-%m-%d}"


def asset_address(engine: Any, config: Config) -> ir.Table:
    """Per asset (``a_entity``): its lowest single-host address, from the ranges, not the flows.

    Taken from the configured and discovered ranges rather than from the traffic, so the alert
    query gains no further self-join of ``flows``.
    """
    ranges = asset_ranges(engine, config)
    hosts = ranges.filter(ranges.start_key == ranges.end_key)
    rank = ibis.row_number().over(group_by=hosts.name, order_by=hosts.start_key)
    ranked = hosts.mutate(rank=rank)
    first = ranked.filter(ranked["rank"] == 0)
    return first.select(a_entity=first.name, address=first.cidr.split("/")[0])
