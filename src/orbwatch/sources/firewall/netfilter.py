"""Linux netfilter kernel log lines: iptables/nftables ``LOG`` targets, firewalld, UFW, OpenWrt.

The kernel writes one line per logged packet: an optional log prefix chosen by the rule author
(``[UFW BLOCK]``, ``FINAL_REJECT:``, ``DROP(src wan)``) followed by ``IN= OUT= ... SRC= DST=
... PROTO= SPT= DPT=``. The prefix is the only trace of the verdict, so ``action`` is derived
from words in it (DROP/REJECT/BLOCK/DENY: deny; ACCEPT/ALLOW/PASS: allow; else unknown) and the
prefix is kept as ``rule``. For ICMP the type and code go to the port columns, as in ``flows``.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from orbwatch.sources.syslog import Field, LineFormat, LineSource, kv, protocol_name

DENY_WORDS = r"(?i)drop|reject|block|deny|denied"
ALLOW_WORDS = r"(?i)accept|allow|pass|permit"


def _word(key: str) -> pl.Expr:
    return kv(key, quotes="")


def verdict_of_prefix(prefix: pl.Expr) -> pl.Expr:
    """``deny``/``allow``/``unknown`` from the words a rule author put in a log prefix."""
    return (
        pl.when(prefix.str.contains(DENY_WORDS))
        .then(pl.lit("deny"))
        .when(prefix.str.contains(ALLOW_WORDS))
        .then(pl.lit("allow"))
        .otherwise(pl.lit("unknown"))
    )


_ICMP = protocol_name(_word("PROTO")).is_in(["icmp", "ipv6-icmp"])
# The packet fields every netfilter-style line carries; UniFi reuses them with its own rule.
PACKET_FIELDS: dict[str, Field] = {
    "src_ip": Field(_word("SRC"), "addr"),
    "dst_ip": Field(_word("DST"), "addr"),
    "protocol": Field(protocol_name(_word("PROTO")), "str"),
    "src_port": Field(pl.when(_ICMP).then(_word("TYPE")).otherwise(_word("SPT")), "port"),
    "dst_port": Field(pl.when(_ICMP).then(_word("CODE")).otherwise(_word("DPT")), "port"),
}
RECOGNISE = r"IN=\S* OUT=\S* .*SRC=[0-9A-Fa-f.:]+ DST="


def _log_prefix() -> pl.Expr:
    """The rule author's log prefix: the text before ``IN=``, the first ``=`` of the line.

    After the kernel's ``[seconds.micro]`` stamp, if any, and without the spaces before
    ``IN=``. Null when the first ``=`` is not ``IN=``. Only the short head of the message
    before that ``=`` is cut out and looked at: a regex with a lazy capture group, or a split of
    the whole line, costs a pass and a copy of every (long) line.
    """
    message = pl.col("message")
    before = message.str.head(message.str.find("=", literal=True))
    before = before.str.replace(r"^\[\s*[\d.]+\]\s*", "")
    prefix = before.str.slice(0, before.str.len_chars() - 2).str.strip_chars_end()
    return pl.when(before.str.ends_with("IN")).then(prefix)


_PREFIX = _log_prefix()

NETFILTER = LineFormat(
    name="netfilter_log",
    table="flows",
    description="Linux netfilter (iptables/nftables/firewalld) kernel log",
    recognise=RECOGNISE,
    fields={
        **PACKET_FIELDS,
        "rule": Field(pl.when(_PREFIX != "").then(_PREFIX.str.strip_chars(" :[]"))),
        "action": Field(verdict_of_prefix(_PREFIX.fill_null(""))),
    },
    skipped=(
        (
            r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (ERROR|WARNING|INFO)",
            "firewalld daemon message: not a packet record",
        ),
    ),
)


class NetfilterLog(LineSource):
    """iptables/nftables/firewalld packet log lines."""

    format: ClassVar[LineFormat] = NETFILTER
