"""Traffic with addresses that threat-intelligence lists name as malicious or covert infrastructure.

Rationale
    The cheapest signal there is: a flow whose remote end is on a list of botnet C2 servers,
    compromised routers, open proxies or Tor exits loaded with ``orbwatch intel add``. Covert
    (ORB) networks rotate their nodes within days, so indicators decay
    (:mod:`orbwatch.enrich.decay`); while an indicator is fresh it is still the most precise
    evidence.
    Matching is done in both directions: an internal host calling out to listed
    infrastructure (C2, relay enrolment) and listed infrastructure reaching in (scanning,
    password spraying, use of a hijacked edge device as a relay).

ATT&CK
    T1090 (Proxy), T1584.005 (Compromise Infrastructure: Botnet).

Inputs
    ``flows``; ``intel`` and ``intel_buckets`` (the loaded lists), live indicators only.

How it decides
    One alert per (listed address, local address, which side was listed), aggregating every
    matching flow and every list that names the address. Addresses in the organisation's
    internal networks and in special-purpose ranges (RFC 6890: private, loopback,
    documentation, multicast ...) are never reported, because real lists such as
    ``firehol_level1`` include bogon ranges like 10.0.0.0/8. Severity:

    * ``high``: an internal host initiated traffic to a listed address and the listed end
      answered (data flowed both ways);
    * ``medium``: an internal host tried to reach a listed address with no answer, or a listed
      address reached an internal host and got an answer;
    * ``low``: a listed address knocked and got nothing back, or every flow was denied by
      a firewall (a blocked scan is worth a count, not a page: firewall denies otherwise produce
      tens of thousands of alerts);
    * ``info``: neither end is internal (transit traffic seen by a sensor).

    Then one level lower (never under ``info``) when the best decayed score of the matching
    indicators is under :data:`FADING_SCORE`, and one level lower when every matching
    indicator is a ``scanner`` that initiated. Expired indicators (decayed under the
    threshold, past ``valid_until``, or marked by ``orbwatch intel expire --mark``) do not
    match at all: an expired indicator is no evidence, and an ``info`` alert per expired match
    would bury the live ones. Alerts carry the decayed score and class of what matched.

Parameters
    ``min_flows`` (default 1): fewer matching flows than this raise nothing.

Known false positives
    Lists that include shared infrastructure (CDN, cloud or resolver addresses such as
    8.8.8.8), Tor exits used on purpose, stale entries whose address has been re-assigned.
    The decayed score says how stale an entry is. Suppress by list, address or detector
    rather than deleting the list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch import netaddr
from orbwatch.detect.base import SEVERITIES, DetectContext, Detector, Finding
from orbwatch.engines.base import memtable
from orbwatch.enrich.decay import with_decay

#: Classes whose listed end initiating traffic is routine background (a knock, not a relay).
BACKGROUND_CLASSES = frozenset({"scanner"})
#: Decayed score under which an indicator is "fading": the alert drops one severity level.
FADING_SCORE = 50.0


def _bucket(key: ir.StringValue) -> ir.StringValue:
    """The intel index bucket of an address key (see :mod:`orbwatch.netaddr`)."""
    return key.startswith(netaddr.V4_MAPPED_PREFIX).ifelse(
        key.substr(0, netaddr.V4_BUCKET_DIGITS), key.substr(0, netaddr.V6_BUCKET_DIGITS)
    )


def flow_sides(flows: ir.Table) -> ir.Table:
    """Each flow twice: once with its responder as the candidate listed peer, once its initiator."""
    views = []
    for side, peer, local in (("dst", "dst", "src"), ("src", "src", "dst")):
        views.append(
            flows.select(
                listed_side=ibis.literal(side),
                peer_ip=flows[f"{peer}_ip"],
                peer_key=flows[f"{peer}_key"],
                local_ip=flows[f"{local}_ip"],
                direction=flows.direction,
                service_port=flows.dst_port,
                protocol=flows.protocol,
                ts=flows.ts_start,
                ts_end=flows.ts_end,
                bytes=flows.src_bytes.fill_null(0) + flows.dst_bytes.fill_null(0),
                answered=(
                    (flows.dst_bytes.fill_null(0) > 0) | (flows.dst_packets.fill_null(0) > 0)
                ),
                denied=(flows.action == "deny"),
                source_file=flows.source_file,
            )
        )
    return views[0].union(views[1])


def live_entries(intel: ir.Table, ctx: DetectContext) -> ir.Table:
    """Address indicators that have not expired, with their decayed score and class."""
    decayed = with_decay(intel, ctx.config.intel, ctx.now)
    live = decayed.filter(decayed.live & decayed.start_key.notnull())
    return live.select(
        "intel_id",
        "list_name",
        "indicator",
        "start_key",
        "end_key",
        "decayed_score",
        "intel_class",
        "prefix_len",
        v4_entry=live.family == 4,
    )


def listed_hits(ctx: DetectContext, sides: ir.Table, entries: ir.Table) -> ir.Table:
    """Rows of ``sides`` whose peer falls in a live indicator (bucket join plus wide ranges),
    outside the networks that are never reported."""
    buckets = ctx.engine.table("intel_buckets")
    sides = sides.filter(sides.peer_key.notnull()).mutate(
        bucket=_bucket(sides.peer_key),
        peer_v4=sides.peer_key.startswith(netaddr.V4_MAPPED_PREFIX),
    )
    indexed = buckets.join(entries, "intel_id")
    narrow = sides.join(
        indexed,
        [
            sides.bucket == indexed.bucket,
            sides.peer_key >= indexed.start_key,
            sides.peer_key <= indexed.end_key,
        ],
    )
    wide_entries = indexed.filter(indexed.bucket == netaddr.WIDE_BUCKET)
    # IPv6 entries such as ::/8 (IPv6 bogon lists) span the IPv4-mapped keys: an entry
    # only ever matches peers of its own family. (Narrow buckets cannot mix families.)
    wide = sides.join(
        wide_entries,
        [
            sides.peer_v4 == wide_entries.v4_entry,
            sides.peer_key >= wide_entries.start_key,
            sides.peer_key <= wide_entries.end_key,
        ],
    )
    columns = [
        *(c for c in sides.columns if c not in ("peer_v4", "bucket")),
        "list_name",
        "indicator",
        "decayed_score",
        "intel_class",
    ]
    hits = narrow.select(*columns).union(wide.select(*columns))
    return without_never_malicious(hits, ctx)


def without_never_malicious(rows: ir.Table, ctx: DetectContext) -> ir.Table:
    """``rows`` minus peers in internal or special-purpose networks (never reported)."""
    never = memtable(netaddr.ranges_table(ctx.config.never_malicious()))
    return rows.anti_join(never, [rows.peer_key >= never.start_key, rows.peer_key <= never.end_key])


@dataclass
class KnownBadInfrastructure(Detector):
    """Flows to or from addresses on loaded threat-intelligence lists."""

    id: ClassVar[str] = "known_bad_infrastructure"
    summary: ClassVar[str] = "Traffic with addresses named by loaded threat-intelligence lists"
    techniques: ClassVar[tuple[str, ...]] = ("T1090", "T1584.005")
    requires: ClassVar[tuple[str, ...]] = ("flows", "intel", "intel_buckets")

    #: Fewer matching flows than this raise no alert.
    min_flows: int = 1

    def candidates(self, ctx: DetectContext) -> ir.Table:
        entries = live_entries(ctx.engine.table("intel"), ctx)
        hits = listed_hits(ctx, flow_sides(ctx.engine.table("flows")), entries)
        return self._aggregate(hits)

    def _aggregate(self, hits: ir.Table) -> ir.Table:
        pair = ["listed_side", "peer_ip", "local_ip"]
        # Per list entry first: every entry naming the peer matched exactly the pair's flows,
        # so the pair-level figures are the maximum over entries (no double counting when one
        # list holds overlapping entries).
        per_entry = hits.group_by([*pair, "list_name", "indicator"]).aggregate(
            event_count=hits.count(),
            bytes=hits.bytes.sum(),
            first_seen=hits.ts.min(),
            last_seen=hits.ts_end.max(),
            answered_flows=hits.answered.cast("int64").sum(),
            denied_flows=hits.denied.cast("int64").sum(),
            directions=hits.direction.nunique(),
            direction=hits.direction.max(),
            ports=hits.service_port.nunique(),
            min_port=hits.service_port.min(),
            max_port=hits.service_port.max(),
            protocol=hits.protocol.max(),
            score=hits.decayed_score.max(),
            intel_class=hits.intel_class.max(),
            source_file=hits.source_file.min(),
        )
        label = per_entry.list_name.concat(
            " (",
            per_entry.indicator,
            ", ",
            per_entry.intel_class,
            ", score ",
            per_entry.score.round(0).cast("int64").cast("string"),
            ")",
        )
        per_entry = per_entry.mutate(label=label)
        out = per_entry.group_by(pair).aggregate(
            event_count=per_entry.event_count.max(),
            bytes=per_entry.bytes.max(),
            first_seen=per_entry.first_seen.min(),
            last_seen=per_entry.last_seen.max(),
            answered_flows=per_entry.answered_flows.max(),
            denied_flows=per_entry.denied_flows.max(),
            direction=per_entry.direction.max(),
            ports=per_entry.ports.max(),
            min_port=per_entry.min_port.min(),
            max_port=per_entry.max_port.max(),
            protocol=per_entry.protocol.max(),
            intel_score=per_entry.score.max(),
            source_file=per_entry.source_file.min(),
            lists=per_entry.label.collect(),
            classes=per_entry.intel_class.collect(),
        )
        return out.filter(out.event_count >= self.min_flows).mutate(entity=out.peer_ip)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        lists = sorted(row["lists"])
        classes = sorted(set(row["classes"]))
        outward = row["listed_side"] == "dst"
        internal = row["direction"] in ("outbound", "inbound", "internal")
        flows, answered, denied = row["event_count"], row["answered_flows"], row["denied_flows"]
        strength = float(row["intel_score"])
        severity = _severity(outward, internal, answered, denied, flows)
        severity = _adjust(severity, strength, classes, outward)
        peer, local = row["peer_ip"], row["local_ip"]
        ports = (
            str(row["min_port"])
            if row["ports"] == 1
            else f"{row['ports']} ports ({row['min_port']}-{row['max_port']})"
        )
        if outward:
            title = f"{local} connected to listed address {peer}"
            story = f"{local} initiated {flows} flow(s) to {peer} on {row['protocol']}/{ports}"
        else:
            title = f"Listed address {peer} connected to {local}"
            story = f"{peer} initiated {flows} flow(s) to {local} on {row['protocol']}/{ports}"
        story += (
            f" between {row['first_seen']:%Y-%m-%d %H:%M:%S} and "
            f"{row['last_seen']:%Y-%m-%d %H:%M:%S} UTC; {answered} answered, {denied} denied, "
            f"{row['bytes']} bytes in total. {peer} is listed by {', '.join(lists)}: "
            f"class {'/'.join(classes)}, decayed intel score {strength:.0f} of 100"
            + (" (fading: severity lowered)" if strength < FADING_SCORE else "")
            + "."
        )
        score = min(
            100.0,
            0.5 * strength
            + 4 * math.log10(1 + row["bytes"])
            + 3 * len(lists)
            + 2 * math.log2(1 + flows),
        )
        evidence = {
            "listed_side": row["listed_side"],
            "direction": row["direction"],
            "lists": lists,
            "intel_classes": classes,
            "flows": flows,
            "answered_flows": answered,
            "denied_flows": denied,
            "bytes": row["bytes"],
            "protocol": row["protocol"],
            "service_ports": [row["min_port"], row["max_port"]],
            "intel_score": round(strength, 2),
            "example_source_file": row["source_file"],
        }
        src, dst = (local, peer) if outward else (peer, local)
        return Finding(
            entity=peer,
            severity=severity,
            score=round(score, 1),
            title=title,
            explanation=story,
            evidence=evidence,
            src_ip=src,
            dst_ip=dst,
            bytes=row["bytes"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['listed_side']}|{row['peer_ip']}|{row['local_ip']}"


def _severity(outward: bool, internal: bool, answered: int, denied: int, flows: int) -> str:
    if not internal:
        return "info"
    if denied == flows:
        return "low"
    if outward:
        return "high" if answered else "medium"
    return "medium" if answered else "low"


def _adjust(severity: str, strength: float, classes: list[str], outward: bool) -> str:
    """Lower the traffic-based severity one level for a fading indicator (decayed score under
    :data:`FADING_SCORE`) and one for a scanner that only knocked on us, never under info."""
    level = SEVERITIES.index(severity)
    if strength < FADING_SCORE:
        level -= 1
    if not outward and classes and set(classes) <= BACKGROUND_CLASSES:
        level -= 1
    return SEVERITIES[max(level, 0)] if severity != "info" else "info"
