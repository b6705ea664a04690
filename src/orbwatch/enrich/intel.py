"""Threat-intelligence feeds: load any supported feed into ``intel``, indexed for matching.

The feed formats live in :mod:`orbwatch.enrich.feeds` (plain and CIDR lists, IPsum, CSV/JSON
records, STIX 2.1, MISP, TAXII 2.1); each reader returns an Arrow table of raw indicators.
This module is the one mechanism behind all of them:

* addresses and networks are parsed once per distinct text (``ip`` or ``cidr``), domain names
  are validated by one regular expression over the column; what is neither is quarantined
  with the reader's reason;
* duplicates within a feed become one indicator (earliest line, widest sighting window);
* loading a feed again under the same name refreshes it: indicators still present keep their
  ``first_seen`` and move ``last_seen`` forward (re-seeing is what keeps an indicator alive
  under decay), vanished ones are removed together with their index buckets;
* every address indicator gets its rows in ``intel_buckets``.

Special-purpose and internal ranges in a list (bogon lists carry 10.0.0.0/8) are loaded as
listed, but the detectors never report them: see :meth:`orbwatch.config.Config.never_malicious`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.config import IntelClass
from orbwatch.enrich import feeds
from orbwatch.enrich.feeds.base import FeedBatch, FeedOptions, FeedReader
from orbwatch.enrich.feeds.plain import PlainListReader
from orbwatch.enrich.feeds.taxii import collection_url, fetch_collection, is_taxii, spool_dir
from orbwatch.errors import InputError
from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input
from orbwatch.store.workspace import Workspace

LIST_FORMAT = PlainListReader.source_format
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: RFC 1035 host names (labels of letters, digits, hyphens; ``_`` tolerated as feeds use it),
#: with a non-numeric top-level label so that a bad address is never taken for a domain.
DOMAIN = r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$"
CLASSES = [c.value for c in IntelClass]


@dataclass
class IntelLoad:
    """Result of loading one feed."""

    name: str
    file: str
    status: str = "loaded"
    format: str = ""
    indicators: int = 0
    added: int = 0
    removed: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0


@dataclass
class FeedSource:
    """Where a feed comes from and what to assume about it (``orbwatch intel add`` options)."""

    kind: str | None = None
    intel_class: str | None = None
    confidence: float | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    collection: str | None = None
    user: str | None = None
    password: str | None = None


def intel_id(list_name: str, indicator: str) -> str:
    """Stable id of an indicator in a list (the SQL in :func:`_merge` computes the same)."""
    return hashlib.sha1(f"{list_name}|{indicator}".encode(), usedforsecurity=False).hexdigest()[:16]


def add_list(ws: Workspace, path: str, name: str, *, force: bool = False) -> IntelLoad:
    """Load (or refresh) the feed at ``path`` as list ``name``, detecting its format."""
    return add_feed(ws, path, name, force=force)


def add_feed(
    ws: Workspace,
    source: str,
    name: str,
    options: FeedSource | None = None,
    *,
    force: bool = False,
) -> IntelLoad:
    """Load (or refresh) feed ``source`` (a file, ``-``, or a TAXII URL) as list ``name``."""
    opts = options or FeedSource()
    _check_options(name, opts)
    started = time.monotonic()
    with _opened(source, opts) as (inp, implied):
        kind = opts.kind or implied
        reader = feeds.reader(kind) if kind else feeds.detect(inp.head())
        result = IntelLoad(name=name, file=inp.display, format=reader.name)
        seen = ws.scalar(
            "SELECT count(*) FROM ingest_runs r WHERE r.sha256 = ? AND r.format = ? "
            "AND EXISTS (SELECT 1 FROM intel i WHERE i.ingest_run_id = r.ingest_run_id "
            "AND i.list_name = ?)",
            [inp.sha256, reader.source_format, name],
        )
        if seen and not force:
            result.status = "skipped"
            result.message = "this file is already loaded under this name; use --force to reload"
            return result
        batch = reader.read(inp, FeedOptions(mapping=opts.mapping))
        if batch.indicators.num_rows == 0 and batch.rejects.num_rows == 0 and not batch.skipped:
            raise InputError(f"{inp.display}: no indicators found (empty list?)")
        result.skipped = dict(batch.skipped)
        _store(ws, inp, reader, name, batch, opts, result)
    result.seconds = time.monotonic() - started
    return result


def _check_options(name: str, opts: FeedSource) -> None:
    if not _NAME.match(name):
        raise InputError(f"list name {name!r}: use 1-64 letters, digits, '_', '-', '.', ':'")
    if opts.intel_class is not None and opts.intel_class not in CLASSES:
        raise InputError(f"--class {opts.intel_class!r}: use one of {', '.join(CLASSES)}")
    if opts.confidence is not None and not 0 <= opts.confidence <= 100:
        raise InputError(f"--confidence {opts.confidence}: use a number from 0 to 100")


@contextlib.contextmanager
def _opened(source: str, opts: FeedSource) -> Iterator[tuple[Input, str | None]]:
    """The feed as an :class:`Input` and the reader it implies (TAXII: STIX); a TAXII
    collection is fetched into a spooled bundle whose provenance is the collection URL."""
    if opts.collection is not None or is_taxii(source):
        url = collection_url(source, opts.collection)
        with spool_dir() as folder:
            bundle = fetch_collection(
                url, user=opts.user, password=opts.password, spool=Path(folder)
            )
            inp = Input.open(str(bundle))
            inp.display = url
            yield inp, "stix"
        return
    inp = Input.open(source)
    try:
        yield inp, None
    finally:
        inp.close()


def _parse_addresses(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Table, pa.Array]:
    """Parsed networks of ``texts`` (one parse per distinct text) and the parse errors."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    encoded = pc.dictionary_encode(texts)
    distinct = encoded.dictionary.to_pylist()
    parsed: list[netaddr.Network | None] = []
    errors: list[str | None] = []
    for text in distinct:  # one ipaddress parse per distinct string, as netaddr.keys does
        try:
            parsed.append(netaddr.network(text))
            errors.append(None)
        except ValueError as exc:
            parsed.append(None)
            errors.append(str(exc)[:300])
    nets = pa.table(
        {
            "normalised": pa.array([n.text if n else None for n in parsed], pa.string()),
            "family": pa.array([n.family if n else None for n in parsed], pa.int8()),
            "prefix_len": pa.array([n.prefix_len if n else None for n in parsed], pa.int16()),
            "start_key": pa.array([n.start_key if n else None for n in parsed], pa.string()),
            "end_key": pa.array([n.end_key if n else None for n in parsed], pa.string()),
        }
    ).take(encoded.indices)
    return nets, pa.array(errors, pa.string()).take(encoded.indices)


