"""128-bit address keys as numpy arrays, and binary search over sorted range starts.

The workspace stores addresses as 32-hex-digit keys (see :mod:`orbwatch.netaddr`). Looking ten
million of them up in a range table must not parse ten million strings in Python, so this module
decodes the fixed-width hex straight from the Arrow string buffer with SWAR arithmetic (eight
hex digits per ``uint64`` word, no per-address loop) into two ``uint64`` halves, ``hi`` and
``lo``. numpy has no 128-bit integer and no binary search over a pair of columns, so
:func:`searchsorted128` is written here: a ``searchsorted`` on the high half, refined on the low
half only for the few queries whose high half ties with a range start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from orbwatch import netaddr
from orbwatch.config import Config, EnrichSettings
from orbwatch.enrich import netclass
from orbwatch.errors import ConfigError
from orbwatch.store.workspace import Workspace

U64 = npt.NDArray[np.uint64]
DATA_DIR = Path(__file__).resolve().parent / "data"
IPDB_FILE = "ipdb.arrow"
CENTROIDS_FILE = "country_centroids.csv"
SOURCES_FILE = "SOURCES.json"
KEY_CHARS = 32
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
_BIT6 = np.uint64(0x0101010101010101)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_ASCII_ZERO = np.uint64(0x3030303030303030)
_SIX = np.uint64(0x0606060606060606)
_BIT4 = np.uint64(0x1010101010101010)
_LANE16 = np.uint64(0x00FF00FF00FF00FF)
_LANE32 = np.uint64(0x0000FFFF0000FFFF)
_LOW32 = np.uint64(0xFFFFFFFF)
# The first 24 hex digits of every IPv4-mapped key, as the three little-endian words they are.
_V4_PREFIX_WORDS = np.frombuffer(b"00000000000000000000ffff", dtype="<u8")
V4_MAPPED_HI = np.uint64(0)
V4_MAPPED_LO_BASE = np.uint64(0xFFFF << 32)


def _decode_words(words: U64) -> tuple[U64, npt.NDArray[np.bool_]]:
    """Eight ASCII hex digits per little-endian word -> their 32-bit value, and validity.

    Digit i of a word is byte i. ``(c & 0xF) + 9 * bit6(c)`` maps '0'-'9' and 'a'-'f' to
    0-15 in every byte at once; three shift-and-mask steps then pack the eight nibbles,
    first digit most significant. A word is valid when re-encoding the nibbles as lowercase
    hex gives back the word and no nibble overflowed (that rejects 'g'-'o', upper case and
    every non-hex byte).
    """
    # In place on two scratch arrays: fresh 80 MB temporaries per step cost more in page
    # faults than the arithmetic itself.
    nib = words & _LOW_NIBBLES
    tmp = words >> np.uint64(6)
    tmp &= _BIT6
    tmp *= np.uint64(9)
    nib += tmp
    np.add(nib, _SIX, out=tmp)
    tmp &= _BIT4
    tmp >>= np.uint64(4)
    tmp *= np.uint64(39)
    tmp += nib
    tmp += _ASCII_ZERO
    valid = tmp == words
    np.bitwise_and(nib, _HIGH_NIBBLES, out=tmp)
    valid &= tmp == 0
    np.right_shift(nib, np.uint64(8), out=tmp)
    tmp &= _LANE16
    nib &= _LANE16
    nib <<= np.uint64(4)
    nib |= tmp  # 16-bit lanes: two digits each
    np.right_shift(nib, np.uint64(16), out=tmp)
    tmp &= _LANE32
    nib &= _LANE32
    nib <<= np.uint64(8)
    nib |= tmp  # 32-bit lanes: four digits each
    np.right_shift(nib, np.uint64(32), out=tmp)
    nib &= _LOW32
    nib <<= np.uint64(16)
    nib |= tmp
    value = nib
    return value, valid


@dataclass(frozen=True)
class KeyArray:
    """Decoded keys: 128-bit values as ``hi``/``lo`` halves, and which inputs were keys."""

    hi: U64
    lo: U64
    valid: npt.NDArray[np.bool_]
    is_v4: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.hi)

    def v4_values(self) -> npt.NDArray[np.uint32]:
        """The IPv4 address of every key (meaningful where ``is_v4``)."""
        return (self.lo & _LOW32).astype(np.uint32)


def _fixed_width_words(column: pa.StringArray) -> npt.NDArray[np.uint64] | None:
    """The (n, 4) word view of a string array whose every value is 32 bytes, else None."""
    n = len(column)
    if column.null_count:
        return None
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32)[
        column.offset : column.offset + n + 1
    ]
    start = int(offsets[0])
    if int(offsets[-1]) - start != KEY_CHARS * n or np.any(np.diff(offsets) != KEY_CHARS):
        return None
    data = np.frombuffer(column.buffers()[2], dtype=np.uint8)[start : start + KEY_CHARS * n]
    if start % 8:
        data = data.copy()  # word view needs 8-byte alignment
    return data.view("<u8").reshape(n, 4)


def decode_keys(keys: pa.Array) -> KeyArray:
    """Decode a string array of address keys; anything that is not a key is marked invalid.

    Whole-column numpy arithmetic on the Arrow buffer. IPv4-mapped keys (the common case)
    are recognised by comparing three words with constants and decoded from their last word
    only; other keys decode all four words.
    """
    column = pc.cast(keys, pa.string())
    words = _fixed_width_words(column)
    if words is None:
        well_formed = pc.fill_null(pc.equal(pc.binary_length(column), KEY_CHARS), False)
        clean = pc.if_else(well_formed, column, "0" * KEY_CHARS)
        words = _fixed_width_words(clean)
        assert words is not None
        shape_ok = well_formed.to_numpy(zero_copy_only=False)
    else:
        shape_ok = np.ones(len(column), dtype=bool)
    n = len(column)
    hi = np.zeros(n, dtype=np.uint64)
    last, valid = _decode_words(np.ascontiguousarray(words[:, 3]))
    is_v4 = (
        (words[:, 0] == _V4_PREFIX_WORDS[0])
        & (words[:, 1] == _V4_PREFIX_WORDS[1])
        & (words[:, 2] == _V4_PREFIX_WORDS[2])
    )
    lo = V4_MAPPED_LO_BASE | last
    other = np.flatnonzero(~is_v4)
    if len(other):
        w = words[other]
        parts = [_decode_words(np.ascontiguousarray(w[:, i])) for i in range(4)]
        hi[other] = (parts[0][0] << np.uint64(32)) | parts[1][0]
        lo[other] = (parts[2][0] << np.uint64(32)) | parts[3][0]
        valid[other] = parts[0][1] & parts[1][1] & parts[2][1] & parts[3][1]
    valid &= shape_ok
    return KeyArray(hi=hi, lo=lo, valid=valid, is_v4=is_v4 & valid)


def searchsorted128(start_hi: U64, start_lo: U64, hi: U64, lo: U64) -> npt.NDArray[np.intp]:
    """Index of the last start <= each query (-1 when the query precedes every start).

    ``start_hi``/``start_lo`` must be sorted as 128-bit numbers. The high half decides every
    query whose ``hi`` equals no start's ``hi``; the ties (queries inside a /64 where a range
    starts off a /64 boundary) are resolved by a second search on 16-byte big-endian strings,
    which compare like the numbers. numpy offers neither step as one call, hence this helper.
    """
    left = np.searchsorted(start_hi, hi, side="left")
    right = np.searchsorted(start_hi, hi, side="right")
    result: npt.NDArray[np.intp] = left - 1
    tied = np.flatnonzero(right > left)
    if len(tied):
        table = _be_bytes(start_hi, start_lo)
        queries = _be_bytes(hi[tied], lo[tied])
        result[tied] = np.searchsorted(table, queries, side="right") - 1
    return result


def _be_bytes(hi: U64, lo: U64) -> npt.NDArray[np.void]:
    pairs = np.empty((len(hi), 2), dtype=">u8")
    pairs[:, 0] = hi
    pairs[:, 1] = lo
    return pairs.view("V16").ravel()


def add_one(hi: U64, lo: U64) -> tuple[U64, U64]:
    """(hi, lo) + 1 with the carry, wrapping at 2**128 (for "end + 1" of inclusive ranges)."""
    lo1 = lo + np.uint64(1)
    return hi + (lo1 == 0).astype(np.uint64), lo1


# -- answers -------------------------------------------------------------------------------
ANSWER_SCHEMA = pa.schema(
    [
        ("country", pa.dictionary(pa.int32(), pa.string())),
        ("region", pa.string()),
        ("city", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
        ("asn", pa.int64()),
        ("as_org", pa.dictionary(pa.int32(), pa.string())),
    ]
)


def _dictionary_column(indices: npt.NDArray[np.int32], dictionary: pa.Array) -> pa.Array:
    """Dictionary-encoded strings from indices (-1 = null): no string is copied per row."""
    missing = indices < 0
    codes = pa.array(indices, mask=missing) if missing.any() else pa.array(indices)
    return pa.DictionaryArray.from_arrays(codes, dictionary)


def _nullable_float(values: npt.NDArray[np.float64]) -> pa.Array:
    return pa.array(values, pa.float64(), from_pandas=True)  # NaN -> null


@dataclass(frozen=True)
class Answers:
    """What a database answered for a batch of keys (one row per key, in order)."""

    table: pa.Table
    geo_db: str
    asn_db: str


class BundledDatabase:
    """The database shipped in ``enrich/data`` (built by ``scripts/build_ipdb.py``).

    Loaded once per process (:func:`bundled`). IPv4 keys are answered from a direct index of
    every /24 (16.7 M int32, 64 MiB, built for the first large batch) naming the segment that
    covers the whole /24, with a binary search only for the /24s that hold a segment
    boundary; IPv6 keys by :func:`searchsorted128` over the IPv6 segment starts.
    """

    V4_INDEX_BITS = 24
    DIRECT_INDEX_FROM = 500_000  # IPv4 keys in one batch worth building the /24 index for

    def __init__(self, folder: Path = DATA_DIR) -> None:
        path = folder / IPDB_FILE
        try:
            table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            raise OSError(f"{path}: cannot read the bundled IP database: {exc}") from None
        self.folder = folder
        self.sources: dict[str, object] = json.loads((folder / SOURCES_FILE).read_text("utf-8"))
        self.label = f"orbwatch-ipdb {self.sources['data_date']}"
        hi = table["start_hi"].to_numpy()
        lo = table["start_lo"].to_numpy()
        v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
        self.v4_starts = (lo[v4] & _LOW32).astype(np.uint32)
        self.v6_hi, self.v6_lo = hi[~v4], lo[~v4]
        org = table["as_org"].combine_chunks()
        country = table["country"].combine_chunks()
        self.orgs, self.countries = org.dictionary, country.dictionary
        # One 16-byte record per segment, IPv4 segments first, then IPv6, then a "nothing
        # known" record that every non-key points at: one gather per key fetches all.
        segment = np.empty(table.num_rows, dtype=ATTRIBUTES)
        segment["country"] = country.indices.fill_null(-1).to_numpy()
        segment["org"] = org.indices.fill_null(-1).to_numpy()
        segment["asn"] = table["asn"].fill_null(0).to_numpy()
        self.attributes = np.concatenate([segment[v4], segment[~v4], _NOTHING])
        self.v6_base = int(v4.sum())
        lat, lon = _centroids(folder / CENTROIDS_FILE, self.countries)
        self.lat = np.append(lat, np.nan)  # index -1 (no country) reads the NaN
        self.lon = np.append(lon, np.nan)
        self._v4_direct: npt.NDArray[np.int32] | None = None

    def _v4_index(self) -> npt.NDArray[np.int32]:
        """Segment of every /24: the last segment starting at or before the /24's first address.

        Segment ``i`` covers the /24s from ``ceil(start_i / 256)`` up to the next segment's:
        one ``numpy.repeat`` of run lengths, no 16.7 M-needle binary search.
        """
        if self._v4_direct is None:
            shift = 32 - self.V4_INDEX_BITS
            size = 1 << self.V4_INDEX_BITS
            first_bucket = (self.v4_starts.astype(np.int64) + (1 << shift) - 1) >> shift
            runs = np.diff(first_bucket, prepend=0, append=size)
            segment = np.arange(-1, len(self.v4_starts), dtype=np.int32)
            direct = np.repeat(segment, runs)
            inside = self.v4_starts[(self.v4_starts & np.uint32((1 << shift) - 1)) != 0]
            direct[inside >> np.uint32(shift)] = -1  # a boundary inside this /24: search
            self._v4_direct = direct
        return self._v4_direct

    def segments(self, keys: KeyArray) -> npt.NDArray[np.intp]:
        """Index into :attr:`attributes` of the segment holding each key."""
        found = np.full(len(keys), len(self.attributes) - 1, dtype=np.intp)
        v4 = np.flatnonzero(keys.is_v4)
        if len(v4):
            ip = keys.v4_values()[v4]
            if self._v4_direct is None:
                seg = np.searchsorted(self.v4_starts, ip, side="right") - 1
            else:
                seg = self._v4_direct[ip >> np.uint32(32 - self.V4_INDEX_BITS)].astype(np.intp)
                ambiguous = np.flatnonzero(seg < 0)
                seg[ambiguous] = np.searchsorted(self.v4_starts, ip[ambiguous], side="right") - 1
            found[v4] = seg
        v6 = np.flatnonzero(keys.valid & ~keys.is_v4)
        if len(v6):
            seg6 = searchsorted128(self.v6_hi, self.v6_lo, keys.hi[v6], keys.lo[v6])
            found[v6] = self.v6_base + seg6
        return found

    def lookup(self, keys: pa.Array | pa.ChunkedArray) -> Answers:
        """Country, coordinates, ASN and AS organisation of every key, vectorised.

        Keys go through in chunks of :data:`CHUNK`: whole-column temporaries of 80 MB cost
        more in page faults than the arithmetic, chunks stay in cache (a loop over ten
        chunks for ten million keys, not over keys).
        """
        n = len(keys)
        if n >= self.DIRECT_INDEX_FROM:
            self._v4_index()
        # Gathered as complex128, a 16-byte native type: numpy's take on a structured
        # dtype copies field by field and is several times slower.
        records = self.attributes.view(np.complex128)
        out = np.empty(n, dtype=ATTRIBUTES)
        flat = out.view(np.complex128)
        for start, part in _chunks(keys):
            np.take(records, self.segments(decode_keys(part)), out=flat[start : start + len(part)])
        return Answers(
            _answer_table(out, self.countries, self.orgs, self.lat, self.lon),
            geo_db=self.label,
            asn_db=self.label,
        )


ATTRIBUTES = np.dtype([("country", "<i4"), ("org", "<i4"), ("asn", "<i8")])
_NOTHING = np.array([(-1, -1, 0)], dtype=ATTRIBUTES)


def _answer_table(
    found: npt.NDArray[np.void],
    countries: pa.Array,
    orgs: pa.Array,
    lat: npt.NDArray[np.float64],
    lon: npt.NDArray[np.float64],
) -> pa.Table:
    """Answer columns from gathered attribute records (country -1: none; ASN 0: none)."""
    n = len(found)
    country = np.ascontiguousarray(found["country"])
    asn = np.ascontiguousarray(found["asn"])
    return pa.Table.from_arrays(
        [
            _dictionary_column(country, countries),
            pa.nulls(n, pa.string()),
            pa.nulls(n, pa.string()),
            _nullable_float(lat[country]),
            _nullable_float(lon[country]),
            pa.array(asn, mask=asn == 0),
            _dictionary_column(np.ascontiguousarray(found["org"]), orgs),
        ],
        schema=ANSWER_SCHEMA,
    )


CHUNK = 1 << 18


def _chunks(keys: pa.Array | pa.ChunkedArray) -> Iterator[tuple[int, pa.Array]]:
    """(offset, slice) pieces of at most :data:`CHUNK` keys (zero-copy slices)."""
    arrays = keys.chunks if isinstance(keys, pa.ChunkedArray) else [keys]
    offset = 0
    for array in arrays:
        for start in range(0, len(array), CHUNK):
            part = array.slice(start, CHUNK)
            yield offset, part
            offset += len(part)


def _centroids(path: Path, countries: pa.Array) -> tuple[npt.NDArray[np.float64], ...]:
    """Latitude and longitude per entry of the country dictionary (NaN when unknown)."""
    table = pcsv.read_csv(
        str(path),
        convert_options=pcsv.ConvertOptions(
            column_types={
                "country": pa.string(),
                "latitude": pa.float64(),
                "longitude": pa.float64(),
            }
        ),
    )
    position = pc.index_in(countries, table["country"]).to_numpy(zero_copy_only=False)
    known = ~np.isnan(position.astype(np.float64))
    idx = np.where(known, np.nan_to_num(position.astype(np.float64)), 0).astype(np.intp)
    lat = np.where(known, table["latitude"].to_numpy()[idx], np.nan)
    lon = np.where(known, table["longitude"].to_numpy()[idx], np.nan)
    return lat, lon


_BUNDLED: dict[Path, BundledDatabase] = {}


def bundled(folder: Path = DATA_DIR) -> BundledDatabase:
    """The bundled database, loaded once per process."""
    if folder not in _BUNDLED:
        _BUNDLED[folder] = BundledDatabase(folder)
    return _BUNDLED[folder]


# -- MaxMind databases (the user's upgrade) -------------------------------------------------
def _mmdb_label(reader: maxminddb.Reader) -> str:
    meta = reader.metadata()
    built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).date().isoformat()
    return f"{meta.database_type} {built}"


def _key_texts(keys: pa.Array) -> list[str | None]:
    """Address text of each distinct key, for readers that only take one address at a time."""
    texts: list[str | None] = []
    for key in keys.to_pylist():
        try:
            value = int(key, 16) if key and len(key) == KEY_CHARS else None
        except ValueError:
            value = None
        if value is None:
            texts.append(None)
        elif value >> 32 == 0xFFFF:
            texts.append(str(ipaddress.IPv4Address(value & 0xFFFFFFFF)))
        else:
            texts.append(str(ipaddress.IPv6Address(value)))
    return texts


class MaxMindDatabases:
    """GeoLite2/GeoIP2 City and ASN ``.mmdb`` files, through the ``maxminddb`` C reader.

    The reader answers one address per call (``Reader.get``), so this is the one place with a
    loop over addresses: it runs over the *distinct* keys of a batch (dictionary encoding),
    and the answers are spread back to every row with one ``take``. Either file may be
    missing; the bundled database then answers that half.
    """

    def __init__(self, city: Path | None, asn: Path | None) -> None:
        self.city = maxminddb.open_database(str(city)) if city else None
        self.asn = maxminddb.open_database(str(asn)) if asn else None

    def close(self) -> None:
        for reader in (self.city, self.asn):
            if reader is not None:
                reader.close()

    def lookup(self, keys: pa.Array | pa.ChunkedArray) -> Answers:
        column = pc.cast(keys, pa.string())
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        encoded = pc.dictionary_encode(column)
        distinct = _key_texts(encoded.dictionary)
        fallback = bundled().lookup(encoded.dictionary).table
        columns = {name: fallback[name].to_pylist() for name in ANSWER_SCHEMA.names}
        geo_db = asn_db = bundled().label
        if self.city is not None:
            geo_db = _mmdb_label(self.city)
            for name, values in zip(_CITY_FIELDS, _city_answers(self.city, distinct), strict=True):
                columns[name] = values
        if self.asn is not None:
            asn_db = _mmdb_label(self.asn)
            columns["asn"], columns["as_org"] = _asn_answers(self.asn, distinct)
        table = pa.table(
            {
                name: pa.array(columns[name], ANSWER_SCHEMA.field(name).type)
                for name in ANSWER_SCHEMA.names
            }
        )
        return Answers(table.take(encoded.indices), geo_db=geo_db, asn_db=asn_db)


_CITY_FIELDS = ("country", "region", "city", "latitude", "longitude")


def _city_answers(reader: maxminddb.Reader, texts: list[str | None]) -> list[list[Any]]:
    out: list[list[Any]] = [[] for _ in _CITY_FIELDS]
    for text in texts:
        record = reader.get(text) if text else None
        rec: dict[str, Any] = record if isinstance(record, dict) else {}
        country = rec.get("country") or rec.get("registered_country") or {}
        subdivisions = rec.get("subdivisions") or [{}]
        location = rec.get("location") or {}
        values = (
            country.get("iso_code"),
            (subdivisions[0].get("names") or {}).get("en"),
            ((rec.get("city") or {}).get("names") or {}).get("en"),
            location.get("latitude"),
            location.get("longitude"),
        )
        for column, value in zip(out, values, strict=True):
            column.append(value)
    return out


def _asn_answers(reader: maxminddb.Reader, texts: list[str | None]) -> tuple[list[Any], list[Any]]:
    numbers: list[Any] = []
    orgs: list[Any] = []
    for text in texts:
        record = reader.get(text) if text else None
        rec: dict[str, Any] = record if isinstance(record, dict) else {}
        numbers.append(rec.get("autonomous_system_number"))
        orgs.append(rec.get("autonomous_system_organization"))
    return numbers, orgs


def open_databases(settings: EnrichSettings) -> BundledDatabase | MaxMindDatabases:
    """The configured MaxMind files when there are any, else the bundled database."""
    if settings.city_mmdb is None and settings.asn_mmdb is None:
        return bundled()
    for path in (settings.city_mmdb, settings.asn_mmdb):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path}: [enrich] MaxMind database file not found")
    try:
        return MaxMindDatabases(settings.city_mmdb, settings.asn_mmdb)
    except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
        raise ConfigError(f"[enrich] cannot open MaxMind database: {exc}") from None


# -- the workspace cache ---------------------------------------------------------------------
_ADDRESSES_SQL = """
WITH seen AS (
    SELECT src_key AS ip_key, src_ip AS ip FROM flows
    UNION ALL SELECT dst_key, dst_ip FROM flows
    UNION ALL SELECT src_key, src_ip FROM logins
    UNION ALL SELECT start_key, indicator FROM intel WHERE start_key = end_key
)
SELECT ip_key, min(ip) AS ip FROM seen
WHERE ip_key IS NOT NULL AND ip_key NOT IN (SELECT ip_key FROM ip_info)
GROUP BY ip_key
"""
_NAT_SQL = """
SELECT DISTINCT ip FROM (
    SELECT nat_src_ip AS ip FROM flows UNION ALL SELECT nat_dst_ip FROM flows
) WHERE ip IS NOT NULL
"""
_TOR_SQL = "SELECT DISTINCT list_name, indicator FROM intel"


@dataclass
class EnrichResult:
    """What ``enrich_workspace`` did."""

    added: int = 0
    total: int = 0
    geo_db: str = ""
    asn_db: str = ""
    by_class: dict[str, int] = field(default_factory=dict)
    by_country: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def new_addresses(ws: Workspace) -> pa.Table:
    """(ip_key, ip) of every address in flows, logins and intel not yet in ``ip_info``."""
    table = ws.query(_ADDRESSES_SQL)
    nat = ws.query(_NAT_SQL)["ip"].combine_chunks()
    if len(nat):
        nat_table = pa.table({"ip_key": netaddr.keys(nat), "ip": nat}).filter(
            pc.is_valid(pc.field("ip_key"))
        )
        known = ws.query("SELECT ip_key FROM ip_info")["ip_key"]
        fresh = pc.invert(pc.is_in(nat_table["ip_key"], value_set=known.combine_chunks()))
        fresh = pc.and_(
            fresh,
            pc.invert(pc.is_in(nat_table["ip_key"], value_set=table["ip_key"].combine_chunks())),
        )
        table = pa.concat_tables([table, nat_table.filter(fresh).cast(table.schema)])
    return table.group_by("ip_key").aggregate([("ip", "min")]).rename_columns(["ip_key", "ip"])


def workspace_networks(ws: Workspace, config: Config) -> netclass.Networks:
    """Corporate ranges from the config, Tor exits from the intel lists named for Tor."""
    intel = ws.query(_TOR_SQL).to_pylist()
    tor = [
        netaddr.network(row["indicator"])
        for row in intel
        if netclass.TOR_LIST_NAME.search(row["list_name"] or "")
    ]
    corporate = [netaddr.network(c) for c in [*config.internal_networks, *config.corporate_egress]]
    return netclass.Networks(corporate=corporate, tor=tor)


def enrich_workspace(
    ws: Workspace, config: Config, on_rows: Callable[[int], object] | None = None
) -> EnrichResult:
    """Fill ``ip_info`` for every address not in it yet (incremental), and say what was added."""
    started = time.monotonic()
    addresses = new_addresses(ws)
    db = open_databases(config.enrich)
    networks = workspace_networks(ws, config)
    result = EnrichResult()
    try:
        for start in range(0, addresses.num_rows, ENRICH_BATCH):
            batch = addresses.slice(start, ENRICH_BATCH)
            answers = db.lookup(batch["ip_key"])
            _store(ws, batch, answers, networks)
            result.geo_db, result.asn_db = answers.geo_db, answers.asn_db
            result.added += batch.num_rows
            if on_rows is not None:
                on_rows(batch.num_rows)
    finally:
        if isinstance(db, MaxMindDatabases):
            db.close()
    result.total = ws.count("ip_info")
    result.by_class = _counts(ws, "net_class")
    result.by_country = _counts(ws, "country")
    result.seconds = time.monotonic() - started
    return result


ENRICH_BATCH = 1 << 20


def _store(ws: Workspace, batch: pa.Table, answers: Answers, networks: netclass.Networks) -> None:
    found = answers.table
    keys = batch["ip_key"].combine_chunks()
    now = dt.datetime.now(dt.UTC)
    n = batch.num_rows
    columns = {
        "ip_key": keys,
        "ip": batch["ip"],
        **{name: found[name] for name in ANSWER_SCHEMA.names},
        "net_class": netclass.classify(
            keys, found["asn"].combine_chunks(), found["as_org"].combine_chunks(), networks
        ),
        "geo_db": pa.array([answers.geo_db] * 1, pa.string()).take(pa.array(np.zeros(n, np.int32))),
        "asn_db": pa.array([answers.asn_db] * 1, pa.string()).take(pa.array(np.zeros(n, np.int32))),
        "enriched_at": pa.array([now], pa.timestamp("us", tz="UTC")).take(
            pa.array(np.zeros(n, np.int32))
        ),
    }
    columns["country"] = pc.cast(columns["country"], pa.string())
    columns["as_org"] = pc.cast(columns["as_org"], pa.string())
    with ws.transaction():
        ws.append("ip_info", pa.table(columns))


def _counts(ws: Workspace, column: str) -> dict[str, int]:
    rows = ws.query(
        f"SELECT coalesce(\"{column}\", '-') AS k, count(*) AS n FROM ip_info "
        "GROUP BY 1 ORDER BY 2 DESC"
    )
    return dict(zip(rows["k"].to_pylist(), rows["n"].to_pylist(), strict=True))


def lookup_addresses(
    texts: list[str], config: Config, ws: Workspace | None = None
) -> list[dict[str, Any]]:
    """``orbwatch lookup``: everything known about a few addresses typed by a person."""
    keys = netaddr.keys(pa.array(texts, pa.string()))
    db = open_databases(config.enrich)
    try:
        answers = db.lookup(keys)
    finally:
        if isinstance(db, MaxMindDatabases):
            db.close()
    networks = (
        workspace_networks(ws, config)
        if ws is not None
        else netclass.Networks(
            corporate=[
                netaddr.network(c) for c in [*config.internal_networks, *config.corporate_egress]
            ],
            tor=[],
        )
    )
    table = answers.table
    classes = netclass.classify(
        keys, table["asn"].combine_chunks(), table["as_org"].combine_chunks(), networks
    )
    rows: list[dict[str, Any]] = table.to_pylist()
    for text, key, row, net_class in zip(
        texts, keys.to_pylist(), rows, classes.to_pylist(), strict=True
    ):
        row.update(
            ip=text,
            valid=key is not None,
            net_class=net_class,
            geo_db=answers.geo_db,
            asn_db=answers.asn_db,
        )
    return rows


def about(folder: Path = DATA_DIR) -> dict[str, Any]:
    """Source, licence, version and dates of the bundled data (``orbwatch lookup --about``)."""
    sources: dict[str, Any] = json.loads((folder / SOURCES_FILE).read_text(encoding="utf-8"))
    return sources
