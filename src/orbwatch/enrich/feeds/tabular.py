"""Tabular feeds: CSV (abuse.ch Feodo Tracker style) and JSON arrays of flat records.

Columns are found by name: the indicator in ``indicator``, ``ip``, ``ip_address``, ``dst_ip``,
``ioc`` or ``value``; first and last sighting in ``first_seen``/``first_seen_utc`` and
``last_seen``/``last_online``; ``malware``, ``description`` or ``comment`` become the comment.
``--map field=column`` overrides or completes this (``column`` may be a 1-based number, which is
how a CSV without a header row is mapped). Mappable fields: ``indicator``, ``first_seen``,
``last_seen``, ``valid_until``, ``confidence``, ``class``, ``tags``, ``comment``.

abuse.ch Feodo Tracker lists botnet C2 servers, so a file with its ``c2_status`` column gets
the class ``c2`` unless ``--class`` says otherwise. A CSV whose first data row starts with an
address has no header: its columns are numbered (Bambenek's C2 master list).

Parsing is pyarrow's CSV reader (multi-line quoted values are not accepted, so each record is
one line and keeps its line number); ``#`` comment lines around the table are skipped.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from orbwatch.enrich.feeds.base import (
    MAX_COMMENT_CHARS,
    MAX_RECORDS,
    FeedBatch,
    FeedOptions,
    FeedReader,
    indicator_table,
    parse_numbers,
    parse_times,
    reject_table,
)
from orbwatch.errors import InputError
from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input, read_all_lines

FIELDS = (
    "indicator",
    "first_seen",
    "last_seen",
    "valid_until",
    "confidence",
    "class",
    "tags",
    "comment",
)
KNOWN_COLUMNS: dict[str, tuple[str, ...]] = {
    # "1": the first column of a CSV without a header row.
    "indicator": ("indicator", "ip", "ip_address", "ipaddress", "dst_ip", "ioc", "value", "1"),
    "first_seen": ("first_seen", "first_seen_utc", "firstseen", "date_added"),
    "last_seen": ("last_seen", "last_online", "lastseen", "last_seen_utc"),
    "valid_until": ("valid_until", "expires", "expiration"),
    "confidence": ("confidence",),
    "class": ("class", "intel_class"),
    "tags": ("tags",),
    "comment": ("malware", "description", "comment"),
}
_STARTS_WITH_ADDRESS = re.compile(r'^"?[0-9a-fA-F]*[.:][0-9a-fA-F.:]+(/\d+)?"?,')


def _data_lines(inp: Input) -> pa.Table:
    """The non-blank, non-``#`` lines with their line numbers."""
    parts = []
    for batch in read_all_lines(inp):
        if batch.too_long:
            line_no = batch.too_long[0][0]
            raise InputError(f"{inp.display}: line {line_no} is too long for a CSV feed")
        lines = batch.table
        stripped = pc.utf8_trim_whitespace(lines["line"])
        keep = pc.and_(pc.not_equal(stripped, ""), pc.invert(pc.starts_with(stripped, "#")))
        parts.append(lines.filter(keep))
    return pa.concat_tables(parts) if parts else pa.table({"source_offset": [], "line": []})


def _read_csv(inp: Input) -> tuple[pa.Table, pa.Array, list[tuple[int, str, str, int]]]:
    """(all-string columns, line number of each row, rows with the wrong number of fields)."""
    lines = _data_lines(inp)
    if lines.num_rows == 0:
        return pa.table({}), pa.array([], pa.int64()), []
    texts = lines["line"].to_pylist()
    offsets = lines["source_offset"]
    headerless = bool(_STARTS_WITH_ADDRESS.match(texts[0]))
    bad_rows: list[int] = []

    def invalid(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row.number)
        return "skip"

    table = pacsv.read_csv(
        io.BytesIO(("\n".join(texts) + "\n").encode()),
        read_options=pacsv.ReadOptions(use_threads=False, autogenerate_column_names=headerless),
        parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={}, strings_can_be_null=True, auto_dict_encode=False
        ),
    )
    table = table.cast(pa.schema([(n, pa.string()) for n in table.column_names]))
    if headerless:
        table = table.rename_columns([str(i + 1) for i in range(table.num_columns)])
    first_data = 0 if headerless else 1
    bad_index = {n - 1 for n in bad_rows}  # InvalidRow.number is 1-based over all lines
    rows = [i for i in range(first_data, len(texts)) if i not in bad_index]
    rejects = [
        (offsets[i].as_py(), "wrong number of fields", texts[i][:RAW_KEEP_CHARS], len(texts[i]))
        for i in sorted(bad_index)
    ]
    return table, pc.take(offsets, pa.array(rows, pa.int64())), rejects


