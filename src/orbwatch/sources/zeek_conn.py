"""Zeek ``conn.log``: classic TSV (with ``#fields`` headers) and JSON lines.

Zeek is the most common passive sensor in front of edge devices, and its connection log is
the richest flow record a SOC usually has (bytes and packets per direction, connection state,
detected service). Both encodings map onto ``flows`` with Zeek's originator as ``src``:

==================  =================
Zeek field          flows column
==================  =================
ts                  ts_start
ts + duration       ts_end
id.orig_h / _p      src_ip / src_port
id.resp_h / _p      dst_ip / dst_port
proto, service      protocol, service
orig/resp_bytes     src/dst_bytes
orig/resp_pkts      src/dst_packets
conn_state          conn_state
uid                 flow_uid
==================  =================

The TSV header may repeat inside a file (concatenated logs) and may change the field list;
each block is parsed with its own header. Unset (``-``) and empty (``(empty)``) markers become
nulls. A data line before any ``#fields`` header, with the wrong number of fields, or with a
value of the wrong type goes to quarantine with the reason.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.base import Kind, Parsed, Source, convert, rejects, too_long_rejects
from orbwatch.sources.inputs import Input, read_all_lines

# Zeek field -> (flows column, kind). Fields not listed are ignored.
FIELD_MAP: dict[str, tuple[str, Kind]] = {
    "ts": ("ts_start", "time"),
    "uid": ("flow_uid", "str"),
    "id.orig_h": ("src_ip", "addr"),
    "id.orig_p": ("src_port", "port"),
    "id.resp_h": ("dst_ip", "addr"),
    "id.resp_p": ("dst_port", "port"),
    "proto": ("protocol", "str"),
    "service": ("service", "str"),
    "duration": ("duration_s", "float"),
    "orig_bytes": ("src_bytes", "count"),
    "resp_bytes": ("dst_bytes", "count"),
    "orig_pkts": ("src_packets", "count"),
    "resp_pkts": ("dst_packets", "count"),
    "conn_state": ("conn_state", "str"),
}
REQUIRED = ("ts", "id.orig_h", "id.resp_h")


class _Header:
    """The state carried by Zeek's ``#`` header lines."""

    def __init__(self) -> None:
        self.separator = "\t"
        self.unset = "-"
        self.empty = "(empty)"
        self.fields: list[str] | None = None

    def read(self, line: str) -> None:
        if line.startswith("#separator "):
            self.separator = codecs.decode(line[len("#separator ") :], "unicode_escape")
            return
        name, _, value = line[1:].partition(self.separator)
        if name == "fields":
            self.fields = value.split(self.separator)
        elif name == "unset_field":
            self.unset = value
        elif name == "empty_field":
            self.empty = value


def _to_flows(
    raw: dict[str, pa.Array], offsets: pa.Array, lines: pa.Array, nulls: tuple[str, ...]
) -> Parsed:
    """Shared by both encodings: raw text columns (by Zeek name) -> flows rows and rejects."""
    n = len(offsets)
    missing = [f for f in REQUIRED if f not in raw]
    if missing:
        reason = f"conn.log record lacks required field(s) {', '.join(missing)}"
        return Parsed(pa.table({}), rejects(offsets, pa.repeat(reason, n), lines))
    columns = {
        out: (zeek, raw[zeek], kind) for zeek, (out, kind) in FIELD_MAP.items() if zeek in raw
    }
    typed, reason = convert(columns, nulls=nulls)
    for zeek in REQUIRED:
        # The typed column, not the raw one: TSV carries "unset" as the text "-".
        absent = pc.if_else(pc.is_null(typed[FIELD_MAP[zeek][0]]), f"{zeek}: missing", None)
        reason = pc.coalesce(reason, absent)
    good = pc.is_null(reason)
    rows = pa.table(typed).filter(good)
    duration = (
        rows["duration_s"]
        if "duration_s" in rows.column_names
        else pa.nulls(rows.num_rows, pa.float64())
    )
    micros = pc.cast(pc.round(pc.multiply(pc.fill_null(duration, 0.0), 1e6)), pa.int64())
    start_us = pc.cast(rows["ts_start"], pa.int64())
    ts_end = pc.cast(pc.add(start_us, micros), pa.timestamp("us", tz="UTC"))
    rows = rows.append_column("ts_end", ts_end)
    rows = rows.append_column("source_offset", offsets.filter(good))
    rows = rows.append_column("action", pa.repeat("unknown", rows.num_rows))
    if "protocol" in rows.column_names:
        rows = rows.set_column(
            rows.column_names.index("protocol"), "protocol", pc.utf8_lower(rows["protocol"])
        )
    bad = pc.invert(good)
    return Parsed(rows, rejects(offsets.filter(bad), reason.filter(bad), lines.filter(bad)))


