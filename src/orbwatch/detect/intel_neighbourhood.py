"""Traffic with unlisted addresses that sit next to live threat-intelligence indicators.

Rationale
    Covert (ORB) networks are built from the same kinds of devices in the same networks:
    Raptor Train and Quad7 enrolled thousands of routers of a few models, on a few
    residential ISPs, and rented VPS tiers from a few hosting providers. Feeds only ever know
    some of the nodes, and nodes rotate within days, so the unlisted address in the same /24
    as a fresh indicator, or in an autonomous system that holds several of them, is worth a
    look. It is *weaker* evidence than a match and is raised as its own finding, never as a
    match, with a bounded score.

ATT&CK
    T1090 (Proxy), T1584.005 (Compromise Infrastructure: Botnet).

Inputs
    ``flows``; ``intel`` and ``intel_buckets`` (live indicators only: decayed, see
    :mod:`orbwatch.enrich.decay`); ``ip_info`` for the ASN of addresses when
    ``orbwatch enrich`` has filled it (with an empty ``ip_info`` the ASN part finds nothing and
    only the /24 part runs).

How it decides
    A peer address of a flow (either side) that no live indicator covers, outside internal and
    special-purpose networks, is a neighbour when

    * a live indicator of /24 or narrower (IPv4) or /48 or narrower (IPv6) lies in the same
      /24 (/48): subnet suspicion = ``subnet_weight`` x the best decayed score there
      (at most 40 with the default 0.4);
    * its ASN holds at least ``min_asn_indicators`` live single-address indicators *and* they
      are at least ``min_asn_density`` (10%) of the ASN's addresses seen in the flows: ASN
      suspicion = ``asn_weight`` x their best decayed score (at most 20 with the default 0.2).
      The density test keeps a big residential ISP or cloud, where a feed lists a handful of
      its millions of addresses, from making every one of its customers a neighbour.

    The alert score is the sum, capped at ``max_suspicion`` (50), so a neighbour always ranks
    below a real match. A finding is raised only when an internal host is involved (inbound
    or outbound traffic) and the suspicion reaches ``low_at`` (25); its severity is ``low``,
    never higher. Weaker neighbourhood (``info``) is not raised by default: with rotating
    relays next to millions of benign customers it would bury the analyst; set
    ``raise_info`` to see it.

Parameters
    ``subnet_weight`` 0.4, ``asn_weight`` 0.2, ``min_asn_indicators`` 3, ``min_asn_density``
    0.1, ``max_suspicion`` 50, ``low_at`` 25, ``raise_info`` false, ``min_flows`` 1.

Known false positives
    Large residential and mobile ISPs and cloud providers hold listed addresses next to
    millions of benign ones: the ASN part needs several live indicators in the AS and stays at
    ``info`` alone; shared hosting /24s; CDN ranges. Suppress by network or raise
    ``min_asn_indicators``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch import netaddr
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.known_bad_infrastructure import (
    flow_sides,
    listed_hits,
    live_entries,
    without_never_malicious,
)

#: Hex digits of an address key that make its /24 (IPv4, mapped: 96 + 24 bits) or /48 (IPv6).
V4_NET_DIGITS = 30
V6_NET_DIGITS = 12


def _neighbourhood(key: ir.StringValue) -> ir.StringValue:
    return key.startswith(netaddr.V4_MAPPED_PREFIX).ifelse(
        key.substr(0, V4_NET_DIGITS), key.substr(0, V6_NET_DIGITS)
    )


@dataclass
class IntelNeighbourhood(Detector):
    """Unlisted addresses in the same /24 (/48) or ASN as live indicators."""

    id: ClassVar[str] = "intel_neighbourhood"
    summary: ClassVar[str] = (
        "Traffic with unlisted addresses next to live indicators (same /24 or ASN)"
    )
    techniques: ClassVar[tuple[str, ...]] = ("T1090", "T1584.005")
    requires: ClassVar[tuple[str, ...]] = ("flows", "intel", "intel_buckets", "ip_info")

    #: Share of the best decayed score in the same /24 (/48) that a neighbour inherits.
    subnet_weight: float = 0.4
    #: Share of the best decayed score in the same ASN that a neighbour inherits.
    asn_weight: float = 0.2
    #: Live single-address indicators an ASN must hold before it counts.
    min_asn_indicators: int = 3
    #: ...and the share of the ASN's addresses seen in the flows that they must be.
    min_asn_density: float = 0.1
    #: Raise ``info`` findings too (external-only traffic, or suspicion under ``low_at``).
    raise_info: bool = False
    #: Upper bound of the alert score: below any real match.
    max_suspicion: float = 50.0
    #: Suspicion from which a finding involving an internal host is ``low`` (else ``info``).
    low_at: float = 25.0
    #: Fewer flows than this raise nothing.
    min_flows: int = 1

    def _subnets(self, entries: ir.Table) -> ir.Table:
        narrow = entries.filter(
            (entries.v4_entry & (entries.prefix_len >= 24))
            | (~entries.v4_entry & (entries.prefix_len >= 48))
        )
        narrow = narrow.mutate(nbr=_neighbourhood(narrow.start_key))
        return narrow.group_by("nbr").aggregate(
            subnet_score=narrow.decayed_score.max(),
            subnet_indicators=narrow.count(),
            subnet_example=narrow.list_name.concat(":", narrow.indicator).min(),
        )

    def _asns(self, entries: ir.Table, info: ir.Table, peers: ir.Table) -> ir.Table:
        single = entries.filter(entries.start_key == entries.end_key)
        placed = single.join(info, single.start_key == info.ip_key)
        stats = placed.group_by(ent_asn=placed.asn).aggregate(
            asn_score=placed.decayed_score.max(), asn_indicators=placed.count()
        )
        seen = peers.select("peer_key").distinct()
        seen = seen.join(info, seen.peer_key == info.ip_key)
        seen = seen.group_by(seen_asn=seen.asn).aggregate(asn_addresses=seen.count())
        stats = stats.join(seen, stats.ent_asn == seen.seen_asn)
        return stats.filter(
            (stats.asn_indicators >= self.min_asn_indicators)
            & (stats.asn_indicators >= self.min_asn_density * stats.asn_addresses)
        ).drop("seen_asn", "asn_addresses")

    def candidates(self, ctx: DetectContext) -> ir.Table:
        flows = ctx.engine.table("flows")
        near = self._neighbours(ctx, flows)
        # Back to the flows only for the few neighbours: one hash join of each flow side
        # against a small table, instead of range joins and left joins over every flow twice.
        sides = flow_sides(flows)
        rows = sides.join(near, sides.peer_key == near.near_key).drop("near_key")
        if not self.raise_info:
            rows = rows.filter(rows.direction.isin(["inbound", "outbound"]))
        return self._aggregate(rows)

    def _neighbours(self, ctx: DetectContext, flows: ir.Table) -> ir.Table:
        """The unlisted peer addresses next to live indicators, with their evidence.

        Everything that decides whether an address is a neighbour depends on the address
        alone (its /24 or /48, its AS, whether a list or a never-reported network covers it),
        so it is decided once per distinct address of the flows (a few hundred thousand keys
        for ten million flows), not once per flow side.
        """
        engine = ctx.engine
        entries = live_entries(engine.table("intel"), ctx)
        raw_info = engine.table("ip_info")
        info = raw_info.filter(raw_info.asn.notnull()).select("ip_key", "asn")
        keys = flows.select(peer_key=flows.dst_key).union(
            flows.select(peer_key=flows.src_key), distinct=True
        )
        keys = keys.filter(keys.peer_key.notnull())
        listed = listed_hits(ctx, keys, entries).select(listed_key=ibis._.peer_key).distinct()
        peers = without_never_malicious(keys, ctx)
        peers = peers.anti_join(listed, peers.peer_key == listed.listed_key)
        peers = peers.mutate(peer_nbr=_neighbourhood(peers.peer_key))
        subnets, asns = self._subnets(entries), self._asns(entries, info, peers)
        joined = peers.left_join(subnets, peers.peer_nbr == subnets.nbr)
        joined = joined.left_join(info, joined.peer_key == info.ip_key)
        joined = joined.left_join(asns, joined.asn == asns.ent_asn)
        near = joined.filter(joined.subnet_score.notnull() | joined.asn_score.notnull())
        if not self.raise_info:
            suspicion = self.subnet_weight * near.subnet_score.fill_null(0) + (
                self.asn_weight * near.asn_score.fill_null(0)
            )
            near = near.filter(suspicion >= self.low_at)
        return near.select(
            near_key=near.peer_key,
            subnet_score=near.subnet_score,
            subnet_indicators=near.subnet_indicators,
            subnet_example=near.subnet_example,
            asn=near.asn,
            asn_score=near.asn_score,
            asn_indicators=near.asn_indicators,
        )

    def _aggregate(self, near: ir.Table) -> ir.Table:
        out = near.group_by(["listed_side", "peer_ip", "local_ip"]).aggregate(
            event_count=near.count(),
            bytes=near.bytes.sum(),
            first_seen=near.ts.min(),
            last_seen=near.ts_end.max(),
            answered_flows=near.answered.cast("int64").sum(),
            direction=near.direction.max(),
            min_port=near.service_port.min(),
            protocol=near.protocol.max(),
            subnet_score=near.subnet_score.max(),
            subnet_indicators=near.subnet_indicators.max(),
            subnet_example=near.subnet_example.min(),
            asn=near.asn.max(),
            asn_score=near.asn_score.max(),
            asn_indicators=near.asn_indicators.max(),
            source_file=near.source_file.min(),
        )
        return out.filter(out.event_count >= self.min_flows).mutate(entity=out.peer_ip)

    def suspicion(self, subnet_score: float | None, asn_score: float | None) -> float:
        """The bounded score of a neighbour (see the module docstring)."""
        total = self.subnet_weight * (subnet_score or 0.0) + self.asn_weight * (asn_score or 0.0)
        return round(min(self.max_suspicion, total), 1)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        peer, local = row["peer_ip"], row["local_ip"]
        outward = row["listed_side"] == "dst"
        internal = row["direction"] in ("outbound", "inbound", "internal")
        score = self.suspicion(row["subnet_score"], row["asn_score"])
        severity = "low" if internal and score >= self.low_at else "info"
        reasons = []
        if row["subnet_score"] is not None:
            prefix = 24 if ipaddress.ip_address(peer).version == 4 else 48
            net = ipaddress.ip_network(f"{peer}/{prefix}", strict=False)
            reasons.append(
                f"{row['subnet_indicators']} live indicator(s) sit in its network {net} "
                f"(e.g. {row['subnet_example']}; best decayed score {row['subnet_score']:.0f})"
            )
        if row["asn_score"] is not None:
            reasons.append(
                f"its AS{row['asn']} holds {row['asn_indicators']} live indicators "
                f"(best decayed score {row['asn_score']:.0f})"
            )
        who = f"{local} initiated" if outward else f"{peer} initiated"
        other = peer if outward else local
        story = (
            f"{who} {row['event_count']} flow(s) to {other} ({row['protocol']}/"
            f"{row['min_port']}, {row['answered_flows']} answered, {row['bytes']} bytes) between "
            f"{row['first_seen']:%Y-%m-%d %H:%M:%S} and {row['last_seen']:%Y-%m-%d %H:%M:%S} "
            f"UTC. {peer} is not on any list, but {' and '.join(reasons)}. Neighbourhood "
            f"evidence: weaker than a match, score bounded at {self.max_suspicion:.0f}."
        )
        evidence = {
            "listed_side": row["listed_side"],
            "direction": row["direction"],
            "flows": row["event_count"],
            "answered_flows": row["answered_flows"],
            "bytes": row["bytes"],
            "subnet_best_score": row["subnet_score"],
            "subnet_live_indicators": row["subnet_indicators"],
            "subnet_example": row["subnet_example"],
            "asn": row["asn"],
            "asn_best_score": row["asn_score"],
            "asn_live_indicators": row["asn_indicators"],
            "example_source_file": row["source_file"],
        }
        src, dst = (local, peer) if outward else (peer, local)
        title = f"{peer} is next to live threat-intel indicators ({local} talked to it)"
        return Finding(
            entity=peer,
            severity=severity,
            score=score,
            title=title,
            explanation=story,
            evidence=evidence,
            src_ip=src,
            dst_ip=dst,
            bytes=row["bytes"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['listed_side']}|{row['peer_ip']}|{row['local_ip']}"
