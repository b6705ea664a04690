"""``orbwatch simulate``: draw the organisation and the campaign, stream every file and the truth.

Memory is bounded by a day, not by the window: :func:`plan` draws what is small and global
(people, their working days, the relay pool, the whole campaign), then each day's ordinary
activity is drawn with that day's own generator, spawned from the seed
(``numpy.random.SeedSequence(seed).spawn``), merged with the campaign events of that day, and
handed to the file sinks, which write what is complete and drop it. Every event gets an id
``(day << 32) | position`` that files use as the last ordering key, so the output is
byte-identical for a seed whatever ``chunk_days`` (how many days are generated before each
write) is.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import resource
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.simulate import addresses as ad
from orbwatch.simulate import background as bg
from orbwatch.simulate import campaign as cp
from orbwatch.simulate import formats as fm
from orbwatch.simulate import ipfix
from orbwatch.simulate import org as om
from orbwatch.simulate.events import PHASES, SENSOR, SERVICE, Events, flows, id_base, logins
from orbwatch.simulate.scenario import Scenario
from orbwatch.simulate.text import (
    Block,
    Landed,
    TextSink,
    Written,
    join,
    num,
    pick,
    stamp,
    write_buffer,
)

I64 = npt.NDArray[np.int64]
DAY = 86_400.0
GUESSED_NAMES = [
    "admin",
    "root",
    "test",
    "user",
    "ubuntu",
    "oracle",
    "postgres",
    "git",
    "support",
    "guest",
]
LABEL_COLUMNS = [
    "level",
    "entity_type",
    "value",
    "phase",
    "technique",
    "first_seen",
    "last_seen",
    "file",
    "offset",
]


@dataclass
class Plan:
    """What is drawn once for a scenario: people, relay pool, working days, the campaign."""

    scenario: Scenario
    people: om.People
    pool: cp.Pool
    days: bg.Day
    truth: cp.Truth
    login_names: list[str]
    clients: list[str]
    campaign_flows: Events
    campaign_logins: Events
    daily: list[np.random.SeedSequence]


@dataclass
class World(Plan):
    """A plan with every event materialised (tests and small runs; the writer streams instead)."""

    flows: Events = field(default_factory=flows)
    logins: Events = field(default_factory=logins)


@dataclass
class Result:
    """What a simulation wrote, and what it cost."""

    out: Path
    files: list[Written] = field(default_factory=list)
    flows: int = 0
    logins: int = 0
    entities: int = 0
    usage: Usage | None = None


@dataclass
class Usage:
    """Wall time, CPU time (user + system) and peak resident memory of this process."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    load: tuple[float, float, float]  # 1, 5, 15-minute load average at the end

    @classmethod
    def since(cls, wall0: float, cpu0: float) -> Usage:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            time.monotonic() - wall0,
            me.ru_utime + me.ru_stime - cpu0,
            me.ru_maxrss / 1024,  # Linux reports kilobytes
            os.getloadavg(),
        )


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


class Sink(Protocol):
    def add(self, events: Events, until: float) -> Landed: ...
    def finish(self) -> Landed: ...
    def written(self) -> Written: ...


@dataclass
class Output:
    """One file: which events feed it (flows of some sensors or logins of some services)."""

    name: str
    kind: str  # "flows" or "logins"
    codes: tuple[int, ...]
    sink: Sink


def plan(s: Scenario) -> Plan:
    """Draw everything global: staff, their days, the victim, the relay pool, the campaign."""
    setup, campaign, *daily = np.random.SeedSequence(s.seed).spawn(2 + s.org.days)
    rng = np.random.default_rng(setup)
    people = om.people(s, rng)
    victim = cp.choose_victim(s, rng, people)
    nodes = cp.pool(s, rng)
    days = bg.active_days(s, rng, people)
    cf, cl = flows(), logins()
    clients = [*bg.CLIENTS, s.campaign.spray_client, cp.ACCESS_CLIENT]
    truth = cp.Truth(victim_user=victim)
    if s.campaign.enabled:
        truth = cp.run(
            s,
            np.random.default_rng(campaign),
            people,
            victim,
            nodes,
            cf,
            cl,
            len(people),
            {"spray": len(clients) - 2, "access": len(clients) - 1},
        )
    names = [*people.names.tolist(), *GUESSED_NAMES]
    return Plan(s, people, nodes, days, truth, names, clients, cf, cl, daily)


