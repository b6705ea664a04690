"""WireGuard handshakes as the Linux kernel module logs them (dynamic debug, dmesg, syslog).

The kernel logs handshakes only with dynamic debug on (``echo module wireguard +p >
/sys/kernel/debug/dynamic_debug/control``); invalid ones are always rate-limited into the log.
WireGuard has no user accounts: ``user`` is the peer number the interface gave the peer's
public key (``peer 3``), ``target`` the interface. Rows (``service = vpn``):

====================================================  =========  =========================
message                                               outcome    event
====================================================  =========  =========================
Receiving handshake initiation from peer N (ip:port)  success    handshake_initiation
Invalid handshake initiation / response from ip:port  failure    invalid_handshake
Packet has unallowed src IP (x) from peer N (ip:port)  failure    unallowed_src_ip
Receiving handshake response from peer N (ip:port)    info       handshake_response
Zeroing out all keys for peer N (ip:port) ...          end        keys_zeroed
====================================================  =========  =========================

The kernel logs "Receiving handshake initiation" only after the initiation was decrypted with
a configured peer's static key, so a successful row means the device proved its key:
``machine_cert`` is ``yes`` on it (the peer key is the device credential; WireGuard has no
certificates and no user authentication), ``unknown`` elsewhere; ``mfa`` is ``unknown``.
Other WireGuard messages (keepalives, keypairs, our own handshakes) are counted as skipped, as
are other kernel lines.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.auth.rules import Message, login_format
from orbwatch.sources.syslog import LineSource
from orbwatch.sources.vpn.shared import CTIME, extended

_WG = r"(?:^|\s)wireguard: (?P<target>[^:\s]+): "
_ADDRESS = r"(?P<src_ip>\[[^\]\s]+\]|[^)\s:\[]+):(?P<src_port>\d{1,5})"
_PEER = r"peer (?P<user>\d+) \(" + _ADDRESS + r"\)"


def _m(text: str, outcome: str, event: str, **values: str) -> Message:
    return Message(_WG + text, {"outcome": outcome, "event": event, **values})


MESSAGES = (
    _m(
        "Receiving handshake initiation from " + _PEER,
        "success",
        "handshake_initiation",
        machine_cert="yes",
        auth_method="public key",
    ),
    _m(
        r"Invalid handshake (?:initiation|response) from " + _ADDRESS,
        "failure",
        "invalid_handshake",
        failure_reason="invalid handshake",
    ),
    _m(
        r"Packet has (?P<failure_reason>unallowed src IP \([^)]*\)) from " + _PEER,
        "failure",
        "unallowed_src_ip",
    ),
    _m("Receiving handshake response from " + _PEER, "info", "handshake_response"),
    _m("Zeroing out all keys for " + _PEER, "end", "keys_zeroed"),
)
WIREGUARD = extended(
    login_format(
        "wireguard",
        "WireGuard kernel log",
        MESSAGES,
        constants={"service": "vpn"},
        skipped=(
            (r"(?:^|\s)wireguard: ", "WireGuard message that is not an authentication event"),
            # An expression, so that sniffing does not count other kernel lines as ours.
            (pl.lit(True), "kernel line that is not from WireGuard"),
        ),
    ),
    on="line",
    time=(CTIME,),
)


class WireGuard(LineSource):
    """WireGuard kernel handshake messages."""

    format: ClassVar = WIREGUARD
