"""Syslog framing and declarative line formats: the shared mechanism of every text log source.

Firewall, VPN and authentication products all write one event per line, usually behind a syslog
header. This module does, once and vectorised (Polars, whole columns, no per-line Python), what
every such format needs: split the lines of a file into bounded batches, take the RFC 3164 or
RFC 5424 header apart, resolve timestamps that have no year or zone, pull fields out of the
message (regex with named groups, ``key=value`` pairs, CSV positions), convert them to typed
columns and send every line that is not a record to quarantine with the reason.

API for format authors
======================

A format module declares a :class:`LineFormat` and a :class:`LineSource` subclass::

    SSHD = LineFormat(
        name="sshd",
        table="logins",
        description="OpenSSH sshd",
        recognise=r"^(Accepted|Failed) \\w+ for ",          # which messages are records
        sniff_program=r"^sshd$",                           # optional: syslog program filter
        patterns=(r"for (?:invalid user )?(?P<user>\\S+) from (?P<ip>\\S+) port (?P<port>\\d+)",),
        fields={                                           # output column -> Field
            "user": Field(pl.col("user"), "str"),
            "src_ip": Field(pl.col("ip"), "addr"),
            "src_port": Field(pl.col("port"), "port"),
            "outcome": Field(pl.when(pl.col("message").str.starts_with("Accepted"))
                             .then(pl.lit("success")).otherwise(pl.lit("failure")), "str"),
        },
        constants={"service": "ssh"},
        required=("ts", "src_ip"),
    )

    class Sshd(LineSource):
        format = SSHD

Expressions in ``fields`` may use these columns: ``line`` (the raw line), the header columns
``pri``, ``host``, ``program``, ``pid``, ``msgid``, ``sd`` (RFC 5424 structured data),
``message`` (text after the header, or the whole line when it has none), every named group of
``patterns`` (applied to ``message``, or to ``line`` with ``on="line"``), and ``parts`` (a list
column, the ``split`` of the text when the format sets ``split=","``, CSV double quotes
honoured by :func:`csv_fields`). Helpers: :func:`kv` (``key=value`` / ``key="value"`` /
``key:"value"`` lookup, done once per key and batch however many expressions use it),
:func:`first_kv` (the first of several spellings of a key), :func:`part` (CSV position),
:func:`protocol_name` (IANA number or name to lower-case name), :func:`action_of` (vendor verdict
to ``allow``/``deny``/``unknown``), :func:`local_time` (naive text stamp in the configured zone).

The row time (``ts_start`` for ``flows``, ``ts`` for ``logins``) comes from the syslog header
unless the format gives ``time=(TimeField(expr, strptime_format), ...)`` (tried in order) or a
``fields`` entry for it of kind ``time``. ``exporter`` (flows) is the header host unless the
format maps it.

Every non-blank input line ends up as a row, as skipped (counted by reason in
``Parsed.skipped``: lines the format understands that are not records, declared in ``skipped``,
e.g. "PAN-OS SYSTEM log: not a traffic record") or in quarantine: a message that does not
match ``recognise`` gets "not a <description> record", a missing required field or a value that
does not convert gets its own reason. Provenance is the 1-based line number.

Timestamps without year or zone are resolved by :class:`Clock` (rule in ``docs/logs.md``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.errors import InputError
from orbwatch.sources.base import (
    _KIND_WORDS,
    MAX_FIELD_CHARS,
    Kind,
    Parsed,
    Source,
    rejects,
    too_long_rejects,
)
from orbwatch.sources.inputs import MAX_LINE_BYTES, RAW_KEEP_CHARS, Input, LineBatch
from orbwatch.sources.kv import KvKey, kv_values
from orbwatch.store.schema import TABLES

READ_BYTES = 8 << 20
#: Batches parsed at once by :meth:`LineSource.parse` (Polars itself uses every core).
PARSE_THREADS = 2
SNIFF_LINES = 50
MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
# A drop of more than this many months between consecutive stamped lines is a new year.
ROLLOVER_MONTHS = 6

# ---------------------------------------------------------------------------------------------
# Reading lines


def _string_views(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Arrow string-view headers (16 bytes per line) for lines that lie in ``buf``.

    Written by hand because neither Arrow nor Polars builds a string array from (start,
    length) pairs over one buffer without copying every byte. A view is the length, then
    either the whole string (up to 12 bytes) or its first 4 bytes, the buffer index (0) and
    the offset. Lines keep pointing into the read buffer, so splitting costs two passes of
    numpy over the newline mask and no copy of the text, and the trailing ``\\r`` of CRLF
    files is dropped by the length alone.
    """
    views = np.zeros((len(starts), 4), dtype=np.int32)
    views[:, 0] = lengths
    long_rows = lengths > 12
    if long_rows.any():
        # Unaligned little-endian 32-bit words at every byte offset: the 4-byte prefixes.
        words = np.ndarray((len(buf) - 3,), dtype="<i4", buffer=buf, strides=(1,))
        views[long_rows, 1] = words[starts[long_rows]]
        views[long_rows, 3] = starts[long_rows]
    short = np.flatnonzero(~long_rows)
    if len(short):
        at = starts[short, None] + np.arange(12)
        inline = buf[np.minimum(at, len(buf) - 1)]
        inline[np.arange(12)[None, :] >= lengths[short, None]] = 0
        views[short, 1:] = inline.view(np.int32)
    return views