def normalise(batch: FeedBatch, opts: FeedSource) -> tuple[pa.Table, pa.Table]:
    """(indicators with keys, kind, class and confidence; rejects) of a reader's batch."""
    raw = batch.indicators
    text = pc.utf8_trim_whitespace(raw["indicator"])
    domain_text = pc.utf8_rtrim(pc.utf8_lower(text), characters=".")
    as_domain = pc.fill_null(pc.equal(raw["kind"], "domain"), False)
    nets, errors = _parse_addresses(pc.if_else(as_domain, pa.scalar(None, pa.string()), text))
    valid_domain = pc.fill_null(pc.match_substring_regex(domain_text, DOMAIN), False)
    if batch.allow_domains:
        as_domain = pc.or_(as_domain, pc.and_(pc.is_null(nets["normalised"]), valid_domain))
    is_net = pc.and_(pc.invert(as_domain), pc.is_valid(nets["normalised"]))
    good = pc.or_(is_net, pc.and_(as_domain, valid_domain))
    host_bits = pc.if_else(pc.equal(nets["family"], 4), 32, 128)
    kind = pc.if_else(
        as_domain,
        "domain",
        pc.if_else(pc.equal(nets["prefix_len"], pc.cast(host_bits, pa.int16())), "ip", "cidr"),
    )
    given_class = raw["intel_class"]
    known_class = pc.fill_null(pc.is_in(given_class, pa.array(CLASSES)), False)
    fallback = opts.intel_class or "unknown"
    confidence = pc.coalesce(raw["confidence"], pa.scalar(opts.confidence, pa.float64()))
    table = pa.table(
        {
            "indicator": pc.if_else(as_domain, domain_text, nets["normalised"]),
            "family": nets["family"],
            "prefix_len": nets["prefix_len"],
            "start_key": nets["start_key"],
            "end_key": nets["end_key"],
            "score": raw["score"],
            "comment": raw["comment"],
            "first_seen": raw["first_seen"],
            "last_seen": raw["last_seen"],
            "source_offset": raw["source_offset"],
            "kind": kind,
            "intel_class": pc.if_else(known_class, given_class, fallback),
            "confidence": pc.max_element_wise(
                pc.min_element_wise(confidence, 100.0, skip_nulls=False), 0.0, skip_nulls=False
            ),
            "tags": raw["tags"],
            "valid_from": raw["valid_from"],
            "valid_until": raw["valid_until"],
            "external_id": raw["external_id"],
        }
    ).filter(good)
    bad = raw.filter(pc.invert(good))
    why = pc.coalesce(errors.filter(pc.invert(good)), "not a valid domain name")
    rejects = pa.table(
        {
            "source_offset": bad["source_offset"],
            "reason": pc.binary_join_element_wise(batch.invalid_reason, why, ": "),
            "raw": pc.utf8_slice_codeunits(
                pc.coalesce(bad["raw"], bad["indicator"]), 0, RAW_KEEP_CHARS
            ),
            "raw_length": pc.utf8_length(pc.coalesce(bad["raw"], bad["indicator"])),
        }
    )
    return table, pa.concat_tables([batch.rejects, rejects.cast(batch.rejects.schema)])


