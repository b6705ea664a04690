"""Every parameter of a simulation, in one place, written to ``scenario.json``.

The defaults come from public reporting on covert (ORB) networks; ``docs/simulator.md`` cites
the source of each one. A :class:`Scenario` plus its seed determines the output byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Organisation:
    """The simulated organisation and the rhythm of its ordinary work."""

    users: int = 120
    days: int = 14
    start: str = "2026-05-04"  # a Monday; the window holds a Patch Tuesday and a German holiday
    remote_share: float = 0.45  # users who work from home on a given weekday
    admin_share: float = 0.06  # users who log in to the SSH bastion
    legacy_no_mfa_share: float = 0.04  # accounts in the legacy password-only VPN group policy
    byod_share: float = 0.15  # devices without a machine certificate
    commercial_vpn_share: float = 0.02  # users who always connect through a commercial VPN
    cloud_egress_share: float = 0.03  # users behind a security cloud (Zscaler-like) egress
    travel_share: float = 0.06  # users who fly somewhere during the window
    typo_rate: float = 0.04  # share of interactive logins preceded by a mistyped password
    weekend_activity: float = 0.08  # weekend logins relative to a weekday
    flows_per_user_day: float = 60.0  # ordinary flows per user and working day
    logins_per_user_day: float = 3.0  # SSO sign-ins per user and working day
    scans_per_day: int = 1_500  # background Internet scanning probes against the edge per day
    patch_multiplier: float = 4.0  # update traffic on Patch Tuesday relative to a normal day
    public_connections_per_day: int = 400  # Internet clients of the DMZ web, mail and DNS


@dataclass
class Campaign:
    """The covert-network campaign against the organisation (see docs/simulator.md)."""

    enabled: bool = True
    victim_countries: list[str] = field(default_factory=lambda: ["US", "DE"])
    pool_size: int = 600  # relay nodes born in the 60 days before and during the window
    soho_share: float = 0.6  # compromised SOHO/IoT devices (Raptor Train-like)
    quad7_share: float = 0.25  # Quad7-like compromised routers
    vps_share: float = 0.15  # leased VPS relay tier
    soho_lifetime_days: float = 17.0  # Lumen on Raptor Train: compromised devices ~17 days
    vps_lifetime_days: float = 77.0  # Lumen on Raptor Train: VPS tiers ~77 days
    quad7_lifetime_days: float = 90.0  # Sekoia/Team Cymru on Quad7: ~90 days
    exit_in_victim_country: float = 0.8  # exit nodes placed in or near the victim's country
    intrusion_set_max: int = 60  # LapDogs: batches of <= 60 devices, one port per set
    intrusion_set_ports: list[int] = field(default_factory=lambda: [7777, 11288, 63256, 33445])
    recon_start_day: float = 0.0
    recon_days: float = 3.0
    recon_probes_per_node: int = 4
    spray_start_day: float = 2.0
    spray_days: float = 8.0
    spray_account_share: float = 0.8  # Microsoft on CovertNetwork-1658: ~80% one attempt/day
    spray_attempts_per_source: int = 3  # each relay makes very few attempts
    spray_client: str = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/109.0.0.0 Safari/537.36"
    )
    access_day: float = 7.3  # the successful single-factor VPN login
    discovery_hosts: int = 40  # internal hosts probed in lateral discovery
    beacon_interval_s: float = 300.0
    beacon_jitter: float = 0.15  # relative jitter of the beacon interval
    beacon_relays: int = 4  # C2 relay nodes the implant rotates between
    exfil_bytes: int = 2_500_000_000
    router_relay_day: float = 9.0  # the branch router is enrolled as a relay node
    router_relay_sources: int = 120  # external addresses that use it
    router_relay_port: int = 63256
    feed_coverage: float = 0.6  # share of last month's nodes a vendor feed lists
    feed_lag_days: float = 2.0  # the feed was published this long before the window


@dataclass
class Output:
    """Which files to write."""

    netflow: bool = True
    zeek: bool = True
    firewall: bool = True
    vpn: bool = True
    sshd: bool = True
    entra: bool = True
    feed: bool = True


@dataclass
class Scenario:
    """One simulation: seed, organisation, campaign and outputs."""

    seed: int = 7
    org: Organisation = field(default_factory=Organisation)
    campaign: Campaign = field(default_factory=Campaign)
    output: Output = field(default_factory=Output)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.org.start).replace(tzinfo=dt.UTC)

    @property
    def t0(self) -> float:
        """Start of the window, epoch seconds."""
        return self.start.timestamp()

    @property
    def t1(self) -> float:
        """End of the window, epoch seconds."""
        return self.t0 + self.org.days * 86_400.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return cls(
            seed=int(data.get("seed", 7)),
            org=Organisation(**data.get("org", {})),
            campaign=Campaign(**data.get("campaign", {})),
            output=Output(**data.get("output", {})),
        )


def benchmark(seed: int = 7) -> Scenario:
    """The ``--benchmark`` size: about 10 million flow records and 1 million login events."""
    org = Organisation(users=5_000, days=14, flows_per_user_day=352.0, logins_per_user_day=20.0)
    return Scenario(seed=seed, org=org)
