"""``orbwatch collect netflow|syslog``: live listeners that write into the workspace.

Each command builds a collector from its options, runs it until Ctrl-C, SIGTERM or
``--duration``, shows a live status line on stderr and ends with a summary (counters, and
quarantined records by reason). Exit code 1 when anything was quarantined or dropped.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.live import Live
from rich.text import Text

from orbwatch.collect.base import Collector, CollectSettings, CollectStats

collect_app = typer.Typer(help="Live collectors (NetFlow/IPFIX, syslog).", no_args_is_help=True)

BatchOpt = Annotated[int, typer.Option(help="Write a micro-batch every N records.")]
FlushOpt = Annotated[float, typer.Option(help="...or every S seconds, whichever comes first.")]
BufferOpt = Annotated[
    int, typer.Option(help="Items held between listeners and writer (UDP drops beyond, counted).")
]
DurationOpt = Annotated[
    float | None, typer.Option(help="Stop after S seconds (default: until Ctrl-C / SIGTERM).")
]


@collect_app.command("netflow")
def collect_netflow(
    listen: Annotated[
        list[str] | None,
        typer.Option(help="Address to listen on, IPv4 or [IPv6], repeatable [127.0.0.1:2055]."),
    ] = None,
    batch_size: BatchOpt = 50_000,
    flush_seconds: FlushOpt = 2.0,
    max_buffer: BufferOpt = 20_000,
    duration: DurationOpt = None,
) -> None:
    """Receive NetFlow v5/v9/IPFIX export datagrams over UDP and write them to `flows`."""
    from orbwatch.cli.main import _config, _open
    from orbwatch.collect.netflow import netflow_collector

    settings = _settings(batch_size, flush_seconds, max_buffer, duration)
    with _open() as ws:
        collector = netflow_collector(ws, _config(), listen or ["127.0.0.1:2055"], settings)
        _run(collector, "datagrams")


@collect_app.command("syslog")
def collect_syslog(
    listen: Annotated[
        str, typer.Option(help="Address to listen on, IPv4 or [IPv6] [127.0.0.1:5514].")
    ] = "127.0.0.1:5514",
    protocol: Annotated[str, typer.Option(help="udp, tcp or both.")] = "both",
    fmt: Annotated[
        str | None,
        typer.Option("--format", "-f", help="Line format (default: detected from first lines)."),
    ] = None,
    max_line: Annotated[int, typer.Option(help="Longest message parsed, in bytes.")] = 65_536,
    batch_size: BatchOpt = 10_000,
    flush_seconds: FlushOpt = 2.0,
    max_buffer: BufferOpt = 100_000,
    duration: DurationOpt = None,
) -> None:
    """Receive syslog over UDP and TCP and parse it with a line format into the workspace."""
    from orbwatch.cli.main import _config, _open
    from orbwatch.collect.syslog import syslog_collector

    settings = _settings(batch_size, flush_seconds, max_buffer, duration)
    with _open() as ws:
        collector = syslog_collector(ws, _config(), listen, protocol, fmt, settings, max_line)
        _run(collector, "messages")


def _settings(
    batch_size: int, flush_seconds: float, max_buffer: int, duration: float | None
) -> CollectSettings:
    from orbwatch.errors import InputError

    try:
        return CollectSettings(batch_size, flush_seconds, max_buffer, duration)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _run(collector: Collector, unit: str) -> None:
    from orbwatch.cli.main import err, out
    from orbwatch.report.terminal import table

    sources = ", ".join(listener.source for listener in collector.listeners)
    err.print(f"listening on {sources} (Ctrl-C to stop)")
    with Live(Text(""), console=err, transient=True, refresh_per_second=4) as live:
        stats = collector.run(
            on_status=lambda s: live.update(Text(status_line(s, unit))), handle_signals=True
        )
    out.print(
        table(
            "collect",
            ["listener", unit, "rows", "quarantined", "dropped", "batches", "s"],
            [
                (
                    sources,
                    stats.received,
                    stats.rows,
                    stats.quarantined,
                    stats.dropped,
                    stats.batches,
                    f"{stats.seconds:.1f}",
                )
            ],
        )
    )
    if stats.reasons:
        out.print(table("quarantined by reason", ["reason", "records"], _by_count(stats.reasons)))
    if stats.skipped:
        out.print(
            table("skipped (understood, not kept)", ["reason", "values"], _by_count(stats.skipped))
        )
    if stats.quarantined or stats.dropped:
        raise typer.Exit(1)


def _by_count(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def status_line(stats: CollectStats, unit: str) -> str:
    """One line: what came in, what was written, what waits, what was lost."""
    rate = stats.rows / stats.seconds if stats.seconds > 0 else 0.0
    return (
        f"{stats.received:,} {unit} ({stats.received_bytes / 1e6:,.1f} MB) · "
        f"{stats.rows:,} rows ({rate:,.0f}/s) in {stats.batches} batches · "
        f"{stats.pending:,} pending · buffer {stats.buffered:,} · "
        f"{stats.quarantined:,} quarantined · {stats.dropped:,} dropped"
    )