class ZeekConnTsv(Source):
    """Zeek conn.log in Zeek's own tab-separated format."""

    name: ClassVar[str] = "zeek_conn"
    table: ClassVar[str] = "flows"
    description: ClassVar[str] = "Zeek conn.log, tab-separated with #fields header"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        text = head[:4096].decode("utf-8", "replace")
        if not text.startswith("#separator"):
            return False
        path = re.search(r"^#path\s+(\S+)\s*$", text, re.M)
        if path:
            return path.group(1) in ("conn", "open_conn")
        return bool(re.search(r"^#fields\s+ts\s+uid\s+id\.orig_h.*\sconn_state\s", text, re.M))

    def parse(self, inp: Input) -> Iterator[Parsed]:
        header = _Header()
        for batch in read_all_lines(inp):
            if batch.too_long:
                yield Parsed(pa.table({}), too_long_rejects(batch))
            yield from self._parse_batch(batch.table, header)

    def _parse_batch(self, table: pa.Table, header: _Header) -> Iterator[Parsed]:
        lines = table["line"].combine_chunks()
        is_header = pc.starts_with(lines, "#").to_numpy(zero_copy_only=False)
        header_positions = is_header.nonzero()[0].tolist()
        start = 0
        for pos in [*header_positions, len(lines)]:
            if pos > start:
                yield self._parse_block(table.slice(start, pos - start), header)
            if pos < len(lines):
                header.read(lines[pos].as_py())
            start = pos + 1

    def _parse_block(self, block: pa.Table, header: _Header) -> Parsed:
        offsets = block["source_offset"].combine_chunks()
        lines = block["line"].combine_chunks()
        blank = pc.equal(pc.utf8_trim_whitespace(lines), "")
        if pc.all(blank).as_py():
            return Parsed(pa.table({}), rejects(offsets[:0], pa.array([], pa.string()), lines[:0]))
        offsets, lines = offsets.filter(pc.invert(blank)), lines.filter(pc.invert(blank))
        if header.fields is None:
            reason = pa.repeat("data line before any #fields header", len(lines))
            return Parsed(pa.table({}), rejects(offsets, reason, lines))
        parts = pc.split_pattern(lines, header.separator)
        counts = pc.list_value_length(parts)
        width = len(header.fields)
        fits = pc.equal(counts, width)
        wrong = pc.invert(fits)
        bad_width = rejects(
            offsets.filter(wrong),
            pc.binary_join_element_wise(
                f"expected {width} fields, found ",
                pc.cast(counts.filter(wrong), pa.string()),
                " (truncated or malformed line)",
                "",
            ),
            lines.filter(wrong),
        )
        parts, offsets, lines = parts.filter(fits), offsets.filter(fits), lines.filter(fits)
        raw = {
            name: pc.list_element(parts, i)
            for i, name in enumerate(header.fields)
            if name in FIELD_MAP
        }
        parsed = _to_flows(raw, offsets, lines, (header.unset, header.empty, ""))
        return Parsed(parsed.rows, pa.concat_tables([bad_width, parsed.rejects]))


class ZeekConnJson(Source):
    """Zeek conn.log written by Zeek's JSON writer (one object per line)."""

    name: ClassVar[str] = "zeek_conn_json"
    table: ClassVar[str] = "flows"
    description: ClassVar[str] = "Zeek conn.log, JSON lines"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        first = head.lstrip()[:4096].split(b"\n", 1)[0]
        return first.startswith(b"{") and b'"id.orig_h"' in first and b'"id.resp_p"' in first

    def parse(self, inp: Input) -> Iterator[Parsed]:
        con = duckdb.connect()
        try:
            for batch in read_all_lines(inp):
                if batch.too_long:
                    yield Parsed(pa.table({}), too_long_rejects(batch))
                yield self._parse_batch(con, batch.table)
        finally:
            con.close()

    @staticmethod
    def _parse_batch(con: duckdb.DuckDBPyConnection, table: pa.Table) -> Parsed:
        # DuckDB's JSON functions extract every field of every line in one vectorised pass.
        extracts = ", ".join(
            f'CASE WHEN valid THEN json_extract_string(line, \'$."{name}"\') END AS "{name}"'
            for name in FIELD_MAP
        )
        con.register("batch", table)
        try:
            result = con.execute(
                f"SELECT source_offset, line, valid, {extracts} FROM ("
                "  SELECT source_offset, line, coalesce(json_valid(line), false) AS valid"
                "  FROM batch WHERE trim(line) <> '')"
            ).fetch_arrow_table()
        finally:
            con.unregister("batch")
        valid = result["valid"].combine_chunks()
        offsets, lines = result["source_offset"].combine_chunks(), result["line"].combine_chunks()
        invalid = pc.invert(valid)
        bad_offsets = offsets.filter(invalid)
        not_json = rejects(
            bad_offsets,
            pa.repeat("not a JSON object", len(bad_offsets)),
            lines.filter(invalid),
        )
        good = result.filter(valid)
        raw = {name: good[name].combine_chunks() for name in FIELD_MAP}
        offsets, lines = good["source_offset"].combine_chunks(), good["line"].combine_chunks()
        parsed = _to_flows(raw, offsets, lines, ("",))
        return Parsed(parsed.rows, pa.concat_tables([not_json, parsed.rejects]))
