"""The edge map: which of our devices and subnets face the Internet, configured or found in traffic.

Covert networks live on edge devices, and an organisation rarely knows all of its own: a
forgotten SSL-VPN appliance, a branch router, a camera VLAN. This module lists the edge assets
of the config with what the traffic says about them (services, peers) and *discovers* the
others from the flows (one engine pass each, Ibis expressions):

* **remote access**: internal addresses that answered at least ``min_sources`` distinct
  Internet addresses on a VPN or remote-access port (IPsec, OpenVPN, WireGuard, L2TP, PPTP,
  SSL-VPN portals, SSH, RDP, VNC, Telnet);
* **routers**: devices that route for a subnet: flow exporters that identify themselves by an
  address (a NetFlow/IPFIX exporter is a router or firewall) and the addresses that NAT
  rewrites many internal sources to;
* **IoT subnets**: internal /24 networks whose hosts behave like appliances: each talks to
  at most a few Internet peers on at most a few ports and nobody on the Internet talks to
  them (cameras, sensors, building control).

Discovered assets are stored in ``assets`` with origin ``discovered`` (the flow baselines and
detectors use them at once) and shown as suggestions to confirm in ``orbwatch.toml``:
:func:`toml_snippet` prints the block to paste.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

import ibis.expr.types as ir
import pyarrow as pa

from orbwatch import netaddr
from orbwatch.baseline.flows import configured_assets, peer_flows
from orbwatch.config import Config
from orbwatch.engines.base import Engine, memtable
from orbwatch.store.workspace import Workspace

#: Ports of VPN and remote-access services, with the role an address answering on them has.
REMOTE_ACCESS_PORTS: dict[int, str] = {
    500: "vpn-gateway",  # IKE (IPsec)
    4500: "vpn-gateway",  # IPsec NAT traversal
    1194: "vpn-gateway",  # OpenVPN
    51820: "vpn-gateway",  # WireGuard
    1701: "vpn-gateway",  # L2TP
    1723: "vpn-gateway",  # PPTP
    443: "vpn-gateway",  # SSL-VPN portals (GlobalProtect, AnyConnect, FortiGate, Pulse)
    4433: "vpn-gateway",  # SSL-VPN (SonicWall, Cisco)
    10443: "vpn-gateway",  # SSL-VPN (FortiGate)
    8443: "vpn-gateway",  # SSL-VPN and management portals
    22: "remote-access",  # SSH
    23: "remote-access",  # Telnet
    3389: "remote-access",  # RDP
    5900: "remote-access",  # VNC
}
V4_PREFIX_24_DIGITS = 30  # hex digits of an IPv4-mapped key that make its /24
V6_PREFIX_64_DIGITS = 16


@dataclass
class EdgeAssetView:
    """One row of the edge map."""

    name: str
    role: str
    origin: str
    cidr: str
    services: list[int] = field(default_factory=list)
    peers: int = 0
    flows: int = 0
    evidence: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _services(engine: Engine, min_sources: int) -> ir.Table:
    """Internal addresses answering many Internet sources on remote-access ports."""
    peers = peer_flows(engine, enriched=False)
    served = peers.filter(
        ~peers.outbound & peers.answered & peers.service_port.isin(list(REMOTE_ACCESS_PORTS))
    )
    per_port = served.group_by(["local_key", "service_port"]).aggregate(
        local_ip=served.local_ip.min(),
        sources=served.peer_key.nunique(),
        flows=served.count(),
    )
    per_port = per_port.filter(per_port.sources >= min_sources)
    return per_port.group_by("local_key").aggregate(
        local_ip=per_port.local_ip.min(),
        ports=per_port.service_port.collect(),
        peers=per_port.sources.max(),
        flows=per_port.flows.sum(),
    )


def _nat_routers(engine: Engine, min_sources: int) -> ir.Table:
    """Addresses that NAT rewrites at least ``min_sources`` internal sources to."""
    flows = engine.table("flows")
    nat = flows.filter(flows.nat_src_ip.notnull() & (flows.nat_src_ip != flows.src_ip))
    return (
        nat.group_by(nat.nat_src_ip.name("address"))
        .aggregate(inside=nat.src_key.nunique(), flows=nat.count(), peers=nat.dst_key.nunique())
        .filter(lambda t: t.inside >= min_sources)
    )


def _exporters(engine: Engine) -> ir.Table:
    """Flow exporters and how many internal /24 (or /64) networks they report."""
    flows = engine.table("flows")
    flows = flows.filter(flows.exporter.notnull() & flows.direction.isin(["inbound", "outbound"]))
    out = flows.direction == "outbound"
    local = out.ifelse(flows.src_key, flows.dst_key)
    return flows.group_by(flows.exporter.name("address")).aggregate(
        subnets=_subnet(local).nunique(),
        flows=flows.count(),
        peers=out.ifelse(flows.dst_key, flows.src_key).nunique(),
    )


def _subnet(key: ir.StringValue) -> ir.StringValue:
    return key.startswith(netaddr.V4_MAPPED_PREFIX).ifelse(
        key.substr(0, V4_PREFIX_24_DIGITS), key.substr(0, V6_PREFIX_64_DIGITS)
    )


def _iot_subnets(engine: Engine, min_hosts: int, max_peers: int, max_ports: int) -> ir.Table:
    """Internal /24s whose every host talks to few peers on few ports, and is never called."""
    peers = peer_flows(engine, enriched=False)
    per_host = peers.group_by("local_key").aggregate(
        peers=peers.peer_key.nunique(where=peers.outbound),
        ports=peers.service_port.nunique(),
        called=(~peers.outbound & peers.answered).cast("int64").sum(),
        flows=peers.count(),
    )
    per_host = per_host.mutate(subnet=_subnet(per_host.local_key))
    return (
        per_host.group_by("subnet")
        .aggregate(
            hosts=per_host.count(),
            max_peers=per_host.peers.max(),
            max_ports=per_host.ports.max(),
            called=per_host.called.sum(),
            flows=per_host.flows.sum(),
            peers=per_host.peers.sum(),
        )
        .filter(
            lambda t: (
                (t.hosts >= min_hosts)
                & (t.max_peers <= max_peers)
                & (t.max_ports <= max_ports)
                & (t.called == 0)
            )
        )
    )


def _subnet_cidr(prefix: str) -> str:
    """The CIDR text of a /24 (IPv4) or /64 (IPv6) key prefix."""
    if prefix.startswith(netaddr.V4_MAPPED_PREFIX):
        value = int(prefix.ljust(netaddr.KEY_WIDTH, "0"), 16) & 0xFFFFFFFF
        return f"{ipaddress.IPv4Address(value)}/24"
    return f"{ipaddress.IPv6Address(int(prefix.ljust(netaddr.KEY_WIDTH, '0'), 16))}/64"


@dataclass
class Discovery:
    """Thresholds of the discovery heuristics."""

    #: Distinct Internet sources answered on a remote-access port.
    min_sources: int = 20
    #: Internal sources NAT must rewrite to one address for it to count as a router.
    min_nat_sources: int = 2
    #: Hosts an IoT subnet needs, and the most peers and ports any of them may use.
    min_iot_hosts: int = 3
    max_iot_peers: int = 3
    max_iot_ports: int = 2


def discover(engine: Engine, config: Config, rules: Discovery | None = None) -> list[EdgeAssetView]:
    """Edge assets found in traffic that the config does not already cover."""
    rules = rules or Discovery()
    found: list[EdgeAssetView] = []
    for row in engine.execute(_services(engine, rules.min_sources)).to_pylist():
        ports = sorted(row["ports"])
        roles = {REMOTE_ACCESS_PORTS[p] for p in ports}
        role = "vpn-gateway" if "vpn-gateway" in roles else "remote-access"
        found.append(
            EdgeAssetView(
                f"{role}-{row['local_ip']}",
                role,
                "discovered",
                row["local_ip"],
                ports,
                row["peers"],
                row["flows"],
                f"answered {row['peers']} Internet addresses on port(s) "
                f"{', '.join(map(str, ports))}",
            )
        )
    for row in engine.execute(_nat_routers(engine, rules.min_nat_sources)).to_pylist():
        found.append(
            EdgeAssetView(
                f"router-{row['address']}",
                "router",
                "discovered",
                row["address"],
                [],
                row["peers"],
                row["flows"],
                f"NAT rewrites {row['inside']} internal sources to this address",
            )
        )
    for row in engine.execute(_exporters(engine)).to_pylist():
        try:
            address = str(ipaddress.ip_address(row["address"]))
        except ValueError:
            continue  # an exporter named by text, not an address: nothing to map
        found.append(
            EdgeAssetView(
                f"router-{address}",
                "router",
                "discovered",
                address,
                [],
                row["peers"],
                row["flows"],
                f"exports flows of {row['subnets']} internal network(s)",
            )
        )
    iot = _iot_subnets(engine, rules.min_iot_hosts, rules.max_iot_peers, rules.max_iot_ports)
    for row in engine.execute(iot).to_pylist():
        cidr = _subnet_cidr(row["subnet"])
        found.append(
            EdgeAssetView(
                f"iot-{cidr}",
                "iot-subnet",
                "discovered",
                cidr,
                [],
                row["peers"],
                row["flows"],
                f"{row['hosts']} hosts, each with at most {row['max_peers']} Internet peer(s) "
                f"on at most {row['max_ports']} port(s), never called from the Internet",
            )
        )
    return _uncovered(found, config)


def _uncovered(found: list[EdgeAssetView], config: Config) -> list[EdgeAssetView]:
    """Drop discoveries inside a configured asset, and duplicates (first reason wins)."""
    configured = [netaddr.network(c) for a in config.edge_assets for c in a.addresses]
    out: dict[str, EdgeAssetView] = {}
    for asset in found:
        net = netaddr.network(asset.cidr)
        if any(c.start <= net.start and net.end <= c.end for c in configured):
            continue
        out.setdefault(net.text, asset)
    return sorted(out.values(), key=lambda a: (a.role, a.cidr))


def configured(engine: Engine, config: Config) -> list[EdgeAssetView]:
    """The config's edge assets with their services and peers as the traffic shows them."""
    ranges = memtable(configured_assets(config))
    peers = peer_flows(engine, enriched=False)
    joined = peers.join(
        ranges, [peers.local_key >= ranges.start_key, peers.local_key <= ranges.end_key]
    )
    served = joined.filter(~joined.outbound & joined.answered)
    distinct = served.select("name", "service_port").distinct()  # not a list per flow
    services = distinct.group_by("name").aggregate(ports=distinct.service_port.collect())
    totals = joined.group_by("name").aggregate(
        peers=joined.peer_key.nunique(), flows=joined.count()
    )
    stats = {r["name"]: r for r in engine.execute(totals).to_pylist()}
    ports = {r["name"]: sorted(set(r["ports"])) for r in engine.execute(services).to_pylist()}
    out = []
    for asset in config.edge_assets:
        seen = stats.get(asset.name, {})
        out.append(
            EdgeAssetView(
                asset.name,
                str(asset.role),
                "config",
                ", ".join(asset.addresses),
                ports.get(asset.name, [])[:50],
                int(seen.get("peers", 0)),
                int(seen.get("flows", 0)),
            )
        )
    return out


