"""What kind of network an address sits in: hosting, VPN, Tor, mobile, residential, corporate.

Covert networks relay through two kinds of network: leased VPS in hosting providers and
hijacked routers in residential and mobile ISPs. A login from a residential ISP abroad means
something different from one out of a hosting provider, so every address in ``ip_info``
carries a class. The rules, applied in this order (the first that matches wins):

1. ``corporate``: inside the config's ``internal_networks`` or ``[enrich] corporate_egress``.
2. ``private``: a special-purpose range (RFC 6890: private, loopback, CGNAT, documentation)
   outside the organisation's own networks (those are rule 1: ours, so ``corporate``).
3. ``tor``: listed by a loaded intel list whose name says Tor (``tor``, ``tor_exits``, ...).
4. ``vpn``: the AS is on X4BNet's VPN-provider list, or its name names a VPN service.
5. ``hosting``: the AS is on X4BNet's datacenter list or on bad-asn-list, or its name says
   hosting, datacenter, cloud, VPS, server or colocation.
6. ``mobile``: the AS is a major mobile operator (curated below) or its name says mobile,
   wireless or cellular.
7. ``residential``: the AS is a major broadband ISP (curated below) or its name says cable,
   broadband, DSL, fibre or telecom.
8. ``unknown``: none of the above (including addresses without an ASN).

Every rule is vectorised: AS-name patterns run once over the dictionary of AS names, ASN
lists are one binary search per address, ranges one binary search over merged ranges. Known
errors are listed in ``docs/enrichment.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr

if TYPE_CHECKING:  # geo imports this module
    from orbwatch.enrich.geo import KeyArray

DATA_DIR = Path(__file__).resolve().parent / "data"
HOSTING_LISTS = ("x4bnet_datacenter_asns.txt", "bad_asn_list.txt")
VPN_LISTS = ("x4bnet_vpn_asns.txt",)
CLASSES = (
    "corporate",
    "private",
    "tor",
    "vpn",
    "hosting",
    "mobile",
    "residential",
    "unknown",
)
# Intel lists whose name marks them as Tor exit lists (FireHOL's tor_exits, "tor", ...).
TOR_LIST_NAME = re.compile(r"(^|[^a-z])tor([^a-z]|$)", re.IGNORECASE)

# AS-name patterns (case-insensitive, searched in the AS organisation name).
VPN_NAMES = r"\bvpn\b|nordvpn|expressvpn|surfshark|mullvad|proton ?ag|private internet access"
HOSTING_NAMES = (
    r"hosting|\bhost\b|data ?cent(er|re)|\bcloud|\bvps\b|\bvds\b|server|colo(cation|crossing)?\b"
    r"|dedicated|digitalocean|linode|\bovh|hetzner|vultr|choopa|leaseweb|contabo|scaleway"
    r"|amazon|google|microsoft|oracle|alibaba|tencent|akamai|fastly|cloudflare"
)
MOBILE_NAMES = r"mobile|wireless|cellular|\blte\b|\b[345]g\b|mobility|movil|móvil"
RESIDENTIAL_NAMES = (
    r"cable|broadband|\bdsl\b|fib(er|re)|telecom|telekom|\bisp\b|internet service"
    r"|communications|telephone|kabel|comcast|charter|spectrum"
)

# Curated here (no registry ships such a list): well-known mobile operators' ASNs.
MOBILE_ASNS = (
    21928,  # T-Mobile USA
    22394,  # Verizon Wireless (Cellco Partnership)
    20057,  # AT&T Mobility
    6167,  # Verizon Business wireless (Cellco)
    9808,  # China Mobile (Guangdong)
    56040,  # China Mobile (Guangdong province network)
    24445,  # China Mobile (Henan)
    45609,  # Bharti Airtel mobile
    55836,  # Reliance Jio Infocomm
    38266,  # Vodafone Idea
    26599,  # TIM Brasil
    28573,  # Claro Brasil
    12430,  # Vodafone Spain
    16135,  # Turkcell
    25135,  # Vodafone UK
    3209,  # Vodafone Germany
    8359,  # MTS (Russia)
    16345,  # Beeline (PJSC VimpelCom)
    31213,  # MegaFon
)
# Curated here: well-known residential broadband ISPs' ASNs.
RESIDENTIAL_ASNS = (
    7922,  # Comcast Cable
    20115,  # Charter Communications
    11351,  # Charter (Time Warner Cable)
    11426,  # Charter (Time Warner Cable)
    10796,  # Charter (Time Warner Cable)
    12271,  # Charter (Time Warner Cable)
    20001,  # Charter (Time Warner Cable)
    33363,  # Charter (Bright House)
    22773,  # Cox Communications
    701,  # Verizon Fios (UUNET)
    7018,  # AT&T Internet
    5650,  # Frontier Communications
    209,  # CenturyLink / Lumen residential
    3320,  # Deutsche Telekom
    3215,  # Orange France
    12322,  # Free (Proxad)
    5089,  # Virgin Media
    2856,  # BT
    1136,  # KPN
    6830,  # Liberty Global
    4134,  # China Telecom
    4837,  # China Unicom
    4766,  # Korea Telecom
    17676,  # SoftBank
    4713,  # NTT OCN
    3269,  # Telecom Italia
    3352,  # Telefonica Spain
    12389,  # Rostelecom
    8151,  # Telmex (Uninet)
    6327,  # Shaw Communications
    812,  # Rogers Communications
    1221,  # Telstra
)


_MOBILE = np.unique(np.array(MOBILE_ASNS, dtype=np.int64))
_RESIDENTIAL = np.unique(np.array(RESIDENTIAL_ASNS, dtype=np.int64))


def read_asn_list(path: Path) -> npt.NDArray[np.int64]:
    """AS numbers from a shipped list file: one per line, ``#`` comments."""
    numbers = [
        line.split("#", 1)[0].strip().removeprefix("AS")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    return np.array(sorted({int(n) for n in numbers if n}), dtype=np.int64)


@cache
def shipped_asns(names: tuple[str, ...]) -> npt.NDArray[np.int64]:
    """The union of shipped ASN lists (read once per process)."""
    return np.unique(np.concatenate([read_asn_list(DATA_DIR / name) for name in names]))


@dataclass(frozen=True)
class Networks:
    """Address ranges the classification needs from the config and the workspace."""

    corporate: list[netaddr.Network]
    tor: list[netaddr.Network]


def _merged(networks: list[netaddr.Network]) -> tuple[npt.NDArray[np.uint64], ...]:
    """Sorted, disjoint (start, end) ranges as uint64 halves (a few thousand networks at most)."""
    merged: list[list[int]] = []
    for net in sorted(networks, key=lambda n: n.start):
        if merged and net.start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], net.end)
        else:
            merged.append([net.start, net.end])
    mask64 = (1 << 64) - 1
    return tuple(
        np.array(values, dtype=np.uint64)
        for values in (
            [s >> 64 for s, _ in merged],
            [s & mask64 for s, _ in merged],
            [e >> 64 for _, e in merged],
            [e & mask64 for _, e in merged],
        )
    )


