"""Build orbwatch's bundled offline IP database from pinned npm packages (run by `make ipdb`).

What it does, once per data update (not at run time; users never need npm or a network):

1. ``npm pack`` the pinned packages below into a cache folder outside the repository
   (``--cache``, default ``$XDG_CACHE_HOME/orbwatch-ipdb``) unless they are there already, and
   check each tarball against its pinned sha512 integrity.
2. Read the range CSVs straight out of the tarballs: ``@ip-location-db/asn`` (address range ->
   AS number and AS organisation; CC BY 4.0, RouteViews + NRO + DB-IP) and
   ``@ip-location-db/geo-whois-asn-country`` (address range -> country; CC0).
3. Merge the two range lists into one list of *segments* over the 128-bit key space: sorted
   segment starts, each segment running to the next start, carrying (ASN, organisation,
   country) or nothing. Gaps become explicit "no data" segments, so a lookup is a single
   binary search and no range end needs storing.
4. Compute a coordinate per country (the centroid of the country's largest polygon in the
   borders of ``@rapideditor/country-coder``, ISC) because the country-level data has no
   coordinates and no CC0 centroid table exists as a registry package.
5. Write ``ipdb.arrow`` (Arrow IPC, zstd; start_hi/start_lo uint64 halves of the key, asn
   uint32, as_org and country dictionary-encoded), ``country_centroids.csv`` and
   ``SOURCES.json`` (packages, versions, integrity, licences, attribution, data and build
   dates) into ``--out`` (default: the package's ``enrich/data`` folder).

The output is deterministic for given tarballs except for ``build_date``; a test rebuilds it
from the cached tarballs and compares it with the shipped files.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from orbwatch import netaddr  # noqa: E402
from orbwatch.enrich.geo import (  # noqa: E402  (import after the path set-up above)
    CENTROIDS_FILE,
    IPDB_FILE,
    SOURCES_FILE,
    add_one,
    searchsorted128,
)

U64 = np.uint64


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm package: the tarball name ``npm pack`` writes and its sha512 integrity."""

    name: str
    version: str
    integrity: str
    licence: str
    attribution: str

    @property
    def tarball(self) -> str:
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    @property
    def data_date(self) -> str:
        """ip-location-db versions end in YYYYMMDDHH: the date the data was published."""
        stamp = self.version.rsplit(".", 1)[-1]
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if len(stamp) >= 8 else ""


