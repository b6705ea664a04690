"""JSON exports of identity products, read in bulk, and a declarative JSON-to-logins source.

Identity providers export their logs in a few shapes, all handled here once:

* JSON lines, one event per line (Winlogbeat, Wazuh ``alerts.json``, Azure storage exports,
  SIEM exports). ``source_offset`` is the line number.
* One JSON document: an array of events (Okta ``/api/v1/logs``, Cribl samples), or an object
  holding the array under ``value`` (Microsoft Graph), ``records`` (Azure Monitor
  diagnostic export), ``response.authlogs`` / ``response`` (Duo Admin API v2 / v1), ``items``
  or ``data``, or a single event. ``source_offset`` is the event's 1-based position in the
  array. The document is parsed by DuckDB in one bulk pass, bounded by
  :data:`MAX_DOCUMENT_BYTES`; larger exports must be JSON lines.
* Events wrapped by a log pipeline, with the original text in ``_raw`` (Cribl, Splunk
  exports): the record is the ``_raw`` text.

A :class:`JsonLoginSource` declares, per ``logins`` column, a DuckDB SQL expression over the
event ``r`` (type JSON); DuckDB evaluates every expression over a whole batch of events.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.errors import InputError
from orbwatch.sources.auth.logins import build_logins
from orbwatch.sources.base import Parsed, Source, rejects, too_long_rejects
from orbwatch.sources.inputs import BATCH_LINES, Input, read_all_lines

MAX_DOCUMENT_BYTES = 256 << 20
RAW_HEAD = 4_096
RECORD_LISTS = ("value", "records", "response.authlogs", "response", "items", "data")


def is_json_lines(head: bytes) -> bool:
    """True when the input's first non-blank line is a complete JSON object on its own."""
    for line in head.splitlines():
        if line.strip():
            try:
                return isinstance(json.loads(line), dict)
            except ValueError:
                return False
    return False


def _unwrap(column: str) -> str:
    """SQL: the record itself, or the text of its ``_raw`` member when it has one."""
    return (
        f"coalesce(CASE WHEN json_valid({column}) AND json_type({column}::JSON) = 'OBJECT' "
        f"THEN json_extract_string({column}::JSON, '$._raw') END, {column})"
    )


def iter_records(inp: Input, con: duckdb.DuckDBPyConnection) -> Iterator[Parsed]:
    """Batches of ``(source_offset, record)`` text rows (as ``Parsed.rows``) with rejects."""
    if is_json_lines(inp.head()):
        for batch in read_all_lines(inp):
            if batch.too_long:
                yield Parsed(pa.table({}), too_long_rejects(batch))
            con.register("batch", batch.table)
            try:
                table = con.execute(
                    f"SELECT source_offset, {_unwrap('line')} AS record FROM batch "
                    "WHERE trim(line) <> ''"
                ).fetch_arrow_table()
            finally:
                con.unregister("batch")
            yield Parsed(table, _no_rejects())
        return
    yield from _document_records(inp, con)


def _document_records(inp: Input, con: duckdb.DuckDBPyConnection) -> Iterator[Parsed]:
    path = inp.local_file()
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"{inp.display}: a single JSON document of {size} bytes exceeds the "
            f"{MAX_DOCUMENT_BYTES}-byte limit; export it as JSON lines (one event per line)"
        )
    lists = ", ".join(
        f"CASE WHEN json_type(doc, '$.{p}') = 'ARRAY' THEN json_extract(doc, '$.{p}') END"
        for p in RECORD_LISTS
    )
    try:
        table = con.execute(
            f"""
            WITH text AS (SELECT content FROM read_text(?)),
            doc AS (SELECT CASE WHEN json_valid(content) THEN content::JSON END AS doc FROM text),
            list AS (
              SELECT CASE WHEN json_type(doc) = 'ARRAY' THEN doc
                          ELSE coalesce({lists}, json_array(doc)) END AS items
              FROM doc WHERE doc IS NOT NULL),
            rows AS (
              SELECT unnest(generate_series(1, json_array_length(items)::BIGINT)) AS source_offset,
                     unnest(json_extract(items, '$[*]')) AS item
              FROM list)
            SELECT source_offset,
                   CASE WHEN json_type(item) = 'VARCHAR' THEN item->>'$'
                        ELSE {_unwrap("item::VARCHAR")} END AS record
            FROM rows ORDER BY source_offset
            """,
            [str(path)],
        ).fetch_arrow_table()
    except duckdb.Error as exc:
        raise InputError(f"{inp.display}: cannot read JSON: {exc}") from None
    if table.num_rows == 0:
        head = inp.head(RAW_HEAD)
        reason = "not a JSON document (or one with no events)"
        yield Parsed(
            pa.table({}),
            rejects(
                pa.array([1], pa.int64()),
                pa.array([reason]),
                pa.array([head.decode("utf-8", "replace")]),
            ),
        )
        return
    for start in range(0, table.num_rows, BATCH_LINES):
        yield Parsed(table.slice(start, BATCH_LINES), _no_rejects())


