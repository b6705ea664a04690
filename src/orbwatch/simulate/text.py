"""Writing log lines column-wise: the one mechanism every text format of the simulator shares.

A format describes a line as a sequence of literals and columns; :func:`join` builds all lines
of a block at once with Arrow's element-wise string join (C++, no Python per line). A file is
a :class:`TextSink` fed one chunk of events at a time: the lines of a chunk are merged with
the lines held back from earlier chunks, and every line older than the chunk's horizon is
written in time order straight from the Arrow string buffer and dropped, so memory holds one
chunk, not the file. The line each event landed on is returned so the ground truth can point
at it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DAY_S = 86_400
_CLOCK_ONLY = re.compile(r"^(?:[^%]|%[HMS%])*$")
_DATE_ONLY = re.compile(r"^(?:[^%]|%[Ymdbe%])*$")


def join(*parts: Any) -> pa.Array:
    """Concatenate literals and string columns element-wise into one line per row."""
    cols = [p if isinstance(p, str) else _flat(p) for p in parts]
    if all(isinstance(c, str) for c in cols):
        raise ValueError("a line needs at least one column")
    big = pa.large_string()
    args = [pa.scalar(c, big) if isinstance(c, str) else c for c in cols]
    return pc.binary_join_element_wise(*args, pa.scalar("", big))


def num(values: npt.NDArray[np.generic]) -> pa.Array:
    """Numbers as text."""
    return pa.array(np.asarray(values)).cast(pa.string())


def pick(table: list[str] | tuple[str, ...], index: npt.NDArray[np.integer]) -> pa.Array:
    """Strings of a small table by index (dictionary decode in Arrow, vectorised)."""
    return pa.array(list(table), pa.string()).take(pa.array(np.asarray(index, dtype=np.int64)))


def choose(mask: npt.NDArray[np.bool_], yes: str, no: str) -> pa.Array:
    """One of two literals per row (Arrow ``if_else``: ~30x faster than a numpy string array)."""
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), yes, no)


@functools.lru_cache(maxsize=16)
def _clock_table(fmt: str) -> pa.Array:
    """``fmt`` (hours, minutes, seconds only) for every second of a day, formatted once."""
    secs = pa.array(np.arange(DAY_S, dtype=np.int64), pa.timestamp("s", tz="UTC"))
    return pc.strftime(secs, format=fmt)


def _stamp(
    ts: F64, date_fmt: str, clock_fmt: str, fix_date: Callable[[pa.Array], pa.Array]
) -> pa.Array:
    secs = np.floor(np.asarray(ts, dtype=np.float64)).astype(np.int64)
    if len(secs) == 0:
        return pa.array([], pa.string())
    day = secs // DAY_S
    first = int(day.min())
    parts: list[pa.Array] = []
    if date_fmt:
        span = np.arange(first, int(day.max()) + 1, dtype=np.int64) * DAY_S
        dates = fix_date(pc.strftime(pa.array(span, pa.timestamp("s", tz="UTC")), format=date_fmt))
        parts.append(dates.take(pa.array(day - first)))
    if clock_fmt:
        parts.append(_clock_table(clock_fmt).take(pa.array(secs - day * DAY_S)))
    return parts[0] if len(parts) == 1 else join(*parts)


def stamp(ts: F64, fmt: str) -> pa.Array:
    """UTC times as text with a strftime pattern (whole seconds).

    Arrow's ``strftime`` costs about a microsecond per value, more than the rest of a line, so
    patterns made of a date part followed by a clock part are split: the dates of the few days
    involved and the 86,400 clock faces of a day are formatted once and picked by index. Other
    patterns fall back to ``strftime`` per value.
    """
    cut = fmt.find("%H")
    date_fmt, clock_fmt = (fmt, "") if cut < 0 else (fmt[:cut], fmt[cut:])
    if _DATE_ONLY.match(date_fmt) and _CLOCK_ONLY.match(clock_fmt):
        return _stamp(ts, date_fmt, clock_fmt, lambda dates: dates)
    secs = pa.array(np.floor(ts).astype(np.int64), pa.timestamp("s", tz="UTC"))
    return pc.strftime(secs, format=fmt)


def syslog_stamp(ts: F64) -> pa.Array:
    """BSD syslog time, ``May  4 13:45:01`` (day padded with a space, as syslogd writes it)."""
    return _stamp(
        ts,
        "%b %d ",
        "%H:%M:%S",
        lambda dates: pc.replace_substring_regex(dates, r"^(\w{3}) 0", r"\1  "),
    )


def json_text(values: pa.Array) -> pa.Array:
    """Escape text for a JSON string literal (backslash and quote; values hold no controls)."""
    out = pc.replace_substring(values.cast(pa.string()), "\\", "\\\\")
    return pc.replace_substring(out, '"', '\\"')


def _flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous large-string array (kernels may return chunked arrays for big inputs)."""
    big = values.cast(pa.large_string())
    return big.combine_chunks() if isinstance(big, pa.ChunkedArray) else big


