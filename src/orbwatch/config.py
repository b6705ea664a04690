"""The organisation's configuration: ``orbwatch.toml``, validated with pydantic.

The config tells orbwatch what it cannot learn from traffic: which networks are ours, which
devices sit at the edge and what they do, where the organisation normally operates, which
sources are allowed, and which remote-access controls are mandatory. ``orbwatch init`` writes
:data:`EXAMPLE_CONFIG`; a test checks that the example parses into :class:`Config`.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orbwatch import netaddr
from orbwatch.alerts.suppress import SuppressionRule
from orbwatch.errors import ConfigError

DEFAULT_CONFIG_FILE = "orbwatch.toml"


class AssetRole(StrEnum):
    """What an edge asset does; detectors use it to pick baselines and expectations."""

    VPN_GATEWAY = "vpn-gateway"
    ROUTER = "router"
    FIREWALL = "firewall"
    REMOTE_ACCESS = "remote-access"
    SOHO_SUBNET = "soho-subnet"
    IOT_SUBNET = "iot-subnet"


def _check_cidr(value: str) -> str:
    try:
        return netaddr.network(value).text
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an IP address or CIDR network ({exc})") from None


def _country_codes(values: list[str]) -> list[str]:
    for v in values:
        if len(v) != 2 or not v.isalpha():
            raise ValueError(f"{v!r} is not an ISO 3166 two-letter country code")
    return [v.upper() for v in values]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EdgeAsset(_Strict):
    """A device or subnet at the organisation's edge."""

    name: str = Field(min_length=1, max_length=200)
    addresses: list[str] = Field(min_length=1, description="IPs or CIDRs of the asset.")
    role: AssetRole

    @field_validator("addresses")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        return [_check_cidr(v) for v in values]


class AllowEntry(_Strict):
    """A source or destination that is allowed, optionally only on one port and direction."""

    cidr: str
    port: int | None = Field(default=None, ge=0, le=65535)
    direction: Literal["inbound", "outbound", "any"] = "any"
    comment: str = Field(default="", max_length=500)
    expires: dt.date | None = None

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return _check_cidr(value)

    def active(self, today: dt.date) -> bool:
        """False once the entry has expired: stale allow lists are how attackers hide."""
        return self.expires is None or today <= self.expires


LoginService = Literal["vpn", "ssh", "sso", "windows"]
#: Login services that are remote access unless the config says otherwise.
REMOTE_SERVICES: tuple[LoginService, ...] = ("vpn", "ssh", "sso")


class RemoteAccessPolicy(_Strict):
    """Controls the organisation requires on remote access (audited by the control-gap checks)."""

    mfa_required: bool = True
    machine_certificate_required: bool = False
    #: Services the remote-access controls apply to (login ``service`` values).
    services: list[LoginService] = Field(default_factory=lambda: list(REMOTE_SERVICES))
    #: When not empty, successful remote logins must come from these countries (ISO codes).
    allowed_countries: list[str] = Field(default_factory=list)
    #: When not empty, successful remote logins must come from these networks.
    allowed_sources: list[str] = Field(default_factory=list)

    @field_validator("allowed_sources")
    @classmethod
    def _sources(cls, values: list[str]) -> list[str]:
        return [_check_cidr(v) for v in values]

    @field_validator("allowed_countries")
    @classmethod
    def _allowed_countries(cls, values: list[str]) -> list[str]:
        return _country_codes(values)


class IntelClass(StrEnum):
    """What kind of infrastructure an indicator names; picks its decay lifetime."""

    COMPROMISED_SOHO = "compromised-soho"
    VPS_RELAY = "vps-relay"
    QUAD7 = "quad7"
    C2 = "c2"
    SCANNER = "scanner"
    TOR = "tor"
    PROXY = "proxy"
    UNKNOWN = "unknown"


#: Days until an indicator of each class has decayed to zero (``tau`` of the MISP polynomial
#: model). ORB node lifetimes from public reporting: Raptor Train compromised devices ~17 days
#: and VPS tiers ~77 days (Lumen Black Lotus Labs, 2024); CovertNetwork-1658 / Quad7 nodes ~90
#: days on average (Microsoft, Sekoia, Team Cymru). Other classes keep MISP's NIDS default of
#: 120 days, because no reporting gives a better number.
DEFAULT_TAU_DAYS: dict[str, float] = {
    "compromised-soho": 17.0,
    "vps-relay": 77.0,
    "quad7": 90.0,
    "c2": 120.0,
    "scanner": 120.0,
    "tor": 120.0,
    "proxy": 120.0,
    "unknown": 120.0,
}


class IntelSettings(_Strict):
    """``[intel]``: how indicators decay (see :mod:`orbwatch.enrich.decay`)."""

    tau_days: dict[IntelClass, float] = Field(default_factory=dict)
    delta: float = Field(default=2.0, gt=0, description="MISP default decay speed.")
    threshold: float = Field(default=30.0, ge=0, le=100, description="MISP NIDS threshold.")
    default_confidence: float = Field(default=80.0, ge=0, le=100, description="MISP NIDS base.")

    @field_validator("tau_days")
    @classmethod
    def _tau(cls, values: dict[IntelClass, float]) -> dict[IntelClass, float]:
        for name, days in values.items():
            if not days > 0:
                raise ValueError(f"tau_days.{name}: must be more than 0 days")
        return values

    def tau(self) -> dict[str, float]:
        """Lifetime in days of every class: the configured ones over the defaults."""
        return {**DEFAULT_TAU_DAYS, **{str(k): v for k, v in self.tau_days.items()}}