def _no_rejects() -> pa.Table:
    return rejects(pa.array([], pa.int64()), pa.array([], pa.string()), pa.array([], pa.string()))


class JsonLoginSource(Source):
    """A JSON identity log, mapped to ``logins`` by SQL expressions over each event ``r``.

    Subclasses set :attr:`columns` (logins column -> SQL expression), :attr:`is_login` (SQL
    predicate: the event is an authentication event) and :attr:`not_login` (SQL text: why an
    event is skipped otherwise).
    """

    table: ClassVar[str] = "logins"
    columns: ClassVar[dict[str, str]]
    is_login: ClassVar[str]
    not_login: ClassVar[str]
    #: SQL FROM clause that yields the event ``r`` from a record's text ``record``.
    event_from: ClassVar[str] = "record::JSON"

    def parse(self, inp: Input) -> Iterator[Parsed]:
        con = duckdb.connect()
        try:
            for records in iter_records(inp, con):
                if records.rejects.num_rows or not records.rows.num_rows:
                    yield Parsed(pa.table({}), records.rejects)
                if records.rows.num_rows:
                    yield self.parse_records(con, records.rows)
        finally:
            con.close()

    def parse_records(self, con: duckdb.DuckDBPyConnection, records: pa.Table) -> Parsed:
        """Logins from a table of ``(source_offset, record)`` texts."""
        selects = ", ".join(
            f'CAST(({expr}) AS VARCHAR) AS "{name}"' for name, expr in self.columns.items()
        )
        con.register("records", records)
        try:
            table = con.execute(
                f"""
                WITH parsed AS (
                  SELECT source_offset, record,
                         CASE WHEN coalesce(json_valid(record), false)
                              THEN {self.event_from} END AS r
                  FROM records)
                SELECT source_offset, record,
                       r IS NOT NULL AND json_type(r) = 'OBJECT' AS valid,
                       CASE WHEN NOT coalesce(({self.is_login}), false)
                            THEN left(CAST(({self.not_login}) AS VARCHAR), 200) END AS skip,
                       {selects}
                FROM parsed
                """
            ).fetch_arrow_table()
        finally:
            con.unregister("records")
        valid = pc.fill_null(table["valid"].combine_chunks(), False)
        invalid = pc.invert(valid)
        not_json = rejects(
            table["source_offset"].combine_chunks().filter(invalid),
            pa.repeat(f"not a {self.description} JSON object", pc.sum(invalid).as_py() or 0),
            table["record"].combine_chunks().filter(invalid),
        )
        good = table.filter(valid)
        parsed = build_logins(
            {name: good[name].combine_chunks() for name in self.columns},
            good["source_offset"].combine_chunks(),
            good["record"].combine_chunks(),
            good["skip"].combine_chunks(),
        )
        return Parsed(parsed.rows, pa.concat_tables([not_json, parsed.rejects]), parsed.skipped)


def sql_case(column: str, mapping: dict[str, str], default: str = "NULL") -> str:
    """SQL ``CASE column WHEN key THEN value ... END`` from a Python table of codes."""
    whens = " ".join(
        f"WHEN '{key}' THEN '{value.replace(chr(39), chr(39) * 2)}'"
        for key, value in mapping.items()
    )
    return f"CASE {column} {whens} ELSE {default} END"


def text(path: str, event: str = "r") -> str:
    """SQL: the member at a dotted ``path`` of the event, as text (null when absent).

    The function form rather than DuckDB's ``->>`` operator, whose precedence is lower than
    ``IN``, ``LIKE`` and ``=`` and so silently changes what a predicate means.
    """
    return f"json_extract_string({event}, '$.{path}')"
