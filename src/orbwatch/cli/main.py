"""``orbwatch`` commands. Each one opens the workspace, calls one library function, prints.

Exit codes: 0 success; 1 finished but some records were quarantined (or alerts were found at
``--fail-on`` severity); 2 bad input (missing file, unknown format, bad option); 3 bad config;
4 workspace problem.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from orbwatch import __version__
from orbwatch import config as config_mod
from orbwatch.alerts.store import SEVERITY_LEVEL
from orbwatch.alerts.suppress import SuppressionRule, load_rules
from orbwatch.cli.intel import blocklist_app, intel_app
from orbwatch.detect.base import DetectContext
from orbwatch.detect.registry import detectors
from orbwatch.detect.run import DetectorRun
from orbwatch.detect.run import run as run_detectors
from orbwatch.engines.base import Engine
from orbwatch.errors import InputError, OrbwatchError
from orbwatch.report.terminal import console, safe, table, to_json
from orbwatch.sources import registry
from orbwatch.sources.ingest import Ingestor, IngestResult, expand_paths
from orbwatch.store.workspace import Workspace, default_path

out = console()
err = console(stderr=True)


class _ErrorsAsMessages(TyperGroup):
    """Turns :class:`OrbwatchError` from any command into a message and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except OrbwatchError as exc:
            err.print(f"error: {safe(exc, 2000)}")
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="orbwatch",
    cls=_ErrorsAsMessages,
    help="Find covert (ORB) networks in flow, firewall, VPN and authentication logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(intel_app, name="intel")
app.add_typer(blocklist_app, name="blocklist")


class State:
    """Options given before the command."""

    workspace: Path | None = None
    config: Path | None = None


STATE = State()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DetectorsOpt = Annotated[
    list[str] | None, typer.Option("--detector", "-d", help="Run only these (repeatable).")
]
SuppressionsOpt = Annotated[
    list[Path] | None,
    typer.Option("--suppressions", help="TOML file of suppression rules (repeatable)."),
]


def suppression_rules(paths: list[Path] | None) -> list[SuppressionRule]:
    """The rules of every ``--suppressions`` file, in order."""
    return [rule for path in paths or [] for rule in load_rules(path)]


@app.callback()
def main(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace file [env: ORBWATCH_WORKSPACE; default ./orbwatch.duckdb]",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file [default ./orbwatch.toml if present]"),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv: debug).")
    ] = 0,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Global options."""
    if version:
        out.print(f"orbwatch {__version__}")
        raise typer.Exit()
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    STATE.workspace = workspace
    STATE.config = config


def _emit_json(data: Any) -> None:
    """JSON goes to stdout as is: never wrapped or styled by the terminal renderer."""
    typer.echo(to_json(data))


def _open(read_only: bool = False) -> Workspace:
    return Workspace.open(STATE.workspace or default_path(), read_only=read_only)


def _config() -> config_mod.Config:
    return config_mod.load(STATE.config)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path(
        config_mod.DEFAULT_CONFIG_FILE
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example orbwatch.toml and create the workspace."""
    if path.exists() and not force:
        raise OrbwatchError(f"{path}: exists already (use --force to overwrite)")
    path.write_text(config_mod.EXAMPLE_CONFIG, encoding="utf-8")
    config_mod.load(path)
    with _open() as ws:
        out.print(f"wrote {path}; workspace {ws.path} (schema version {ws.schema_version()})")


