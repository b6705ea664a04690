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
        (
            "outcome",
            pa.string(),
            "`success` or `failure` (an attempt); `end` (session end or logoff); `info` "
            "(other authentication context the product logs: disconnect before "
            "authentication, privileges assigned, MFA challenge).",
        ),
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
        ("event", pa.string(), "The product's own event name or id (`4625`, `113039`)."),
        (
            "auth_method",
            pa.string(),
            "First-factor method as logged: `password`, `publickey`, `certificate`, "
            "`keyboard-interactive`, an authentication package (`NTLM`) or client protocol.",
        ),
        ("domain", pa.string(), "Account domain or realm, when logged apart from `user`."),
        ("logon_type", pa.string(), "Windows logon type (`3 network`, `10 remote-interactive`)."),
        (
            "policy",
            pa.string(),
            "Access policy that applied: VPN group policy or connection profile, or the "
            "conditional-access result of an SSO sign-in.",
        ),
        ("country_logged", pa.string(), "Country of the source as the product logged it."),
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
        (
            "services",
            pa.string(),
            "Service ports it answered the Internet on, comma-separated (`orbwatch assets`).",
        ),
        ("peers", pa.int64(), "Distinct external peers in its traffic (`orbwatch assets`)."),
        ("evidence", pa.string(), "Why it was discovered, in words (discovered assets)."),
    ],
)

INTEL = _spec(
    "intel",
    "One indicator (address, network or domain) from a threat-intelligence feed.",
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
        (
            "first_seen",
            TS,
            "First sighting: the feed's own first-seen time when it gives one, else when "
            "orbwatch first loaded the indicator from this list.",
        ),
        (
            "last_seen",
            TS,
            "Last sighting: the feed's own last-seen time when it gives one, else the latest "
            "load of a list naming it (re-seeing moves it; decay counts from it).",
        ),
        *_PROVENANCE,
        ("kind", pa.string(), "`ip`, `cidr` or `domain` (domains have no family or keys)."),
        (
            "intel_class",
            pa.string(),
            "`compromised-soho`, `vps-relay`, `quad7`, `c2`, `scanner`, `tor`, `proxy` or "
            "`unknown`: picks the decay lifetime (docs/enrichment.md).",
        ),
        (
            "confidence",
            pa.float64(),
            "0-100 as the feed (or `--confidence`) gave it; null means the configured default.",
        ),
        ("tags", pa.string(), "Comma-separated tags from the feed (MISP tags, STIX labels)."),
        ("valid_from", TS, "Start of validity, when the feed gives it (STIX `valid_from`)."),
        ("valid_until", TS, "End of validity, when the feed gives it: expired after it."),
        ("external_id", pa.string(), "The feed's own id of the indicator (STIX id, MISP uuid)."),
        ("expired_at", TS, "When `orbwatch intel expire --mark` marked it expired, else null."),
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
        ("status_comment", pa.string(), "Comment given with the last triage change."),
        ("status_changed_at", TS, "When the triage state last changed."),
        (
            "suppressed_by",
            pa.string(),
            "Name of the suppression rule that covers the alert, else null. Suppressed alerts "
            "are kept and counted; `orbwatch alerts --suppressed` lists them.",
        ),
        ("created_at", TS, "When the alert was first raised."),
        ("updated_at", TS, "When `detect` last refreshed it."),
        ("campaign_id", pa.string(), "Campaign the alert belongs to (`orbwatch campaigns`)."),
    ],
)

