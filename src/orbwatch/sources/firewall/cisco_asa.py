"""Cisco ASA (and FTD in ASA mode) connection and deny messages.

ASA writes one message per event, identified by ``%ASA-<level>-<id>:``. The connection records:

=========================  ===========================================================
message                    meaning
=========================  ===========================================================
302013 / 302015            TCP / UDP connection built (allowed); NAT-mapped addresses
302014 / 302016            TCP / UDP teardown (allowed), with duration and total bytes
106001, 106006, 106007     inbound TCP / UDP denied
106015                     TCP denied, no connection
106023                     denied by access-group (the ACL is the rule)
106100                     access-list permitted / denied (the ACL is the rule)
710003                     TCP / UDP to the device denied by ACL
=========================  ===========================================================

Built messages name the outside ("foreign") side first; for ``outbound`` connections the
initiator is the second address, for ``inbound`` the first. Teardown keeps the order of Built
without the direction word, so the first address is taken as the initiator. ASA logs one byte
total per connection: it is stored in ``src_bytes`` (``dst_bytes`` stays empty). Other ASA
messages are skipped (counted) as "not a connection record". ASA's own stamp (``Oct 03 2018
17:34:08``) and the syslog header are both understood.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import (
    Field,
    LineFormat,
    LineSource,
    protocol_name,
    seconds_of_clock,
)

_ID = r"%(?:ASA|FTD)-\d-"
_END = r"(?P<{p}if>[^:\s]+):(?P<{p}ip>[^/\s]+)/(?P<{p}port>\d+)"
_MAPPED = r"(?: \((?P<{p}mip>[^/\s)]+)/(?P<{p}mport>\d+)\))?(?:\([^)]*\))*"


def _end(prefix: str, mapped: bool = False) -> str:
    """An ``interface:address/port`` group set named with ``prefix``."""
    return _END.format(p=prefix) + (_MAPPED.format(p=prefix) if mapped else "")


_BUILT = (
    _ID + r"30201[35]: Built (?P<b_dir>inbound|outbound) (?P<b_proto>TCP|UDP) connection "
    r"(?P<b_id>\d+) for " + _end("b1", True) + " to " + _end("b2", True)
)
_TEARDOWN = (
    _ID
    + r"30201[46]: Teardown (?P<t_proto>TCP|UDP) connection (?P<t_id>\d+) for "
    + _end("t1")
    + " to "
    + _end("t2")
    + r"(?: duration (?P<t_dur>[\d:h]+))?(?: bytes (?P<t_bytes>\d+))?(?: (?P<t_reason>.+))?$"
)
_PLAIN_DENY = (
    _ID + r"(?:106001: Inbound (?P<d_proto1>TCP|UDP) connection denied|106006: Deny inbound "
    r"(?P<d_proto2>UDP|TCP)|106007: Deny inbound (?P<d_proto3>UDP)|106015: Deny "
    r"(?P<d_proto4>TCP) \(no connection\)) from (?P<d_sip>[^/\s]+)/(?P<d_sport>\d+) to "
    r"(?P<d_dip>[^/\s]+)/(?P<d_dport>\d+)"
)
_ACL_DENY = (
    _ID
    + r"106023: Deny (?P<a_proto>\w+) src "
    + _end("a1").replace(r"/(?P<a1port>\d+)", r"(?:/(?P<a1port>\d+))?")
    + " dst "
    + _end("a2").replace(r"/(?P<a2port>\d+)", r"(?:/(?P<a2port>\d+))?")
    + r".*? by access-group \"(?P<a_acl>[^\"]+)\""
)
_ACL_LOG = (
    _ID + r"106100: access-list (?P<l_acl>\S+) (?P<l_verdict>permitted|denied|est-allowed) "
    r"(?P<l_proto>\w+) (?P<l1if>[^/\s]+)/(?P<l1ip>[^(\s]+)\((?P<l1port>\d+)\)[^>]*-> "
    r"(?P<l2if>[^/\s]+)/(?P<l2ip>[^(\s]+)\((?P<l2port>\d+)\)"
)
_TO_DEVICE = (
    _ID + r"710003: (?P<v_proto>TCP|UDP) access denied by ACL from (?P<v_sip>[^/\s]+)/"
    r"(?P<v_sport>\d+) to " + _end("v2")
)
_RECORD_IDS = r"(?:30201[3-6]|10600[167]|106015|106023|106100|710003)"

_OUTBOUND = pl.col("b_dir") == "outbound"


def _first(*columns: str) -> pl.Expr:
    return pl.coalesce([pl.col(c) for c in columns])


ASA = LineFormat(
    name="cisco_asa",
    table="flows",
    description="Cisco ASA connection or deny message",
    recognise=_ID + _RECORD_IDS + ": ",
    on="line",
    patterns=(_BUILT, _TEARDOWN, _PLAIN_DENY, _ACL_DENY, _ACL_LOG, _TO_DEVICE),
    fields={
        "src_ip": Field(
            pl.coalesce(
                pl.when(_OUTBOUND).then(pl.col("b2ip")).otherwise(pl.col("b1ip")),
                _first("t1ip", "d_sip", "a1ip", "l1ip", "v_sip"),
            ),
            "addr",
        ),
        "src_port": Field(
            pl.coalesce(
                pl.when(_OUTBOUND).then(pl.col("b2port")).otherwise(pl.col("b1port")),
                _first("t1port", "d_sport", "a1port", "l1port", "v_sport"),
            ),
            "port",
        ),
        "dst_ip": Field(
            pl.coalesce(
                pl.when(_OUTBOUND).then(pl.col("b1ip")).otherwise(pl.col("b2ip")),
                _first("t2ip", "d_dip", "a2ip", "l2ip", "v2ip"),
            ),
            "addr",
        ),
        "dst_port": Field(
            pl.coalesce(
                pl.when(_OUTBOUND).then(pl.col("b1port")).otherwise(pl.col("b2port")),
                _first("t2port", "d_dport", "a2port", "l2port", "v2port"),
            ),
            "port",
        ),
        "nat_src_ip": Field(
            pl.when(_OUTBOUND).then(pl.col("b2mip")).otherwise(pl.col("b1mip")), "addr"
        ),
        "nat_src_port": Field(
            pl.when(_OUTBOUND).then(pl.col("b2mport")).otherwise(pl.col("b1mport")), "port"
        ),
        "nat_dst_ip": Field(
            pl.when(_OUTBOUND).then(pl.col("b1mip")).otherwise(pl.col("b2mip")), "addr"
        ),
        "nat_dst_port": Field(
            pl.when(_OUTBOUND).then(pl.col("b1mport")).otherwise(pl.col("b2mport")), "port"
        ),
        "protocol": Field(
            protocol_name(
                _first(
                    "b_proto",
                    "t_proto",
                    "d_proto1",
                    "d_proto2",
                    "d_proto3",
                    "d_proto4",
                    "a_proto",
                    "l_proto",
                    "v_proto",
                )
            )
        ),
        "action": Field(
            pl.when(pl.col("b_dir").is_not_null() | pl.col("t_id").is_not_null())
            .then(pl.lit("allow"))
            .when(pl.col("l_verdict").is_in(["permitted", "est-allowed"]))
            .then(pl.lit("allow"))
            .otherwise(pl.lit("deny"))
        ),
        "rule": Field(_first("a_acl", "l_acl")),
        "flow_uid": Field(_first("b_id", "t_id")),
        "duration_s": Field(seconds_of_clock(pl.col("t_dur")), "float"),
        "src_bytes": Field(pl.col("t_bytes"), "count"),
        "conn_state": Field(pl.col("t_reason")),
    },
    # Every other ASA message (VPN, AAA, failover, NAT slots...) is understood and counted; an
    # expression, not a regex, so that it does not make a VPN-only ASA file sniff as this one.
    skipped=(
        (
            pl.col("line").str.contains(_ID + r"\d{6}:? "),
            pl.lit("Cisco ASA message of another kind: not a connection record"),
        ),
    ),
)


class CiscoAsa(LineSource):
    """Cisco ASA connection built/teardown and deny messages."""

    format: ClassVar[LineFormat] = ASA