class EnrichSettings(_Strict):
    """``[enrich]``: MaxMind databases used instead of the bundled one (docs/enrichment.md)."""

    city_mmdb: Path | None = Field(default=None, description="GeoLite2/GeoIP2 City .mmdb.")
    asn_mmdb: Path | None = Field(default=None, description="GeoLite2/GeoIP2 ASN .mmdb.")

    @field_validator("city_mmdb", "asn_mmdb")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such MaxMind database file")
        return value


class Config(_Strict):
    """Validated contents of ``orbwatch.toml``. Every key has a default that works."""

    organisation: str = Field(default="Example Org", max_length=200)
    internal_networks: list[str] = Field(default_factory=lambda: list(netaddr.DEFAULT_INTERNAL))
    home_countries: list[str] = Field(default_factory=list)
    corporate_egress: list[str] = Field(
        default_factory=list,
        description="Public addresses the organisation's own traffic leaves from (offices, "
        "VPN or zero-trust egress); logins from them are never unusual.",
    )
    edge_assets: list[EdgeAsset] = Field(default_factory=list)
    allow: list[AllowEntry] = Field(default_factory=list)
    remote_access: RemoteAccessPolicy = Field(default_factory=RemoteAccessPolicy)
    syslog_timezone: str = Field(default="UTC", description="Zone of year-less syslog stamps.")
    intel: IntelSettings = Field(default_factory=IntelSettings)
    enrich: EnrichSettings = Field(default_factory=EnrichSettings)
    suppress: list[SuppressionRule] = Field(
        default_factory=list, description="Known-benign findings (see orbwatch.alerts.suppress)."
    )

    @field_validator("internal_networks")
    @classmethod
    def _internal(cls, values: list[str]) -> list[str]:
        return [_check_cidr(v) for v in values]

    @field_validator("corporate_egress")
    @classmethod
    def _egress(cls, values: list[str]) -> list[str]:
        return [_check_cidr(v) for v in values]

    @field_validator("home_countries")
    @classmethod
    def _countries(cls, values: list[str]) -> list[str]:
        return _country_codes(values)

    def internal_ranges(self) -> list[netaddr.Network]:
        """The organisation's own networks as parsed ranges."""
        return [netaddr.network(c) for c in self.internal_networks]

    def never_malicious(self) -> list[str]:
        """Networks never reported as malicious infrastructure: ours plus special-purpose ones."""
        return list(dict.fromkeys([*self.internal_networks, *netaddr.SPECIAL_PURPOSE]))


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load(path: Path | None) -> Config:
    """Load and validate a config file; ``None`` or a missing default file gives the defaults.

    Raises :class:`ConfigError` naming the file, the key and what is wrong.
    """
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        if not default.exists():
            return Config()
        path = default
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (create one with `orbwatch init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{path}: {_location(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from None


EXAMPLE_CONFIG = """\
# orbwatch configuration. Every key is optional; the values shown are examples.
# Validate it with `orbwatch status` (a bad key is reported with the file and key name).

# Shown in reports.
organisation = "Example Org"

# The organisation's own networks. Addresses in them are "internal": direction of traffic is
# judged against them, and they are never reported as malicious infrastructure.
# Default when omitted: RFC 1918, CGNAT, loopback, link-local and IPv6 ULA ranges.
internal_networks = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]

# ISO 3166 codes of the countries the organisation operates in (for login-location profiling).
home_countries = ["US"]

# Public addresses the organisation's traffic leaves from (offices, VPN or zero-trust egress):
# logins from them are never "unusual" for the login detectors.
corporate_egress = ["192.0.2.0/28"]

# Time zone of classic syslog stamps that carry no zone (IANA name).
syslog_timezone = "UTC"

# Edge assets: what faces the Internet. Roles: vpn-gateway, router, firewall, remote-access,
# soho-subnet, iot-subnet.
[[edge_assets]]
name = "hq-vpn"
addresses = ["10.0.0.1"]
role = "vpn-gateway"

[[edge_assets]]
name = "camera-vlan"
addresses = ["10.20.0.0/24"]
role = "iot-subnet"

# Allow list: sources or destinations that are expected. A port and a direction (inbound,
# outbound, any) narrow the entry; an expiry date retires it automatically.
[[allow]]
cidr = "198.51.100.0/24"
port = 443
direction = "inbound"
comment = "Managed SOC provider health checks"
expires = 2027-06-30

# What the organisation requires of remote access; the control-gap audit reports violations.
[remote_access]
mfa_required = true
machine_certificate_required = true
# Services the controls apply to (vpn, ssh, sso, windows).
services = ["vpn", "ssh", "sso"]
# When set, successful remote logins from elsewhere are reported (empty: not enforced).
allowed_countries = ["US"]
allowed_sources = []

# Threat-intel decay (MISP polynomial model): score = base * (1 - (age / tau) ^ (1 / delta)),
# age counted from the indicator's last sighting; under `threshold` it is expired.
[intel]
delta = 2.0                 # MISP default
threshold = 30.0            # MISP NIDS model
default_confidence = 80.0   # base score of indicators whose feed gives no confidence
# Days until an indicator of a class decays to zero (defaults: compromised-soho 17,
# vps-relay 77, quad7 90, others 120).
tau_days = { compromised-soho = 17.0, vps-relay = 77.0, quad7 = 90.0 }
"""
