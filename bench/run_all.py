"""Every benchmark in one run: one table, each stage against its yardstick in the same run.

Why: a release should show how fast orbwatch is next to what a user would otherwise run, and a
regression should show up as a diff. This script runs each benchmark of ``bench/`` as its own
process, reads the rows it writes (``--json``), and prints one table: stage, rows, seconds,
rows/s, peak memory, the yardstick's rows/s and the ratio of the two rates (above 1: orbwatch
is faster). The same table goes to a JSON file (default ``bench/results.json``) that
``--compare OLD.json`` diffs against a later run.

Stages and yardsticks (each measured in the same run, on the same input):

* ``flow decode``: NetFlow v9 + IPFIX messages to ``flows`` rows; the ``netflow`` package;
* ``log parse``: six syslog firewall formats; a per-line ``re`` parser;
* ``enrich``: address lookups (country, ASN, coordinates); a per-address ``maxminddb`` loop;
* ``detect``: enrichment, baselines and every detector on DuckDB; a bare DuckDB scan and
  group-by over the same flows;
* ``simulate`` and ``end to end (ingest + analyse)``: the demo pipeline on the simulator's
  files; no yardstick (the table says so).

Peak memory is each process's own: every measured command runs as a child of this (small)
process and its peak resident set comes from ``os.wait4`` (the child and its descendants), or
from the row itself when the benchmark measured orbwatch in an isolated process. Input that
takes long to generate (the detection workspace) is made by a separate, unmeasured process.

``--scales 1,4,16`` (the default) runs each stage at 1x, 4x and 16x of its base size, stage by
stage, and reports the slope of log(seconds) against log(rows): 1.0 is linear, below 1 means
fixed costs still dominate, above 1 means cost grows faster than the input. ``--quick`` is a
smoke run (one small scale, about a minute); ``--stages`` picks stages.

    .venv/bin/python bench/run_all.py                     # 1x, 4x, 16x: 7-15 min on 2 cores
    .venv/bin/python bench/run_all.py --quick --json /tmp/quick.json
    .venv/bin/python bench/run_all.py --compare bench/results-before.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# This process stays free of numpy, Arrow, DuckDB and orbwatch: a child's peak memory as the
# kernel reports it starts from its parent's peak (carried over at fork and exec), so a large
# parent would inflate every stage's figure.

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
#: Makes the detection workspace in its own process (so its memory is not the stage's).
DETECT_GENERATE = (
    "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import detect; "
    "detect.generate(Path(sys.argv[2]), int(sys.argv[3]), 7)"
)


@dataclass(frozen=True)
class Step:
    """One command of a stage; ``json`` is None for preparation, which is not measured."""

    argv: list[str]
    json: Path | None


@dataclass(frozen=True)
class Stage:
    """A benchmark: its sizes at scale 1 (full and ``--quick``) and the commands for a size."""

    key: str
    titles: tuple[str, ...]  # the stage names its rows carry, in table order
    unit: str
    base: int
    quick: int
    steps: Callable[[int, Path, bool], list[Step]]


def _flows(n: int, tmp: Path, quick: bool) -> list[Step]:
    out = tmp / "flows.json"
    return [Step([PYTHON, str(BENCH / "flows_decode.py"), "--flows", str(n),
                  "--skip-collector", "--json", str(out)], out)]  # fmt: skip


def _logs(n: int, tmp: Path, quick: bool) -> list[Step]:
    out = tmp / "logs.json"
    argv = [PYTHON, str(BENCH / "logs_parse.py"), "--lines", str(n), "--baseline-lines", str(n),
            "--memory-lines", "", "--json", str(out)]  # fmt: skip
    if quick:
        argv += ["--formats", "netfilter_log,fortigate_traffic"]
    return [Step(argv, out)]


#: The yardstick keeps a Python string and a dict per address: about 300 bytes each.
ENRICH_YARDSTICK_MAX = 2_000_000


def _enrich(n: int, tmp: Path, quick: bool) -> list[Step]:
    """Two processes, so that the yardstick's strings are not counted in orbwatch's peak."""
    script, sample = str(BENCH / "enrich.py"), str(min(n, ENRICH_YARDSTICK_MAX))
    ours, theirs = tmp / "enrich-orbwatch.json", tmp / "enrich-yardstick.json"
    return [
        Step([PYTHON, script, "-n", str(n), "--side", "orbwatch", "--json", str(ours)], ours),
        Step([PYTHON, script, "-n", str(n), "--side", "yardstick", "--baseline-sample", sample,
              "--json", str(theirs)], theirs),
    ]  # fmt: skip


def _detect(n: int, tmp: Path, quick: bool) -> list[Step]:
    workspace, out = tmp / "detect.duckdb", tmp / "detect.json"
    return [
        Step([PYTHON, "-c", DETECT_GENERATE, str(BENCH), str(workspace), str(n)], None),
        Step([PYTHON, str(BENCH / "detect.py"), "-n", str(n), "--workspace", str(workspace),
              "--json", str(out)], out),
    ]  # fmt: skip


def _pipeline(users: int, tmp: Path, quick: bool) -> list[Step]:
    script, data = str(BENCH / "pipeline.py"), tmp / "simulation"
    days = "2" if quick else "7"
    return [
        Step([PYTHON, script, "simulate", "--users", str(users), "--days", days, "--out",
              str(data), "--json", str(tmp / "simulate.json")], tmp / "simulate.json"),
        Step([PYTHON, script, "analyse", "--data", str(data), "--json",
              str(tmp / "analyse.json")], tmp / "analyse.json"),
    ]  # fmt: skip


# Base sizes: the default run (1x, 4x, 16x of each) took 7 minutes on 2 cores shared with other
# jobs at load average 3-4; count 10-15 at 6-8.
# Detection below ~125,000 flows measures only the planted campaign of bench/detect.py.
STAGES = (
    Stage("flows", ("flow decode",), "flows per version", 400_000, 30_000, _flows),
    Stage("logs", ("log parse",), "lines per format", 30_000, 3_000, _logs),
    Stage("enrich", ("enrich",), "addresses", 1_000_000, 100_000, _enrich),
    Stage("detect", ("detect",), "flows", 375_000, 125_000, _detect),
    Stage("pipeline", ("simulate", "end to end (ingest + analyse)"), "users", 40, 5, _pipeline),
)


@dataclass
class StageResult:
    """One table row: a stage at one scale, orbwatch against its yardstick."""

    stage: str
    scale: float
    rows: int = 0
    seconds: float = 0.0
    peak_mib: float | None = None
    yardstick_rows: int = 0
    yardstick_seconds: float = 0.0
    missing: str | None = None  # why there is no ratio
    error: str | None = None  # why there is no measurement

    @property
    def rate(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds > 0 else None

    @property
    def yardstick_rate(self) -> float | None:
        if self.missing or not self.yardstick_rows or self.yardstick_seconds <= 0:
            return None
        return self.yardstick_rows / self.yardstick_seconds

    @property
    def ratio(self) -> float | None:
        """orbwatch's rows/s over the yardstick's: above 1, orbwatch is faster."""
        rate, theirs = self.rate, self.yardstick_rate
        return rate / theirs if rate is not None and theirs is not None else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "rows_per_s": self.rate,
                "yardstick_rows_per_s": self.yardstick_rate, "ratio": self.ratio}  # fmt: skip


def summarise(rows: Iterable[dict[str, Any]], scale: float) -> list[StageResult]:
    """Sum the rows of each stage: orbwatch's rows and seconds, and the yardstick's.

    A stage of several rows (six log formats, two flow versions) is measured as a whole: its
    rate is total rows over total seconds. ``detail`` rows are kept in the JSON only. A row's
    ``peak_mib`` is its own when the benchmark measured it in isolation, else its process's.
    """
    results: dict[str, StageResult] = {}
    for row in rows:
        result = results.setdefault(row["stage"], StageResult(row["stage"], scale))
        if row["side"] == "orbwatch":
            result.rows += int(row["rows"])
            result.seconds += float(row["seconds"])
            peak = row.get("peak_mib", row.get("process_peak_mib"))
            if peak is not None:
                result.peak_mib = max(result.peak_mib or 0.0, float(peak))
        elif row["side"] == "yardstick":
            if row.get("missing"):
                result.missing = str(row["missing"])
            result.yardstick_rows += int(row["rows"])
            result.yardstick_seconds += float(row["seconds"])
    for result in results.values():
        if result.missing is None and not result.yardstick_rows:
            result.missing = "the benchmark measured no yardstick"
    return list(results.values())


def slope(points: Iterable[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(seconds) against log(rows); None below two distinct sizes."""
    usable = [(math.log(r), math.log(s)) for r, s in points if r > 0 and s > 0]
    if len({x for x, _ in usable}) < 2:
        return None
    xs, ys = zip(*usable, strict=True)
    return statistics.linear_regression(xs, ys).slope