def _batch_from_chunk(chunk: bytes, first_line: int, max_bytes: int) -> LineBatch:
    """Lines of a chunk that ends at a line boundary, split without a Python loop per line.

    The newline positions come from numpy; the lines are an Arrow string-view array over the
    chunk's own buffer (see :func:`_string_views`), so the text is never copied. The chunk is
    checked to be UTF-8 first (ASCII, the usual case, in one fast pass).
    """
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            # Not UTF-8 somewhere: decode with U+FFFD replacements (one C call) and split
            # again; replacement never creates or removes a newline, so line numbers hold.
            chunk = chunk.decode("utf-8", "replace").encode("utf-8")
    buf = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    n = len(ends)
    starts = np.empty(n, dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    crlf = (lengths > 0) & (buf[np.maximum(ends - 1, 0)] == 13)
    numbers = np.arange(first_line, first_line + n, dtype=np.int64)
    too_long_mask = lengths > max_bytes
    too_long: list[tuple[int, str, int]] = []
    if too_long_mask.any():
        # Rare by construction (attack or corruption): only these few lines are handled singly.
        for i in np.flatnonzero(too_long_mask).tolist():
            head = chunk[starts[i] : starts[i] + RAW_KEEP_CHARS].decode("utf-8", "replace")
            too_long.append((first_line + i, head, int(lengths[i])))
        keep = ~too_long_mask
        starts, lengths, crlf, numbers = starts[keep], lengths[keep], crlf[keep], numbers[keep]
    views = _string_views(buf, starts, lengths - crlf)
    text = pa.Array.from_buffers(
        pa.string_view(), len(starts), [None, pa.py_buffer(views), pa.py_buffer(chunk)]
    )
    table = pa.table({"source_offset": pa.array(numbers), "line": text})
    return LineBatch(table, too_long)


def _only_too_long(line_no: int, head: bytes, total: int) -> LineBatch:
    empty = pa.table({"source_offset": pa.array([], pa.int64()), "line": pa.array([], pa.string())})
    return LineBatch(empty, [(line_no, head[:RAW_KEEP_CHARS].decode("utf-8", "replace"), total)])


def iter_lines(
    stream: BinaryIO, read_bytes: int = READ_BYTES, max_bytes: int = MAX_LINE_BYTES
) -> Iterator[LineBatch]:
    """Batches of (line number, line) from a byte stream, one batch per ``read_bytes`` read.

    Same contract as :func:`orbwatch.sources.inputs.iter_line_batches` (bounded line length,
    U+FFFD for bad UTF-8, too-long lines reported for quarantine) but split with numpy and Arrow
    instead of a Python call per line, which is what makes millions of lines per second
    possible. Memory is bounded by ``read_bytes`` plus one line of at most ``max_bytes``.
    """
    line_no = 1
    carry = b""
    carry_total = 0  # true length of the carried partial line (carry holds at most max_bytes+1)
    while True:
        try:
            chunk = stream.read(read_bytes)
        except (OSError, EOFError) as exc:
            raise InputError(f"input ends unexpectedly after line {line_no - 1}: {exc}") from None
        if not chunk:
            break
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry_total += len(chunk)
            carry = (carry + chunk)[: max_bytes + 1]
            continue
        if carry_total > max_bytes:
            # The carried line was too long: report it and start after its newline.
            first_nl = chunk.find(b"\n")
            yield _only_too_long(line_no, carry, carry_total + first_nl)
            line_no += 1
            body = chunk[first_nl + 1 : cut + 1]
        else:
            body = carry + chunk[: cut + 1]
        carry = chunk[cut + 1 :][: max_bytes + 1]
        carry_total = len(chunk) - cut - 1
        if body:
            batch = _batch_from_chunk(body, line_no, max_bytes)
            line_no += batch.table.num_rows + len(batch.too_long)
            yield batch
    if carry_total:
        if carry_total > max_bytes:
            yield _only_too_long(line_no, carry, carry_total)
        else:
            yield _batch_from_chunk(carry, line_no, max_bytes)


def read_lines(inp: Input, read_bytes: int = READ_BYTES) -> Iterator[LineBatch]:
    """Line batches of an input, with read errors named after the input."""
    with inp.open_binary() as stream:
        try:
            yield from iter_lines(stream, read_bytes)
        except InputError as exc:
            raise InputError(f"{inp.display}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# Headers

# Stage 1: priority and timestamp (RFC 5424 version + ISO stamp, BSD stamp with optional year,
# or a bare ISO 8601 stamp as rsyslog's high-precision template and many products write it,
# some with more than one space after it).
_STAMP = re.compile(
    r"^(?P<_head>\s*(?:<(?P<pri>\d{1,3})>)?"
    r"(?:(?P<v5424>1) (?P<iso5424>\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?|-) "
    r"|(?P<bsd>[A-Z][a-z]{2} {1,2}\d{1,2} (?:(?P<bsd_year>\d{4}) )?\d\d:\d\d:\d\d(?:\.\d{1,9})?)"
    r"(?: [A-Z]{3,4})?:? "
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?):? +))"
).pattern
# Stage 2, RFC 5424: HOSTNAME APP-NAME PROCID MSGID, then STRUCTURED-DATA (matched apart below).
_R5424 = re.compile(
    r"^(?P<_head>(?P<host>\S+) (?P<program>\S+) (?P<pid>\S+) (?P<msgid>\S+))(?: |$)"
).pattern
# RFC 5424 STRUCTURED-DATA at the start of the text after MSGID, with the space that ends it.
# Written as "plain run, then (escape or quoted string, plain run)*" rather than one alternation
# per character: the same language, which the regex engine matches about three times faster.
_SD = re.compile(
    r"^(?:-|(?:\[[^\]\"\\]*(?:(?:\\.|\"(?:[^\"\\]|\\.)*\")[^\]\"\\]*)*\])+)(?: |$)"
).pattern
# Stage 2, BSD: [HOST] TAG[PID]: (the host is optional: local files written without it).
_RBSD_TAG = re.compile(
    r"^(?P<_head>(?:(?P<host>[^\s:\[\]]+) )?(?P<program>[^\s:\[\]]+)"
    r"(?:\[(?P<pid>\d+)\])?:(?: |$))"
).pattern
# Stage 2, BSD without a tag (PAN-OS, FortiGate, UniFi, MikroTik): HOST then the message.
_RBSD_HOST = re.compile(r"^(?P<_head>(?P<host>[^\s\[\]]+) )").pattern

HEADER_COLUMNS = ("pri", "stamp", "stamp_kind", "host", "program", "pid", "msgid", "sd", "message")


def _after(text: pl.Expr, head: pl.Expr) -> pl.Expr:
    """The text after a matched header (null when ``head`` did not match)."""
    return text.str.slice(head.str.len_chars())


# The two common headers, each in one anchored regex that needs no backtracking (the next byte
# always says which part it is in), which the regex engine runs several times faster than the
# general stages below. BSD: "[<PRI>]Mmm dd hh:mm:ss HOST [TAG[PID]: ]".
_BSD_COMMON = re.compile(
    r"^(?P<_head>(?:<(?P<pri>\d{1,3})>)?(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) "
    r"(?P<host>[^\s:\[\]]+) (?:(?P<program>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?:(?: |$))?)"
).pattern
# RFC 5424: "<PRI>1 STAMP HOST APP PROCID MSGID" (STRUCTURED-DATA as in the general stages).
_R5424_COMMON = re.compile(
    r"^(?P<_head><(?P<pri>\d{1,3})>1 (?P<stamp>\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?|-) "
    r"(?P<host>\S+) (?P<program>\S+) (?P<pid>\S+) (?P<msgid>\S+))(?: |$)"
).pattern
# What the general stages read as a time zone after the stamp ("Mar  1 00:00:02 UTC host ...").
_ZONE_LIKE = r"^[A-Z]{3,4}$"


def _not_nil(value: pl.Expr) -> pl.Expr:
    """RFC 5424 NILVALUE (``-``) means "not given"."""
    return pl.when(value != "-").then(value)


def _without_structured_data(after_msgid: pl.Expr) -> pl.Expr:
    """The message: the text after MSGID and its space, without STRUCTURED-DATA.

    STRUCTURED-DATA can be long (Juniper puts every field in it): its extent is found by a
    replacement, which needs no capture groups and so stays in the regex DFA.
    """
    return after_msgid.str.replace(_SD, "")


def _structured_data(after_msgid: pl.Expr, after_sd: pl.Expr) -> pl.Expr:
    """``sd``: what :func:`_without_structured_data` took off (both given as columns)."""
    sd_chars = after_msgid.str.len_chars() - after_sd.str.len_chars()
    sd = after_msgid.str.slice(0, sd_chars).str.strip_suffix(" ")
    return _not_nil(pl.when(sd_chars > 0).then(sd))


def _bsd_headers(lines: pl.LazyFrame, line: pl.Expr) -> pl.LazyFrame:
    """Header columns and ``_done`` of lines with the common BSD header."""
    g = pl.col("_c").struct
    return lines.with_columns(_c=line.str.extract_groups(_BSD_COMMON)).select(
        pl.exclude("_c"),
        pri=g.field("pri"),
        stamp=g.field("stamp"),
        stamp_kind=pl.when(g.field("stamp").is_not_null()).then(pl.lit("bsd")),
        host=_not_nil(g.field("host")),
        program=_not_nil(g.field("program")),
        pid=_not_nil(g.field("pid")),
        msgid=pl.lit(None, pl.String),
        sd=pl.lit(None, pl.String),
        message=_after(line, g.field("_head")),
        # A host the general stages would read as a zone goes to them, so both paths agree.
        _done=g.field("_head").is_not_null()
        & ~g.field("host").str.contains(_ZONE_LIKE).fill_null(False),
    )