def _in_networks(decoded: KeyArray, networks: list[netaddr.Network]) -> npt.NDArray[np.bool_]:
    """Membership of each decoded key: one binary search over the merged ranges.

    Comparing 32-character strings once per range cost more than the geo lookup itself;
    the keys are decoded to numbers once per batch and searched in the sorted ranges.
    """
    if not networks:
        return np.zeros(len(decoded), dtype=bool)
    from orbwatch.enrich.geo import searchsorted128  # geo imports this module

    start_hi, start_lo, end_hi, end_lo = _merged(networks)
    found = searchsorted128(start_hi, start_lo, decoded.hi, decoded.lo)
    last = np.maximum(found, 0)
    hi, lo = decoded.hi, decoded.lo
    below_end = (hi < end_hi[last]) | ((hi == end_hi[last]) & (lo <= end_lo[last]))
    inside: npt.NDArray[np.bool_] = decoded.valid & (found >= 0) & below_end
    return inside


def _name_matches(as_org: pa.Array, pattern: str) -> npt.NDArray[np.bool_]:
    """Pattern over the AS-name dictionary (tens of thousands of names), then per row by index."""
    column = as_org if pa.types.is_dictionary(as_org.type) else pc.dictionary_encode(as_org)
    hits = pc.match_substring_regex(column.dictionary, pattern, ignore_case=True)
    per_row = pc.fill_null(pc.take(hits, column.indices), False)
    return np.asarray(per_row.to_numpy(zero_copy_only=False), dtype=bool)


def _listed(asns: npt.NDArray[np.int64], listed: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """``numpy.isin`` for a sorted list: one binary search per row (``isin`` sorts both sides)."""
    if len(listed) == 0:
        return np.zeros(len(asns), dtype=bool)
    position = np.minimum(np.searchsorted(listed, asns), len(listed) - 1)
    hit: npt.NDArray[np.bool_] = listed[position] == asns
    return hit


def classify(keys: pa.Array, asn: pa.Array, as_org: pa.Array, networks: Networks) -> pa.Array:
    """The class of each address (see the module docstring for the rules and their order)."""
    from orbwatch.enrich.geo import decode_keys  # geo imports this module

    n = len(keys)
    decoded = decode_keys(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)
    asns = np.asarray(pc.fill_null(asn, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    special = [netaddr.network(c) for c in netaddr.SPECIAL_PURPOSE]
    rules: list[tuple[str, npt.NDArray[np.bool_]]] = [
        ("corporate", _in_networks(decoded, networks.corporate)),
        ("private", _in_networks(decoded, special)),
        ("tor", _in_networks(decoded, networks.tor)),
        ("vpn", _listed(asns, shipped_asns(VPN_LISTS)) | _name_matches(as_org, VPN_NAMES)),
        (
            "hosting",
            _listed(asns, shipped_asns(HOSTING_LISTS)) | _name_matches(as_org, HOSTING_NAMES),
        ),
        ("mobile", _listed(asns, _MOBILE) | _name_matches(as_org, MOBILE_NAMES)),
        ("residential", _listed(asns, _RESIDENTIAL) | _name_matches(as_org, RESIDENTIAL_NAMES)),
    ]
    code = np.full(n, len(CLASSES) - 1, dtype=np.int8)  # unknown
    for position in range(len(rules) - 1, -1, -1):  # earlier rules overwrite later ones
        code[rules[position][1]] = position
    return pa.DictionaryArray.from_arrays(pa.array(code), pa.array(CLASSES)).cast(pa.string())
