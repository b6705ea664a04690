"""A small workspace with known answers, shared by the detector and engine tests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from orbwatch import netaddr
from orbwatch.baseline.logins import update_login_baselines
from orbwatch.config import Config
from orbwatch.detect.base import DetectContext, Detector
from orbwatch.detect.run import alerts_of
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.enrich.intel import add_list
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

FLOWS_CSV = """\
ts,src_ip,src_port,dst_ip,dst_port,proto,src_bytes,dst_bytes,src_packets,dst_packets,action
2026-11-02T10:00:00Z,10.1.1.5,50000,203.0.113.9,443,6,100,200,2,2,allow
2026-11-02T10:05:00Z,10.1.1.5,50001,45.9.148.10,7777,6,240,110,3,2,allow
2026-11-02T10:10:00Z,10.1.1.5,50002,45.9.148.10,7777,6,250,100,3,2,allow
2026-11-02T10:15:00Z,10.1.1.6,50003,45.9.148.99,7777,6,240,0,3,0,allow
2026-11-02T11:00:00Z,185.220.101.4,41000,10.1.1.1,443,6,1800,3500,10,9,allow
2026-11-02T11:01:00Z,185.220.101.4,41001,10.1.1.1,22,6,60,0,1,0,deny
2026-11-02T12:00:00Z,91.92.93.94,41000,10.1.1.1,23,6,60,0,1,0,deny
2026-11-02T12:00:01Z,91.92.93.94,41001,10.1.1.1,23,6,60,0,1,0,deny
2026-11-02T12:30:00Z,10.1.1.7,53000,192.168.5.5,445,6,500,500,4,4,allow
2026-11-02T13:00:00Z,10.1.1.8,53001,2a06:e480::1,443,6,900,800,5,5,allow
2026-11-02T14:00:00Z,45.9.148.10,1000,91.92.93.94,80,6,10,10,1,1,allow
"""

FEED = """\
# test feed: covert relays, a /24, an IPv6 DROP block and bogons as aggregate feeds carry them
10.0.0.0/8
192.168.0.0/16
203.0.113.0/24
45.9.148.0/24 ; relay cluster
185.220.101.4
91.92.93.94
2a06:e480::/29 ; SBL301771
::/8 ; IPv6 bogon: spans the IPv4-mapped range, must never match an IPv4 peer
"""

TOR = "185.220.101.4\n"


def build(tmp: Path, ws: Workspace, config: Config | None = None) -> None:
    """Flows + two lists in ``ws``."""
    flows = tmp / "flows.csv"
    flows.write_text(FLOWS_CSV, encoding="utf-8")
    feed, tor = tmp / "feed.netset", tmp / "tor.ipset"
    feed.write_text(FEED, encoding="utf-8")
    tor.write_text(TOR, encoding="utf-8")
    result = Ingestor(ws, config or Config(internal_networks=["10.0.0.0/8"])).ingest(str(flows))
    assert result.rows == 11 and result.quarantined == 0
    add_list(ws, str(feed), "test_feed")
    add_list(ws, str(tor), "tor_exits")
    build_logins(ws, config or Config(internal_networks=["10.0.0.0/8"]))


# -- logins -----------------------------------------------------------------------------------

#: What enrichment would say about the scenario's login sources: ip -> (country, region,
#: lat, lon, asn, net_class).
IP_INFO: dict[str, tuple[str, str, float, float, int, str]] = {
    **{f"73.1.{i}.10": ("US", "NY", 40.7, -74.0, 7922, "residential") for i in range(1, 8)},
    "24.5.6.7": ("US", "CA", 37.8, -122.4, 701, "residential"),
    "45.77.1.1": ("US", "NJ", 40.7, -74.2, 20473, "hosting"),
    "5.9.1.1": ("DE", "SN", 50.5, 12.4, 24940, "hosting"),
    **{f"92.{i}.0.9": ("FR", "IDF", 48.9, 2.3, 3215, "residential") for i in range(1, 16)},
    "185.220.101.4": ("DE", "BE", 52.5, 13.4, 208294, "tor"),
    **{f"81.{i}.2.3": ("GB", "ENG", 51.5, -0.1, 5089 + i, "residential") for i in range(1, 6)},
}
DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def append_logins(ws: Workspace, rows: list[dict[str, Any]], source: str = "auth.log") -> None:
    """Append login rows (missing columns null, src_key derived, offsets = position + 1)."""
    table = pa.Table.from_pylist(
        [{"source_file": source, "source_offset": i + 1, **row} for i, row in enumerate(rows)]
    )
    table = table.append_column("src_key", netaddr.keys(table["src_ip"]))
    ws.append("logins", table)


def append_ip_info(ws: Workspace, info: dict[str, tuple[str, str, float, float, int, str]]) -> None:
    """Append ``ip_info`` rows as enrichment would write them."""
    names = ("country", "region", "latitude", "longitude", "asn", "net_class")
    rows = [
        {"ip": ip, "ip_key": netaddr.key(ip), **dict(zip(names, v, strict=True))}
        for ip, v in info.items()
    ]
    ws.append("ip_info", pa.Table.from_pylist(rows))


def login(ts: dt.datetime, user: str, ip: str, **extra: Any) -> dict[str, Any]:
    """One VPN login, successful with MFA and a certificate unless ``extra`` says otherwise."""
    row = {
        "ts": ts,
        "user": user,
        "src_ip": ip,
        "service": "vpn",
        "target": "vpn-gw-1",
        "outcome": "success",
        "mfa": "yes",
        "machine_cert": "yes",
        "client": "AnyConnect 5.1",
    }
    return {**row, **extra}


def login_rows() -> list[dict[str, Any]]:
    """Three weeks of habits, then one day with every kind of login-side attack."""
    rows = []
    homes = {
        "alice": "73.1.1.10",
        "bob": "73.1.2.10",
        "carol": "73.1.3.10",
        "dave": "73.1.4.10",
        "erin": "73.1.5.10",
        "frank": "73.1.6.10",
    }
    for day in range(21, 0, -1):
        for n, (user, ip) in enumerate(homes.items()):
            rows.append(login(DAY - dt.timedelta(days=day, hours=-8, minutes=-n), user, ip))
    # Spray: 15 accounts, one attempt each, from 15 French residential relays, one client.
    for i in range(15):
        user = [*homes, *(f"user{j}" for j in range(9))][i]
        rows.append(
            login(
                DAY + dt.timedelta(hours=1, minutes=7 * i),
                user,
                f"92.{i + 1}.0.9",
                outcome="failure",
                client="python-requests/2.31",
                mfa="unknown",
            )
        )
    # erin, sprayed, logs in from a hosting ASN in her own country: an exit node near her.
    rows.append(login(DAY + dt.timedelta(hours=5), "erin", "45.77.1.1", mfa="no"))
    # bob: New York at 08:00, Germany at 09:30 (impossible travel, hosting).
    rows.append(login(DAY + dt.timedelta(hours=8), "bob", "73.1.2.10"))
    rows.append(login(DAY + dt.timedelta(hours=9, minutes=30), "bob", "5.9.1.1", machine_cert="no"))
    # carol, dave and frank converge on one hosting address; frank also hops across
    # five British residential networks within two hours.
    for n, user in enumerate(("carol", "dave", "frank")):
        rows.append(login(DAY + dt.timedelta(hours=12, minutes=n), user, "45.77.1.1"))
    for i in range(5):
        rows.append(
            login(
                DAY + dt.timedelta(hours=14, minutes=20 * i),
                "frank",
                f"81.{i + 1}.2.3",
                service="sso",
                target="portal",
            )
        )
    # A listed Tor exit tries alice.
    rows.append(login(DAY + dt.timedelta(hours=16), "alice", "185.220.101.4", outcome="failure"))
    return rows


def build_logins(ws: Workspace, config: Config) -> None:
    """The login scenario plus its enrichment and baselines."""
    append_ip_info(ws, IP_INFO)
    append_logins(ws, login_rows())
    update_login_baselines(ws, config, now=DAY)
    update_login_baselines(ws, config)  # incremental: folds in the day of the attacks


def raised(ws: Workspace, detector: Detector, config: Config | None = None) -> list[dict[str, Any]]:
    """Alerts ``detector`` raises on ``ws`` (DuckDB), most severe first, evidence decoded."""
    ctx = DetectContext(config or Config(), DuckDBEngine(ws))
    rows = alerts_of(detector, ctx).to_pylist()
    for row in rows:
        row["evidence"] = json.loads(row["evidence"])
    return rows