def slopes(results: Iterable[StageResult]) -> dict[str, dict[str, float | None]]:
    """Each stage's slope over all its scales, and between its two largest inputs.

    Small inputs carry fixed costs (interpreter, query planning, index builds), which pull the
    overall slope below 1; the slope between the two largest inputs is closer to how the cost
    grows from there on.
    """
    by_stage: dict[str, list[tuple[float, float]]] = {}
    for r in results:
        if r.error is None:
            by_stage.setdefault(r.stage, []).append((r.rows, r.seconds))
    return {
        stage: {"overall": slope(points), "largest": slope(sorted(points)[-2:])}
        for stage, points in by_stage.items()
    }


@dataclass(frozen=True)
class Finished:
    """How a measured process ended: exit status, its peak RSS, wall seconds."""

    returncode: int
    peak_mib: float
    seconds: float


def run_process(argv: list[str], log: Path) -> Finished:
    """Run ``argv`` with output to ``log``; ``os.wait4`` gives this child's own peak memory.

    Unlike ``getrusage(RUSAGE_CHILDREN)``, which keeps the largest child seen so far,
    ``wait4`` reports the one child just reaped (with its own reaped descendants).
    """
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Finished(proc.returncode, usage.ru_maxrss / 1024, time.perf_counter() - started)


