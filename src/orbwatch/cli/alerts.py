"""``orbwatch alerts``: list, show, triage, export in SIEM formats, and forward."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orbwatch.alerts.formats import FORMATS, render
from orbwatch.alerts.forward import forward, syslog_sender, webhook_sender
from orbwatch.alerts.store import TRIAGE_STATES, counts, get_alert, list_alerts, set_status
from orbwatch.cli.main import JsonOpt, _emit_json, _open, out
from orbwatch.errors import InputError
from orbwatch.report.terminal import safe, table

alerts_app = typer.Typer(
    help="List alerts, or show, triage, export and forward them.", invoke_without_command=True
)

SeverityOpt = Annotated[
    str, typer.Option(help="Minimum severity: info, low, medium, high, critical.")
]
DetectorOpt = Annotated[str | None, typer.Option(help="Only this detector's alerts.")]
StatusOpt = Annotated[
    str | None, typer.Option(help=f"Only alerts in this triage state: {', '.join(TRIAGE_STATES)}.")
]
ViewOpt = Annotated[
    str,
    typer.Option("--view", help="active (default), suppressed (covered by a rule) or all alerts."),
]


@alerts_app.callback()
def alerts(
    ctx: typer.Context,
    severity: Annotated[
        str, typer.Option(help="Minimum severity: info, low, medium, high, critical.")
    ] = "info",
    detector: DetectorOpt = None,
    status: StatusOpt = None,
    view: ViewOpt = "active",
    limit: Annotated[int, typer.Option(help="At most this many (0: all).")] = 100,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help=f"Write records instead of a table: {', '.join(FORMATS)}."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write --format output to a file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List alerts, most severe first (suppressed ones only with --view)."""
    if ctx.invoked_subcommand is not None:
        return
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use one of {list(FORMATS)}")
    with _open(read_only=True) as ws:
        rows = list_alerts(
            ws,
            min_severity=severity,
            detector=detector,
            status=status,
            suppressed=view,
            limit=limit or None,
            with_evidence=fmt is not None,
        )
        tally = counts(ws)
    if fmt is not None:
        text = render(rows, fmt)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            out.print(f"wrote {len(rows)} alerts to {safe(output)} ({fmt})")
        return
    if as_json:
        _emit_json(rows)
        return
    out.print(
        table(
            "alerts",
            ["id", "severity", "score", "detector", "title", "first seen", "last seen", "events"],
            [
                (
                    r["alert_id"],
                    r["severity"],
                    r["score"],
                    r["detector"],
                    r["title"],
                    r["first_seen"],
                    r["last_seen"],
                    r["event_count"],
                )
                for r in rows
            ],
        )
    )
    if not rows:
        out.print("no alerts (run `orbwatch detect` after ingesting data and loading intel)")
    if tally["suppressed"]:
        out.print(
            f"{tally['suppressed']} more alerts are suppressed by rules "
            "(list them with --view suppressed)"
        )


@alerts_app.command("show")
def alerts_show(
    alert_id: Annotated[str, typer.Argument(help="Alert id or a unique prefix.")],
    as_json: JsonOpt = False,
) -> None:
    """One alert: explanation, evidence and the records behind it (with file and offset)."""
    with _open(read_only=True) as ws:
        alert = get_alert(ws, alert_id)
    if as_json:
        _emit_json(alert)
        return
    out.print(
        f"{safe(alert['alert_id'])}  [{safe(alert['severity'])}]  {safe(alert['title'], 300)}"
    )
    out.print(
        f"detector {safe(alert['detector'])}; ATT&CK {safe(alert['techniques'])}; "
        f"status {safe(alert['status'])}"
    )
    out.print(safe(alert["explanation"], 2000))
    out.print(
        table("evidence", ["fact", "value"], [(k, v) for k, v in sorted(alert["evidence"].items())])
    )
    rows = alert["evidence_rows"]
    if rows:
        columns = [
            "time",
            "src",
            "sport",
            "dst",
            "dport",
            "proto",
            "bytes out",
            "bytes in",
            "action",
            "state",
            "file:line",
        ]
        cells = [
            (
                r["ts_start"],
                r["src_ip"],
                r["src_port"],
                r["dst_ip"],
                r["dst_port"],
                r["protocol"],
                r["src_bytes"],
                r["dst_bytes"],
                r["action"],
                r["conn_state"],
                f"{Path(r['source_file']).name}:{r['source_offset']}",
            )
            for r in rows
        ]
        out.print(table(f"records (first {len(rows)}; --json for full paths)", columns, cells))


@alerts_app.command("triage")
def alerts_triage(
    alert_ids: Annotated[list[str], typer.Argument(help="Alert ids or unique prefixes.")],
    status: Annotated[
        str, typer.Option(help=f"New state: {', '.join(TRIAGE_STATES)}.")
    ] = "acknowledged",
    comment: Annotated[str, typer.Option(help="Why (kept with the alert).")] = "",
) -> None:
    """Set the triage state of alerts; later detect runs keep it."""
    with _open() as ws:
        changed = set_status(ws, alert_ids, status, comment)
    out.print(f"{changed} alerts now {safe(status)}")


@alerts_app.command("forward")
def alerts_forward(
    syslog: Annotated[str | None, typer.Option(help="Send CEF over syslog to HOST:PORT.")] = None,
    protocol: Annotated[str, typer.Option(help="Syslog transport: udp or tcp.")] = "udp",
    webhook: Annotated[
        str | None, typer.Option(help="POST each alert as OCSF JSON to this URL.")
    ] = None,
    severity: SeverityOpt = "low",
    detector: DetectorOpt = None,
    status: StatusOpt = "new",
    retries: Annotated[int, typer.Option(help="Retries per alert (exponential backoff).")] = 3,
    max_queue: Annotated[int, typer.Option(help="Bound of the send queue.")] = 10_000,
) -> None:
    """Forward active alerts to a syslog receiver or a webhook; exit 1 if any failed."""
    if (syslog is None) == (webhook is None):
        raise InputError("give exactly one of --syslog HOST:PORT or --webhook URL")
    send = syslog_sender(syslog, protocol) if syslog else webhook_sender(str(webhook))
    with _open(read_only=True) as ws:
        rows = list_alerts(
            ws,
            min_severity=severity,
            detector=detector,
            status=status,
            limit=None,
            with_evidence=True,
        )
    result = forward(rows, send, retries=retries, max_queue=max_queue)
    out.print(
        f"sent {result.sent}, failed {result.failed}, dropped {result.dropped} "
        f"of {len(rows)} alerts"
    )
    for error in result.errors:
        out.print(f"  {safe(error, 300)}")
    if result.failed or result.dropped:
        raise typer.Exit(1)
