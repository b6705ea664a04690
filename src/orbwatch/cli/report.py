"""``orbwatch campaigns`` and ``orbwatch report``: alerts grouped, and the HTML report."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from orbwatch.alerts.campaigns import build_campaigns, set_campaign_status
from orbwatch.alerts.store import TRIAGE_STATES
from orbwatch.cli.main import JsonOpt, _config, _emit_json, _open, out
from orbwatch.report.html import write_report
from orbwatch.report.terminal import safe, table

campaigns_app = typer.Typer(
    help="Group alerts into campaigns and list them, or triage one.", invoke_without_command=True
)


@campaigns_app.callback()
def campaigns(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Rebuild campaigns from the active alerts and list them, most severe first."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = _config()
    with _open() as ws:
        rows = build_campaigns(ws, cfg).to_pylist()
    if as_json:
        _emit_json(rows)
        return
    out.print(
        table(
            "campaigns",
            ["id", "severity", "alerts", "relays", "dead", "on blocklist", "ATT&CK", "title"],
            [
                (
                    r["campaign_id"],
                    r["severity"],
                    r["alert_count"],
                    r["relay_count"],
                    r["relays_dead"],
                    r["relays_on_blocklist"],
                    r["techniques"],
                    r["title"],
                )
                for r in rows
            ],
        )
    )
    if not rows:
        out.print("no campaigns: no two active alerts share an account, target, network or trait")


@campaigns_app.command("triage")
def campaigns_triage(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id or a unique prefix.")],
    status: Annotated[str, typer.Option(help=f"New state: {', '.join(TRIAGE_STATES)}.")] = (
        "acknowledged"
    ),
    comment: Annotated[str, typer.Option(help="Why (kept with each alert).")] = "",
) -> None:
    """Set the triage state of a campaign and of every alert in it."""
    with _open() as ws:
        changed = set_campaign_status(ws, campaign_id, status, comment)
    out.print(f"campaign and {changed} alerts now {safe(status)}")


def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="HTML file to write.")] = Path(
        "orbwatch-report.html"
    ),
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the report in the default browser.")
    ] = False,
) -> None:
    """Write a self-contained HTML report (campaigns, map, assets, alerts with evidence)."""
    cfg = _config()
    with _open() as ws:
        build_campaigns(ws, cfg)
        data = write_report(ws, cfg, output)
    out.print(
        f"wrote {safe(output)}: {data.summary['campaigns']} campaigns, "
        f"{data.summary['alerts']} alerts"
    )
    if open_browser:
        webbrowser.open(output.resolve().as_uri())
