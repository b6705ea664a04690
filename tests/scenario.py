"""A small workspace with known answers, shared by the detector and engine tests."""

from __future__ import annotations

from pathlib import Path

from orbwatch.config import Config
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