CAMPAIGNS = _spec(
    "campaigns",
    "Alerts linked into one operation by shared accounts, targets, networks, ASNs, ports or "
    "client strings close in time (see orbwatch.alerts.campaigns). Rebuilt by "
    "`orbwatch campaigns`.",
    [
        ("campaign_id", pa.string(), "Hash of the member alert ids."),
        ("title", pa.string(), "Size and detectors, in words."),
        ("severity", pa.string(), "Highest severity among the alerts."),
        ("score", pa.float64(), "Highest alert score, plus 2 per further linked alert (max 100)."),
        ("first_seen", TS, "Earliest evidence."),
        ("last_seen", TS, "Latest evidence."),
        ("alert_count", pa.int64(), "Member alerts."),
        ("alert_ids", pa.string(), "JSON list of member alert ids."),
        ("techniques", pa.string(), "Comma-separated ATT&CK technique ids of the members."),
        ("users", pa.string(), "JSON list of accounts involved."),
        ("targets", pa.string(), "JSON list of internal addresses involved."),
        ("relays", pa.string(), "JSON list of external addresses involved (relay nodes)."),
        ("relay_count", pa.int64(), "Number of relay addresses."),
        (
            "relays_dead",
            pa.int64(),
            "Relays not seen in any flow or login for 3 days before the newest record.",
        ),
        ("relays_on_blocklist", pa.int64(), "Relays that a loaded threat list names."),
        ("linked_by", pa.string(), "JSON list of the traits that link the alerts."),
        ("status", pa.string(), "Triage state, as for alerts."),
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

LOGIN_PROFILES = _spec(
    "login_profiles",
    "Login baseline in long format: per user and service, how often each value of each "
    "attribute (country, region, asn, net_class, client, hour_of_week, src_net, src_key, "
    "target) occurred in successful logins. Built by `orbwatch baseline` "
    "(`orbwatch.baseline.logins`), updated incrementally.",
    [
        ("user", pa.string(), "Account name."),
        ("service", pa.string(), "`vpn`, `ssh`, `sso` or `windows`."),
        ("attribute", pa.string(), "What the value describes (see the table description)."),
        (
            "value",
            pa.string(),
            "The value as text: ISO country, `CC/region`, AS number, network class, client "
            "string (cut to 200 characters), hour of the week 0-167 (Monday 00 UTC is 0), "
            "address-key prefix of the /24 (IPv4) or /48 (IPv6), address key, target.",
        ),
        ("count", pa.int64(), "Successful logins with this value."),
        ("first_seen", TS, "First such login."),
        ("last_seen", TS, "Last such login."),
    ],
)

LOGIN_USERS = _spec(
    "login_users",
    "Per account: how much successful-login history the baseline holds, and from when the "
    "account counts as profiled (learning period: 14 days or 10 logins, whichever comes first, "
    "never before 5 days).",
    [
        ("user", pa.string(), "Account name."),
        ("first_seen", TS, "First successful login."),
        ("last_seen", TS, "Last successful login folded into the baseline."),
        ("logins", pa.int64(), "Successful logins folded into the baseline."),
        (
            "learning_logins_at",
            TS,
            "Time of the login that completed the learning count (the 10th by default), "
            "null until there is one.",
        ),
        (
            "profiled_since",
            TS,
            "Logins after this time are judged against the profile; earlier ones get the "
            "weaker verdict of an unprofiled account. May lie in the future.",
        ),
    ],
)

EDGE_METRICS: list[tuple[str, str]] = [
    ("bytes_in", "payload bytes received by the asset from the Internet"),
    ("bytes_out", "payload bytes sent by the asset to the Internet"),
    ("flows_in", "flows from the Internet to the asset"),
    ("flows_out", "flows the asset opened to the Internet"),
    ("peers", "distinct external addresses"),
    ("countries", "distinct countries of the external addresses"),
    ("asns", "distinct autonomous systems of the external addresses"),
    ("net_classes", "distinct network classes of the external addresses"),
    ("ports", "distinct service (responder) ports"),
]

EDGE_HOURS = _spec(
    "edge_hours",
    "Edge traffic per asset (configured or discovered) and hour: the incremental material of "
    "the hour-of-week baselines. Written by `orbwatch baseline`.",
    [
        ("entity", pa.string(), "Asset name."),
        ("role", pa.string(), "Asset role."),
        ("hour", TS, "Start of the hour (UTC)."),
        *[(m, pa.int64(), f"Hour total: {doc}.") for m, doc in EDGE_METRICS],
        ("updated_at", TS, "When the row was written."),
    ],
)

EDGE_BASELINES = _spec(
    "edge_baselines",
    "Robust profile of each asset's edge traffic per hour of the week (and per hour of the day, "
    "the fallback while weeks of history are missing): median and median absolute deviation "
    "over the training hours, idle hours counted as zero. Written by `orbwatch baseline`.",
    [
        ("entity", pa.string(), "Asset name."),
        ("slot_kind", pa.string(), "`hour_of_week` (0 = Monday 00h) or `hour_of_day`."),
        ("slot", pa.int64(), "Hour of the week (0-167) or of the day (0-23), UTC."),
        ("hours", pa.int64(), "Training hours behind the statistics (the history)."),
        ("history_start", TS, "First training hour."),
        ("history_end", TS, "End of the training period (exclusive)."),
        *[
            col
            for m, doc in EDGE_METRICS
            for col in (
                (f"{m}_median", pa.float64(), f"Median per hour of {doc}."),
                (f"{m}_mad", pa.float64(), f"Median absolute deviation of `{m}`."),
            )
        ],
        ("updated_at", TS, "When the row was written."),
    ],
)

PEER_CONTACTS = _spec(
    "peer_contacts",
    "Which internal address has dealt with which country, AS, network class and service port "
    "on the Internet, first and last when: the organisation-wide prevalence and per-asset "
    "history behind the novelty detectors. Written by `orbwatch baseline`.",
    [
        ("local_key", pa.string(), "Key of the internal address."),
        (
            "kind",
            pa.string(),
            "`country`, `asn`, `net_class`, `port_in` (a service of ours reached from the "
            "Internet) or `port_out` (a port we reached on the Internet).",
        ),
        ("value", pa.string(), "Country code, `AS<n>`, class or port number; `unknown`."),
        ("first_seen", TS, "First flow with it."),
        ("last_seen", TS, "Last flow with it."),
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
        CAMPAIGNS,
        QUARANTINE,
        INGEST_RUNS,
        LOGIN_PROFILES,
        LOGIN_USERS,
        EDGE_HOURS,
        EDGE_BASELINES,
        PEER_CONTACTS,
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
