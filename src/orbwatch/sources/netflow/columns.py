"""Turning the raw field values of decoded flow records into columns, vectorised and on demand.

The decoder views a batch of records as one numpy structured array over the raw message bytes
(:mod:`orbwatch.sources.netflow.decode`); this module converts a field of that view into what
the rest of orbwatch reads: numbers as native numpy arrays, addresses and text as Arrow strings.

Why conversions are lazy (:class:`Columns`): a router's template carries fields that the
``flows`` mapping never reads (interfaces, AS numbers, prefix lengths, next hops), and every
conversion is a pass over every record, so a field is converted only when someone asks for it,
and then once.

Why addresses are formatted per distinct value: flows repeat the same few thousand addresses
over millions of records. Arrow's hash-based ``dictionary_encode`` finds the distinct values;
only those are formatted (IPv4 with a table lookup per octet, IPv6 with :mod:`ipaddress`) and
``take`` spreads the text back over the records.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from orbwatch.sources.netflow.decode import FieldSpec

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

Column: TypeAlias = npt.NDArray[Any] | pa.Array

_HEX2 = pa.array([f"{i:02x}" for i in range(256)], pa.string())


def _octet_table() -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32]]:
    """Text of each octet as 4 bytes: rows 0-255 "digits." and 256-511 "digits", NUL-padded."""
    table = np.zeros((512, 4), np.uint8)
    for i in range(256):
        digits = str(i).encode()
        table[i, : len(digits) + 1] = list(digits + b".")
        table[256 + i, : len(digits)] = list(digits)
    lengths = (table != 0).sum(axis=1).astype(np.int32)
    return table.view(np.uint32).ravel(), lengths


_OCTET_TEXT, _OCTET_LEN = _octet_table()


def combine_be(a: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """Big-endian unsigned value of each row of an (n, k) byte matrix (reduced-size encoding)."""
    out = np.zeros(a.shape[0], np.uint64)
    for j in range(a.shape[1]):
        out = (out << np.uint64(8)) | a[:, j].astype(np.uint64)
    return out


def _format_ipv4(values: npt.NDArray[np.uint32]) -> pa.Array:
    """Dotted quads of 32-bit addresses, built as Arrow string buffers by numpy.

    Written by hand because neither numpy nor Arrow formats IPv4 addresses: every octet picks
    its text (4 NUL-padded bytes) from a table, the NULs are squeezed out, and the per-row
    lengths give the Arrow offsets.
    """
    n = len(values)
    octets = values.astype(">u4").view(np.uint8).reshape(n, 4).astype(np.intp)
    octets[:, 3] += 256  # the last octet has no trailing dot
    chars = _OCTET_TEXT[octets].view(np.uint8).ravel()
    data = chars[chars != 0]
    lengths = _OCTET_LEN[octets]
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths[:, 0] + lengths[:, 1] + lengths[:, 2] + lengths[:, 3], out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def ipv4_text(values: npt.NDArray[Any]) -> pa.Array:
    """Dotted quads for an array of 32-bit addresses, formatted once per distinct address."""
    native = np.ascontiguousarray(values, dtype=np.uint32)
    if len(native) == 0:
        return pa.array([], pa.string())
    encoded = pc.dictionary_encode(pa.array(native))
    text = _format_ipv4(encoded.dictionary.to_numpy(zero_copy_only=False))
    return text.take(encoded.indices)


def ipv6_text(a: npt.NDArray[np.uint8]) -> pa.Array:
    """RFC 5952 text of (n, 16) address bytes; formatted once per distinct address."""
    n = len(a)
    if n == 0:
        return pa.array([], pa.string())
    raw = pa.py_buffer(np.ascontiguousarray(a, dtype=np.uint8).tobytes())
    binary = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, raw])
    encoded = pc.dictionary_encode(binary)
    distinct = [str(ipaddress.IPv6Address(v)) for v in encoded.dictionary.to_pylist()]
    return pa.array(distinct, pa.string()).take(encoded.indices)


def mac_text(a: npt.NDArray[np.uint8]) -> pa.Array:
    parts = [_HEX2.take(pa.array(a[:, j].astype(np.int64))) for j in range(a.shape[1])]
    return pc.binary_join_element_wise(*parts, ":")


def bytes_rows(a: npt.NDArray[np.uint8]) -> list[bytes]:
    flat = np.ascontiguousarray(a)
    size = flat.shape[1] if flat.ndim == 2 else 0
    raw = flat.tobytes()
    return [raw[i * size : (i + 1) * size] for i in range(flat.shape[0])]


def text(rows: Iterable[bytes]) -> pa.Array:
    return pa.array([r.rstrip(b"\0").decode("utf-8", "replace") for r in rows], pa.string())


def hex_text(rows: Iterable[bytes]) -> pa.Array:
    return pa.array([r.hex() for r in rows], pa.string())


def app_id(rows: Iterable[bytes]) -> pa.Array:
    """RFC 6759 applicationId: classification engine id, then selector ("engine..selector")."""
    return pa.array(
        [f"{r[0]}..{int.from_bytes(r[1:], 'big')}" if r else "" for r in rows], pa.string()
    )


def ntp_us(v: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """NTP timestamps (seconds since 1900, 2^-32 fractions) as Unix microseconds."""
    v = v.astype(np.uint64)
    secs = (v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET
    frac = ((v & np.uint64(0xFFFFFFFF)) * np.uint64(1_000_000)) >> np.uint64(32)
    return secs * 1_000_000 + frac.astype(np.int64)


def convert(spec: FieldSpec, a: npt.NDArray[Any]) -> Column:
    """One fixed-length field's raw values -> numbers (numpy) or text (Arrow)."""
    kind = spec.kind
    if kind == "u":
        # Native byte order at the field's own width: callers widen what they need, and a
        # narrow copy is a fraction of the memory traffic of a 64-bit one.
        return combine_be(a) if a.ndim == 2 else a.astype(a.dtype.newbyteorder("="))
    if kind == "i":
        if a.ndim == 2:
            shift = np.uint64(64 - 8 * spec.length)
            return ((combine_be(a) << shift).view(np.int64) >> np.int64(shift)).astype(np.int64)
        return a.astype(np.int64)
    if kind == "f":
        return a.astype(np.float64)
    if kind == "ip4":
        return ipv4_text(a)
    if kind == "ip6":
        return ipv6_text(a)
    if kind == "mac":
        return mac_text(a)
    if kind == "ntp":
        return ntp_us(a)
    return convert_bytes(spec, bytes_rows(a))


