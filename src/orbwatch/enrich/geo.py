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
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


def searchsorted128(
    start_hi: U64,
    start_lo: U64,
    hi: U64,
    lo: U64,
    table: npt.NDArray[np.void] | None = None,
) -> npt.NDArray[np.intp]:
    """Index of the last start <= each query (-1 when the query precedes every start).

    ``start_hi``/``start_lo`` must be sorted as 128-bit numbers. One ``searchsorted`` on the
    high half decides every query whose ``hi`` equals no start's ``hi``; the ties (queries
    inside a /64 where a range starts off a /64 boundary) are resolved by a second search on
    16-byte big-endian strings, which compare like the numbers (``table``: those strings for
    the starts, when the caller keeps them). numpy offers neither step as one call, hence
    this helper.
    """
    result: npt.NDArray[np.intp] = np.searchsorted(start_hi, hi, side="right") - 1
    if len(start_hi) == 0:
        return result
    # A tie: the start just found has the query's high half (a miss is -1 and reads start 0,
    # whose high half is then above the query's).
    tied = np.flatnonzero(start_hi[np.maximum(result, 0)] == hi)
    if len(tied):
        starts = _be_bytes(start_hi, start_lo) if table is None else table
        queries = _be_bytes(hi[tied], lo[tied])
        result[tied] = np.searchsorted(starts, queries, side="right") - 1
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
# The bundled data has one coordinate per country, so its latitude and longitude columns are
# dictionaries over the country indices (no memory per address); MaxMind answers fill them
# with per-address values. Readers cast to float64 (``ip_info`` does) or call to_pylist.
# The narrowest types that hold the data (about 250 countries; AS numbers are 32-bit, RFC
# 6793): every byte per address is a page the kernel has to hand out for ten million rows.
ANSWER_SCHEMA = pa.schema(
    [
        ("country", pa.dictionary(pa.int16(), pa.string())),
        ("region", pa.string()),
        ("city", pa.string()),
        ("latitude", pa.dictionary(pa.int16(), pa.float64())),
        ("longitude", pa.dictionary(pa.int16(), pa.float64())),
        ("asn", pa.uint32()),
        ("as_org", pa.dictionary(pa.int32(), pa.string())),
    ]
)


@dataclass(frozen=True)
class Answers:
    """What a database answered for a batch of keys (one row per key, in order)."""

    table: pa.Table
    geo_db: str
    asn_db: str


