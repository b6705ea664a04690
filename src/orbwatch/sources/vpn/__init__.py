"""Remote-access VPN logs normalised into ``logins`` (``service = vpn``).

:data:`VPN_SOURCES` is in detection order, and comes before the firewall formats in
``sources.BUILTIN``: a FortiGate, ASA or PAN-OS file made mostly of VPN events is a VPN log,
while the firewall formats take the files made mostly of connection records (and count the
VPN events in them as skipped).
"""

from __future__ import annotations

from orbwatch.sources.syslog import LineSource
from orbwatch.sources.vpn.cisco_asa_vpn import CiscoAsaVpn
from orbwatch.sources.vpn.fortigate_vpn import FortigateVpn
from orbwatch.sources.vpn.openvpn import OpenVpn
from orbwatch.sources.vpn.panos_globalprotect import PanosGlobalProtect
from orbwatch.sources.vpn.strongswan import StrongSwan
from orbwatch.sources.vpn.wireguard import WireGuard

VPN_SOURCES: tuple[type[LineSource], ...] = (
    PanosGlobalProtect,
    FortigateVpn,
    CiscoAsaVpn,
    StrongSwan,
    OpenVpn,
    WireGuard,
)

__all__ = [
    "VPN_SOURCES",
    "CiscoAsaVpn",
    "FortigateVpn",
    "OpenVpn",
    "PanosGlobalProtect",
    "StrongSwan",
    "WireGuard",
]