def _rfc5424_headers(lines: pl.LazyFrame, line: pl.Expr) -> pl.LazyFrame:
    """Header columns and ``_done`` of lines with an RFC 5424 header."""
    g = pl.col("_c").struct
    after_msgid, message = pl.col("_after_msgid"), pl.col("_after_sd")
    found = (
        lines.with_columns(_c=line.str.extract_groups(_R5424_COMMON))
        .with_columns(_after_msgid=_after(line, g.field("_head")).str.slice(1))
        .with_columns(_after_sd=_without_structured_data(after_msgid))
    )
    return found.select(
        pl.exclude("_c", "_after_msgid", "_after_sd"),
        pri=g.field("pri"),
        stamp=_not_nil(g.field("stamp")),
        stamp_kind=pl.when(g.field("stamp").is_not_null()).then(pl.lit("iso")),
        host=_not_nil(g.field("host")),
        program=_not_nil(g.field("program")),
        pid=_not_nil(g.field("pid")),
        msgid=_not_nil(g.field("msgid")),
        sd=_structured_data(after_msgid, message),
        message=message,
        _done=g.field("_head").is_not_null(),
    )


def split_headers(lines: pl.DataFrame, column: str = "line") -> pl.DataFrame:
    """The header fields of every line, as columns added to ``lines`` (same row order).

    Adds ``pri``, ``stamp`` (the timestamp text), ``stamp_kind`` (``bsd``, ``bsd_year``,
    ``iso`` or null when the line has no header), ``host``, ``program``, ``pid``, ``msgid``, ``sd``
    and ``message``. Lines with one of the two common headers are split by its regex alone
    (:func:`_bsd_headers`, :func:`_rfc5424_headers`); the rest (ISO stamps, a year or fraction
    in the stamp, no host, a zone name) by the general stages of
    :func:`_split_headers_general`, which give the same columns for every line. A file is
    nearly always of one kind, so the lines are usually split by one path in one pass.
    """
    line = pl.col(column)
    remaining = lines.with_row_index("_row")
    parts: list[pl.DataFrame] = []
    for path in (_bsd_headers, _rfc5424_headers):
        if remaining.is_empty():
            break
        result = path(remaining.lazy(), line).collect()
        done = result["_done"]
        if done.all():
            parts.append(result.drop("_done"))
            remaining = remaining.clear()
        elif done.any():
            parts.append(result.filter(done).drop("_done"))
            remaining = remaining.filter(~done)
    if not parts or not remaining.is_empty():
        parts.append(_split_headers_general(remaining, column))
    merged = parts[0] if len(parts) == 1 else pl.concat(parts).sort("_row")
    return merged.drop("_row")


def _split_headers_general(lines: pl.DataFrame, column: str = "line") -> pl.DataFrame:
    """The header fields of every line, as columns added to ``lines`` (same row order).

    Adds ``pri``, ``stamp`` (the timestamp text), ``stamp_kind`` (``bsd``, ``bsd_year``,
    ``iso`` or null when the line has no header), ``host``, ``program``, ``pid``, ``msgid``, ``sd``
    and ``message``. Each stage is one anchored regex that captures only the short header, and
    runs only on the rows whose first stage says which header it is (the others are null, which
    costs nothing); matched headers are cut off by length, so the (long) message is never
    captured. RFC 5424 structured data can be long (Juniper puts every field in it): its extent
    is found by a replacement, which needs no capture groups and so stays in the regex DFA.
    """
    line = pl.col(column)
    stamp_groups = pl.col("_s").struct
    stamp = pl.coalesce(
        stamp_groups.field("bsd"), stamp_groups.field("iso"), stamp_groups.field("iso5424")
    )
    kind = (
        pl.when(stamp_groups.field("bsd_year").is_not_null())
        .then(pl.lit("bsd_year"))
        .when(stamp_groups.field("bsd").is_not_null())
        .then(pl.lit("bsd"))
        .when(stamp.is_not_null())
        .then(pl.lit("iso"))
        .otherwise(pl.lit(None, pl.String))
    )
    head = stamp_groups.field("_head")
    df = lines.lazy().with_columns(_s=line.str.extract_groups(_STAMP))
    df = df.with_columns(
        pri=stamp_groups.field("pri"),
        stamp=pl.when(stamp != "-").then(stamp),
        stamp_kind=kind,
        _is5424=stamp_groups.field("v5424").is_not_null(),
        _rest=pl.when(head.is_not_null()).then(_after(line, head)).otherwise(line),
    )
    rest = pl.col("_rest")
    bsd = ~pl.col("_is5424") & pl.col("stamp_kind").is_not_null()
    df = df.with_columns(
        _g5=pl.when(pl.col("_is5424")).then(rest).str.extract_groups(_R5424),
        _gt=pl.when(bsd).then(rest).str.extract_groups(_RBSD_TAG),
    )
    g5, gt = pl.col("_g5").struct, pl.col("_gt").struct
    # The text after MSGID and its space; STRUCTURED-DATA is its prefix when it has one.
    after_msgid = _after(rest, g5.field("_head")).str.slice(1)
    df = df.with_columns(
        _gh=pl.when(bsd & gt.field("_head").is_null()).then(rest).str.extract_groups(_RBSD_HOST),
        _after_msgid=after_msgid,
    ).with_columns(_after_sd=_without_structured_data(pl.col("_after_msgid")))
    gh = pl.col("_gh").struct
    sd = _structured_data(pl.col("_after_msgid"), pl.col("_after_sd"))
    message = pl.coalesce(
        pl.col("_after_sd"),
        _after(rest, gt.field("_head")),
        _after(rest, gh.field("_head")),
        rest,
    )
    fields = {
        "host": pl.coalesce(g5.field("host"), gt.field("host"), gh.field("host")),
        "program": pl.coalesce(g5.field("program"), gt.field("program")),
        "pid": pl.coalesce(g5.field("pid"), gt.field("pid")),
        "msgid": g5.field("msgid"),
    }
    # RFC 5424 NILVALUE means "not given".
    out = df.select(
        *lines.columns,
        "pri",
        "stamp",
        "stamp_kind",
        *[_not_nil(value).alias(name) for name, value in fields.items()],
        sd.alias("sd"),
        message.alias("message"),
    )
    return out.collect()


# ---------------------------------------------------------------------------------------------
# Time


@dataclass(frozen=True)
class Clock:
    """How year-less and zone-less stamps of one input become UTC.

    ``zone`` is the IANA zone of stamps without an offset (config ``syslog_timezone``).
    ``year`` is the year of the input's first year-less line when known (``--year``); otherwise
    ``reference`` (the file's modification time) decides it: the first line belongs to the
    reference's year, or to the year before when its month and day lie after the reference.
    Later lines add a year at every roll-over: a drop of more than six months from one stamped
    line to the next (December followed by January).
    """

    zone: str = "UTC"
    year: int | None = None
    reference: dt.datetime | None = None

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(f"unknown time zone {self.zone!r} (syslog_timezone)") from None

    @classmethod
    def for_input(cls, inp: Input, zone: str = "UTC", year: int | None = None) -> Clock:
        """The clock of an input: its file's modification time is the reference."""
        reference = None
        if year is None and inp.display != "-":
            try:
                mtime = os.stat(inp.path).st_mtime
                reference = dt.datetime.fromtimestamp(mtime, ZoneInfo(zone)).replace(tzinfo=None)
            except OSError:
                reference = None
        return cls(zone, year, reference)

    def first_year(self, month: int, day: int) -> int:
        """The year of the first year-less stamp of the input."""
        if self.year is not None:
            return self.year
        ref = self.reference or dt.datetime.now(ZoneInfo(self.zone)).replace(tzinfo=None)
        return ref.year - 1 if (month, day) > (ref.month, ref.day) else ref.year