_MERGE = """
WITH f AS (
    SELECT *,
        min(first_seen) OVER w AS fs, max(last_seen) OVER w AS ls,
        max(confidence) OVER w AS conf, max(score) OVER w AS sc,
        min(valid_from) OVER w AS vf, max(valid_until) OVER w AS vu,
        row_number() OVER (PARTITION BY indicator ORDER BY source_offset) AS rn,
        substr(sha1($name || '|' || indicator), 1, 16) AS iid
    FROM _intel_feed WINDOW w AS (PARTITION BY indicator)
), old AS (SELECT intel_id, first_seen, last_seen FROM intel WHERE list_name = $name)
SELECT f.iid AS intel_id, $name AS list_name, f.indicator, f.family, f.prefix_len,
    f.start_key, f.end_key, f.sc AS score, f.comment,
    least(coalesce(f.fs, f.ls, $now), coalesce(old.first_seen, f.fs, f.ls, $now))
        AS first_seen,
    greatest(coalesce(f.ls, $now), coalesce(old.last_seen, f.ls, $now)) AS last_seen,
    $format AS source_format, $file AS source_file, f.source_offset, $run AS ingest_run_id,
    f.kind, f.intel_class, f.conf AS confidence, f.tags, f.vf AS valid_from,
    f.vu AS valid_until, f.external_id, CAST(NULL AS TIMESTAMPTZ) AS expired_at,
    old.intel_id IS NULL AS is_new
FROM f LEFT JOIN old ON old.intel_id = f.iid
WHERE f.rn = 1
ORDER BY f.source_offset
"""


def _merge(ws: Workspace, table: pa.Table, params: dict[str, object]) -> pa.Table:
    """One row per distinct indicator, sightings merged with the list's earlier load."""
    ws.con.register("_intel_feed", table)
    try:
        return ws.con.execute(_MERGE, params).fetch_arrow_table()
    finally:
        ws.con.unregister("_intel_feed")


