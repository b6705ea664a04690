"""Palo Alto Networks GlobalProtect: GLOBALPROTECT logs and ``globalprotect`` SYSTEM events.

PAN-OS 9.1 and later write a GLOBALPROTECT log (syslog CSV) for every step of a connection;
older releases, and the SYSTEM log of newer ones, write ``globalprotect*`` SYSTEM events whose
description carries the fields as text. Both become ``logins`` rows (``service = vpn``,
``event`` = the event id):

======================================================  =========  =========================
event                                                   outcome    note
======================================================  =========  =========================
status ``failure`` (any stage), ``*-auth-fail``          failure    reason / error
``portal-auth``, ``gateway-auth``, ``*-auth-succ``       success
``gateway-logout``, ``*-logout-succ``                    end        login duration
any other stage (prelogin, getconfig, register,          info
hip-report, connected, ``*-regist-succ``...)
======================================================  =========  =========================

GLOBALPROTECT columns used (0-based CSV positions): generated time 6, event id 8, auth method
10, user 12, source region 13, machine name 14, public IP 15 (IPv6 16), client version 21,
client OS 22, reason 25, error 26, status 28, login duration 30, connect method 31, portal or
gateway 33. ``machine_cert`` is ``yes`` when the connect method is ``pre-logon`` (pre-logon
authenticates the endpoint with its machine certificate) or the authentication method is a
client certificate; otherwise ``unknown``: GlobalProtect does not log the absence of one.
``mfa`` is ``unknown`` (an MFA step happens inside the authentication server).
``country_logged`` is the source region when it is a country code (PAN-OS writes an address
range for private sources). Other PAN-OS logs (TRAFFIC, THREAT, other SYSTEM events) in the
same stream are counted as skipped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from orbwatch.sources.auth.logins import LOGIN_KINDS
from orbwatch.sources.auth.rules import clean_address
from orbwatch.sources.syslog import Field, LineFormat, TimeField, part
from orbwatch.sources.vpn.shared import WrappedLineSource, given

_LEAD = r"^\d+,\d{4}/\d\d/\d\d \d\d:\d\d:\d\d,[^,]*,"
_GP_LOG = _LEAD + "GLOBALPROTECT,"
_GP_SYSTEM = _LEAD + "SYSTEM,globalprotect"
_IS_LOG = pl.col("message").str.contains(_GP_LOG)
_IS_SYSTEM = pl.col("message").str.contains(_GP_SYSTEM)
# By CSV position (quote-aware), not by a regex counting commas: a quoted client OS such as
# "Microsoft Windows 11 Enterprise , 64-bit" holds a comma.
_EVENT = part(8)
_STATUS = part(28)
# Text fields of a SYSTEM event's description ("Login from: 1.2.3.4, User name: bob, ...").
_TEXT = r"[^,\"]+?)\.?\s*(?:,|\"|$)"
_DESCRIPTION = (
    r"Login from: (?P<s_from>[^,\s\"]+)",
    r"Source region: (?P<s_region>[^,\s\"]+)",
    r"User name: (?P<s_user>" + _TEXT,
    r"Client version: (?P<s_client>" + _TEXT,
    r"Client OS version: (?P<s_os>" + _TEXT,
    r"Reason: (?P<s_reason>" + _TEXT,
    r"Auth type: (?P<s_auth>" + _TEXT,
)


def _f(column: str, log: pl.Expr, system: pl.Expr | None = None) -> Field:
    """A column from a GLOBALPROTECT log (CSV) or from a SYSTEM event's description."""
    expr: Any = pl.when(_IS_LOG).then(log)
    if system is not None:
        expr = expr.when(_IS_SYSTEM).then(system)
    return Field(expr.otherwise(pl.lit(None, pl.String)), LOGIN_KINDS[column])


def _client(*parts: pl.Expr) -> pl.Expr:
    """ "GlobalProtect <version> <OS> [<machine>]" from the parts that were logged."""
    logged = pl.concat_str(list(parts), separator=" ", ignore_nulls=True)
    return pl.when(logged != "").then(pl.lit("GlobalProtect ") + logged)


_FAILED = (_STATUS == "failure") | _EVENT.str.contains(r"-fail(?:ed|ure)?$")
_OUTCOME = (
    pl.when(_FAILED)
    .then(pl.lit("failure"))
    .when(_EVENT.is_in(["portal-auth", "gateway-auth"]) | _EVENT.str.ends_with("-auth-succ"))
    .then(pl.lit("success"))
    .when((_EVENT == "gateway-logout") | _EVENT.str.ends_with("-logout-succ"))
    .then(pl.lit("end"))
    .otherwise(pl.lit("info"))
)
_CERTIFICATE = (given(part(31)) == "pre-logon") | given(part(10)).str.contains(r"(?i)certificate")
_PUBLIC = given(part(15))
# PAN-OS writes the unspecified address for "no IPv4 (or IPv6) address".
_UNSPECIFIED = ["0.0.0.0", "::"]  # noqa: S104 - a value to compare, not an address to bind

GLOBALPROTECT = LineFormat(
    name="panos_globalprotect",
    table="logins",
    description="PAN-OS GlobalProtect event",
    recognise=f"{_GP_LOG}|{_GP_SYSTEM}",
    split=",",
    patterns=_DESCRIPTION,
    fields={
        "event": Field(_EVENT),
        "outcome": Field(_OUTCOME),
        "user": _f("user", given(part(12)), pl.col("s_user")),
        "src_ip": _f(
            "src_ip",
            clean_address(
                pl.when(_PUBLIC.is_in(_UNSPECIFIED)).then(given(part(16))).otherwise(_PUBLIC)
            ),
            clean_address(pl.col("s_from")),
        ),
        "target": Field(pl.col("host")),
        "policy": _f("policy", given(part(33))),
        "auth_method": _f("auth_method", given(part(10)), pl.col("s_auth")),
        "client": _f(
            "client",
            _client(given(part(21)), given(part(22)), given(part(14))),
            _client(pl.col("s_client"), pl.col("s_os")),
        ),
        "failure_reason": Field(
            pl.when(_FAILED).then(
                pl.coalesce(
                    pl.when(_IS_LOG).then(pl.coalesce(given(part(25)), given(part(26)))),
                    pl.col("s_reason"),
                )
            )
        ),
        "duration_s": _f("duration_s", pl.when(_EVENT == "gateway-logout").then(given(part(30)))),
        "country_logged": Field(
            pl.coalesce(pl.when(_IS_LOG).then(given(part(13))), pl.col("s_region")).str.extract(
                r"^([A-Z]{2})$", 1
            )
        ),
        "machine_cert": Field(
            pl.when(_IS_LOG & _CERTIFICATE.fill_null(False))
            .then(pl.lit("yes"))
            .otherwise(pl.lit("unknown"))
        ),
        "mfa": Field(pl.lit("unknown")),
    },
    time=(TimeField(part(6), "%Y/%m/%d %H:%M:%S"),),
    constants={"service": "vpn"},
    required=("ts", "outcome"),
    skipped=(
        (
            pl.col("message").str.contains(_LEAD + r"[A-Z]+,") & ~_IS_LOG & ~_IS_SYSTEM,
            pl.lit("PAN-OS ")
            + pl.col("message").str.extract(_LEAD + r"([A-Z]+),", 1)
            + pl.lit(" log: not a GlobalProtect event"),
        ),
    ),
)


class PanosGlobalProtect(WrappedLineSource):
    """PAN-OS GlobalProtect (GLOBALPROTECT log and SYSTEM globalprotect events)."""

    format: ClassVar = GLOBALPROTECT
