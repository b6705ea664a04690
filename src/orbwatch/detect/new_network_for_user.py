"""A successful remote login from a network the account has never used.

Rationale
    Covert networks place their exit node near the victim: a hijacked home router on a
    residential ISP, or a rented server, in the victim's own country, so that country-based
    geo-blocking and "impossible travel" see nothing unusual (Mandiant's ORB model, field
    notes). What still stands out is that *this account* never logged in from that autonomous
    system, region or kind of network before. A new residential or hosting ASN in the account's
    usual country therefore weighs more here, not less, than a new country.

ATT&CK
    T1078 (Valid Accounts), T1133 (External Remote Services), T1090.002 (Proxy: External Proxy).

Inputs
    ``logins`` (successes), ``ip_info``, and the login baselines ``login_profiles`` and
    ``login_users`` (``orbwatch baseline``).

How it decides
    For each successful login from outside the organisation's own networks (config
    ``internal_networks``, ``corporate_egress``) to one of ``services``: an ASN, region or
    network class is *new* when the account's profile holds no earlier login with it (the value
    was first seen at this very login, or is not in the baseline yet). Sources familiar to the
    organisation (used by ``familiar_min_users`` colleagues over ``familiar_min_days`` days)
    are skipped. One alert per account and new network. What is reported:

    * a new network in a hosting, VPN or Tor network (they rent addresses to anyone), at
      ``high`` for a profiled account and at ``low``, labelled "not yet profiled", for an
      account still in its learning period (``login_users.profiled_since``);
    * for a profiled account with at least ``min_remote_logins`` earlier remote logins, and
      only when a second property of the login is unfamiliar too (``require_corroboration``):
      a new residential or hosting ASN in a country the account already uses (the exit node
      near the victim) with an hour of the day no earlier login came within
      ``hour_tolerance`` hours of, or a client string the account never used: ``high``;
      a new country with a new client string: ``medium`` (time zones travel with people, so
      the hour does not corroborate abroad).

    Mobile carriers are not "near the victim": phones hop between carrier networks.

Parameters
    See the dataclass fields. ``require_corroboration``, ``hour_tolerance`` and
    ``min_remote_logins`` were added after measuring on the simulator: novelty alone
    (a first phone login, a first day working from home, a hotel) made 27 alerts for 60
    people in two weeks, one of them the attacker (docs/detectors.md, "Login-side quality").
    ``require_corroboration = False`` reports every novelty as before.

Known false positives
    Travel, a new home ISP or phone plan, a new cloud desktop; the first weeks after the
    baseline starts (every account is learning). Familiar-source detection absorbs offices and
    shared egress once several colleagues have used them for a week.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.logins import (
    enriched_logins,
    mark_new_hour,
    past_values,
    ranked,
    successes,
    user_profile,
    with_familiarity,
    with_prior_logins,
    with_profile_state,
)
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.login_common import (
    RENTED_CLASSES,
    asn_text,
    capped,
    describe_source,
    evidence_refs,
    refs,
    words,
)
from orbwatch.engines.base import Engine

#: Classes where a new ASN in a country the account uses is the exit node near the victim.
#: Mobile carriers are left out: phones hop between carrier networks behind carrier-grade NAT,
#: and covert networks are built from SOHO routers and servers (field notes).
NEAR_VICTIM_CLASSES = ("residential", "hosting")


def mark_new(logins: ir.Table, engine: Engine, attribute: str, column: str) -> ir.Table:
    """Add ``new_<attribute>``: no earlier login of the account had this value of ``column``."""
    prof = user_profile(engine, attribute)
    prof = prof.select(k_user=prof.user, k_value=prof.value, k_first=prof.first_seen)
    value = logins[column].cast("string")
    joined = logins.left_join(
        prof,
        (logins.user == prof.k_user) & (value == prof.k_value) & (prof.k_first < logins.ts),
    )
    flag = joined.k_user.isnull() & value.notnull()
    return joined.mutate(**{f"new_{attribute}": flag}).drop("k_user", "k_value", "k_first")


def with_remote_history(ok: ir.Table) -> ir.Table:
    """Add ``remote_prior``: the account's earlier successful logins among ``ok`` (remote
    access from outside the organisation), ties broken as in ``with_prior_logins``."""
    order = ibis.window(group_by=ok.user, order_by=[ok.ts, ok.source_file, ok.source_offset])
    return ok.mutate(remote_prior=ibis.row_number().over(order))


@dataclass
class NewNetworkForUser(Detector):
    """Successful remote access from an ASN, region or network class the account never used."""

    id: ClassVar[str] = "new_network_for_user"
    summary: ClassVar[str] = "Remote login from a network the account has never used"
    techniques: ClassVar[tuple[str, ...]] = ("T1078", "T1133", "T1090.002")
    requires: ClassVar[tuple[str, ...]] = ("logins", "ip_info", "login_profiles", "login_users")

    #: Services that are remote access (login ``service`` values).
    services: tuple[str, ...] = ("vpn", "ssh", "sso")
    #: A source used by this many accounts ...
    familiar_min_users: int = 3
    #: ... over at least this many days is familiar to the organisation and skipped
    #: (Entra ignores "locations used by colleagues").
    familiar_min_days: float = 7.0
    #: Report a new residential/mobile network or a new country only when a second property
    #: of the login is unfamiliar too (hour of day, client string), as Entra's "unfamiliar
    #: sign-in properties" weighs them together. False reports every novelty.
    require_corroboration: bool = True
    #: An earlier login within this many hours of the login's hour of day makes it usual.
    hour_tolerance: int = 2
    #: Remote logins the account needs before a new network means anything: the first days
    #: of working from home are novelty for everyone (rented networks are always reported).
    min_remote_logins: int = 3

    def candidates(self, ctx: DetectContext) -> ir.Table:
        engine = ctx.engine
        ok = with_prior_logins(successes(enriched_logins(engine, ctx.config)))
        ok = ok.filter(ok.service.isin(list(self.services)) & ~ok.corporate & ok.src_key.notnull())
        ok = with_remote_history(ok)
        ok = with_familiarity(ok, engine, self.familiar_min_users, self.familiar_min_days)
        ok = with_profile_state(ok.filter(~ok.familiar), engine)
        for attribute in ("asn", "region", "net_class", "country", "client"):
            ok = mark_new(ok, engine, attribute, attribute)
        ok = mark_new_hour(ok, engine, self.hour_tolerance)
        ok = ok.filter(self._reported(ok)).mutate(
            asn_key=ok.asn.cast("string").fill_null("-"), region_key=ok.region.fill_null("-")
        )
        group = ["user", "asn_key", "region_key", "net_class"]
        out = ok.group_by(group).aggregate(
            first_seen=ok.ts.min(),
            last_seen=ok.ts.max(),
            event_count=ok.count(),
            asn=ok.asn.max(),
            country=ok.country.max(),
            src_ip=ok.src_ip.min(),
            target=ok.target.min(),
            service=ok.service.min(),
            new_asn=ok.new_asn.any(),
            new_region=ok.new_region.any(),
            new_net_class=ok.new_net_class.any(),
            new_country=ok.new_country.any(),
            new_hour=ok.new_hour.any(),
            new_client=ok.new_client.any(),
            first_hour=ok.ts.hour().min(),
            profiled=ok.profiled.all(),
            prior_logins=ok.prior_logins.min(),
        )
        out = out.join(evidence_refs(ok, group), group)
        first = out.select(user=out.user, ts=out.first_seen)
        for attribute, column in (("asn", "past_asns"), ("country", "past_countries")):
            past = past_values(engine, first, attribute, column)
            out = out.left_join(past, (out.user == past.user) & (out.first_seen == past.ts)).drop(
                "user_right", "ts"
            )
        return out.mutate(entity=out.user)

    def _reported(self, ok: ir.Table) -> ir.BooleanValue:
        """Which new-network logins become findings (see the module docstring)."""
        novel = ok.new_asn | ok.new_region | ok.new_net_class
        rented = novel & ok.net_class.isin(list(RENTED_CLASSES))
        if not self.require_corroboration:
            return ok.profiled.ifelse(novel, rented)
        seasoned = ok.profiled & (ok.remote_prior >= self.min_remote_logins)
        near_victim = (
            ok.new_asn
            & ~ok.new_country
            & ok.net_class.isin(list(NEAR_VICTIM_CLASSES))
            & (ok.new_hour | ok.new_client)
        )
        # Time zones travel with people: abroad only a new client corroborates.
        abroad = ok.new_country & ok.new_client
        return rented | (seasoned & (near_victim | abroad))

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        user, cls = row["user"], row["net_class"]
        source = describe_source(row["asn"], cls, row["country"])
        new_parts = [
            name
            for name, flag in (
                ("network", row["new_asn"]),
                ("region", row["new_region"]),
                ("kind of network", row["new_net_class"]),
            )
            if flag
        ]
        past_asns = ranked(row.get("past_asns"))
        past_countries = ranked(row.get("past_countries"))
        near_victim = row["new_asn"] and not row["new_country"] and cls in NEAR_VICTIM_CLASSES
        severity, why = self._severity(row, near_victim)
        story = (
            f"{user} logged in to {row['target'] or row['service']} from {source} "
            f"({row['src_ip']}) for the first time"
        )
        if past_asns:
            asns = words([asn_text(a) for a, _ in past_asns])
            where = words([c for c, _ in past_countries]) or "unknown countries"
            story += f"; {user}'s {row['prior_logins']} earlier logins came from {asns} in {where}"
        story += f". New: {words(new_parts)}; {why}."
        also = [
            text
            for text, flag in (
                (f"an hour of the day it never used ({row['first_hour']:02d}:00 UTC)", "new_hour"),
                ("a client string it never used", "new_client"),
            )
            if row[flag]
        ]
        if also:
            story += f" Also unfamiliar for {user}: {words(also)}."
        if not row["profiled"]:
            story += " The account is not yet profiled (learning period), so this is weaker."
        score = 35 + 20 * row["new_asn"] + 10 * row["new_country"] + 5 * row["new_region"]
        score += 20 if near_victim else (15 if cls in RENTED_CLASSES else 0)
        score += 10 * len(also)
        score -= 0 if row["profiled"] else 30
        label = "" if row["profiled"] else " (not yet profiled)"
        return Finding(
            entity=user,
            severity=severity,
            score=capped(score),
            title=f"{user} logged in from new {words(new_parts)} {source}{label}",
            explanation=story,
            evidence={
                "service": row["service"],
                "target": row["target"],
                "src_ip": row["src_ip"],
                "asn": row["asn"],
                "country": row["country"],
                "region": row["region_key"],
                "net_class": cls,
                "new": new_parts,
                "unfamiliar_hour": row["new_hour"],
                "unfamiliar_client": row["new_client"],
                "profiled": row["profiled"],
                "earlier_logins": row["prior_logins"],
                "past_asns": [{"asn": a, "logins": n} for a, n in past_asns],
                "past_countries": [{"country": c, "logins": n} for c, n in past_countries],
                "logins": row["event_count"],
                "login_records": refs(row),
            },
            src_ip=row["src_ip"],
            user=user,
        )

    @staticmethod
    def _severity(row: dict[str, Any], near_victim: bool) -> tuple[str, str]:
        cls = row["net_class"]
        if not row["profiled"]:
            return "low", f"a {cls} source"
        if row["new_asn"] and cls in RENTED_CLASSES:
            return "high", f"{cls} networks rent addresses to anyone"
        if near_victim:
            return "high", (
                f"a {cls} network in a country the account already uses, where an exit node "
                "placed near the victim hides from country rules"
            )
        if row["new_country"]:
            return "medium", "a country the account never used"
        if row["new_asn"]:
            return "medium", "an autonomous system the account never used"
        return "low", "only the region or kind of network changed"

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['user']}|{row['asn_key']}|{row['region_key']}|{row['net_class']}"
