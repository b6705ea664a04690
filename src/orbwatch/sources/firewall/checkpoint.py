"""Check Point firewall logs from the Log Exporter (syslog, ``key:"value";`` fields).

The Log Exporter's syslog format puts every field in one RFC 5424 structured-data-like block:
``[action:"Drop"; src:"..."; dst:"..."; proto:"17"; s_port:"..."; service:"1514"; ...]``.
``service`` is the destination port, ``rule_name`` (else ``rule_uid``) the rule, ``xlatesrc``/
``xlatedst`` and their ports the NAT, ``time`` the epoch of the event, ``origin`` the gateway.
Accept/Allow/Encrypt/Decrypt are allowed, Drop/Reject/Block denied; other actions (Key Install,
Monitored, Detect...) are kept with action ``unknown`` when the line has both addresses.
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


def _field(key: str) -> pl.Expr:
    return kv(key, on="line", sep=":")


def _translated(address_key: str) -> pl.Expr:
    return translated(_field(address_key))


CHECKPOINT = LineFormat(
    name="checkpoint_log_exporter",
    table="flows",
    description="Check Point Log Exporter log",
    recognise=r"\[action:\"[^\"]*\";|(?:^|[\s;\[])product:\"[^\"]*Firewall",
    on="line",
    fields={
        "src_ip": Field(_field("src"), "addr"),
        "dst_ip": Field(_field("dst"), "addr"),
        "src_port": Field(_field("s_port"), "port"),
        "dst_port": Field(_field("service"), "port"),
        "protocol": Field(protocol_name(_field("proto"))),
        "service": Field(_field("service_id")),
        "action": Field(
            action_of(
                _field("action"),
                allow=("accept", "allow", "encrypt", "decrypt"),
                deny=("drop", "reject", "block"),
            )
        ),
        "rule": Field(pl.coalesce(_field("rule_name"), _field("rule_uid"))),
        "nat_src_ip": Field(_translated("xlatesrc"), "addr"),
        "nat_src_port": Field(
            pl.when(_field("xlatesport") != "0").then(_field("xlatesport")), "port"
        ),
        "nat_dst_ip": Field(_translated("xlatedst"), "addr"),
        "nat_dst_port": Field(
            pl.when(_field("xlatedport") != "0").then(_field("xlatedport")), "port"
        ),
        "exporter": Field(pl.coalesce(_field("origin"), pl.col("host"))),
    },
    time=(TimeField(_field("time")),),
)


class CheckpointLogExporter(LineSource):
    """Check Point Log Exporter syslog lines."""

    format: ClassVar[LineFormat] = CHECKPOINT
