"""The simulator's address plan: real public prefixes of real networks, and drawing from them.

Simulated addresses must look to the enrichment stage exactly as real ones would: a relay in a
Comcast home must geolocate to the US and resolve to AS7922, a leased VPS to DigitalOcean. So
every public address the simulator writes is drawn from a prefix in :data:`PREFIXES`, each of
which the named AS announces in full (checked against the ``@ip-location-db/asn`` release
2.3.2026061719, Routeviews/DB-IP data: every prefix below maps 100% to its AS). The class
(residential, mobile, hosting, vpn, cloud egress, corporate, saas, scanner) is the simulator's
own ground truth of what kind of network it is, written to ``scenario.json``.

Internal addresses use RFC 1918 space laid out per site (see :mod:`orbwatch.simulate.org`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Prefix:
    """One announced prefix, the AS that announces it, and what kind of network it is."""

    cidr: str
    asn: int
    org: str
    net_class: (
        str  # residential | mobile | hosting | vpn | cloud-egress | corporate | saas | scanner
    )
    country: str

    @property
    def first(self) -> int:
        return int(ipaddress.ip_network(self.cidr).network_address)

    @property
    def size(self) -> int:
        return int(ipaddress.ip_network(self.cidr).num_addresses)


PREFIXES: tuple[Prefix, ...] = (
    # Residential broadband: where compromised SOHO routers and remote workers live.
    Prefix("73.0.0.0/8", 7922, "Comcast Cable Communications", "residential", "US"),
    Prefix("98.192.0.0/10", 7922, "Comcast Cable Communications", "residential", "US"),
    Prefix("76.96.0.0/11", 7922, "Comcast Cable Communications", "residential", "US"),
    Prefix("108.48.0.0/13", 701, "Verizon Business (Fios)", "residential", "US"),
    Prefix("71.112.0.0/12", 701, "Verizon Business (Fios)", "residential", "US"),
    Prefix("174.80.0.0/13", 20115, "Charter Communications", "residential", "US"),
    Prefix("107.192.0.0/11", 7018, "AT&T", "residential", "US"),
    Prefix("79.192.0.0/10", 3320, "Deutsche Telekom", "residential", "DE"),
    Prefix("91.0.0.0/10", 3320, "Deutsche Telekom", "residential", "DE"),
    Prefix("93.192.0.0/10", 3320, "Deutsche Telekom", "residential", "DE"),
    Prefix("88.64.0.0/12", 3209, "Vodafone GmbH", "residential", "DE"),
    Prefix("178.0.0.0/12", 3209, "Vodafone GmbH", "residential", "DE"),
    Prefix("86.128.0.0/10", 2856, "British Telecommunications", "residential", "GB"),
    Prefix("114.32.0.0/12", 3462, "Chunghwa Telecom (HiNet)", "residential", "TW"),
    Prefix("36.224.0.0/12", 3462, "Chunghwa Telecom (HiNet)", "residential", "TW"),
    Prefix("175.224.0.0/11", 4766, "Korea Telecom", "residential", "KR"),
    Prefix("180.0.0.0/10", 4713, "NTT Communications (OCN)", "residential", "JP"),
    # Mobile carriers: phones and tethered laptops; addresses change often (CGNAT pools).
    Prefix("172.32.0.0/11", 21928, "T-Mobile USA", "mobile", "US"),
    Prefix("70.192.0.0/11", 22394, "Verizon Wireless", "mobile", "US"),
    Prefix("176.0.0.0/13", 6805, "Telefonica Germany (O2)", "mobile", "DE"),
    # Hosting: leased VPS relay tiers, scanners, some legitimate cloud use.
    Prefix("206.189.0.0/16", 14061, "DigitalOcean", "hosting", "US"),
    Prefix("178.128.0.0/16", 14061, "DigitalOcean", "hosting", "SG"),
    Prefix("188.166.0.0/16", 14061, "DigitalOcean", "hosting", "NL"),
    Prefix("54.36.0.0/14", 16276, "OVH", "hosting", "FR"),
    Prefix("51.254.0.0/15", 16276, "OVH", "hosting", "FR"),
    Prefix("45.76.0.0/15", 20473, "Vultr (The Constant Company)", "hosting", "US"),
    Prefix("45.32.0.0/16", 20473, "Vultr (The Constant Company)", "hosting", "US"),
    Prefix("139.162.0.0/16", 63949, "Linode (Akamai)", "hosting", "DE"),
    Prefix("95.216.0.0/15", 24940, "Hetzner Online", "hosting", "FI"),
    Prefix("78.46.0.0/15", 24940, "Hetzner Online", "hosting", "DE"),
    # Legitimate egress that is not home: a commercial VPN provider and a security cloud.
    Prefix("146.70.64.0/18", 9009, "M247 (commercial VPN exits)", "vpn", "US"),
    Prefix("167.106.0.0/16", 22616, "Zscaler", "cloud-egress", "US"),
    # The organisation's own public blocks (business internet).
    Prefix("4.78.0.0/16", 3356, "Lumen (Level 3) business internet", "corporate", "US"),
    Prefix("217.230.0.0/16", 3320, "Deutsche Telekom business", "corporate", "DE"),
    # SaaS and CDN destinations of ordinary work.
    Prefix("52.96.0.0/14", 8075, "Microsoft 365", "saas", "US"),
    Prefix("20.190.128.0/18", 8075, "Microsoft Entra ID", "saas", "US"),
    Prefix("142.250.0.0/15", 15169, "Google", "saas", "US"),
    Prefix("104.16.0.0/14", 13335, "Cloudflare", "saas", "US"),
    Prefix("151.101.0.0/16", 54113, "Fastly", "saas", "US"),
    Prefix("52.84.0.0/15", 16509, "Amazon CloudFront", "saas", "US"),
    # Internet-wide scanners that touch every edge every day.
    Prefix("167.94.138.0/24", 398324, "Censys", "scanner", "US"),
    Prefix("162.142.125.0/24", 398324, "Censys", "scanner", "US"),
    Prefix("184.105.139.0/24", 6939, "Hurricane Electric (Shadowserver)", "scanner", "US"),
    Prefix("198.235.24.0/24", 396982, "Google Cloud (Palo Alto Cortex Xpanse)", "scanner", "US"),
    Prefix("80.82.77.0/24", 202425, "IP Volume", "scanner", "NL"),
    Prefix("89.248.165.0/24", 202425, "IP Volume", "scanner", "NL"),
)


def prefixes(net_class: str, countries: list[str] | None = None) -> list[Prefix]:
    """Prefixes of one class, optionally only those in some countries (all if none match)."""
    found = [p for p in PREFIXES if p.net_class == net_class]
    if countries:
        near = [p for p in found if p.country in countries]
        found = near or found
    if not found:
        raise ValueError(f"no prefix of class {net_class!r} in the address plan")
    return found


def draw(rng: np.random.Generator, pool: list[Prefix], n: int) -> tuple[U32, npt.NDArray[np.int64]]:
    """``n`` addresses from ``pool`` (prefix picked by size, host uniformly), and the prefix index.

    Host parts avoid .0 and .255 so that no simulated host is a network or broadcast address.
    """
    sizes = np.array([p.size for p in pool], dtype=np.float64)
    which = rng.choice(len(pool), size=n, p=np.sqrt(sizes) / np.sqrt(sizes).sum())
    firsts = np.array([p.first for p in pool], dtype=np.int64)[which]
    spans = np.array([p.size for p in pool], dtype=np.int64)[which]
    offset = (rng.random(n) * spans).astype(np.int64)
    addr = (firsts + offset).astype(np.uint32)
    low = addr & 0xFF
    addr = np.where((low == 0) | (low == 255), addr ^ np.uint32(7), addr).astype(np.uint32)
    return addr, which


def draw_unique(rng: np.random.Generator, pool: list[Prefix], n: int) -> U32:
    """``n`` distinct addresses from ``pool`` (prefixes are large, so few redraws are needed)."""
    out = np.empty(0, dtype=np.uint32)
    while out.size < n:
        more, _ = draw(rng, pool, (n - out.size) * 2 + 8)
        out = np.concatenate([out, more[~np.isin(more, out)]])
        _, first = np.unique(out, return_index=True)
        out = out[np.sort(first)]
    return out[:n]


def internal(base: str, hosts: int, start: int = 10) -> U32:
    """``hosts`` consecutive addresses in an RFC 1918 block, from host number ``start``."""
    first = int(ipaddress.ip_network(base).network_address)
    return (first + start + np.arange(hosts, dtype=np.int64)).astype(np.uint32)


def ip_text(addr: npt.NDArray[np.uint32]) -> pa.Array:
    """Dotted-quad text of IPv4 addresses held as integers (vectorised, no per-address Python)."""
    a = np.asarray(addr, dtype=np.uint32)
    parts = [pa.array((a >> shift) & 0xFF).cast(pa.string()) for shift in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*parts, ".")


def ip_int(text: str) -> int:
    """One dotted-quad address as an integer (for the few fixed addresses of the organisation)."""
    return int(ipaddress.IPv4Address(text))


def countries(addr: npt.NDArray[np.uint32]) -> npt.NDArray[np.str_]:
    """Country of each address by the address plan ('' outside it), by binary search."""
    plan = sorted(PREFIXES, key=lambda p: p.first)
    firsts = np.array([p.first for p in plan], dtype=np.int64)
    ends = firsts + np.array([p.size for p in plan], dtype=np.int64)
    names = np.array([p.country for p in plan] + [""])
    a = np.asarray(addr, dtype=np.int64)
    i = np.searchsorted(firsts, a, side="right") - 1
    inside = (i >= 0) & (a < ends[np.clip(i, 0, None)])
    return np.asarray(names[np.where(inside, i, len(plan))])
