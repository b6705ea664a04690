"""Ordinary activity of the organisation: sign-ins, VPN sessions, SaaS/CDN, internal, scanning.

Who works on which day, from where, is drawn once for the whole window (one row per user and
day: small). The events themselves are drawn one day at a time, as whole arrays, with that
day's own random generator, so a simulation of any length streams through bounded memory and
every day's events are the same however the days are grouped into chunks. Working days
(weekends and each country's public holidays are quiet), office or home, travel, and a
working-hours rhythm in the user's own time zone shape them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from orbwatch.simulate import addresses as ad
from orbwatch.simulate import org as om
from orbwatch.simulate.events import SENSOR, SERVICE, Events
from orbwatch.simulate.scenario import Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DAY_S = 86_400.0
SSH_GUESSES_PER_DAY = 120  # Internet brute force against the bastion
NVR_CLOUD = "52.84.20.17"  # the camera vendor's cloud (CloudFront)
DMZ_HOSTS = [ad.ip_int(om.DMZ_WEB), ad.ip_int(om.DMZ_MAIL), ad.ip_int(om.DMZ_DNS)]
DMZ_OPEN = [443, 25, 53]  # what the DMZ's access group lets in, per host

CLIENTS = (
    "Cisco AnyConnect Secure Mobility Client 4.10.07061",
    "GlobalProtect 6.2.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Microsoft Authentication Broker/1.0 (iOS 17.4)",
    "OpenSSH_9.6p1",
)


@dataclass
class Day:
    """One row per (user, day) the user is active, with where they are."""

    user: I64
    day: I64
    remote: npt.NDArray[np.bool_]
    city: I64
    offset_h: F64
    src: npt.NDArray[np.uint32]  # address their traffic comes from when not in the office

    def on(self, day: int) -> Day:
        """The rows of one day."""
        m = self.day == day
        return Day(
            self.user[m], self.day[m], self.remote[m], self.city[m], self.offset_h[m], self.src[m]
        )


def active_days(s: Scenario, rng: np.random.Generator, p: om.People) -> Day:
    """Who works on which day, from where (office, home, phone, VPN egress, a hotel abroad)."""
    n, days = len(p), s.org.days
    user = np.repeat(np.arange(n), days)
    day = np.tile(np.arange(days), n)
    country = np.array([c.country for c in om.CITIES])[p.home_city]
    workday = np.zeros(n * days, dtype=bool)
    for c in np.unique(country):
        mask = np.repeat(country == c, days)
        workday[mask] = np.tile(om.workdays(s, str(c)), int((country == c).sum()))
    active = workday | (rng.random(n * days) < s.org.weekend_activity)
    away = (
        (p.trip_day[user] >= 0)
        & (day >= p.trip_day[user] + 1)
        & (day < p.trip_day[user] + 1 + p.trip_days[user])
    )
    remote = (rng.random(n * days) < s.org.remote_share) | ~workday | away
    city = np.where(away, p.trip_city[user], p.home_city[user])
    offsets = om.utc_offsets(s)
    src = np.where(p.egress[user] > 0, p.egress_ip[user], p.home_ip[user])
    phone = rng.random(n * days) < 0.08
    mobile, _ = ad.draw(rng, ad.prefixes("mobile", [str(x) for x in np.unique(country)]), n * days)
    src = np.where(phone & (p.egress[user] == 0), mobile, src)
    if away.any():
        trip_country = np.array([c.country for c in om.CITIES])[city[away]]
        hotel = np.zeros(int(away.sum()), dtype=np.uint32)
        for c in np.unique(trip_country):
            m = trip_country == c
            hotel[m], _ = ad.draw(rng, ad.prefixes("residential", [str(c)]), int(m.sum()))
        src[away] = np.where(p.egress[user[away]] > 0, src[away], hotel)
    keep = active
    return Day(
        user=user[keep],
        day=day[keep],
        remote=remote[keep],
        city=city[keep],
        offset_h=offsets[city[keep], day[keep]],
        src=src[keep].astype(np.uint32),
    )


def _trip_filter(s: Scenario, p: om.People, user: I64, ts: F64) -> npt.NDArray[np.bool_]:
    """Drop events a traveller could not have produced: while flying, or on the wrong side."""
    lat, lon = om.city_arrays()
    trav = p.trip_day[user] >= 0
    home, far = p.home_city[user], p.trip_city[user]
    hours = om.great_circle_km(lat[home], lon[home], lat[far], lon[far]) / 850.0 + 1.5
    depart = s.t0 + (p.trip_day[user] + 1) * 86_400.0 - 6 * 3_600.0  # evening before day one
    arrive = depart + hours * 3_600.0
    back = s.t0 + (p.trip_day[user] + 1 + p.trip_days[user]) * 86_400.0 - 6 * 3_600.0
    home_again = back + hours * 3_600.0
    flying = ((ts > depart - 3_600) & (ts < arrive + 3_600)) | (
        (ts > back - 3_600) & (ts < home_again + 3_600)
    )
    return ~(trav & flying)


def true_location(s: Scenario, p: om.People, user: I64, ts: F64) -> tuple[F64, F64]:
    """Where a user physically is at ``ts`` (home city, or the trip's city between flights)."""
    lat, lon = om.city_arrays()
    arrive = s.t0 + (p.trip_day[user] + 1) * 86_400.0 - 6 * 3_600.0
    back = s.t0 + (p.trip_day[user] + 1 + p.trip_days[user]) * 86_400.0 - 6 * 3_600.0
    away = (p.trip_day[user] >= 0) & (ts >= arrive) & (ts < back)
    city = np.where(away, p.trip_city[user], p.home_city[user])
    return lat[city], lon[city]


def logins(s: Scenario, rng: np.random.Generator, p: om.People, d: Day, out: Events) -> None:
    """VPN sessions of remote workers, SSO sign-ins, SSH to the bastion, typos among them."""
    site_vpn = np.array([SERVICE[site.vpn] for site in om.SITES])[p.site[d.user]]
    office_ip = np.array([ad.ip_int(site.public) + 2 for site in om.SITES])[p.site[d.user]]
    # VPN: one session per remote day, starting in the local morning.
    r = d.remote
    start = om.work_times(rng, s.t0, d.day[r], d.offset_h[r], int(r.sum()), centre=8.6)
    _login_block(s, rng, p, out, d.user[r], start, d.src[r], site_vpn[r], long=True)
    # SSO: a Poisson number of sign-ins per active day, from wherever the user is.
    k = rng.poisson(s.org.logins_per_user_day, len(d.user))
    idx = np.repeat(np.arange(len(d.user)), k)
    ts = om.work_times(rng, s.t0, d.day[idx], d.offset_h[idx], len(idx))
    src = np.where(d.remote[idx], d.src[idx], office_ip[idx]).astype(np.uint32)
    _login_block(s, rng, p, out, d.user[idx], ts, src, np.full(len(idx), SERVICE["sso-entra"]))
    # SSH: administrators reach the bastion from home a few times a day.
    a = p.admin[d.user]
    idx = np.repeat(np.nonzero(a)[0], rng.integers(1, 4, int(a.sum())))
    ts = om.work_times(rng, s.t0, d.day[idx], d.offset_h[idx], len(idx))
    _login_block(
        s,
        rng,
        p,
        out,
        d.user[idx],
        ts,
        d.src[idx],
        np.full(len(idx), SERVICE["ssh-bastion"]),
        long=True,
    )


def _login_block(
    s: Scenario,
    rng: np.random.Generator,
    p: om.People,
    out: Events,
    user: I64,
    ts: F64,
    src: npt.NDArray[np.uint32],
    service: npt.NDArray[np.int64] | npt.NDArray[np.int8],
    long: bool = False,
) -> None:
    keep = _trip_filter(s, p, user, ts) & (ts >= s.t0) & (ts < s.t1)
    user, ts, src = user[keep], ts[keep], src[keep]
    service = np.asarray(service, dtype=np.int64)[keep]
    n = len(user)
    client = np.select(
        [
            service == SERVICE["vpn-asa"],
            service == SERVICE["vpn-globalprotect"],
            service == SERVICE["ssh-bastion"],
        ],
        [0, 1, 5],
        default=rng.choice([2, 3, 4], n, p=[0.6, 0.25, 0.15]),
    )
    lat, lon = true_location(s, p, user, ts)
    duration = rng.lognormal(np.log(6 * 3_600 if long else 1.0), 0.5, n) if long else np.zeros(n)
    common: dict[str, Any] = dict(
        user=user,
        name=user,
        src=src,
        service=service,
        mfa=p.mfa[user],
        cert=p.cert[user],
        client=client,
        lat=lat,
        lon=lon,
        sport=rng.integers(20_000, 65_000, n),
    )
    typo = rng.random(n) < s.org.typo_rate
    out.add(
        ts=ts,
        success=True,
        duration=duration,
        bytes=(rng.lognormal(18, 1.2, n) * long).astype(np.int64),
        **common,
    )
    out.add(
        ts=ts[typo] - rng.uniform(5, 40, int(typo.sum())),
        success=False,
        mfa=False,
        **{k: v[typo] for k, v in common.items() if k != "mfa"},
    )


def day_flows(s: Scenario, rng: np.random.Generator, day: int, logins: Events, out: Events) -> None:
    """What happens on ``day`` whoever works: cameras, scanning, public services, VPN tunnels."""
    _cameras(s, rng, day, out)
    _scanning(s, rng, day, out)
    _public_services(s, rng, day, out)
    vpn_tunnels(s, logins, out)


def flows(s: Scenario, rng: np.random.Generator, p: om.People, d: Day, out: Events) -> None:
    """SaaS/CDN sessions (more on patch day) and internal services of the people at work."""
    site = p.site[d.user]
    office = ~d.remote
    sensor_of_site = np.array([SENSOR[x.sensor] for x in om.SITES])
    # SaaS / CDN from workstations at the office, with more update traffic on Patch Tuesday.
    patch = om.patch_days(s)[d.day]
    k = rng.poisson(
        s.org.flows_per_user_day * 0.7 * np.where(patch, s.org.patch_multiplier, 1.0) * office
    )
    idx = np.repeat(np.arange(len(d.user)), k)
    n = len(idx)
    dst, _ = ad.draw(rng, ad.prefixes("saas"), n)
    ts = om.work_times(rng, s.t0, d.day[idx], d.offset_h[idx], n)
    sb = rng.lognormal(8, 1.2, n).astype(np.int64)
    db = (rng.lognormal(11, 1.6, n)).astype(np.int64)
    out.add(
        ts=ts,
        duration=rng.exponential(25, n),
        src=p.workstation[d.user[idx]],
        dst=dst,
        sport=rng.integers(49_152, 65_535, n),
        dport=np.where(rng.random(n) < 0.93, 443, 80),
        proto=6,
        sbytes=sb,
        dbytes=db,
        spkts=sb // 900 + 3,
        dpkts=db // 1_300 + 3,
        sensor=sensor_of_site[site[idx]],
    )
    # Internal services at HQ, seen by the Zeek sensor.
    hq = office & (site == 0)
    k = rng.poisson(s.org.flows_per_user_day * 0.3 * hq)
    idx = np.repeat(np.arange(len(d.user)), k)
    n = len(idx)
    servers = ad.internal("10.1.20.0/24", 12)
    svc = rng.choice(4, n, p=[0.5, 0.2, 0.2, 0.1])
    port = np.array([53, 445, 389, 443])[svc]
    sb = (np.array([60, 4_000, 900, 3_000])[svc] * rng.lognormal(0, 0.6, n)).astype(np.int64)
    out.add(
        ts=om.work_times(rng, s.t0, d.day[idx], d.offset_h[idx], n),
        duration=rng.exponential(2, n),
        src=p.workstation[d.user[idx]],
        dst=np.where(svc == 0, servers[0], rng.choice(servers[1:], n)),
        sport=rng.integers(49_152, 65_535, n),
        dport=port,
        proto=np.where(svc == 0, 17, 6),
        sbytes=sb.astype(np.int64),
        dbytes=(sb * rng.lognormal(1.5, 1, n)).astype(np.int64),
        spkts=4,
        dpkts=6,
        sensor=SENSOR["zeek-hq"],
    )


def vpn_tunnels(s: Scenario, logins: Events, out: Events) -> None:
    """The tunnel flow behind every ordinary VPN or SSH session (what the edge sensor sees).

    SSH goes to the bastion, whose own netfilter log (not the HQ router's export) sees it.
    """
    if not len(logins):
        return
    kind = logins["service"]
    ok = logins["success"] & (kind != SERVICE["sso-entra"]) & (logins["phase"] == 0)
    gp = kind[ok] == SERVICE["vpn-globalprotect"]
    ssh = kind[ok] == SERVICE["ssh-bastion"]
    gw = np.select(
        [gp, ssh],
        [ad.ip_int(om.SITES[3].public), ad.ip_int(om.BASTION_PUBLIC)],
        ad.ip_int(om.HQ.public),
    )
    b = logins["bytes"][ok] + 5_000
    out.add(
        ts=logins["ts"][ok],
        duration=logins["duration"][ok],
        src=logins["src"][ok],
        dst=gw,
        sport=logins["sport"][ok],
        dport=np.where(ssh, 22, 443),
        proto=6,
        sbytes=b // 3,
        dbytes=b,
        spkts=b // 3_000 + 20,
        dpkts=b // 1_300 + 20,
        sensor=np.select(
            [gp, ssh], [SENSOR["panos-munich"], SENSOR["iptables-bastion"]], SENSOR["ipfix-hq"]
        ),
    )
    del s


def _cameras(s: Scenario, rng: np.random.Generator, day: int, out: Events) -> None:
    """Cameras stream to the NVR around the clock; the NVR checks in with its vendor hourly."""
    cams = ad.internal("10.1.50.0/24", 16, start=20)
    slots = day * 24 + np.arange(24)
    cam = np.repeat(cams, len(slots))
    ts = s.t0 + np.tile(slots, len(cams)) * 3_600.0 + rng.uniform(0, 60, len(cam))
    n = len(cam)
    out.add(
        ts=ts,
        duration=3_590.0,
        src=cam,
        dst=ad.ip_int(om.NVR),
        sport=rng.integers(30_000, 60_000, n),
        dport=554,
        proto=6,
        sbytes=rng.integers(800_000_000, 1_200_000_000, n),
        dbytes=rng.integers(100_000, 300_000, n),
        spkts=700_000,
        dpkts=9_000,
        sensor=SENSOR["zeek-hq"],
    )
    cloud = np.uint32(ad.ip_int(NVR_CLOUD))
    m = len(slots)
    out.add(
        ts=s.t0 + slots * 3_600.0 + rng.uniform(0, 120, m),
        duration=1.5,
        src=ad.ip_int(om.NVR),
        dst=cloud,
        sport=rng.integers(30_000, 60_000, m),
        dport=443,
        proto=6,
        sbytes=rng.integers(900, 1_400, m),
        dbytes=rng.integers(3_000, 5_000, m),
        spkts=8,
        dpkts=8,
        sensor=SENSOR["ipfix-hq"],
    )


def _scanning(s: Scenario, rng: np.random.Generator, day: int, out: Events) -> None:
    """Internet background radiation: scanners and random hosts probing every edge address.

    Each site's edge sees probes of its first four addresses (the HQ bastion is one of them and
    logs them itself), and the HQ DMZ firewall sees probes of the public servers.
    """
    n = s.org.scans_per_day
    known, _ = ad.draw(rng, ad.prefixes("scanner"), n // 2)
    noise, _ = ad.draw(rng, ad.prefixes("hosting") + ad.prefixes("residential"), n - n // 2)
    src = np.concatenate([known, noise])
    edge = rng.choice(len(om.SITES) + 1, n, p=[0.4, 0.2, 0.1, 0.2, 0.1])
    dmz = edge == len(om.SITES)
    first = np.array([ad.ip_int(x.public) for x in om.SITES] + [0])[edge]
    dst = np.where(dmz, rng.choice(DMZ_HOSTS, n), first + rng.integers(0, 4, n)).astype(np.uint32)
    ports = np.array([22, 23, 80, 443, 445, 3389, 8080, 8443, 5900, 1723, 10443, 2323, 25])
    dport = rng.choice(ports, n)
    sensor = np.array([SENSOR[x.sensor] for x in om.SITES] + [SENSOR["asa-hq-dmz"]])[edge]
    bastion = dst == ad.ip_int(om.BASTION_PUBLIC)
    sensor = np.where(bastion, SENSOR["iptables-bastion"], sensor)
    deny = np.select(
        [bastion, dmz, sensor == SENSOR["ipfix-hq"]],
        [dport != 22, ~np.isin(dport, DMZ_OPEN), False],
        True,
    )
    out.add(
        ts=s.t0 + (day + rng.random(n)) * DAY_S,
        duration=0.0,
        src=src,
        dst=dst,
        sport=rng.integers(1_024, 65_535, n),
        dport=dport,
        proto=6,
        sbytes=44,
        dbytes=0,
        spkts=1,
        dpkts=0,
        deny=deny,
        sensor=sensor,
    )


def _public_services(s: Scenario, rng: np.random.Generator, day: int, out: Events) -> None:
    """Customers and partners reach the HQ DMZ (web, mail, DNS) behind the ASA, mostly by day."""
    n = rng.poisson(s.org.public_connections_per_day)
    service = rng.choice(3, n, p=[0.75, 0.15, 0.10])
    clients, _ = ad.draw(
        rng, ad.prefixes("residential", ["US"]) + ad.prefixes("mobile") + ad.prefixes("hosting"), n
    )
    hour = np.where(rng.random(n) < 0.8, rng.normal(15.5, 4.0, n), rng.uniform(0, 24, n)) % 24
    udp = service == 2
    size = rng.lognormal(np.array([10.5, 9.5, 4.5])[service], 1.0, n).astype(np.int64)
    out.add(
        ts=s.t0 + day * DAY_S + hour * 3_600.0,
        duration=np.where(udp, 0.03, rng.exponential(20, n)),
        src=clients,
        dst=np.array(DMZ_HOSTS, dtype=np.uint32)[service],
        sport=rng.integers(1_024, 65_535, n),
        dport=np.array(DMZ_OPEN)[service],
        proto=np.where(udp, 17, 6),
        sbytes=np.where(udp, 60, size // 8 + 400),
        dbytes=np.where(udp, size + 60, size),
        spkts=np.where(udp, 1, size // 8_000 + 5),
        dpkts=np.where(udp, 1, size // 1_300 + 5),
        sensor=SENSOR["asa-hq-dmz"],
    )


def ssh_noise(
    s: Scenario,
    rng: np.random.Generator,
    day: int,
    logins: Events,
    out: Events,
    users: int,
    guessed: int,
) -> None:
    """Internet SSH brute force against the bastion: guessed names from scanners and hosts.

    Each attempt is a login event (sshd) and the connection the bastion's firewall accepted.
    """
    n = SSH_GUESSES_PER_DAY
    src, _ = ad.draw(rng, ad.prefixes("hosting") + ad.prefixes("scanner"), max(n // 6, 1))
    src = np.repeat(src, 6)[:n]
    ts = np.sort(s.t0 + (day + rng.random(n)) * DAY_S)
    sport = rng.integers(30_000, 65_000, n)
    logins.add(
        ts=ts,
        user=-1,
        name=users + rng.integers(0, guessed, n),
        src=src,
        sport=sport,
        service=SERVICE["ssh-bastion"],
        success=False,
        client=5,
        lat=np.nan,
        lon=np.nan,
    )
    out.add(
        ts=ts - 0.3,
        duration=rng.uniform(2, 8, n),
        src=src,
        dst=ad.ip_int(om.BASTION_PUBLIC),
        sport=sport,
        dport=22,
        proto=6,
        sbytes=rng.integers(2_000, 3_500, n),
        dbytes=rng.integers(2_500, 4_500, n),
        spkts=12,
        dpkts=11,
        sensor=SENSOR["iptables-bastion"],
    )