@dataclass
class Block:
    """Lines of one kind: their times, a tie-break order, the event id each came from."""

    ts: F64
    text: pa.Array
    row: I64
    order: int = 0


@dataclass
class Written:
    """One output file and how many lines (or packets) it holds."""

    path: Path
    fmt: str
    lines: int


@dataclass
class Landed:
    """Where events of one chunk landed: event ids and their line number or byte offset."""

    row: I64
    offset: I64

    @classmethod
    def empty(cls) -> Landed:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))


def write_buffer(handle: BinaryIO, text: pa.Array) -> None:
    """Write lines, each followed by a newline, straight from the Arrow string buffer."""
    if not len(text):
        return
    big = pa.large_string()
    lines = pc.binary_join_element_wise(_flat(text), pa.scalar("", big), pa.scalar("\n", big))
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    data = lines.buffers()[2]
    begin, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    handle.write(memoryview(data)[begin:end])


class TextSink:
    """A text log file written chunk by chunk, every line in (time, order, event id) order.

    ``render`` turns a chunk's events into blocks of lines. A line may be stamped later than
    its event (a session is logged when it closes), so lines at or after the chunk's horizon
    (the earliest time a later chunk can still produce) are held back and merged with the next
    chunk. Ordering on the event id as the last key makes the file independent of chunk size.
    """

    def __init__(
        self, path: Path, fmt: str, render: Callable[[Any], list[Block]], header: list[str]
    ) -> None:
        self.path, self.fmt, self.render = path, fmt, render
        self.lines = len(header)
        self._handle = path.open("wb")
        if header:
            self._handle.write(("\n".join(header) + "\n").encode())
        self._held = Block(np.zeros(0), pa.array([], pa.large_string()), np.zeros(0, np.int64))
        self._held_order = np.zeros(0, np.int64)

    def add(self, events: Any, until: float) -> Landed:
        """Render ``events``, write every line stamped before ``until``, hold back the rest."""
        blocks = [b for b in (self.render(events) if len(events) else []) if len(b.row)]
        ts = np.concatenate([self._held.ts, *(b.ts for b in blocks)])
        order = np.concatenate([self._held_order, *(np.full(len(b.row), b.order) for b in blocks)])
        rows = np.concatenate([self._held.row, *(b.row for b in blocks)]).astype(np.int64)
        text = pa.concat_arrays([_flat(self._held.text), *(_flat(b.text) for b in blocks)])
        sort = np.lexsort((rows, order, ts))
        now = sort[ts[sort] < until]
        later = sort[ts[sort] >= until]
        write_buffer(self._handle, text.take(pa.array(now)))
        landed = Landed(rows[now], self.lines + 1 + np.arange(len(now), dtype=np.int64))
        self.lines += len(now)
        self._held = Block(ts[later], text.take(pa.array(later)), rows[later])
        self._held_order = order[later]
        return landed

    def finish(self) -> Landed:
        """Write everything held back and close the file."""
        landed = self.add([], np.inf)
        self._handle.close()
        return landed

    def written(self) -> Written:
        return Written(self.path, self.fmt, self.lines)


def write(path: Path, fmt: str, blocks: list[Block], header: list[str] | None = None) -> Written:
    """Write one whole file of blocks at once (small files: the feed)."""
    sink = TextSink(path, fmt, lambda given: list(given), header or [])
    sink.add(blocks, np.inf)
    sink.finish()
    return sink.written()