def _unit(s: Scenario, ts: npt.NDArray[np.float64]) -> I64:
    """The day (generation unit) an event belongs to."""
    return np.clip(np.floor((ts - s.t0) / DAY), 0, s.org.days - 1).astype(np.int64)


def day_events(p: Plan, day: int) -> tuple[Events, Events]:
    """The campaign's events of ``day`` and the day's ordinary activity, numbered."""
    s = p.scenario
    rng = np.random.default_rng(p.daily[day])
    f, lg = flows(), logins()
    today = p.days.on(day)
    bg.logins(s, rng, p.people, today, lg)
    bg.ssh_noise(s, rng, day, lg, f, len(p.people), len(GUESSED_NAMES))
    bg.flows(s, rng, p.people, today, f)
    bg.day_flows(s, rng, day, lg, f)
    cf, cl = p.campaign_flows, p.campaign_logins
    f = Events.concat([cf.take(_unit(s, cf["ts"]) == day) if len(cf) else cf, f])
    lg = Events.concat([cl.take(_unit(s, cl["ts"]) == day) if len(cl) else cl, lg])
    return f.numbered(day), lg.numbered(day)


def events(p: Plan) -> Iterator[tuple[int, Events, Events]]:
    """Every day's events in order."""
    for day in range(p.scenario.org.days):
        f, lg = day_events(p, day)
        yield day, f, lg


def build(s: Scenario) -> World:
    """Draw the whole world for a scenario with every event in memory (no files)."""
    p = plan(s)
    parts = list(events(p))
    f = Events.concat([x[1] for x in parts]).sorted()
    lg = Events.concat([x[2] for x in parts]).sorted()
    return World(**vars(p), flows=f, logins=lg)


def outputs(p: Plan, out: Path) -> list[Output]:
    """A sink for every enabled file, fed by the sensors or services whose format it is."""
    s, o = p.scenario, p.scenario.output
    ctx = fm.Context(
        p.login_names,
        p.clients,
        ad.ip_int("10.1.128.10"),
        p.truth.session_ip or ad.ip_int("10.1.200.77"),
        s.t0,
    )

    def text(
        name: str,
        fmt: str,
        render: Callable[[Events], list[Block]],
        header: list[str] | None = None,
    ) -> TextSink:
        return TextSink(out / name, fmt, render, header or [])

    def exporter(f: Events) -> I64:
        return np.select(
            [f["sensor"] == SENSOR["ipfix-hq"], f["sensor"] == SENSOR["ipfix-branch2"]], [0, 1], -1
        )

    wanted: list[tuple[bool, str, str, tuple[str, ...], Callable[[], Sink]]] = [
        (
            o.netflow,
            "netflow.pcap",
            "flows",
            ("ipfix-hq", "ipfix-branch2"),
            lambda: ipfix.IpfixSink(
                out / "netflow.pcap",
                [ad.ip_int("10.1.0.254"), ad.ip_int("10.3.0.1")],
                s.t0,
                exporter,
            ),
        ),
        (
            o.zeek,
            "conn.log",
            "flows",
            ("zeek-hq",),
            lambda: text("conn.log", "zeek_conn", fm.zeek_conn, fm.zeek_header(s.t0)),
        ),
        (
            o.firewall,
            "fortigate-austin.log",
            "flows",
            ("fortigate-branch1",),
            lambda: text(
                "fortigate-austin.log",
                "fortigate",
                partial(
                    fm.fortigate_traffic, device="FGT-AUSTIN", public=ad.ip_int(om.SITES[1].public)
                ),
            ),
        ),
        (
            o.firewall,
            "panos-munich-traffic.log",
            "flows",
            ("panos-munich",),
            lambda: text(
                "panos-munich-traffic.log",
                "panos_traffic",
                partial(fm.panos_traffic, device="PA-MUC01"),
            ),
        ),
        (
            o.firewall,
            "asa-hq-dmz.log",
            "flows",
            ("asa-hq-dmz",),
            lambda: text(
                "asa-hq-dmz.log", "cisco_asa", partial(fm.asa_firewall, device="ASA-HQ-DMZ")
            ),
        ),
        (
            o.firewall,
            "bastion-kern.log",
            "flows",
            ("iptables-bastion",),
            lambda: text(
                "bastion-kern.log",
                "netfilter_log",
                partial(fm.netfilter, host="bastion-hq", boot=s.t0 - fm.BOOT_DAYS * DAY),
            ),
        ),
        (
            o.vpn,
            "asa-vpn.log",
            "logins",
            ("vpn-asa",),
            lambda: text(
                "asa-vpn.log",
                "cisco_asa_vpn",
                partial(fm.asa_anyconnect, ctx=ctx, device="ASA-HQ-VPN"),
            ),
        ),
        (
            o.vpn,
            "globalprotect-munich.log",
            "logins",
            ("vpn-globalprotect",),
            lambda: text(
                "globalprotect-munich.log",
                "panos_globalprotect",
                partial(fm.globalprotect, ctx=ctx, device="PA-MUC01"),
            ),
        ),
        (
            o.sshd,
            "auth.log",
            "logins",
            ("ssh-bastion",),
            lambda: text("auth.log", "sshd", partial(fm.sshd, ctx=ctx, host="bastion-hq")),
        ),
        (
            o.entra,
            "entra-signins.json",
            "logins",
            ("sso-entra",),
            lambda: text("entra-signins.json", "entra_signin", partial(fm.entra_signins, ctx=ctx)),
        ),
    ]
    codes = {"flows": SENSOR, "logins": SERVICE}
    return [
        Output(name, kind, tuple(codes[kind][x] for x in feeds), make())
        for enabled, name, kind, feeds, make in wanted
        if enabled
    ]