@dataclass
class _YearState:
    """Carried between batches: the year and month of the last stamped year-less line.

    Batches may be parsed on several threads (:meth:`LineSource.parse`), but year-less stamps
    must be resolved in file order: :meth:`turn` lets batch ``n`` through only after batches
    ``0 .. n-1`` have had theirs or given it up (:meth:`finish`, also on failure).
    """

    year: int | None = None
    month: int = 0
    _next: int = 0
    _finished: set[int] = field(default_factory=set)
    _ready: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def turn(self, index: int | None) -> Iterator[None]:
        """Run the body in batch order (immediately when ``index`` is None: one thread)."""
        if index is None:
            yield
            return
        with self._ready:
            self._ready.wait_for(lambda: self._next == index)
            try:
                yield
            finally:
                self._finish_locked(index)

    def finish(self, index: int) -> None:
        """Batch ``index`` is done with its turn (or will never take it)."""
        with self._ready:
            self._finish_locked(index)

    def _finish_locked(self, index: int) -> None:
        self._finished.add(index)
        while self._next in self._finished:
            self._finished.discard(self._next)
            self._next += 1
        self._ready.notify_all()


def _years(months: np.ndarray, days: np.ndarray, clock: Clock, state: _YearState) -> np.ndarray:
    """The year of each stamp (months 1-12, 0 where the line has no year-less stamp)."""
    have = months > 0
    out = np.zeros(len(months), dtype=np.int64)
    if not have.any():
        return out
    m = months[have]
    if state.year is None:
        first = int(np.flatnonzero(have)[0])
        state.year = clock.first_year(int(months[first]), int(days[first]))
        state.month = int(m[0])
    prev = np.concatenate(([state.month], m[:-1]))
    rolls = np.cumsum((prev - m) > ROLLOVER_MONTHS)
    out[have] = state.year + rolls
    state.year = int(state.year + rolls[-1])
    state.month = int(m[-1])
    return out


def local_time(text: pl.Expr, fmt: str, zone: str) -> pl.Expr:
    """A naive local time text (``strptime`` format) in ``zone`` as UTC; null when invalid."""
    return _in_zone(text.str.strptime(pl.Datetime("us"), fmt, strict=False), zone)


def _in_zone(naive: pl.Expr, zone: str) -> pl.Expr:
    """Naive local times in ``zone`` as UTC (the earlier of two in a fall-back hour; null in a
    spring-forward gap)."""
    return naive.dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null"
    ).dt.convert_time_zone("UTC")


def iso_time(text: pl.Expr, zone: str) -> pl.Expr:
    """ISO 8601 text as UTC: its own offset when it has one, else ``zone``; null when invalid."""
    norm = text.str.replace(r"Z$", "+00:00").str.replace(" ", "T", literal=True)
    with_zone = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
    return pl.coalesce(with_zone, local_time(norm, "%Y-%m-%dT%H:%M:%S%.f", zone))


def header_times(df: pl.DataFrame, clock: Clock, state: _YearState) -> pl.Series:
    """The UTC time of each line's header stamp (null when it has none or it is invalid)."""
    if len(df):
        kind, stamp = df["stamp_kind"], df["stamp"]
        if ((kind == "bsd") & (stamp.str.len_bytes() == 15)).all():
            return _common_header_times(stamp, clock, state)
        if (kind == "iso").all() and stamp.str.contains(_UTC_ISO).all():
            return _utc_iso_times(stamp)
    return _general_header_times(df, clock, state)


# RFC 5424 as most devices write it: UTC, "Z", an optional fraction.
_UTC_ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z$"


def _utc_iso_times(stamps: pl.Series) -> pl.Series:
    """Times of stamps that all match :data:`_UTC_ISO` (nulls allowed).

    The seconds go through the fixed ``%Y-%m-%dT%H:%M:%S`` layout, which Polars parses on its
    fast path; the fraction (kept to the microsecond, as :func:`iso_time` does) is added as a
    number. Same values as :func:`iso_time`, at less than half its cost.
    """
    s = pl.col("s")
    micros = s.str.slice(20).str.strip_suffix("Z").str.pad_end(6, "0").str.slice(0, 6)
    naive = s.str.slice(0, 19).str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%S", strict=False)
    utc = naive + pl.duration(microseconds=micros.cast(pl.Int64, strict=False).fill_null(0))
    return stamps.to_frame("s").select(utc.dt.replace_time_zone("UTC").alias("t"))["t"]


def _common_header_times(stamps: pl.Series, clock: Clock, state: _YearState) -> pl.Series:
    """Header times when every stamp is ``Mmm dd hh:mm:ss`` (the usual syslog file).

    Every part is at a fixed position, so the parts are cut out and the time is computed from
    the numbers with numpy, with no text to build and parse again: a file's worth of stamps
    at a fraction of the cost of ``strptime``. An impossible date or time is null, as there.
    """
    s = pl.col("s")
    parts = stamps.to_frame("s").select(
        month=s.str.slice(0, 3).replace_strict(MONTHS, default=0, return_dtype=pl.Int64),
        day=s.str.slice(4, 2).str.strip_chars_start().cast(pl.Int64, strict=False),
        hour=s.str.slice(7, 2).cast(pl.Int64, strict=False),
        minute=s.str.slice(10, 2).cast(pl.Int64, strict=False),
        second=s.str.slice(13, 2).cast(pl.Int64, strict=False),
    )
    month, day, hour, minute, second = (
        parts[c].fill_null(-1).to_numpy() for c in ("month", "day", "hour", "minute", "second")
    )
    years = _years(np.maximum(month, 0), np.maximum(day, 0), clock, state)
    first_of_month = (years - 1970).astype("datetime64[Y]") + (np.maximum(month, 1) - 1).astype(
        "timedelta64[M]"
    )
    first_day = first_of_month.astype("datetime64[D]").astype(np.int64)
    month_days = (first_of_month + np.timedelta64(1, "M")).astype("datetime64[D]").astype(
        np.int64
    ) - first_day
    valid = (
        (month >= 1)
        & (day >= 1)
        & (day <= month_days)
        & (hour >= 0) & (hour < 24) & (minute >= 0) & (minute < 60) & (second >= 0) & (second < 60)
    )  # fmt: skip
    micros = (first_day + day - 1) * 86_400_000_000 + (
        (hour * 60 + minute) * 60 + second
    ) * 1_000_000
    naive = pl.Series("t", np.where(valid, micros, 0)).cast(pl.Datetime("us"))
    naive = pl.select(pl.when(pl.Series(valid)).then(naive)).to_series()
    return pl.select(_in_zone(pl.lit(naive), clock.zone).alias("t")).to_series()


