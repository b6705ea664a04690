"""Sophos Firewall (XG / SFOS) firewall-rule logs (``key=value``).

A ``log_type="Firewall"`` record is one connection verdict: ``src_ip``/``dst_ip``, ports,
``protocol``, ``status`` (Allow; Deny/Drop), ``fw_rule_id`` as the rule, ``sent_bytes``/
``recv_bytes``, ``sent_pkts``/``recv_pkts``. The time is ``date`` + ``time`` with the device's
``timezone`` when it is an offset (``+08``), else in the configured syslog zone. Other log types
(Content Filtering, ATP, Event...) are not connection records.
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
    kv,
    protocol_name,
    translated,
)


def _key(name: str) -> pl.Expr:
    return kv(name, on="line")


_ZONE = _key("timezone").fill_null("")
_OFFSET = (
    pl.when(_ZONE.str.contains(r"^[+-]\d\d$"))
    .then(_ZONE + ":00")
    .when(_ZONE.str.contains(r"^[+-]\d\d:?\d\d$"))
    .then(_ZONE)
    .otherwise(pl.lit(""))
)
_SFOS = r"(?:^|\s)device=\"?SFW\"?\s"

SOPHOS = LineFormat(
    name="sophos_firewall",
    table="flows",
    description="Sophos Firewall (XG/SFOS) firewall-rule log",
    recognise=_SFOS + r".*log_type=\"?Firewall\"?\s",
    on="line",
    fields={
        "src_ip": Field(_key("src_ip"), "addr"),
        "dst_ip": Field(_key("dst_ip"), "addr"),
        "src_port": Field(_key("src_port"), "port"),
        "dst_port": Field(_key("dst_port"), "port"),
        "protocol": Field(protocol_name(_key("protocol"))),
        "service": Field(pl.when(_key("application") != "").then(_key("application"))),
        "action": Field(action_of(_key("status"), allow=("allow",), deny=("deny", "drop"))),
        "rule": Field(_key("fw_rule_id")),
        "src_bytes": Field(_key("sent_bytes"), "count"),
        "dst_bytes": Field(_key("recv_bytes"), "count"),
        "src_packets": Field(_key("sent_pkts"), "count"),
        "dst_packets": Field(_key("recv_pkts"), "count"),
        "duration_s": Field(_key("duration"), "float"),
        "nat_src_ip": Field(translated(_key("tran_src_ip")), "addr"),
        "exporter": Field(pl.coalesce(_key("device_name"), pl.col("host"))),
    },
    time=(TimeField(_key("date") + "T" + _key("time") + _OFFSET),),
    skipped=((_SFOS, "Sophos log of another type: not a firewall-rule record"),),
)


class SophosFirewall(LineSource):
    """Sophos XG/SFOS firewall-rule lines."""

    format: ClassVar[LineFormat] = SOPHOS