class _Labels:
    """Event labels: where each campaign event landed, looked up by event id."""

    def __init__(self, p: Plan) -> None:
        parts = [e for e in (p.campaign_flows, p.campaign_logins) if len(e)]
        ids = np.concatenate([np.zeros(0, np.int64), *(_ids(p, e) for e in parts)])
        order = np.argsort(ids)
        self.ids = ids[order]
        self.phase = np.concatenate([np.zeros(0, np.int8), *(e["phase"] for e in parts)])[order]
        self.ts = np.concatenate([np.zeros(0), *(e["ts"] for e in parts)])[order]
        self.found: list[tuple[int, I64, I64]] = []  # (file, index into ids, offset)

    def record(self, file: int, landed: Landed) -> None:
        at = np.searchsorted(self.ids, landed.row)
        hit = at < len(self.ids)
        hit[hit] = self.ids[at[hit]] == landed.row[hit]
        if hit.any():
            self.found.append((file, at[hit], landed.offset[hit]))


def _ids(p: Plan, e: Events) -> I64:
    """The ids :func:`day_events` gives campaign events (they come first in their day)."""
    if not len(e):
        return np.zeros(0, np.int64)
    unit = _unit(p.scenario, e["ts"])
    order = np.argsort(unit, kind="stable")
    first = np.searchsorted(unit[order], unit[order])
    pos = np.empty(len(e), dtype=np.int64)
    pos[order] = np.arange(len(e)) - first
    return id_base(e.spec, 0) + (unit << np.int64(32)) + pos


