"""Threat-intelligence lists: plain IP/CIDR lists loaded into ``intel`` and indexed for matching.

Reads the list formats that the common free feeds publish as text:

* FireHOL ``.ipset`` / ``.netset`` and Spamhaus DROP: one address or CIDR per line, ``#`` or
  ``;`` comments, trailing ``; comment`` kept as the indicator's comment;
* IPsum: ``address<TAB>count`` (the count of blocklists naming it becomes the ``score``);
* DShield ``block.txt``: ``start<TAB>end<TAB>prefix ...`` rows;
* anything with one address per line.

Loading a list again under the same name refreshes it: indicators still present keep their
``first_seen`` and move ``last_seen``, vanished ones are removed. Special-purpose and internal
ranges in a list (bogon lists carry 10.0.0.0/8) are loaded as listed, but the detectors never
report them: see :meth:`orbwatch.config.Config.never_malicious`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa

from orbwatch import netaddr
from orbwatch.errors import InputError
from orbwatch.sources.inputs import RAW_KEEP_CHARS, Input, read_all_lines
from orbwatch.store.workspace import Workspace

LIST_FORMAT = "intel_plain_list"
_COMMENT = re.compile(r"\s*[#;]\s*(.*)$")
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass
class IntelLoad:
    """Result of loading one list."""

    name: str
    file: str
    status: str = "loaded"
    indicators: int = 0
    added: int = 0
    removed: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0


def intel_id(list_name: str, indicator: str) -> str:
    return hashlib.sha1(f"{list_name}|{indicator}".encode(), usedforsecurity=False).hexdigest()[:16]


def _parse_line(text: str) -> tuple[netaddr.Network, float | None, str] | str | None:
    """A parsed indicator, a reason string when the line is bad, or None for blank/comment."""
    comment = ""
    found = _COMMENT.search(text)
    if found:
        comment = found.group(1).strip()[:200]
        text = text[: found.start()]
    tokens = text.split()
    if not tokens or [t.lower() for t in tokens[:3]] == ["start", "end", "netblock"]:
        return None  # blank, or the column header row of DShield's block.txt
    score: float | None = None
    try:
        if len(tokens) >= 3 and tokens[2].isdigit() and "/" not in tokens[0]:
            net = netaddr.network(f"{tokens[0]}/{tokens[2]}")  # DShield block.txt row
        else:
            net = netaddr.network(tokens[0])
            if len(tokens) >= 2:
                score = float(tokens[1])
    except ValueError as exc:
        return f"not an IP address, CIDR or 'address score' line: {exc}"
    return net, score, comment


def parse_list(
    inp: Input,
) -> tuple[list[tuple[netaddr.Network, float | None, str, int]], list[tuple[int, str, str, int]]]:
    """(indicators with score, comment and line number; rejects as (line, reason, raw, length))."""
    good: list[tuple[netaddr.Network, float | None, str, int]] = []
    bad: list[tuple[int, str, str, int]] = []
    for batch in read_all_lines(inp):
        for line_no, head, size in batch.too_long:
            bad.append((line_no, "line too long", head, size))
        for line_no, text in zip(
            batch.table["source_offset"].to_pylist(), batch.table["line"].to_pylist(), strict=True
        ):
            parsed = _parse_line(text)
            if isinstance(parsed, str):
                bad.append((line_no, parsed, text[:RAW_KEEP_CHARS], len(text)))
            elif parsed is not None:
                good.append((*parsed, line_no))
    return good, bad


def add_list(ws: Workspace, path: str, name: str, *, force: bool = False) -> IntelLoad:
    """Load (or refresh) list ``name`` from ``path`` into the workspace."""
    if not _NAME.match(name):
        raise InputError(f"list name {name!r}: use 1-64 letters, digits, '_', '-', '.', ':'")
    started = time.monotonic()
    inp = Input.open(path)
    result = IntelLoad(name=name, file=path)
    try:
        seen = ws.scalar(
            "SELECT count(*) FROM ingest_runs r WHERE r.sha256 = ? AND r.format = ? "
            "AND EXISTS (SELECT 1 FROM intel i WHERE i.ingest_run_id = r.ingest_run_id "
            "AND i.list_name = ?)",
            [inp.sha256, LIST_FORMAT, name],
        )
        if seen and not force:
            result.status = "skipped"
            result.message = "this file is already loaded under this name; use --force to reload"
            return result
        good, bad = parse_list(inp)
    finally:
        inp.close()
    if not good and not bad:
        raise InputError(f"{path}: no indicators found (empty list?)")
    _store(ws, inp, name, good, bad, result)
    result.seconds = time.monotonic() - started
    return result


def _store(
    ws: Workspace,
    inp: Input,
    name: str,
    good: list[tuple[netaddr.Network, float | None, str, int]],
    bad: list[tuple[int, str, str, int]],
    result: IntelLoad,
) -> None:
    now = dt.datetime.now(dt.UTC)
    run_id = uuid.uuid4().hex[:16]
    unique: dict[str, tuple[netaddr.Network, float | None, str, int]] = {}
    for item in good:
        unique.setdefault(item[0].text, item)
    ids = [intel_id(name, text) for text in unique]
    with ws.transaction():
        old = ws.query("SELECT intel_id, first_seen FROM intel WHERE list_name = ?", [name])
        first_seen = dict(
            zip(old["intel_id"].to_pylist(), old["first_seen"].to_pylist(), strict=True)
        )
        # The list's earlier loads are replaced: their quarantined lines and runs go too.
        for table in ("quarantine", "ingest_runs"):
            ws.con.execute(
                f'DELETE FROM "{table}" WHERE ingest_run_id IN '
                "(SELECT DISTINCT ingest_run_id FROM intel WHERE list_name = ?)",
                [name],
            )
        ws.con.execute(
            "DELETE FROM intel_buckets WHERE intel_id IN "
            "(SELECT intel_id FROM intel WHERE list_name = ?)",
            [name],
        )
        ws.con.execute("DELETE FROM intel WHERE list_name = ?", [name])
        nets = [item[0] for item in unique.values()]
        ws.append(
            "intel",
            pa.table(
                {
                    "intel_id": ids,
                    "list_name": [name] * len(ids),
                    "indicator": [n.text for n in nets],
                    "family": pa.array([n.family for n in nets], pa.int8()),
                    "prefix_len": pa.array([n.prefix_len for n in nets], pa.int16()),
                    "start_key": [n.start_key for n in nets],
                    "end_key": [n.end_key for n in nets],
                    "score": pa.array([item[1] for item in unique.values()], pa.float64()),
                    "comment": [item[2] or None for item in unique.values()],
                    "first_seen": pa.array(
                        [first_seen.get(i, now) for i in ids], pa.timestamp("us", tz="UTC")
                    ),
                    "last_seen": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
                    "source_format": [LIST_FORMAT] * len(ids),
                    "source_file": [inp.display] * len(ids),
                    "source_offset": pa.array([item[3] for item in unique.values()], pa.int64()),
                    "ingest_run_id": [run_id] * len(ids),
                }
            ),
        )
        bucket_ids, buckets = [], []
        for iid, net in zip(ids, nets, strict=True):
            for bucket in net.buckets():
                bucket_ids.append(iid)
                buckets.append(bucket)
        ws.append("intel_buckets", pa.table({"intel_id": bucket_ids, "bucket": buckets}))
        if bad:
            ws.append(
                "quarantine",
                pa.table(
                    {
                        "ingest_run_id": [run_id] * len(bad),
                        "source_format": [LIST_FORMAT] * len(bad),
                        "source_file": [inp.display] * len(bad),
                        "source_offset": pa.array([b[0] for b in bad], pa.int64()),
                        "reason": [b[1] for b in bad],
                        "raw": [b[2] for b in bad],
                        "raw_length": pa.array([b[3] for b in bad], pa.int64()),
                    }
                ),
            )
        ws.append(
            "ingest_runs",
            pa.table(
                {
                    "ingest_run_id": [run_id],
                    "file": [inp.display],
                    "sha256": [inp.sha256],
                    "format": [LIST_FORMAT],
                    "target_table": ["intel"],
                    "rows_parsed": [len(ids)],
                    "rows_quarantined": [len(bad)],
                    "started_at": pa.array([now], pa.timestamp("us", tz="UTC")),
                    "duration_s": [(dt.datetime.now(dt.UTC) - now).total_seconds()],
                }
            ),
        )
    result.indicators = len(ids)
    result.added = len(set(ids) - set(first_seen))
    result.removed = len(set(first_seen) - set(ids))
    result.quarantined = len(bad)
    for b in bad:
        kind = b[1].split(":")[0]
        result.reasons[kind] = result.reasons.get(kind, 0) + 1
