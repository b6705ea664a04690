"""What the VPN line formats share beyond the syslog layer and the login rule tables.

* :func:`given`: the placeholders products write for "no value" (``N/A``, ``-``, ``(null)``)
  as null, so that a FortiGate ``user="N/A"`` does not become an account name.
* :func:`extended`: a :func:`~orbwatch.sources.auth.rules.login_format` with extra regexes and
  computed columns, for the few values a rule table cannot express (ASA's ``Bytes xmt`` plus
  ``Bytes rcv``, strongSwan's peer address carried from an earlier line of the same IKE SA).
* :class:`WrappedLineSource`: a line format whose lines may also arrive wrapped in a log
  pipeline's JSON export (Cribl, Splunk: the original line in ``_raw``), as vendors' sample
  logs and SIEM exports often are. The JSON is read in bulk by the shared JSON reader and the
  ``_raw`` texts go through the same line format.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from typing import Literal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.auth.json_records import iter_records
from orbwatch.sources.auth.logins import NULL_TEXT
from orbwatch.sources.base import Parsed
from orbwatch.sources.inputs import Input
from orbwatch.sources.syslog import (
    Clock,
    Field,
    LineFormat,
    LineSource,
    TimeField,
    empty_rows,
)

# A "_raw" member in the first bytes of a JSON export: its string value, escapes kept.
_RAW_MEMBER = re.compile(rb'"_raw"\s*:\s*"((?:[^"\\]|\\.){0,65536})"')


# ctime() stamps that lead a line ("Sun Dec 15 14:11:25 2024 ..."): OpenVPN's own log file and
# OpenWrt's logread write them, and the syslog header parser does not know them.
CTIME = TimeField(
    pl.col("line")
    .str.extract(r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2} +\d{1,2} [\d:]{8} \d{4}) ", 1)
    .str.replace_all(" +", " "),
    "%b %d %H:%M:%S %Y",
)


def given(value: pl.Expr) -> pl.Expr:
    """``value`` with the products' "no value" placeholders (``N/A``, ``-``...) as null."""
    text = value.str.strip_chars()
    return pl.when(text.is_in(list(NULL_TEXT))).then(pl.lit(None, pl.String)).otherwise(text)


def extended(
    fmt: LineFormat,
    patterns: tuple[str, ...] = (),
    fields: Mapping[str, Field] | None = None,
    *,
    on: Literal["message", "line"] = "message",
    time: tuple[TimeField, ...] = (),
) -> LineFormat:
    """``fmt`` with more regexes (their groups usable in ``fields``) and replaced columns.

    ``on="line"`` applies every regex to the whole line: for products whose tag the syslog
    header would take for a program name (ASA's ``host %ASA-6-113039: ...``) or that write no
    header at all (OpenVPN's own log file).
    """
    return dataclasses.replace(
        fmt,
        patterns=(*fmt.patterns, *patterns),
        fields={**fmt.fields, **(fields or {})},
        on=on,
        time=(*fmt.time, *time),
    )


def wrapped_lines(head: bytes) -> list[str] | None:
    """The original lines in the head of a pipeline JSON export, or None when it is not one."""
    if head.lstrip()[:1] not in (b"[", b"{"):
        return None
    found = []
    for raw in _RAW_MEMBER.findall(head):
        try:
            found.append(json.loads(b'"' + raw + b'"'))
        except ValueError:
            continue
    return found or None


class WrappedLineSource(LineSource):
    """A line format that also reads its lines out of a pipeline JSON export's ``_raw``."""

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        lines = wrapped_lines(head)
        if lines is None:
            return super().sniff(head, filename)
        return super().sniff("\n".join(lines).encode("utf-8"), filename)

    def parse(self, inp: Input) -> Iterator[Parsed]:
        if wrapped_lines(inp.head()) is None:
            yield from super().parse(inp)
            return
        clock = Clock.for_input(inp, self.timezone, self.year)
        con = duckdb.connect()
        try:
            for records in iter_records(inp, con):
                if records.rejects.num_rows:
                    yield Parsed(empty_rows(self.table), records.rejects)
                if records.rows.num_rows:
                    # A record is one line: a newline inside _raw must not split it.
                    lines = pa.table(
                        {
                            "source_offset": records.rows["source_offset"],
                            "line": pc.replace_substring(records.rows["record"], "\n", " "),
                        }
                    )
                    yield self.parse_lines(lines, clock)
        finally:
            con.close()
