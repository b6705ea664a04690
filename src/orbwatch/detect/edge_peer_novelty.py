"""Geographic and network novelty: an edge asset suddenly talks to countries, ASNs or kinds of
network it never dealt with, and that almost nobody in the organisation deals with.

Rationale
    The advisory asks for geographic profiling of edge traffic: a VPN gateway whose peers were
    employees' home ISPs in two countries is suddenly reached from hosting providers abroad; a
    camera subnet that only spoke to its vendor's cloud opens sessions to residential networks
    on another continent. Covert networks place exit nodes close to the victim, so a country
    rule alone misses them; the *kind* of network (residential, hosting) and the AS often give
    them away. Novelty for one asset counts more when the value is rare across the whole
    organisation (a new country that many colleagues' laptops already reach is unremarkable).

ATT&CK
    T1090 (Proxy), T1133 (External Remote Services), T1584.005 (Compromise Infrastructure:
    Botnet).

Inputs
    ``flows``, ``ip_info`` (country, AS and network class of peers; ``unknown`` values are
    ignored), ``assets`` and the config's ``edge_assets``; ``peer_contacts`` from
    ``orbwatch baseline`` (the history).

How it decides
    For each asset, the countries, ASNs and network classes of its peers in the last
    ``window_hours`` of flows that never appeared for it before the window. Each new value
    weighs ``weight x (1 - prevalence)`` where prevalence is the share of the organisation's
    internal addresses that dealt with that value before the window (``country_weight``,
    ``asn_weight``, ``net_class_weight``). Raised when the sum reaches ``min_score`` and the
    asset has at least ``min_history_days`` of history. ``high`` when a new network class is
    residential, hosting, VPN or Tor, or a new country is outside ``home_countries``
    (when configured); ``medium`` otherwise. The alert names the asset's own address
    (``src_ip``, as ``edge_traffic_spike`` does) and lists the example peer of each new value
    under ``sources``.

Parameters
    See the dataclass fields below.

Known false positives
    Staff travelling or working from a new country, a new cloud region or CDN serving the
    organisation, a partner connecting for the first time. The first weeks after enrichment is
    turned on look new only if the history was never enriched: run ``orbwatch enrich`` before
    ``orbwatch baseline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.flows import UNKNOWN, asset_ranges, data_end, edge_flows
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.edge_traffic_spike import asset_address
from orbwatch.detect.exfiltration_to_new_destination import RELAY_CLASSES

KINDS = ("country", "asn", "net_class")


@dataclass
class EdgePeerNovelty(Detector):
    """New countries, ASNs and network classes among an asset's peers, weighted by rarity."""

    id: ClassVar[str] = "edge_peer_novelty"
    summary: ClassVar[str] = "New countries, ASNs or network classes among an edge asset's peers"
    techniques: ClassVar[tuple[str, ...]] = ("T1090", "T1133", "T1584.005")
    requires: ClassVar[tuple[str, ...]] = ("flows", "ip_info", "assets", "peer_contacts")

    #: Hours judged, ending at the latest flow.
    window_hours: int = 24
    #: Weight of a new country, AS and network class (before rarity).
    country_weight: float = 1.0
    asn_weight: float = 0.5
    net_class_weight: float = 1.0
    #: Sum of rarity-weighted novelties that raises an alert.
    min_score: float = 1.0
    #: Days of history the asset needs before anything about it is new.
    min_history_days: float = 7.0

    def candidates(self, ctx: DetectContext) -> ir.Table:
        engine = ctx.engine
        window_start = data_end(engine) - ibis.interval(hours=self.window_hours)
        edge = edge_flows(engine, ctx.config, since=window_start)
        seen = self._values(edge)
        contacts = engine.table("peer_contacts")
        before = contacts.filter(contacts.first_seen < window_start)
        ranges = asset_ranges(engine, ctx.config)
        mine = before.join(
            ranges, [before.local_key >= ranges.start_key, before.local_key <= ranges.end_key]
        ).select(entity=ranges.name, kind=before.kind, value=before.value, seen=before.first_seen)
        new = seen.anti_join(mine, ["entity", "kind", "value"])
        veterans = mine.group_by("entity").aggregate(since=mine.seen.min())
        history = ibis.interval(hours=int(24 * self.min_history_days))
        veterans = veterans.filter(veterans.since <= window_start - history)
        veterans = veterans.select("entity")
        new = new.semi_join(veterans, "entity")
        scored = self._score(new, before)
        address = asset_address(engine, ctx.config)  # the device, besides the asset's name
        joined = scored.left_join(address, scored.entity == address.a_entity)
        return joined.select(scored, "address")

    @staticmethod
    def _values(edge: ir.Table) -> ir.Table:
        """(asset, kind, value) of the window's peers, with flows and an example peer."""
        parts = [
            edge.select("entity", "ts", "ts_end", "peer_ip", kind=ibis.literal(k), value=edge[k])
            for k in KINDS
        ]
        union = parts[0].union(parts[1]).union(parts[2])
        union = union.filter(union.value != UNKNOWN)
        return union.group_by(["entity", "kind", "value"]).aggregate(
            flows=union.count(),
            peers=union.peer_ip.nunique(),
            example_peer=union.peer_ip.min(),
            first=union.ts.min(),
            last=union.ts_end.max(),
        )

    def _score(self, new: ir.Table, before: ir.Table) -> ir.Table:
        # A scalar subquery rather than a cross join: no self-join for Spark's analyser.
        hosts = before.aggregate(hosts=before.local_key.nunique()).hosts.as_scalar()
        users = before.group_by(["kind", "value"]).aggregate(users=before.local_key.nunique())
        rated = new.left_join(users, ["kind", "value"]).select(new, "users")
        prevalence = rated.users.fill_null(0) / ibis.greatest(hosts, 1)
        weight = (
            (rated.kind == "country").ifelse(self.country_weight, 0.0)
            + (rated.kind == "asn").ifelse(self.asn_weight, 0.0)
            + (rated.kind == "net_class").ifelse(self.net_class_weight, 0.0)
        )
        rated = rated.mutate(prevalence=prevalence, points=weight * (1 - prevalence))
        label = rated.kind.concat(
            "=",
            rated.value,
            "|",
            rated.flows.cast("string"),
            "|",
            rated.example_peer,
            "|",
            (rated.prevalence * 1000).round().cast("int64").cast("string"),
        )
        rated = rated.mutate(label=label)
        out = rated.group_by("entity").aggregate(
            novelty=rated.points.sum(),
            event_count=rated.flows.sum(),
            first_seen=rated.first.min(),
            last_seen=rated.last.max(),
            new_values=rated.count(),
            labels=rated.label.collect(),
        )
        return out.filter(out.novelty >= self.min_score)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        entity = row["entity"]
        items = []
        for label in sorted(row["labels"]):
            pair, flows, peer, permille = label.rsplit("|", 3)
            kind, value = pair.split("=", 1)
            items.append(
                {
                    "kind": kind,
                    "value": value,
                    "flows": int(flows),
                    "example_peer": peer,
                    "org_prevalence": int(permille) / 1000,
                }
            )
        homes = set(ctx.config.home_countries)
        alarming = [
            i
            for i in items
            if (i["kind"] == "net_class" and i["value"] in RELAY_CLASSES)
            or (i["kind"] == "country" and homes and i["value"] not in homes)
        ]
        described = "; ".join(
            f"{i['kind'].replace('_', ' ')} {i['value']} ({i['flows']} flow(s), e.g. "
            f"{i['example_peer']}; {i['org_prevalence']:.0%} of internal hosts ever dealt with it)"
            for i in items
        )
        story = (
            f"Between {row['first_seen']:%Y-%m-%d %H:%M} and {row['last_seen']:%Y-%m-%d %H:%M} "
            f"UTC the peers of {entity} included {len(items)} value(s) never seen for it before: "
            f"{described}. Novelty score {row['novelty']:.2f} (each new value weighted by how "
            "rare it is across the organisation)."
        )
        return Finding(
            entity=entity,
            severity="high" if alarming else "medium",
            score=round(min(100.0, 25 * float(row["novelty"])), 1),
            title=f"{entity}: peers from {len(items)} new countries/networks",
            explanation=story,
            evidence={
                "new_values": items,
                "novelty": round(float(row["novelty"]), 3),
                # the peers that brought the new values, for pivoting and matching
                "sources": sorted({i["example_peer"] for i in items}),
            },
            src_ip=row["address"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['entity']}|{row['first_seen']:%Y-%m-%d}"
