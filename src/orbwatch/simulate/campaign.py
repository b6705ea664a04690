"""The covert-network campaign: a rotating relay pool and the phases it runs against the victim.

Shaped after public reporting (docs/simulator.md cites each behaviour): relay nodes are mostly
compromised SOHO/IoT devices in residential ISPs, some leased VPS; each node lives for a
class-specific time (exponential, means ~17 d SOHO, ~77 d VPS, ~90 d Quad7-like), so most
indicators die within days; nodes come in intrusion sets of up to ~60 sharing one listening
port, TLS certificate and SSH host key; exits sit in the victim's own countries. Phases:
recon, low-and-slow spray, single-factor VPN access, discovery, C2 beaconing through relays,
exfiltration, and the victim's own branch router enrolled as a relay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from orbwatch.simulate import addresses as ad
from orbwatch.simulate import org as om
from orbwatch.simulate.events import PHASE_CODE, PHASES, SENSOR, SERVICE, Events
from orbwatch.simulate.scenario import Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]
CLASSES = ("soho", "quad7", "vps")
DAY = 86_400.0
ACCESS_CLIENT = "Cisco AnyConnect Secure Mobility Client 4.9.06037"


@dataclass
class Pool:
    """The relay nodes: address, class, lifetime and intrusion set, as arrays."""

    ip: U32
    cls: I64
    birth: F64
    death: F64
    iset: I64
    set_port: I64
    set_cert: list[str]
    set_hostkey: list[str]

    def active(self, t: float | F64) -> npt.NDArray[np.bool_]:
        return (self.birth <= t) & (t < self.death)


@dataclass
class Truth:
    """Entity-level ground truth rows and facts the writers and labels need."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    victim_user: int = -1
    session_ip: int = 0
    feed: U32 = field(default_factory=lambda: np.zeros(0, np.uint32))

    def add_spans(
        self,
        kind: str,
        values: npt.NDArray[Any],
        ts: F64,
        phase: str,
        text: list[str] | None = None,
    ) -> None:
        """One entity row per distinct value: first and last time it acted in this phase."""
        if len(values) == 0:
            return
        order = np.lexsort((ts, values))
        v, t = values[order], ts[order]
        starts = np.r_[0, np.nonzero(v[1:] != v[:-1])[0] + 1]
        ends = np.r_[starts[1:], len(v)] - 1
        names = text if text is not None else ad.ip_text(v[starts].astype(np.uint32)).to_pylist()
        technique = PHASES[PHASE_CODE[phase]][1]
        for i, s in enumerate(starts):
            self.entities.append(
                {
                    "entity_type": kind,
                    "value": names[i],
                    "phase": phase,
                    "technique": technique,
                    "first": float(t[s]),
                    "last": float(t[ends[i]]),
                }
            )


