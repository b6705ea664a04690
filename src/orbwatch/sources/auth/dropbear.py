"""Dropbear SSH, the SSH server of OpenWrt, DD-WRT and most SOHO routers and IoT devices.

Dropbear is the login service of the devices covert networks are built from, so its log is
where a router's takeover shows. Lines come through syslog, OpenWrt's ``logread``
(``Thu Mar  7 12:34:56 2024 authpriv.warn dropbear[1546]: ...``, a stamp the syslog header
parser does not know and which is read here) or a bare message file. Rows (``service = ssh``):

=====================================================  =========  ==========================
message                                                outcome    event
=====================================================  =========  ==========================
Password auth succeeded for 'U' from IP:PORT           success    accepted (password)
Pubkey auth succeeded for 'U' with <key> from IP:PORT  success    accepted (publickey)
Bad password attempt for 'U' from IP:PORT              failure    failed (password)
Bad PAM password attempt for 'U' from IP:PORT          failure    failed (pam)
Login attempt for nonexistent user ['U'] from IP:PORT  failure    invalid_user
User account 'U' is locked                             failure    locked
Exit before auth from <IP:PORT>: [(user 'U', N fails):] info       exit_before_auth
<reason>
Child connection from IP:PORT                          info       connection
Exit (U)[ from <IP:PORT>]: <reason>                    end        session_exit
=====================================================  =========  ==========================

Dropbear logs neither a second factor nor host certificates: ``mfa`` and ``machine_cert`` are
``unknown``. Its other messages (start-up, key generation) and other programs' lines are
counted as skipped. A line without any timestamp (a bare message file) goes to quarantine with
``ts: missing``: its time is not known.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.rules import Message, login_format
from orbwatch.sources.syslog import LineSource
from orbwatch.sources.vpn.shared import CTIME, extended

_FROM = r"from <?(?P<src_ip>\[[^\]]+\]|[0-9A-Fa-f.:]+?):(?P<src_port>\d{1,5})>?"


def _m(text: str, outcome: str, event: str, **values: str) -> Message:
    return Message(r"(?:^|: )" + text, {"outcome": outcome, "event": event, **values})


MESSAGES = (
    _m(
        rf"Password auth succeeded for '(?P<user>[^']*)' {_FROM}",
        "success",
        "accepted",
        auth_method="password",
    ),
    _m(
        rf"Pubkey auth succeeded for '(?P<user>[^']*)' with .*? {_FROM}",
        "success",
        "accepted",
        auth_method="publickey",
    ),
    _m(
        rf"Bad password attempt for '(?P<user>[^']*)' {_FROM}",
        "failure",
        "failed",
        auth_method="password",
        failure_reason="wrong password",
    ),
    _m(
        rf"Bad PAM password attempt for '(?P<user>[^']*)' {_FROM}",
        "failure",
        "failed",
        auth_method="pam",
        failure_reason="wrong password",
    ),
    _m(
        rf"Login attempt for nonexistent user(?: '(?P<user>[^']*)')? {_FROM}",
        "failure",
        "invalid_user",
        failure_reason="invalid user",
    ),
    _m(
        r"User account '(?P<user>[^']*)' is locked",
        "failure",
        "locked",
        failure_reason="account locked",
    ),
    _m(
        rf"Exit before auth {_FROM}:\s*(?:\(user '(?P<user>[^']*)', \d+ fails?\):\s*)?"
        r"(?P<failure_reason>.*)$",
        "info",
        "exit_before_auth",
    ),
    _m(rf"Child connection {_FROM}", "info", "connection"),
    _m(rf"Exit \((?P<user>[^)]*)\)(?: {_FROM})?:\s*(?P<failure_reason>.*)$", "end", "session_exit"),
)
# The program: from the syslog header or from a logread line (None in a bare message file).
_PROGRAM = pl.coalesce(
    pl.col("program"),
    pl.col("line").str.extract(r"^\w{3} \w{3} +\d+ [\d:]{8} \d{4} \S+ ([^\s\[:]+)", 1),
)
DROPBEAR = extended(
    login_format(
        "dropbear",
        "Dropbear SSH log",
        MESSAGES,
        constants={"service": "ssh"},
        skipped=(
            (
                _PROGRAM.is_not_null() & ~_PROGRAM.str.contains(r"^dropbear"),
                pl.lit("not a dropbear line: program ") + _PROGRAM,
            ),
            (
                r"(?:^|: )(?:Running in background|Not backgrounding|Failed listening|"
                r"Generated hostkey|Generating (?:\S+ )?key|Early exit|Premature exit|"
                r"Failed loading|Failed reading|Disallowed|Password auth attempt|"
                r"Pubkey auth attempt|Login attempt with wrong|Max auth tries|Connection from)",
                "dropbear message that is not an authentication event",
            ),
        ),
    ),
    on="line",
    time=(CTIME,),
)


class Dropbear(LineSource):
    """Dropbear SSH (routers, IoT): syslog, OpenWrt logread or bare messages."""

    format: ClassVar = DROPBEAR
