"""strongSwan ``charon`` IKE daemon log (syslog, journald text, ``charon.log``).

charon writes ``<thread>[<subsystem>] <<connection>|<IKE SA id>> <text>``. Rows
(``service = vpn``, ``event`` below) come from the IKE and CFG subsystems:

=====================================================  =========  ========================
message                                                outcome    event
=====================================================  =========  ========================
authentication of '<id>' with <method> successful      success    peer_authenticated
XAuth authentication of '<user>' successful            success    xauth_succeeded
XAuth authentication of '<user>' failed;                failure    xauth_failed
XAuth pam_authenticate for '<user>' failed: <reason>
EAP-MS-CHAPv2 verification failed; EAP method <m>       failure    eap_failed
failed for peer <ip>
no EAP key / no shared key found, MAC mismatched        failure    unknown_credentials
no trusted public key found for '<id>'                 failure    untrusted_key
received AUTHENTICATION_FAILED notify; constraint       failure    auth_failed
check failed; no peer config found
EAP-MS-CHAPv2 username / received EAP identity         info       eap_identity
<ip> is initiating an IKE_SA / Main Mode               info       ike_init
IKE_SA <conn>[n] established between ...<ip>[<id>]     info       ike_sa_established
EAP method <m> succeeded                               info       eap_succeeded
deleting half open IKE_SA with <ip> after timeout      info       half_open_timeout
deleting IKE_SA <conn>[n] between ...; received        end        ike_sa_deleted
DELETE for IKE_SA <conn>[n]
=====================================================  =========  ========================

Most messages do not name the peer: ``src_ip``/``src_port`` and ``user`` are carried forward
from the last ``received packet: from <ip>[<port>]`` (or ``sending packet: ... to``) and EAP
identity line of the same IKE SA (host, process and IKE SA id), over a whole batch of lines
at once (a window expression, not a loop). ``policy`` is the connection name.
``machine_cert`` is ``yes`` when the peer authenticated with a signature (RSA, ECDSA, EdDSA:
its certificate or raw public key), ``no`` for a pre-shared key and for an untrusted key;
``unknown`` elsewhere (EAP and XAuth authenticate the user). ``mfa`` is ``unknown``. The
server's own authentication (``(myself)``), packets, proposals and certificates sent, and
the other subsystems (NET, ENC, KNL, MGR, JOB...) are counted as skipped.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.rules import Message, clean_address, login_format
from orbwatch.sources.syslog import Field, LineSource
from orbwatch.sources.vpn.shared import extended

_T = r"^\d+\[(?:IKE|CFG)\] (?:<[^>]*> )?"
_SA = r"(?P<policy>[^\[\s]+)\[\d+\] (?:established )?between \S+?\[[^\]]*\]\.\.\."
_SIGNATURE = r"(?P<auth_method>(?:RSA|ECDSA|ED25519|ED448|BLISS)\S*(?: signature)?|pubkey)"


def _m(text: str, outcome: str, event: str, **values: str) -> Message:
    return Message(_T + text, {"outcome": outcome, "event": event, **values})


MESSAGES = (
    _m(
        f"authentication of '(?P<user>[^']*)' with {_SIGNATURE} successful",
        "success",
        "peer_authenticated",
        machine_cert="yes",
    ),
    _m(
        "authentication of '(?P<user>[^']*)' with (?P<auth_method>pre-shared key) successful",
        "success",
        "peer_authenticated",
        machine_cert="no",
    ),
    _m(
        "authentication of '(?P<user>[^']*)' with (?P<auth_method>.+?) successful",
        "success",
        "peer_authenticated",
    ),
    _m(
        "XAuth authentication of '(?P<user>[^']*)' successful",
        "success",
        "xauth_succeeded",
        auth_method="xauth",
    ),
    _m(
        "XAuth authentication of '(?P<user>[^']*)' failed",
        "failure",
        "xauth_failed",
        auth_method="xauth",
    ),
    _m(
        "XAuth pam_authenticate for '(?P<user>[^']*)' failed:? ?(?P<failure_reason>.*)$",
        "failure",
        "xauth_failed",
        auth_method="xauth",
    ),
    _m(
        r"(?P<failure_reason>EAP-MS-CHAPv2 verification failed.*)$",
        "failure",
        "eap_failed",
        auth_method="EAP_MSCHAPV2",
    ),
    _m(r"EAP method (?P<auth_method>\S+) failed for peer (?P<src_ip>\S+)", "failure", "eap_failed"),
    _m(
        "(?P<failure_reason>no EAP key found for hosts '[^']*' - '(?P<user>[^']*)')",
        "failure",
        "unknown_credentials",
    ),
    _m(
        "(?P<failure_reason>no shared key found for '[^']*' - '(?P<user>[^']*)')",
        "failure",
        "unknown_credentials",
    ),
    _m(
        "(?P<failure_reason>tried \\d+ shared keys? for '[^']*' - '(?P<user>[^']*)'.*)$",
        "failure",
        "unknown_credentials",
    ),
    _m(
        "(?P<failure_reason>no trusted (?:\\S+ )?public key found for '(?P<user>[^']*)')",
        "failure",
        "untrusted_key",
        machine_cert="no",
    ),
    _m(
        "(?P<failure_reason>received AUTHENTICATION_FAILED notify error|constraint check "
        "failed.*|no peer config found.*)$",
        "failure",
        "auth_failed",
    ),
    _m(
        "(?:EAP-MS-CHAPv2 username: |received EAP identity )'(?P<user>[^']*)'",
        "info",
        "eap_identity",
    ),
    _m(
        r"(?P<src_ip>[0-9A-Fa-f.:]+) is initiating an? (?:IKE_SA|Main Mode|Aggressive Mode)",
        "info",
        "ike_init",
    ),
    _m(f"IKE_SA {_SA}(?P<src_ip>[^\\[\\s]+)\\[(?P<user>[^\\]]*)\\]", "info", "ike_sa_established"),
    _m(r"EAP method (?P<auth_method>\S+) succeeded", "info", "eap_succeeded"),
    _m(
        r"deleting half open IKE_SA with (?P<src_ip>\S+) after timeout", "info", "half_open_timeout"
    ),
    _m(
        f"deleting IKE_SA {_SA}(?P<src_ip>[^\\[\\s]+)\\[(?P<user>[^\\]]*)\\]",
        "end",
        "ike_sa_deleted",
    ),
    _m(r"received DELETE for IKE_SA (?P<policy>[^\[\s]+)\[\d+\]", "end", "ike_sa_deleted"),
)
_NOISE = (
    r"^\d+\[(?:NET|ENC|KNL|MGR|JOB|LIB|DMN|CHD|ASN|ESP|TLS|APP|TNC|IMC|IMV|PTS|SMP)\] |"
    + _T
    + r"(?:sending packet|received packet|generating|parsed|selected proposal|remote host is "
    r"behind NAT|local host is behind NAT|DH group|sending (?:end entity|issuer) cert|received "
    r"(?:end entity|issuer) cert|received (?:\d+ )?cert requests?|sending cert request|using "
    r"(?:certificate|trusted ca|trusted intermediate)|checking certificate status|certificate "
    r"status is|reached self-signed root|initiating EAP_|authentication of '[^']*' \(myself\)|"
    r"splitting IKE message|CHILD_SA|scheduling|maximum IKE_SA lifetime|retransmit|sending "
    r"(?:keep alive|DPD)|peer supports|processing|assigning virtual IP|peer requested virtual"
    r" IP|looking for peer configs|selected peer config|IKE_SA \S+ state change|reauthenticating"
    r"|rekeying|closing CHILD_SA|detected|installing|ignoring|sending DELETE|IKE_SA deleted|"
    r"received (?:FRAGMENTATION|MS_|NAT|DPD|Cisco|strongSwan|XAuth|\w+ vendor)|sending XAuth|"
    r"no IDi configured|destroying|establishing CHILD_SA|received (?:DELETE for (?:ESP|AH|"
    r"CHILD_SA))|queueing|activating|restarting|lease|moving|deleting CHILD_SA|"
    r"unable to|giving up|peer not responding)"
)
_PROGRAM = pl.col("program").fill_null("")
_RULES = login_format(
    "strongswan",
    "strongSwan charon IKE daemon log",
    MESSAGES,
    constants={"service": "vpn"},
    skipped=(
        (
            ~_PROGRAM.str.contains(r"^(?:charon|charon-systemd|charon-cmd|ipsec|ipsec_starter|)$"),
            pl.lit("not a charon line: program ") + _PROGRAM,
        ),
        (_NOISE, "charon message that is not an authentication event"),
        (
            ~pl.col("message").str.contains(r"^\d+\[[A-Z]+\] "),
            "charon message without a thread (PAM or library output)",
        ),
    ),
)
# The IKE SA a line belongs to, and the peer and EAP identity it names, carried forward.
_CONTEXT = (
    r"^\d+\[[A-Z]+\] <(?:[^|>]*\|)?(?P<sw_ike>\d+)>",
    r"(?:received packet: from (?P<sw_rip>[^\[\s]+)\[(?P<sw_rport>\d+)\] to|sending packet: "
    r"from \S+ to (?P<sw_sip>[^\[\s]+)\[(?P<sw_sport>\d+)\])",
    r"(?:EAP-MS-CHAPv2 username: |received EAP identity )'(?P<sw_user>[^']*)'",
)
_SA_KEY = [pl.col("host").fill_null(""), pl.col("pid").fill_null(""), pl.col("sw_ike")]


def _carried(own: pl.Expr, context: pl.Expr) -> pl.Expr:
    """The line's own value, else the last one its IKE SA logged (over the batch)."""
    carried = context.forward_fill().over(_SA_KEY)
    return pl.coalesce(own, pl.when(pl.col("sw_ike").is_not_null()).then(carried))


STRONGSWAN = extended(
    _RULES,
    _CONTEXT,
    {
        "src_ip": Field(
            _carried(
                _RULES.fields["src_ip"].expr,
                clean_address(pl.coalesce(pl.col("sw_rip"), pl.col("sw_sip"))),
            ),
            "addr",
        ),
        "src_port": Field(
            pl.when(_RULES.fields["src_ip"].expr.is_null()).then(
                _carried(
                    pl.lit(None, pl.String), pl.coalesce(pl.col("sw_rport"), pl.col("sw_sport"))
                )
            ),
            "port",
        ),
        "user": Field(_carried(_RULES.fields["user"].expr, pl.col("sw_user"))),
    },
)


class StrongSwan(LineSource):
    """strongSwan charon: IKE peer authentication, EAP and XAuth results, IKE SA life."""

    format: ClassVar = STRONGSWAN
