"""Blocklists of live indicators, each entry with its expiry, for firewalls to consume.

Only live address indicators are written (decayed score at or above the threshold and at or
above ``--min-score``, not past ``valid_until``, not marked expired; domains are not written:
the formats here block addresses). An indicator that overlaps the organisation's own or a
special-purpose network (bogon lists carry 10.0.0.0/8) is never written: blocking it would cut
the organisation off. An address listed by several lists is written once, with its best score
and latest expiry, and a network inside a wider listed network is left out (interval sets
refuse overlapping elements).

Every entry's expiry is the moment its decayed score falls under the threshold
(:func:`orbwatch.enrich.decay.expiry_times`), or its feed's ``valid_until`` if earlier. How each
format carries it:

* ``plain``: ``address ; expires <ISO time> score <n> class <c>`` (readable back by
  ``orbwatch intel add``, whose plain reader keeps the comment);
* ``edl`` (PAN-OS External Dynamic List, also read by Fortinet threat feeds): entries one per
  line after a ``#`` comment header that names the earliest expiry: EDL entries have no
  per-entry expiry, so the list must be re-exported at least that often;
* ``nftables``: a table ``inet orbwatch`` with two interval sets (``ipv4_addr``,
  ``ipv6_addr``) with ``flags interval, timeout`` and one ``timeout`` per element, checked with
  ``nft -c -f``;
* ``ipset``: ``ipset restore`` input: ``create ... hash:net family inet|inet6 timeout 0``
  and ``add ... timeout N`` per entry. The kernel caps ipset timeouts at 2,147,483 seconds
  (about 24.8 days): longer expiries are cut to that, so re-export daily;
* ``suricata``: one rule per entry, ``alert ip <addr> any <> $HOME_NET any`` with
  ``classtype`` by class (classtypes of Suricata's default ``classification.config``), a
  ``sid`` counting up from 9,100,000, and ``metadata`` carrying the expiry, score, class and list
  (Suricata's IP reputation files have no expiry, rules can say it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.enrich.decay import decayed_intel, expiry_times
from orbwatch.errors import InputError
from orbwatch.store.workspace import Workspace

FORMATS = ("plain", "edl", "nftables", "ipset", "suricata")
IPSET_MAX_TIMEOUT = 2_147_483
DEFAULT_SID_BASE = 9_100_000
#: Suricata classtype per indicator class (all in Suricata's default classification.config).
CLASSTYPES = {
    "c2": "trojan-activity",
    "quad7": "trojan-activity",
    "compromised-soho": "trojan-activity",
    "vps-relay": "trojan-activity",
    "proxy": "policy-violation",
    "tor": "policy-violation",
    "scanner": "attempted-recon",
    "unknown": "bad-unknown",
}

_LIVE_ENTRIES = """
WITH live AS (
    SELECT indicator, family, start_key, end_key, list_name, intel_class,
        decayed_score, expires_at
    FROM _blocklist_live
), best AS (
    SELECT indicator, any_value(family) AS family, any_value(start_key) AS start_key,
        any_value(end_key) AS end_key, max(decayed_score) AS score,
        max(expires_at) AS expires_at,
        arg_max(intel_class, decayed_score) AS intel_class,
        string_agg(DISTINCT list_name, ',' ORDER BY list_name) AS lists
    FROM live GROUP BY indicator
), ordered AS (
    SELECT *, max(end_key) OVER (
        ORDER BY start_key, end_key DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ) AS covered_to
    FROM best
)
SELECT indicator, family, score, expires_at, intel_class, lists FROM ordered
WHERE covered_to IS NULL OR covered_to < end_key
ORDER BY family, start_key
"""


@dataclass(frozen=True)
class Entry:
    """One line of a blocklist."""

    indicator: str
    family: int
    score: float
    expires_at: dt.datetime
    intel_class: str
    lists: str

    def timeout(self, now: dt.datetime) -> int:
        """Whole seconds from ``now`` until the entry expires (at least 1)."""
        return max(1, int((self.expires_at - now).total_seconds()))


def live_entries(
    ws: Workspace, config: Config, now: dt.datetime, min_score: float = 0.0
) -> list[Entry]:
    """The deduplicated live address indicators, IPv4 first, in address order."""
    decayed = decayed_intel(ws, config.intel, now)
    decayed = decayed.append_column("expires_at", expiry_times(decayed, config.intel))
    keep = pc.and_(
        pc.and_(decayed["live"], pc.is_valid(decayed["start_key"])),
        pc.greater_equal(decayed["decayed_score"], float(min_score)),
    )
    keep = pc.and_(
        keep, pc.greater(decayed["expires_at"], pa.scalar(now, decayed["expires_at"].type))
    )
    for net in (netaddr.network(c) for c in config.never_malicious()):
        overlaps = pc.and_(
            pc.less_equal(decayed["start_key"], net.end_key),
            pc.greater_equal(decayed["end_key"], net.start_key),
        )
        keep = pc.and_(keep, pc.invert(pc.fill_null(overlaps, False)))
    ws.con.register("_blocklist_live", decayed.filter(keep))
    try:
        rows = ws.query(_LIVE_ENTRIES).to_pylist()
    finally:
        ws.con.unregister("_blocklist_live")
    return [Entry(**row) for row in rows]


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(entries: list[Entry], now: dt.datetime, min_score: float, mark: str) -> list[str]:
    soonest = min((e.expires_at for e in entries), default=None)
    return [
        f"{mark} orbwatch blocklist: {len(entries)} live indicators, "
        f"decayed score >= {min_score:g}",
        f"{mark} generated {_stamp(now)}"
        + (f"; first entry expires {_stamp(soonest)}: re-export before then" if soonest else ""),
    ]


def render_plain(entries: list[Entry], now: dt.datetime, min_score: float) -> str:
    lines = _header(entries, now, min_score, "#")
    lines += [
        f"{e.indicator} ; expires {_stamp(e.expires_at)} score {e.score:.0f} class {e.intel_class}"
        for e in entries
    ]
    return "\n".join(lines) + "\n"


def render_edl(entries: list[Entry], now: dt.datetime, min_score: float) -> str:
    lines = _header(entries, now, min_score, "#")
    lines += [e.indicator for e in entries]
    return "\n".join(lines) + "\n"


def render_nftables(entries: list[Entry], now: dt.datetime, min_score: float) -> str:
    lines = [*_header(entries, now, min_score, "#"), "table inet orbwatch {}"]
    lines += ["flush table inet orbwatch", "table inet orbwatch {"]
    for family, name, kind in ((4, "blocklist_v4", "ipv4_addr"), (6, "blocklist_v6", "ipv6_addr")):
        members = [e for e in entries if e.family == family]
        lines += [f"\tset {name} {{", f"\t\ttype {kind}", "\t\tflags interval, timeout"]
        if members:
            elements = ",\n".join(f"\t\t\t{e.indicator} timeout {e.timeout(now)}s" for e in members)
            lines += ["\t\telements = {", elements, "\t\t}"]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_ipset(entries: list[Entry], now: dt.datetime, min_score: float) -> str:
    lines = _header(entries, now, min_score, "#")
    for family, name, inet in ((4, "orbwatch_v4", "inet"), (6, "orbwatch_v6", "inet6")):
        members = [e for e in entries if e.family == family]
        maxelem = max(65536, len(members))
        lines.append(f"create {name} hash:net family {inet} maxelem {maxelem} timeout 0 -exist")
        lines += [
            f"add {name} {e.indicator} timeout {min(e.timeout(now), IPSET_MAX_TIMEOUT)} -exist"
            for e in members
        ]
    return "\n".join(lines) + "\n"


def render_suricata(
    entries: list[Entry], now: dt.datetime, min_score: float, sid_base: int = DEFAULT_SID_BASE
) -> str:
    lines = _header(entries, now, min_score, "#")
    for number, e in enumerate(entries):
        expires = e.expires_at.astimezone(dt.UTC).strftime("%Y_%m_%d")
        lists = e.lists.replace(",", "+").replace(";", "_").replace('"', "_")
        lines.append(
            f"alert ip {e.indicator} any <> $HOME_NET any "
            f'(msg:"orbwatch listed {e.intel_class} infrastructure {e.indicator}"; '
            f"classtype:{CLASSTYPES.get(e.intel_class, 'bad-unknown')}; "
            f"sid:{sid_base + number}; rev:1; "
            f"metadata:orbwatch_class {e.intel_class}, orbwatch_score {e.score:.0f}, "
            f"expires {expires}, orbwatch_lists {lists};)"
        )
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[list[Entry], dt.datetime, float], str]] = {
    "plain": render_plain,
    "edl": render_edl,
    "nftables": render_nftables,
    "ipset": render_ipset,
    "suricata": render_suricata,
}


def export(
    ws: Workspace,
    config: Config,
    fmt: str,
    *,
    min_score: float = 0.0,
    now: dt.datetime | None = None,
) -> tuple[str, int]:
    """The blocklist text in format ``fmt`` and its number of entries."""
    if fmt not in RENDERERS:
        raise InputError(f"unknown blocklist format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not 0 <= min_score <= 100:
        raise InputError(f"--min-score {min_score}: use a number from 0 to 100")
    moment = now or dt.datetime.now(dt.UTC)
    entries = live_entries(ws, config, moment, min_score)
    return RENDERERS[fmt](entries, moment, min_score), len(entries)
