"""Logins that converge: many accounts on one outside source, or one account on many sources.

Rationale
    Two shapes give a relay network away even when every single login looks plausible.
    *Shared source*: several different accounts logging in successfully through one
    non-corporate address within a day; colleagues share offices and egress, but those are
    long-lived and used for weeks (they become familiar sources), while a relay that carries
    several stolen accounts is new. *Hopping account*: one account logging in from many
    unrelated residential networks within hours; people do not change home ISP four times an
    afternoon, rotating SOHO relays do (field notes: ORB exit nodes rotate within days, and
    Quad7 credentials were reused by a second actor the same day).

ATT&CK
    T1078 (Valid Accounts), T1090.003 (Proxy: Multi-hop Proxy).

Inputs
    ``logins`` (successes), ``ip_info``, ``login_profiles`` (familiar sources).

How it decides
    *Shared source*: per address and window of ``shared_window_hours``: at least
    ``min_users`` distinct accounts succeeded, the address is outside the organisation's own
    networks and not familiar (used by ``familiar_min_users`` accounts over
    ``familiar_min_days``). ``high`` when the address is in a hosting, VPN, Tor or residential
    network, else ``medium``.
    *Hopping account*: per account and window of ``hop_window_hours``: successes from at least
    ``min_sources`` distinct /24s of residential or mobile networks spread over at least
    ``min_asns`` ASNs. ``high`` from ``min_sources + 2`` sources, else ``medium``.

Known false positives
    A new office or a conference network before it becomes familiar; carrier-grade NAT of a
    mobile operator (several colleagues on one address); a traveller on hotel, airport and
    mobile networks on one day (hopping, usually two or three networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir

from orbwatch.baseline.logins import enriched_logins, successes, with_familiarity
from orbwatch.detect.base import DetectContext, Detector, Finding
from orbwatch.detect.login_common import (
    RISKY_CLASSES,
    capped,
    describe_source,
    evidence_refs,
    log_points,
    refs,
    words,
)

HOPPING_CLASSES = ("residential", "mobile")


#: What both convergence shapes group by: the shape, its entity and the fixed time window.
WINDOW_KEYS = ["kind", "entity", "window"]


@dataclass
class LoginConvergence(Detector):
    """Several accounts through one outside source, or one account through many home networks."""

    id: ClassVar[str] = "login_convergence"
    summary: ClassVar[str] = "Many accounts on one outside source, or one account on many"
    techniques: ClassVar[tuple[str, ...]] = ("T1078", "T1090.003")
    requires: ClassVar[tuple[str, ...]] = ("logins", "ip_info", "login_profiles")

    #: Distinct accounts on one source that make it a convergence point.
    min_users: int = 3
    #: Window for the shared-source shape, in hours.
    shared_window_hours: int = 24
    #: Distinct residential/mobile /24s for one account within ``hop_window_hours``.
    min_sources: int = 4
    #: ... spread over at least this many ASNs ("unrelated" sources).
    min_asns: int = 2
    #: Window for the hopping-account shape, in hours.
    hop_window_hours: int = 6
    #: Familiar sources (used by this many accounts over ``familiar_min_days``) are skipped.
    familiar_min_users: int = 3
    familiar_min_days: float = 7.0

    def candidates(self, ctx: DetectContext) -> ir.Table:
        ok = successes(enriched_logins(ctx.engine, ctx.config))
        ok = ok.filter(~ok.corporate & ok.src_key.notnull())
        ok = with_familiarity(ok, ctx.engine, self.familiar_min_users, self.familiar_min_days)
        ok = ok.filter(~ok.familiar)
        return self._shared(ok).union(self._hopping(ok))

    def _shared(self, ok: ir.Table) -> ir.Table:
        out, rows = self._per_window(
            ok, "shared_source", ok.src_ip, self.shared_window_hours, ok.src_key
        )
        return self._with_refs(out.filter(out.users >= self.min_users), rows)

    def _hopping(self, ok: ir.Table) -> ir.Table:
        ok = ok.filter(ok.net_class.isin(list(HOPPING_CLASSES)))
        out, rows = self._per_window(
            ok, "hopping_account", ok.user, self.hop_window_hours, ok.src_net
        )
        out = out.filter((out.sources >= self.min_sources) & (out.asns >= self.min_asns))
        return self._with_refs(out, rows)

    @staticmethod
    def _per_window(
        ok: ir.Table, kind: str, entity: ir.Value, hours: int, source: ir.Value
    ) -> tuple[ir.Table, ir.Table]:
        """Both shapes count the same facts per (entity, fixed window); only the keys differ."""
        rows = ok.mutate(
            kind=ibis.literal(kind),
            entity=entity,
            window=ok.ts.epoch_seconds() // (hours * 3600),
            source=source,
        )
        out = rows.group_by(WINDOW_KEYS).aggregate(
            users=rows.user.nunique(),
            sources=rows.source.nunique(),
            asns=rows.asn.nunique(),
            user_list=rows.user.collect(distinct=True),
            asn=rows.asn.max(),
            country=rows.country.max(),
            net_class=rows.net_class.max(),
            first_seen=rows.ts.min(),
            last_seen=rows.ts.max(),
            event_count=rows.count(),
        )
        return out, rows.drop("source")

    @staticmethod
    def _with_refs(out: ir.Table, rows: ir.Table) -> ir.Table:
        rows = rows.semi_join(out, WINDOW_KEYS)
        return out.join(evidence_refs(rows, WINDOW_KEYS), WINDOW_KEYS)

    def explain(self, row: dict[str, Any], ctx: DetectContext) -> Finding:
        users = sorted(row["user_list"] or [])
        span = f"{row['first_seen']:%Y-%m-%d %H:%M} and {row['last_seen']:%H:%M} UTC"
        if row["kind"] == "shared_source":
            source = describe_source(row["asn"], row["net_class"], row["country"])
            severity = "high" if row["net_class"] in RISKY_CLASSES else "medium"
            title = f"{len(users)} accounts logged in from {row['entity']} {source}"
            story = (
                f"{words(users[:8])} logged in successfully from {row['entity']} {source} "
                f"between {span}; the address is not the organisation's and colleagues have not "
                "used it before, so several accounts converging on it suggests a relay "
                "carrying stolen credentials."
            )
            score = 40 + log_points(len(users), 30) + (15 if severity == "high" else 0)
            return self._finding(row, severity, score, title, story, users, src_ip=row["entity"])
        many = row["sources"] >= self.min_sources + 2
        title = (
            f"{row['entity']} logged in from {row['sources']} residential networks "
            f"within {self.hop_window_hours} hours"
        )
        story = (
            f"{row['entity']} logged in successfully {row['event_count']} times between {span} "
            f"from {row['sources']} different residential or mobile /24 networks in "
            f"{row['asns']} autonomous systems; one person does not change home network that "
            "often, rotating relays on hijacked home routers do."
        )
        score = 35 + log_points(row["sources"], 30) + 5 * row["asns"]
        return self._finding(row, "high" if many else "medium", score, title, story, users)

    def _finding(
        self,
        row: dict[str, Any],
        severity: str,
        score: float,
        title: str,
        story: str,
        users: list[str],
        src_ip: str | None = None,
    ) -> Finding:
        return Finding(
            entity=row["entity"],
            severity=severity,
            score=capped(score),
            title=title,
            explanation=story,
            evidence={
                "kind": row["kind"],
                "accounts": users,
                "sources": row["sources"],
                "asns": row["asns"],
                "net_class": row["net_class"],
                "logins": row["event_count"],
                "login_records": refs(row),
            },
            src_ip=src_ip,
            user=users[0] if len(users) == 1 else None,
        )

    def key(self, row: dict[str, Any]) -> str:
        return f"{row['kind']}|{row['entity']}|{row['window']}"
