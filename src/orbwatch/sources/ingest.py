"""Loading inputs into the workspace: format choice, provenance, keys, direction, quarantine.

One input is loaded in one transaction: either all its good rows, its quarantined rows and its
``ingest_runs`` row are written, or (on an error that stops the input) none of them. An input
whose bytes were already loaded (same SHA-256 and format) is skipped unless ``force`` is given,
in which case the earlier load is replaced: re-ingesting never duplicates rows.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources import detect_format, registry
from orbwatch.sources.base import Parsed, Source
from orbwatch.sources.inputs import Input
from orbwatch.store.workspace import Workspace

GZIP_SUFFIXES = (".gz",)


@dataclass
class IngestResult:
    """What happened to one input; ``status`` is ``loaded``, ``skipped`` or ``failed``."""

    file: str
    format: str = ""
    status: str = "loaded"
    rows: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    first_ts: dt.datetime | None = None
    last_ts: dt.datetime | None = None
    seconds: float = 0.0
    message: str = ""


def expand_paths(names: list[str]) -> list[str]:
    """Files named directly, plus every regular file below each named folder (sorted)."""
    out: list[str] = []
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            out.extend(
                str(p)
                for p in sorted(path.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            )
        else:
            out.append(name)
    return out


def normalise_rows(rows: pa.Table, internal: list[netaddr.Network]) -> pa.Table:
    """What every source gets for free: address keys, flow direction, a known flow end time."""
    if "ts_start" in rows.column_names:
        end = (
            rows["ts_end"]
            if "ts_end" in rows.column_names
            else pa.nulls(rows.num_rows, rows["ts_start"].type)
        )
        end = pc.coalesce(end, rows["ts_start"])
        if "ts_end" in rows.column_names:
            rows = rows.set_column(rows.column_names.index("ts_end"), "ts_end", end)
        else:
            rows = rows.append_column("ts_end", end)
    for col in ("src", "dst"):
        if f"{col}_ip" in rows.column_names:
            rows = rows.append_column(f"{col}_key", netaddr.keys(rows[f"{col}_ip"]))
    if "dst_key" in rows.column_names:
        src_in = netaddr.in_ranges(rows["src_key"], internal)
        dst_in = netaddr.in_ranges(rows["dst_key"], internal)
        direction = pc.if_else(
            src_in,
            pc.if_else(dst_in, "internal", "outbound"),
            pc.if_else(dst_in, "inbound", "external"),
        )
        rows = rows.append_column("direction", direction)
    return rows


def provenance(table: pa.Table, fmt: str, file: str, run_id: str) -> pa.Table:
    """Rows with the columns that say where they came from (format, file, ingest run).

    Public because the live collectors write their micro-batches with the same provenance.
    """
    n = table.num_rows
    for name, value in (("source_format", fmt), ("source_file", file), ("ingest_run_id", run_id)):
        table = table.append_column(name, pa.repeat(value, n))
    return table


class Ingestor:
    """Loads inputs into one workspace under one config."""

    def __init__(self, ws: Workspace, config: Config) -> None:
        self.ws = ws
        self.config = config
        self.internal = config.internal_ranges()

    def ingest(
        self,
        name: str,
        fmt: str | None = None,
        *,
        force: bool = False,
        mapping: Mapping[str, str] | None = None,
        on_rows: Callable[[int], None] | None = None,
        year: int | None = None,
    ) -> IngestResult:
        """Load one input (path or ``-``). Problems with the input raise :class:`InputError`.

        ``year`` is the year of the first year-less syslog stamp of the input (default: from the
        file's modification time, see docs/logs.md).
        """
        started = time.monotonic()
        inp = Input.open(name)
        try:
            cls = self._choose(inp, fmt)
            result = IngestResult(file=name, format=cls.name)
            previous = self.ws.query(
                "SELECT ingest_run_id FROM ingest_runs WHERE sha256 = ? AND format = ?",
                [inp.sha256, cls.name],
            )["ingest_run_id"].to_pylist()
            if previous and not force:
                result.status = "skipped"
                result.message = f"already ingested (run {previous[0]}); use --force to reload"
                return result
            if mapping and not cls.accepts_mapping:
                raise InputError(f"{name}: --map does not apply to format {cls.name}")
            if getattr(cls, "accepts_clock", False):
                # Syslog line formats: zone of year-less stamps and the year hint.
                source = cls(timezone=self.config.syslog_timezone, year=year)  # type: ignore[call-arg]
            else:
                source = cls(mapping=mapping) if cls.accepts_mapping else cls()  # type: ignore[call-arg]
            self._load(inp, source, result, previous, on_rows)
        finally:
            inp.close()
        result.seconds = time.monotonic() - started
        return result

    def _choose(self, inp: Input, fmt: str | None) -> type[Source]:
        if fmt is None:
            return detect_format(inp)
        known = registry()
        if fmt not in known:
            raise InputError(f"unknown format {fmt!r}; known formats: {', '.join(known)}")
        return known[fmt]

    def _load(
        self,
        inp: Input,
        source: Source,
        result: IngestResult,
        previous: list[str],
        on_rows: Callable[[int], None] | None,
    ) -> None:
        run_id = uuid.uuid4().hex[:16]
        started_at = dt.datetime.now(dt.UTC)
        times: list[pa.Array] = []
        with self.ws.transaction():
            for old in previous:
                for table in (source.table, "quarantine", "ingest_runs"):
                    self.ws.con.execute(f'DELETE FROM "{table}" WHERE ingest_run_id = ?', [old])
            for parsed in source.parse(inp):
                self._write_batch(parsed, source, inp.display, run_id, result, times)
                if on_rows is not None:
                    on_rows(parsed.rows.num_rows + parsed.rejects.num_rows)
            if times:
                all_times = pa.chunked_array(times)
                result.first_ts, result.last_ts = (
                    pc.min(all_times).as_py(),
                    pc.max(all_times).as_py(),
                )
            self.ws.append(
                "ingest_runs",
                pa.table(
                    {
                        "ingest_run_id": [run_id],
                        "file": [inp.display],
                        "sha256": [inp.sha256],
                        "format": [source.name],
                        "target_table": [source.table],
                        "rows_parsed": [result.rows],
                        "rows_quarantined": [result.quarantined],
                        "first_ts": pa.array([result.first_ts], pa.timestamp("us", tz="UTC")),
                        "last_ts": pa.array([result.last_ts], pa.timestamp("us", tz="UTC")),
                        "started_at": pa.array([started_at], pa.timestamp("us", tz="UTC")),
                        "duration_s": [(dt.datetime.now(dt.UTC) - started_at).total_seconds()],
                    }
                ),
            )

    def _write_batch(
        self,
        parsed: Parsed,
        source: Source,
        file: str,
        run_id: str,
        result: IngestResult,
        times: list[pa.Array],
    ) -> None:
        if parsed.rows.num_rows:
            rows = normalise_rows(parsed.rows, self.internal)
            rows = provenance(rows, source.name, file, run_id)
            result.rows += self.ws.append(source.table, rows)
            time_col = "ts_start" if "ts_start" in rows.column_names else "ts"
            if time_col in rows.column_names:
                times.append(rows[time_col].combine_chunks())
        for reason, count in parsed.skipped.items():
            result.skipped[reason] = result.skipped.get(reason, 0) + count
        if parsed.rejects.num_rows:
            rej = provenance(parsed.rejects, source.name, file, run_id)
            result.quarantined += self.ws.append("quarantine", rej)
            counts = pc.value_counts(reason_kind(rej["reason"]))
            for item in counts.to_pylist():
                result.reasons[item["values"]] = (
                    result.reasons.get(item["values"], 0) + item["counts"]
                )


def reason_kind(reasons: pa.ChunkedArray) -> pa.Array:
    """Reasons with quoted values removed, so that counts group by kind of problem."""
    return pc.replace_substring_regex(reasons, r"^([^:]+): .* (is not a valid .*)$", r"\1 \2")