def _failure(log: Path, finished: Finished) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return f"exit status {finished.returncode}: {lines[-1][:200] if lines else 'no output'}"


def run_stage(stage: Stage, scale: float, quick: bool, tmp: Path) -> list[dict[str, Any]]:
    """Every command of the stage at this scale; the rows they wrote, each with its process's
    peak memory. A failed command becomes an ``error`` row: the other stages still run."""
    size = max(1, round((stage.quick if quick else stage.base) * scale))
    rows: list[dict[str, Any]] = []
    for i, step in enumerate(stage.steps(size, tmp, quick)):
        log = tmp / f"{stage.key}-{i}.log"
        finished = run_process(step.argv, log)
        if finished.returncode != 0 or (step.json is not None and not step.json.exists()):
            why = _failure(log, finished) if finished.returncode else "it wrote no rows"
            return [{"stage": title, "side": "error", "error": why} for title in stage.titles]
        if step.json is not None:
            for row in json.loads(step.json.read_text())["rows"]:
                rows.append({**row, "process_peak_mib": finished.peak_mib, "size": size,
                             "process_seconds": finished.seconds})  # fmt: skip
    return rows


def measure(stages: Iterable[Stage], scales: list[float], quick: bool) -> tuple[
    list[StageResult], list[dict[str, Any]]
]:  # fmt: skip
    """Stage by stage (so that each slope spans minutes, not the whole run), scale by scale."""
    results: list[StageResult] = []
    raw: list[dict[str, Any]] = []
    for stage in stages:
        for scale in scales:
            print(f"  {stage.key} at {scale:g}x ... ", end="", file=sys.stderr, flush=True)
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"orbwatch-bench-{stage.key}-") as tmp:
                rows = run_stage(stage, scale, quick, Path(tmp))
            print(f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            raw += [{**row, "scale": scale} for row in rows]
            errors = {row["stage"]: row["error"] for row in rows if row["side"] == "error"}
            results += [StageResult(s, scale, error=e) for s, e in errors.items()]
            results += summarise((r for r in rows if r["side"] != "error"), scale)
    order = {stage: i for i, stage in enumerate(dict.fromkeys(r.stage for r in results))}
    results.sort(key=lambda r: order[r.stage])  # a stage's scales together (the sort is stable)
    return results, raw


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: list[StageResult]) -> list[str]:
    """The Markdown table, then why a ratio is missing, once per stage."""
    lines = [
        "| stage | scale | rows | seconds | rows/s | peak MiB | yardstick rows/s | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes: dict[str, str] = {}
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.stage} | {r.scale:g}x | failed | | | | | |")
            notes.setdefault(r.stage, f"failed: {r.error}")
            continue
        ratio = "n/a" if r.ratio is None else f"{r.ratio:.3g}x"
        lines.append(
            f"| {r.stage} | {r.scale:g}x | {r.rows:,} | {r.seconds:.2f} "
            f"| {_number(r.rate, ',.0f')} | {_number(r.peak_mib, ',.0f')} "
            f"| {_number(r.yardstick_rate, ',.0f')} | {ratio} |"
        )
        if r.ratio is None and r.missing:
            notes.setdefault(r.stage, f"no ratio: {r.missing}")
    lines += [""] + [f"* {stage}: {note}" for stage, note in notes.items()] if notes else []
    return lines


