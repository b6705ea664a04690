"""``orbwatch demo``: a small simulated organisation under a covert-network campaign, end to end.

The organisation (HQ workstations, servers, a VPN gateway, a camera VLAN) produces two days of
ordinary traffic: SaaS and CDN sessions with a working-hours rhythm, DNS, remote workers on the
VPN from residential addresses, and Internet background scanning of the edge. A covert network
of relay nodes then works against it, shaped after public reporting (see
``docs/architecture.md``): a low-and-slow spray against the VPN where each relay makes only a
few attempts, two cameras beaconing to C2 relays on TCP 7777, and one camera enrolled as a relay
itself, accepting SOCKS traffic on TCP 11288.

A threat feed written in FireHOL's netset format lists only some of the relay nodes (the rest
rotated in after the feed was published: IOC extinction), the C2 addresses, and bogon ranges
such as 10.0.0.0/8, as real aggregate feeds do. The demo writes the Zeek ``conn.log`` and the
feed to disk, then runs the same library calls as ``orbwatch ingest``, ``intel add``,
``detect`` and ``alerts`` on them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console

from orbwatch import config as config_mod
from orbwatch.alerts.store import list_alerts
from orbwatch.detect.base import DetectContext
from orbwatch.detect.run import run as run_detectors
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.enrich.intel import add_list
from orbwatch.report.terminal import table, to_json
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

START = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
DAYS = 2
# First octets of allocated, publicly routed IPv4 space used for simulated remote hosts.
PUBLIC_FIRST_OCTETS = np.array(
    [23, 31, 45, 62, 77, 81, 89, 91, 94, 103, 109, 118, 141, 176, 185, 188, 193, 195, 212, 213]
)
VPN_GATEWAY = "10.0.0.1"
ZEEK_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
ZEEK_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
]

DEMO_CONFIG = """\
organisation = "Demo Manufacturing Ltd"
internal_networks = ["10.0.0.0/8"]
home_countries = ["DE"]

[[edge_assets]]
name = "hq-vpn"
addresses = ["10.0.0.1"]
role = "vpn-gateway"

[[edge_assets]]
name = "camera-vlan"
addresses = ["10.20.0.0/24"]
role = "iot-subnet"

[remote_access]
mfa_required = true
machine_certificate_required = true
"""


def public_ips(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct simulated public IPv4 addresses, as text."""
    first = rng.choice(PUBLIC_FIRST_OCTETS, size=n * 2)
    rest = rng.integers(1, 255, size=(n * 2, 3))
    text = np.char.add(
        np.char.add(np.char.add(first.astype(str), "."), np.char.add(rest[:, 0].astype(str), ".")),
        np.char.add(np.char.add(rest[:, 1].astype(str), "."), rest[:, 2].astype(str)),
    )
    return np.unique(text)[:n]


@dataclass
class Traffic:
    """One kind of traffic of the simulated organisation, drawn as a block of Zeek rows."""

    what: str
    count: int
    src: np.ndarray  # initiators: drawn at random, or taken in turn when ``src_in_turn``
    dst: np.ndarray  # responders, drawn at random
    port: int | list[int]  # responder port, or ports to draw from
    orig: tuple[int, int]  # bytes sent by the initiator: [low, high)
    resp: tuple[int, int]  # bytes answered: [low, high); (0, 0) means never answered
    service: str = "-"
    proto: str = "tcp"
    office_hours: bool = False
    times: np.ndarray | None = None  # fixed start times (beacons) instead of random ones
    src_in_turn: bool = False


