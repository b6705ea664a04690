"""Detection at scale: enrich + baselines + every detector over ~10 million flows, on DuckDB.

Generates (numpy, seeded) an organisation's flows over 14 days: 5,000 internal hosts, 300,000
Internet peers, an edge VPN gateway, a router and a camera subnet, plus what the detectors look
for (beacons, a relaying router, an upload to a new address, scans). The flows go straight into
a workspace (the parsers are benchmarked elsewhere). A child process then runs, timed stage by
stage with its peak memory (``ru_maxrss``): enrichment, the edge map, the flow baselines and
every registered detector (``alerts_of``: engine query plus explanation); and in the same run,
as the yardstick, one bare DuckDB scan-and-group-by over the same flows (flows and bytes per
(source, destination) pair into a temporary table), and as a reference the least work
beaconing's scores need (``BEACON_FLOOR_SQL``; its memory counts in the peak). Each stage is
reported in wall-clock seconds and in CPU seconds of the process (all threads): on a shared
machine the wall-clock time depends on what else runs, the CPU time mostly on the work done.

    .venv/bin/python bench/detect.py                 # 10 million flows
    .venv/bin/python bench/detect.py -n 1000000      # a quick run
    .venv/bin/python bench/detect.py --workspace FILE  # keep the workspace, reuse it later

Prints a Markdown table (the one in docs/performance.md, "Detection").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from orbwatch.config import Config
from orbwatch.sources.ingest import normalise_rows
from orbwatch.store.workspace import Workspace

START = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
DAYS = 14
CONFIG = {
    "internal_networks": ["10.0.0.0/8"],
    "edge_assets": [
        {"name": "hq-vpn", "addresses": ["10.0.0.1"], "role": "vpn-gateway"},
        {"name": "branch-router", "addresses": ["10.0.0.2"], "role": "router"},
        {"name": "cameras", "addresses": ["10.50.0.0/24"], "role": "iot-subnet"},
    ],
}
CHUNK = 1_000_000
DUCKDB_SETTINGS = ("SET threads = 2", "SET memory_limit = '3GB'")
#: Tables the suite writes; emptied first so that every run does the full work.
DERIVED = ("ip_info", "assets", "edge_hours", "peer_contacts", "edge_baselines")


def _pool(
    rng: np.random.Generator, n_internal: int, n_external: int
) -> tuple[list[str], list[str]]:
    """Address texts (one Python string per distinct address, not per flow)."""
    internal = [
        f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(65536, 65536 + n_internal)
    ]
    values = rng.integers(16 << 24, 223 << 24, n_external)
    values = values[((values >> 24) != 10) & ((values >> 24) != 127)]
    external = [f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}" for v in values.tolist()]
    return internal, external


def _background(
    rng: np.random.Generator, n: int, internal: list[str], external: list[str], edge: list[str]
) -> dict[str, np.ndarray]:
    """Ordinary traffic: 70% outbound (Zipf-like peers), 25% inbound to the edge, 5% internal."""
    kind = rng.choice(3, n, p=[0.70, 0.25, 0.05])
    host = np.minimum(rng.zipf(1.3, n) - 1, len(internal) - 1)
    peer = np.minimum(rng.zipf(1.2, n) - 1, len(external) - 1)
    other = rng.integers(0, len(internal), n)
    edge_pick = rng.choice(len(edge), n, p=[0.6, 0.2, *([0.2 / (len(edge) - 2)] * (len(edge) - 2))])
    names = np.array(internal + external + edge, dtype=object)
    ext0, edge0 = len(internal), len(internal) + len(external)
    src = np.where(kind == 1, ext0 + peer, host)
    dst = np.select([kind == 0, kind == 1], [ext0 + peer, edge0 + edge_pick], other)
    out_ports = rng.choice([443, 80, 53, 123, 8080, 993], n, p=[0.7, 0.15, 0.08, 0.03, 0.02, 0.02])
    in_ports = rng.choice([443, 500, 4500, 22], n, p=[0.6, 0.2, 0.15, 0.05])
    return {
        "t": rng.uniform(0, DAYS * 86400, n),
        "src": names[src],
        "dst": names[dst],
        "dport": np.where(kind == 1, in_ports, out_ports),
        "sbytes": rng.lognormal(7, 1.5, n).astype(np.int64),
        "dbytes": rng.lognormal(8.5, 2.0, n).astype(np.int64),
    }


def _planted(rng: np.random.Generator, external: list[str]) -> dict[str, np.ndarray]:
    """What the detectors should find: beacons, a relay, an upload, scans."""
    parts: list[dict[str, Any]] = []
    for i in range(20):  # 20 hosts beaconing every 300 s with jitter for the whole period
        t = np.arange(0, DAYS * 86400, 300.0) + rng.normal(0, 5, DAYS * 288)
        parts.append(
            {
                "t": t,
                "src": f"10.9.0.{i + 1}",
                "dst": f"45.{i}.7.7",
                "dport": 8443,
                "sbytes": rng.normal(400, 10, len(t)).astype(np.int64),
                "dbytes": 300,
            }
        )
    t = np.sort(rng.uniform((DAYS - 4) * 86400, DAYS * 86400, 20_000))
    sources = rng.choice(external[:50_000], len(t))
    sizes = rng.integers(500, 5000, len(t))
    parts.append(
        {
            "t": t,
            "src": sources,
            "dst": "10.0.0.2",
            "dport": 7777,
            "sbytes": sizes,
            "dbytes": sizes * 10,
        }
    )
    parts.append(
        {
            "t": t + 0.5,
            "src": "10.0.0.2",
            "dst": "98.51.100.7",
            "dport": 443,
            "sbytes": sizes,
            "dbytes": sizes * 10,
        }
    )
    parts.append(
        {
            "t": np.array([(DAYS - 1) * 86400 + 3600.0]),
            "src": "10.9.0.1",
            "dst": "81.2.2.2",
            "dport": 443,
            "sbytes": 300_000_000,
            "dbytes": 10_000,
        }
    )
    for s in range(5):
        parts.append(
            {
                "t": (DAYS - 2) * 86400 + s * 3600 + np.arange(500.0),
                "src": f"66.6.6.{s}",
                "dst": "10.0.0.1",
                "dport": np.arange(1, 501),
                "sbytes": 60,
                "dbytes": 0,
            }
        )
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("t", "src", "dst", "dport", "sbytes", "dbytes")
    }
    for part in parts:
        n = len(part["t"])
        for k in out:
            out[k].append(
                np.broadcast_to(
                    np.asarray(part[k], dtype=object if k in ("src", "dst") else None), n
                )
            )
    return {k: np.concatenate(v) for k, v in out.items()}


def _table(cols: dict[str, np.ndarray], config: Config) -> pa.Table:
    n = len(cols["t"])
    ts = pa.array((START.timestamp() * 1e6 + cols["t"] * 1e6).astype("int64"), pa.int64())
    ts = ts.cast(pa.timestamp("us", tz="UTC"))
    answered = cols["dbytes"] > 0
    data = {
        "ts_start": ts,
        "ts_end": ts,
        "src_ip": pa.array(cols["src"], pa.string()),
        "src_port": pa.array(np.full(n, 40000), pa.int32()),
        "dst_ip": pa.array(cols["dst"], pa.string()),
        "dst_port": pa.array(cols["dport"].astype("int32"), pa.int32()),
        "protocol": pa.array(np.full(n, "tcp", dtype=object), pa.string()),
        "src_bytes": pa.array(cols["sbytes"].astype("int64")),
        "dst_bytes": pa.array(cols["dbytes"].astype("int64")),
        "src_packets": pa.array(np.full(n, 4, dtype="int64")),
        "dst_packets": pa.array(np.where(answered, 4, 0).astype("int64")),
        "action": pa.array(np.full(n, "allow", dtype=object), pa.string()),
        "source_file": pa.array(np.full(n, "bench", dtype=object), pa.string()),
    }
    return normalise_rows(pa.table(data), config.internal_ranges())


def generate(path: Path, n: int, seed: int) -> int:
    """Write the workspace; returns the number of flows."""
    config = Config.model_validate(CONFIG)
    rng = np.random.default_rng(seed)
    internal, external = _pool(rng, 5000, 300_000)
    edge = ["10.0.0.1", "10.0.0.2", *[f"10.50.0.{i}" for i in range(1, 201)]]
    planted = _planted(rng, external)
    total = 0
    with Workspace.open(path) as ws:
        remaining = n - len(planted["t"])
        ws.append("flows", _table(planted, config))
        total += len(planted["t"])
        while remaining > 0:
            size = min(CHUNK, remaining)
            ws.append("flows", _table(_background(rng, size, internal, external, edge), config))
            remaining -= size
            total += size
        ws.con.execute("CHECKPOINT")
    return total


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (DuckDB's workers included), user plus system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(stages: list[dict[str, object]], name: str, work: object) -> object:
    """Run ``work`` and record its wall-clock and CPU seconds.

    The CPU seconds say how much work a stage did even when other jobs share the two cores
    (then the wall-clock time grows, the CPU time much less).
    """
    started, cpu = time.perf_counter(), _cpu_seconds()
    result = work()  # type: ignore[operator]
    stages.append(
        {
            "stage": name,
            "seconds": time.perf_counter() - started,
            "cpu_seconds": _cpu_seconds() - cpu,
        }
    )
    return result


#: A second reference: the least work beaconing's timing and size scores need, as one query
#: written by hand for DuckDB (RITA's gate, each outbound pair and day's gaps through a window,
#: the quartiles and MADs of gaps and sizes; no histogram, prevalence or report). It shows how
#: much of the suite's budget one detector's statistics take, however they are written.
BEACON_FLOOR_SQL = """
WITH gaps AS (
  SELECT src_key, dst_key, day, size, t - lag(t) OVER pair AS gap,
         count(*) OVER (pair ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n
  FROM (SELECT src_key, dst_key, epoch(ts_start)::BIGINT AS t,
               epoch(ts_start)::BIGINT // 86400 AS day,
               (coalesce(src_bytes, 0) + coalesce(dst_bytes, 0))::DOUBLE AS size
        FROM flows WHERE direction = 'outbound')
  WINDOW pair AS (PARTITION BY src_key, dst_key, day ORDER BY t)
), gated AS (SELECT * FROM gaps WHERE n >= 4),
quartiles AS (
  SELECT src_key, dst_key, day,
         quantile_cont(gap, [0.25, 0.5, 0.75]) FILTER (WHERE gap > 0) AS ts_q,
         quantile_cont(size, [0.25, 0.5, 0.75]) AS ds_q
  FROM gated GROUP BY ALL
)
SELECT * FROM quartiles JOIN (
  SELECT g.src_key, g.dst_key, g.day,
         median(abs(g.gap - q.ts_q[2])) FILTER (WHERE g.gap > 0) AS ts_mad,
         median(abs(g.size - q.ds_q[2])) AS ds_mad
  FROM gated g JOIN quartiles q USING (src_key, dst_key, day)
  GROUP BY g.src_key, g.dst_key, g.day
) USING (src_key, dst_key, day)
"""


def run_suite(path: Path) -> dict[str, object]:
    """Child process: every stage on the workspace, then the yardstick; peak memory at the end."""
    from orbwatch.baseline.assets import update_assets
    from orbwatch.baseline.flows import update_flow_baselines
    from orbwatch.detect.base import DetectContext
    from orbwatch.detect.registry import detectors
    from orbwatch.detect.run import alerts_of
    from orbwatch.engines.duckdb_engine import DuckDBEngine

    config = Config.model_validate(CONFIG)
    stages: list[dict[str, object]] = []
    alerts: dict[str, int] = {}
    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    with Workspace.open(path) as ws:
        for setting in DUCKDB_SETTINGS:
            ws.con.execute(setting)
        for table in DERIVED:  # a reused workspace starts from scratch: full, not incremental
            ws.con.execute(f'DELETE FROM "{table}"')
        ws.con.execute("DELETE FROM orbwatch_meta WHERE key = 'flow_baselines_at'")
        try:
            from orbwatch.enrich.geo import enrich_workspace

            _timed(stages, "enrich", lambda: enrich_workspace(ws, config))
        except Exception as exc:  # enrichment data missing on this machine: say so, go on
            skipped = f"enrich (skipped: {type(exc).__name__})"
            stages.append({"stage": skipped, "seconds": 0.0, "cpu_seconds": 0.0})
        _timed(stages, "edge map (orbwatch assets)", lambda: update_assets(ws, config))
        _timed(stages, "flow baselines", lambda: update_flow_baselines(ws, config))
        ctx = DetectContext(config, DuckDBEngine(ws))
        for det_id, cls in sorted(detectors().items()):
            raised = _timed(stages, f"detect {det_id}", lambda c=cls: alerts_of(c(), ctx))
            alerts[det_id] = raised.num_rows  # type: ignore[attr-defined]
        started, cpu = time.perf_counter(), _cpu_seconds()
        ws.con.execute(
            "CREATE TEMP TABLE _yardstick AS SELECT src_key, dst_key, count(*) AS flows, "
            "sum(src_bytes) AS sent, sum(dst_bytes) AS received FROM flows GROUP BY ALL"
        )
        yardstick, yardstick_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        started, cpu = time.perf_counter(), _cpu_seconds()
        ws.con.execute(f"CREATE TEMP TABLE _beacon_floor AS {BEACON_FLOOR_SQL}")
        beacon_floor, beacon_floor_cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        flows = ws.count("flows")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "stages": stages,
        "alerts": alerts,
        "yardstick": yardstick,
        "yardstick_cpu": yardstick_cpu,
        "beacon_floor": beacon_floor,
        "beacon_floor_cpu": beacon_floor_cpu,
        "flows": flows,
        "peak_bytes": peak,
        "load": [load_before, os.getloadavg()[0]],
    }


def json_rows(result: dict[str, object]) -> list[dict[str, object]]:
    """The suite's result as rows for ``--json`` (``bench/run_all.py``'s format)."""
    stages = result["stages"]
    assert isinstance(stages, list)
    stage, flows = "detect", result["flows"]
    rows: list[dict[str, object]] = [
        {"stage": stage, "side": "orbwatch", "name": "enrich + baselines + every detector",
         "rows": flows, "seconds": sum(float(s["seconds"]) for s in stages)},
        {"stage": stage, "side": "yardstick", "name": "bare DuckDB scan-and-group-by",
         "rows": flows, "seconds": result["yardstick"]},
        {"stage": stage, "side": "detail", "name": "beacon statistics floor (hand-written SQL)",
         "rows": flows, "seconds": result["beacon_floor"]},
    ]  # fmt: skip
    rows += [
        {"stage": stage, "side": "detail", "name": s["stage"], "rows": flows,
         "seconds": s["seconds"]}
        for s in stages
    ]  # fmt: skip
    return rows


def report(result: dict[str, object]) -> str:
    stages = result["stages"]
    assert isinstance(stages, list)
    yard = float(result["yardstick"])  # type: ignore[arg-type]
    load = result["load"]
    assert isinstance(load, list)
    alerts = result["alerts"]
    assert isinstance(alerts, dict)
    yard_cpu = float(result["yardstick_cpu"])  # type: ignore[arg-type]
    lines = [
        f"{result['flows']:,} flows; peak memory {int(result['peak_bytes']) / 2**30:.2f} GiB "  # type: ignore[call-overload]
        f"(whole suite, one process); bare DuckDB scan-and-group-by {yard:.2f} s; "
        f"1-minute load average {load[0]:.1f} before, {load[1]:.1f} after",
        "",
        "| stage | seconds | x bare scan | CPU seconds | alerts |",
        "|---|---:|---:|---:|---:|",
    ]
    total = total_cpu = 0.0
    for s in stages:
        seconds, cpu = float(s["seconds"]), float(s["cpu_seconds"])
        total += seconds
        total_cpu += cpu
        name = str(s["stage"])
        count = alerts.get(name.removeprefix("detect "), "")
        lines.append(f"| {name} | {seconds:.2f} | {seconds / yard:.1f} | {cpu:.2f} | {count} |")
    lines.append(
        f"| **whole suite** | **{total:.2f}** | **{total / yard:.1f}** | **{total_cpu:.2f}** | |"
    )
    lines.append(f"| bare scan-and-group-by (yardstick) | {yard:.2f} | 1.0 | {yard_cpu:.2f} | |")
    floor, floor_cpu = float(result["beacon_floor"]), float(result["beacon_floor_cpu"])  # type: ignore[arg-type]
    lines.append(
        f"| beacon statistics floor (reference) | {floor:.2f} | {floor / yard:.1f} "
        f"| {floor_cpu:.2f} | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--flows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workspace", type=Path, help="Reuse (or keep) this workspace file.")
    parser.add_argument("--suite", type=Path, help=argparse.SUPPRESS)  # the child's entry
    parser.add_argument("--json", type=Path, help="also write the rows here (bench/run_all.py)")
    args = parser.parse_args()
    if args.suite:
        print(json.dumps(run_suite(args.suite)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.workspace or Path(tmp) / "bench.duckdb"
        if not path.exists():
            started = time.perf_counter()
            n = generate(path, args.flows, args.seed)
            print(
                f"generated {n:,} flows in {time.perf_counter() - started:.1f} s", file=sys.stderr
            )
        child = subprocess.run(
            [sys.executable, __file__, "--suite", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(report(result))
        if args.json is not None:
            args.json.write_text(json.dumps({"bench": "detect", "rows": json_rows(result)}))


if __name__ == "__main__":
    main()
