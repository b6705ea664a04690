"""pfSense and OPNsense ``filterlog``: one CSV line per packet matched by a logging rule.

The CSV layout depends on the IP version and protocol: fields 0-8 are common (rule number,
sub-rule, anchor, tracker, interface, reason, action, direction, IP version); IPv4 carries
addresses at 18/19, IPv6 at 15/16, and TCP/UDP ports follow the addresses. Accepted in BSD and
RFC 5424 syslog framing (program ``filterlog``). ``rule`` is the tracker (the rule's stable id),
``action`` maps pass to allow and block/reject to deny.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import Field, LineFormat, LineSource, action_of, part, protocol_name

_V6 = part(8) == "6"
_SRC = pl.when(_V6).then(part(15)).otherwise(part(18))
_DST = pl.when(_V6).then(part(16)).otherwise(part(19))
_PROTO = protocol_name(pl.when(_V6).then(part(12)).otherwise(part(16)))
_PORTED = _PROTO.is_in(["tcp", "udp", "sctp"])


def _after_addresses(offset: int) -> pl.Expr:
    """The field ``offset`` places after the destination address, for TCP/UDP lines only."""
    value = pl.when(_V6).then(part(16 + offset)).otherwise(part(19 + offset))
    return pl.when(_PORTED).then(value)


FILTERLOG = LineFormat(
    name="pfsense_filterlog",
    table="flows",
    description="pfSense/OPNsense filterlog",
    recognise=r"^\d*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,(?:pass|block|reject),(?:in|out),[46],",
    sniff_program=r"^filterlog$",
    split=",",
    fields={
        "src_ip": Field(_SRC, "addr"),
        "dst_ip": Field(_DST, "addr"),
        "protocol": Field(_PROTO),
        "src_port": Field(_after_addresses(1), "port"),
        "dst_port": Field(_after_addresses(2), "port"),
        "conn_state": Field(pl.when(_PROTO == "tcp").then(_after_addresses(4))),
        "action": Field(action_of(part(6), allow=("pass",), deny=("block", "reject"))),
        "rule": Field(pl.coalesce(pl.when(part(3) != "").then(part(3)), part(0))),
    },
)


class PfsenseFilterlog(LineSource):
    """pfSense/OPNsense filterlog lines."""

    format: ClassVar[LineFormat] = FILTERLOG