ASN = NpmPackage(
    "@ip-location-db/asn",
    "2.3.2026061719",
    "sha512-PpqYi7wyEyWwunXBtl+y3Vi403SvNywotWwvmiYCOUtE0SVol/Sf492Ee+eErEznmGapxEQB2SAfrpXuZ9a+vQ==",
    "CC-BY-4.0",
    "IP to ASN data by RouteViews (routeviews.org), the NRO (nro.net) and DB-IP "
    "(https://db-ip.com, 'IP Geolocation by DB-IP'), licensed under CC BY 4.0, merged by "
    "ip-location-db (github.com/sapics/ip-location-db). Converted to orbwatch's range format.",
)
COUNTRY = NpmPackage(
    "@ip-location-db/geo-whois-asn-country",
    "2.3.2026061719",
    "sha512-9MQ3r2q+GDLwW+Mye5duWnHe3n1qB1ZcNUcM9P58CpdW86Gt44AgfIrem6Pcy/tbCHhQ70RJCLngQQyYnaEjbw==",
    "CC0-1.0",
    "Country data from ip-location-db geo-whois-asn-country (GeoFeed + RIR whois + ASN), "
    "CC0 1.0; whois data from the five RIRs via the NRO.",
)
BORDERS = NpmPackage(
    "@rapideditor/country-coder",
    "5.6.1",
    "sha512-/3xCpRIyhGv0lKxk26qNJgBWU6UnvE6SmOvE2GWE1CKu6pxcUVukECg6XVJLfmesYWyKHmaj1ZXtNOpz3lJkWg==",
    "ISC",
    "Country coordinates computed from the borders of country-coder, Copyright (c) 2025 "
    "country-coder contributors, ISC licence.",
)
# Not converted: the same country data as an .mmdb, the yardstick of bench/enrich.py.
YARDSTICK_MMDB = NpmPackage(
    "@ip-location-db/geo-whois-asn-country-mmdb",
    "2.3.2026061719",
    "sha512-xemBDNQl4mCYDuVbqe3jKGKsVDykZGkfvebhtOh/3VGLadq8vsp7t7ontpMUt3hH7sAGT0eLDyJ99SV+0waxZg==",
    "CC0-1.0",
    "Same data as geo-whois-asn-country, as MaxMind DB.",
)
CONVERTED = (ASN, COUNTRY, BORDERS)
# Lists of hosting and VPN AS numbers shipped as data next to the database (see netclass).
ASN_LISTS = {
    "x4bnet_datacenter_asns.txt": (
        "X4BNet/lists_vpn input/datacenter/ASN.txt @ 02e3acb8cfab740bea4785e0b16db106a4dd1ae8",
        "MIT, Copyright (c) 2024 X4B (Mathew Heard)",
    ),
    "x4bnet_vpn_asns.txt": (
        "X4BNet/lists_vpn input/vpn/ASN.txt @ 2bd96f8b54f61793e4fcc1a150b8560292b3e6ff",
        "MIT, Copyright (c) 2024 X4B (Mathew Heard)",
    ),
    "bad_asn_list.txt": (
        "brianhama/bad-asn-list bad-asn-list.csv @ 0d93825b0d02019513d44164cb0ed6cc75143c1a",
        "MIT, Copyright (c) 2025 Brian Hamachek",
    ),
}
V4_BASE = 0xFFFF << 32  # IPv4 addresses live at ::ffff:0:0/96 in the key space
V6_AFTER_V4 = 1 << 48  # ::1:0:0:0, the first key after the IPv4-mapped block


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orbwatch-ipdb"


def fetch(package: NpmPackage, cache: Path) -> Path:
    """The verified tarball in ``cache``, fetched with ``npm pack`` when missing."""
    path = cache / package.tarball
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(f"{path} is missing and npm is not installed to fetch it")
        cache.mkdir(parents=True, exist_ok=True)
        spec = f"{package.name}@{package.version}"
        subprocess.run([npm, "pack", spec, "--pack-destination", str(cache)], check=True)  # noqa: S603
    verify(package, path)
    return path


def verify(package: NpmPackage, path: Path) -> None:
    algo, _, expected = package.integrity.partition("-")
    digest = hashlib.new(algo, path.read_bytes()).digest()
    if base64.b64encode(digest).decode() != expected:
        raise SystemExit(f"{path}: integrity mismatch (expected {package.integrity})")


def read_member(tarball: Path, member: str) -> bytes:
    with tarfile.open(tarball, "r:gz") as tar:
        handle = tar.extractfile(f"package/{member}")
        if handle is None:
            raise SystemExit(f"{tarball}: no package/{member}")
        return handle.read()


def read_csv(tarball: Path, member: str, types: dict[str, pa.DataType]) -> pa.Table:
    return pcsv.read_csv(
        io.BytesIO(read_member(tarball, member)),
        read_options=pcsv.ReadOptions(autogenerate_column_names=True),
        convert_options=pcsv.ConvertOptions(column_types=types, strings_can_be_null=False),
    )


def halves(column: pa.ChunkedArray, family: int) -> tuple[np.ndarray, np.ndarray]:
    """Key halves of a column of numeric addresses (IPv4: int64; IPv6: decimal strings).

    IPv6 decimals are cast to decimal128 by Arrow and read back as the little-endian 128-bit
    integers it stores; every IPv6 range in the data is in 2000::/3, far below 10**38.
    """
    if family == 4:
        values = column.to_numpy().astype(U64)
        return np.zeros(len(values), U64), U64(V4_BASE) | values
    dec = column.cast(pa.decimal128(38, 0)).combine_chunks()
    words = np.frombuffer(dec.buffers()[1], dtype="<u8")
    words = words[dec.offset * 2 : (dec.offset + len(dec)) * 2].reshape(-1, 2)
    return words[:, 1].copy(), words[:, 0].copy()


