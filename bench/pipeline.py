"""End to end: the demo pipeline (simulate -> ingest -> analyse) at a chosen size.

Why: the per-stage benchmarks time one mechanism each on generated input; this one times what a
user runs, on the simulator's files in their real formats: every file ingested with its format
detected, the threat feed loaded, then ``orbwatch.pipeline.analyse`` (enrichment, baselines,
every detector, campaigns) on the embedded DuckDB engine.

The simulation uses the density of ``orbwatch simulate --benchmark`` (352 flows and 20 sign-ins
per user and working day) with ``--users`` and ``--days`` chosen here, so the size grows with
the number of users. The two steps are separate commands, so that each one's peak memory is its
own (``bench/run_all.py`` runs them as two processes):

    .venv/bin/python bench/pipeline.py simulate --users 40 --days 7 --out sim/
    .venv/bin/python bench/pipeline.py analyse --data sim/

There is no yardstick: no other tool takes the same files through the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

NO_YARDSTICK = "no other tool runs the same pipeline (each stage's yardstick is in its row)"


def run_simulation(users: int, days: int, seed: int, out: Path) -> list[dict[str, Any]]:
    """Write the simulation to ``out``; one row: records written, seconds."""
    from orbwatch.simulate.run import simulate
    from orbwatch.simulate.scenario import benchmark

    scenario = benchmark(seed)
    scenario.org.users, scenario.org.days = users, days
    started = time.perf_counter()
    written = simulate(scenario, out)
    seconds = time.perf_counter() - started
    print(f"simulated {written.flows:,} flow records and {written.logins:,} login events "
          f"({users} users, {days} days) in {seconds:.1f} s")  # fmt: skip
    return [
        {"stage": "simulate", "side": "orbwatch", "name": "orbwatch simulate (benchmark density)",
         "rows": written.flows + written.logins, "seconds": seconds},
        {"stage": "simulate", "side": "yardstick", "name": "none", "rows": 0, "seconds": 0.0,
         "missing": "the simulator writes test input; nothing to compare it with"},
    ]  # fmt: skip


def run_analysis(data: Path, workspace: Path) -> list[dict[str, Any]]:
    """Ingest every file of the simulation into a fresh workspace, then analyse it."""
    from orbwatch import config as config_mod
    from orbwatch.evaluate.matrix import ingest_simulation
    from orbwatch.pipeline import analyse
    from orbwatch.store.workspace import Workspace

    workspace.unlink(missing_ok=True)
    config = config_mod.load(data / "orbwatch.toml")
    stage = "end to end (ingest + analyse)"
    with Workspace.open(workspace) as ws:
        started = time.perf_counter()
        results = ingest_simulation(ws, data)
        ingest = time.perf_counter() - started
        analysis = analyse(ws, config)
        total = time.perf_counter() - started
        alerts = ws.count("alerts")
    rows = sum(r.rows for r in results)
    print(f"ingested {rows:,} records from {len(results)} files in {ingest:.1f} s; analysed in "
          f"{total - ingest:.1f} s ({alerts:,} alerts)")  # fmt: skip
    steps = {"ingest": ingest, **analysis.seconds}
    return [
        {"stage": stage, "side": "orbwatch", "name": "ingest + analyse", "rows": rows,
         "seconds": total, "alerts": alerts},
        *({"stage": stage, "side": "detail", "name": step, "rows": rows, "seconds": seconds}
          for step, seconds in steps.items()),
        {"stage": stage, "side": "yardstick", "name": "none", "rows": 0, "seconds": 0.0,
         "missing": NO_YARDSTICK},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    steps = parser.add_subparsers(dest="step", required=True)
    sim = steps.add_parser("simulate", help="write the simulation")
    sim.add_argument("--users", type=int, default=40)
    sim.add_argument("--days", type=int, default=7)
    sim.add_argument("--seed", type=int, default=7)
    sim.add_argument("--out", type=Path, required=True, help="folder for the files")
    ana = steps.add_parser("analyse", help="ingest a simulation's files and analyse them")
    ana.add_argument("--data", type=Path, required=True, help="a folder `simulate` wrote")
    ana.add_argument("--workspace", type=Path, help="default: next to the data, .duckdb")
    for sub in (sim, ana):
        sub.add_argument("--json", type=Path, help="also write the rows here (bench/run_all.py)")
    args = parser.parse_args()
    load = os.getloadavg()
    if args.step == "simulate":
        rows = run_simulation(args.users, args.days, args.seed, args.out)
    else:
        workspace = args.workspace or args.data.with_suffix(".duckdb")
        rows = run_analysis(args.data, workspace)
    print("load average (1, 5, 15 min) before " + ", ".join(f"{x:.1f}" for x in load)
          + ", after " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({"bench": "pipeline", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
