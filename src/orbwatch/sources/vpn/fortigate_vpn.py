"""FortiGate SSL-VPN and IPsec event logs (``type="event" subtype="vpn"``, key=value).

One row per VPN event (``service = vpn``, ``event`` = the ``action``):

=====================================================  =========  ==========================
action                                                 outcome    what is taken
=====================================================  =========  ==========================
``ssl-login-fail``, ``ipsec-login-fail``                failure    ``reason``
``tunnel-up`` (SSL tunnel or IPsec phase 2 up)          success    ``tunnelip`` not kept
``tunnel-down``                                         end        ``duration``, bytes
``negotiate`` with an error or failure ``status``       failure    ``status``/``msg``
any other VPN action (``ssl-new-con``, ``tunnel-stats``,  info
``negotiate``, ``ssl-alert``, ``ssl-exit-error``...)
=====================================================  =========  ==========================

``user`` is ``user`` (else the IPsec ``xauthuser``), ``src_ip`` ``remip`` (port
``remport``), ``target_ip`` ``locip``, ``policy`` the user ``group`` (else the VPN tunnel
name ``vpntunnel``), ``auth_method`` the ``tunneltype`` (``ssl-web``, ``ssl-tunnel``,
``ipsec``...), ``bytes`` ``sentbyte`` + ``rcvdbyte``. FortiOS writes ``N/A`` for an unknown
user: it is stored as null. The time is ``eventtime`` (epoch, UTC) when present, else
``date``/``time`` with ``tz``, else the syslog header. FortiGate does not log a second
factor or a client certificate in these events: ``mfa`` and ``machine_cert`` are
``unknown``. Other FortiGate logs (traffic, UTM, other events) are counted as skipped.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.logins import LOGIN_KINDS
from orbwatch.sources.auth.rules import clean_address
from orbwatch.sources.syslog import Field, LineFormat, LineSource, TimeField, kv
from orbwatch.sources.vpn.shared import given

_VPN = r"(?:^|\s)subtype=\"?vpn\"?(?:\s|$)"
_ACTION = pl.col("_action")


def _f(column: str, expr: pl.Expr) -> Field:
    return Field(expr, LOGIN_KINDS[column])


_FAILED = _ACTION.str.contains("login-fail$") | (
    (_ACTION == "negotiate") & kv("status").str.contains(r"(?i)fail|error")
)
_SENT = kv("sentbyte").cast(pl.Int64, strict=False)
_RCVD = kv("rcvdbyte").cast(pl.Int64, strict=False)
_ZONE = kv("tz").str.replace(r"^([+-]\d\d):?(\d\d)$", "$1:$2")

FORTIGATE_VPN = LineFormat(
    name="fortigate_vpn",
    table="logins",
    description="FortiGate SSL-VPN or IPsec event",
    recognise=_VPN + r"|(?:^|\s)logdesc=\"?(?:SSL VPN|IPsec)",
    patterns=(r"(?:^|\s)action=\"?(?P<_action>[\w-]+)",),
    fields={
        "event": _f("event", _ACTION),
        "outcome": _f(
            "outcome",
            pl.when(_FAILED)
            .then(pl.lit("failure"))
            .when(_ACTION == "tunnel-up")
            .then(pl.lit("success"))
            .when(_ACTION == "tunnel-down")
            .then(pl.lit("end"))
            .otherwise(pl.lit("info")),
        ),
        "user": _f("user", pl.coalesce(given(kv("user")), given(kv("xauthuser")))),
        "src_ip": _f("src_ip", clean_address(given(kv("remip")))),
        "src_port": _f("src_port", given(kv("remport"))),
        "target_ip": _f("target_ip", clean_address(given(kv("locip")))),
        "target": _f("target", given(kv("devname"))),
        "policy": _f("policy", pl.coalesce(given(kv("group")), given(kv("vpntunnel")))),
        "auth_method": _f("auth_method", given(kv("tunneltype"))),
        "failure_reason": _f(
            "failure_reason",
            pl.when(_FAILED | (_ACTION == "tunnel-down")).then(
                pl.coalesce(given(kv("reason")), given(kv("status")), given(kv("msg")))
            ),
        ),
        "duration_s": _f("duration_s", given(kv("duration"))),
        "bytes": _f(
            "bytes",
            pl.when(_SENT.is_not_null() | _RCVD.is_not_null()).then(
                (_SENT.fill_null(0) + _RCVD.fill_null(0)).cast(pl.String)
            ),
        ),
        "session_id": _f("session_id", given(kv("tunnelid"))),
        "mfa": _f("mfa", pl.lit("unknown")),
        "machine_cert": _f("machine_cert", pl.lit("unknown")),
    },
    time=(
        TimeField(kv("eventtime")),
        TimeField(kv("date") + pl.lit("T") + kv("time") + _ZONE),
        TimeField(kv("date") + pl.lit(" ") + kv("time"), "%Y-%m-%d %H:%M:%S"),
    ),
    constants={"service": "vpn"},
    required=("ts", "outcome"),
    skipped=(
        (
            pl.col("message").str.contains(r"(?:^|\s)type=\"?\w+\"?(?:\s|$)")
            & ~pl.col("message").str.contains(_VPN),
            pl.lit("FortiGate ")
            + pl.coalesce(kv("type"), pl.lit("?"))
            + pl.lit("/")
            + pl.coalesce(kv("subtype"), pl.lit("?"))
            + pl.lit(" log: not a VPN event"),
        ),
    ),
)


class FortigateVpn(LineSource):
    """FortiGate SSL-VPN and IPsec VPN events."""

    format: ClassVar = FORTIGATE_VPN
