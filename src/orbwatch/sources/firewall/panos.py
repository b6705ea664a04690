"""Palo Alto Networks PAN-OS TRAFFIC logs (syslog CSV).

A TRAFFIC record is one session (``start``, ``end``, ``drop``, ``deny`` subtypes): addresses at
CSV positions 7/8, NAT addresses 9/10, rule 11, ports 24/25, NAT ports 26/27, protocol 29,
action 30, bytes sent/received 32/33, packets sent/received 44/45, session start 35 (firewall
local time), elapsed seconds 36. THREAT, SYSTEM, CONFIG and other log types share the syslog
stream but are not connection records: they are quarantined with a reason naming the type.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import (
    Field,
    LineFormat,
    LineSource,
    TimeField,
    action_of,
    part,
    protocol_name,
    translated,
)

_LEAD = r"^\d+,\d{4}/\d\d/\d\d \d\d:\d\d:\d\d,[^,]*,"
_nat = translated


def _not_traffic(kind: str) -> tuple[str, str]:
    return (_LEAD + kind + ",", f"PAN-OS {kind} log: not a traffic record")


PANOS_TRAFFIC = LineFormat(
    name="panos_traffic",
    table="flows",
    description="PAN-OS TRAFFIC log",
    recognise=_LEAD + "TRAFFIC,",
    split=",",
    fields={
        "src_ip": Field(part(7), "addr"),
        "dst_ip": Field(part(8), "addr"),
        "nat_src_ip": Field(_nat(part(9)), "addr"),
        "nat_dst_ip": Field(_nat(part(10)), "addr"),
        "rule": Field(part(11)),
        "service": Field(part(14)),
        "flow_uid": Field(part(22)),
        "src_port": Field(part(24), "port"),
        "dst_port": Field(part(25), "port"),
        "nat_src_port": Field(pl.when(_nat(part(9)).is_not_null()).then(part(26)), "port"),
        "nat_dst_port": Field(pl.when(_nat(part(10)).is_not_null()).then(part(27)), "port"),
        "protocol": Field(protocol_name(part(29))),
        "action": Field(
            action_of(
                part(30),
                allow=("allow",),
                deny=(
                    "deny",
                    "drop",
                    "drop-icmp",
                    "reset-client",
                    "reset-server",
                    "reset-both",
                    "drop-all-packets",
                ),
            )
        ),
        "src_bytes": Field(part(32), "count"),
        "dst_bytes": Field(part(33), "count"),
        "duration_s": Field(part(36), "float"),
        "src_packets": Field(part(44), "count"),
        "dst_packets": Field(part(45), "count"),
        "conn_state": Field(part(46)),
        "exporter": Field(pl.coalesce(pl.col("host"), part(2))),
    },
    time=(
        TimeField(part(35), "%Y/%m/%d %H:%M:%S"),
        TimeField(part(6), "%Y/%m/%d %H:%M:%S"),
    ),
    skipped=tuple(
        _not_traffic(kind)
        for kind in (
            "THREAT",
            "SYSTEM",
            "CONFIG",
            "HIPMATCH",
            "GLOBALPROTECT",
            "USERID",
            "AUTHENTICATION",
            "DECRYPTION",
            "TUNNEL",
            "CORRELATION",
            "IPTAG",
            "SCTP",
            "GTP",
        )
    ),
)


class PanosTraffic(LineSource):
    """PAN-OS TRAFFIC CSV lines."""

    format: ClassVar[LineFormat] = PANOS_TRAFFIC
