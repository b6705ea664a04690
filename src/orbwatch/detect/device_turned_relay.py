"""Relay behaviour of our own device: it forwards what strangers send it (joined a covert network).

Rationale
    A hijacked router or IoT device becomes a node of a covert (ORB) network: it listens on a
    port its owner never opened (Quad7: 7777 and 11288; an Asus cluster on 63256; LapDogs: one
    port per intrusion set) and forwards every connection it receives to the next hop. From the
    flows that is unmistakable once looked for: many external addresses connect *in* on an
    unusual port, and within a second of each, the device opens an *outbound* connection
    carrying the same number of bytes (and receiving what it hands back), so the device's
    bytes in and bytes out balance. No per-IP indicator survives the daily rotation of the
    network's nodes; this shape does.

ATT&CK
    T1090 (Proxy), T1584.005 (Compromise Infrastructure: Botnet).

Inputs
    ``flows``.

How it decides
    Per internal device and service port, inbound flows from external addresses on a
    port outside ``usual_ports`` from at least ``min_sources`` distinct sources. An inbound flow
    is *mirrored* when the device opened an outbound connection to another external address
    within ``max_lag_s`` seconds after it started, with bytes both ways within
    ``byte_tolerance`` (relative) or ``byte_slack`` (absolute) of the inbound flow's. The
    join is bounded: flows meet only within the same or the next ``max_lag_s`` time bucket
    of the same device, never in a cross join. Raised when at least ``min_mirrored`` inbound
    flows and ``min_mirrored_share`` of them are mirrored; ``high`` from 80% mirrored.

Parameters
    See the dataclass fields below.

Known false positives
    Reverse proxies, load balancers, SOCKS or HTTP proxies and VPN concentrators of the
    organisation itself do exactly this on purpose; declare them (or allow-list the port)
    rather than lowering thresholds. Game servers and peer-to-peer clients on odd ports
    receive many sources but rarely mirror bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.flows import day_index, epoch_seconds
from orbwatch.detect.base import DetectContext, Detector, Finding

#: Ports where an edge device is expected to accept the Internet (VPN, remote access, web,
#: mail, DNS): a relay hiding on one of these is left to the traffic-spike detector.
USUAL_PORTS = (
    21,
    22,
    25,
    53,
    80,
    110,
    123,
    143,
    443,
    465,
    500,
    587,
    993,
    995,
    1194,
    1701,
    1723,
    3389,
    4500,
    8080,
    8443,
    10443,
    51820,
)


#: External sources listed in an alert's evidence under ``sources`` (the rest are counted in
#: ``source_count``). Every one of them is a node of the covert network: listing them is what
#: lets the analyst (and :mod:`orbwatch.evaluate.metrics`) hold them as caught. A bound, because
#: a busy relay can serve thousands of nodes.
MAX_LISTED = 1000


@dataclass
class DeviceTurnedRelay(Detector):
    """An internal device forwarding inbound connections from many sources, byte for byte."""

    id: ClassVar[str] = "device_turned_relay"
    summary: ClassVar[str] = "Internal device relaying inbound connections on an unusual port"
    techniques: ClassVar[tuple[str, ...]] = ("T1090", "T1584.005")
    requires: ClassVar[tuple[str, ...]] = ("flows",)

    #: Distinct external sources connecting in on the port in a day.
    min_sources: int = 5
    #: Inbound flows that must be mirrored by an outbound one.
    min_mirrored: int = 5
    #: Share of the port's inbound flows that must be mirrored.
    min_mirrored_share: float = 0.5
    #: Seconds after an inbound flow within which the outbound one must start.
    max_lag_s: int = 2
    #: Relative difference of bytes (each way) still counted as the same payload.
    byte_tolerance: float = 0.1
    #: Absolute difference of bytes still counted as the same payload (protocol overhead).
    byte_slack: int = 64
    #: Service ports where inbound traffic is expected and never judged here.
    usual_ports: tuple[int, ...] = USUAL_PORTS

    def candidates(self, ctx: DetectContext) -> ir.Table:
        flows = ctx.engine.table("flows")
        second = epoch_seconds(ctx.engine, flows.ts_start)
        # Only the columns used below: the engine may materialise these rows once for the
        # several parts that read them, so they should be narrow.
        base = flows.select(
            "direction",
            "src_key",
            "dst_key",
            "src_ip",
            "dst_ip",
            "src_port",
            "dst_port",
            "protocol",
            "ts_start",
            "ts_end",
            "source_file",
            t=second,
            bucket=second // self.max_lag_s,
            sb=flows.src_bytes.fill_null(0),
            db=flows.dst_bytes.fill_null(0),
        )
        inbound = base.filter(
            (base.direction == "inbound") & ~base.dst_port.isin(list(self.usual_ports))
        )
        busy = inbound.group_by(["dst_key", "dst_port"]).aggregate(
            sources=inbound.src_key.nunique()
        )
        busy = busy.filter(busy.sources >= self.min_sources)
        inbound = inbound.semi_join(busy, ["dst_key", "dst_port"])
        outbound = base.filter(base.direction == "outbound").semi_join(
            busy.select(src_key=busy.dst_key).distinct(), "src_key"
        )
        mirrored = self._mirrored(inbound, outbound)
        return self._summarise(inbound, mirrored, busy)

    def _mirrored(self, inbound: ir.Table, outbound: ir.Table) -> ir.Table:
        """Inbound flows with a matching outbound flow (one row per inbound flow)."""
        ins = inbound.select(
            dev=inbound.dst_key,
            port=inbound.dst_port,
            client=inbound.src_key,
            cport=inbound.src_port,
            t_in=inbound.t,
            in_sent=inbound.sb,
            in_recv=inbound.db,
            bucket=inbound.bucket,
        )
        outs = outbound.select(
            dev=outbound.src_key,
            upstream=outbound.dst_key,
            upstream_ip=outbound.dst_ip,
            upstream_port=outbound.dst_port,
            t_out=outbound.t,
            out_sent=outbound.sb,
            out_recv=outbound.db,
            bucket=outbound.bucket,
            out_bytes=outbound.sb + outbound.db,
        )
        matches = []
        for shift in (0, 1):
            joined = ins.join(
                outs,
                [
                    ins.dev == outs.dev,
                    ins.bucket + shift == outs.bucket,
                    outs.t_out >= ins.t_in,
                    outs.t_out <= ins.t_in + self.max_lag_s,
                    outs.upstream != ins.client,
                    self._same(ins.in_sent, outs.out_sent),
                    self._same(ins.in_recv, outs.out_recv),
                ],
            )
            matches.append(
                joined.select(
                    "dev",
                    "port",
                    "client",
                    "cport",
                    "t_in",
                    "upstream",
                    "upstream_ip",
                    "upstream_port",
                    "out_bytes",
                )
            )
        pairs = matches[0].union(matches[1])
        return pairs.group_by(["dev", "port", "client", "cport", "t_in"]).aggregate(
            upstream=pairs.upstream.min(),
            upstream_ip=pairs.upstream_ip.min(),
            upstream_port=pairs.upstream_port.min(),
            out_bytes=pairs.out_bytes.max(),
        )

    def _same(self, a: ir.IntegerValue, b: ir.IntegerValue) -> ir.BooleanValue:
        slack = ibis.greatest(ibis.greatest(a, b) * self.byte_tolerance, self.byte_slack)
        return (a - b).abs() <= slack

    def _summarise(self, inbound: ir.Table, mirrored: ir.Table, busy: ir.Table) -> ir.Table:
        keys = ["dst_key", "dst_port"]
        per_port = inbound.group_by(keys).aggregate(
            device=inbound.dst_ip.min(),
            inbound_flows=inbound.count(),
            bytes_in=(inbound.sb + inbound.db).sum(),
            first_seen=inbound.ts_start.min(),
            last_seen=inbound.ts_end.max(),
            protocol=inbound.protocol.min(),
            example_source=inbound.src_ip.min(),
            source_file=inbound.source_file.min(),
            days=day_index(inbound.t).nunique(),
        )

        relayed = mirrored.group_by(["dev", "port"]).aggregate(
            mirrored=mirrored.count(),
            upstreams=mirrored.upstream.nunique(),
            example_upstream=mirrored.upstream_ip.min(),
            upstream_port=mirrored.upstream_port.min(),
            bytes_out=mirrored.out_bytes.sum(),
        )
        joined = per_port.join(busy, keys).join(
            relayed,
            [
                per_port.dst_key == relayed.dev,
                per_port.dst_port == relayed.port,
            ],
        )
        out = joined.select(
            per_port, "sources", *[c for c in relayed.columns if c not in ("dev", "port")]
        )
        out = out.mutate(share=out.mirrored / out.inbound_flows)
        out = out.filter(
            (out.mirrored >= self.min_mirrored) & (out.share >= self.min_mirrored_share)
        )
        distinct = inbound.select(*keys, "src_ip").distinct()
        listed = distinct.group_by(keys).aggregate(source_list=distinct.src_ip.collect())
        out = out.join(listed, keys)
        return out.mutate(entity=out.device, event_count=out.inbound_flows + out.mirrored)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        device, port, share = row["device"], row["dst_port"], float(row["share"])
        severity = "high" if share >= 0.8 else "medium"
        story = (
            f"{device} accepted {row['inbound_flows']} {row['protocol']} connection(s) on port "
            f"{port} from {row['sources']} external address(es) (e.g. {row['example_source']}) "
            f"between {row['first_seen']:%Y-%m-%d %H:%M} and {row['last_seen']:%Y-%m-%d %H:%M} "
            f"UTC ({row['days']} day(s)); {row['mirrored']} of them ({share:.0%}) were "
            f"followed within {self.max_lag_s} s by a connection from {device} to "
            f"{row['upstreams']} other external address(es) (e.g. {row['example_upstream']} "
            f"port {row['upstream_port']}) carrying the same bytes both ways: "
            f"{row['bytes_in']} bytes in, {row['bytes_out']} bytes relayed out. Port {port} "
            "is not a service this device is expected to offer: the device forwards strangers' "
            "traffic, the signature of a node of a covert network."
        )
        evidence = {
            "port": port,
            "source_count": row["sources"],
            "inbound_flows": row["inbound_flows"],
            "mirrored_flows": row["mirrored"],
            "mirrored_share": round(share, 3),
            "upstreams": row["upstreams"],
            "example_source": row["example_source"],
            "example_upstream": row["example_upstream"],
            "bytes_in": row["bytes_in"],
            "bytes_relayed_out": row["bytes_out"],
            "example_source_file": row["source_file"],
            "days": row["days"],
            "sources": sorted(row["source_list"])[:MAX_LISTED],
        }
        return Finding(
            entity=device,
            severity=severity,
            score=round(min(100.0, 50 * share + 2 * row["sources"] + row["upstreams"]), 1),
            title=f"{device} relays connections from {row['sources']} sources on port {port}",
            explanation=story,
            evidence=evidence,
            src_ip=row["example_source"],
            dst_ip=device,
            bytes=row["bytes_in"] + row["bytes_out"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['device']}|{row['dst_port']}"