def pool(s: Scenario, rng: np.random.Generator) -> Pool:
    """Draw the relay pool, born over the 60 days before the window and during it."""
    c = s.campaign
    n = c.pool_size
    share = np.array([c.soho_share, c.quad7_share, c.vps_share])
    cls = rng.choice(3, n, p=share / share.sum())
    birth = rng.uniform(s.t0 - 60 * DAY, s.t1, n)
    mean = np.array([c.soho_lifetime_days, c.quad7_lifetime_days, c.vps_lifetime_days])[cls]
    death = birth + rng.exponential(mean * DAY)
    ip = np.zeros(n, dtype=np.uint32)
    near = rng.random(n) < c.exit_in_victim_country
    res_near = ad.prefixes("residential", c.victim_countries)
    res_far = [p for p in ad.prefixes("residential") if p.country not in c.victim_countries]
    for mask, plan in (
        ((cls < 2) & near, res_near),
        ((cls < 2) & ~near, res_far or res_near),
        (cls == 2, ad.prefixes("hosting")),
    ):
        ip[mask] = ad.draw_unique(rng, plan, int(mask.sum())) if mask.any() else ip[mask]
    sets = max(1, -(-n // c.intrusion_set_max))
    iset = rng.permutation(n) % sets
    ports = [*c.intrusion_set_ports, *rng.integers(20_000, 65_000, sets).tolist()][:sets]
    cert = [
        hashlib.sha1(f"{s.seed}-cert-{i}".encode(), usedforsecurity=False).hexdigest()
        for i in range(sets)
    ]
    key = [hashlib.sha256(f"{s.seed}-hostkey-{i}".encode()).hexdigest()[:43] for i in range(sets)]
    return Pool(
        ip,
        cls.astype(np.int64),
        birth,
        death,
        iset.astype(np.int64),
        np.array(ports, dtype=np.int64),
        cert,
        key,
    )


def choose_victim(s: Scenario, rng: np.random.Generator, p: om.People) -> int:
    """A US account in the legacy single-factor VPN group (made so if none is)."""
    us = np.nonzero(p.site != 3)[0]
    weak = us[~p.mfa[us]]
    victim = int(rng.choice(weak)) if len(weak) else int(rng.choice(us))
    p.mfa[victim] = False
    return victim


def _pick(rng: np.random.Generator, nodes: Pool, ts: F64, allowed: npt.NDArray[np.bool_]) -> I64:
    """For each time, a node of the allowed kind that is alive then (redraws the dead ones)."""
    cand = np.nonzero(allowed)[0]
    out = rng.choice(cand, len(ts))
    for _ in range(60):
        dead = ~((nodes.birth[out] <= ts) & (ts < nodes.death[out]))
        if not dead.any():
            break
        out[dead] = rng.choice(cand, int(dead.sum()))
    return out


def run(
    s: Scenario,
    rng: np.random.Generator,
    p: om.People,
    victim: int,
    nodes: Pool,
    flows: Events,
    logins: Events,
    names: int,
    clients: dict[str, int],
) -> Truth:
    """Every phase of the campaign, appended to the flow and login events; returns the truth."""
    truth = Truth(victim_user=victim)
    c = s.campaign
    edges = np.array([ad.ip_int(x.public) for x in om.SITES])
    sensors = np.array([SENSOR[x.sensor] for x in om.SITES])
    res = nodes.cls < 2
    # Recon: a slice of the pool probes every VPN/SSO portal of the edge.
    m = max(10, len(p) // 3) * c.recon_probes_per_node
    ts = s.t0 + (c.recon_start_day + rng.uniform(0, c.recon_days, m)) * DAY
    node = _pick(rng, nodes, ts, res | True)
    edge = rng.integers(0, len(om.SITES), m)
    flows.add(
        ts=ts,
        src=nodes.ip[node],
        dst=edges[edge],
        sport=rng.integers(1_024, 65_535, m),
        dport=rng.choice([443, 8443, 10443, 4443, 22], m),
        proto=6,
        sbytes=rng.integers(300, 900, m),
        dbytes=rng.integers(0, 4_000, m),
        spkts=3,
        dpkts=2,
        sensor=sensors[edge],
        phase=PHASE_CODE["recon"],
        duration=0.4,
    )
    truth.add_spans("ip", nodes.ip[node], ts, "recon")
    _spray(s, rng, p, nodes, logins, flows, truth, names, clients["spray"])
    _access(s, rng, p, victim, nodes, flows, logins, truth, clients["access"])
    _c2_and_exfil(s, rng, nodes, flows, truth)
    _router_relay(s, rng, nodes, flows, truth)
    lag = s.t0 - c.feed_lag_days * DAY
    last_month = (nodes.death > lag - 30 * DAY) & (nodes.birth < lag)
    truth.feed = nodes.ip[last_month & (rng.random(len(nodes.ip)) < c.feed_coverage)]
    return truth


def _spray(
    s: Scenario,
    rng: np.random.Generator,
    p: om.People,
    nodes: Pool,
    logins: Events,
    flows: Events,
    truth: Truth,
    names: int,
    client: int,
) -> None:
    """~80% of accounts get one attempt a day; each relay makes only a few attempts."""
    c = s.campaign
    days = np.arange(int(c.spray_start_day), int(min(c.spray_start_day + c.spray_days, s.org.days)))
    day = np.repeat(days, len(p))
    user = np.tile(np.arange(len(p)), len(days))
    chosen = rng.random(len(day)) < c.spray_account_share
    day, user = day[chosen], user[chosen]
    n = len(user)
    ts = s.t0 + (day + rng.uniform(0, 1, n)) * DAY
    # Give each day's attempts to distinct live nodes, a few attempts per node.
    node = np.zeros(n, dtype=np.int64)
    used = np.zeros(len(nodes.ip), dtype=bool)
    for d in days:  # one iteration per simulated day, not per event
        idx = np.nonzero(day == d)[0]
        alive = np.nonzero(
            nodes.active(s.t0 + d * DAY) & nodes.active(s.t0 + (d + 1) * DAY) & (nodes.cls < 2)
        )[0]
        if len(alive) == 0:
            alive = np.arange(len(nodes.ip))
        need = min(len(alive), -(-len(idx) // c.spray_attempts_per_source))
        fresh = alive[~used[alive]]  # rotate: prefer nodes that have not sprayed yet
        use = rng.choice(fresh if len(fresh) >= need else alive, need, replace=False)
        used[use] = True
        node[idx] = use[rng.permutation(len(idx)) % need]
    site_vpn = np.array([SERVICE[x.vpn] for x in om.SITES])[p.site[user]]
    service = np.where(rng.random(n) < 0.5, SERVICE["sso-entra"], site_vpn)
    src = nodes.ip[node]
    logins.add(
        ts=ts,
        user=user,
        name=user,
        src=src,
        sport=rng.integers(30_000, 65_000, n),
        service=service,
        success=False,
        mfa=False,
        cert=False,
        client=client,
        phase=PHASE_CODE["password-spray"],
        lat=np.nan,
        lon=np.nan,
    )
    vpn = service != SERVICE["sso-entra"]
    gp = service[vpn] == SERVICE["vpn-globalprotect"]
    k = int(vpn.sum())
    flows.add(
        ts=ts[vpn] - 0.5,
        duration=1.2,
        src=src[vpn],
        dst=np.where(gp, ad.ip_int(om.SITES[3].public), ad.ip_int(om.HQ.public)),
        sport=logins["sport"][-n:][vpn],
        dport=443,
        proto=6,
        sbytes=rng.integers(1_500, 2_500, k),
        dbytes=rng.integers(3_000, 5_000, k),
        spkts=9,
        dpkts=8,
        sensor=np.where(gp, SENSOR["panos-munich"], SENSOR["ipfix-hq"]),
        phase=PHASE_CODE["password-spray"],
    )
    truth.add_spans("ip", src, ts, "password-spray")
    del names


def _access(
    s: Scenario,
    rng: np.random.Generator,
    p: om.People,
    victim: int,
    nodes: Pool,
    flows: Events,
    logins: Events,
    truth: Truth,
    client: int,
) -> None:
    """The single-factor VPN login with the sprayed password, then discovery from the session."""
    c = s.campaign
    t = s.t0 + c.access_day * DAY
    home = p.home_city[victim]
    country = om.CITIES[home].country
    alive = np.nonzero(nodes.active(t) & nodes.active(t + 4 * 3_600) & (nodes.cls < 2))[0]
    near = alive[ad.countries(nodes.ip[alive]) == country]
    node = int(rng.choice(near if len(near) else alive))
    src = nodes.ip[node]
    service = SERVICE[om.SITES[int(p.site[victim])].vpn]
    dur, size = 3.5 * 3_600, 180_000_000
    logins.add(
        ts=t,
        user=victim,
        name=victim,
        src=src,
        sport=51_515,
        service=service,
        success=True,
        mfa=False,
        cert=False,
        client=client,
        duration=dur,
        bytes=size,
        phase=PHASE_CODE["initial-access"],
        lat=np.nan,
        lon=np.nan,
    )
    flows.add(
        ts=t,
        duration=dur,
        src=src,
        dst=ad.ip_int(om.HQ.public),
        sport=51_515,
        dport=443,
        proto=6,
        sbytes=size // 4,
        dbytes=size,
        spkts=size // 4_000,
        dpkts=size // 1_300,
        sensor=SENSOR["ipfix-hq"],
        phase=PHASE_CODE["initial-access"],
    )
    truth.add_spans("ip", np.array([src]), np.array([t]), "initial-access")
    truth.add_spans(
        "user", np.array([victim]), np.array([t]), "initial-access", [str(p.names[victim])]
    )
    session = ad.ip_int("10.1.200.77")
    truth.session_ip = session
    targets = np.concatenate([ad.internal("10.1.20.0/24", 60), ad.internal("10.1.10.0/24", 60)])
    hosts = rng.choice(targets, min(c.discovery_hosts, len(targets)), replace=False)
    ports = np.array([22, 88, 135, 139, 389, 445, 3389, 5985, 8080, 443])
    dst = np.repeat(hosts, len(ports))
    port = np.tile(ports, len(hosts))
    m = len(dst)
    ts = t + 600 + np.sort(rng.uniform(0, 7_200, m))
    answered = rng.random(m) < 0.25
    flows.add(
        ts=ts,
        duration=np.where(answered, 0.05, 0.0),
        src=session,
        dst=dst,
        sport=rng.integers(40_000, 60_000, m),
        dport=port,
        proto=6,
        sbytes=0,
        dbytes=0,
        spkts=np.where(answered, 2, 1),
        dpkts=np.where(answered, 2, 1),
        sensor=SENSOR["zeek-hq"],
        phase=PHASE_CODE["discovery"],
    )
    truth.add_spans("device", np.array([session, session]), ts[[0, -1]], "discovery")


def _c2_and_exfil(
    s: Scenario, rng: np.random.Generator, nodes: Pool, flows: Events, truth: Truth
) -> None:
    """Jittered beacons from the implanted server through rotating relays; one night's upload."""
    c = s.campaign
    begin = s.t0 + (c.access_day + 0.15) * DAY
    if begin >= s.t1:
        return
    n = int((s.t1 - begin) / c.beacon_interval_s)
    gaps = c.beacon_interval_s * (1 + c.beacon_jitter * rng.uniform(-1, 1, n))
    ts = begin + np.cumsum(gaps)
    ts = ts[ts < s.t1]
    n = len(ts)
    cover = np.minimum(nodes.death, s.t1) - np.maximum(nodes.birth, begin)
    relays = np.argsort(-np.where(nodes.cls > 0, cover, -np.inf))[: c.beacon_relays]
    nodes.iset[relays] = nodes.iset[relays[0]]  # one intrusion set: one port, cert, host key
    port = int(nodes.set_port[nodes.iset[relays[0]]])
    which = relays[(np.arange(n) * c.beacon_relays // max(n, 1))]  # rotate in time chunks
    server = ad.ip_int(om.COMPROMISED_SERVER)
    flows.add(
        ts=ts,
        duration=rng.uniform(0.2, 1.5, n),
        src=server,
        dst=nodes.ip[which],
        sport=rng.integers(40_000, 60_000, n),
        dport=port,
        proto=6,
        sbytes=rng.integers(180, 260, n),
        dbytes=rng.integers(90, 160, n),
        spkts=4,
        dpkts=3,
        sensor=SENSOR["ipfix-hq"],
        phase=PHASE_CODE["c2"],
    )
    truth.add_spans("ip", nodes.ip[which], ts, "c2")
    truth.add_spans("device", np.array([server, server]), ts[[0, -1]], "c2")
    night = s.t0 + (np.floor(c.access_day) + 1) * DAY + 8 * 3_600  # 02:00-03:00 in Chicago
    if night >= s.t1:
        return
    k = 25
    ets = night + np.sort(rng.uniform(0, 3_600, k))
    part = c.exfil_bytes // k
    flows.add(
        ts=ets,
        duration=rng.uniform(100, 140, k),
        src=server,
        dst=nodes.ip[relays[0]],
        sport=rng.integers(40_000, 60_000, k),
        dport=port,
        proto=6,
        sbytes=part,
        dbytes=rng.integers(20_000, 60_000, k),
        spkts=part // 1_400,
        dpkts=part // 2_800,
        sensor=SENSOR["ipfix-hq"],
        phase=PHASE_CODE["exfiltration"],
    )
    truth.add_spans("ip", nodes.ip[relays[:1]], ets[:1], "exfiltration")
    truth.entities[-1]["last"] = float(ets[-1])
    truth.add_spans("device", np.array([server, server]), ets[[0, -1]], "exfiltration")


def _router_relay(
    s: Scenario, rng: np.random.Generator, nodes: Pool, flows: Events, truth: Truth
) -> None:
    """The branch router accepts relay traffic on a high port and forwards it: bytes in ~ out."""
    c = s.campaign
    begin = s.t0 + c.router_relay_day * DAY
    if begin >= s.t1:
        return
    router = ad.ip_int(om.SITES[2].public)
    sources = rng.choice(nodes.ip, min(c.router_relay_sources, len(nodes.ip)), replace=False)
    per = rng.poisson(25 * (s.t1 - begin) / DAY, len(sources))
    src = np.repeat(sources, per)
    m = len(src)
    ts = rng.uniform(begin, s.t1, m)
    size = rng.lognormal(11, 1.3, m).astype(np.int64)
    flows.add(
        ts=ts,
        duration=rng.exponential(30, m),
        src=src,
        dst=router,
        sport=rng.integers(1_024, 65_535, m),
        dport=c.router_relay_port,
        proto=6,
        sbytes=size,
        dbytes=(size * rng.uniform(0.9, 1.1, m)).astype(np.int64),
        spkts=size // 1_200 + 3,
        dpkts=size // 1_200 + 3,
        sensor=SENSOR["ipfix-branch2"],
        phase=PHASE_CODE["router-relay"],
    )
    onward, _ = ad.draw(rng, ad.prefixes("hosting") + ad.prefixes("saas"), m)
    flows.add(
        ts=ts + 0.05,
        duration=rng.exponential(30, m),
        src=router,
        dst=onward,
        sport=rng.integers(30_000, 60_000, m),
        dport=443,
        proto=6,
        sbytes=(size * rng.uniform(0.9, 1.1, m)).astype(np.int64),
        dbytes=size,
        spkts=size // 1_200 + 3,
        dpkts=size // 1_200 + 3,
        sensor=SENSOR["ipfix-branch2"],
        phase=PHASE_CODE["router-relay"],
    )
    truth.add_spans("ip", src, ts, "router-relay")
    truth.add_spans(
        "device", np.array([router, router]), np.array([ts.min(), ts.max()]), "router-relay"
    )
