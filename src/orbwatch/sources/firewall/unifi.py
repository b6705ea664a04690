"""Ubiquiti UniFi gateways (UDM, USG): netfilter lines tagged with the UniFi rule.

UniFi writes the kernel packet log with its own rule tag, ``[WAN_LOCAL-D-2147483647]
DESCR="[WAN_LOCAL]Block All Traffic"``, often without a syslog program name. The letter after
the rule set is the verdict (A accept, D drop, R reject); the rest is netfilter's packet fields.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.firewall.netfilter import PACKET_FIELDS, RECOGNISE
from orbwatch.sources.syslog import Field, LineFormat, LineSource

UNIFI = LineFormat(
    name="unifi_firewall",
    table="flows",
    description="Ubiquiti UniFi firewall log",
    recognise=r"\[[\w.-]+-[ADR]-\d+\] (?:DESCR=\"[^\"]*\" )?" + RECOGNISE,
    patterns=(
        r"\[(?P<ruleset>[\w.-]+)-(?P<verdict>[ADR])-(?P<rule_id>\d+)\]"
        r"(?: DESCR=\"(?P<descr>[^\"]*)\")?",
    ),
    fields={
        **PACKET_FIELDS,
        "rule": Field(pl.coalesce(pl.col("descr"), pl.col("ruleset") + "-" + pl.col("rule_id"))),
        "action": Field(
            pl.col("verdict").replace_strict(
                {"A": "allow", "D": "deny", "R": "deny"}, default="unknown"
            )
        ),
    },
)


class UnifiFirewall(LineSource):
    """UniFi gateway firewall lines."""

    format: ClassVar[LineFormat] = UNIFI
