"""OpenVPN server log (its own ``--log`` file, or syslog/journald text of ``openvpn``).

A server message about a client starts with the client's address, with the certificate
common name before it once known (``client1/203.0.113.5:51234``; some builds write it after,
``203.0.113.5:51234/client1``). Rows (``service = vpn``, ``event`` below):

=========================================================  =========  =====================
message                                                    outcome    event
=========================================================  =========  =====================
VERIFY OK: depth=0, ... CN=<name>                          info       cert_verified
VERIFY ERROR: depth=N, error=<reason>: ... CN=<name>       failure    cert_verify_error
OpenSSL: error:... (certificate verify failed)             failure    tls_error
TLS Error: <reason> / TLS Auth Error: <reason>              failure    tls_error
AUTH_FAILED (control message or SENT CONTROL)              failure    auth_failed
TLS: Username/Password authentication succeeded for        success    password_accepted
username '<user>'
TLS: Username/Password authentication failed / deferred    failure /  password_failed /
                                                           info       password_deferred
Incorrect password supplied for LDAP DN "<dn>";            failure    ldap_failed
LDAP bind failed: <reason>
<addr> [<name>] Peer Connection Initiated with <addr>      success    peer_connection
Authentication succeeded                                   success    authenticated
MULTI: Learn: <vpn address> -> <name>/<addr>               info       learn
TCP connection established with <addr>                     info       tcp_connection
SIGTERM/SIGUSR1 ... client-instance exiting/restarting,    end        client_exit
Inactivity timeout
=========================================================  =========  =====================

``user`` is the username when one is logged, else the certificate common name (``[UNDEF]``
means none). ``machine_cert`` is ``yes`` on a depth-0 ``VERIFY OK`` (the client presented a
valid certificate) and ``no`` on ``VERIFY ERROR`` and a failed certificate check; elsewhere
``unknown``, because OpenVPN logs the certificate once per connection. One refused client is
typically logged three times (``cert_verify_error``, ``tls_error`` for the OpenSSL line and
for ``TLS Auth Error``): count one ``event`` kind to count attempts. Messages without a client
(start-up, options, ``Initialization Sequence Completed``) and routine per-client messages
(cipher negotiation, pushed options, ``VERIFY OK`` for CA certificates) are counted as
skipped. OpenVPN does not log MFA as such: ``mfa`` is ``unknown``.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.rules import Message, login_format
from orbwatch.sources.syslog import Field, LineSource
from orbwatch.sources.vpn.shared import CTIME, extended

# The client: [CN/]address:port[/CN] with an optional [AF_INET] tag.
_PEER = (
    r"(?:^|\s)(?:(?P<client>[^\s/\[\]]+)/)?(?:\[AF_INET6?\])?"
    r"(?P<src_ip>\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})"
    r":(?P<src_port>\d{1,5})"
    r"(?:/(?P<session_id>[^\s/]+))? "
)
_CERT_FAILED = {"machine_cert": "no", "auth_method": "certificate"}


def _m(text: str, outcome: str, event: str, **values: str) -> Message:
    return Message(_PEER + text, {"outcome": outcome, "event": event, **values})


MESSAGES = (
    _m(
        r"VERIFY OK: depth=0, .*?CN=(?P<user>[^,/\s]+)",
        "info",
        "cert_verified",
        machine_cert="yes",
        auth_method="certificate",
    ),
    _m(
        r"VERIFY (?:ERROR|KU ERROR|EKU ERROR|X509NAME ERROR): (?:depth=\d+, )?"
        r"(?:error=)?(?P<failure_reason>[^:]*)(?::.*?CN=(?P<user>[^,/\s]+))?",
        "failure",
        "cert_verify_error",
        **_CERT_FAILED,
    ),
    _m(
        r"OpenSSL: error:[^:]*:[^:]*:[^:]*:(?P<failure_reason>certificate verify failed.*)$",
        "failure",
        "tls_error",
        **_CERT_FAILED,
    ),
    _m(
        r"TLS Auth Error: (?P<failure_reason>Auth Certificate verification failed.*)$",
        "failure",
        "tls_error",
        **_CERT_FAILED,
    ),
    _m(
        r"TLS Auth Error: (?P<failure_reason>Auth Username/Password verification failed.*?)"
        r"(?: for username '(?P<user>[^']*)')?$",
        "failure",
        "password_failed",
        auth_method="password",
    ),
    _m(r"TLS (?:Auth )?Error: (?P<failure_reason>.+?)(?: from \S+)?$", "failure", "tls_error"),
    _m(
        r"(?:AUTH: Received control message: AUTH_FAILED|SENT CONTROL \[[^\]]*\]: "
        r"'AUTH_FAILED)(?P<failure_reason>.*)$",
        "failure",
        "auth_failed",
    ),
    _m(
        r"TLS: Username/Password authentication succeeded for username '(?P<user>[^']*)'",
        "success",
        "password_accepted",
        auth_method="password",
    ),
    _m(
        r"TLS: Username/Password authentication deferred for username '(?P<user>[^']*)'",
        "info",
        "password_deferred",
        auth_method="password",
    ),
    _m(
        r"\[(?:UNDEF|(?P<user>[^\]]+))\] Peer Connection Initiated with",
        "success",
        "peer_connection",
    ),
    _m(r"Peer Connection Initiated with", "success", "peer_connection"),
    _m(r"Authentication succeeded", "success", "authenticated"),
    _m(r"TCP connection established with", "info", "tcp_connection"),
    _m(
        r"(?:(?:SIGTERM|SIGUSR1|SIGHUP)\[[^\]]*\] received, client-instance "
        r"(?:exiting|restarting)|\[[^\]]*\] Inactivity timeout|Connection reset, restarting)"
        r"(?P<failure_reason>.*)$",
        "end",
        "client_exit",
    ),
    Message(
        r"MULTI: Learn: \S+ -> (?:(?P<client>[^\s/]+)/)?(?P<src_ip>[0-9A-Fa-f.:]+?):"
        r"(?P<src_port>\d{1,5})\s*$",
        {"outcome": "info", "event": "learn"},
    ),
    Message(
        r"Incorrect password supplied for LDAP DN \"(?:CN=)?(?P<user>[^,\"]*)",
        {"outcome": "failure", "event": "ldap_failed", "auth_method": "ldap"},
    ),
    Message(
        r"LDAP bind failed: (?P<failure_reason>.*)$",
        {"outcome": "failure", "event": "ldap_failed", "auth_method": "ldap"},
    ),
)
_RULES = login_format(
    "openvpn",
    "OpenVPN server log",
    MESSAGES,
    constants={"service": "vpn"},
    skipped=(
        (
            _PEER + r"(?:VERIFY OK: depth=[1-9]|VERIFY WARNING|(?:Outgoing|Incoming) "
            r"(?:Data|Control) Channel|Data Channel|Control Channel|TLS: |peer info: |PUSH: |"
            r"SENT CONTROL|MULTI(?:_sva)?: |OPTIONS IMPORT|WARNING: |NOTE: |Validating|"
            r"Expected Remote Options|Local Options|Re-using SSL/TLS|Timers:|Protocol options:|"
            r"Delayed exit|PLUGIN_CALL|SIGUSR1|OpenSSL: )",
            "OpenVPN client message that is not an authentication event",
        ),
        (
            r"(?:^|\s)(?:OpenVPN \d|Incoming Control Channel|Outgoing Control Channel|"
            r"library versions|Diffie-Hellman|TUN/TAP|net_|Listening for|UDPv[46] link|"
            r"TCPv[46]_SERVER link|Socket Buffers|IFCONFIG POOL|MULTI: multi_init|"
            r"Initialization Sequence Completed|Initialization Sequence|WARNING: |NOTE: |"
            r"DCO |ROUTE|/sbin/ip|/usr/sbin/|ifconfig_pool|MULTI: TCP INIT|"
            r"Could not determine IPv4/IPv6 protocol|TLS-Auth MTU parms|Data Channel MTU parms|"
            r"PLUGIN_INIT|PLUGIN_CALL|Current Parameter Settings|Note: )",
            "OpenVPN server message without a client",
        ),
    ),
)
OPENVPN = extended(
    _RULES,
    fields={
        # The username when logged, else the certificate common name before or after the address.
        "user": Field(
            pl.coalesce(
                _RULES.fields["user"].expr,
                _RULES.fields["client"].expr,
                _RULES.fields["session_id"].expr,
            )
        ),
        "client": Field(pl.lit(None, pl.String)),
        "session_id": Field(pl.lit(None, pl.String)),
    },
    on="line",
    time=(CTIME,),
)


class OpenVpn(LineSource):
    """OpenVPN server log: client certificate checks, authentication and connections."""

    format: ClassVar = OPENVPN
