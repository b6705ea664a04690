"""Fortinet FortiGate traffic logs (``key=value``, FortiOS 4 to 7).

One line per session (``type=traffic``): ``srcip``/``dstip``, ``srcport``/``dstport``, ``proto``
(IANA number), ``action`` (accept, close, timeout, client-rst, server-rst are allowed sessions;
deny/blocked are denied), ``policyid`` as the rule, ``sentbyte``/``rcvdbyte``, ``sentpkt``/
``rcvdpkt``, ``duration`` and the source NAT ``transip``/``transport``. FortiOS 4 used other
names (``src``, ``dst``, ``src_port``, ``status``, ``sent``, ``rcvd``); both are read. The time is
``eventtime`` (epoch, exact) when present, else ``date``+``time`` in the device's local zone
(the configured syslog zone), else the syslog header. Event and UTM logs are not sessions.
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
    first_kv,
    protocol_name,
)


def _key(*names: str) -> pl.Expr:
    """The first of several key spellings (FortiOS versions renamed fields)."""
    return first_kv(names, on="line")


_TYPE = r"(?:^|\s)type=\"?"
_LOGID = r"(?:^|\s)(?:logid|log_id)=\"?\d{10}\"?"

FORTIGATE_TRAFFIC = LineFormat(
    name="fortigate_traffic",
    table="flows",
    description="FortiGate traffic log",
    recognise=_LOGID + r".*" + _TYPE + r"traffic\b",
    on="line",
    fields={
        "src_ip": Field(_key("srcip", "src"), "addr"),
        "dst_ip": Field(_key("dstip", "dst"), "addr"),
        "src_port": Field(_key("srcport", "src_port"), "port"),
        "dst_port": Field(_key("dstport", "dst_port"), "port"),
        "protocol": Field(protocol_name(_key("proto"))),
        "service": Field(_key("service")),
        "action": Field(
            action_of(
                _key("action", "status"),
                allow=("accept", "close", "timeout", "client-rst", "server-rst", "start", "dns"),
                deny=("deny", "blocked", "block", "ip-conn"),
            )
        ),
        "rule": Field(_key("policyid", "rule")),
        "src_bytes": Field(_key("sentbyte", "sent"), "count"),
        "dst_bytes": Field(_key("rcvdbyte", "rcvd"), "count"),
        "src_packets": Field(_key("sentpkt", "sent_pkt"), "count"),
        "dst_packets": Field(_key("rcvdpkt", "rcvd_pkt"), "count"),
        "duration_s": Field(_key("duration"), "float"),
        "flow_uid": Field(_key("sessionid")),
        "nat_src_ip": Field(
            pl.when(_key("trandisp", "tran_disp").is_in(["snat", "snat+dnat"])).then(
                _key("transip", "tran_ip")
            ),
            "addr",
        ),
        "nat_src_port": Field(
            pl.when(_key("trandisp", "tran_disp").is_in(["snat", "snat+dnat"])).then(
                _key("transport", "tran_port")
            ),
            "port",
        ),
        "exporter": Field(pl.coalesce(_key("devname"), pl.col("host"))),
    },
    time=(
        TimeField(_key("eventtime")),
        TimeField(_key("date") + " " + _key("time"), "%Y-%m-%d %H:%M:%S"),
    ),
    skipped=tuple(
        (_LOGID + r".*" + _TYPE + kind + r"\b", f"FortiGate {label} log: not a traffic record")
        for kind, label in (("event", "event"), ("utm", "UTM"), ("anomaly", "anomaly"))
    ),
)


class FortigateTraffic(LineSource):
    """FortiGate key=value traffic lines."""

    format: ClassVar[LineFormat] = FORTIGATE_TRAFFIC