def write(
    p: Plan,
    out: Path,
    step: Callable[[str], None] | None = None,
    chunk_days: int = 1,
    threads: int = 2,
) -> Result:
    """Stream every enabled file, then ``labels.csv``, ``scenario.json`` and ``orbwatch.toml``.

    Events are handed to the sinks once every ``chunk_days`` days, with the horizon set to the
    start of the last day drawn: no later day can produce an event before it (a day's events
    begin at most a few hours before its midnight UTC), so everything older is final. Sinks
    of one chunk work in parallel threads (Arrow and numpy release the GIL).
    """
    s = p.scenario
    out.mkdir(parents=True, exist_ok=True)
    tell = step or (lambda _name: None)
    sinks = outputs(p, out)
    labels = _Labels(p)
    result = Result(out)
    held_f, held_lg = flows(), logins()
    horizon = -np.inf
    with ThreadPoolExecutor(max_workers=max(1, threads)) as workers:
        for day, f, lg in events(p):
            tell(f"day {day + 1} of {s.org.days}")
            early = min(f["ts"].min() if len(f) else np.inf, lg["ts"].min() if len(lg) else np.inf)
            if early < horizon:
                raise RuntimeError(f"day {day} produced an event before the write horizon")
            result.flows += len(f)
            result.logins += len(lg)
            held_f, held_lg = Events.concat([held_f, f]), Events.concat([held_lg, lg])
            last = day == s.org.days - 1
            if (day + 1) % chunk_days and not last:
                continue
            horizon = np.inf if last else s.t0 + day * DAY
            held_f = _release(sinks, held_f, "flows", horizon, labels, workers)
            held_lg = _release(sinks, held_lg, "logins", horizon, labels, workers)
        for i, o in enumerate(sinks):
            labels.record(i, o.sink.finish())
    result.files = [o.sink.written() for o in sinks]
    if s.output.feed:
        tell("orb-feed.netset")
        published = (s.start - dt.timedelta(days=s.campaign.feed_lag_days)).date().isoformat()
        result.files.append(fm.feed(p.truth.feed, out / "orb-feed.netset", published))
    tell("labels.csv")
    result.entities = _write_labels(p, out / "labels.csv", labels, [o.name for o in sinks])
    (out / "scenario.json").write_text(_scenario_json(p), encoding="utf-8")
    (out / "orbwatch.toml").write_text(config_text(s), encoding="utf-8")
    return result


def _release(
    sinks: list[Output],
    held: Events,
    kind: str,
    horizon: float,
    labels: _Labels,
    workers: ThreadPoolExecutor,
) -> Events:
    """Hand every event before ``horizon`` to the sinks of its kind; return the ones kept."""
    if not len(held):
        return held
    now = held["ts"] < horizon
    ready, kept = held.take(now), held.take(~now)
    key = ready["sensor"] if kind == "flows" else ready["service"]
    mine = [(i, o) for i, o in enumerate(sinks) if o.kind == kind]
    jobs = [workers.submit(o.sink.add, ready.take(np.isin(key, o.codes)), horizon) for _, o in mine]
    for (i, _), job in zip(mine, jobs, strict=True):
        labels.record(i, job.result())
    return kept


def simulate(
    s: Scenario, out: Path, step: Callable[[str], None] | None = None, chunk_days: int = 1
) -> Result:
    """Plan ``s`` and stream its files to ``out``; the result says what it cost."""
    wall0, cpu0 = time.monotonic(), _cpu()
    result = write(plan(s), out, step, chunk_days)
    result.usage = Usage.since(wall0, cpu0)
    return result