def _block(rng: np.random.Generator, kind: Traffic) -> dict[str, np.ndarray]:
    """One kind of traffic as Zeek columns (vectorised)."""
    n = kind.count
    orig = rng.integers(*kind.orig, n)
    resp = rng.integers(*kind.resp, n) if kind.resp[1] else np.zeros(n, int)
    answered = resp > 0
    return {
        "ts": _times(rng, n, kind.office_hours) if kind.times is None else kind.times,
        "id.orig_h": np.resize(kind.src, n) if kind.src_in_turn else rng.choice(kind.src, n),
        "id.orig_p": rng.integers(1024, 65535, n),
        "id.resp_h": rng.choice(kind.dst, n),
        "id.resp_p": rng.choice(kind.port, n)
        if isinstance(kind.port, list)
        else np.full(n, kind.port),
        "proto": np.full(n, kind.proto),
        "service": np.full(n, kind.service),
        "duration": np.round(rng.exponential(20, n), 6),
        "orig_bytes": orig,
        "resp_bytes": resp,
        "conn_state": np.where(answered, "SF", "S0"),
        "orig_pkts": np.maximum(1, orig // 500),
        "resp_pkts": resp // 500 + answered,
    }


def _times(rng: np.random.Generator, n: int, office_hours: bool) -> np.ndarray:
    day = rng.integers(0, DAYS, n)
    hour = np.clip(rng.normal(13, 2.5, n), 7, 19) if office_hours else rng.uniform(0, 24, n)
    return START.timestamp() + day * 86400 + hour * 3600


def simulate(seed: int) -> tuple[pa.Table, dict[str, list[str]]]:
    """The organisation's conn.log rows and the ground truth of the campaign."""
    rng = np.random.default_rng(seed)
    workstations = np.array([f"10.10.1.{i}" for i in range(10, 70)])
    cameras = np.array([f"10.20.0.{i}" for i in range(10, 20)])
    saas, scanners, homes = public_ips(rng, 150), public_ips(rng, 400), public_ips(rng, 40)
    relays, c2 = public_ips(rng, 60), public_ips(rng, 3)
    gateway, dns, relay_camera = np.array([VPN_GATEWAY]), np.array(["10.10.2.53"]), cameras[5:6]
    beacons = DAYS * 288 * 2  # two cameras, one beacon every ~5 minutes each
    kinds = [
        Traffic(
            "SaaS and CDN sessions",
            12_000,
            workstations,
            saas,
            443,
            (500, 20_000),
            (2_000, 500_000),
            "ssl",
            office_hours=True,
        ),
        Traffic(
            "DNS",
            6_000,
            workstations,
            dns,
            53,
            (40, 80),
            (60, 300),
            "dns",
            "udp",
            office_hours=True,
        ),
        Traffic(
            "remote workers on the VPN",
            600,
            homes,
            gateway,
            443,
            (50_000, 5_000_000),
            (100_000, 9_000_000),
            "ssl",
            office_hours=True,
        ),
        Traffic(
            "background scanning of the edge",
            3_000,
            scanners,
            gateway,
            [22, 23, 443, 8080, 8443],
            (0, 1),
            (0, 0),
        ),
        Traffic(
            "password spray through relays: few attempts per relay",
            180,
            relays,
            gateway,
            443,
            (1_500, 2_500),
            (3_000, 5_000),
            "ssl",
        ),
        Traffic(
            "cameras beaconing to C2 relays",
            beacons,
            cameras[:2],
            c2,
            7777,
            (200, 260),
            (90, 120),
            src_in_turn=True,
            times=START.timestamp()
            + np.arange(beacons // 2).repeat(2) * 300
            + rng.normal(0, 4, beacons),
        ),
        Traffic(
            "relays using an enrolled camera's SOCKS port",
            400,
            relays,
            relay_camera,
            11288,
            (2_000, 60_000),
            (2_000, 60_000),
        ),
    ]
    blocks = [_block(rng, kind) for kind in kinds]
    rows = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    order = np.argsort(rows["ts"], kind="stable")
    rows = {k: v[order] for k, v in rows.items()}
    truth = {
        "relays": relays.tolist(),
        "c2": c2.tolist(),
        "compromised": [*cameras[:2].tolist(), str(cameras[5])],
    }
    return _zeek_table(rng, rows), truth


def _zeek_table(rng: np.random.Generator, rows: dict[str, np.ndarray]) -> pa.Table:
    n = len(rows["ts"])
    uid = np.char.add("C", rng.integers(10**14, 10**15, n).astype(str))
    columns = {
        **rows,
        "uid": uid,
        "local_orig": np.full(n, "-"),
        "local_resp": np.full(n, "-"),
        "missed_bytes": np.zeros(n, int),
        "history": np.where(rows["conn_state"] == "SF", "ShADadFf", "S"),
        "orig_ip_bytes": rows["orig_bytes"] + 40 * rows["orig_pkts"],
        "resp_ip_bytes": rows["resp_bytes"] + 40 * rows["resp_pkts"],
        "tunnel_parents": np.full(n, "-"),
    }
    columns["ts"] = np.char.mod("%.6f", columns["ts"])
    return pa.table({f: pa.array(np.asarray(columns[f]).astype(str)) for f in ZEEK_FIELDS})


def write_conn_log(table: pa.Table, path: Path) -> None:
    """Write rows as a Zeek TSV conn.log with its header lines."""
    header = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        f"#open\t{START:%Y-%m-%d-%H-%M-%S}",
        "#fields\t" + "\t".join(ZEEK_FIELDS),
        "#types\t" + "\t".join(ZEEK_TYPES),
    ]
    path.write_text("\n".join(header) + "\n", encoding="utf-8")
    with path.open("ab") as handle:
        pacsv.write_csv(
            table,
            handle,
            pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"),
        )


def write_feed(truth: dict[str, list[str]], path: Path, seed: int) -> None:
    """A FireHOL-style netset as published before the campaign: only some relays are listed."""
    rng = np.random.default_rng(seed + 1)
    relays = truth["relays"]
    listed = sorted(rng.choice(relays, size=len(relays) // 4, replace=False).tolist())
    lines = [
        "#",
        "# demo_orb_feed",
        "#",
        "# ipv4 hash:net ipset",
        "#",
        "# Simulated covert-network feed: relay nodes and C2 seen by a vendor,",
        "# aggregated with bogon ranges as public aggregate feeds are.",
        "#",
        "0.0.0.0/8",
        "10.0.0.0/8",
        "192.168.0.0/16",
        *truth["c2"],
        *listed,
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_demo(out_dir: Path, *, seed: int, console: Console) -> None:
    """Generate the demo data and run ingest, intel add, detect and alerts on it."""
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    conn_log, feed, cfg_path = (
        data / "conn.log",
        data / "orb-feed.netset",
        out_dir / "orbwatch.toml",
    )
    workspace = out_dir / "orbwatch.duckdb"
    for stale in (workspace, workspace.with_suffix(".duckdb.wal")):
        stale.unlink(missing_ok=True)
    rows, truth = simulate(seed)
    write_conn_log(rows, conn_log)
    write_feed(truth, feed, seed)
    cfg_path.write_text(DEMO_CONFIG, encoding="utf-8")
    (out_dir / "ground-truth.json").write_text(json.dumps(truth, indent=2), encoding="utf-8")
    cfg = config_mod.load(cfg_path)
    with Workspace.open(workspace) as ws:
        loaded = Ingestor(ws, cfg).ingest(str(conn_log))
        intel = add_list(ws, str(feed), "demo_orb_feed")
        runs = run_detectors(ws, DetectContext(cfg, DuckDBEngine(ws)))
        alerts = list_alerts(ws, limit=1000)
    console.print(
        f"simulated {loaded.rows:,} flows ({loaded.quarantined} quarantined); "
        f"feed of {intel.indicators} indicators; {sum(r.alerts for r in runs)} alerts"
    )
    console.print(
        table(
            "alerts",
            ["id", "severity", "title", "events"],
            [(a["alert_id"], a["severity"], a["title"], a["event_count"]) for a in alerts[:15]],
        )
    )
    (out_dir / "alerts.json").write_text(to_json(alerts), encoding="utf-8")
    caught = {a["entity"] for a in alerts}
    console.print(
        f"relay nodes in the campaign: {len(truth['relays'])}, caught by the feed: "
        f"{len(caught & set(truth['relays']))} (the rest rotated in after it was published)"
    )
    console.print(
        f"results: {out_dir / 'alerts.json'}  workspace: {workspace}  "
        f"try: orbwatch -w {workspace} alerts show {alerts[0]['alert_id'] if alerts else 'ID'}"
    )