ATTRIBUTES = np.dtype([("country", "<i4"), ("org", "<i4"), ("asn", "<i8")])
_NOTHING = np.array([(-1, -1, 0)], dtype=ATTRIBUTES)


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
        self.v6_table = _be_bytes(self.v6_hi, self.v6_lo)
        org = table["as_org"].combine_chunks()
        country = table["country"].combine_chunks()
        self.orgs, self.countries = org.dictionary, country.dictionary
        if len(self.countries) > np.iinfo(np.int16).max:
            raise OSError(f"{path}: {len(self.countries)} countries do not fit int16 indices")
        # One 16-byte record per segment, IPv4 segments first, then IPv6, then a "nothing
        # known" record that every non-key points at: one gather per key fetches all.
        segment = np.empty(table.num_rows, dtype=ATTRIBUTES)
        segment["country"] = country.indices.fill_null(-1).to_numpy()
        segment["org"] = org.indices.fill_null(-1).to_numpy()
        segment["asn"] = table["asn"].fill_null(0).to_numpy()
        self.attributes = np.concatenate([segment[v4], segment[~v4], _NOTHING])
        # Gathered as complex128, a 16-byte native type: numpy's take on a structured
        # dtype copies field by field and is several times slower.
        self.records = self.attributes.view(np.complex128)
        self.nothing = len(self.attributes) - 1
        self.v6_base = int(v4.sum())
        lat, lon = _centroids(folder / CENTROIDS_FILE, self.countries)
        self.lat = pa.array(lat, pa.float64(), from_pandas=True)  # NaN -> null
        self.lon = pa.array(lon, pa.float64(), from_pandas=True)
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

    def segments(self, keys: KeyArray) -> npt.NDArray[np.int32]:
        """Index into :attr:`attributes` of the segment holding each key (non-keys: the last).

        With the /24 index every row goes through it, IPv6 and non-keys included (they are
        overwritten after): cheaper than selecting the nine IPv4 rows in ten first. A segment
        of -1 (before the first start) reads the last record, "nothing known", as numpy's
        negative indices do.
        """
        ip = keys.v4_values()
        if self._v4_direct is not None:
            found = np.take(self._v4_direct, ip >> np.uint32(32 - self.V4_INDEX_BITS))
            ambiguous = np.flatnonzero(found < 0)
            if len(ambiguous):
                found[ambiguous] = np.searchsorted(self.v4_starts, ip[ambiguous], side="right") - 1
            found[~keys.is_v4] = self.nothing
        else:
            found = np.full(len(keys), self.nothing, dtype=np.int32)
            v4 = np.flatnonzero(keys.is_v4)
            found[v4] = np.searchsorted(self.v4_starts, ip[v4], side="right") - 1
        v6 = np.flatnonzero(keys.valid & ~keys.is_v4)
        if len(v6):
            seg6 = searchsorted128(
                self.v6_hi, self.v6_lo, keys.hi[v6], keys.lo[v6], table=self.v6_table
            )
            found[v6] = self.v6_base + seg6
        return found

    def lookup(self, keys: pa.Array | pa.ChunkedArray) -> Answers:
        """Country, coordinates, ASN and AS organisation of every key, vectorised.

        Keys go through in chunks of :data:`CHUNK` (whole-column temporaries cost more in page
        faults than the arithmetic; chunks stay in cache), on as many threads as the process
        may use: numpy releases the GIL in every step. Dictionary-encoded keys are looked up
        once per distinct key and spread back with one ``take``.
        """
        if pa.types.is_dictionary(keys.type):
            column = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
            distinct = self.lookup(column.dictionary)
            return Answers(distinct.table.take(column.indices), self.label, self.label)
        if len(keys) >= self.DIRECT_INDEX_FROM:
            self._v4_index()  # before the threads start
        out = _Gathered.empty(len(keys))

        def fill(start: int, part: pa.Array) -> None:
            out.put(start, np.take(self.records, self.segments(decode_keys(part))))

        _each_chunk(fill, keys)
        return Answers(
            out.table(self.countries, self.orgs, self.lat, self.lon),
            geo_db=self.label,
            asn_db=self.label,
        )


def _with_validity(
    kind: pa.DataType, values: npt.NDArray[Any], bitmap: npt.NDArray[np.uint8]
) -> pa.Array:
    """An Arrow array over numpy buffers (no copy), null where the bitmap bit is 0."""
    buffers = [pa.py_buffer(bitmap), pa.py_buffer(values)]
    return pa.Array.from_buffers(kind, len(values), buffers)