def _write_labels(p: Plan, path: Path, labels: _Labels, names: list[str]) -> int:
    """Entity rows (one per entity and phase), then one row per line a campaign event wrote."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")
    out.writerow(LABEL_COLUMNS)
    for e in p.truth.entities:
        out.writerow(
            [
                "entity",
                e["entity_type"],
                e["value"],
                e["phase"],
                e["technique"],
                _iso(np.array([e["first"]]))[0].as_py(),
                _iso(np.array([e["last"]]))[0].as_py(),
                "",
                "",
            ]
        )
    phase_text = io.StringIO()
    csv.writer(phase_text, lineterminator="\n").writerows(
        [[name, technique] for name, technique in PHASES.values()]
    )
    phase_cells = phase_text.getvalue().splitlines()
    with path.open("wb") as handle:
        handle.write(text.getvalue().encode())
        if labels.found:
            file = np.concatenate([np.full(len(x[1]), x[0]) for x in labels.found])
            at = np.concatenate([x[1] for x in labels.found])
            offset = np.concatenate([x[2] for x in labels.found])
            order = np.lexsort((offset, file))
            file, at, offset = file[order], at[order], offset[order]
            when = _iso(labels.ts[at])
            rows = join(
                "event,,,",
                pick(phase_cells, labels.phase[at].astype(np.int64)),
                ",",
                when,
                ",",
                when,
                ",",
                pick(names, file),
                ",",
                num(offset),
            )
            write_buffer(handle, rows)
    return len(p.truth.entities)


def _iso(ts: npt.NDArray[np.float64]) -> pa.Array:
    """ISO 8601 UTC with microseconds, as ``labels.csv`` holds times."""
    micros = np.round((ts - np.floor(ts)) * 1e6).astype(np.int64)
    carry = micros >= 1_000_000
    secs = np.floor(ts) + carry
    micros = np.where(carry, 0, micros)
    frac = pa.array(micros).cast(pa.string())
    return join(
        stamp(secs, "%Y-%m-%dT%H:%M:%S"), ".", pc.utf8_lpad(frac, width=6, padding="0"), "Z"
    )


def _scenario_json(world: Plan) -> str:
    s, nodes, truth = world.scenario, world.pool, world.truth
    sets = sorted(set(nodes.iset.tolist()))
    data = {
        "scenario": s.to_dict(),
        "victim_user": world.login_names[truth.victim_user] if truth.victim_user >= 0 else None,
        "victim_vpn_session_ip": ad.ip_text(np.array([truth.session_ip], np.uint32))[0].as_py(),
        "compromised_server": om.COMPROMISED_SERVER,
        "relay_router": om.SITES[2].public,
        "intrusion_sets": [
            {
                "set": i,
                "port": int(nodes.set_port[i]),
                "tls_cert_sha1": nodes.set_cert[i],
                "ssh_host_key_sha256": nodes.set_hostkey[i],
                "nodes": int((nodes.iset == i).sum()),
            }
            for i in sets
        ],
        "relay_pool": {
            "soho": int((nodes.cls == 0).sum()),
            "quad7": int((nodes.cls == 1).sum()),
            "vps": int((nodes.cls == 2).sum()),
        },
        "feed_indicators": len(truth.feed),
        "sites": [
            {
                "name": x.name,
                "city": x.city,
                "public": x.public,
                "internal": x.internal,
                "sensor": x.sensor,
                "vpn": x.vpn,
            }
            for x in om.SITES
        ],
        "address_plan": [
            {"cidr": p.cidr, "asn": p.asn, "org": p.org, "class": p.net_class, "country": p.country}
            for p in ad.PREFIXES
        ],
    }
    return json.dumps(data, indent=2, sort_keys=True)


def config_text(s: Scenario) -> str:
    """The orbwatch.toml that describes the simulated organisation."""
    publics = ["4.78.20.0/24", "4.78.21.0/24", "4.78.22.0/24", "217.230.40.0/24"]
    assets = [
        ("hq-vpn", [om.HQ.public, "10.1.0.1"], "vpn-gateway"),
        ("munich-globalprotect", [om.SITES[3].public], "vpn-gateway"),
        ("austin-fortigate", [om.SITES[1].public], "firewall"),
        ("denver-branch-router", [om.SITES[2].public, "10.3.0.1"], "router"),
        ("ssh-bastion", [om.BASTION_PUBLIC, om.BASTION_INTERNAL], "remote-access"),
        ("remote-worker-vpn-pool", [om.VPN_POOL_HQ], "soho-subnet"),
        ("camera-vlan", ["10.1.50.0/24"], "iot-subnet"),
    ]
    lines = [
        'organisation = "Simulated Manufacturing Inc"',
        f"internal_networks = {json.dumps(['10.0.0.0/8', *publics])}",
        f"home_countries = {json.dumps(sorted(set(s.campaign.victim_countries)))}",
        "",
    ]
    for name, addrs, role in assets:
        lines += [
            "[[edge_assets]]",
            f'name = "{name}"',
            f"addresses = {json.dumps(addrs)}",
            f'role = "{role}"',
            "",
        ]
    lines += ["[remote_access]", "mfa_required = true", "machine_certificate_required = true", ""]
    return "\n".join(lines)