def _read_json(inp: Input) -> tuple[pa.Table, pa.Array, list[tuple[int, str, str, int]]]:
    """A JSON array of flat objects (record numbers as offsets); nested values become JSON."""
    records = load_json(inp)
    if not isinstance(records, list):
        raise InputError(f"{inp.display}: expected a JSON array of records")
    rows: list[dict[str, str | None]] = []
    offsets: list[int] = []
    rejects = []
    for number, record in enumerate(records[:MAX_RECORDS], start=1):
        if not isinstance(record, dict):
            raw = json.dumps(record)[:RAW_KEEP_CHARS]
            rejects.append((number, "record is not a JSON object", raw, len(raw)))
            continue
        rows.append({str(k): _text(v) for k, v in record.items()})
        offsets.append(number)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    table = pa.table({c: pa.array([r.get(c) for r in rows], pa.string()) for c in columns})
    return table, pa.array(offsets, pa.int64()), rejects


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)


def load_json(inp: Input) -> Any:
    """The parsed JSON document of an input, with a clear error when it is not JSON."""
    try:
        with inp.open_binary() as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{inp.display}: not valid JSON: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{inp.display}: cannot read: {exc}") from None


def resolve_columns(columns: list[str], mapping: dict[str, str], display: str) -> dict[str, str]:
    """Which input column feeds each field: ``--map`` first, then the known names."""
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise InputError(f"--map {unknown[0]}=...: unknown field; use one of {', '.join(FIELDS)}")
    lowered = {c.lower(): c for c in columns}
    chosen: dict[str, str] = {}
    for fld in FIELDS:
        if fld in mapping:
            if mapping[fld] not in columns:
                raise InputError(
                    f"{display}: --map {fld}={mapping[fld]}: no such column "
                    f"(columns: {', '.join(columns[:20])})"
                )
            chosen[fld] = mapping[fld]
            continue
        found = next((lowered[n] for n in KNOWN_COLUMNS[fld] if n in lowered), None)
        if found is not None:
            chosen[fld] = found
    if "indicator" not in chosen:
        raise InputError(
            f"{display}: no indicator column found (columns: {', '.join(columns[:20])}); "
            "name it with --map indicator=COLUMN"
        )
    return chosen


class TabularReader(FeedReader):
    """CSV with a header (or numbered columns) and JSON arrays of records."""

    name: ClassVar[str] = "csv"
    source_format: ClassVar[str] = "intel_csv"
    description: ClassVar[str] = "CSV or JSON records (abuse.ch Feodo style), --map to name columns"

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        text = head.decode("utf-8", "replace").lstrip()
        if text.startswith("["):
            return True
        first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
        return "," in first

    def read(self, inp: Input, options: FeedOptions) -> FeedBatch:
        is_json = inp.head(256).lstrip().startswith(b"[")
        table, offsets, rejects = _read_json(inp) if is_json else _read_csv(inp)
        if table.num_rows == 0:
            return FeedBatch(indicator_table({}, 0), reject_table(rejects))
        chosen = resolve_columns(table.column_names, options.mapping, inp.display)

        def column(fld: str) -> pa.Array | None:
            return table[chosen[fld]] if fld in chosen else None

        default_class = "c2" if "c2_status" in table.column_names else None
        intel_class = column("class")
        if intel_class is None and default_class is not None:
            intel_class = pa.array([default_class] * table.num_rows, pa.string())
        comment = column("comment")
        columns: dict[str, Any] = {
            "indicator": pc.utf8_trim_whitespace(column("indicator")),
            "source_offset": offsets,
            "intel_class": intel_class,
            "tags": column("tags"),
            "comment": None
            if comment is None
            else pc.utf8_slice_codeunits(comment, 0, MAX_COMMENT_CHARS),
        }
        for fld in ("first_seen", "last_seen", "valid_until"):
            values = column(fld)
            columns[fld] = None if values is None else parse_times(values)
        confidence = column("confidence")
        columns["confidence"] = None if confidence is None else parse_numbers(confidence)
        indicators = indicator_table(columns, table.num_rows)
        missing = pc.is_null(indicators["indicator"])
        rejects += [
            (o, "record has no indicator value", "", 0)
            for o in indicators["source_offset"].filter(missing).to_pylist()
        ]
        return FeedBatch(
            indicators.filter(pc.invert(missing)),
            reject_table(rejects),
            invalid_reason="indicator column is not an IP address, CIDR or domain",
            allow_domains=True,
        )
