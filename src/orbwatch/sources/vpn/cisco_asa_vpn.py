"""Cisco ASA / AnyConnect remote-access VPN and AAA messages (``%ASA-<level>-<id>:``).

Each message id below becomes a ``logins`` row (``service = vpn``, ``event`` = the id):

======================================================  =========  ===========================
message                                                 outcome    what is taken
======================================================  =========  ===========================
113004 / 113012 AAA user authentication Successful      success    user, AAA server
                                                        (info once folded into a session)
113005 / 113015 AAA user authentication Rejected        failure    user, reason, user IP
113008 AAA transaction status ACCEPT                    info       user
113039 AnyConnect parent session started                success    group policy, user, IP
716001 WebVPN session started                           success    group policy, user, IP
                                                        (info when it repeats a 113039)
113019 Session disconnected                             end        type, duration, bytes,
                                                                   reason
716002 WebVPN session terminated                        end        reason
113029, 113030, 113033, 113035, 113038 session refused  failure    reason
113037 reboot pending, login denied; 113040 group lock  failure    reason (113040: group)
113031, 113032, 113034, 113036 ACL / AAA attribute      info       reason
722022 / 722023 SVC connection established / ended      info
722028 stale connection; 722037 SVC closing connection  info       reason
722051 address assigned to session                      info
722055 client type and version                          info       client
734001 DAP records selected                             info       DAP records as policy
751025 IKEv2 address assigned                           info       user, IP, port
717022 / 717028 certificate (chain) validated           info       machine_cert yes,
                                                                   subject CN as user
717009 certificate validation failed                    failure    machine_cert no, reason,
                                                                   subject CN as user
======================================================  =========  ===========================

``policy`` is the group policy or connection profile (``Group <...>`` / ``Group = ...``),
``target`` the ASA that logged the message (syslog host). ``machine_cert`` is ``yes``/``no``
on the 7170xx certificate messages. ASA logs neither MFA nor the session's certificate on the
session itself: :mod:`~orbwatch.sources.vpn.asa_sessions` folds the AAA factors and the
certificate check logged just before a session start into its ``mfa``, ``mfa_method`` and
``machine_cert`` (every other row keeps ``unknown``). Other ASA messages (connections, NAT,
...) are counted as skipped; a message of the VPN families (113, 716, 717, 722, 734, 751) not
in the table goes to quarantine.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import polars as pl
import pyarrow as pa

from orbwatch.sources.auth.rules import Message, login_format
from orbwatch.sources.base import Parsed
from orbwatch.sources.syslog import Clock, Field, LineSource, _YearState
from orbwatch.sources.vpn.asa_sessions import fold_sessions
from orbwatch.sources.vpn.shared import extended

_ID = r"%(?:ASA|FTD)-\d-"
_VPN_FAMILIES = r"(?:113|716|717|722|734|751)\d{3}: "
# "Group <G> User <U> IP <I>" (AnyConnect, brackets optional) before the message text.
_GUI = r"Group <?(?P<policy>[^<>]*?)>? User <?(?P<user>[^<>]*?)>? IP <?(?P<src_ip>[^<>\s]*)>? "
# "Group = G, Username = U, IP = I," (IPsec / ISAKMP prefix).
_GUI_EQ = r"Group = (?P<policy>[^,]*), Username = (?P<user>[^,]*), IP = (?P<src_ip>[^,\s]*), "


def _m(ids: str, text: str, outcome: str, **values: str) -> Message:
    """A message kind: ``ids`` (regex), the text after ``%ASA-n-<id>: `` and its outcome."""
    return Message(_ID + f"(?P<event>{ids}): " + text, {"outcome": outcome, **values})


MESSAGES = (
    _m(
        r"1130(?:04|12)",
        r"AAA user authentication Successful : (?:server =\s*(?P<target_ip>[^:\s]+)\s*|"
        r"local database\s*): user =\s*(?P<user>.+?)\s*$",
        "success",
        auth_method="aaa",
    ),
    _m(
        r"1130(?:05|15)",
        r"AAA user authentication Rejected : reason =\s*(?P<failure_reason>.+?)\s*: "
        r"(?:server =\s*(?P<target_ip>[^:\s]+)\s*|local database\s*): user =\s*(?P<user>.+?)"
        r"(?:\s*: user IP =\s*(?P<src_ip>\S+))?\s*$",
        "failure",
        auth_method="aaa",
    ),
    _m(r"113008", r"AAA transaction status ACCEPT\s*: user = (?P<user>.+?)\s*$", "info"),
    _m(r"113039", _GUI + r"AnyConnect parent session started", "success"),
    _m(r"716001", _GUI + r"WebVPN session started", "success"),
    _m(
        r"113019",
        _GUI_EQ + r"Session disconnected\. Session Type: (?P<auth_method>[^,]+), "
        r".*?Reason: (?P<failure_reason>.*)$",
        "end",
    ),
    _m(r"716002", _GUI + r"WebVPN session terminated: (?P<failure_reason>.*)$", "end"),
    _m(r"1130(?:29|30|33|35|38)", _GUI + r"(?P<failure_reason>.+)$", "failure"),
    _m(r"113037", r"(?P<failure_reason>Reboot pending.*)$", "failure"),
    _m(
        r"113040",
        r"Terminating the VPN connection attempt from (?P<policy>\S+?)\.? Reason: "
        r"(?P<failure_reason>.*)$",
        "failure",
    ),
    _m(r"1130(?:31|32|34|36)", _GUI + r"(?P<failure_reason>.+)$", "info"),
    _m(r"72202[23]", _GUI + r"(?:TCP|UDP) (?:SVC|Connection) connection", "info"),
    _m(r"722028", _GUI + r"Stale SVC connection closed", "info"),
    _m(r"722037", _GUI + r"SVC closing connection: (?P<failure_reason>.*)$", "info"),
    _m(r"722051", _GUI + r"IPv4 Address", "info"),
    _m(r"722055", _GUI + r"Client Type: (?P<client>.+?)\s*$", "info"),
    _m(
        r"734001",
        r"DAP: User (?P<user>[^,]+), Addr (?P<src_ip>[^,]+), Connection (?P<auth_method>[^:]+):"
        r" The following DAP records were selected for this connection: (?P<policy>.+?)\s*$",
        "info",
    ),
    _m(
        r"751025",
        r"Local: ?\S+ Remote: ?(?P<src_ip>\S+) Username: ?(?P<user>\S+)",
        "info",
        auth_method="ikev2",
    ),
    _m(
        r"717022",
        r"Certificate was successfully validated\.",
        "info",
        machine_cert="yes",
        auth_method="certificate",
    ),
    _m(
        r"717028",
        r"Certificate chain was successfully validated(?P<failure_reason>.*)$",
        "info",
        machine_cert="yes",
        auth_method="certificate",
    ),
    _m(
        r"717009",
        r"Certificate validation failed\.\s*(?P<failure_reason>.*)$",
        "failure",
        machine_cert="no",
        auth_method="certificate",
    ),
)

# Session totals of 113019, which a rule table cannot add up.
_TOTALS = (
    r"113019: .*Duration: (?:(?P<asa_d>\d+)d ?)?(?P<asa_h>\d+)h:(?P<asa_m>\d+)m:(?P<asa_s>\d+)s,"
    r" Bytes xmt: (?P<asa_xmt>\d+), Bytes rcv: (?P<asa_rcv>\d+)"
)
# The subject CN of a certificate check (passed or failed), without the sentence's full stop.
_SUBJECT = r"7170(?:22|09): .*?subject name: *(?:.*?\b(?i:cn)=)?(?P<asa_cn>[^,]+?)\.?\s*(?:,|$)"


def _number(name: str) -> pl.Expr:
    return pl.col(name).cast(pl.Int64, strict=False).fill_null(0)


_SECONDS = (
    _number("asa_d") * 86400 + _number("asa_h") * 3600 + _number("asa_m") * 60 + _number("asa_s")
)
_RULES = login_format(
    "cisco_asa_vpn",
    "Cisco ASA / AnyConnect VPN message",
    MESSAGES,
    constants={"service": "vpn"},
    # An expression, not a regex, so that sniffing does not count a firewall's log as ours.
    skipped=(
        (
            pl.col("line").str.contains(_ID + r"\d{6}: ")
            & ~pl.col("line").str.contains(_ID + _VPN_FAMILIES),
            "Cisco ASA message that is not a VPN or authentication event",
        ),
    ),
)
ASA_VPN = extended(
    _RULES,
    (_TOTALS, _SUBJECT),
    {
        # ASA masks the account name of a rejected login ("user = *****") unless told not to.
        "user": Field(
            pl.when(_RULES.fields["user"].expr.str.contains(r"^\*+$"))
            .then(pl.lit(None, pl.String))
            .otherwise(pl.coalesce(_RULES.fields["user"].expr, pl.col("asa_cn")))
        ),
        # The ASA that logged the message: sessions are folded per device (asa_sessions).
        "target": Field(pl.col("host")),
        "mfa_method": Field(pl.lit(None, pl.String)),
        "bytes": Field(
            pl.when(pl.col("asa_xmt").is_not_null()).then(
                (_number("asa_xmt") + _number("asa_rcv")).cast(pl.String)
            ),
            "count",
        ),
        "duration_s": Field(
            pl.when(pl.col("asa_h").is_not_null()).then(_SECONDS.cast(pl.String)), "float"
        ),
    },
    on="line",
)


class CiscoAsaVpn(LineSource):
    """Cisco ASA / AnyConnect remote-access VPN, AAA and certificate messages."""

    format: ClassVar = ASA_VPN

    def parse_lines(
        self,
        table: pa.Table,
        clock: Clock | None = None,
        state: _YearState | None = None,
        turn: int | None = None,
    ) -> Parsed:
        """One row per message, then each batch's sessions folded (see :mod:`asa_sessions`)."""
        parsed = super().parse_lines(table, clock, state, turn)
        return dataclasses.replace(parsed, rows=fold_sessions(parsed.rows))
