"""``orbwatch simulate``: write a simulated organisation under a covert-network campaign."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the files.")] = Path(
        "simulation"
    ),
    users: Annotated[int | None, typer.Option(help="Number of users [default 120].")] = None,
    days: Annotated[int | None, typer.Option(help="Days to simulate [default 14].")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same files.")] = 7,
    scenario_file: Annotated[
        Path | None, typer.Option("--scenario", help="A scenario.json to start from.")
    ] = None,
    benchmark: Annotated[
        bool, typer.Option(help="About 10 million flows and 1 million logins; prints timings.")
    ] = False,
    no_campaign: Annotated[
        bool, typer.Option("--no-campaign", help="Only ordinary activity (for baselines).")
    ] = False,
    chunk_days: Annotated[
        int,
        typer.Option(
            "--chunk-days",
            min=1,
            help="Days generated before each write: memory grows with it, output does not change.",
        ),
    ] = 1,
) -> None:
    """Simulate an organisation (and a covert-network campaign) in real log formats."""
    from orbwatch.cli.main import out
    from orbwatch.errors import InputError
    from orbwatch.report.terminal import table
    from orbwatch.simulate.run import simulate as run_simulation
    from orbwatch.simulate.scenario import Scenario
    from orbwatch.simulate.scenario import benchmark as benchmark_scenario

    if scenario_file is not None:
        try:
            scenario = Scenario.from_dict(json.loads(scenario_file.read_text())["scenario"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{scenario_file}: not a scenario.json ({exc})") from None
        scenario.seed = seed
    else:
        scenario = benchmark_scenario(seed) if benchmark else Scenario(seed=seed)
    if users is not None:
        scenario.org.users = users
    if days is not None:
        scenario.org.days = days
    if scenario.org.users < 5 or scenario.org.days < 2:
        raise InputError("--users must be at least 5 and --days at least 2")
    scenario.campaign.enabled = not no_campaign
    result = run_simulation(
        scenario, out_dir, step=lambda name: out.print(f"writing {name}"), chunk_days=chunk_days
    )
    usage = result.usage
    out.print(
        table(
            "simulation",
            ["file", "format", "lines or packets"],
            [(w.path.name, w.fmt, w.lines) for w in result.files],
        )
    )
    out.print(
        f"{result.flows:,} flow records, {result.logins:,} login events, "
        f"{result.entities} labelled campaign entities -> {out_dir} "
        "(labels.csv, scenario.json, orbwatch.toml)"
    )
    if usage is not None:
        out.print(
            f"wall {usage.wall_s:.1f} s, CPU {usage.cpu_s:.1f} s (user + system), "
            f"peak RSS {usage.peak_rss_mb:,.0f} MB, load average "
            + " ".join(f"{x:.2f}" for x in usage.load)
        )