def _general_header_times(df: pl.DataFrame, clock: Clock, state: _YearState) -> pl.Series:
    """Header times of any mix of stamp kinds (see :func:`header_times`)."""
    kind = pl.col("stamp_kind")
    # The header regex has checked the shape ("Mmm dd [yyyy ]hh:mm:ss[.f]", the day padded
    # with a space, a zero or nothing), so once the day has two digits every part is at a fixed
    # position: slices, no second regex.
    bsd = pl.when(kind.is_in(["bsd", "bsd_year"])).then(pl.col("stamp"))
    padded = bsd.str.replace("  ", " 0", literal=True)
    fixed = (
        pl.when(padded.str.slice(5, 1) == " ")
        .then(padded.str.slice(0, 4) + pl.lit("0") + padded.str.slice(4))
        .otherwise(padded)
    )
    with_year = kind == "bsd_year"
    parts = (
        df.lazy()
        .select(kind, pl.col("stamp"), fixed.alias("_fixed"))
        .select(
            kind,
            pl.col("stamp"),
            month=pl.col("_fixed")
            .str.slice(0, 3)
            .replace_strict(MONTHS, default=0, return_dtype=pl.Int64),
            day=pl.col("_fixed").str.slice(4, 2).cast(pl.Int64, strict=False).fill_null(0),
            year=pl.when(with_year).then(pl.col("_fixed").str.slice(7, 4)),
            clock=pl.when(with_year)
            .then(pl.col("_fixed").str.slice(12))
            .otherwise(pl.col("_fixed").str.slice(7)),
        )
        .collect()
    )
    is_bsd = (parts["stamp_kind"] == "bsd").fill_null(False).to_numpy()
    months = np.where(is_bsd, parts["month"].fill_null(0).to_numpy(), 0)
    years = _years(months, parts["day"].to_numpy(), clock, state)
    # Numeric "yyyy-mm-dd hh:mm:ss": Polars parses that layout on its fast path (a month name
    # or a fraction format takes the general strptime, three times slower), so stamps with a
    # fraction are parsed apart.
    year = pl.when(kind == "bsd").then(pl.Series(years).cast(pl.String)).otherwise(pl.col("year"))
    text = pl.concat_str(
        year,
        pl.lit("-"),
        pl.col("month").cast(pl.String).str.pad_start(2, "0"),
        pl.lit("-"),
        pl.col("day").cast(pl.String).str.pad_start(2, "0"),
        pl.lit(" "),
        pl.col("clock"),
    )
    fraction = pl.col("clock").str.contains(".", literal=True)
    naive = pl.coalesce(
        pl.when(~fraction)
        .then(text)
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False),
        pl.when(fraction)
        .then(text)
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False),
    )
    iso = pl.when(kind == "iso").then(pl.col("stamp"))
    return parts.select(
        pl.when(kind == "iso")
        .then(iso_time(iso, clock.zone))
        .otherwise(_in_zone(naive, clock.zone))
        .alias("t")
    )["t"]


# ---------------------------------------------------------------------------------------------
# Field helpers


# A ``kv`` lookup is a placeholder column that :class:`LineSource` fills once per batch (see
# :func:`_kv_columns`), however many field expressions read it.
_KV_MARK = "\x1fkv"


def kv(key: str, on: str = "message", sep: str = "=", quotes: str = '"') -> pl.Expr:
    """The value of ``key`` in ``key=value`` / ``key="value"`` text (first occurrence), unquoted.

    ``key`` follows the start of the text or one of whitespace, ``,``, ``;``, ``[``, ``|``;
    ``quotes`` are the quote characters the product uses ("" for none: the value runs to the
    next whitespace); an unquoted value stops at whitespace or a quote character.
    """
    return first_kv((key,), on, sep, quotes)


def first_kv(
    keys: tuple[str, ...], on: str = "message", sep: str = "=", quotes: str = '"'
) -> pl.Expr:
    """The value of the first of ``keys`` that the line has (spellings of one field).

    Same as coalescing :func:`kv` of each key, but a later spelling is only looked for in the
    lines that lack the earlier ones, so a product that renamed its fields in one version does
    not pay a scan of every line per old name.
    """
    return pl.col("\x1f".join((_KV_MARK, on, sep, quotes, "\x1e".join(keys))))


def _kv_placeholders(exprs: list[pl.Expr]) -> list[str]:
    """The names of the ``kv`` placeholder columns the expressions read."""
    names = {n for e in exprs for n in e.meta.root_names() if n.startswith(_KV_MARK + "\x1f")}
    return sorted(names)


def _kv_columns(names: list[str]) -> tuple[dict[str, KvKey], list[tuple[str, str, list[str]]]]:
    """How to fill the ``kv`` placeholder columns, in two steps.

    Step one (:func:`_fill_first_spellings`) looks up each distinct first-choice key once:
    formats read the same key for several columns (a NAT address decides whether its port is
    kept) and in both branches of a condition, and every further use is a column read instead
    of another scan of the line. It is (first-choice column: what to look up). Step two, for
    :func:`first_kv`, is (placeholder, first-choice column, later keys): see
    :func:`_fill_later_spellings`.
    """
    firsts: dict[str, KvKey] = {}
    later_steps: list[tuple[str, str, list[str]]] = []
    for name in names:
        on, sep, quotes, joined = name[len(_KV_MARK) + 1 :].split("\x1f")
        first, *later = joined.split("\x1e")
        first_name = "\x1f".join((_KV_MARK, on, sep, quotes, first))
        firsts[first_name] = KvKey(on, first, sep, quotes)
        if later:
            later_steps.append((name, first_name, later))
    return firsts, later_steps


def _fill_first_spellings(df: pl.DataFrame, firsts: dict[str, KvKey]) -> pl.DataFrame:
    """The first-choice ``kv`` columns: the keys read from one text column are looked up
    together (:func:`kv_values`)."""
    by_text: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for name, spec in firsts.items():
        by_text.setdefault((spec.on, spec.sep, spec.quotes), []).append((name, spec.key))
    columns: list[pl.Series] = []
    for (on, sep, quotes), named in by_text.items():
        values = kv_values(df.get_column(on), [key for _, key in named], sep, quotes)
        columns += [value.alias(name) for value, (name, _) in zip(values, named, strict=True)]
    return df.with_columns(columns)


def _fill_later_spellings(
    df: pl.DataFrame, steps: list[tuple[str, str, list[str]]]
) -> pl.DataFrame:
    """The :func:`first_kv` columns: later spellings looked up only in the lines that need them.

    The rows still missing a value are gathered and only they are searched, so a file written
    with the current names pays nothing for the old ones.
    """
    for name, first_name, later in steps:
        on, sep, quotes, _ = name[len(_KV_MARK) + 1 :].split("\x1f")
        value = df.get_column(first_name)
        for key in later:
            rows = value.is_null().arg_true()
            if not len(rows):
                break
            (found,) = kv_values(df.get_column(on).gather(rows), [key], sep, quotes)
            value = value.scatter(rows, found)
        df = df.with_columns(value.alias(name))
    return df


def seconds_of_clock(value: pl.Expr) -> pl.Expr:
    """``H:MM:SS`` (or ``Nh:MM:SS``) durations as seconds; null when not of that form."""
    groups = value.str.extract_groups(r"^(\d+)h?:(\d\d):(\d\d)$").struct
    return (
        groups.field("1").cast(pl.Int64) * 3600
        + groups.field("2").cast(pl.Int64) * 60
        + groups.field("3").cast(pl.Int64)
    ).cast(pl.String)


def csv_fields(text: pl.Expr, separator: str) -> pl.Expr:
    """The fields of delimited text as a list, honouring CSV double quotes.

    PAN-OS quotes a field that holds the separator (``"Microsoft Windows 11 Enterprise ,
    64-bit"``) and doubles a quote inside one. Lines without a quote, nearly all of them, take
    a plain split; the others one regex pass that matches whole fields (a quoted field or a run
    of non-separators), then lose the separator each match starts with, and their quotes. An
    unterminated quote is not a quoted field: it stays as text, as in a plain split.
    """
    sep = re.escape(separator)
    quoted = pl.when(text.str.contains('"', literal=True)).then(text)
    field = f'(?:^|{sep})(?:"(?:[^"]|"")*"|[^{sep}]*)'
    tokens = quoted.str.extract_all(field).list.eval(_csv_unquoted(pl.element(), separator))
    return pl.coalesce(tokens, text.str.split(separator))


