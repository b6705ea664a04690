"""Turning the text columns a login format extracted into typed ``logins`` rows.

Every authentication and VPN format ends the same way: a handful of text columns named after
``logins`` columns (``user``, ``src_ip``, ``outcome``...), the line numbers and raw lines they
came from, and a per-record *skip reason* for records the format understood but that are not
authentication events. :func:`build_logins` does the rest once for all of them:

* records with a skip reason are counted by reason (:attr:`Parsed.skipped`), not stored;
* addresses are cleaned (``[2001:db8::1]:443``, ``10.0.0.1:51234``, ``fe80::1%eth0``), and a
  port written inside the address fills ``src_port`` when the format had no port of its own;
* values are typed with :func:`orbwatch.sources.base.convert`; a record whose time is missing
  or whose value does not fit its column goes to quarantine with the reason;
* ``mfa`` and ``machine_cert`` default to ``unknown``: a format sets ``yes``/``no`` only where
  the product logs it (each module documents its rule).
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.sources.base import Kind, Parsed, convert, rejects

# logins column -> kind of value. Columns a format did not extract stay null.
LOGIN_KINDS: dict[str, Kind] = {
    "ts": "time",
    "user": "str",
    "domain": "str",
    "src_ip": "addr",
    "src_port": "port",
    "service": "str",
    "target": "str",
    "target_ip": "addr",
    "outcome": "str",
    "failure_reason": "str",
    "mfa": "str",
    "mfa_method": "str",
    "machine_cert": "str",
    "client": "str",
    "session_id": "str",
    "bytes": "count",
    "duration_s": "float",
    "event": "str",
    "auth_method": "str",
    "logon_type": "str",
    "policy": "str",
    "country_logged": "str",
}
OUTCOMES = ("success", "failure", "end", "info")
TRI_STATE = ("yes", "no", "unknown")
SERVICES = ("vpn", "ssh", "sso", "windows")
NULL_TEXT = ("", "-", "(null)", "null", "N/A", "n/a")

# An address as products write it: bracketed IPv6 with a port, IPv4 with a port, a zone id.
_BRACKETED = r"^\[(?P<address>[^\]]{2,64})\](?::(?P<port>\d{1,5}))?$"
_V4_PORT = r"^(?P<address>\d{1,3}(?:\.\d{1,3}){3})[:.](?P<port>\d{1,5})$"


def split_address(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(address, port text) from address text that may carry brackets, a port or a zone id.

    ``::ffff:192.0.2.1`` stays as written (its key is the IPv4 key). A zone id (``%eth0``) is
    dropped: it names an interface of the logging host and is not part of the address.
    """
    text = pc.utf8_trim_whitespace(pc.cast(text, pa.string()))
    bracketed = pc.extract_regex(text, _BRACKETED)
    v4_port = pc.extract_regex(text, _V4_PORT)
    address = pc.coalesce(
        _group(bracketed, "address"),
        _group(v4_port, "address"),
        text,
    )
    address = pc.replace_substring_regex(address, r"%[^%]*$", "")
    port = pc.coalesce(_group(bracketed, "port"), _group(v4_port, "port"))
    return address, port


def _group(extracted: pa.Array, name: str) -> pa.Array:
    """Group ``name`` of an ``extract_regex`` result (null where it did not match or is empty)."""
    value = pc.struct_field(extracted, name)
    return pc.if_else(pc.equal(value, ""), None, value)


def build_logins(
    raw: Mapping[str, pa.Array],
    offsets: pa.Array,
    lines: pa.Array,
    skip: pa.Array | None = None,
) -> Parsed:
    """Typed ``logins`` rows, rejects and skip counts from extracted text columns.

    ``raw`` maps logins column names (see :data:`LOGIN_KINDS`) to text arrays aligned with
    ``offsets`` and ``lines``. ``skip`` holds, per record, null or the reason it is not a
    login event. ``ts`` and ``outcome`` are required for a row.
    """
    unknown = set(raw) - set(LOGIN_KINDS)
    if unknown:
        raise ValueError(f"not logins columns: {sorted(unknown)}")
    skipped: dict[str, int] = {}
    if skip is not None and len(skip):
        keep = pc.is_null(skip)
        for item in pc.value_counts(skip.filter(pc.invert(keep))).to_pylist():
            skipped[item["values"]] = item["counts"]
        raw = {name: values.filter(keep) for name, values in raw.items()}
        offsets, lines = offsets.filter(keep), lines.filter(keep)
    raw = dict(raw)
    for column, port_column in (("src_ip", "src_port"), ("target_ip", None)):
        if column in raw:
            address, port = split_address(raw[column])
            raw[column] = address
            if port_column is not None:
                given = raw.get(port_column)
                raw[port_column] = port if given is None else pc.coalesce(given, port)
    columns = {name: (name, values, LOGIN_KINDS[name]) for name, values in raw.items()}
    typed, reason = convert(columns, nulls=NULL_TEXT)
    for required in ("ts", "outcome"):
        values = typed.get(required)
        missing = (
            pa.repeat(f"{required}: missing", len(offsets))
            if values is None
            else pc.if_else(pc.is_null(values), f"{required}: missing", None)
        )
        reason = missing if not len(reason) else pc.coalesce(reason, missing)
    good = pc.is_null(reason)
    rows = pa.table({name: values.filter(good) for name, values in typed.items()})
    for column in ("mfa", "machine_cert"):
        filled = (
            pc.fill_null(rows[column], "unknown")
            if column in rows.column_names
            else pa.repeat("unknown", rows.num_rows)
        )
        rows = _put(rows, column, filled)
    rows = _put(rows, "source_offset", offsets.filter(good))
    bad = pc.invert(good)
    return Parsed(
        rows, rejects(offsets.filter(bad), reason.filter(bad), lines.filter(bad)), skipped
    )


def _put(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def empty_parsed() -> Parsed:
    """A batch with nothing in it (an input of blank lines)."""
    return Parsed(
        pa.table({}),
        rejects(pa.array([], pa.int64()), pa.array([], pa.string()), pa.array([], pa.string())),
    )
