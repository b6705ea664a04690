"""Scanning, and the reconnaissance-then-access chain: a source that scans the edge, then gets in.

Rationale
    Covert networks scout before they strike: exit nodes sweep an organisation's VPN portals,
    SSH and management ports, and the same or a sibling node later logs in with sprayed or
    stolen credentials (Quad7/CovertNetwork-1658: spray from the same relays that scanned).
    Any single scan is background noise on the Internet; a scan *followed by a successful
    login or a connection that exchanged data* is the chain worth a page. An internal device
    that scans the Internet or the internal network is a different but equally bad sign: a
    router or camera enrolled in a botnet looks for its next victims (Raptor Train, Mirai).

ATT&CK
    T1595 (Active Scanning) followed by T1133 (External Remote Services); T1046 (Network
    Service Discovery) for scans by internal devices.

Inputs
    ``flows``; ``logins`` (successful authentications from the scanning address).

How it decides
    A *probe* is a flow the responder answered with no payload (refused, unanswered, reset or
    denied). Per source and UTC day, a scan is either vertical (one target probed on at least
    ``min_ports`` distinct ports) or horizontal (one port probed on at least ``min_hosts``
    distinct targets). Then, for scans of our addresses from outside, everything the source
    achieved from the scan's start on: successful logins (``logins.outcome = 'success'`` from
    the same address) and inbound flows that exchanged payload. Severity:

    * ``high``: inbound scan followed by a successful login (T1595 then T1133);
    * ``medium``: inbound scan followed by a data-carrying connection; or an internal address
      scanning (outbound or internal targets: a device of ours doing reconnaissance);
    * ``info``: inbound scan with nothing after it (counted, not paged: every Internet-facing
      address is scanned every day).

Parameters
    ``min_ports`` (10) and ``min_hosts`` (10): distinct probed ports on one target, or targets
    on one port, that make a scan. Lower values catch slow, partial scans and also catch
    clients retrying a dead service.

Known false positives
    Vulnerability scanners and asset inventories of the organisation itself (allow-list them);
    peer-to-peer clients and busy NAT gateways probing many peers on one port; monitoring that
    checks many ports. A shared egress (CGNAT, corporate proxy) can join a scanner and a
    legitimate user of the same address into one chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.flows import day_index, epoch_seconds, index_time
from orbwatch.detect.base import DetectContext, Detector, Finding


@dataclass
class ReconThenAccess(Detector):
    """Scans by any party, and scans of our edge followed by a login or a working connection."""

    id: ClassVar[str] = "recon_then_access"
    summary: ClassVar[str] = "Port scans, and scans of the edge followed by successful access"
    techniques: ClassVar[tuple[str, ...]] = ("T1595", "T1133", "T1046")
    requires: ClassVar[tuple[str, ...]] = ("flows", "logins")

    #: Distinct probed ports on one target that make a vertical scan.
    min_ports: int = 10
    #: Distinct probed targets on one port that make a horizontal scan.
    min_hosts: int = 10

    def candidates(self, ctx: DetectContext) -> ir.Table:
        flows = ctx.engine.table("flows")
        flows = flows.filter(flows.direction != "external")
        flows = flows.mutate(day=day_index(epoch_seconds(ctx.engine, flows.ts_start)))
        scans = self._scans(flows)
        return self._with_access(scans, flows, ctx.engine.table("logins"))

    def _scans(self, flows: ir.Table) -> ir.Table:
        """One row per (source, day) whose probes form a vertical or horizontal scan."""
        probes = flows.filter((flows.dst_bytes.fill_null(0) == 0) | (flows.action == "deny"))
        per_src = ["src_key", "day"]
        vertical = probes.group_by([*per_src, "dst_key"]).aggregate(ports=probes.dst_port.nunique())
        vertical = vertical.group_by(per_src).aggregate(max_ports=vertical.ports.max())
        horizontal = probes.group_by([*per_src, "dst_port"]).aggregate(
            hosts=probes.dst_key.nunique()
        )
        horizontal = horizontal.group_by(per_src).aggregate(max_hosts=horizontal.hosts.max())
        zero = ibis.literal(0, "int64")
        summary = probes.group_by(per_src).aggregate(
            src_ip=probes.src_ip.min(),
            probes=probes.count(),
            targets=probes.dst_key.nunique(),
            probed_ports=probes.dst_port.nunique(),
            min_port=probes.dst_port.min(),
            max_port=probes.dst_port.max(),
            denied=(probes.action == "deny").ifelse(1, zero).sum(),
            inbound=(probes.direction == "inbound").ifelse(1, zero).sum(),
            internal=(probes.direction == "internal").ifelse(1, zero).sum(),
            first_seen=probes.ts_start.min(),
            last_seen=probes.ts_start.max(),
            example_target=probes.dst_ip.min(),
            source_file=probes.source_file.min(),
        )
        scans = summary.join(vertical, per_src).join(horizontal, per_src)
        return scans.filter(
            (scans.max_ports >= self.min_ports) | (scans.max_hosts >= self.min_hosts)
        )

    def _with_access(self, scans: ir.Table, flows: ir.Table, logins: ir.Table) -> ir.Table:
        """Add what each inbound scanner achieved from its scan's start on."""
        inbound = scans.filter(scans.inbound > 0).select("src_key", "day", "first_seen")
        worked = flows.filter((flows.direction == "inbound") & (flows.dst_bytes.fill_null(0) > 0))
        conn = inbound.join(
            worked, [inbound.src_key == worked.src_key, worked.ts_start >= inbound.first_seen]
        )
        conn = conn.group_by([inbound.src_key, inbound.day]).aggregate(
            access_flows=conn.count(),
            access_first=conn.ts_start.min(),
            access_last=conn.ts_start.max(),
            access_ports=conn.dst_port.nunique(),
            access_port=conn.dst_port.min(),
            access_target=conn.dst_ip.min(),
            access_bytes=(conn.src_bytes.fill_null(0) + conn.dst_bytes.fill_null(0)).sum(),
        )
        ok = logins.filter(logins.outcome == "success")
        auth = inbound.join(ok, [inbound.src_key == ok.src_key, ok.ts >= inbound.first_seen])
        auth = auth.group_by([inbound.src_key, inbound.day]).aggregate(
            logins=auth.count(),
            login_first=auth.ts.min(),
            login_last=auth.ts.max(),
            users=auth.user.nunique(),
            example_user=auth.user.min(),
            login_service=auth.service.min(),
        )
        keys = ["src_key", "day"]
        out = scans.left_join(conn, keys).select(scans, *[c for c in conn.columns if c not in keys])
        out = out.left_join(auth, keys).select(out, *[c for c in auth.columns if c not in keys])
        return out.mutate(
            entity=out.src_ip,
            event_count=out.probes + out.access_flows.fill_null(0) + out.logins.fill_null(0),
            last_seen=ibis.greatest(
                out.last_seen,
                out.access_last.fill_null(out.last_seen),
                out.login_last.fill_null(out.last_seen),
            ),
        )

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        src = row["src_ip"]
        inbound = row["inbound"] > 0
        logged_in, connected = bool(row["logins"]), bool(row["access_flows"])
        kind = _kind(row, self.min_ports, self.min_hosts)
        ports = (
            str(row["min_port"])
            if row["probed_ports"] == 1
            else f"{row['probed_ports']} ports ({row['min_port']}-{row['max_port']})"
        )
        story = (
            f"{src} probed {row['targets']} address(es) on {ports} with {row['probes']} "
            f"unanswered or refused connection(s) ({kind}) between "
            f"{row['first_seen']:%Y-%m-%d %H:%M:%S} and {row['last_seen']:%H:%M:%S} UTC"
            f"{', ' + str(row['denied']) + ' denied by a firewall' if row['denied'] else ''}."
        )
        if not inbound:
            severity = "medium"
            title = f"Internal address {src} scanned {row['targets']} address(es)"
            story += " The scanner is one of ours: a device doing reconnaissance, often the "
            story += "first sign it has been enrolled in a botnet."
        elif logged_in:
            severity = "high"
            title = f"{src} scanned the edge, then logged in as {row['example_user']}"
            story += (
                f" From the scan on it then logged in successfully {row['logins']} time(s) as "
                f"{row['users']} account(s) (e.g. {row['example_user']} via "
                f"{row['login_service']}), first at {row['login_first']:%Y-%m-%d %H:%M:%S} UTC."
            )
        elif connected:
            severity = "medium"
            title = f"{src} scanned the edge, then connected to {row['access_target']}"
            story += (
                f" It then exchanged data with our addresses in {row['access_flows']} "
                f"connection(s) on {row['access_ports']} port(s) (e.g. {row['access_target']} "
                f"port {row['access_port']}), first at {row['access_first']:%Y-%m-%d %H:%M:%S}."
            )
        else:
            severity = "info"
            title = f"{src} scanned the edge ({row['targets']} address(es))"
            story += " Nothing it tried afterwards succeeded."
        evidence = {
            "kind": kind,
            "probes": row["probes"],
            "targets": row["targets"],
            "probed_ports": row["probed_ports"],
            "max_ports_on_one_target": row["max_ports"],
            "max_targets_on_one_port": row["max_hosts"],
            "denied": row["denied"],
            "example_target": row["example_target"],
            "access_flows": row["access_flows"] or 0,
            "successful_logins": row["logins"] or 0,
            "example_source_file": row["source_file"],
        }
        score = min(100.0, 2.0 * row["max_ports"] + 2.0 * row["max_hosts"]) / 2
        score += 40 * logged_in + 20 * connected
        return Finding(
            entity=src,
            severity=severity,
            score=round(min(score, 100.0), 1),
            title=title,
            explanation=story,
            evidence=evidence,
            src_ip=src,
            dst_ip=row["access_target"] if connected else row["example_target"],
            user=row["example_user"] if logged_in else None,
            bytes=row["access_bytes"],
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['src_ip']}|{index_time(row['day'], 86_400):%Y-%m-%d}"


def _kind(row: dict[str, Any], min_ports: int, min_hosts: int) -> str:
    parts = []
    if row["max_ports"] >= min_ports:
        parts.append(f"vertical: {row['max_ports']} ports on one address")
    if row["max_hosts"] >= min_hosts:
        parts.append(f"horizontal: {row['max_hosts']} addresses on one port")
    return "; ".join(parts)
