"""Generic flow tables: CSV (any delimiter) and Parquet exports with a column mapping.

Many flow pipelines end in a table: nfdump's ``-o csv``, AWS VPC Flow Logs, SIEM exports,
a data lake's Parquet files. Rather than one parser per exporter, this source maps columns onto
``flows`` by name. Common column names are recognised out of the box (see :data:`ALIASES`);
anything else is mapped with ``--map flows_column=source_column`` (repeatable).

Numbers may be protocol numbers (6) or names (tcp); times may be epoch seconds or ISO 8601.
A CSV row with the wrong number of fields or a value of the wrong type is quarantined with its
record number and the reason; the rest of the file loads.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from orbwatch.errors import InputError
from orbwatch.sources.base import Kind, Parsed, Source, convert, rejects
from orbwatch.sources.inputs import Input

# flows column -> kind of value.
TARGETS: dict[str, Kind] = {
    "ts_start": "time",
    "ts_end": "time",
    "duration_s": "float",
    "src_ip": "addr",
    "src_port": "port",
    "dst_ip": "addr",
    "dst_port": "port",
    "protocol": "str",
    "service": "str",
    "src_bytes": "count",
    "dst_bytes": "count",
    "src_packets": "count",
    "dst_packets": "count",
    "conn_state": "str",
    "action": "str",
    "rule": "str",
    "exporter": "str",
    "flow_uid": "str",
}

# flows column -> source column names recognised without a mapping (compared after lower-casing
# and removing everything that is not a letter or digit).
ALIASES: dict[str, tuple[str, ...]] = {
    "ts_start": (
        "tsstart",
        "ts",
        "timestamp",
        "time",
        "start",
        "starttime",
        "firstswitched",
        "flowstart",
        "stime",
        "datefirstseen",
        "first",
        "ts_start",
    ),
    "ts_end": ("tsend", "end", "endtime", "lastswitched", "flowend", "ltime", "te", "last"),
    "duration_s": ("durations", "duration", "dur", "td"),
    "src_ip": (
        "srcip",
        "srcaddr",
        "src",
        "sourceip",
        "sourceaddress",
        "sa",
        "saddr",
        "idorigh",
        "ipv4srcaddr",
        "ipv6srcaddr",
        "clientip",
    ),
    "dst_ip": (
        "dstip",
        "dstaddr",
        "dst",
        "destinationip",
        "destinationaddress",
        "da",
        "daddr",
        "idresph",
        "ipv4dstaddr",
        "ipv6dstaddr",
        "serverip",
    ),
    "src_port": ("srcport", "sport", "sp", "sourceport", "idorigp", "l4srcport"),
    "dst_port": ("dstport", "dport", "dp", "destinationport", "idrespp", "l4dstport"),
    "protocol": ("protocol", "proto", "pr", "transport"),
    "service": ("service", "app", "application"),
    "src_bytes": ("srcbytes", "bytes", "sbytes", "origbytes", "ibyt", "inbytes", "bytesout"),
    "dst_bytes": ("dstbytes", "dbytes", "respbytes", "obyt", "outbytes", "bytesin"),
    "src_packets": ("srcpackets", "packets", "pkts", "spkts", "origpkts", "ipkt", "inpkts"),
    "dst_packets": ("dstpackets", "dpkts", "resppkts", "opkt", "outpkts"),
    "conn_state": ("connstate", "state", "flags", "flg", "tcpflags", "logstatus"),
    "action": ("action", "verdict", "disposition"),
    "rule": ("rule", "policy", "rulename"),
    "exporter": ("exporter", "sensor", "ra", "router", "interfaceid"),
    "flow_uid": ("flowuid", "uid", "flowid"),
}

IANA_PROTOCOLS = {
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
    "132": "sctp",
}
ACTIONS = {
    "accept": "allow",
    "allow": "allow",
    "permit": "allow",
    "pass": "allow",
    "reject": "deny",
    "deny": "deny",
    "drop": "deny",
    "block": "deny",
}
DELIMITERS = ",\t;| "
# flows columns every row must have (resolve_mapping insists that the input has them).
REQUIRED = ("ts_start", "src_ip", "dst_ip")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve_mapping(columns: list[str], explicit: Mapping[str, str]) -> dict[str, str]:
    """flows column -> source column, from explicit choices first, then the aliases."""
    unknown = set(explicit) - set(TARGETS)
    if unknown:
        raise InputError(
            f"--map names unknown flows columns {sorted(unknown)}; known: {sorted(TARGETS)}"
        )
    missing = {src for src in explicit.values() if src not in columns}
    if missing:
        raise InputError(
            f"--map names columns not in the input: {sorted(missing)}; it has {columns}"
        )
    by_norm = {_norm(c): c for c in columns}
    mapping = dict(explicit)
    taken = set(explicit.values())
    for target, names in ALIASES.items():
        if target in mapping:
            continue
        for alias in (_norm(target), *names):
            col = by_norm.get(_norm(alias))
            if col is not None and col not in taken:
                mapping[target] = col
                taken.add(col)
                break
    lacking = [c for c in REQUIRED if c not in mapping]
    if lacking:
        raise InputError(
            f"cannot find columns for {lacking} among {columns}; "
            "name them with --map flows_column=source_column"
        )
    return mapping


def _finish(
    table: pa.Table, mapping: dict[str, str], offsets: pa.Array, raw_text: pa.Array
) -> Parsed:
    columns = {t: (src, table[src].combine_chunks(), TARGETS[t]) for t, src in mapping.items()}
    typed, reason = convert(columns)
    for target in REQUIRED:
        # A row without a time or an address (AWS "NODATA" rows: "-") is not a flow.
        absent = pc.if_else(pc.is_null(typed[target]), f"{mapping[target]}: missing", None)
        reason = pc.coalesce(reason, absent)
    good = pc.is_null(reason)
    rows = pa.table(typed).filter(good)
    if "protocol" in rows.column_names:
        proto = pc.utf8_lower(pc.utf8_trim_whitespace(rows["protocol"]))
        keys = pa.array(list(IANA_PROTOCOLS), pa.string())
        names = pa.array(list(IANA_PROTOCOLS.values()), pa.string())
        idx = pc.index_in(proto, keys)
        rows = rows.set_column(
            rows.column_names.index("protocol"), "protocol", pc.coalesce(names.take(idx), proto)
        )
    if "action" in rows.column_names:
        act = pc.utf8_lower(pc.utf8_trim_whitespace(rows["action"]))
        idx = pc.index_in(act, pa.array(list(ACTIONS), pa.string()))
        mapped = pa.array(list(ACTIONS.values()), pa.string()).take(idx)
        rows = rows.set_column(
            rows.column_names.index("action"), "action", pc.fill_null(mapped, "unknown")
        )
    else:
        rows = rows.append_column("action", pa.repeat("unknown", rows.num_rows))
    if "ts_end" not in rows.column_names and "duration_s" in rows.column_names:
        micros = pc.cast(
            pc.round(pc.multiply(pc.fill_null(rows["duration_s"], 0.0), 1e6)), pa.int64()
        )
        end = pc.add(pc.cast(rows["ts_start"], pa.int64()), micros)
        rows = rows.append_column("ts_end", pc.cast(end, pa.timestamp("us", tz="UTC")))
    elif "ts_end" in rows.column_names:
        rows = rows.set_column(
            rows.column_names.index("ts_end"),
            "ts_end",
            pc.coalesce(rows["ts_end"], rows["ts_start"]),
        )
    rows = rows.append_column("source_offset", offsets.filter(good))
    bad = pc.invert(good)
    return Parsed(rows, rejects(offsets.filter(bad), reason.filter(bad), raw_text.filter(bad)))


class FlowCsv(Source):
    """Delimited text with a header row naming the columns."""

    name: ClassVar[str] = "flow_csv"
    table: ClassVar[str] = "flows"
    description: ClassVar[str] = "flow table as CSV/TSV/space-separated text with a header row"
    accepts_mapping: ClassVar[bool] = True

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})

    @staticmethod
    def _header(head: bytes) -> tuple[list[str], str] | None:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").strip("\r\ufeff ")
        for delimiter in DELIMITERS:
            try:
                names = next(csv.reader([first], delimiter=delimiter))
            except csv.Error:
                # Binary input (a lone CR, a "field" over csv's size limit) is no header row:
                # sniffing must answer False, never raise and stop format detection.
                return None
            if len(names) >= 3:
                return [n.strip() for n in names], delimiter
        return None

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        found = cls._header(head)
        if found is None:
            return False
        try:
            resolve_mapping(found[0], {})
        except InputError:
            return False
        return True

    def parse(self, inp: Input) -> Iterator[Parsed]:
        found = self._header(inp.head())
        if found is None:
            raise InputError(f"{inp.display}: no header row naming the columns")
        names, delimiter = found
        mapping = resolve_mapping(names, self.mapping)
        bad_rows: list[tuple[int, str, str]] = []

        def on_invalid(row: pacsv.InvalidRow) -> str:
            bad_rows.append(
                (
                    int(row.number or 0),
                    row.text or "",
                    f"expected {row.expected_columns} fields, found {row.actual_columns}",
                )
            )
            return "skip"

        reader = pacsv.open_csv(
            inp.open_binary(),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1, use_threads=False, block_size=8 << 20
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, ignore_empty_lines=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
        next_record = 2  # line 1 is the header
        for batch in reader:
            table = pa.Table.from_batches([batch])
            # Record numbers of this batch: consecutive, skipping the rows the handler rejected.
            skipped = {n for n, _, _ in bad_rows}
            numbers = np.arange(
                next_record, next_record + table.num_rows + len(skipped), dtype=np.int64
            )
            numbers = numbers[~np.isin(numbers, list(skipped))][: table.num_rows]
            next_record = int(numbers[-1]) + 1 if len(numbers) else next_record + len(skipped)
            if bad_rows:
                yield _bad_rows(bad_rows)
            raw_text = _rows_as_text(table, delimiter)
            yield _finish(table, mapping, pa.array(numbers), raw_text)
        if bad_rows:
            yield _bad_rows(bad_rows)


def _bad_rows(bad_rows: list[tuple[int, str, str]]) -> Parsed:
    """Rejects for the rows the CSV reader could not split (and forget them)."""
    parsed = Parsed(
        pa.table({}),
        rejects(
            pa.array([n for n, _, _ in bad_rows], pa.int64()),
            pa.array([r for _, _, r in bad_rows], pa.string()),
            pa.array([t for _, t, _ in bad_rows], pa.string()),
        ),
    )
    bad_rows.clear()
    return parsed


def _rows_as_text(table: pa.Table, delimiter: str) -> pa.Array:
    """The rows joined back into text, so a rejected row is kept as the analyst would see it."""
    if table.num_columns == 0:
        return pa.repeat("", table.num_rows)
    cols = [pc.fill_null(table[c].combine_chunks(), "") for c in table.column_names]
    return pc.binary_join_element_wise(*cols, delimiter)


class FlowParquet(Source):
    """Parquet files with flow columns (typed or text)."""

    name: ClassVar[str] = "flow_parquet"
    table: ClassVar[str] = "flows"
    description: ClassVar[str] = "flow table as Parquet"
    accepts_mapping: ClassVar[bool] = True

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        return head[:4] == b"PAR1"

    def parse(self, inp: Input) -> Iterator[Parsed]:
        try:
            parquet = pq.ParquetFile(inp.local_file())
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{inp.display}: not a readable Parquet file: {exc}") from None
        mapping = resolve_mapping(parquet.schema_arrow.names, self.mapping)
        wanted = sorted(set(mapping.values()))
        first = 0
        for batch in parquet.iter_batches(batch_size=500_000, columns=wanted):
            table = pa.Table.from_batches([batch])
            offsets = pa.array(np.arange(first, first + table.num_rows, dtype=np.int64))
            first += table.num_rows
            text = _rows_as_text(
                table.select(wanted).cast(pa.schema([(n, pa.string()) for n in wanted])), ","
            )
            yield _finish(table, mapping, offsets, text)
