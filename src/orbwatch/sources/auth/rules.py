"""Login line formats as tables of message kinds, built on the shared syslog line formats.

A product's authentication log is a handful of message kinds ("Accepted password for ...",
"Invalid user ..."), each with its own regex and its own constant meaning (outcome, method,
reason). :func:`login_format` turns such a table into one
:class:`~orbwatch.sources.syslog.LineFormat`: every kind's named groups are prefixed so that
kinds do not collide, the first kind that matches a message decides every column, and the
kinds together are what the format recognises. Named groups and constant values use
``logins`` column names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from orbwatch.sources.auth.logins import LOGIN_KINDS
from orbwatch.sources.syslog import Field, LineFormat

_GROUP = re.compile(r"\(\?P<(\w+)>")
# An address as products write it (see logins.split_address): brackets, a port, a zone id.
_BRACKETED = r"^\[(?P<a>[^\]]{2,64})\](?::\d{1,5})?$"
_V4_PORT = r"^(?P<a>\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$"


@dataclass(frozen=True)
class Message:
    """One kind of message: a regex over the message, and the constant values it implies."""

    pattern: str
    values: Mapping[str, str] = field(default_factory=dict)


def clean_address(expr: pl.Expr) -> pl.Expr:
    """An address without brackets, port or zone id (``[fe80::1%eth0]:22`` -> ``fe80::1``)."""
    text = expr.str.strip_chars()
    bare = pl.coalesce(text.str.extract(_BRACKETED, 1), text.str.extract(_V4_PORT, 1), text)
    return bare.str.replace(r"%[^%]*$", "")


def login_format(
    name: str,
    description: str,
    messages: tuple[Message, ...],
    *,
    constants: Mapping[str, str],
    program: str | None = None,
    skipped: tuple[tuple[str | pl.Expr, str | pl.Expr], ...] = (),
    defaults: Mapping[str, str] | None = None,
) -> LineFormat:
    """A ``logins`` LineFormat from a table of message kinds (first matching kind wins)."""
    patterns = []
    columns: set[str] = set()
    for i, message in enumerate(messages):
        groups = _GROUP.findall(message.pattern)
        columns.update(groups, message.values)
        patterns.append(f"(?P<m{i}_hit>)" + _GROUP.sub(rf"(?P<m{i}_\1>", message.pattern))
    unknown = columns - set(LOGIN_KINDS)
    if unknown:
        raise ValueError(f"{name}: not logins columns: {sorted(unknown)}")
    defaults = {"mfa": "unknown", "machine_cert": "unknown", **(defaults or {})}
    fields: dict[str, Field] = {}
    for column in sorted(columns | set(defaults)):
        chain: Any = None
        for i, message in enumerate(messages):
            hit = pl.col(f"m{i}_hit").is_not_null()
            if column in _GROUP.findall(message.pattern):
                value = pl.col(f"m{i}_{column}")
            elif column in message.values:
                value = pl.lit(message.values[column])
            else:
                continue
            then = pl.when(hit).then(value) if chain is None else chain.when(hit).then(value)
            chain = then
        expr = pl.lit(None, pl.String) if chain is None else chain.otherwise(pl.lit(None))
        if column in ("src_ip", "target_ip"):
            expr = clean_address(expr)
        if column in defaults:
            expr = pl.coalesce(expr, pl.lit(defaults[column]))
        fields[column] = Field(expr, LOGIN_KINDS[column])
    plain = "|".join(f"(?:{_GROUP.sub('(?:', m.pattern)})" for m in messages)
    return LineFormat(
        name=name,
        table="logins",
        description=description,
        recognise=plain,
        fields=fields,
        patterns=tuple(patterns),
        sniff_program=program,
        constants=constants,
        required=("ts", "outcome"),
        skipped=skipped,
    )
