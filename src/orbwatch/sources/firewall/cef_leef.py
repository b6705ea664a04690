"""ArcSight CEF and IBM QRadar LEEF: the generic event formats many products can emit.

A line is a connection record when it names a source and a destination address. CEF extension
values run to the next `` key=`` (spaces allowed, ``\\=`` escaped); LEEF 1.0 separates
attributes with tabs, LEEF 2.0 with the character declared in its header (``^`` or ``|`` as
commonly used, and ``x09`` for a tab). Keys read: CEF ``src``, ``dst``, ``spt``, ``dpt``,
``proto``, ``act``, ``in``/``out`` (bytes), ``sourceTranslatedAddress``/``Port``,
``destinationTranslatedAddress``/``Port``, ``rt``/``start`` (time, epoch ms or
``MMM dd yyyy HH:mm:ss``), ``cs1``-``cs6`` labelled as a rule or policy; LEEF ``src``, ``dst``,
``srcPort``, ``dstPort``, ``proto``, ``action``, ``srcBytes``/``dstBytes``, ``srcPackets``/
``dstPackets``, ``srcPostNAT``/``srcPostNATPort``, ``dstPostNAT``/``dstPostNATPort``,
``devTime`` (epoch or ISO), ``policy``. CEF events without both addresses (application or host
events) are quarantined as missing an address.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import (
    Field,
    LineFormat,
    LineSource,
    TimeField,
    action_of,
    protocol_name,
)

ALLOW = ("allow", "allowed", "accept", "accepted", "permit", "permitted", "pass", "passed")
DENY = ("deny", "denied", "drop", "dropped", "block", "blocked", "reject", "rejected")


def cef(key: str) -> pl.Expr:
    """A CEF extension value: everything up to the next `` key=`` or the end of the line."""
    pattern = r"(?:^|\s|\|)" + re.escape(key) + r"=((?:\\.|[^\\\r\n])*?)\s*(?:\s[\w.\[\]-]+=|$)"
    value = pl.col("line").str.extract(pattern, 1)
    return value.str.replace_all(r"\\([=|\\])", "$1")


def _cef_rule() -> pl.Expr:
    """The ``csN`` value whose ``csNLabel`` says it is a rule or policy."""
    picks = [
        pl.when(cef(f"cs{i}Label").str.contains(r"(?i)rule|policy")).then(cef(f"cs{i}"))
        for i in range(1, 7)
    ]
    return pl.coalesce(picks)


CEF = LineFormat(
    name="cef",
    table="flows",
    description="ArcSight CEF event with source and destination",
    recognise=r"(?:^|\s|:)CEF:\d+\|",
    on="line",
    fields={
        "src_ip": Field(cef("src"), "addr"),
        "dst_ip": Field(cef("dst"), "addr"),
        "src_port": Field(cef("spt"), "port"),
        "dst_port": Field(cef("dpt"), "port"),
        "protocol": Field(protocol_name(cef("proto"))),
        "action": Field(action_of(cef("act"), allow=ALLOW, deny=DENY)),
        "rule": Field(_cef_rule()),
        "src_bytes": Field(cef("out"), "count"),
        "dst_bytes": Field(cef("in"), "count"),
        "nat_src_ip": Field(cef("sourceTranslatedAddress"), "addr"),
        "nat_src_port": Field(cef("sourceTranslatedPort"), "port"),
        "nat_dst_ip": Field(cef("destinationTranslatedAddress"), "addr"),
        "nat_dst_port": Field(cef("destinationTranslatedPort"), "port"),
        "exporter": Field(pl.coalesce(cef("dvchost"), cef("dvc"), pl.col("host"))),
    },
    time=(
        TimeField(cef("rt")),
        TimeField(cef("start")),
        TimeField(cef("rt"), "%b %d %Y %H:%M:%S%.f"),
    ),
)


def _leef_separator() -> pl.Expr:
    """LEEF 2.0 declares its attribute separator in the header; LEEF 1.0 uses a tab."""
    declared = pl.col("line").str.extract(r"LEEF:2\.0\|(?:[^|]*\|){4}(x09|\\t|[^|x])\|", 1)
    return (
        pl.when(declared.is_in(["x09", "\\t"]) | declared.is_null())
        .then(pl.lit("\t"))
        .otherwise(declared)
    )


def leef(key: str) -> pl.Expr:
    """A LEEF attribute: the text after ``key=`` up to the separator (tab, ``^`` or ``|``)."""
    pattern = r"(?:^|[\t^|])" + re.escape(key) + r"=([^\t^|]*)"
    return pl.col("line").str.extract(pattern, 1).str.strip_chars()


LEEF = LineFormat(
    name="leef",
    table="flows",
    description="IBM QRadar LEEF event with source and destination",
    recognise=r"(?:^|\s|:)LEEF:[12]\.0\|",
    on="line",
    fields={
        "src_ip": Field(leef("src"), "addr"),
        "dst_ip": Field(leef("dst"), "addr"),
        "src_port": Field(leef("srcPort"), "port"),
        "dst_port": Field(leef("dstPort"), "port"),
        "protocol": Field(protocol_name(leef("proto"))),
        "action": Field(action_of(leef("action"), allow=ALLOW, deny=DENY)),
        "rule": Field(leef("policy")),
        "src_bytes": Field(leef("srcBytes"), "count"),
        "dst_bytes": Field(leef("dstBytes"), "count"),
        "src_packets": Field(leef("srcPackets"), "count"),
        "dst_packets": Field(leef("dstPackets"), "count"),
        "nat_src_ip": Field(leef("srcPostNAT"), "addr"),
        "nat_src_port": Field(leef("srcPostNATPort"), "port"),
        "nat_dst_ip": Field(leef("dstPostNAT"), "addr"),
        "nat_dst_port": Field(leef("dstPostNATPort"), "port"),
    },
    time=(TimeField(leef("devTime")), TimeField(leef("devTime"), "%b %d %Y %H:%M:%S%.f")),
)


class Cef(LineSource):
    """CEF lines that describe a connection."""

    format: ClassVar[LineFormat] = CEF


class Leef(LineSource):
    """LEEF lines that describe a connection."""

    format: ClassVar[LineFormat] = LEEF
