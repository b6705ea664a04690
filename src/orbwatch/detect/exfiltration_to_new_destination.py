"""Exfiltration: an internal host uploads an unusual volume to a destination never used before.

Rationale
    Data stolen through a covert network leaves towards a relay: a node the organisation has
    never talked to, often a hijacked home router (residential ISP) or a leased VPS (hosting),
    because the network exists to put fresh, innocent-looking addresses between the victim and
    the actor. Large uploads to long-known destinations (backup, cloud storage) are routine;
    a large upload to a *new* destination is rare, and rarer still into a residential or
    hosting network.

ATT&CK
    T1041 (Exfiltration Over C2 Channel), T1048 (Exfiltration Over Alternative Protocol).

Inputs
    ``flows``; ``ip_info`` (network class of the destination, when enriched).

How it decides
    Per (internal source, external destination, UTC day): bytes the source sent. Raised when
    the organisation's first contact with the destination (any host, either direction) came
    within ``new_within_days`` before the end of that day but at least ``min_history_days``
    after the flows begin (at the start of the data everything looks new), the upload is at
    least ``min_bytes``, at least ``min_out_in_ratio`` times what came back, and at least
    ``history_factor`` times the source's own 95th percentile of daily upload to one
    destination on earlier days (when it has any).
    ``high`` when the destination is in a residential, mobile, hosting, VPN or Tor network,
    ``medium`` otherwise.

Parameters
    See the dataclass fields below.

Known false positives
    A new SaaS, backup or file-transfer service adopted by the organisation (the first upload
    to it is new by definition), software developers pushing to new hosts, video calls to
    freshly allocated cloud relays. Allow-list the service's networks once it is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis.expr.types as ir

from orbwatch.baseline.flows import epoch_seconds, index_time
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.flow_queries import PAIR_DAY, PAIR_REPORT, outbound_days, with_pair_day_figures
from orbwatch.engines.base import Engine

#: Network classes where a relay of a covert network typically sits.
RELAY_CLASSES = ("residential", "mobile", "hosting", "vpn", "tor")


@dataclass
class ExfiltrationToNewDestination(Detector):
    """Unusually large uploads to destinations new for the organisation."""

    id: ClassVar[str] = "exfiltration_to_new_destination"
    summary: ClassVar[str] = "Large upload to a destination new for the organisation"
    techniques: ClassVar[tuple[str, ...]] = ("T1041", "T1048")
    requires: ClassVar[tuple[str, ...]] = ("flows", "ip_info")

    #: Bytes uploaded to the destination in one UTC day before anything is raised.
    min_bytes: int = 50_000_000
    #: Upload must be at least this multiple of the bytes received back.
    min_out_in_ratio: float = 2.0
    #: Upload must be at least this multiple of the source's usual daily upload to one place.
    history_factor: float = 3.0
    #: A destination first contacted by anyone within this many days of the upload is new.
    new_within_days: int = 7
    #: Days of flows needed before a destination's first contact for it to count as new
    #: (at the start of the data every destination is "new").
    min_history_days: float = 1.0

    def candidates(self, ctx: DetectContext) -> ir.Table:
        flows = ctx.engine.table("flows")
        outbound = outbound_days(ctx.engine)
        # Only the bytes per pair and day over all the flows (what the thresholds and the
        # history need); the rest of what an alert reports is gathered at the end, for the
        # uploads that are raised alone.
        daily = outbound.group_by(list(PAIR_DAY)).aggregate(
            bytes_out=outbound.src_bytes.fill_null(0).sum(),
            bytes_in=outbound.dst_bytes.fill_null(0).sum(),
        )
        uploads = daily.filter(
            (daily.bytes_out >= self.min_bytes)
            & (daily.bytes_out >= daily.bytes_in * self.min_out_in_ratio)
        )
        uploads = self._new_only(uploads, flows, ctx.engine)
        judged = with_pair_day_figures(
            ctx.engine,
            self._against_history(uploads, daily, ctx),
            **PAIR_REPORT,
            event_count="flows",
            last_seen="last_end",
        )
        return judged.mutate(entity=judged.src_ip)

    def _new_only(self, uploads: ir.Table, flows: ir.Table, engine: Engine) -> ir.Table:
        """Uploads whose destination the organisation met recently (and not at data start)."""
        wanted = uploads.select(key=uploads.dst_key).distinct()
        sides = flows.select(key=flows.dst_key, ts=flows.ts_start).union(
            flows.select(key=flows.src_key, ts=flows.ts_start)
        )
        sides = sides.semi_join(wanted, "key")
        first = sides.group_by("key").aggregate(first_contact=sides.ts.min())
        first = first.mutate(first_s=epoch_seconds(engine, first.first_contact))
        since = flows.aggregate(data_start=flows.ts_start.min())
        since = since.select(data_start=epoch_seconds(engine, since.data_start))
        joined = uploads.join(first, uploads.dst_key == first.key).cross_join(since)
        history = int(86_400 * self.min_history_days)
        recent = (joined.day + 1 - self.new_within_days) * 86_400
        joined = joined.filter(
            (joined.first_s >= joined.data_start + history) & (joined.first_s >= recent)
        )
        return joined.select(uploads, "first_contact")

    def _against_history(self, uploads: ir.Table, daily: ir.Table, ctx: DetectContext) -> ir.Table:
        """Compare with the source's usual daily upload to one destination; add the class."""
        earlier = daily.select(src_key="src_key", past_day="day", sent="bytes_out")
        past = uploads.select("src_key", "dst_key", "day").join(
            earlier, [uploads.src_key == earlier.src_key, earlier.past_day < uploads.day]
        )
        usual = past.group_by([uploads.src_key, uploads.dst_key, uploads.day]).aggregate(
            usual=past.sent.cast("float64").quantile(0.95), history_days=past.past_day.nunique()
        )
        joined = uploads.left_join(usual, list(PAIR_DAY)).select(uploads, "usual", "history_days")
        joined = joined.filter(
            joined.usual.isnull() | (joined.bytes_out >= joined.usual * self.history_factor)
        )
        info = ctx.engine.table("ip_info")
        info = info.group_by("ip_key").aggregate(
            net_class=info.net_class.max(), country=info.country.max(), as_org=info.as_org.max()
        )
        out = joined.left_join(info, joined.dst_key == info.ip_key)
        out = out.select(
            joined,
            net_class=out.net_class.fill_null("unknown"),
            country=out.country.fill_null("unknown"),
            as_org=out.as_org,
        )
        return out

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        src, dst, sent = row["src_ip"], row["dst_ip"], int(row["bytes_out"])
        relay_like = row["net_class"] in RELAY_CLASSES
        usual = row["usual"]
        history = (
            f"; its usual daily upload to one destination (95th percentile over "
            f"{row['history_days']} day(s)) is {_mb(usual)}"
            if usual is not None
            else "; it uploaded nothing on earlier days"
        )
        where = f"{row['net_class']} network" + (
            f" ({row['as_org']}, {row['country']})" if row["as_org"] else f" ({row['country']})"
        )
        story = (
            f"{src} sent {_mb(sent)} to {dst} ({where}) in {row['event_count']} flow(s) on "
            f"{row['protocol']}/{row['dst_port']} between {row['first_seen']:%Y-%m-%d %H:%M:%S} "
            f"and {row['last_seen']:%Y-%m-%d %H:%M:%S} UTC and received {_mb(row['bytes_in'])}"
            f"{history}. The organisation first exchanged traffic with {dst} on "
            f"{row['first_contact']:%Y-%m-%d %H:%M} UTC."
        )
        if relay_like:
            story += f" A {row['net_class']} network is where covert-network relays sit."
        ratio = sent / max(usual or 0.0, 1.0)
        return Finding(
            entity=src,
            severity="high" if relay_like else "medium",
            score=round(
                min(100.0, 10 * _log10(sent) - 40 + 5 * _log10(ratio) + 20 * relay_like), 1
            ),
            title=f"{src} uploaded {_mb(sent)} to new destination {dst}",
            explanation=story,
            evidence={
                "bytes_out": sent,
                "bytes_in": row["bytes_in"],
                "flows": row["event_count"],
                "usual_daily_upload_p95": None if usual is None else round(float(usual)),
                "net_class": row["net_class"],
                "country": row["country"],
                "as_org": row["as_org"],
                "ports": row["ports"],
            },
            src_ip=src,
            dst_ip=dst,
            bytes=sent,
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['src_ip']}|{row['dst_ip']}|{index_time(row['day'], 86_400):%Y-%m-%d}"


def _mb(value: float) -> str:
    return f"{value / 1e6:,.1f} MB"


def _log10(value: float) -> float:
    import math

    return math.log10(max(value, 1.0))