def update_assets(
    ws: Workspace, config: Config, rules: Discovery | None = None
) -> list[EdgeAssetView]:
    """Build the edge map and store it in ``assets`` (replacing the previous map)."""
    from orbwatch.engines.duckdb_engine import DuckDBEngine

    engine = DuckDBEngine(ws)
    views = configured(engine, config) + discover(engine, config, rules)
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    config_rows = configured_assets(config).to_pylist()
    by_name = {v.name: v for v in views}
    for row in config_rows:
        view = by_name[row["name"]]
        rows.append(row | _stored(view, now))
    for view in views:
        if view.origin == "discovered":
            net = netaddr.network(view.cidr)
            rows.append(
                {
                    "name": view.name,
                    "role": view.role,
                    "cidr": net.text,
                    "start_key": net.start_key,
                    "end_key": net.end_key,
                }
                | _stored(view, now)
            )
    with ws.transaction():
        ws.con.execute("DELETE FROM assets")
        if rows:
            ws.append("assets", pa.Table.from_pylist(rows))
    return views


def _stored(view: EdgeAssetView, now: dt.datetime) -> dict[str, Any]:
    return {
        "origin": view.origin,
        "updated_at": now,
        "services": ",".join(map(str, view.services)),
        "peers": view.peers,
        "evidence": view.evidence or None,
    }


def toml_snippet(views: list[EdgeAssetView]) -> str:
    """``[[edge_assets]]`` blocks that confirm discovered assets in ``orbwatch.toml``."""
    blocks = []
    for view in views:
        if view.origin != "discovered":
            continue
        name = view.name.replace('"', "")
        blocks.append(
            f'# {view.evidence}\n[[edge_assets]]\nname = "{name}"\n'
            f'addresses = ["{view.cidr}"]\nrole = "{view.role}"\n'
        )
    return "\n".join(blocks)
