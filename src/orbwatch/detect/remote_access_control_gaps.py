"""Posture findings on remote access: controls the policy requires but the logins show missing.

Rationale
    A covert network needs only one weak door: a VPN that lets a password in without a second
    factor, a gateway that does not check the device certificate, an old account nobody uses.
    These findings are about the organisation's controls as much as about an attacker, so they
    are reported even when nothing else looks wrong; the severity rises when the login that
    revealed the gap came from the kind of network covert networks use. The policy comes from
    the config (``[remote_access]``): ``mfa_required``, ``machine_certificate_required``,
    ``services``, ``allowed_countries``, ``allowed_sources``.

ATT&CK
    T1078 (Valid Accounts), T1133 (External Remote Services), T1556 (Modify Authentication
    Process: weak or bypassed factors).

Inputs
    ``logins`` (successes), ``ip_info``.

How it decides
    One mechanism, five kinds of gap (``kind`` in the evidence), each one alert per account:

    * ``no_mfa``: successful remote access (a policy service, from outside the organisation's
      networks) logged without a second factor (``mfa = 'no'``) while ``mfa_required``;
    * ``no_machine_certificate``: a VPN session without a device certificate while
      ``machine_certificate_required``;
    * ``outside_allow_list``: a successful remote login from a country outside
      ``allowed_countries`` or an address outside ``allowed_sources`` (each only when set;
      an unknown location counts as outside);
    * ``dormant_account``: a remote login after at least ``dormant_days`` without any
      successful login of the account;
    * ``residential_only_account``: an account with at least ``changing_min_logins`` logins,
      all from residential or mobile networks, from at least ``changing_min_sources``
      different /24s making up at least ``changing_share`` of its logins (ever-changing
      home addresses: how a relay network's customer looks).

    Severity: ``high`` when the login came from a hosting, VPN or Tor network (``medium`` for
    ``residential_only_account``), else ``medium`` (``low`` for ``residential_only_account``).

Posture, not anomaly
    Every finding carries ``"finding": "posture"`` in its evidence: it is true of the
    organisation's controls whether or not an attacker used the gap (an account in a legacy
    password-only VPN group is a gap every day), so it is reported apart from the anomaly and
    spray detectors and kept out of their precision (``tests/detect/test_login_quality.py``).
    The attacker's use of such a gap is what ``new_network_for_user`` and the escalation of
    ``password_spray`` report.

Known false positives
    Products that log ``mfa = 'no'`` for the first step of a two-step login (check that the
    parser pairs them); break-glass accounts exempt by design; staff returning from long
    leave (dormant); field workers on mobile networks (residential only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.logins import enriched_logins, in_networks, successes
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.login_common import (
    RENTED_CLASSES,
    capped,
    describe_source,
    evidence_refs,
    refs,
)

GROUP = ["kind", "user", "detail"]


@dataclass
class RemoteAccessControlGaps(Detector):
    """Remote access that shows a required control missing, or an account used unusually."""

    id: ClassVar[str] = "remote_access_control_gaps"
    summary: ClassVar[str] = "Remote access without the controls the policy requires"
    techniques: ClassVar[tuple[str, ...]] = ("T1078", "T1133", "T1556")
    requires: ClassVar[tuple[str, ...]] = ("logins", "ip_info")

    #: Days without a successful login after which an account is dormant.
    dormant_days: float = 45.0
    #: An account needs this many logins before "only changing residential" is judged.
    changing_min_logins: int = 5
    #: ... from at least this many different /24s ...
    changing_min_sources: int = 5
    #: ... that make up at least this share of its logins.
    changing_share: float = 0.5

    def candidates(self, ctx: DetectContext) -> ir.Table:
        policy = ctx.config.remote_access
        ok = successes(enriched_logins(ctx.engine, ctx.config))
        remote = ok.filter(ok.service.isin(list(policy.services)) & ~ok.corporate)
        parts = [self._dormant(ok), self._residential_only(ok)]
        if policy.mfa_required:
            parts.append(self._gap(remote.filter(remote.mfa == "no"), "no_mfa", remote.service))
        if policy.machine_certificate_required:
            vpn = remote.filter((remote.service == "vpn") & (remote.machine_cert == "no"))
            parts.append(self._gap(vpn, "no_machine_certificate", vpn.target.fill_null("-")))
        outside = self._outside(remote, policy.allowed_countries, policy.allowed_sources)
        if outside is not None:
            parts.append(outside)
        out = parts[0]
        for part in parts[1:]:
            out = out.union(part)
        return out

    def _gap(self, rows: ir.Table, kind: str, detail: ir.StringValue) -> ir.Table:
        """One row per (kind, user, detail) with the shared columns every kind returns."""
        rows = rows.mutate(kind=ibis.literal(kind), detail=detail.cast("string"))
        out = rows.group_by(GROUP).aggregate(
            entity=rows.user.max(),
            first_seen=rows.ts.min(),
            last_seen=rows.ts.max(),
            event_count=rows.count(),
            src_ip=rows.src_ip.max(),
            asn=rows.asn.max(),
            country=rows.country.max(),
            net_class=rows.net_class.max(),
            rented=rows.net_class.isin(list(RENTED_CLASSES)).any(),
            sources=rows.src_net.nunique(),
            gap_days=rows.gap_days.max() if "gap_days" in rows.columns else ibis.literal(0.0),
        )
        return out.join(evidence_refs(rows, GROUP), GROUP)

    def _outside(
        self, remote: ir.Table, countries: list[str], sources: list[str]
    ) -> ir.Table | None:
        if not countries and not sources:
            return None
        outside: ir.BooleanValue = ibis.literal(False)
        if countries:
            outside = outside | ~remote.country.fill_null("??").isin(countries)
        if sources:
            outside = outside | ~in_networks(remote.src_key, sources)
        rows = remote.filter(outside)
        return self._gap(rows, "outside_allow_list", rows.country.fill_null("unknown"))

    def _dormant(self, ok: ir.Table) -> ir.Table:
        order = ibis.window(group_by=ok.user, order_by=[ok.ts, ok.source_file, ok.source_offset])
        gaps = ok.mutate(
            gap_days=(ok.ts.epoch_seconds() - ok.ts.lag().over(order).epoch_seconds()) / 86400.0
        )
        gaps = gaps.filter((gaps.gap_days >= self.dormant_days) & ~gaps.corporate)
        return self._gap(gaps, "dormant_account", gaps.ts.epoch_seconds().cast("string"))

    def _residential_only(self, ok: ir.Table) -> ir.Table:
        per = ok.group_by("user").aggregate(
            logins=ok.count(),
            homes=ok.net_class.isin(["residential", "mobile"]).cast("int64").sum(),
            nets=ok.src_net.nunique(),
        )
        per = per.filter(
            (per.logins >= self.changing_min_logins)
            & (per.homes == per.logins)
            & (per.nets >= self.changing_min_sources)
            & (per.nets >= per.logins * self.changing_share)
        )
        rows = ok.semi_join(per, "user")
        return self._gap(rows, "residential_only_account", ibis.literal("all"))

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        kind, user, n = row["kind"], row["user"], row["event_count"]
        source = describe_source(row["asn"], row["net_class"], row["country"])
        rented = bool(row["rented"])
        when = f"{row['first_seen']:%Y-%m-%d %H:%M} UTC"
        title, story = {
            "no_mfa": (
                f"{user} used {row['detail']} without a second factor",
                f"{user} logged in to {row['detail']} {n} time(s) without a second factor "
                f"(first at {when}, e.g. from {row['src_ip']} {source}) although the policy "
                "requires MFA for remote access.",
            ),
            "no_machine_certificate": (
                f"{user} connected to {row['detail']} without a device certificate",
                f"{user} opened {n} VPN session(s) on {row['detail']} without presenting a "
                f"machine certificate (first at {when}, e.g. from {row['src_ip']} {source}) "
                "although the policy requires one.",
            ),
            "outside_allow_list": (
                f"{user} logged in from outside the allowed locations ({row['detail']})",
                f"{user} logged in {n} time(s) from {row['src_ip']} {source}, outside the "
                f"configured allow list (first at {when}).",
            ),
            "dormant_account": (
                f"Dormant account {user} used remotely after {row['gap_days']:.0f} days",
                f"{user} had not logged in for {row['gap_days']:.0f} days, then logged in "
                f"remotely at {when} from {row['src_ip']} {source}.",
            ),
            "residential_only_account": (
                f"{user} logs in only from changing residential addresses",
                f"All {n} logins of {user} came from residential or mobile networks, from "
                f"{row['sources']} different /24s; no office, no stable home address: "
                "how an account used through rotating home-router relays looks.",
            ),
        }[kind]
        if kind == "residential_only_account":
            severity, score = ("low", 30.0)
        else:
            severity, score = ("high", 70.0) if rented else ("medium", 50.0)
        return Finding(
            entity=user,
            severity=severity,
            score=capped(score + min(20, n)),
            title=title,
            explanation=story,
            evidence={
                "finding": "posture",
                "kind": kind,
                "detail": row["detail"],
                "logins": n,
                "example_src_ip": row["src_ip"],
                "asn": row["asn"],
                "country": row["country"],
                "net_class": row["net_class"],
                "distinct_24s": row["sources"],
                "login_records": refs(row),
            },
            src_ip=row["src_ip"],
            user=user,
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['kind']}|{row['user']}|{row['detail']}"
