"""IP address keys and CIDR ranges that every engine compares the same way.

An address *key* is the 32-hex-digit form of its 128-bit IPv6 value, with IPv4 mapped into
``::ffff:0:0/96``. Fixed-width lowercase hex sorts exactly like the integer, so "is this address
inside that network" becomes ``start_key <= key <= end_key``: a string comparison that DuckDB,
Spark and Arrow all evaluate identically, with no engine-specific INET type or extension.

Keys for a column of addresses are computed once per *distinct* address (dictionary encoding),
so a column of ten million flows with a hundred thousand distinct peers parses a hundred thousand
strings, not ten million.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

V4_MAPPED = 0xFFFF << 32
V4_MAPPED_PREFIX = "00000000000000000000ffff"  # leading hex digits of every IPv4 key
KEY_WIDTH = 32
# Bucket widths for the intel index: /16 of IPv4 and /32 of IPv6, as hex digits of the key.
V4_BUCKET_DIGITS = 28
V6_BUCKET_DIGITS = 8
MAX_BUCKETS_PER_RANGE = 65_536
WIDE_BUCKET = "*"

# RFC 6890 and the IANA special-purpose registries: addresses that are never hosts on the
# public Internet, so never "malicious infrastructure" however a feed lists them.
SPECIAL_PURPOSE = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
)
# What counts as "internal" when the config names no internal networks.
DEFAULT_INTERNAL = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)


def _value(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    if address.version == 4:
        return V4_MAPPED | int(address)
    return int(address)


def key_of_int(value: int) -> str:
    """The key of a 128-bit address value."""
    return f"{value:032x}"


def key(address: str) -> str:
    """The key of one address written as text (raises ``ValueError`` if it is not one)."""
    return key_of_int(_value(ipaddress.ip_address(address.strip())))


def _key_or_none(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        parsed = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return key_of_int(_value(parsed))


# Exactly the dotted quads Python's ipaddress accepts as they stand: ASCII digits, no leading
# zero, each octet at most 255, nothing around them. Everything else takes the ipaddress path.
_PLAIN_QUAD = (
    r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
)
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def keys(addresses: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Keys for a column of address strings; null where the text is not an address.

    Each distinct string is parsed once (see the module docstring). Plain dotted quads, the
    bulk of any log, are converted column-wise (:func:`_quad_keys`); only the other distinct
    strings (IPv6, text with spaces or a zone index, garbage) go through ``ipaddress``.
    """
    column = pc.cast(addresses, pa.string())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    distinct = encoded.dictionary
    quad = pc.fill_null(pc.match_substring_regex(distinct, _PLAIN_QUAD), False)
    dictionary = pc.replace_with_mask(
        pa.nulls(len(distinct), pa.string()), quad, _quad_keys(distinct.filter(quad))
    )
    others = distinct.filter(pc.invert(quad)).to_pylist()
    if others:
        slow = pa.array([_key_or_none(text) for text in others], pa.string())
        dictionary = pc.replace_with_mask(dictionary, pc.invert(quad), slow)
    return dictionary.take(encoded.indices)


def _quad_keys(quads: pa.Array) -> pa.Array:
    """Keys of plain dotted quads (already validated), built as bytes with numpy.

    Written here because no library turns a column of IPv4 text into integers: the octets come
    from Arrow's split and cast, and the 32 key characters of every address are filled in at
    once (24 for the IPv4-mapped prefix, two hex digits per octet).
    """
    count = len(quads)
    octets = pc.cast(pc.list_flatten(pc.split_pattern(quads, ".")), pa.uint8())
    values = octets.to_numpy(zero_copy_only=False).reshape(count, 4)
    text = np.empty((count, KEY_WIDTH), dtype=np.uint8)
    text[:, : len(V4_MAPPED_PREFIX)] = np.frombuffer(V4_MAPPED_PREFIX.encode(), dtype=np.uint8)
    text[:, len(V4_MAPPED_PREFIX) :: 2] = _HEX_DIGITS[values >> 4]
    text[:, len(V4_MAPPED_PREFIX) + 1 :: 2] = _HEX_DIGITS[values & 15]
    offsets = np.arange(0, KEY_WIDTH * (count + 1), KEY_WIDTH, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


@dataclass(frozen=True)
class Network:
    """A parsed CIDR (or single address) with its key range."""

    text: str
    family: int
    prefix_len: int
    start: int
    end: int

    @property
    def start_key(self) -> str:
        return key_of_int(self.start)

    @property
    def end_key(self) -> str:
        return key_of_int(self.end)

    def buckets(self) -> list[str]:
        """Index buckets this range covers (``["*"]`` when there are too many)."""
        digits = V4_BUCKET_DIGITS if self.family == 4 else V6_BUCKET_DIGITS
        shift = (KEY_WIDTH - digits) * 4
        first, last = self.start >> shift, self.end >> shift
        if last - first + 1 > MAX_BUCKETS_PER_RANGE:
            return [WIDE_BUCKET]
        return [f"{b:0{digits}x}" for b in range(first, last + 1)]


def network(text: str) -> Network:
    """Parse ``a.b.c.d``, ``a.b.c.d/n``, IPv6 and IPv6/n (host bits are ignored, not an error).

    An IPv4-mapped IPv6 network (``::ffff:a.b.c.d/n``, n >= 96) is the IPv4 network it maps,
    as :func:`keys` does for addresses, so that it lands in the IPv4 index buckets.
    Raises ``ValueError`` with the reason when the text is not an address or network.
    """
    net: ipaddress.IPv4Network | ipaddress.IPv6Network
    net = ipaddress.ip_network(text.strip(), strict=False)
    mapped = net.network_address.ipv4_mapped if net.version == 6 else None
    if mapped is not None and net.prefixlen >= 96:
        net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
    start, end = _value(net.network_address), _value(net.broadcast_address)
    return Network(str(net), net.version, net.prefixlen, start, end)


def bucket_of_key(key_column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The intel index bucket of each key: 28 digits for IPv4-mapped keys, else 8."""
    is_v4 = pc.starts_with(key_column, V4_MAPPED_PREFIX)
    return pc.if_else(
        is_v4,
        pc.utf8_slice_codeunits(key_column, 0, V4_BUCKET_DIGITS),
        pc.utf8_slice_codeunits(key_column, 0, V6_BUCKET_DIGITS),
    )


def ranges_table(cidrs: Iterable[str], label: str = "") -> pa.Table:
    """A small table (``label``, ``start_key``, ``end_key``) of networks, for range joins."""
    nets = [network(c) for c in cidrs]
    return pa.table(
        {
            "label": pa.array([label or n.text for n in nets], pa.string()),
            "start_key": pa.array([n.start_key for n in nets], pa.string()),
            "end_key": pa.array([n.end_key for n in nets], pa.string()),
        }
    )


def in_ranges(key_column: pa.Array | pa.ChunkedArray, ranges: list[Network]) -> pa.Array:
    """Boolean mask: which keys fall in any of ``ranges`` (vectorised per range)."""
    if isinstance(key_column, pa.ChunkedArray):
        key_column = key_column.combine_chunks()
    mask = pa.repeat(False, len(key_column))
    for net in ranges:
        inside = pc.and_(
            pc.greater_equal(key_column, net.start_key), pc.less_equal(key_column, net.end_key)
        )
        mask = pc.or_(mask, pc.fill_null(inside, False))
    return mask
