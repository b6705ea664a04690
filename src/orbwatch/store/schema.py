"""The normalised tables of an orbwatch workspace, declared once as Arrow schemas.

Everything else derives from these declarations: the DuckDB DDL of the workspace, the Parquet
files written by ``orbwatch export-tables`` for the Spark engine, the empty tables a source
returns when a file holds no rows, and ``docs/schema.md`` (a test keeps that page in step).

Conventions shared by all tables:

* Times are ``timestamp[us, UTC]``.
* Every IP address is stored twice: as text for people (``src_ip``) and as a *key*
  (``src_key``): 32 lowercase hex digits of the IPv6 form, IPv4 mapped into ``::ffff:0:0/96``.
  Fixed-width hex sorts like the number it encodes, so CIDR membership is a plain string
  ``BETWEEN`` that every SQL engine (DuckDB, Spark) evaluates identically.
* Every row produced from input keeps its provenance: ``source_file``, ``source_offset``
  (line number for text, byte offset for binary input) and the ``ingest_run_id``.

Bump :data:`SCHEMA_VERSION` whenever a table changes and add a migration in
``orbwatch.store.migrations``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 2

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """One workspace table: its Arrow schema, what it is for, and what each column means."""

    name: str
    purpose: str
    schema: pa.Schema
    docs: dict[str, str]


def _spec(name: str, purpose: str, columns: list[tuple[str, pa.DataType, str]]) -> TableSpec:
    schema = pa.schema([pa.field(col, typ) for col, typ, _ in columns])
    return TableSpec(name, purpose, schema, {col: doc for col, _, doc in columns})


_PROVENANCE: list[tuple[str, pa.DataType, str]] = [
    ("source_format", pa.string(), "Parser that produced the row (e.g. `zeek_conn`)."),
    ("source_file", pa.string(), "File (or `-` for stdin, or collector name) the row came from."),
    ("source_offset", pa.int64(), "Line number (text) or byte offset (binary) in the source."),
    ("ingest_run_id", pa.string(), "The `ingest_runs` row that loaded it."),
]

FLOWS = _spec(
    "flows",
    "One network connection or flow record, from any flow or firewall source.",
    [
        ("ts_start", TS, "When the flow started (UTC)."),
        ("ts_end", TS, "When the flow ended (UTC); equals `ts_start` when unknown."),
        ("duration_s", pa.float64(), "Duration in seconds, when the source gives it."),
        ("src_ip", pa.string(), "Initiator address as text."),
        ("src_key", pa.string(), "Initiator address key (32 hex digits, see above)."),
        ("src_port", pa.int32(), "Initiator port (ICMP: type)."),
        ("dst_ip", pa.string(), "Responder address as text."),
        ("dst_key", pa.string(), "Responder address key."),
        ("dst_port", pa.int32(), "Responder port (ICMP: code)."),
        (
            "protocol",
            pa.string(),
            "Transport protocol name in lower case (`tcp`, `udp`, `icmp`, ...).",
        ),
        (
            "service",
            pa.string(),
            "Application protocol when the source identified it (`ssl`, `dns`).",
        ),
        ("src_bytes", pa.int64(), "Payload bytes sent by the initiator."),
        ("dst_bytes", pa.int64(), "Payload bytes sent by the responder."),
        ("src_packets", pa.int64(), "Packets sent by the initiator."),
        ("dst_packets", pa.int64(), "Packets sent by the responder."),
        ("conn_state", pa.string(), "Connection state or TCP flags as the source reports them."),
        ("action", pa.string(), "`allow`, `deny` or `unknown` (firewall verdict)."),
        ("rule", pa.string(), "Firewall rule or policy that matched, when logged."),
        (
            "direction",
            pa.string(),
            "`inbound`, `outbound`, `internal` or `external`, relative to "
            "the configured internal networks at ingest time.",
        ),
        ("exporter", pa.string(), "Sensor, exporter or device that reported the flow."),
        ("flow_uid", pa.string(), "The source's own identifier of the flow (Zeek `uid`)."),
        ("nat_src_ip", pa.string(), "Initiator address after NAT, when the exporter reports it."),
        ("nat_src_port", pa.int32(), "Initiator port after NAT."),
        ("nat_dst_ip", pa.string(), "Responder address after NAT."),
        ("nat_dst_port", pa.int32(), "Responder port after NAT."),
        (
            "sampling_rate",
            pa.int64(),
            "1-in-N packet sampling the exporter announced (bytes and "
            "packets are as exported: multiply by this to estimate the true volume).",
        ),
        *_PROVENANCE,
    ],
)

LOGINS = _spec(
    "logins",
    "One authentication event against a remote-access service (VPN, SSH, SSO, Windows).",
    [
        ("ts", TS, "When the authentication happened (UTC)."),
        ("user", pa.string(), "Account name as logged."),
        ("src_ip", pa.string(), "Address the login came from."),
        ("src_key", pa.string(), "Key of `src_ip`."),
        ("src_port", pa.int32(), "Source port, when logged."),
        ("service", pa.string(), "`vpn`, `ssh`, `sso` or `windows`."),
        ("target", pa.string(), "Device, host or application logged into."),
        ("target_ip", pa.string(), "Address of the target, when logged."),
        ("outcome", pa.string(), "`success` or `failure`."),
        ("failure_reason", pa.string(), "Why it failed, as logged."),
        ("mfa", pa.string(), "`yes`, `no` or `unknown`: was a second factor used."),
        ("mfa_method", pa.string(), "Second factor method, when logged."),
        (
            "machine_cert",
            pa.string(),
            "`yes`, `no` or `unknown`: did the device present a certificate.",
        ),
        ("client", pa.string(), "Client software or user agent string."),
        ("session_id", pa.string(), "Session identifier, when logged."),
        ("bytes", pa.int64(), "Bytes transferred in the session, when logged."),
        ("duration_s", pa.float64(), "Session duration in seconds, when logged."),
        *_PROVENANCE,
    ],
)

ASSETS = _spec(
    "assets",
    "Edge devices and subnets of the organisation, from the config or discovered from traffic.",
    [
        ("name", pa.string(), "Asset name."),
        ("cidr", pa.string(), "Address or network of the asset."),
        ("start_key", pa.string(), "First address key of `cidr`."),
        ("end_key", pa.string(), "Last address key of `cidr`."),
        (
            "role",
            pa.string(),
            "`vpn-gateway`, `router`, `firewall`, `remote-access`, `soho-subnet`, `iot-subnet`.",
        ),
        ("origin", pa.string(), "`config` or `discovered`."),
        ("updated_at", TS, "When the row was written."),
    ],
)

INTEL = _spec(
    "intel",
    "One indicator (address or network) from a threat-intelligence list.",
    [
        ("intel_id", pa.string(), "Stable identifier: hash of list name and indicator."),
        ("list_name", pa.string(), "Name given with `orbwatch intel add --name`."),
        ("indicator", pa.string(), "The address or CIDR as listed (normalised)."),
        ("family", pa.int8(), "4 or 6."),
        (
            "prefix_len",
            pa.int16(),
            "Prefix length in the family's own bits (32 for a single IPv4).",
        ),
        ("start_key", pa.string(), "First address key covered."),
        ("end_key", pa.string(), "Last address key covered."),
        ("score", pa.float64(), "Score given by the list (IPsum: number of lists), else null."),
        ("comment", pa.string(), "Comment carried on the indicator's line, if any."),
        ("first_seen", TS, "When orbwatch first loaded this indicator from this list."),
        ("last_seen", TS, "When orbwatch last loaded it (a refreshed list moves this)."),
        *_PROVENANCE,
    ],
)

INTEL_BUCKETS = _spec(
    "intel_buckets",
    "Index of `intel` by address bucket (/16 of IPv4, /32 of IPv6), so that matching flows "
    "against indicators is an equality join on every engine. Indicators wider than "
    "65,536 buckets carry the bucket `*` and are matched by range alone.",
    [
        ("intel_id", pa.string(), "Indicator this bucket belongs to."),
        ("bucket", pa.string(), "Leading hex digits of the key (28 for IPv4, 8 for IPv6) or `*`."),
    ],
)

IP_INFO = _spec(
    "ip_info",
    "What is known about each address seen in `flows`, `logins` and `intel`: where it is, "
    "which network owns it and what kind of network that is. Filled by `orbwatch enrich` "
    "(and before detection); detectors join it on `ip_key`.",
    [
        ("ip_key", pa.string(), "Address key (join column)."),
        ("ip", pa.string(), "Address as text."),
        ("country", pa.string(), "ISO 3166-1 alpha-2 country code, upper case."),
        ("region", pa.string(), "Region or state, when the database has it."),
        ("city", pa.string(), "City, when the database has it."),
        ("latitude", pa.float64(), "Latitude in degrees (city, else country centroid)."),
        ("longitude", pa.float64(), "Longitude in degrees."),
        ("asn", pa.int64(), "Autonomous system number."),
        ("as_org", pa.string(), "Name of the organisation that owns the AS."),
        (
            "net_class",
            pa.string(),
            "`corporate`, `residential`, `mobile`, `hosting`, `vpn`, `tor`, `private` or "
            "`unknown` (see docs/enrichment.md for how each is decided).",
        ),
        ("geo_db", pa.string(), "Database (and its date) that gave the location."),
        ("asn_db", pa.string(), "Database (and its date) that gave the ASN."),
        ("enriched_at", TS, "When this row was computed."),
    ],
)

ALERTS = _spec(
    "alerts",
    "One explained finding of a detector, aggregated over the evidence that supports it.",
    [
        (
            "alert_id",
            pa.string(),
            "Stable identifier: hash of detector and entity key, so that "
            "running `detect` again updates instead of duplicating.",
        ),
        ("detector", pa.string(), "Detector id."),
        ("title", pa.string(), "One-line summary."),
        ("severity", pa.string(), "`info`, `low`, `medium`, `high` or `critical`."),
        ("score", pa.float64(), "0-100 ranking within the severity."),
        ("techniques", pa.string(), "Comma-separated MITRE ATT&CK technique ids."),
        ("entity", pa.string(), "The main entity the alert is about (address, user, asset)."),
        ("src_ip", pa.string(), "Initiator address, when the alert is about a connection."),
        ("dst_ip", pa.string(), "Responder address, when the alert is about a connection."),
        ("user", pa.string(), "Account, when the alert is about logins."),
        ("first_seen", TS, "First evidence time."),
        ("last_seen", TS, "Last evidence time."),
        ("event_count", pa.int64(), "Number of evidence records (flows, logins)."),
        ("bytes", pa.int64(), "Bytes in the evidence, when it is traffic."),
        ("explanation", pa.string(), "Why this was raised, in words."),
        ("evidence", pa.string(), "JSON object with the supporting facts and provenance."),
        (
            "status",
            pa.string(),
            "Triage state: `new`, `acknowledged`, `false-positive`, `resolved`.",
        ),
        ("created_at", TS, "When the alert was first raised."),
        ("updated_at", TS, "When `detect` last refreshed it."),
    ],
)

QUARANTINE = _spec(
    "quarantine",
    "Input that could not be parsed, kept with the reason so that nothing is lost silently.",
    [
        ("ingest_run_id", pa.string(), "The `ingest_runs` row."),
        ("source_format", pa.string(), "Parser that rejected it."),
        ("source_file", pa.string(), "File it came from."),
        ("source_offset", pa.int64(), "Line number or byte offset."),
        ("reason", pa.string(), "Why it was rejected."),
        ("raw", pa.string(), "The raw record, cut to 4,096 characters."),
        ("raw_length", pa.int64(), "Length of the raw record before cutting."),
    ],
)

INGEST_RUNS = _spec(
    "ingest_runs",
    "One file (or stream) loaded into the workspace.",
    [
        ("ingest_run_id", pa.string(), "Identifier of the run."),
        ("file", pa.string(), "Path as given, or `-` for stdin."),
        (
            "sha256",
            pa.string(),
            "SHA-256 of the bytes read (after decompression is not applied: "
            "of the file as stored).",
        ),
        ("format", pa.string(), "Parser used."),
        ("target_table", pa.string(), "Table the rows went to."),
        ("rows_parsed", pa.int64(), "Rows written to the target table."),
        ("rows_quarantined", pa.int64(), "Rows written to `quarantine`."),
        ("first_ts", TS, "Earliest record time."),
        ("last_ts", TS, "Latest record time."),
        ("started_at", TS, "When the run started."),
        ("duration_s", pa.float64(), "Wall-clock seconds."),
    ],
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        FLOWS,
        LOGINS,
        ASSETS,
        IP_INFO,
        INTEL,
        INTEL_BUCKETS,
        ALERTS,
        QUARANTINE,
        INGEST_RUNS,
    )
}


def empty(name: str) -> pa.Table:
    """An empty Arrow table with the schema of workspace table ``name``."""
    return TABLES[name].schema.empty_table()


def conform(name: str, table: pa.Table) -> pa.Table:
    """Return ``table`` with exactly the columns of ``name``, in order and of the declared type.

    Missing columns become nulls; extra columns are an error, because they would be lost.
    """
    schema = TABLES[name].schema
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"columns not in the {name} schema: {sorted(extra)}")
    arrays = []
    for field in schema:
        if field.name in table.column_names:
            arrays.append(table[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def markdown() -> str:
    """``docs/schema.md``: generated from the declarations above (a test keeps it in step)."""
    lines = [
        "# Workspace schema",
        "",
        f"Schema version {SCHEMA_VERSION}. Generated from `src/orbwatch/store/schema.py` by",
        "`python -m orbwatch.store.schema > docs/schema.md`; do not edit by hand.",
        "",
        *[line.strip() for line in (__doc__ or "").strip().splitlines()[2:]],
        "",
    ]
    for spec in TABLES.values():
        lines += [
            f"## `{spec.name}`",
            "",
            spec.purpose,
            "",
            "| column | type | meaning |",
            "|---|---|---|",
        ]
        lines += [f"| `{f.name}` | {f.type} | {spec.docs[f.name]} |" for f in spec.schema]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
