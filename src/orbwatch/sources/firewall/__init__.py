"""Firewall log formats: each module declares one :class:`~orbwatch.sources.syslog.LineFormat`.

:data:`FIREWALL_SOURCES` is in detection order: formats with a distinctive marker first
(vendor tags, CSV layouts), the netfilter packet log (which UniFi lines also satisfy) after
UniFi, and the generic CEF/LEEF envelopes last.
"""

from __future__ import annotations

from orbwatch.sources.firewall.cef_leef import Cef, Leef
from orbwatch.sources.firewall.checkpoint import CheckpointLogExporter
from orbwatch.sources.firewall.cisco_asa import CiscoAsa
from orbwatch.sources.firewall.fortigate import FortigateTraffic
from orbwatch.sources.firewall.juniper_srx import JuniperSrxRtFlow
from orbwatch.sources.firewall.mikrotik import MikrotikFirewall
from orbwatch.sources.firewall.netfilter import NetfilterLog
from orbwatch.sources.firewall.panos import PanosTraffic
from orbwatch.sources.firewall.pfsense import PfsenseFilterlog
from orbwatch.sources.firewall.sophos import SophosFirewall
from orbwatch.sources.firewall.unifi import UnifiFirewall
from orbwatch.sources.syslog import LineSource

FIREWALL_SOURCES: tuple[type[LineSource], ...] = (
    PfsenseFilterlog,
    PanosTraffic,
    FortigateTraffic,
    CiscoAsa,
    JuniperSrxRtFlow,
    CheckpointLogExporter,
    SophosFirewall,
    MikrotikFirewall,
    UnifiFirewall,
    NetfilterLog,
    Cef,
    Leef,
)

__all__ = [
    "FIREWALL_SOURCES",
    "Cef",
    "CheckpointLogExporter",
    "CiscoAsa",
    "FortigateTraffic",
    "JuniperSrxRtFlow",
    "Leef",
    "MikrotikFirewall",
    "NetfilterLog",
    "PanosTraffic",
    "PfsenseFilterlog",
    "SophosFirewall",
    "UnifiFirewall",
]