def less(ah: np.ndarray, al: np.ndarray, bh: np.ndarray, bl: np.ndarray) -> np.ndarray:
    result: np.ndarray = (ah < bh) | ((ah == bh) & (al < bl))
    return result


Bounds = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def bounds_of(table: pa.Table, family: int) -> Bounds:
    """(start_hi, start_lo, end_hi, end_lo) of a range table with columns f0, f1."""
    return (*halves(table["f0"], family), *halves(table["f1"], family))


def segments(
    bounds: Bounds, attr: np.ndarray, first: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranges (f0 start, f1 end inclusive) -> segment starts with attribute index, -1 = none.

    ``first`` is the key where this family's space begins; the segment list starts there.
    The sources nest a few hundred more specific ranges inside wider ones (a /29 of another
    country inside a /26); like a routing table, the most specific range wins. Ranges that
    span one elementary segment are painted in one vectorised step; only the few wider ranges
    that contain others are painted one by one, widest first.
    """
    sh, sl, eh, el = bounds
    nh, nl = add_one(eh, el)
    hi = np.concatenate([[U64(first[0])], sh, nh])
    lo = np.concatenate([[U64(first[1])], sl, nl])
    order = np.lexsort((lo, hi))
    hi, lo = hi[order], lo[order]
    distinct = np.ones(len(hi), dtype=bool)
    distinct[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    hi, lo = hi[distinct], lo[distinct]
    first_seg = searchsorted128(hi, lo, sh, sl)
    end_seg = searchsorted128(hi, lo, nh, nl)
    wrapped = (nh == 0) & (nl == 0)  # a range ending at the very last key
    end_seg[wrapped] = len(hi)
    val = np.full(len(hi), -1, dtype=np.int64)
    wide = np.flatnonzero(end_seg - first_seg > 1)
    size_lo = el[wide] - sl[wide]
    size_hi = eh[wide] - sh[wide] - (el[wide] < sl[wide]).astype(U64)
    for i in wide[np.lexsort((size_lo, size_hi))[::-1]]:
        val[first_seg[i] : end_seg[i]] = attr[i]
    single = np.flatnonzero(end_seg - first_seg == 1)
    val[first_seg[single]] = attr[single]
    change = np.ones(len(hi), dtype=bool)
    change[1:] = val[1:] != val[:-1]
    return hi[change], lo[change], val[change]


def merge(*lists: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Union of segment lists: (start_hi, start_lo, attr of each list...), equal runs collapsed."""
    hi = np.concatenate([seg[0] for seg in lists])
    lo = np.concatenate([seg[1] for seg in lists])
    order = np.lexsort((lo, hi))
    hi, lo = hi[order], lo[order]
    distinct = np.ones(len(hi), dtype=bool)
    distinct[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    hi, lo = hi[distinct], lo[distinct]
    values = [seg[2][searchsorted128(seg[0], seg[1], hi, lo)] for seg in lists]
    change = np.zeros(len(hi), dtype=bool)
    change[0] = True
    for val in values:
        change[1:] |= val[1:] != val[:-1]
    return (hi[change], lo[change], *(val[change] for val in values))


def special_purpose(family: int) -> Bounds:
    """RFC 6890 ranges of one family: never on the public Internet.

    The sources place some of them in countries (192.168.0.0/16 in AU); the build blanks them.
    """
    nets = [n for n in map(netaddr.network, netaddr.SPECIAL_PURPOSE) if n.family == family]
    mask = 2**64 - 1
    return (
        np.array([n.start >> 64 for n in nets], U64),
        np.array([n.start & mask for n in nets], U64),
        np.array([n.end >> 64 for n in nets], U64),
        np.array([n.end & mask for n in nets], U64),
    )


def family_table(asn_pkg: Path, country_pkg: Path, family: int) -> pa.Table:
    asn = read_csv(
        asn_pkg,
        f"asn-ipv{family}-num.csv",
        {
            "f0": pa.string() if family == 6 else pa.int64(),
            "f1": pa.string() if family == 6 else pa.int64(),
            "f2": pa.int64(),
            "f3": pa.string(),
        },
    )
    cty = read_csv(
        country_pkg,
        f"geo-whois-asn-country-ipv{family}-num.csv",
        {
            "f0": pa.string() if family == 6 else pa.int64(),
            "f1": pa.string() if family == 6 else pa.int64(),
            "f2": pa.string(),
        },
    )
    first = (0, V4_BASE) if family == 4 else (0, 0)
    special = special_purpose(family)
    hi, lo, ia, ic, sp = merge(
        segments(bounds_of(asn, family), np.arange(asn.num_rows), first),
        segments(bounds_of(cty, family), np.arange(cty.num_rows), first),
        segments(special, np.arange(len(special[0])), first),
    )
    has_asn, has_cty = (ia >= 0) & (sp < 0), (ic >= 0) & (sp < 0)
    asn_col = pc.if_else(
        pa.array(has_asn), asn["f2"].take(pa.array(np.where(has_asn, ia, 0))), None
    )
    org_col = pc.if_else(
        pa.array(has_asn), asn["f3"].take(pa.array(np.where(has_asn, ia, 0))), None
    )
    cty_col = pc.if_else(
        pa.array(has_cty), cty["f2"].take(pa.array(np.where(has_cty, ic, 0))), None
    )
    return pa.table(
        {
            "start_hi": pa.array(hi, pa.uint64()),
            "start_lo": pa.array(lo, pa.uint64()),
            "asn": pc.cast(asn_col, pa.uint32()),
            "as_org": org_col,
            "country": pc.utf8_upper(cty_col),
        }
    )


def build_table(asn_pkg: Path, country_pkg: Path) -> pa.Table:
    """Both families in one segment list over the whole key space, sorted by key."""
    v4 = family_table(asn_pkg, country_pkg, 4)
    v6 = family_table(asn_pkg, country_pkg, 6)
    low = pc.equal(v6["start_hi"], pa.scalar(0, pa.uint64()))
    if v6.filter(low).drop_null().num_rows:
        raise SystemExit("IPv6 data in ::/64 (where IPv4-mapped keys live): not handled")
    v6_starts = v6.filter(pc.invert(low))
    none = pa.table(
        {
            "start_hi": pa.array([0, 0], pa.uint64()),
            "start_lo": pa.array([0, V6_AFTER_V4], pa.uint64()),
            "asn": pa.nulls(2, pa.uint32()),
            "as_org": pa.nulls(2, pa.string()),
            "country": pa.nulls(2, pa.string()),
        }
    )
    table = pa.concat_tables([none.slice(0, 1), v4, none.slice(1, 1), v6_starts])
    return table.set_column(
        3, "as_org", pc.dictionary_encode(table["as_org"]).combine_chunks()
    ).set_column(4, "country", pc.dictionary_encode(table["country"]).combine_chunks())


def _largest_polygon_centroid(polygons: list[list[list[list[float]]]]) -> tuple[float, float]:
    """Centroid (lat, lon) of the largest outer ring, areas scaled by cos(latitude).

    The largest polygon is the mainland: metropolitan France, not French Guiana; the
    contiguous US, not Alaska. Averaging several polygons was tried and rejected: polygons on
    both sides of the antimeridian (Fiji, the Aleutians) average to the wrong hemisphere.
    """
    best: tuple[float, float, float] = (-1.0, 0.0, 0.0)
    for polygon in polygons:
        ring = np.asarray(polygon[0], dtype=np.float64)
        x, y = ring[:, 0], ring[:, 1]
        x1, y1 = np.roll(x, -1), np.roll(y, -1)
        cross = x * y1 - x1 * y
        area = cross.sum() / 2.0
        if area == 0:
            continue
        cx = ((x + x1) * cross).sum() / (6 * area)
        cy = ((y + y1) * cross).sum() / (6 * area)
        scaled = abs(area) * np.cos(np.radians(cy))
        if scaled > best[0]:
            best = (scaled, cy, cx)
    return round(best[1], 4), round(best[2], 4)


def centroids(borders_pkg: Path, codes: list[str]) -> str:
    """CSV ``country,latitude,longitude`` for every code the country data uses.

    A country without a geometry of its own in the borders file is the union of the parts
    that name it as their ``country`` and have no ISO code of their own (Greenland is GL, not
    DK; Puerto Rico is PR, not US), plus FX, the code exceptionally reserved for metropolitan
    France. The borders reach into territorial waters, so a coordinate is that of land and sea
    together: a country-level estimate, not a place.
    """
    borders = json.loads(read_member(borders_pkg, "src/data/borders.json"))
    own: dict[str, list[list[list[list[float]]]]] = {}
    parts: dict[str, list[list[list[list[float]]]]] = {}
    for feature in borders["features"]:
        props, geometry = feature["properties"], feature["geometry"]
        if geometry is None:
            continue
        code = props.get("iso1A2")
        if code:
            own.setdefault(code, []).extend(geometry["coordinates"])
        if props.get("country") and (not code or code == "FX"):
            parts.setdefault(props["country"], []).extend(geometry["coordinates"])
    lines = ["country,latitude,longitude"]
    for code in sorted(set(codes)):
        polygons = own.get(code) or parts.get(code)
        if polygons:
            lat, lon = _largest_polygon_centroid(polygons)
            lines.append(f"{code},{lat},{lon}")
    return "\n".join(lines) + "\n"


def sources(table: pa.Table, build_date: str) -> dict[str, object]:
    return {
        "format": "orbwatch-ipdb 1",
        "build_date": build_date,
        "data_date": ASN.data_date,
        "build_script": "scripts/build_ipdb.py",
        "rows": table.num_rows,
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "integrity": p.integrity,
                "licence": p.licence,
                "attribution": p.attribution,
                "data_date": p.data_date,
            }
            for p in CONVERTED
        ],
        "asn_lists": [
            {"file": file, "source": src, "licence": lic} for file, (src, lic) in ASN_LISTS.items()
        ],
    }