def convert_bytes(spec: FieldSpec, rows: list[bytes]) -> pa.Array:
    """Text, applicationId or hex of octet values (variable-length fields, odd-sized ones)."""
    if spec.kind == "str":
        return text(rows)
    return app_id(rows) if (spec.pen, spec.ie) == (0, 95) else hex_text(rows)


class Columns(Mapping[str, Column]):
    """A batch's columns by field name, each converted from the raw values on first use.

    ``records`` is the structured view over the batch's records (fixed-length templates);
    ``fixed`` holds fields already cut out one by one, ``variable`` the values of
    variable-length fields (templates with IPFIX length 0xFFFF).
    """

    def __init__(
        self,
        specs: Mapping[str, FieldSpec],
        records: npt.NDArray[Any] | None = None,
        fixed: Mapping[str, npt.NDArray[Any]] | None = None,
        variable: Mapping[str, list[bytes]] | None = None,
    ) -> None:
        self._specs = dict(specs)
        self._records = records
        self._fixed = dict(fixed or {})
        self._variable = dict(variable or {})
        self._done: dict[str, Column] = {}

    def __getitem__(self, name: str) -> Column:
        col = self._done.get(name)
        if col is None:
            spec = self._specs[name]
            if name in self._variable:
                col = convert_bytes(spec, self._variable[name])
            elif name in self._fixed:
                col = convert(spec, self._fixed[name])
            elif self._records is not None:
                col = convert(spec, self._records[name])
            else:
                raise KeyError(name)
            self._done[name] = col
        return col

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    @property
    def converted(self) -> tuple[str, ...]:
        """Names of the fields converted so far (the rest are still raw bytes)."""
        return tuple(self._done)

    def __len__(self) -> int:
        return len(self._specs)


class ElementColumns(Mapping[tuple[int, int], Column]):
    """The same columns by (enterprise number, element id); the first field of an element wins."""

    def __init__(self, columns: Columns, names: Mapping[tuple[int, int], str]) -> None:
        self._columns = columns
        self._names = dict(names)

    def __getitem__(self, element: tuple[int, int]) -> Column:
        return self._columns[self._names[element]]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
