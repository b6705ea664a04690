"""Two successful logins of one account further apart than anyone can travel in the time between.

Rationale
    A stolen credential used through a relay in another part of the world shows up as the
    account "travelling" faster than an aircraft. Mandiant's GeoLogonalyzer flags more than
    500 mph over more than 500 miles; Entra ID Protection's atypical travel learns 14 days or
    10 logins and ignores VPN egress and locations colleagues use (field notes). Both are
    followed: the defaults are 800 km/h and 800 km, sources the organisation knows (its own
    networks, ``corporate_egress``, familiar sources) are left out before comparing, and the
    verdict is rated by how atypical each of the two places is for the account.

ATT&CK
    T1078 (Valid Accounts), T1090 (Proxy).

Inputs
    ``logins`` (successes), ``ip_info`` (latitude/longitude, class), ``login_profiles`` and
    ``login_users``.

How it decides
    Each remaining successful login is compared with the account's previous one only (a window
    lag, so the work is linear; a streak from one address collapses into distance 0). The
    great-circle (haversine) distance is computed in the expression. A pair at least
    ``min_distance_km`` apart whose speed (distance over the time between, at least one
    minute) reaches ``max_speed_kmh`` is a candidate. Each end's region is rated against the
    account's profile before the login: *usual* (at least ``usual_share`` of its logins),
    *rare*, or *new*. Severity: ``high`` when one end is new and the source is a hosting,
    VPN or Tor network; ``medium`` when one end is new or rare; ``low`` when both ends are
    usual for the account (a known two-site pattern, a split VPN) or the account is still in
    its learning period (labelled).

Known false positives
    Mobile networks and commercial VPNs whose exit is far from the user, cloud desktops,
    geolocation errors on recently re-assigned addresses; legitimate use of two sites that the
    baseline has seen (rated low).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.logins import (
    enriched_logins,
    successes,
    user_profile,
    with_familiarity,
    with_prior_logins,
    with_profile_state,
)
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.login_common import RENTED_CLASSES, capped, describe_source
from orbwatch.engines.base import Engine

EARTH_RADIUS_KM = 6371.0088
KM_PER_MILE = 1.609344


def haversine_km(
    lat1: ir.FloatingValue, lon1: ir.FloatingValue, lat2: ir.FloatingValue, lon2: ir.FloatingValue
) -> ir.FloatingValue:
    """Great-circle distance in km, as an expression every engine evaluates the same way."""
    dlat = (lat2 - lat1).radians() / 2
    dlon = (lon2 - lon1).radians() / 2
    a = dlat.sin() ** 2 + lat1.radians().cos() * lat2.radians().cos() * dlon.sin() ** 2
    return 2 * EARTH_RADIUS_KM * a.sqrt().clip(upper=1.0).asin()


def _region_share(pairs: ir.Table, engine: Engine, prefix: str) -> ir.Table:
    """Add ``<prefix>region_logins``: the account's logins from that end's region before it."""
    prof = user_profile(engine, "region")
    prof = prof.select(
        r_user=prof.user, r_value=prof.value, r_count=prof["count"], r_first=prof.first_seen
    )
    joined = pairs.left_join(
        prof,
        (pairs.user == prof.r_user)
        & (pairs[f"{prefix}region"] == prof.r_value)
        & (prof.r_first < pairs[f"{prefix}ts"]),
    )
    return joined.mutate(**{f"{prefix}region_logins": joined.r_count.fill_null(0)}).drop(
        "r_user", "r_value", "r_count", "r_first"
    )


@dataclass
class AtypicalTravel(Detector):
    """Consecutive logins of one account implying an impossible speed, rated by atypicality."""

    id: ClassVar[str] = "atypical_travel"
    summary: ClassVar[str] = "Logins of one account from places too far apart for the time between"
    techniques: ClassVar[tuple[str, ...]] = ("T1078", "T1090")
    requires: ClassVar[tuple[str, ...]] = ("logins", "ip_info", "login_profiles", "login_users")

    #: Speed (km/h) from which travel is impossible: 500 mph (GeoLogonalyzer, Entra).
    max_speed_kmh: float = 800.0
    #: Shorter jumps are ignored: geolocation is not precise enough (500 miles).
    min_distance_km: float = 800.0
    #: Network classes never compared (the organisation's own and private addresses).
    ignore_classes: tuple[str, ...] = ("corporate", "private")
    #: A region with at least this share of the account's earlier logins is usual for it.
    usual_share: float = 0.1
    #: Familiar sources (used by this many accounts over ``familiar_min_days``) are skipped.
    familiar_min_users: int = 3
    familiar_min_days: float = 7.0

    def candidates(self, ctx: DetectContext) -> ir.Table:
        engine = ctx.engine
        ok = successes(enriched_logins(engine, ctx.config))
        ok = ok.filter(
            ~ok.corporate
            & ~ok.net_class.isin(list(self.ignore_classes))
            & ok.latitude.notnull()
            & ok.longitude.notnull()
        )
        ok = with_familiarity(ok, engine, self.familiar_min_users, self.familiar_min_days)
        ok = with_prior_logins(ok.filter(~ok.familiar))
        order = ibis.window(group_by=ok.user, order_by=[ok.ts, ok.source_file, ok.source_offset])
        prev = {
            f"prev_{c}": ok[c].lag().over(order)
            for c in (
                "ts",
                "latitude",
                "longitude",
                "src_ip",
                "country",
                "region",
                "asn",
                "net_class",
                "source_file",
                "source_offset",
            )
        }
        pairs = ok.mutate(**prev)
        pairs = pairs.filter(pairs.prev_ts.notnull())
        km = haversine_km(
            pairs.prev_latitude, pairs.prev_longitude, pairs.latitude, pairs.longitude
        )
        seconds = pairs.ts.epoch_seconds() - pairs.prev_ts.epoch_seconds()
        hours = ibis.greatest(seconds, 60) / 3600.0
        pairs = pairs.mutate(distance_km=km, hours=seconds / 3600.0, speed_kmh=km / hours)
        pairs = pairs.filter(
            (pairs.distance_km >= self.min_distance_km) & (pairs.speed_kmh >= self.max_speed_kmh)
        )
        pairs = with_profile_state(pairs, engine)
        pairs = _region_share(pairs, engine, "")
        pairs = pairs.rename(cur_region_logins="region_logins")
        pairs = _region_share(pairs, engine, "prev_")
        return pairs.select(
            "user",
            "ts",
            "src_ip",
            "country",
            "region",
            "asn",
            "net_class",
            "target",
            "service",
            "prev_ts",
            "prev_src_ip",
            "prev_country",
            "prev_region",
            "prev_asn",
            "prev_net_class",
            "distance_km",
            "hours",
            "speed_kmh",
            "profiled",
            "prior_logins",
            "cur_region_logins",
            "prev_region_logins",
            "source_file",
            "source_offset",
            "prev_source_file",
            "prev_source_offset",
            entity=pairs.user,
            first_seen=pairs.prev_ts,
            last_seen=pairs.ts,
            event_count=ibis.literal(2, "int64"),
        )

    def _rating(self, logins: int, prior: int) -> str:
        if logins <= 0:
            return "new"
        return "usual" if logins >= self.usual_share * max(prior, 1) else "rare"

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        user, prior = row["user"], row["prior_logins"]
        here = self._rating(row["cur_region_logins"], prior)
        there = self._rating(row["prev_region_logins"], prior)
        rented = row["net_class"] in RENTED_CLASSES
        if not row["profiled"]:
            severity = "low"
        elif here == "new" and rented:
            severity = "high"
        elif (here, there) == ("usual", "usual"):
            severity = "low"
        else:
            severity = "medium"
        km, speed = row["distance_km"], row["speed_kmh"]
        source = describe_source(row["asn"], row["net_class"], row["country"])
        before = describe_source(row["prev_asn"], row["prev_net_class"], row["prev_country"])
        minutes = round(row["hours"] * 60)
        story = (
            f"{user} logged in to {row['target'] or row['service']} from {source} "
            f"({row['src_ip']}, {row['region']}) {minutes} minutes after a login from {before} "
            f"({row['prev_src_ip']}, {row['prev_region']}), {km:,.0f} km away: "
            f"{speed:,.0f} km/h ({speed / KM_PER_MILE:,.0f} mph). For {user}, this region is "
            f"{here} and the earlier one {there} (over {prior} earlier logins)."
        )
        if not row["profiled"]:
            story += " The account is not yet profiled (learning period), so this is weaker."
        score = 30 + min(30.0, speed / 200) + {"new": 25, "rare": 15, "usual": 0}[here]
        score += 10 if rented else 0
        score -= 0 if row["profiled"] else 25
        label = "" if row["profiled"] else " (not yet profiled)"
        return Finding(
            entity=user,
            severity=severity,
            score=capped(score),
            title=f"{user}: {row['prev_country']} to {row['country']} at {speed:,.0f} km/h{label}",
            explanation=story,
            evidence={
                "distance_km": round(km, 1),
                "minutes": minutes,
                "speed_kmh": round(speed, 1),
                "from": {
                    "src_ip": row["prev_src_ip"],
                    "region": row["prev_region"],
                    "asn": row["prev_asn"],
                    "net_class": row["prev_net_class"],
                    "rating": there,
                },
                "to": {
                    "src_ip": row["src_ip"],
                    "region": row["region"],
                    "asn": row["asn"],
                    "net_class": row["net_class"],
                    "rating": here,
                },
                "profiled": row["profiled"],
                "earlier_logins": prior,
                "login_records": [
                    f"{row['prev_source_file']}:{row['prev_source_offset']}",
                    f"{row['source_file']}:{row['source_offset']}",
                ],
            },
            src_ip=row["src_ip"],
            user=user,
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['user']}|{row['ts'].isoformat()}|{row['src_ip']}"
