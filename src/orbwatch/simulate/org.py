"""The simulated organisation: sites, edge devices, people, their homes, devices and calendars.

People are what make login data hard: they work from home on residential ISPs, from phones on
mobile carriers, some through a commercial VPN or a security-cloud egress, and a few fly to
another continent (taking the hours a flight takes). All of that is drawn here, once, as
arrays indexed by user.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from orbwatch.simulate import addresses as ad
from orbwatch.simulate.scenario import Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class City:
    name: str
    country: str
    lat: float
    lon: float
    tz: str


CITIES: tuple[City, ...] = (
    City("Chicago", "US", 41.88, -87.63, "America/Chicago"),
    City("Austin", "US", 30.27, -97.74, "America/Chicago"),
    City("Denver", "US", 39.74, -104.99, "America/Denver"),
    City("New York", "US", 40.71, -74.01, "America/New_York"),
    City("Seattle", "US", 47.61, -122.33, "America/Los_Angeles"),
    City("Munich", "DE", 48.14, 11.58, "Europe/Berlin"),
    City("Berlin", "DE", 52.52, 13.40, "Europe/Berlin"),
    City("Hamburg", "DE", 53.55, 9.99, "Europe/Berlin"),
    City("London", "GB", 51.51, -0.13, "Europe/London"),
    City("Tokyo", "JP", 35.68, 139.69, "Asia/Tokyo"),
    City("Seoul", "KR", 37.57, 126.98, "Asia/Seoul"),
    City("Taipei", "TW", 25.03, 121.57, "Asia/Taipei"),
)
CITY = {c.name: i for i, c in enumerate(CITIES)}


@dataclass(frozen=True)
class Site:
    """An office: where its people live, its public block, internal block and edge sensor."""

    name: str
    city: str
    public: str  # first public address (edge device); the site's block follows it
    internal: str  # /16 (or /24) of the site's LAN
    sensor: str  # flow sensor that sees the site's Internet traffic
    vpn: str  # service that terminates its remote workers' VPN
    weight: float  # share of the staff
    homes: tuple[str, ...]  # cities its remote workers live in


SITES: tuple[Site, ...] = (
    Site(
        "hq-chicago",
        "Chicago",
        "4.78.20.1",
        "10.1.0.0/16",
        "ipfix-hq",
        "vpn-asa",
        0.5,
        ("Chicago", "New York", "Seattle"),
    ),
    Site(
        "branch-austin",
        "Austin",
        "4.78.21.1",
        "10.2.0.0/16",
        "fortigate-branch1",
        "vpn-asa",
        0.2,
        ("Austin",),
    ),
    Site(
        "branch-denver",
        "Denver",
        "4.78.22.10",
        "10.3.0.0/24",
        "ipfix-branch2",
        "vpn-asa",
        0.05,
        ("Denver",),
    ),
    Site(
        "site-munich",
        "Munich",
        "217.230.40.1",
        "10.4.0.0/16",
        "panos-munich",
        "vpn-globalprotect",
        0.25,
        ("Munich", "Berlin", "Hamburg"),
    ),
)
HQ = SITES[0]
VPN_POOL_HQ = "10.1.128.0/17"
VPN_POOL_MUNICH = "10.4.128.0/17"
BASTION_PUBLIC = "4.78.20.2"
BASTION_INTERNAL = "10.1.30.22"
COMPROMISED_SERVER = "10.1.20.41"
NVR = "10.1.50.5"
DMZ_WEB = "4.78.20.80"  # public servers behind the HQ ASA: web, mail relay, DNS
DMZ_MAIL = "4.78.20.25"
DMZ_DNS = "4.78.20.53"

HOLIDAYS: dict[str, tuple[str, ...]] = {
    "US": (
        "2026-01-01",
        "2026-01-19",
        "2026-02-16",
        "2026-05-25",
        "2026-07-03",
        "2026-09-07",
        "2026-11-26",
        "2026-11-27",
        "2026-12-25",
        "2027-01-01",
        "2027-01-18",
        "2027-05-31",
    ),
    "DE": (
        "2026-01-01",
        "2026-04-03",
        "2026-04-06",
        "2026-05-01",
        "2026-05-14",
        "2026-05-25",
        "2026-06-04",
        "2026-10-03",
        "2026-12-25",
        "2026-12-26",
        "2027-01-01",
        "2027-03-26",
    ),
}

FIRST = np.array(
    [
        "anna",
        "ben",
        "carla",
        "david",
        "eva",
        "felix",
        "grace",
        "hugo",
        "ines",
        "jonas",
        "kim",
        "lena",
        "max",
        "nora",
        "omar",
        "paula",
        "quinn",
        "rosa",
        "sam",
        "tara",
        "uwe",
        "vera",
        "will",
        "yara",
        "zoe",
    ]
)
LAST = np.array(
    [
        "adams",
        "becker",
        "chen",
        "diaz",
        "evans",
        "fischer",
        "garcia",
        "hoffmann",
        "ito",
        "jones",
        "klein",
        "lee",
        "meyer",
        "nguyen",
        "olsen",
        "patel",
        "richter",
        "schmidt",
        "taylor",
        "weber",
        "wolf",
        "young",
        "zimmer",
        "kim",
        "novak",
    ]
)


@dataclass
class People:
    """Every user, as arrays indexed by user number."""

    names: npt.NDArray[np.str_]
    site: I64
    home_city: I64
    home_ip: npt.NDArray[np.uint32]
    workstation: npt.NDArray[np.uint32]
    admin: B
    mfa: B
    cert: B
    egress: I64  # 0 own ISP, 1 commercial VPN, 2 security-cloud egress
    egress_ip: npt.NDArray[np.uint32]
    travel: B
    trip_day: I64  # first day away (-1: no trip)
    trip_days: I64
    trip_city: I64

    def __len__(self) -> int:
        return len(self.names)


def city_arrays() -> tuple[F64, F64]:
    return (np.array([c.lat for c in CITIES]), np.array([c.lon for c in CITIES]))


def utc_offsets(scenario: Scenario) -> F64:
    """Hours east of UTC per (city, day of the window), honouring daylight-saving time."""
    days = scenario.org.days
    out = np.zeros((len(CITIES), days + 1))
    for i, city in enumerate(CITIES):
        zone = ZoneInfo(city.tz)
        for d in range(days + 1):
            noon = scenario.start + dt.timedelta(days=d, hours=12)
            offset = noon.astimezone(zone).utcoffset() or dt.timedelta(0)
            out[i, d] = offset.total_seconds() / 3600
    return out


def workdays(scenario: Scenario, country: str) -> B:
    """Per day of the window: a working day in ``country`` (weekday and not a public holiday)."""
    days = [scenario.start.date() + dt.timedelta(days=d) for d in range(scenario.org.days)]
    holidays = set(HOLIDAYS.get(country, ()))
    return np.array([d.weekday() < 5 and d.isoformat() not in holidays for d in days])


def patch_days(scenario: Scenario) -> B:
    """Per day: Microsoft's Patch Tuesday (second Tuesday of the month)."""
    days = [scenario.start.date() + dt.timedelta(days=d) for d in range(scenario.org.days)]
    return np.array([d.weekday() == 1 and 8 <= d.day <= 14 for d in days])


