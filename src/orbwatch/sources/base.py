"""What every source format implements, and the column conversions they share.

A source turns one :class:`~orbwatch.sources.inputs.Input` into batches of :class:`Parsed`:
rows for its target table (columns named as in :mod:`orbwatch.store.schema`) and rejects
(offset, reason, raw text) for the quarantine. Sources never loop over rows in Python: they
split and convert whole Arrow columns, and :func:`convert` does the typed conversion with a
per-row reason for every value that does not fit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.sources.inputs import MAX_LINE_BYTES, RAW_KEEP_CHARS, Input, LineBatch

Kind = Literal["time", "count", "port", "float", "str", "addr", "bool"]

REJECT_SCHEMA = pa.schema(
    [
        ("source_offset", pa.int64()),
        ("reason", pa.string()),
        ("raw", pa.string()),
        ("raw_length", pa.int64()),
    ]
)
MAX_FIELD_CHARS = 1_024


@dataclass
class Parsed:
    """One batch of a source's output.

    ``skipped`` counts records the format understood but that have no row in the target table
    (an sshd "Server listening" line in an auth log), by reason: they are neither data nor
    damage, so they are counted rather than quarantined, and never dropped silently.
    """

    rows: pa.Table
    rejects: pa.Table
    skipped: dict[str, int] = field(default_factory=dict)


class Source(ABC):
    """A parser for one input format, producing rows of one workspace table."""

    name: ClassVar[str]
    table: ClassVar[str]
    description: ClassVar[str]
    #: True when the constructor takes ``mapping`` (flows column -> input column).
    accepts_mapping: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        """True when the first bytes (decompressed) look like this format."""

    @abstractmethod
    def parse(self, inp: Input) -> Iterator[Parsed]:
        """Parse the whole input, batch by batch."""


def rejects(offsets: pa.Array, reasons: pa.Array, raw: pa.Array) -> pa.Table:
    """A reject table, with raw text cut to the quarantine bound (its full length kept)."""
    text = pc.cast(raw, pa.string())
    cut = pc.utf8_slice_codeunits(text, 0, RAW_KEEP_CHARS)
    length = pc.cast(pc.utf8_length(text), pa.int64())
    return pa.Table.from_arrays(
        [pc.cast(offsets, pa.int64()), pc.cast(reasons, pa.string()), cut, length],
        schema=REJECT_SCHEMA,
    )


def too_long_rejects(batch: LineBatch) -> pa.Table:
    """Rejects for the lines of a batch that exceeded the line-length bound."""
    return pa.table(
        {
            "source_offset": pa.array([n for n, _, _ in batch.too_long], pa.int64()),
            "reason": pa.array(
                [
                    f"line of {size} bytes exceeds the {MAX_LINE_BYTES}-byte limit"
                    for _, _, size in batch.too_long
                ],
                pa.string(),
            ),
            "raw": pa.array([head for _, head, _ in batch.too_long], pa.string()),
            "raw_length": pa.array([size for _, _, size in batch.too_long], pa.int64()),
        },
        schema=REJECT_SCHEMA,
    )


_PATTERNS: dict[str, str] = {
    "count": r"^\s*\d{1,18}\s*$",
    "port": r"^\s*\d{1,5}\s*$",
    "float": r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$",
    "epoch": r"^\s*\d{1,12}(\.\d{1,9})?\s*$",
    "iso": r"^\s*\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)?\s*$",
    "bool": r"^\s*(T|F|true|false|TRUE|FALSE|True|False|1|0)\s*$",
}


def _as_time(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(timestamps, ok) from epoch seconds or ISO 8601 text (no zone means UTC)."""
    if pa.types.is_timestamp(col.type):
        return pc.cast(col, pa.timestamp("us", tz="UTC")), pc.is_valid(col)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        col = pc.cast(col, pa.string())
    epoch_ok = pc.fill_null(pc.match_substring_regex(col, _PATTERNS["epoch"]), False)
    iso_ok = pc.fill_null(pc.match_substring_regex(col, _PATTERNS["iso"]), False)
    micros = pc.cast(
        pc.round(pc.multiply(pc.cast(pc.if_else(epoch_ok, col, None), pa.float64()), 1e6)),
        pa.int64(),
    )
    from_epoch = pc.cast(micros, pa.timestamp("us", tz="UTC"))
    iso_text = pc.replace_substring_regex(
        pc.if_else(iso_ok, pc.utf8_trim_whitespace(col), None), r"^(\S+) (\S+)$", r"\1T\2"
    )
    # Windows writes 7 fraction digits, some exporters 9: keep the microseconds Arrow stores.
    iso_text = pc.replace_substring_regex(iso_text, r"(\.\d{6})\d+", r"\1")
    iso_text = pc.if_else(
        pc.match_substring_regex(iso_text, r"(Z|[+-]\d\d:?\d\d)$"),
        iso_text,
        pc.binary_join_element_wise(iso_text, "Z", ""),
    )
    from_iso = pc.cast(iso_text, pa.timestamp("us", tz="UTC"))
    return pc.coalesce(from_epoch, from_iso), pc.or_(epoch_ok, iso_ok)