def build(cache: Path, out: Path, build_date: str) -> pa.Table:
    asn_pkg, country_pkg, borders_pkg = (fetch(p, cache) for p in CONVERTED)
    table = build_table(asn_pkg, country_pkg)
    out.mkdir(parents=True, exist_ok=True)
    meta = sources(table, build_date)
    schema = table.schema.with_metadata(
        {"orbwatch.ipdb": json.dumps({k: meta[k] for k in ("format", "data_date")})}
    )
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with (
        pa.OSFile(str(out / IPDB_FILE), "wb") as sink,
        pa.ipc.new_file(sink, schema, options=options) as writer,
    ):
        writer.write_table(table.cast(schema), max_chunksize=table.num_rows)
    codes = table["country"].combine_chunks().dictionary.to_pylist()
    (out / CENTROIDS_FILE).write_text(centroids(borders_pkg, codes), encoding="utf-8")
    (out / SOURCES_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cache", type=Path, default=default_cache(), help="tarball cache folder")
    parser.add_argument(
        "--out", type=Path, default=REPO / "src/orbwatch/enrich/data", help="output folder"
    )
    parser.add_argument("--build-date", default=dt.date.today().isoformat())
    parser.add_argument(
        "--fetch-yardstick",
        action="store_true",
        help="also fetch the .mmdb used by bench/enrich.py",
    )
    args = parser.parse_args()
    table = build(args.cache, args.out, args.build_date)
    if args.fetch_yardstick:
        fetch(YARDSTICK_MMDB, args.cache)
    size = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
    print(f"{table.num_rows} segments written to {args.out} ({size / 1e6:.1f} MB in the folder)")


if __name__ == "__main__":
    main()