def _parse_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target or not source:
            raise InputError(f"--map {item!r}: use flows_column=input_column")
        mapping[target.strip()] = source.strip()
    return mapping


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, folders, .gz files, or - for stdin.")],
    fmt: Annotated[
        str | None, typer.Option("--format", "-f", help="Force a format (see `orbwatch formats`).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="flows_column=input_column for CSV/Parquet flow tables (repeatable)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Reload inputs that were loaded before.")] = False,
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            min=1970,
            max=9999,
            help="Year of the first year-less syslog stamp (default: from the file's mtime).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse inputs into the workspace; bad records go to quarantine with the reason."""
    cfg = _config()
    files = expand_paths(paths)
    results: list[IngestResult] = []
    with _open() as ws, _progress() as progress:
        ingestor = Ingestor(ws, cfg)
        overall = progress.add_task("inputs", total=len(files))
        for name in files:
            task = progress.add_task(safe(Path(name).name, 60), total=None)
            try:
                result = ingestor.ingest(
                    name,
                    fmt,
                    force=force,
                    mapping=_parse_map(mapping or []),
                    on_rows=partial(progress.advance, task),
                    year=year,
                )
            except InputError as exc:
                result = IngestResult(file=name, status="failed", message=str(exc))
                err.print(f"error: {safe(exc, 500)}")
            results.append(result)
            progress.remove_task(task)
            progress.advance(overall)
    _print_ingest(results, as_json)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(2)
    if any(r.quarantined for r in results):
        raise typer.Exit(1)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} records"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _print_ingest(results: list[IngestResult], as_json: bool) -> None:
    if as_json:
        _emit_json([asdict(r) for r in results])
        return
    rows = [
        (
            Path(r.file).name,
            r.format,
            r.status,
            r.rows,
            r.quarantined,
            r.first_ts,
            r.last_ts,
            f"{r.seconds:.2f}",
        )
        for r in results
    ]
    out.print(
        table(
            "ingest",
            ["file", "format", "status", "rows", "quarantined", "first record", "last record", "s"],
            rows,
        )
    )
    for r in results:
        for reason, count in sorted(r.reasons.items()):
            out.print(f"  {safe(r.file)}: {count} quarantined: {safe(reason)}")
        for reason, count in sorted(r.skipped.items()):
            out.print(f"  {safe(r.file)}: {count} skipped: {safe(reason)}")
        if r.message and r.status == "skipped":
            out.print(f"  {safe(r.file)}: {safe(r.message)}")
    quarantined = sum(r.quarantined for r in results)
    by_reason: dict[str, int] = {}
    for r in results:
        for reason, count in r.reasons.items():
            by_reason[reason] = by_reason.get(reason, 0) + count
    if len(by_reason) > 1 or sum(1 for r in results if r.reasons) > 1:
        ranked = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        out.print(table("quarantined by reason", ["reason", "records"], ranked))
    if quarantined:
        out.print(f"{quarantined} record(s) quarantined: see `orbwatch quarantine`")


@app.command()
def formats(as_json: JsonOpt = False) -> None:
    """List the input formats orbwatch can read."""
    known = [(n, c.table, c.description) for n, c in registry().items()]
    if as_json:
        out.print(
            to_json([dict(zip(("format", "table", "description"), k, strict=True)) for k in known])
        )
    else:
        out.print(table("formats", ["format", "table", "description"], known))


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Row counts, time ranges and sources of every workspace table."""
    _config()
    with _open(read_only=True) as ws:
        rows = ws.status()
        version = ws.schema_version()
    if as_json:
        _emit_json({"workspace": str(ws.path), "schema_version": version, "tables": rows})
        return
    out.print(f"workspace {ws.path} (schema version {version})")
    out.print(
        table(
            "tables",
            ["table", "rows", "first", "last", "sources"],
            [(r["table"], r["rows"], r["first"], r["last"], r["sources"]) for r in rows],
        )
    )


@app.command()
def quarantine(
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Records that could not be parsed, with file, offset and reason."""
    with _open(read_only=True) as ws:
        rows = ws.query(
            "SELECT source_file, source_offset, source_format, reason, raw FROM quarantine "
            "ORDER BY source_file, source_offset LIMIT ?",
            [limit],
        ).to_pylist()
    if as_json:
        _emit_json(rows)
    else:
        out.print(
            table(
                "quarantine",
                ["file", "offset", "format", "reason", "raw"],
                [
                    (
                        r["source_file"],
                        r["source_offset"],
                        r["source_format"],
                        r["reason"],
                        safe(r["raw"], 80),
                    )
                    for r in rows
                ],
            )
        )


@app.command("detectors")
def list_detectors(as_json: JsonOpt = False) -> None:
    """The detectors and what they find."""
    rows = [
        (d.id, ",".join(d.techniques), ",".join(d.requires), d.summary)
        for d in detectors().values()
    ]
    if as_json:
        out.print(
            to_json(
                [
                    dict(zip(("id", "techniques", "requires", "summary"), r, strict=True))
                    for r in rows
                ]
            )
        )
    else:
        out.print(table("detectors", ["id", "ATT&CK", "reads", "finds"], rows))


@app.command()
def detect(
    engine: Annotated[
        str, typer.Option(help="duckdb (the workspace) or spark (Parquet exports).")
    ] = "duckdb",
    input_dir: Annotated[
        Path | None,
        typer.Option("--input", help="With --engine spark: folder written by export-tables."),
    ] = None,
    detector: DetectorsOpt = None,
    suppressions: SuppressionsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the detectors and store their alerts in the workspace."""
    cfg = _config()
    rules = suppression_rules(suppressions)
    with _open() as ws:
        eng = _engine(engine, ws, input_dir)
        try:
            results = run_detectors(ws, DetectContext(cfg, eng), detector, rules)
        finally:
            eng.close()
    if as_json:
        _emit_json([asdict(r) for r in results])
        return
    print_detector_runs(f"detect ({engine})", results)


def print_detector_runs(title: str, results: list[DetectorRun]) -> None:
    """The per-detector summary table of `detect` and `analyse`."""
    columns = ["detector", "alerts", "new", "suppressed", "by severity", "s"]
    rows = [
        (r.detector, r.alerts, r.new, r.suppressed, _sev(r.by_severity), f"{r.seconds:.2f}")
        for r in results
    ]
    out.print(table(title, columns, rows))


def _sev(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {counts[k]}" for k in sorted(counts, key=lambda s: -SEVERITY_LEVEL[s]))


def _engine(name: str, ws: Workspace, input_dir: Path | None) -> Engine:
    if name == "duckdb":
        if input_dir is not None:
            raise InputError("--input goes with --engine spark")
        from orbwatch.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(ws)
    if name == "spark":
        if input_dir is None:
            raise InputError(
                "--engine spark needs --input DIR (write it with `orbwatch export-tables DIR`)"
            )
        from orbwatch.engines.spark_engine import SparkEngine

        return SparkEngine(input_dir)
    raise InputError(f"unknown engine {name!r}: use duckdb or spark")


@app.command("export-tables")
def export_tables(
    directory: Annotated[Path, typer.Argument(help="Folder for <table>.parquet files.")],
) -> None:
    """Write every workspace table as Parquet (input of `detect --engine spark`)."""
    with _open(read_only=True) as ws:
        written = ws.export_parquet(directory)
    out.print(f"wrote {len(written)} tables to {directory}")


@app.command()
def demo(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for the demo's data, workspace and results.")
    ] = Path("demo-output"),
    seed: Annotated[int, typer.Option(help="Random seed of the simulated organisation.")] = 7,
) -> None:
    """Simulate a small organisation hit by a covert network, and run the whole pipeline on it."""
    from orbwatch.simulate.demo import run_demo

    run_demo(out_dir, seed=seed, console=out)


def _register_subcommands() -> None:
    """Sub-apps live in their own modules; they import helpers from here, so register last."""
    from orbwatch.cli.alerts import alerts_app
    from orbwatch.cli.analyse import analyse_command, baseline
    from orbwatch.cli.assets import assets
    from orbwatch.cli.collect import collect_app
    from orbwatch.cli.enrich import enrich, lookup
    from orbwatch.cli.evaluate import evaluate_command
    from orbwatch.cli.report import campaigns_app, report
    from orbwatch.cli.simulate import simulate

    app.command("simulate")(simulate)

    app.add_typer(alerts_app, name="alerts")
    app.add_typer(campaigns_app, name="campaigns")
    app.command("report")(report)
    app.command("baseline")(baseline)
    app.command("analyse")(analyse_command)
    app.command("evaluate")(evaluate_command)
    app.add_typer(collect_app, name="collect")
    app.command("enrich")(enrich)
    app.command("lookup")(lookup)
    app.command("assets")(assets)


_register_subcommands()
