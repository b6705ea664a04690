"""The systemd journal's JSON export (``journalctl -o json``) of sshd.

Each entry is one JSON object per line with ``MESSAGE``, ``SYSLOG_IDENTIFIER``, ``_PID``,
``_HOSTNAME`` and ``__REALTIME_TIMESTAMP`` (microseconds since the epoch, UTC). DuckDB reads a
whole batch of entries at once and writes each as the RFC 5424 line syslog would have carried
(exact UTC time, host, program, pid, message), which the ``sshd`` line format then parses: the
message rules are exactly those of ``auth.log``. Entries of other programs (a full journal
export) are counted as skipped by that format; quarantined entries keep their JSON text.
A ``MESSAGE`` that journald stored as a byte array (not UTF-8) is quarantined.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.auth.json_records import is_json_lines, iter_records
from orbwatch.sources.auth.sshd import Sshd
from orbwatch.sources.base import Parsed, Source, rejects
from orbwatch.sources.inputs import Input
from orbwatch.sources.syslog import LineSource, empty_rows

_FIELD = "json_extract_string(record::JSON, '$.{}')"
_AS_SYSLOG = f"""
SELECT source_offset, record,
       '<0>1 ' || strftime(make_timestamp(TRY_CAST({_FIELD.format("__REALTIME_TIMESTAMP")}
                                                   AS BIGINT)), '%Y-%m-%dT%H:%M:%S.%fZ')
       || ' ' || coalesce(nullif(regexp_replace({_FIELD.format("_HOSTNAME")}, '\\s', '', 'g'),
                                 ''), '-')
       || ' ' || coalesce(nullif(regexp_replace(coalesce({_FIELD.format("SYSLOG_IDENTIFIER")},
                                                         {_FIELD.format("_COMM")}), '\\s', '',
                                                'g'), ''), '-')
       || ' ' || coalesce({_FIELD.format("_PID")}, '-') || ' - - '
       || replace(replace({_FIELD.format("MESSAGE")}, chr(10), ' '), chr(13), ' ') AS line,
       json_type(record::JSON, '$.MESSAGE') AS message_type
FROM records
"""


class JournaldJson(Source):
    """``journalctl -o json`` export; entries are parsed by a syslog line format (sshd)."""

    name: ClassVar[str] = "journald_json"
    table: ClassVar[str] = "logins"
    description: ClassVar[str] = "systemd journal JSON export (journalctl -o json) of sshd"
    accepts_clock: ClassVar[bool] = True
    #: The line format that reads the entries' messages.
    line_source: ClassVar[type[LineSource]] = Sshd

    def __init__(self, *, timezone: str = "UTC", year: int | None = None) -> None:
        self.lines = self.line_source(timezone=timezone, year=year)

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        if not is_json_lines(head):
            return False
        first = next(line for line in head.splitlines() if line.strip())
        entry = json.loads(first)
        return "__REALTIME_TIMESTAMP" in entry and "MESSAGE" in entry

    def parse(self, inp: Input) -> Iterator[Parsed]:
        con = duckdb.connect()
        try:
            for records in iter_records(inp, con):
                if records.rejects.num_rows:
                    yield Parsed(empty_rows(self.table), records.rejects)
                if records.rows.num_rows:
                    yield self._entries(con, records.rows)
        finally:
            con.close()

    def _entries(self, con: duckdb.DuckDBPyConnection, records: pa.Table) -> Parsed:
        con.register("records", records)
        try:
            table = con.execute(_AS_SYSLOG).fetch_arrow_table()
        finally:
            con.unregister("records")
        text = pc.equal(pc.fill_null(table["message_type"], "VARCHAR"), "VARCHAR")
        usable = pc.and_(text, pc.is_valid(table["line"]))
        bad = table.filter(pc.invert(usable))
        not_entries = rejects(
            bad["source_offset"],
            pa.repeat("not a journal entry with a text MESSAGE and a time", bad.num_rows),
            bad["record"],
        )
        good = table.filter(usable)
        parsed = self.lines.parse_lines(good.select(["source_offset", "line"]))
        # Quarantined entries keep their original JSON, not the rebuilt syslog line.
        wanted = pc.index_in(parsed.rejects["source_offset"], good["source_offset"])
        original = pc.take(good["record"], wanted)
        line_rejects = parsed.rejects.set_column(
            parsed.rejects.column_names.index("raw"), "raw", pc.cast(original, pa.string())
        )
        line_rejects = rejects(
            line_rejects["source_offset"], line_rejects["reason"], line_rejects["raw"]
        )
        return Parsed(parsed.rows, pa.concat_tables([not_entries, line_rejects]), parsed.skipped)
