"""Suppression rules: known-benign findings that stay counted and listable, never deleted.

A rule names one or more scopes; an alert is suppressed by the first active rule whose every
given scope matches it. Rules live in the config (``[[suppress]]``) or in separate TOML files
(``orbwatch detect --suppressions FILE``) that a team keeps in git, each with a comment saying
why and an optional expiry, because a forgotten suppression is where an attacker hides.

Suppression is applied at detect time: the alert is still stored, with ``suppressed_by`` set to
the rule's name, so ``orbwatch alerts --suppressed`` lists it and every summary counts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orbwatch.errors import ConfigError


class SuppressionRule(BaseModel):
    """One rule. Every scope given must match; at least one scope is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200, description="Shown on suppressed alerts.")
    comment: str = Field(min_length=1, max_length=1000, description="Why this is benign.")
    expires: dt.date | None = Field(default=None, description="Last day the rule applies.")
    detector: str | None = Field(default=None, description="Only alerts of this detector.")
    cidr: str | None = Field(default=None, description="Alert source or destination inside.")
    asn: int | None = Field(default=None, ge=0, description="Source or destination AS number.")
    user: str | None = Field(default=None, description="Alert account (case-insensitive).")
    asset: str | None = Field(default=None, description="Alert entity is this asset name.")
    port: int | None = Field(default=None, ge=0, le=65535, description="Evidence port.")
    direction: Literal["inbound", "outbound", "internal", "external"] | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP network ({exc})") from None

    def model_post_init(self, _context: Any) -> None:
        scopes = (self.detector, self.cidr, self.asn, self.user, self.asset, self.port)
        if all(s is None for s in scopes) and self.direction is None:
            raise ValueError("a suppression rule needs at least one scope")

    def active(self, today: dt.date) -> bool:
        """Expired rules stop suppressing (and `orbwatch alerts` says which expired)."""
        return self.expires is None or today <= self.expires

    def matches(self, alert: dict[str, Any], asns: dict[str, int]) -> bool:
        """Does this rule cover ``alert``? ``asns`` maps addresses to AS numbers, when known."""
        evidence = _evidence(alert)
        checks = (
            self.detector is None or alert.get("detector") == self.detector,
            self.cidr is None or _in_cidr(self.cidr, alert),
            self.asn is None
            or self.asn in {asns.get(alert.get(k) or "") for k in ("src_ip", "dst_ip")},
            self.user is None or (alert.get("user") or "").lower() == self.user.lower(),
            self.asset is None or alert.get("entity") == self.asset,
            self.port is None
            or self.port in {evidence.get(k) for k in ("port", "dst_port", "listening_port")},
            self.direction is None or evidence.get("direction") == self.direction,
        )
        return all(checks)


def _evidence(alert: dict[str, Any]) -> dict[str, Any]:
    raw = alert.get("evidence")
    if isinstance(raw, dict):
        return raw
    try:
        loaded = json.loads(raw or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _in_cidr(cidr: str, alert: dict[str, Any]) -> bool:
    network = ipaddress.ip_network(cidr)
    for key in ("src_ip", "dst_ip", "entity"):
        try:
            if ipaddress.ip_address(alert.get(key) or "") in network:
                return True
        except ValueError:
            continue
    return False


def load_rules(path: Path) -> list[SuppressionRule]:
    """Read ``[[suppress]]`` tables from a rules file; errors name the file and the rule."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: suppression rules file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    rules = []
    for i, entry in enumerate(data.get("suppress", [])):
        try:
            rules.append(SuppressionRule.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(rule)"
            raise ConfigError(f"{path}: suppress[{i}].{where}: {first['msg']}") from None
    return rules


def suppressed_by(
    alerts: list[dict[str, Any]],
    rules: list[SuppressionRule],
    asns: dict[str, int],
    today: dt.date,
) -> list[str | None]:
    """For each alert, the name of the first active rule that covers it, else None.

    Alerts are few (already aggregated by the engine), so this runs in Python.
    """
    active = [r for r in rules if r.active(today)]
    return [next((r.name for r in active if r.matches(a, asns)), None) for a in alerts]
