"""Juniper SRX ``RT_FLOW`` session logs (structured syslog, RFC 5424 or wrapped in BSD).

``RT_FLOW_SESSION_CREATE`` (allowed, start), ``RT_FLOW_SESSION_CLOSE`` (allowed, end, with
bytes and packets per direction, elapsed time and close reason) and ``RT_FLOW_SESSION_DENY``
(denied) carry ``source-address``, ``destination-address``, ports, ``protocol-id``, the
``policy-name`` (rule) and the NAT addresses. AppTrack events repeat the same sessions and
RT_IDS screens are not sessions: both are quarantined with a reason.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import (
    Field,
    LineFormat,
    LineSource,
    TimeField,
    kv,
    protocol_name,
    translated,
)


def _sd(key: str) -> pl.Expr:
    return kv(key, on="line", quotes='"\u201d')


_EVENT = pl.col("line").str.extract(
    r"(?:^|\s)(RT_FLOW_SESSION_(?:CREATE|CLOSE|DENY))(?:_LS)? \[", 1
)


def _nat(key: str) -> pl.Expr:
    return translated(_sd(key))


SRX_RT_FLOW = LineFormat(
    name="juniper_srx_rt_flow",
    table="flows",
    description="Juniper SRX RT_FLOW session log",
    recognise=r"(?:^|\s)RT_FLOW_SESSION_(?:CREATE|CLOSE|DENY)(?:_LS)? \[junos@",
    on="line",
    fields={
        "src_ip": Field(_sd("source-address"), "addr"),
        "dst_ip": Field(_sd("destination-address"), "addr"),
        "src_port": Field(_sd("source-port"), "port"),
        "dst_port": Field(_sd("destination-port"), "port"),
        "protocol": Field(protocol_name(_sd("protocol-id"))),
        "service": Field(_sd("application")),
        "rule": Field(_sd("policy-name")),
        "action": Field(
            pl.when(_EVENT == "RT_FLOW_SESSION_DENY")
            .then(pl.lit("deny"))
            .otherwise(pl.lit("allow"))
        ),
        "conn_state": Field(pl.when(_EVENT == "RT_FLOW_SESSION_CLOSE").then(_sd("reason"))),
        "nat_src_ip": Field(_nat("nat-source-address"), "addr"),
        "nat_src_port": Field(
            pl.when(_nat("nat-source-address").is_not_null()).then(_sd("nat-source-port")), "port"
        ),
        "nat_dst_ip": Field(_nat("nat-destination-address"), "addr"),
        "nat_dst_port": Field(
            pl.when(_nat("nat-destination-address").is_not_null()).then(
                _sd("nat-destination-port")
            ),
            "port",
        ),
        "src_packets": Field(_sd("packets-from-client"), "count"),
        "src_bytes": Field(_sd("bytes-from-client"), "count"),
        "dst_packets": Field(_sd("packets-from-server"), "count"),
        "dst_bytes": Field(_sd("bytes-from-server"), "count"),
        "duration_s": Field(_sd("elapsed-time"), "float"),
        "flow_uid": Field(_sd("session-id-32")),
    },
    # A BSD-wrapped record carries the device's own RFC 5424 stamp inside the message.
    time=(
        TimeField(
            pl.col("message").str.extract(
                r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) \S+ RT_FLOW ", 1
            )
        ),
    ),
    skipped=(
        (r"(?:^|\s)APPTRACK_SESSION_\w+ \[", "Juniper AppTrack event: repeats an RT_FLOW session"),
        (
            r"(?:^|\s)RT_IDS \S+ RT_SCREEN_\w+ \[|(?:^|\s)RT_SCREEN_\w+ \[",
            "Juniper RT_IDS screen event: not a session record",
        ),
        (r"(?:^|\s)RT_FLOW \S+ \w+ \[junos@", "Juniper RT_FLOW event: not a session record"),
    ),
)


class JuniperSrxRtFlow(LineSource):
    """Juniper SRX RT_FLOW session lines."""

    format: ClassVar[LineFormat] = SRX_RT_FLOW
