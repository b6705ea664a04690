"""MikroTik RouterOS firewall logs (rules with ``log=yes``).

RouterOS writes ``firewall,info [prefix] chain: in:IF out:IF, connection-state:..., src-mac ...,
proto TCP (SYN), SRC:PORT->DST:PORT, [NAT (...)->...,] len N``; IPv6 addresses are bracketed.
The log prefix chosen by the administrator is the only trace of the verdict (drop/reject/block
words: deny; accept/allow: allow; else unknown) and is kept as ``rule`` with the chain.
Other RouterOS topics (system, account...) are not connection records.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.firewall.netfilter import verdict_of_prefix
from orbwatch.sources.syslog import Field, LineFormat, LineSource, protocol_name

_ADDR = r"(?:\[(?P<{p}6>[0-9A-Fa-f:.]+)\]|(?P<{p}4>[\d.]+))(?::(?P<{p}port>\d+))?"

ROUTEROS = LineFormat(
    name="mikrotik_firewall",
    table="flows",
    description="MikroTik RouterOS firewall log",
    recognise=r"(?:^|\s)firewall(?:,\w+)+ .*in:\S+ out:.*proto \w+",
    on="line",
    patterns=(
        r"(?:^|\s)firewall(?:,\w+)+ (?:(?P<prefix>.*?) )?(?P<chain>[\w-]+): in:(?P<in_if>\S+) ",
        r"proto (?P<proto>\w+)(?: \([^)]*\))?, "
        + _ADDR.format(p="s")
        + "->"
        + _ADDR.format(p="d")
        + r"(?:, NAT \(?(?P<nat>[^,]*))?, len \d+",
    ),
    fields={
        "src_ip": Field(pl.coalesce(pl.col("s4"), pl.col("s6")), "addr"),
        "dst_ip": Field(pl.coalesce(pl.col("d4"), pl.col("d6")), "addr"),
        "src_port": Field(pl.col("sport"), "port"),
        "dst_port": Field(pl.col("dport"), "port"),
        "protocol": Field(protocol_name(pl.col("proto"))),
        "rule": Field(
            pl.concat_str([pl.col("chain"), pl.col("prefix")], separator=" ", ignore_nulls=True)
        ),
        "action": Field(verdict_of_prefix(pl.col("prefix").fill_null(""))),
    },
    skipped=(
        (
            r"(?:^|\s)(?:system|account|script|dhcp|wireless|interface|ppp|ipsec)(?:,\w+)+ ",
            "RouterOS system log: not a firewall record",
        ),
    ),
)


class MikrotikFirewall(LineSource):
    """MikroTik RouterOS firewall lines."""

    format: ClassVar[LineFormat] = ROUTEROS
