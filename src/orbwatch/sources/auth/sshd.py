"""OpenSSH sshd and its PAM lines (``auth.log``/``secure``, ``journalctl -o short-iso``).

Every sshd message kind below becomes a ``logins`` row (``service = ssh``); ``event`` names
the kind so that a detector can choose which to count, because one attempt on a missing
account is logged up to three times (``invalid_user``, ``failed``, ``pam_failure``):

==========================================================  =========  ====================
message                                                     outcome    event
==========================================================  =========  ====================
Accepted <method> for U from IP port P                      success    accepted
Failed <method> for [invalid user] U from IP port P         failure    failed
message repeated N times: [ Failed ... ]                    failure    failed_repeated
Invalid user U from IP [port P]                             failure    invalid_user
User U from IP not allowed because ...                      failure    not_allowed
pam_unix(sshd:auth): authentication failure; ... rhost=IP   failure    pam_failure
error: PAM: authentication error / unknown user / User not  failure    pam_error
known ... for [illegal user] U from IP
Disconnecting: Too many authentication failures for U       failure    too_many_failures
Connection closed/reset by [invalid|authenticating user U]  info       closed_preauth
IP port P [preauth]; Disconnected from ... [preauth]
Disconnected from [invalid] user U IP port P (no preauth);  info       disconnected
Disconnecting invalid user U IP port P
Received disconnect from IP port P ...                      info       received_disconnect
Did not receive identification string from IP               info       no_identification
[fatal: ]Unable to negotiate with IP port P: ...            info       negotiation_failed
fatal: Timeout before authentication for IP port P          info       timeout
reverse mapping checking getaddrinfo ... [IP] failed;       info       reverse_mapping
Address IP maps to H, but this does not map back ...
Bad protocol version identification '...' from IP port P    info       bad_protocol_version
PAM N more authentication failures; ... rhost=IP            info       pam_more_failures
pam_unix(sshd:session): session opened for user U           info       session_opened
pam_unix(sshd:session): session closed for user U           end        session_closed
==========================================================  =========  ====================

The pam_unix kinds are also read in the form Linux-PAM wrote before version 0.99 (2006), with
the module in the syslog tag and not in the message: ``sshd(pam_unix)[pid]: authentication
failure; ... rhost=IP user=U`` (``pam_failure``), ``sshd(pam_unix)[pid]: 2 more authentication
failures; ...`` (``pam_more_failures``), ``session opened/closed for user U``.

``auth_method`` is the method sshd names (``password``, ``publickey``, ``none``,
``keyboard-interactive/pam``). sshd does not log MFA as such (a second method shows as a
separate "Partial"/"Accepted" line) nor host certificates: ``mfa`` and ``machine_cert`` are
``unknown``. Lines of other programs (cron, sudo, systemd-logind in the same file) and sshd
messages that are not about authentication (listening, signals, "check pass; user unknown",
``debug1:`` output, transport errors such as "Corrupted MAC on input") are counted as
skipped. Anything else from sshd goes to quarantine.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.rules import Message, login_format
from orbwatch.sources.syslog import LineSource

# An address ends with a hex digit: "from 1.2.3.4: 11: Bye" must not take the colon.
_IP = r"[0-9A-Fa-f:.]*[0-9A-Fa-f]"
_FROM = rf"(?P<src_ip>{_IP}|\[[^\]]+\])(?: port (?P<src_port>\d+))?"
# PAM's rhost is a host name when sshd resolves names (UseDNS): only an address is kept.
_RHOST = rf"rhost=(?:(?P<src_ip>{_IP})(?:\s|$)|\S*)"
_WHO = r"(?:(?:invalid|authenticating) user (?P<user>.*?) )?"
# pam_unix names its service in the message ("pam_unix(sshd:auth): ..."); Linux-PAM before 0.99
# (2006) put it in the syslog tag instead ("sshd(pam_unix)[pid]: ...") and left it out of the
# message, so the prefix is optional and the program filter below takes both tags.
_PAM_AUTH = r"^(?:pam_unix\(sshd:auth\): )?"
_PAM_SESSION = r"^(?:pam_unix\(sshd:session\): )?"
_SSHD_PROGRAM = r"^sshd(?:-session|\(pam_unix\))?$"


def _m(pattern: str, outcome: str, event: str, **values: str) -> Message:
    return Message(pattern, {"outcome": outcome, "event": event, **values})


MESSAGES = (
    _m(rf"^Accepted (?P<auth_method>\S+) for (?P<user>.+?) from {_FROM}", "success", "accepted"),
    _m(
        rf"^Failed (?P<auth_method>\S+) for invalid user (?P<user>.*?) from {_FROM}",
        "failure",
        "failed",
        failure_reason="invalid user",
    ),
    _m(
        rf"^Failed (?P<auth_method>\S+) for (?P<user>.+?) from {_FROM}",
        "failure",
        "failed",
        failure_reason="authentication failed",
    ),
    _m(
        rf"^message repeated \d+ times: \[ Failed (?P<auth_method>\S+) for (?:invalid user )?"
        rf"(?P<user>.+?) from {_FROM}",
        "failure",
        "failed_repeated",
        failure_reason="authentication failed (repeated)",
    ),
    _m(
        rf"^Invalid user (?P<user>.*?) from {_FROM}\s*$",
        "failure",
        "invalid_user",
        failure_reason="invalid user",
    ),
    _m(
        rf"^User (?P<user>\S+) from {_FROM} not allowed because (?P<failure_reason>.+)$",
        "failure",
        "not_allowed",
    ),
    _m(
        _PAM_AUTH + r"authentication failure;.*? " + _RHOST + r"(?:\s*user=(?P<user>\S+))?",
        "failure",
        "pam_failure",
        failure_reason="PAM authentication failure",
    ),
    _m(
        r"^(?:error: )?PAM: (?P<failure_reason>User not known to the underlying authentication "
        rf"module|unknown user|authentication error) for (?:illegal user )?(?P<user>.+?) from "
        rf"{_FROM}\s*$",
        "failure",
        "pam_error",
    ),
    _m(
        r"^(?:error: maximum authentication attempts exceeded|Disconnecting:? Too many "
        r"authentication failures) for (?:invalid user )?(?P<user>\S+)(?: from " + _FROM + ")?",
        "failure",
        "too_many_failures",
        failure_reason="too many authentication failures",
    ),
    _m(
        rf"^(?:Connection (?:closed|reset) by|Disconnected from) {_WHO}{_FROM}.*\[preauth\]",
        "info",
        "closed_preauth",
        failure_reason="closed before authentication",
    ),
    _m(
        r"^(?:Disconnected from|Disconnecting)(?: (?:invalid |authenticating )?user "
        rf"(?P<user>\S+))? {_FROM}\s*$",
        "info",
        "disconnected",
    ),
    _m(
        rf"^(?:error: )?Received disconnect from {_FROM}:? ?(?P<failure_reason>.*)$",
        "info",
        "received_disconnect",
    ),
    _m(rf"^Did not receive identification string from {_FROM}", "info", "no_identification"),
    _m(
        rf"^(?:fatal: )?Unable to negotiate with {_FROM}: (?P<failure_reason>[^.]+)",
        "info",
        "negotiation_failed",
    ),
    _m(rf"^fatal: Timeout before authentication for {_FROM}", "info", "timeout"),
    _m(
        r"^reverse mapping checking getaddrinfo for \S+ \[(?P<src_ip>[^\]]+)\] failed",
        "info",
        "reverse_mapping",
    ),
    _m(
        rf"^Address (?P<src_ip>{_IP}) maps to \S+, but this does not map back",
        "info",
        "reverse_mapping",
    ),
    _m(
        rf"^Bad protocol version identification .* from {_FROM}\s*$",
        "info",
        "bad_protocol_version",
    ),
    _m(
        r"^(?:PAM )?\d+ more authentication failures?;.*? "
        + _RHOST
        + r"(?:\s*user=(?P<user>\S+))?",
        "info",
        "pam_more_failures",
    ),
    _m(
        _PAM_SESSION + r"session opened for user (?P<user>\S+)",
        "info",
        "session_opened",
    ),
    _m(_PAM_SESSION + r"session closed for user (?P<user>\S+)", "end", "session_closed"),
)
_PROGRAM = pl.col("program").fill_null("")
SSHD = login_format(
    "sshd",
    "OpenSSH sshd authentication log (auth.log, secure, journalctl short-iso)",
    MESSAGES,
    constants={"service": "ssh"},
    program=_SSHD_PROGRAM,
    skipped=(
        (
            ~_PROGRAM.str.contains(_SSHD_PROGRAM),
            pl.lit("not an sshd line: program ")
            + pl.when(_PROGRAM == "").then(pl.lit("(none)")).otherwise(_PROGRAM),
        ),
        (
            r"^(Server listening on|Received signal|Server terminated|"
            r"(?:pam_unix\(sshd:auth\): )?check pass; user unknown|"
            r"PAM service\(sshd\) ignoring max retries|input_userauth_request: invalid user|"
            r"fatal: (Write|Read) (failed|from socket)"
            r"|Magic value check failed|ssh_dispatch_run_fatal|refused connect from|"
            r"Starting session|Close session|pam_systemd|Postponed|Partial|Disconnecting user|"
            r"debug\d: |error: Could not stat|Read error from remote host|Corrupted MAC on input|"
            r"Bad packet length|Disconnecting: bad client|(?:fatal: )?Unable to negotiate a key|"
            r"subsystem request for|Authentication refused: bad ownership)",
            "sshd message that is not an authentication event",
        ),
    ),
)


class Sshd(LineSource):
    """OpenSSH sshd (and its pam_unix lines) from syslog or journald text."""

    format: ClassVar = SSHD