@dataclass(frozen=True)
class _Gathered:
    """Answer columns filled chunk by chunk, each chunk (maybe on its own thread) its slice.

    Country and organisation are indices into the database's dictionaries (-1: none), the
    ASN is 0 when there is none; validity bitmaps are written with the values, so no pass
    over the whole column follows. Chunks start at multiples of 8 (:func:`_chunks`), so each
    owns whole bytes of the bitmaps.
    """

    country: npt.NDArray[np.int16]
    org: npt.NDArray[np.int32]
    asn: npt.NDArray[np.uint32]
    country_ok: npt.NDArray[np.uint8]
    org_ok: npt.NDArray[np.uint8]
    asn_ok: npt.NDArray[np.uint8]

    @classmethod
    def empty(cls, n: int) -> _Gathered:
        nbytes = (n + 7) // 8
        return cls(
            np.empty(n, np.int16),
            np.empty(n, np.int32),
            np.empty(n, np.uint32),
            *(np.empty(nbytes, np.uint8) for _ in range(3)),
        )

    def put(self, start: int, records: npt.NDArray[np.complex128]) -> None:
        """Store the gathered 16-byte records of the keys from ``start`` on."""
        found = records.view(ATTRIBUTES)
        end = start + len(found)
        rows, bits = slice(start, end), slice(start // 8, (end + 7) // 8)
        self.country[rows] = found["country"]
        self.country_ok[bits] = np.packbits(self.country[rows] >= 0, bitorder="little")
        self.org[rows] = found["org"]
        self.org_ok[bits] = np.packbits(self.org[rows] >= 0, bitorder="little")
        self.asn[rows] = found["asn"]
        self.asn_ok[bits] = np.packbits(self.asn[rows] != 0, bitorder="little")

    def table(self, countries: pa.Array, orgs: pa.Array, lat: pa.Array, lon: pa.Array) -> pa.Table:
        """The answer table; latitude and longitude share the country indices."""
        country = _with_validity(pa.int16(), self.country, self.country_ok)
        org = _with_validity(pa.int32(), self.org, self.org_ok)
        unknown = _null_strings(len(self.country))
        return pa.Table.from_arrays(
            [
                # safe=False: the indices come from the same file as the dictionaries.
                pa.DictionaryArray.from_arrays(country, countries, safe=False),
                unknown,
                unknown,
                pa.DictionaryArray.from_arrays(country, lat, safe=False),
                pa.DictionaryArray.from_arrays(country, lon, safe=False),
                _with_validity(pa.uint32(), self.asn, self.asn_ok),
                pa.DictionaryArray.from_arrays(org, orgs, safe=False),
            ],
            schema=ANSWER_SCHEMA,
        )


def _null_strings(n: int) -> pa.ChunkedArray:
    """n null strings as repeats of one block (``pa.nulls`` writes 4 zero bytes per row)."""
    block = pa.nulls(min(n, CHUNK), pa.string())
    whole, rest = divmod(n, CHUNK)
    return pa.chunked_array([block] * whole + [block.slice(0, rest)], pa.string())


CHUNK = 1 << 18


def _chunks(keys: pa.Array | pa.ChunkedArray) -> Iterator[tuple[int, pa.Array]]:
    """(offset, slice) pieces of :data:`CHUNK` keys (the last shorter), at multiples of CHUNK.

    A piece spanning two chunks of a ChunkedArray is concatenated (at most CHUNK keys).
    """
    for start in range(0, len(keys), CHUNK):
        part = keys.slice(start, CHUNK)
        yield start, part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part


def usable_cpus() -> int:
    """CPUs this process may run on (``taskset`` and cgroup affinity count, unlike cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _each_chunk(work: Callable[[int, pa.Array], None], keys: pa.Array | pa.ChunkedArray) -> None:
    """``work(offset, piece)`` for every piece of :func:`_chunks`, on up to one thread per CPU."""
    pieces = list(_chunks(keys))
    workers = min(len(pieces), usable_cpus())
    if workers <= 1:
        for start, part in pieces:
            work(start, part)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda piece: work(*piece), pieces):
            pass  # re-raises the first error


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
        # Distinct texts can share a key (``::ffff:1.2.3.4`` and ``1.2.3.4``): group the
        # NAT rows only; the SQL already grouped the rest.
        nat_new = nat_table.filter(fresh).group_by("ip_key").aggregate([("ip", "min")])
        table = pa.concat_tables(
            [table, nat_new.rename_columns(["ip_key", "ip"]).cast(table.schema)]
        )
    return table


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
        with ws.transaction(), _unordered_inserts(ws):
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


@contextmanager
def _unordered_inserts(ws: Workspace) -> Iterator[None]:
    """Let DuckDB insert ``ip_info`` rows in any order, then restore the setting.

    ``ip_info`` is read by key, never by position. Without the order to keep, DuckDB
    converts the Arrow batches on every thread and writes row groups straight to the file;
    two million rows went in at half the time of the ordered insert on this project's
    benchmark machine (docs/performance.md, "Enrichment").
    """
    setting = "preserve_insertion_order"
    before = bool(ws.scalar(f"SELECT current_setting('{setting}')"))
    ws.con.execute(f"SET {setting} = false")
    try:
        yield
    finally:
        ws.con.execute(f"SET {setting} = {'true' if before else 'false'}")


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
    ws.append("ip_info", pa.table(columns))  # conform() casts the dictionaries


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