def _home_ips(rng: np.random.Generator, countries: npt.NDArray[np.str_]) -> npt.NDArray[np.uint32]:
    out = np.zeros(len(countries), dtype=np.uint32)
    for country in np.unique(countries):
        mask = countries == country
        out[mask] = ad.draw_unique(rng, ad.prefixes("residential", [str(country)]), int(mask.sum()))
    return out


def people(scenario: Scenario, rng: np.random.Generator) -> People:
    """Draw the staff: site, home, ISP, device, MFA and certificate state, egress and trips."""
    org = scenario.org
    n = org.users
    weights = np.array([s.weight for s in SITES])
    site = rng.choice(len(SITES), n, p=weights / weights.sum())
    home_city = np.array(
        [CITY[SITES[s].homes[0]] for s in site]
    )  # replaced below for sites with several home cities
    for s, spec in enumerate(SITES):
        mask = site == s
        home_city[mask] = rng.choice([CITY[c] for c in spec.homes], int(mask.sum()))
    country = np.array([c.country for c in CITIES])[home_city]
    first = FIRST[rng.integers(0, len(FIRST), n)]
    last = LAST[rng.integers(0, len(LAST), n)]
    names = np.char.add(np.char.add(np.char.add(first, "."), last), np.arange(n).astype(str))
    ws_host = np.zeros(n, dtype=np.uint32)
    for s, spec in enumerate(SITES):
        mask = site == s
        base = ad.ip_int(spec.internal.split("/")[0])
        ws_host[mask] = (
            base
            + (10 << 8 if spec.internal.endswith("/16") else 0)
            + 20
            + np.arange(int(mask.sum()))
        )
    egress = rng.choice(
        3,
        n,
        p=[
            1 - org.commercial_vpn_share - org.cloud_egress_share,
            org.commercial_vpn_share,
            org.cloud_egress_share,
        ],
    )
    egress_ip = np.zeros(n, dtype=np.uint32)
    egress_ip[egress == 1], _ = ad.draw(rng, ad.prefixes("vpn"), int((egress == 1).sum()))
    egress_ip[egress == 2], _ = ad.draw(rng, ad.prefixes("cloud-egress"), int((egress == 2).sum()))
    travel = rng.random(n) < org.travel_share
    far = np.array([CITY[c] for c in ("London", "Tokyo", "Seoul", "Taipei", "New York", "Munich")])
    trip_city = rng.choice(far, n)
    trip_city = np.where(trip_city == home_city, CITY["London"], trip_city)
    last_start = max(org.days - 5, 2)
    trip_day = np.where(travel, rng.integers(1, last_start, n), -1)
    return People(
        names=names,
        site=site.astype(np.int64),
        home_city=home_city.astype(np.int64),
        home_ip=_home_ips(rng, country),
        workstation=ws_host,
        admin=rng.random(n) < org.admin_share,
        mfa=rng.random(n) >= org.legacy_no_mfa_share,
        cert=rng.random(n) >= org.byod_share,
        egress=egress.astype(np.int64),
        egress_ip=egress_ip,
        travel=travel,
        trip_day=trip_day.astype(np.int64),
        trip_days=rng.integers(3, 6, n).astype(np.int64),
        trip_city=trip_city.astype(np.int64),
    )


def great_circle_km(lat1: F64, lon1: F64, lat2: F64, lon2: F64) -> F64:
    """Haversine distance in km (vectorised)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    h = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * 6371.0 * np.arcsin(np.sqrt(np.clip(h, 0, 1))), dtype=np.float64)


def work_times(
    rng: np.random.Generator, t0: float, day: I64, offset_h: F64, n: int, *, centre: float = 13.0
) -> F64:
    """Epoch times within local working hours (a day-shaped bump around ``centre`` local)."""
    hour = np.clip(rng.normal(centre, 2.6, n), 6.5, 20.5)
    return t0 + day * 86_400.0 + (hour - offset_h) * 3_600.0