def _convert_one(col: pa.Array, kind: Kind) -> tuple[pa.Array, pa.Array]:
    """(typed values, ok mask) for one column; ok is false where a non-null value did not fit."""
    if kind == "time":
        return _as_time(col)
    if kind == "addr":
        text = pc.utf8_slice_codeunits(pc.cast(col, pa.string()), 0, 64)
        key = netaddr.keys(text)
        return text, pc.is_valid(key)
    if kind == "str":
        return pc.utf8_slice_codeunits(pc.cast(col, pa.string()), 0, MAX_FIELD_CHARS), pc.is_valid(
            col
        )
    target = {"count": pa.int64(), "port": pa.int32(), "float": pa.float64(), "bool": pa.bool_()}[
        kind
    ]
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        typed = pc.cast(col, target)
        ok = pc.is_valid(typed)
    else:
        ok = pc.fill_null(pc.match_substring_regex(col, _PATTERNS[kind]), False)
        clean = pc.utf8_trim_whitespace(pc.if_else(ok, col, None))
        if kind == "bool":
            typed = pc.is_in(clean, pa.array(["T", "true", "TRUE", "True", "1"]))
            typed = pc.if_else(ok, typed, None)
        else:
            typed = pc.cast(clean, target)
    if kind == "port":
        in_range = pc.fill_null(pc.less_equal(typed, 65535), True)
        ok = pc.and_(ok, in_range)
        typed = pc.if_else(ok, typed, None)
    return typed, ok


def convert(
    columns: Mapping[str, tuple[str, pa.Array, Kind]], nulls: tuple[str, ...] = ("-", "", "(empty)")
) -> tuple[dict[str, pa.Array], pa.Array]:
    """Convert raw columns to typed ones, and say per row which value (if any) did not fit.

    ``columns`` maps an output name to (the field's name in the source, raw values, kind).
    Text equal to one of ``nulls`` means "not set". Returns the typed columns and a reason
    column: null for good rows, else ``"<field>: <value> is not a <kind>"`` for the first bad one.
    """
    typed: dict[str, pa.Array] = {}
    reason: pa.Array | None = None
    null_set = pa.array(list(nulls), pa.string())
    for out, (field_name, raw, kind) in columns.items():
        if isinstance(raw, pa.ChunkedArray):
            raw = raw.combine_chunks()
        if pa.types.is_string(raw.type):
            raw = pc.if_else(pc.is_in(raw, null_set), None, raw)
        values, ok = _convert_one(raw, kind)
        typed[out] = values
        bad = pc.and_(pc.is_valid(raw), pc.invert(pc.fill_null(ok, False)))
        shown = pc.utf8_slice_codeunits(pc.cast(raw, pa.string()), 0, 80)
        message = pc.binary_join_element_wise(
            f"{field_name}: ", shown, f" is not a valid {_KIND_WORDS[kind]}", ""
        )
        this = pc.if_else(bad, message, None)
        reason = this if reason is None else pc.coalesce(reason, this)
    if reason is None:
        reason = pa.nulls(0, pa.string())
    return typed, reason


_KIND_WORDS: dict[str, str] = {
    "time": "time (epoch seconds or ISO 8601)",
    "count": "count",
    "port": "port (0-65535)",
    "float": "number",
    "str": "string",
    "addr": "IP address",
    "bool": "boolean",
}