def _csv_unquoted(token: pl.Expr, separator: str) -> pl.Expr:
    """One matched CSV field without its leading separator and its quotes."""
    value = token.str.strip_prefix(separator)
    inner = value.str.slice(1, value.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    closed = value.str.starts_with('"') & value.str.ends_with('"') & (value.str.len_chars() >= 2)
    return pl.when(closed).then(inner).otherwise(value)


def part(index: int) -> pl.Expr:
    """Field ``index`` (0-based) of the format's ``split`` list column, null when absent."""
    return pl.col("parts").list.get(index, null_on_oob=True)


_PROTOCOLS = {
    "1": "icmp",
    "2": "igmp",
    "6": "tcp",
    "17": "udp",
    "41": "ipv6",
    "47": "gre",
    "50": "esp",
    "51": "ah",
    "58": "ipv6-icmp",
    "89": "ospf",
    "103": "pim",
    "112": "vrrp",
    "132": "sctp",
    "icmpv6": "ipv6-icmp",
    "icmp6": "ipv6-icmp",
}


def protocol_name(value: pl.Expr) -> pl.Expr:
    """An IANA protocol number or name as the lower-case name flows use (``6`` -> ``tcp``)."""
    low = value.str.strip_chars().str.to_lowercase()
    return low.replace(_PROTOCOLS)


# "No address" as firewalls write it in NAT fields (not a socket binding).
UNSPECIFIED = ("0.0.0.0", "::", "", "None", "N/A")  # noqa: S104


def translated(address: pl.Expr) -> pl.Expr:
    """A NAT address field, null when the device wrote "no translation" (``0.0.0.0``, N/A)."""
    return pl.when(~address.is_in(list(UNSPECIFIED))).then(address)


def action_of(value: pl.Expr, allow: tuple[str, ...], deny: tuple[str, ...]) -> pl.Expr:
    """A vendor verdict as ``allow``, ``deny`` or ``unknown`` (case-insensitive)."""
    low = value.str.strip_chars().str.to_lowercase()
    return (
        pl.when(low.is_in(list(allow)))
        .then(pl.lit("allow"))
        .when(low.is_in(list(deny)))
        .then(pl.lit("deny"))
        .otherwise(pl.lit("unknown"))
    )


# ---------------------------------------------------------------------------------------------
# Declarative formats


@dataclass(frozen=True)
class Field:
    """One output column: a Polars expression over the extracted columns, and its kind."""

    expr: pl.Expr
    kind: Kind = "str"


@dataclass(frozen=True)
class TimeField:
    """A record time the product writes in its message.

    ``format`` is the ``strptime`` format of a naive local time (in the configured zone); with
    ``None`` the text is epoch time (seconds, milliseconds, microseconds or nanoseconds, told
    apart by magnitude) or ISO 8601.
    """

    expr: pl.Expr
    format: str | None = None


@dataclass(frozen=True)
class LineFormat:
    """Everything that distinguishes one line format; :class:`LineSource` does the work."""

    name: str
    table: Literal["flows", "logins"]
    description: str
    recognise: str
    fields: Mapping[str, Field]
    patterns: tuple[str, ...] = ()
    on: Literal["message", "line"] = "message"
    split: str | None = None
    sniff_program: str | None = None
    #: Product times tried in order; the syslog header time is the last resort.
    time: tuple[TimeField, ...] = ()
    constants: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: Lines the format understands that are not records (sshd "Server listening", another
    #: program's line in auth.log, a PAN-OS SYSTEM log): (regex over ``on`` or boolean
    #: expression, reason as text or expression). A line the format recognises as a record is
    #: never skipped. Skipped lines are counted in ``Parsed.skipped``, neither rows nor
    #: quarantine; regex entries also count as this format's lines when sniffing.
    skipped: tuple[tuple[str | pl.Expr, str | pl.Expr], ...] = ()

    @property
    def time_column(self) -> str:
        return "ts_start" if self.table == "flows" else "ts"


class LineSource(Source):
    """A :class:`Source` for one :class:`LineFormat` (subclasses set ``format``)."""

    format: ClassVar[LineFormat]
    #: True: the ingest passes the configured syslog zone and the ``--year`` hint.
    accepts_clock: ClassVar[bool] = True
    #: Bytes of text per batch: what bounds the memory of a parse, whatever the file's size.
    read_bytes: int = READ_BYTES

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        fmt = getattr(cls, "format", None)
        if isinstance(fmt, LineFormat):
            cls.name = fmt.name
            cls.table = fmt.table
            cls.description = fmt.description

    def __init__(self, *, timezone: str = "UTC", year: int | None = None) -> None:
        self.timezone = timezone
        self.year = year
        Clock(timezone)  # validate the zone early

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        """True when most of the first lines are this format's records or known non-records."""
        text = head[: 64 * 1024].decode("utf-8", "replace")
        lines = [ln for ln in text.split("\n")[:SNIFF_LINES] if ln.strip()]
        if len(text) == 64 * 1024 and len(lines) > 1:
            lines = lines[:-1]  # the last line may be cut
        if not lines:
            return False
        df = split_headers(pl.DataFrame({"line": pl.Series(lines, dtype=pl.String)}))
        ours = cls._recognised(df)
        for test, _ in cls.format.skipped:
            if isinstance(test, str):
                ours = ours | df[cls.format.on].str.contains(test).fill_null(False)
        hits = int(ours.sum())
        # Most lines, not all: a product's file also holds its other events.
        return hits > 0 and hits * 2 >= len(lines)

    @classmethod
    def _recognised(cls, df: pl.DataFrame) -> pl.Series:
        return df.select(cls._recognised_expr().alias("ok"))["ok"]

    @classmethod
    def _recognised_expr(cls) -> pl.Expr:
        fmt = cls.format
        test = pl.col(fmt.on).str.contains(fmt.recognise).fill_null(False)
        if fmt.sniff_program is not None:
            test = test & pl.col("program").fill_null("").str.contains(fmt.sniff_program)
        return test

    def parse(self, inp: Input) -> Iterator[Parsed]:
        """Parsed batches in file order, :data:`PARSE_THREADS` batches in flight.

        While one batch is in a single-threaded step (Python, the year roll-over, Arrow
        conversion), the next one's query uses the other core, and the next read overlaps
        both. At most ``PARSE_THREADS + 1`` batches are held, so memory stays bounded.
        """
        clock = Clock.for_input(inp, self.timezone, self.year)
        state = _YearState()
        with ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="orbwatch-parse") as pool:
            pending: deque[Future[list[Parsed]]] = deque()
            for index, batch in enumerate(read_lines(inp, self.read_bytes)):
                pending.append(pool.submit(self._parse_batch, batch, clock, state, index))
                if len(pending) > PARSE_THREADS:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()

    def _parse_batch(
        self, batch: LineBatch, clock: Clock, state: _YearState, index: int
    ) -> list[Parsed]:
        try:
            out = []
            if batch.too_long:
                out.append(Parsed(empty_rows(self.table), too_long_rejects(batch)))
            if batch.table.num_rows:
                out.append(self.parse_lines(batch.table, clock, state, index))
            return out
        finally:
            state.finish(index)

    def parse_lines(
        self,
        table: pa.Table,
        clock: Clock | None = None,
        state: _YearState | None = None,
        turn: int | None = None,
    ) -> Parsed:
        """Rows, rejects and skip counts for a table of (``source_offset``, ``line``).

        Blank lines are ignored: they are neither records nor damage. After the header (whose
        year-less stamps need the batch's order, so they are resolved eagerly), the rest is one
        lazy query: the format's regexes, ``kv`` keys, CSV split, fields, typed conversion and
        reasons, so that Polars plans and parallelises it as a whole.
        """
        clock = clock or Clock(self.timezone, self.year)
        state = state or _YearState()
        fmt = self.format
        df = pl.from_arrow(table)
        assert isinstance(df, pl.DataFrame)
        # Blank as Python's str.isspace says (it counts the \x1c-\x1f separators as space).
        df = split_headers(df.filter(~pl.col("line").str.contains(r"^[\s\x1c-\x1f]*$")))
        target = pl.col(fmt.on)
        kv_firsts, kv_later = _kv_columns(_kv_placeholders(self._expressions()))
        with state.turn(turn):
            times = header_times(df, clock, state)
        df = _fill_later_spellings(_fill_first_spellings(df, kv_firsts), kv_later)
        lazy = (
            df.lazy()
            .with_columns(
                times.alias("_header_ts"),
                self._recognised_expr().alias("_ok"),
                *[target.str.extract_groups(p).alias(f"_p{i}") for i, p in enumerate(fmt.patterns)],
                *([csv_fields(target, fmt.split).alias("parts")] if fmt.split is not None else []),
            )
            .unnest([f"_p{i}" for i in range(len(fmt.patterns))])
        )
        return self._finish(lazy, clock)

    @classmethod
    def _expressions(cls) -> list[pl.Expr]:
        """Every expression of the format (fields, product times, skip tests)."""
        fmt = cls.format
        exprs = [f.expr for f in fmt.fields.values()] + [t.expr for t in fmt.time]
        for test, why in fmt.skipped:
            exprs += [e for e in (test, why) if isinstance(e, pl.Expr)]
        return exprs

    def _finish(self, df: pl.LazyFrame, clock: Clock) -> Parsed:
        fmt = self.format
        time_col = fmt.time_column
        exprs = {name: f.expr.alias(name) for name, f in fmt.fields.items()}
        if time_col not in exprs:
            exprs[time_col] = self._time_expr(clock).alias(time_col)
        if fmt.table == "flows" and "exporter" not in exprs:
            exprs["exporter"] = pl.col("host").alias("exporter")
        # Skip reasons matter only for the lines the format does not recognise: when every
        # skip test is a regex over the format's text with a fixed reason, the tests run on
        # those lines alone, after the query (_count_text_skips); else in the query.
        text_skips = all(isinstance(t, str) and isinstance(w, str) for t, w in fmt.skipped)
        counted = pl.lit(None, pl.String) if text_skips else _skip_reasons(fmt)
        skip_on = [pl.col(fmt.on).alias("_skip_on")] if text_skips and fmt.skipped else []
        # Lazy, so that Polars evaluates the columns in parallel and shares repeated
        # sub-expressions; the raw values, their text form and the typed columns are successive
        # steps of one query, each step reading the previous step's columns.
        raw = df.select(
            pl.col("source_offset"),
            pl.col("line"),
            pl.col("_ok"),
            counted.alias("_counted"),
            *skip_on,
            *exprs.values(),
        )
        kinds: dict[str, Kind] = {n: f.kind for n, f in fmt.fields.items()}
        kinds.setdefault(time_col, "time")
        kinds.setdefault("exporter", "str")
        schema = raw.collect_schema()
        steps = [_typed(name, kinds[name], schema[name], clock.zone) for name in exprs]
        required = [n for n in fmt.required or _default_required(fmt.table) if n in exprs]
        checked = [s for s in steps if s.checked]
        # Whether a row is a reject is a cheap flag; the reasons, text built from the values,
        # are only written for the flagged rows (usually none) in _reasons.
        flag = pl.any_horizontal(
            ~pl.col("_ok"),
            *[pl.col(f"_bad_{s.name}") for s in checked],
            *[pl.col(n).is_null() for n in required],
        )
        result = (
            raw.with_columns([step.text for step in steps])
            .with_columns([e for step in steps for e in step.typed])
            .select(
                pl.col("source_offset"),
                pl.col("line"),
                pl.col("_counted"),
                pl.col("_ok"),
                (flag & pl.col("_counted").is_null()).alias("_flag"),
                *exprs,
                *[f"_other_{n}" for n in exprs if kinds[n] == "addr"],
                *[c for s in checked for c in (f"_bad_{s.name}", f"_text_{s.name}")],
                *[c.meta.output_name() for c in skip_on],
            )
            .collect()
        )
        if skip_on:
            result = _count_text_skips(result, fmt.skipped)
        skipped = {
            str(k): int(v) for k, v in result["_counted"].drop_nulls().value_counts().iter_rows()
        }
        flagged = result["_flag"]
        reasons = _reasons(result.filter(flagged), fmt.description, checked, required)
        kept = ~flagged & result["_counted"].is_null()
        candidates = result if kept.all() else result.filter(kept)
        addresses = [n for n in exprs if kinds[n] == "addr"]
        good, bad_addresses = _check_other_addresses(candidates, addresses)
        good = good.select(*exprs, "source_offset").with_columns(
            [pl.lit(value, pl.String).alias(name) for name, value in fmt.constants.items()]
        )
        bad_arrow = pl.concat([reasons, bad_addresses]).sort("source_offset").to_arrow()
        return Parsed(
            _schema_order(good.to_arrow(), fmt.table),
            rejects(
                _plain(bad_arrow["source_offset"]),
                _plain(bad_arrow["_reason"]),
                _plain(bad_arrow["line"]),
            ),
            skipped,
        )

    def _time_expr(self, clock: Clock) -> pl.Expr:
        candidates = [_product_time(spec, clock.zone) for spec in self.format.time]
        return pl.coalesce([*candidates, pl.col("_header_ts")])


def _skip_reasons(fmt: LineFormat) -> pl.Expr:
    """The first matching skip reason of each line the format does not recognise, or null."""
    return pl.when(~pl.col("_ok")).then(_first_skip(fmt.skipped, pl.col(fmt.on)))


def _first_skip(skipped: tuple[tuple[str | pl.Expr, str | pl.Expr], ...], text: pl.Expr) -> pl.Expr:
    """The reason of the first skip test that holds (regexes are matched against ``text``)."""
    counted = pl.lit(None, pl.String)
    for test, why in reversed(skipped):
        cond = text.str.contains(test) if isinstance(test, str) else test
        label = pl.lit(why) if isinstance(why, str) else why
        counted = pl.when(cond.fill_null(False)).then(label).otherwise(counted)
    return counted


def _count_text_skips(
    result: pl.DataFrame, skipped: tuple[tuple[str | pl.Expr, str | pl.Expr], ...]
) -> pl.DataFrame:
    """``_counted`` and ``_flag`` of ``result`` after its unrecognised lines' skip tests.

    The tests (regexes over ``_skip_on``) run on the unrecognised lines only, usually few.
    """
    unrecognised = ~result["_ok"]
    if not unrecognised.any():
        return result.drop("_skip_on")
    at = unrecognised.arg_true()
    subset = result.select("_skip_on").gather(at)
    counted = subset.select(_first_skip(skipped, pl.col("_skip_on")).alias("c"))["c"]
    column = result["_counted"].scatter(at, counted)
    return result.drop("_skip_on").with_columns(
        column, (pl.col("_flag") & column.is_null()).alias("_flag")
    )


def _product_time(spec: TimeField, zone: str) -> pl.Expr:
    if spec.format is not None:
        return local_time(spec.expr, spec.format, zone)
    text = spec.expr.str.strip_chars()
    number = text.cast(pl.Float64, strict=False)
    magnitude = number.abs()
    micros = (
        pl.when(magnitude > 1e17)
        .then(number / 1e3)
        .when(magnitude > 1e14)
        .then(number)
        .when(magnitude > 1e11)
        .then(number * 1e3)
        .otherwise(number * 1e6)
    )
    from_epoch = micros.cast(pl.Int64, strict=False).cast(pl.Datetime("us", "UTC"))
    return pl.coalesce(from_epoch, iso_time(text, zone))


_DOTTED_QUAD = r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$"
_NULL_MARKERS = ["-", "", "(empty)"]


@dataclass(frozen=True)
class _Conversion:
    """The steps of one column's typed conversion, as expressions over the previous step.

    ``text`` makes ``_text_<name>`` (stripped text, null for the "not set" markers) from the raw
    column; ``typed`` makes the typed ``<name>`` and ``_bad_<name>`` (a value that does not fit)
    from it, plus ``_other_<name>`` for addresses; ``problem`` is the row's reason or null
    (over ``_bad_<name>`` and ``_text_<name>``). ``checked``: whether the kind has values
    that do not fit, so that ``_bad_<name>`` exists.
    """

    name: str
    text: pl.Expr
    typed: tuple[pl.Expr, ...]
    problem: pl.Expr
    checked: bool = True


def _typed(name: str, kind: Kind, dtype: pl.DataType, zone: str) -> _Conversion:
    """The typed conversion of one extracted column.

    Same contract as :func:`orbwatch.sources.base.convert` (``-``, empty and ``(empty)`` mean
    "not set"; a value that does not fit gives "<field>: <value> is not a valid <kind>"), done
    in Polars so that the whole batch stays in one engine. Addresses: dotted quads are checked
    here; other text (IPv6, garbage) is marked in ``_other_<name>`` for
    :func:`_check_other_addresses`.
    """
    text_name, bad_name = f"_text_{name}", f"_bad_{name}"
    none = pl.lit(None, pl.String)
    if kind == "time" and dtype != pl.String:
        typed = pl.col(name).cast(pl.Datetime("us", "UTC")).alias(name)
        return _Conversion(name, none.alias(text_name), (typed,), none, checked=False)
    text = pl.col(name).cast(pl.String).str.strip_chars()
    value = pl.col(text_name)
    extra: tuple[pl.Expr, ...] = ()
    ok: pl.Expr
    if kind == "port":
        number = value.cast(pl.Int64, strict=False)
        ok = number.is_between(0, 65535)
        typed = pl.when(ok).then(number).cast(pl.Int32)
    elif kind == "count":
        number = value.cast(pl.Int64, strict=False)
        ok = number >= 0
        typed = pl.when(ok).then(number)
    elif kind == "float":
        typed = value.cast(pl.Float64, strict=False)
        ok = typed.is_not_null()
    elif kind == "time":
        typed = _product_time(TimeField(value), zone)
        ok = typed.is_not_null()
    elif kind == "bool":
        low = value.str.to_lowercase()
        ok = low.is_in(["t", "f", "true", "false", "1", "0"])
        typed = pl.when(ok).then(low.is_in(["t", "true", "1"]))
    elif kind == "addr":
        typed = value.str.slice(0, 64)
        quad = typed.str.contains(_DOTTED_QUAD)
        ok = quad | typed.str.contains(":", literal=True)
        extra = ((typed.is_not_null() & ~quad).alias(f"_other_{name}"),)
    else:
        typed = value.str.slice(0, MAX_FIELD_CHARS)
        return _Conversion(
            name,
            pl.when(~text.is_in(_NULL_MARKERS)).then(text).alias(text_name),
            (typed.alias(name),),
            none,
            checked=False,
        )
    problem = pl.when(pl.col(bad_name)).then(
        pl.lit(f"{name}: ")
        + value.str.slice(0, 80)
        + pl.lit(f" is not a valid {_KIND_WORDS[kind]}")
    )
    return _Conversion(
        name,
        pl.when(~text.is_in(_NULL_MARKERS)).then(text).alias(text_name),
        (
            typed.alias(name),
            (value.is_not_null() & ~ok.fill_null(False)).alias(bad_name),
            *extra,
        ),
        problem,
    )


def _reasons(
    rows: pl.DataFrame, description: str, checked: list[_Conversion], required: list[str]
) -> pl.DataFrame:
    """(``source_offset``, ``_reason``, ``line``) of flagged rows: the first reason of each.

    Not a record of the format, then the first value that does not convert (in column order),
    then the first required column that is missing.
    """
    not_record = pl.when(~pl.col("_ok")).then(pl.lit(f"not a {description} record"))
    reason = pl.coalesce(
        not_record,
        *[step.problem for step in checked],
        *[pl.when(pl.col(n).is_null()).then(pl.lit(f"{n}: missing")) for n in required],
    )
    return rows.select("source_offset", reason.alias("_reason"), "line")


def _check_other_addresses(
    rows: pl.DataFrame, names: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows whose addresses all parse, and rejects for those with one that does not.

    Dotted quads were checked by the query; the other address texts (IPv6, garbage with a
    colon) are marked in ``_other_<name>``, and only those few values go through the address
    parser (one call per distinct value). The first bad column, in column order, is the reason.
    """
    problem = pl.repeat(None, len(rows), dtype=pl.String, eager=True).alias("_reason")
    for name in names:
        other = rows[f"_other_{name}"]
        if not other.any():
            continue
        at = other.arg_true()
        values = rows[name].gather(at)
        bad = pl.Series(pc.is_null(netaddr.keys(values.to_arrow())))
        message = pl.select(
            pl.when(bad).then(f"{name}: " + values.str.slice(0, 80) + " is not a valid IP address")
        ).to_series()
        earlier = problem.gather(at)
        problem = problem.scatter(at, earlier.fill_null(message))
    if problem.null_count() == len(rows):
        return rows, pl.DataFrame(
            {"source_offset": [], "_reason": [], "line": []},
            schema={"source_offset": pl.Int64, "_reason": pl.String, "line": pl.String},
        )
    bad_rows = problem.is_not_null()
    rejected = rows.filter(bad_rows).select("source_offset", problem.filter(bad_rows), "line")
    return rows.filter(~bad_rows), rejected


def _plain(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous Arrow array, with Polars' large/view string types as plain strings."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = pc.cast(arr, pa.string())
    return arr


def _default_required(table: str) -> tuple[str, ...]:
    return ("ts_start", "src_ip", "dst_ip") if table == "flows" else ("ts",)


def _schema_order(rows: pa.Table, table: str) -> pa.Table:
    """Rows cast to the workspace schema's types, in its column order."""
    arrays, names = [], []
    for fld in TABLES[table].schema:
        if fld.name in rows.column_names:
            arrays.append(pc.cast(rows[fld.name], fld.type))
            names.append(fld.name)
    return pa.table(arrays, names=names)


def empty_rows(table: str) -> pa.Table:
    """A table with no rows, for batches that only carry rejects."""
    return pa.table({"source_offset": pa.array([], pa.int64())})
