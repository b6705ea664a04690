"""Logins (attempted or successful) from addresses that threat-intelligence lists name.

Rationale
    A login is where a covert network meets the organisation: password spraying and the use
    of stolen credentials both arrive from relay nodes, and relay nodes are what ORB-tracking
    lists (compromised SOHO routers, proxies, Tor exits, VPS relays) publish. A login from a
    listed address is therefore stronger evidence than a flow from one: it names the account
    at stake. The lists age quickly (IOC extinction, field notes), so matching uses the decayed
    score of each indicator, exactly as ``known_bad_infrastructure`` does: the matching
    mechanism (live entries, bucket join, never-malicious ranges) is imported from it.

ATT&CK
    T1078 (Valid Accounts), T1110 (Brute Force), T1090 (Proxy).

Inputs
    ``logins``; ``intel`` and ``intel_buckets`` (lists loaded with ``orbwatch intel add``).

How it decides
    One alert per listed source address, over all its logins and every live list entry naming
    it (internal and special-purpose addresses are never reported). Severity:

    * ``critical``: a successful login from the address while its indicator is still strong
      (decayed score at least ``FADING_SCORE`` of ``known_bad_infrastructure``);
    * ``high``: a successful login from a fading indicator;
    * ``medium``: only failures, against ``min_accounts_medium`` or more accounts;
    * ``low``: only failures against fewer accounts.

Parameters
    ``min_accounts_medium`` (default 2).

Known false positives
    Users on Tor or a commercial VPN whose exits are listed; re-assigned addresses of a stale
    indicator (its decayed score says how stale); shared mobile carrier NAT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.known_bad_infrastructure import FADING_SCORE, listed_hits, live_entries
from orbwatch.detect.login_common import capped, evidence_refs, refs, words


def login_sides(logins: ir.Table) -> ir.Table:
    """Logins shaped for the intel match: the source is the candidate listed peer."""
    return logins.select(
        peer_ip=logins.src_ip,
        peer_key=logins.src_key,
        user=logins.user.fill_null("?"),
        service=logins.service,
        outcome=logins.outcome,
        ts=logins.ts,
        source_file=logins.source_file,
        source_offset=logins.source_offset,
    )


@dataclass
class LoginFromKnownBadSource(Detector):
    """Attempted or successful logins from addresses on loaded threat-intelligence lists."""

    id: ClassVar[str] = "login_from_known_bad_source"
    summary: ClassVar[str] = "Logins from addresses named by loaded threat-intelligence lists"
    techniques: ClassVar[tuple[str, ...]] = ("T1078", "T1110", "T1090")
    requires: ClassVar[tuple[str, ...]] = ("logins", "intel", "intel_buckets")

    #: Failures against this many accounts or more make a medium alert (else low).
    min_accounts_medium: int = 2

    def candidates(self, ctx: DetectContext) -> ir.Table:
        logins = ctx.engine.table("logins")
        logins = logins.filter(logins.outcome.isin(["success", "failure"]))
        entries = live_entries(ctx.engine.table("intel"), ctx)
        hits = listed_hits(ctx, login_sides(logins), entries)
        ok = hits.outcome == "success"
        # Per list entry first, then the maximum over entries: overlapping entries naming one
        # address must not multiply its logins.
        per_entry = hits.group_by(["peer_ip", "list_name", "indicator"]).aggregate(
            event_count=hits.count(),
            successes=ok.cast("int64").sum(),
            first_seen=hits.ts.min(),
            last_seen=hits.ts.max(),
            score=hits.decayed_score.max(),
        )
        label = per_entry.list_name.concat(" (", per_entry.indicator, ")")
        per_entry = per_entry.mutate(label=label)
        out = per_entry.group_by("peer_ip").aggregate(
            event_count=per_entry.event_count.max(),
            successes=per_entry.successes.max(),
            first_seen=per_entry.first_seen.min(),
            last_seen=per_entry.last_seen.max(),
            intel_score=per_entry.score.max(),
            lists=per_entry.label.collect(distinct=True),
        )
        accounts = hits.group_by("peer_ip").aggregate(
            accounts=hits.user.collect(distinct=True),
            succeeded=ok.ifelse(hits.user, ibis.null("string")).collect(distinct=True),
            services=hits.service.collect(distinct=True),
        )
        records = hits.select("peer_ip", "ts", "source_file", "source_offset").distinct()
        out = out.join(accounts, "peer_ip").join(evidence_refs(records, ["peer_ip"]), "peer_ip")
        return out.mutate(entity=out.peer_ip)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        peer, lists = row["peer_ip"], sorted(row["lists"] or [])
        accounts = sorted(a for a in row["accounts"] or [] if a)
        succeeded = sorted(a for a in row["succeeded"] or [] if a)
        strength = float(row["intel_score"] or 0.0)
        fading = strength < FADING_SCORE
        if succeeded:
            severity = "high" if fading else "critical"
        else:
            severity = "medium" if len(accounts) >= self.min_accounts_medium else "low"
        failures = row["event_count"] - row["successes"]
        services = words(sorted(s for s in row["services"] or [] if s))
        story = (
            f"{peer}, listed by {words(lists)} (decayed score {strength:.0f}), made "
            f"{row['event_count']} {services} login attempt(s) against {words(accounts[:8])} "
            f"between {row['first_seen']:%Y-%m-%d %H:%M} and {row['last_seen']:%Y-%m-%d %H:%M} "
            f"UTC: {row['successes']} succeeded, {failures} failed."
        )
        if succeeded:
            story += f" {words(succeeded)} logged in from it: treat the account(s) as compromised."
        if fading:
            story += " The indicator is fading (old listing), so the match is weaker."
        score = 40 + 0.3 * strength + 10 * math.log10(1 + row["event_count"])
        score += 20 if succeeded else 0
        title = (
            f"{words(succeeded)} logged in from listed address {peer}"
            if succeeded
            else f"Listed address {peer} tried to log in as {len(accounts)} account(s)"
        )
        return Finding(
            entity=peer,
            severity=severity,
            score=capped(score),
            title=title,
            explanation=story,
            evidence={
                "lists": lists,
                "intel_score": round(strength, 1),
                "accounts": accounts,
                "succeeded": succeeded,
                "attempts": row["event_count"],
                "successes": row["successes"],
                "login_records": refs(row),
            },
            src_ip=peer,
            user=succeeded[0] if succeeded else (accounts[0] if len(accounts) == 1 else None),
        )

    def key(self, row: dict[str, Any]) -> str:
        return str(row["peer_ip"])
