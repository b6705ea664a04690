"""Compiled scans over a batch of text lines: the shared machinery.

Why: some steps of line parsing are best done by walking each line byte by byte, with
decisions a regex engine cannot make in one pass (many ``key=value`` keys at once:
:mod:`orbwatch.sources.kv_scan`). No library offers such tokenizers over Arrow strings, so they
are written by hand and compiled with Numba. This module gives them Polars' string column as
bytes without a copy (:class:`Lines`), and takes their results back as string views into the
same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

_F = TypeVar("_F", bound=Callable[..., Any])

Bytes = npt.NDArray[np.uint8]
Offsets = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]
# A string column as the compiled functions take it: see Lines.
LineTuple = tuple[Bytes, Bytes, Flags, Offsets, Offsets]


def compiled(func: _F) -> _F:
    """Compiled once per machine (cached beside the module), run without Python's lock."""
    return cast(_F, numba.njit(nogil=True, cache=True)(func))


def inlined(func: _F) -> _F:
    """A helper of the compiled functions, inlined into them (a call per byte costs more)."""
    return cast(_F, numba.njit(inline="always", cache=True)(func))


@inlined
def space_at(data: Bytes, i: int, hi: int) -> int:
    """Byte length of the Unicode white-space character starting at ``i``, 0 if none."""
    b = data[i]
    if b == 32 or 9 <= b <= 13:
        return 1
    if b == 0xC2 and i + 1 < hi and (data[i + 1] == 0x85 or data[i + 1] == 0xA0):
        return 2
    if i + 2 >= hi:
        return 0
    b1, b2 = data[i + 1], data[i + 2]
    if b == 0xE1:
        return 3 if b1 == 0x9A and b2 == 0x80 else 0
    if b == 0xE2 and b1 == 0x80:
        return 3 if (0x80 <= b2 <= 0x8A) or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF else 0
    if b == 0xE2 and b1 == 0x81:
        return 3 if b2 == 0x9F else 0
    if b == 0xE3:
        return 3 if b1 == 0x80 and b2 == 0x80 else 0
    return 0


@inlined
def same(data: Bytes, at: int, hi: int, needle: Bytes, n_lo: int, n_hi: int) -> bool:
    """Whether ``data[at:]`` starts with ``needle[n_lo:n_hi]`` (within ``hi``)."""
    size = n_hi - n_lo
    if at < 0 or at + size > hi:
        return False
    for j in range(size):  # noqa: SIM110 (a loop, not all() over a generator, compiles to one)
        if data[at + j] != needle[n_lo + j]:
            return False
    return True


@compiled
def _views(
    inline: Bytes, data: Bytes, is_inline: Flags, starts: Offsets, lengths: Offsets
) -> Bytes:
    """Arrow string views (16 bytes a row) of the slices; a length of -1 is an empty slot.

    Up to 12 bytes are kept in the view; a longer value, which only a row in ``data`` holds,
    points into ``data`` (the array's one data buffer): no value is copied out of the line.
    """
    out = np.zeros(len(starts) * 16, np.uint8)
    words = out.view(np.int32)
    for i in range(len(starts)):
        size = max(lengths[i], 0)
        buf = inline if is_inline[i] else data
        words[4 * i] = size
        for j in range(size if size <= 12 else 4):  # the value, or its 4-byte prefix
            out[16 * i + 4 + j] = buf[starts[i] + j]
        if size > 12:
            words[4 * i + 3] = starts[i]  # buffer 0, this offset
    return out


@dataclass(frozen=True)
class Lines:
    """A string column as the compiled functions read it, and its data buffer.

    A row's bytes are ``inline[lo:hi]`` when ``is_inline`` (Arrow keeps strings of up to 12
    bytes in the view itself), else ``data[lo:hi]``; a null row has ``lo == hi``.
    """

    inline: Bytes
    data: Bytes
    is_inline: Flags
    lo: Offsets
    hi: Offsets
    buffer: pa.Buffer

    @classmethod
    def of(cls, text: pl.Series) -> Lines:
        """Polars' own string views, without a copy; a plain copy when there are several
        data buffers (the scan reads one)."""
        arr = text.to_arrow(compat_level=pl.CompatLevel.newest())
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        n, buffers = len(arr), arr.buffers()
        if pa.types.is_string_view(arr.type) and len(buffers) <= 3:
            views = np.frombuffer(buffers[1], np.int32).reshape(-1, 4)[arr.offset : arr.offset + n]
            size = views[:, 0].astype(np.int64)
            is_inline = size <= 12
            rows = np.arange(arr.offset, arr.offset + n, dtype=np.int64)
            lo = np.where(is_inline, rows * 16 + 4, views[:, 3].astype(np.int64))
            buffer = buffers[2] if len(buffers) == 3 else pa.py_buffer(b"\0")
            inline = np.frombuffer(buffers[1], np.uint8)
        else:
            arr = pc.cast(arr, pa.large_string())
            offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset : arr.offset + n + 1]
            lo, size = offsets[:-1], np.diff(offsets)
            is_inline = np.zeros(n, np.bool_)
            buffer = arr.buffers()[2] or pa.py_buffer(b"\0")
            inline = np.zeros(1, np.uint8)
        size = np.where(text.is_null().to_numpy(), 0, size)
        return cls(inline, np.frombuffer(buffer, np.uint8), is_inline, lo, lo + size, buffer)

    def as_tuple(self) -> LineTuple:
        """The arrays the compiled functions take."""
        return (self.inline, self.data, self.is_inline, self.lo, self.hi)

    def values(self, starts: Offsets, lengths: Offsets) -> pl.Series:
        """A string Series of the slices (length -1: null), as views into these lines."""
        found = lengths >= 0
        column = pa.Array.from_buffers(
            pa.string_view(),
            len(starts),
            [
                pa.py_buffer(np.packbits(found, bitorder="little")),
                pa.py_buffer(_views(self.inline, self.data, self.is_inline, starts, lengths)),
                self.buffer,
            ],
            null_count=int(len(found) - found.sum()),
        )
        return cast(pl.Series, pl.from_arrow(column))