def _buckets(rows: pa.Table) -> pa.Table:
    """``intel_buckets`` rows: one vectorised slice for ranges inside one bucket (nearly all),
    :meth:`orbwatch.netaddr.Network.buckets` for the few wider ones."""
    nets = rows.filter(pc.is_valid(rows["start_key"])).combine_chunks()
    if nets.num_rows == 0:
        return pa.table(
            {"intel_id": pa.array([], pa.string()), "bucket": pa.array([], pa.string())}
        )
    first, last = netaddr.bucket_of_key(nets["start_key"]), netaddr.bucket_of_key(nets["end_key"])
    single = pc.equal(first, last)
    ids = [nets["intel_id"].filter(single)]
    buckets = [first.filter(single)]
    wide = nets.filter(pc.invert(single))
    wide_ids, wide_buckets = [], []
    for iid, text in zip(  # ranges spanning buckets: a few hundred in the largest lists
        wide["intel_id"].to_pylist(), wide["indicator"].to_pylist(), strict=True
    ):
        spanned = netaddr.network(text).buckets()
        wide_ids += [iid] * len(spanned)
        wide_buckets += spanned
    ids.append(pa.array(wide_ids, pa.string()))
    buckets.append(pa.array(wide_buckets, pa.string()))
    return pa.table(
        {
            "intel_id": pa.chunked_array([pc.cast(a, pa.string()) for a in ids], pa.string()),
            "bucket": pa.chunked_array([pc.cast(b, pa.string()) for b in buckets], pa.string()),
        }
    )


def _store(
    ws: Workspace,
    inp: Input,
    reader: FeedReader,
    name: str,
    batch: FeedBatch,
    opts: FeedSource,
    result: IntelLoad,
) -> None:
    now = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:16]
    table, bad = normalise(batch, opts)
    with ws.transaction():
        before = int(ws.scalar("SELECT count(*) FROM intel WHERE list_name = ?", [name]))
        merged = _merge(
            ws,
            table,
            {
                "name": name,
                "now": now,
                "format": reader.source_format,
                "file": inp.display,
                "run": run_id,
            },
        )
        # The list's earlier loads are replaced: their quarantined records and runs go too.
        for target in ("quarantine", "ingest_runs"):
            ws.con.execute(
                f'DELETE FROM "{target}" WHERE ingest_run_id IN '
                "(SELECT DISTINCT ingest_run_id FROM intel WHERE list_name = ?)",
                [name],
            )
        ws.con.execute(
            "DELETE FROM intel_buckets WHERE intel_id IN "
            "(SELECT intel_id FROM intel WHERE list_name = ?)",
            [name],
        )
        ws.con.execute("DELETE FROM intel WHERE list_name = ?", [name])
        added = int(pc.sum(merged["is_new"]).as_py() or 0)
        merged = merged.drop_columns(["is_new"])
        ws.append("intel", merged)
        ws.append("intel_buckets", _buckets(merged))
        ws.append("quarantine", _quarantine_rows(bad, run_id, reader, inp))
        ws.append(
            "ingest_runs",
            pa.table(
                {
                    "ingest_run_id": [run_id],
                    "file": [inp.display],
                    "sha256": [inp.sha256],
                    "format": [reader.source_format],
                    "target_table": ["intel"],
                    "rows_parsed": [merged.num_rows],
                    "rows_quarantined": [bad.num_rows],
                    "started_at": pa.array([now], pa.timestamp("us", tz="UTC")),
                    "duration_s": [(dt.datetime.now(dt.UTC) - now).total_seconds()],
                }
            ),
        )
    result.indicators = merged.num_rows
    result.added = added
    result.removed = before - (merged.num_rows - added)
    result.quarantined = bad.num_rows
    for reason in bad["reason"].to_pylist():
        kind = reason.split(":")[0]
        result.reasons[kind] = result.reasons.get(kind, 0) + 1


def _quarantine_rows(bad: pa.Table, run_id: str, reader: FeedReader, inp: Input) -> pa.Table:
    return (
        bad.append_column("ingest_run_id", pa.array([run_id] * bad.num_rows, pa.string()))
        .append_column(
            "source_format", pa.array([reader.source_format] * bad.num_rows, pa.string())
        )
        .append_column("source_file", pa.array([inp.display] * bad.num_rows, pa.string()))
    )
