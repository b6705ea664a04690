"""Distributed password spraying: many accounts guessed from many sources, each staying quiet.

Rationale
    Covert networks spray passwords through thousands of rotating relays so that every source
    stays under any per-address limit: CovertNetwork-1658 ("Quad7") gave ~80% of the targeted
    accounts **one attempt per day** (field notes). A per-IP threshold is therefore not the
    mechanism here. The detector looks at a service's failures as a whole, per time window, and
    asks whether they form a campaign: many distinct accounts failing from many distinct
    sources. How quietly each source and each account was used, how many sources sit in
    residential or hosting networks and whether one client string dominates (Splunk's rule
    requires exactly one user agent) raise the confidence. Entra ID Protection only raises a
    spray after a *successful* credential validation; here that success escalates the alert to
    critical.

ATT&CK
    T1110.003 (Brute Force: Password Spraying), T1090 (Proxy).

Inputs
    ``logins`` (failures and successes), ``ip_info`` (network class of the sources).

How it decides
    Failures from outside the organisation's networks are cut into windows of
    ``window_hours`` (UTC, default one day: the covert spray cadence); failures from a /24
    the account also logs in from successfully are its owner mistyping and are dropped. A
    window of one service is qualifying when at least ``min_accounts`` accounts failed from at
    least ``min_sources`` sources; consecutive qualifying windows form one *campaign* (one
    alert, whose id stays the same as later days extend it). It is a *distributed* spray when
    at least ``quiet_share`` of the sources made at most ``max_attempts_per_source`` attempts
    in every window and at least ``quiet_share`` of the accounts got at most
    ``max_attempts_per_account`` in every window; otherwise it is password guessing (classic
    brute force, with the loudest sources named), *targeted* when at least ``known_share``
    of the accounts have logged in successfully here, else untargeted background guessing.
    Severity: ``critical`` when a sprayed account then logged in within ``follow_hours`` of
    its last failure from a /24 new to it, either from one of the campaign's own sources or
    without a proven second factor at an hour of the day (``hour_tolerance``) or with a
    client string the profiled account never used (see ``_followed``); ``high`` for a
    distributed spray; ``medium`` for targeted guessing; ``low`` for untargeted guessing.

Evidence
    ``sources``: every source address (up to ``max_listed_sources``; ``source_count`` has
    them all), ``users``: the accounts that then logged in (``compromised_accounts``),
    ``success_sources``: where they logged in from, shares, client strings, the loudest
    sources and the first login records.

Parameters
    See the dataclass fields below (defaults with their source). Changed after measuring on
    the simulator (docs/detectors.md, "Login-side quality"): campaigns instead of one alert
    per day (a week-long spray gave 16 alerts); the owner's typos left out (a 150-person
    organisation's daily typos formed a 10-account "spray"); the escalation needs more than
    "sprayed, then a new /24" (that named a third of the staff); untargeted guessing is
    ``low`` (``known_share`` 0.5).

Known false positives
    A broken client or an expired service password retried by many devices (one client string,
    internal sources: internal sources are not counted as sources); a password-change day
    producing mistyped passwords across the company; an identity provider that logs one
    failure per MFA prompt. A user mistyping just before the real login after a spray counts as
    "success after spray": check the success's source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch import netaddr
from orbwatch.baseline.logins import (
    enriched_logins,
    mark_new_hour,
    successes,
    user_profile,
    with_profile_state,
)
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.login_common import (
    RISKY_CLASSES,
    capped,
    evidence_refs,
    log_points,
    refs,
    words,
)
from orbwatch.detect.new_network_for_user import mark_new
from orbwatch.engines.base import Engine

#: Columns that identify one campaign: a run of consecutive qualifying windows of a service.
CAMPAIGN = ["service", "campaign"]


@dataclass
class PasswordSpray(Detector):
    """Failures across many accounts from many quiet sources; critical once one succeeds."""

    id: ClassVar[str] = "password_spray"
    summary: ClassVar[str] = "Distributed password spraying through many low-volume sources"
    techniques: ClassVar[tuple[str, ...]] = ("T1110.003", "T1090")
    requires: ClassVar[tuple[str, ...]] = ("logins", "ip_info", "login_profiles", "login_users")

    #: Window length in hours; one day matches the one-attempt-per-account-per-day cadence.
    window_hours: int = 24
    #: Distinct accounts that must fail in a window (Splunk's rule uses > 20 in 5 minutes;
    #: a slow covert spray spreads fewer accounts over a day).
    min_accounts: int = 10
    #: Distinct external sources that must take part.
    min_sources: int = 5
    #: A source with at most this many attempts in every window is "quiet".
    max_attempts_per_source: int = 5
    #: An account with at most this many attempts in every window was sprayed, not
    #: brute-forced.
    max_attempts_per_account: int = 2
    #: Share of quiet sources and of sprayed accounts that makes the campaign distributed
    #: (Quad7: ~80% of accounts got one attempt per day).
    quiet_share: float = 0.8
    #: Share of the failing accounts that must be the organisation's (have logged in
    #: successfully at some time) for guessing to be *targeted*; below it, it is Internet
    #: background guessing of names such as root or admin, reported at ``low``.
    known_share: float = 0.5
    #: Hours after an account's last failure in the campaign in which its success escalates.
    follow_hours: int = 72
    #: A success counts as the spray paying off only when its hour of day is this far from
    #: every earlier login of the account, or its client string is new (see ``_followed``).
    hour_tolerance: int = 2
    #: Loudest sources named in the explanation.
    top_sources: int = 5
    #: Sources listed by address in the evidence (the count of all of them is there too); a
    #: bound, because a Quad7-sized spray uses thousands.
    max_listed_sources: int = 2000

    def candidates(self, ctx: DetectContext) -> ir.Table:
        logins = enriched_logins(ctx.engine, ctx.config)
        logins = logins.mutate(window=logins.ts.epoch_seconds() // (self.window_hours * 3600))
        fails = logins.filter(
            (logins.outcome == "failure")
            & logins.user.notnull()
            & logins.src_key.notnull()
            & ~logins.corporate
        ).mutate(service=logins.service.fill_null("unknown"))
        fails = self._in_campaigns(self._not_typos(fails, ctx.engine))
        out = self._totals(fails, logins)
        for part in (self._sources(fails), self._accounts(fails), self._clients(fails)):
            out = out.join(part, CAMPAIGN)
        followed = self._followed(fails, logins, ctx.engine)
        out = out.left_join(followed, CAMPAIGN).drop("service_right", "campaign_right")
        out = out.join(evidence_refs(fails, CAMPAIGN), CAMPAIGN)
        return out.mutate(
            entity=out.service.concat(" logins"),
            compromised=out.compromised.fill_null(0),
        )

    @staticmethod
    def _not_typos(fails: ir.Table, engine: Engine) -> ir.Table:
        """Failures minus those from a /24 the account also logs in from successfully.

        That is the owner mistyping at home or at the office; a large organisation's typos on
        one day otherwise look like a small distributed spray (many accounts, one attempt
        each, from many residential sources).
        """
        own = user_profile(engine, "src_net")
        own = own.select(o_user=own.user, o_net=own.value)
        return fails.anti_join(own, (fails.user == own.o_user) & (fails.src_net == own.o_net))

    def _in_campaigns(self, fails: ir.Table) -> ir.Table:
        """Failures of qualifying windows, with ``campaign``: the first window of the run of
        consecutive qualifying windows they belong to (gaps and islands).

        One slow spray lasting a week is one finding, not seven; its id stays the same when
        later days extend it.
        """
        per = fails.group_by(["service", "window"]).aggregate(
            accounts=fails.user.nunique(), sources=fails.src_key.nunique()
        )
        per = per.filter((per.accounts >= self.min_accounts) & (per.sources >= self.min_sources))
        order = ibis.window(group_by=per.service, order_by=per.window)
        per = per.mutate(island=per.window - ibis.row_number().over(order))
        runs = ibis.window(group_by=[per.service, per.island])
        per = per.select("service", "window", campaign=per.window.min().over(runs))
        return fails.join(per, ["service", "window"])

    def _totals(self, fails: ir.Table, logins: ir.Table) -> ir.Table:
        """Counts per campaign, with ``known_accounts``: failing accounts that have logged in
        successfully at some time (accounts of the organisation, not guessed names)."""
        ok = successes(logins)
        known = ok.select(k_user=ok.user).distinct()
        marked = fails.left_join(known, fails.user == known.k_user)
        per_account = marked.group_by([*CAMPAIGN, "user"]).aggregate(
            known=marked.k_user.notnull().any()
        )
        known_accounts = per_account.group_by(CAMPAIGN).aggregate(
            known_accounts=per_account.known.cast("int64").sum()
        )
        per = fails.group_by(CAMPAIGN).aggregate(
            event_count=fails.count(),
            accounts=fails.user.nunique(),
            sources=fails.src_key.nunique(),
            targets=fails.target.nunique(),
            windows=fails.window.nunique(),
            first_seen=fails.ts.min(),
            last_seen=fails.ts.max(),
        )
        return per.join(known_accounts, CAMPAIGN)

    def _sources(self, fails: ir.Table) -> ir.Table:
        by_window = fails.group_by([*CAMPAIGN, "window", "src_key"]).aggregate(
            attempts=fails.count()
        )
        busiest = by_window.group_by([*CAMPAIGN, "src_key"]).aggregate(
            busiest=by_window.attempts.max()
        )
        per = fails.group_by([*CAMPAIGN, "src_key"]).aggregate(
            src_ip=fails.src_ip.min(),
            attempts=fails.count(),
            risky=fails.net_class.isin(RISKY_CLASSES).any(),
        )
        per = per.join(busiest, [*CAMPAIGN, "src_key"])
        order = ibis.window(
            group_by=[per[c] for c in CAMPAIGN], order_by=[per.attempts.desc(), per.src_key]
        )
        per = per.mutate(rank=ibis.row_number().over(order))
        label = per.src_ip.concat("=", per.attempts.cast("string"))
        return per.group_by(CAMPAIGN).aggregate(
            quiet_sources=(per.busiest <= self.max_attempts_per_source).cast("int64").sum(),
            risky_sources=per.risky.cast("int64").sum(),
            max_source_attempts=per.busiest.max(),
            loudest=(per.rank < self.top_sources).ifelse(label, ibis.null("string")).collect(),
            listed_sources=(per.rank < self.max_listed_sources)
            .ifelse(per.src_ip, ibis.null("string"))
            .collect(),
        )

    def _accounts(self, fails: ir.Table) -> ir.Table:
        per = fails.group_by([*CAMPAIGN, "window", "user"]).aggregate(attempts=fails.count())
        per = per.group_by([*CAMPAIGN, "user"]).aggregate(busiest=per.attempts.max())
        return per.group_by(CAMPAIGN).aggregate(
            sprayed_accounts=(per.busiest <= self.max_attempts_per_account).cast("int64").sum(),
        )

    def _clients(self, fails: ir.Table) -> ir.Table:
        per = fails.group_by([*CAMPAIGN, "client"]).aggregate(attempts=fails.count())
        return per.group_by(CAMPAIGN).aggregate(
            clients=per.client.nunique(),
            top_client_attempts=per.attempts.max(),
        )

    def _followed(self, fails: ir.Table, logins: ir.Table, engine: Engine) -> ir.Table:
        """Sprayed accounts that then logged in from a source new to them in a way only the
        password explains: from one of the campaign's own sources, or without a proven second
        factor and with another unfamiliar property of a profiled account (an hour of the day
        or a client string it never used).

        A success from a /24 the account used before is its owner at work. A campaign sprays
        most of the organisation for days, so "sprayed, then a new /24" alone names every
        colleague who worked from a phone or a hotel meanwhile (in a simulated two-week spray,
        a third of the staff); a second factor or the account's usual hour and client mark the
        owner. Stolen credentials are often used by a second actor, so the success may come
        from any source.
        """
        first = fails.group_by([*CAMPAIGN, "user"]).aggregate(
            first_fail=fails.ts.min(), last_fail=fails.ts.max()
        )
        ok = successes(logins).filter(lambda t: ~t.corporate & t.src_key.notnull())
        ok = mark_new_hour(ok, engine, self.hour_tolerance)
        ok = mark_new(ok, engine, "client", "client")
        ok = with_profile_state(ok, engine)
        ok = ok.mutate(odd=ok.profiled & (ok.new_hour | ok.new_client))
        ok = ok.select(
            ok_user=ok.user, ok_ts=ok.ts, ok_net=ok.src_net, ok_key=ok.src_key, ok_ip=ok.src_ip,
            ok_mfa=ok.mfa.fill_null("unknown"), ok_odd=ok.odd,
        )  # fmt: skip
        hit = first.join(
            ok,
            (first.user == ok.ok_user)
            & (ok.ok_ts > first.first_fail)
            & (ok.ok_ts <= first.last_fail + ibis.interval(hours=self.follow_hours)),
        )
        usual = user_profile(engine, "src_net")
        usual = usual.select(u_user=usual.user, u_net=usual.value, u_first=usual.first_seen)
        hit = hit.anti_join(
            usual,
            (hit.user == usual.u_user) & (hit.ok_net == usual.u_net) & (usual.u_first < hit.ok_ts),
        )
        sprayers = fails.select(s_service="service", s_campaign="campaign", s_key="src_key")
        sprayers = sprayers.distinct()
        hit = hit.left_join(
            sprayers,
            (hit.service == sprayers.s_service)
            & (hit.campaign == sprayers.s_campaign)
            & (hit.ok_key == sprayers.s_key),
        )
        hit = hit.filter(((hit.ok_mfa != "yes") & hit.ok_odd) | hit.s_key.notnull())
        return hit.group_by(CAMPAIGN).aggregate(
            compromised=hit.user.nunique(),
            compromised_users=hit.user.collect(distinct=True),
            success_sources=hit.ok_ip.collect(distinct=True),
            first_success=hit.ok_ts.min(),
        )

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        accounts, sources = row["accounts"], row["sources"]
        quiet = row["quiet_sources"] / sources
        sprayed = row["sprayed_accounts"] / accounts
        distributed = quiet >= self.quiet_share and sprayed >= self.quiet_share
        targeted = row["known_accounts"] / accounts >= self.known_share
        one_client = row["clients"] == 1 and row["event_count"] > 0
        client_share = (row["top_client_attempts"] or 0) / row["event_count"]
        risky = row["risky_sources"] / sources
        loudest = sorted(
            (x.rpartition("=") for x in row["loudest"] or []), key=lambda p: (-int(p[2]), p[0])
        )
        listed = sorted(row["listed_sources"] or [], key=netaddr.key)
        compromised = sorted(row.get("compromised_users") or [])
        severity = self._severity(distributed, targeted, bool(compromised))
        story = self._story(row, quiet, sprayed, risky, one_client, targeted)
        if loudest and not distributed:
            story += " Loudest sources: " + words([f"{ip} ({n})" for ip, _, n in loudest]) + "."
        if compromised:
            story += (
                f" {words(compromised[:5])} then logged in successfully from a source new "
                f"to them, without a second factor or from a spraying address "
                f"(first at {row['first_success']:%Y-%m-%d %H:%M} UTC): treat as compromised."
            )
        score = (
            30
            + log_points(accounts, 12)
            + log_points(sources, 12)
            + 15 * risky
            + (10 if one_client else 5 * client_share)
            + (10 if distributed else 0)
            + (15 if compromised else 0)
            - (0 if targeted or distributed else 20)
        )
        kind = "Distributed password spray" if distributed else "Password guessing"
        title = f"{kind} against {accounts} {row['service']} accounts from {sources} sources"
        if row["windows"] > 1:
            title += f" over {row['windows']} days" if self.window_hours == 24 else ""
        if compromised:
            title += f"; {len(compromised)} account(s) then logged in"
        return Finding(
            entity=row["entity"],
            severity=severity,
            score=capped(score),
            title=title,
            explanation=story,
            evidence={
                "service": row["service"],
                "distributed": distributed,
                "targeted": targeted,
                "accounts": accounts,
                "known_accounts": row["known_accounts"],
                "source_count": sources,
                "sources": listed,
                "windows": row["windows"],
                "failures": row["event_count"],
                "target_count": row["targets"],
                "quiet_source_share": round(quiet, 3),
                "sprayed_account_share": round(sprayed, 3),
                "risky_source_share": round(risky, 3),
                "max_attempts_from_one_source": row["max_source_attempts"],
                "client_strings": row["clients"],
                "loudest_sources": [{"src_ip": ip, "attempts": int(n)} for ip, _, n in loudest],
                "compromised_accounts": compromised,
                "users": compromised,
                "success_sources": sorted(row.get("success_sources") or [], key=netaddr.key),
                "login_records": refs(row),
            },
            user=compromised[0] if len(compromised) == 1 else None,
        )

    @staticmethod
    def _severity(distributed: bool, targeted: bool, compromised: bool) -> str:
        if compromised:
            return "critical"
        if distributed:
            return "high"
        return "medium" if targeted else "low"

    def _story(
        self,
        row: dict[str, Any],
        quiet: float,
        sprayed: float,
        risky: float,
        one_client: bool,
        targeted: bool,
    ) -> str:
        span = f"{row['first_seen']:%Y-%m-%d %H:%M} and {row['last_seen']:%Y-%m-%d %H:%M} UTC"
        story = (
            f"{row['event_count']} failed {row['service']} logins against {row['accounts']} "
            f"accounts ({row['known_accounts']} of them known here) came from {row['sources']} "
            f"sources between {span}; {quiet:.0%} of the sources tried at most "
            f"{self.max_attempts_per_source} times and {sprayed:.0%} of the accounts got at most "
            f"{self.max_attempts_per_account} attempts in any {self.window_hours} hours; "
            f"{risky:.0%} of the sources are in residential, mobile, hosting or anonymising "
            "networks"
        )
        story += "; all used one client string." if one_client else "."
        if not targeted:
            story += " Most names never logged in here: untargeted background guessing."
        return story

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['service']}|{row['campaign']}|{self.window_hours}"
