"""Cisco Duo authentication log: Admin API JSON (v2 and v1) and CSV exports.

Fields (v2 spelling / v1 or CSV spelling): ``isotimestamp`` (else epoch ``timestamp``) -> ts,
``user.name`` / ``username`` / ``user`` -> user, ``access_device.ip`` / ``ip`` /
``access_device_ip`` -> src_ip, ``application.name`` / ``integration`` / ``application`` ->
target, ``result`` (``success`` -> success; ``denied``, ``failure``, ``fraud``, ``error`` ->
failure), ``reason`` -> failure_reason for failures, ``factor`` -> mfa_method,
``access_device.browser`` + ``os`` -> client, ``txid`` -> session_id,
``access_device.location.country`` -> country_logged. Only ``event_type = authentication``
(or no event type, as in v1) is a login; enrollment events are skipped.

Duo *is* the second factor, so its MFA rule is about whether one was really presented:
``mfa = no`` when Duo let the user through without one (reason ``allow_unenrolled_user``,
``bypass_user``, ``allowed_by_policy``, ``trusted_network``, ``remembered_device``, or factor
``remembered_device``/``trusted_network``/``not_available``), ``mfa = yes`` when a factor was
named, else ``unknown``. Duo's ``trusted_endpoint_status = trusted`` means the device proved
itself with a Duo device certificate or management check: ``machine_cert = yes``;
``not trusted`` is ``no``; absent is ``unknown``.

CSV columns are matched by name after lower-casing and replacing non-alphanumerics by ``_``
(``Access Device IP`` -> ``access_device_ip``), so column order does not matter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

import duckdb
import pyarrow as pa

from orbwatch.sources.auth.json_records import JsonLoginSource
from orbwatch.sources.base import Parsed
from orbwatch.sources.inputs import BATCH_LINES, Input


def _first(*paths: str) -> str:
    return "coalesce(" + ", ".join(f"json_extract_string(r, '$.{p}')" for p in paths) + ")"


_RESULT = f"lower({_first('result')})"
_REASON = f"lower({_first('reason')})"
_FACTOR = f"lower({_first('factor')})"
_NO_SECOND_FACTOR = (
    f"({_REASON} IN ('allow_unenrolled_user', 'bypass_user', 'allowed_by_policy', "
    f"'trusted_network', 'remembered_device') OR {_FACTOR} IN "
    "('remembered_device', 'trusted_network', 'not_available', 'n/a'))"
)
_EPOCH = "CAST(to_timestamp(TRY_CAST(json_extract_string(r, '$.timestamp') AS DOUBLE)) AS VARCHAR)"


class DuoAuthLog(JsonLoginSource):
    """Duo authentication log as returned by the Admin API (JSON)."""

    name: ClassVar[str] = "duo"
    description: ClassVar[str] = "Cisco Duo authentication log (Admin API JSON)"
    is_login: ClassVar[str] = (
        f"coalesce(lower({_first('event_type')}), 'authentication') = 'authentication'"
    )
    not_login: ClassVar[str] = f"'Duo ' || {_first('event_type')} || ' event is not a login'"
    columns: ClassVar[dict[str, str]] = {
        "ts": (
            f"coalesce({_first('isotimestamp', 'timestamp_utc')}, "
            f"CASE WHEN json_extract_string(r, '$.timestamp') SIMILAR TO '[0-9.]+' "
            f"THEN {_EPOCH} ELSE json_extract_string(r, '$.timestamp') END)"
        ),
        "user": _first("user.name", "username", "user"),
        "src_ip": _first("access_device.ip", "ip", "access_device_ip", "ip_address"),
        "service": "'sso'",
        "target": _first("application.name", "integration", "application"),
        "outcome": (
            f"CASE WHEN {_RESULT} = 'success' THEN 'success' "
            f"WHEN {_RESULT} IN ('denied', 'failure', 'fraud', 'error') THEN 'failure' "
            f"WHEN {_RESULT} IS NOT NULL THEN 'info' END"
        ),
        "failure_reason": f"CASE WHEN {_RESULT} <> 'success' THEN {_first('reason')} END",
        "mfa": (
            f"CASE WHEN {_NO_SECOND_FACTOR} THEN 'no' "
            f"WHEN {_FACTOR} IS NOT NULL AND {_FACTOR} <> '' THEN 'yes' END"
        ),
        "mfa_method": _first("factor"),
        "machine_cert": (
            f"CASE lower({_first('trusted_endpoint_status')}) WHEN 'trusted' THEN 'yes' "
            "WHEN 'not trusted' THEN 'no' END"
        ),
        "client": (
            "nullif(concat_ws(' ', "
            + _first("access_device.browser", "access_device_browser")
            + ", "
            + _first("access_device.browser_version")
            + ", "
            + _first("access_device.os", "access_device_os")
            + "), '')"
        ),
        "session_id": _first("txid"),
        "country_logged": _first("access_device.location.country", "access_device_country"),
        "event": _first("event_type"),
    }

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        sample = head[:16384].decode("utf-8", "replace")
        return all(
            re.search(rf'\\?"{key}\\?"\s*:', sample)
            for key in ("txid", "factor", "result", "reason")
        )


class DuoAuthCsv(DuoAuthLog):
    """Duo authentication log exported as CSV (columns matched by normalised name)."""

    name: ClassVar[str] = "duo_csv"
    description: ClassVar[str] = "Cisco Duo authentication log (CSV export)"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
        names = {re.sub(r"[^a-z0-9]+", "_", part).strip("_") for part in first.split(",")}
        return {"result", "factor"} <= names and bool(names & {"user", "username"})

    def parse(self, inp: Input) -> Iterator[Parsed]:
        # DuckDB's CSV reader splits, quotes and names the columns; each row becomes a JSON
        # object with normalised keys so that the JSON mapping above applies unchanged.
        con = duckdb.connect()
        try:
            reader = con.execute(
                "SELECT row_number() OVER () + 1 AS source_offset, to_json(t)::VARCHAR AS record "
                "FROM read_csv(?, all_varchar = true, header = true, normalize_names = true, "
                "ignore_errors = false) t",
                [str(inp.local_file())],
            ).fetch_record_batch(BATCH_LINES)
            for batch in reader:
                yield self.parse_records(con, pa.Table.from_batches([batch]))
        finally:
            con.close()
