"""Grouping alerts into campaigns: one covert-network operation seen through many addresses.

A covert network rotates its relay addresses daily, so its activity arrives as many small alerts
that share something other than an address. Two alerts are *linked* when they share one of these
traits and their time ranges lie within :attr:`CampaignRules.max_gap` of each other:

* an account (``user``): a spray and the later login of the sprayed account;
* an internal target (the internal address or asset the alert is about);
* an external /24 (IPv4) or /48 (IPv6): neighbouring relay nodes in one ISP;
* an autonomous system, only for residential, mobile and hosting networks (ASNs of corporate
  or unknown networks are too broad to mean anything);
* an intrusion-set trait from the evidence: the same unusual service port or the same client
  string (clusters of up to ~60 relays share one listening port and one client).

Campaigns are the connected components of that graph (union-find). A component of one alert is
not a campaign. Alerts are few (already aggregated by the engines), so this runs in Python.

Each campaign records its relay addresses (external addresses in its alerts), how many of them
are already *dead* (not seen in any flow or login for :attr:`CampaignRules.dead_after` before the
newest record in the workspace), and how many of them the loaded threat lists name: what a
static blocklist would have caught (the IOC-extinction figure).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.store.workspace import Workspace

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
LINKING_CLASSES = ("residential", "mobile", "hosting", "vpn", "tor")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network
COMMON_PORTS = frozenset({0, 22, 25, 53, 80, 123, 443, 445, 993, 3389, 8080})


@dataclass(frozen=True)
class CampaignRules:
    """Parameters of the linking rules."""

    #: Alerts further apart than this are not linked, whatever they share.
    max_gap: dt.timedelta = dt.timedelta(days=3)
    #: A relay not seen for this long before the newest record counts as dead.
    dead_after: dt.timedelta = dt.timedelta(days=3)
    #: An AS shared by more alerts than this is too common to link them (a big ISP or cloud).
    max_asn_alerts: int = 25
    #: Alerts below this severity are listed but never linked (too weak to merge operations).
    min_severity: str = "low"


class _UnionFind:
    """Connected components over alert indexes (hand-written: a few lines, no library needed)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _prefix(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def _traits(
    alert: dict[str, Any], internal: list[Net], info: dict[str, dict[str, Any]]
) -> set[str]:
    traits: set[str] = set()
    if alert.get("user"):
        traits.add(f"user:{alert['user'].lower()}")
    for ip in (alert.get("src_ip"), alert.get("dst_ip")):
        if not ip:
            continue
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if any(address in net for net in internal):
            traits.add(f"target:{ip}")
            continue
        traits.add(f"net:{_prefix(ip)}")
        meta = info.get(ip, {})
        if meta.get("asn") and meta.get("net_class") in LINKING_CLASSES:
            traits.add(f"asn:{meta['asn']}")
    evidence = _evidence(alert)
    for key in ("port", "dst_port", "listening_port"):
        port = evidence.get(key)
        if isinstance(port, int) and port not in COMMON_PORTS:
            traits.add(f"port:{port}")
    client = evidence.get("client")
    if isinstance(client, str) and client:
        traits.add(f"client:{client}")
    return traits


def _without_common_asns(traits: list[set[str]], rules: CampaignRules) -> list[set[str]]:
    """Drop ASN traits shared by more than ``max_asn_alerts`` alerts."""
    seen: dict[str, int] = defaultdict(int)
    for alert_traits in traits:
        for trait in alert_traits:
            if trait.startswith("asn:"):
                seen[trait] += 1
    common = {t for t, n in seen.items() if n > rules.max_asn_alerts}
    return [t - common for t in traits]


def _evidence(alert: dict[str, Any]) -> dict[str, Any]:
    try:
        loaded = json.loads(alert.get("evidence") or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _link(alerts: list[dict[str, Any]], traits: list[set[str]], gap: dt.timedelta) -> _UnionFind:
    """Union alerts sharing a trait whose time ranges are within ``gap`` of each other."""
    groups = _UnionFind(len(alerts))
    by_trait: dict[str, list[int]] = defaultdict(list)
    for i, alert_traits in enumerate(traits):
        for trait in alert_traits:
            by_trait[trait].append(i)
    for members in by_trait.values():
        members.sort(key=lambda i: alerts[i]["first_seen"])
        reach = alerts[members[0]]["last_seen"]
        for prev, cur in itertools.pairwise(members):
            if alerts[cur]["first_seen"] - reach <= gap:
                groups.union(prev, cur)
                reach = max(reach, alerts[cur]["last_seen"])
            else:  # a new chain starts: too far from everything before it
                reach = alerts[cur]["last_seen"]
    return groups


def build_campaigns(ws: Workspace, config: Config, rules: CampaignRules | None = None) -> pa.Table:
    """Group the workspace's active alerts into campaigns and store them.

    Writes the ``campaigns`` table (replacing it) and each alert's ``campaign_id``; returns the
    campaigns, most severe first.
    """
    rules = rules or CampaignRules()
    alerts = [
        a
        for a in ws.query(
            "SELECT alert_id, detector, severity, score, techniques, user, src_ip, dst_ip, "
            "entity, first_seen, last_seen, evidence FROM alerts WHERE suppressed_by IS NULL "
            "AND first_seen IS NOT NULL ORDER BY alert_id"
        ).to_pylist()
        if SEVERITY_RANK[a["severity"]] >= SEVERITY_RANK[rules.min_severity]
    ]
    info = _ip_info(ws, alerts)
    internal = [ipaddress.ip_network(c) for c in config.internal_networks]
    traits = _without_common_asns([_traits(a, internal, info) for a in alerts], rules)
    groups = _link(alerts, traits, rules.max_gap)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(alerts)):
        members[groups.find(i)].append(i)
    records = [
        _campaign(ws, [alerts[i] for i in idx], [traits[i] for i in idx], internal, rules)
        for idx in members.values()
        if len(idx) > 1
    ]
    records.sort(key=lambda r: (-SEVERITY_RANK[r["severity"]], -r["score"], r["campaign_id"]))
    table = pa.Table.from_pylist(records, schema=_schema())
    with ws.transaction():
        ws.con.execute("DELETE FROM campaigns")
        ws.con.execute("UPDATE alerts SET campaign_id = NULL")
        ws.append("campaigns", table)
        pairs = [(a, r["campaign_id"]) for r in records for a in json.loads(r["alert_ids"])]
        if pairs:
            ws.con.register("_campaign_of", pa.table(list(zip(*pairs, strict=True)), ["a", "c"]))
            ws.con.execute("UPDATE alerts SET campaign_id = c FROM _campaign_of WHERE alert_id = a")
            ws.con.unregister("_campaign_of")
    return table


def _schema() -> pa.Schema:
    from orbwatch.store.schema import TABLES

    return TABLES["campaigns"].schema


def _ip_info(ws: Workspace, alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ips = sorted({a[k] for a in alerts for k in ("src_ip", "dst_ip") if a.get(k)})
    if not ips:
        return {}
    rows = ws.query(
        "SELECT ip, asn, net_class, country FROM ip_info WHERE ip IN (SELECT unnest(?))", [ips]
    ).to_pylist()
    return {r["ip"]: r for r in rows}


def _campaign(
    ws: Workspace,
    alerts: list[dict[str, Any]],
    traits: list[set[str]],
    internal: list[Net],
    rules: CampaignRules,
) -> dict[str, Any]:
    ids = sorted(a["alert_id"] for a in alerts)
    relays = sorted(
        {
            ip
            for a in alerts
            for ip in (a.get("src_ip"), a.get("dst_ip"))
            if ip and not _internal(ip, internal)
        }
    )
    first = min(a["first_seen"] for a in alerts)
    last = max(a["last_seen"] for a in alerts)
    top = max(alerts, key=lambda a: (SEVERITY_RANK[a["severity"]], a["score"] or 0))
    techniques = sorted({t for a in alerts for t in (a["techniques"] or "").split(",") if t})
    churn = relay_churn(ws, relays, rules.dead_after)
    shared = (
        sorted(t for t in set.intersection(*traits) if not t.startswith("target:"))
        or sorted({t for ts in traits for t in ts})[:5]
    )
    detectors = sorted({a["detector"] for a in alerts})
    return {
        "campaign_id": hashlib.sha1("|".join(ids).encode(), usedforsecurity=False).hexdigest()[:12],
        "title": f"{len(alerts)} linked alerts: {', '.join(detectors)}",
        "severity": top["severity"],
        "score": min(100.0, float(top["score"] or 0) + 2.0 * (len(alerts) - 1)),
        "first_seen": first,
        "last_seen": last,
        "alert_count": len(alerts),
        "alert_ids": json.dumps(ids),
        "techniques": ",".join(techniques),
        "users": json.dumps(sorted({a["user"] for a in alerts if a.get("user")})),
        "targets": json.dumps(
            sorted(
                {
                    ip
                    for a in alerts
                    for ip in (a.get("src_ip"), a.get("dst_ip"))
                    if ip and _internal(ip, internal)
                }
            )
        ),
        "relays": json.dumps(relays),
        "relay_count": len(relays),
        "relays_dead": churn["dead"],
        "relays_on_blocklist": churn["on_blocklist"],
        "linked_by": json.dumps(shared[:10]),
        "status": "new",
    }


def _internal(ip: str, internal: list[Net]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in internal)


def relay_churn(ws: Workspace, relays: list[str], dead_after: dt.timedelta) -> dict[str, int]:
    """How many relays are dead now, and how many of them the loaded threat lists name."""
    if not relays:
        return {"dead": 0, "on_blocklist": 0}
    newest = ws.scalar(
        "SELECT greatest(coalesce((SELECT max(ts_end) FROM flows), TIMESTAMPTZ '1970-01-01'),"
        " coalesce((SELECT max(ts) FROM logins), TIMESTAMPTZ '1970-01-01'))"
    )
    dead = ws.scalar(
        "WITH seen AS ("
        " SELECT ip, max(t) AS last FROM ("
        "  SELECT src_ip AS ip, ts_end AS t FROM flows UNION ALL"
        "  SELECT dst_ip, ts_end FROM flows UNION ALL SELECT src_ip, ts FROM logins)"
        " WHERE ip IN (SELECT unnest(?)) GROUP BY ip)"
        " SELECT count(*) FROM seen WHERE last < ?",
        [relays, newest - dead_after],
    )
    keyed = pa.table({"ip": relays, "k": netaddr.keys(pa.array(relays))})
    ws.con.register("_relays", keyed)
    try:
        listed = ws.scalar(
            "SELECT count(DISTINCT r.ip) FROM _relays r JOIN intel i"
            " ON r.k BETWEEN i.start_key AND i.end_key"
        )
    finally:
        ws.con.unregister("_relays")
    return {"dead": int(dead or 0), "on_blocklist": int(listed or 0)}


def set_campaign_status(ws: Workspace, campaign_id: str, status: str, comment: str = "") -> int:
    """Triage a campaign (id or unique prefix) and every alert in it; returns the alert count."""
    from orbwatch.alerts.store import set_status
    from orbwatch.errors import OrbwatchError

    rows = ws.query(
        "SELECT campaign_id, alert_ids FROM campaigns WHERE starts_with(campaign_id, ?)",
        [campaign_id],
    ).to_pylist()
    if len(rows) != 1:
        raise OrbwatchError(
            f"{len(rows)} campaigns match {campaign_id!r}; list them with `orbwatch campaigns`"
        )
    ids = json.loads(rows[0]["alert_ids"])
    changed = set_status(ws, ids, status, comment)
    ws.con.execute(
        "UPDATE campaigns SET status = ? WHERE campaign_id = ?", [status, rows[0]["campaign_id"]]
    )
    return changed