def growth(stage_slopes: dict[str, dict[str, float | None]]) -> list[str]:
    """The slopes as Markdown lines (none when only one scale ran)."""
    measured = {k: v for k, v in stage_slopes.items() if v["overall"] is not None}
    if not measured:
        return []
    return [
        "",
        "Slope of log(seconds) against log(rows), 1.0 = linear (all scales; two largest):",
        "",
    ] + [
        f"* {stage}: {_number(s['overall'], '.2f')}; {_number(s['largest'], '.2f')}"
        for stage, s in measured.items()
    ]


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Rows/s and peak memory of each stage and scale in both runs, and the change."""
    before = {(r["stage"], r["scale"]): r for r in old.get("results", [])}
    lines = [
        f"Compared with {old.get('commit', '?')} ({old.get('date', '?')}):",
        "",
        "| stage | scale | rows/s before | rows/s now | change | peak MiB before | peak MiB now |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in new.get("results", []):
        was = before.get((r["stage"], r["scale"]))
        if was is None:
            continue
        rate, rate_was = r.get("rows_per_s"), was.get("rows_per_s")
        change = f"{rate / rate_was - 1:+.0%}" if rate and rate_was else "-"
        lines.append(
            f"| {r['stage']} | {r['scale']:g}x | {_number(rate_was, ',.0f')} "
            f"| {_number(rate, ',.0f')} | {change} | {_number(was.get('peak_mib'), ',.0f')} "
            f"| {_number(r.get('peak_mib'), ',.0f')} |"
        )
    return lines


def commit() -> str:
    """The short commit, marked when the tree has changes (git, not orbwatch: see above)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


@dataclass
class Run:
    """Everything one invocation measured, as written to the JSON file."""

    commit: str
    date: str
    scales: list[float]
    quick: bool
    load_start: list[float]
    load_end: list[float] = field(default_factory=list)
    cpus: int = 0
    python: str = platform.python_version()
    base_sizes: dict[str, str] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    slopes: dict[str, dict[str, float | None]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _load(values: Iterable[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


def parse_scales(text: str) -> list[float]:
    scales = [float(s) for s in text.split(",") if s.strip()]
    if not scales or any(s <= 0 for s in scales):
        raise argparse.ArgumentTypeError(f"scales must be positive numbers: {text!r}")
    return scales


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--scales", type=parse_scales, help="multiples of the base sizes (default 1,4,16; quick: 1)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, scale 1")
    parser.add_argument("--stages", default=",".join(s.key for s in STAGES),
                        help="comma-separated: " + ", ".join(s.key for s in STAGES))  # fmt: skip
    parser.add_argument("--json", type=Path, default=BENCH / "results.json")
    parser.add_argument("--compare", type=Path, help="an earlier run's JSON to diff against")
    args = parser.parse_args()
    earlier = json.loads(args.compare.read_text()) if args.compare is not None else None
    wanted = set(args.stages.split(","))
    if unknown := wanted - {s.key for s in STAGES}:
        parser.error(f"unknown stages: {', '.join(sorted(unknown))}")
    stages = [s for s in STAGES if s.key in wanted]
    scales = args.scales or ([1.0] if args.quick else [1.0, 4.0, 16.0])
    run = Run(commit(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), scales,
              args.quick, list(os.getloadavg()), cpus=os.cpu_count() or 0)  # fmt: skip
    run.base_sizes = {s.key: f"{s.quick if args.quick else s.base:,} {s.unit}" for s in stages}
    print(f"commit {run.commit}, {run.cpus} CPUs, load average (1, 5, 15 min) at start "
          f"{_load(run.load_start)}", flush=True)  # fmt: skip
    print("sizes at 1x: " + "; ".join(f"{k} {v}" for k, v in run.base_sizes.items()))
    started = time.perf_counter()
    results, run.rows = measure(stages, scales, args.quick)
    run.seconds = time.perf_counter() - started
    run.load_end = list(os.getloadavg())
    run.results = [r.as_json() for r in results]
    run.slopes = slopes(results) if len(scales) > 1 else {}
    print("\n".join(["", *table(results), *growth(run.slopes), ""]))
    print(f"load average at end {_load(run.load_end)}; {run.seconds:.0f} s in all")
    doc = asdict(run)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.json}")
    if earlier is not None:  # read first: it may be the file just written
        print("\n" + "\n".join(compare(earlier, doc)))


if __name__ == "__main__":
    main()
