"""``orbwatch intel ...`` and ``orbwatch blocklist export``: each command is one library call.

Registered in :mod:`orbwatch.cli.main`; the shared helpers (workspace, config, output) are
imported from there inside the functions, because ``main`` imports this module.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from orbwatch.enrich.feeds import READERS

intel_app = typer.Typer(help="Threat-intelligence feeds, with decay.", no_args_is_help=True)
blocklist_app = typer.Typer(help="Blocklists of live indicators.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@intel_app.command("add")
def intel_add(
    source: Annotated[
        str | None,
        typer.Argument(
            help="Feed file (FireHOL, IPsum, CSV, STIX 2.1, MISP JSON), - for stdin, or "
            "taxii://host:port/api-root/collections/ID (taxii+http:// for plain HTTP)."
        ),
    ] = None,
    *,
    name: Annotated[
        str, typer.Option("--name", "-n", help="Name of the list (loading it again refreshes it).")
    ],
    kind: Annotated[
        str | None,
        typer.Option("--kind", help=f"Feed format, instead of detecting it: {', '.join(READERS)}."),
    ] = None,
    intel_class: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Class of indicators whose feed does not say: compromised-soho, vps-relay, "
            "quad7, c2, scanner, tor, proxy, unknown (picks the decay lifetime).",
        ),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(help="Confidence 0-100 of indicators whose feed gives none (decay base)."),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=column for CSV/JSON feeds (repeatable)."),
    ] = None,
    taxii: Annotated[
        str | None, typer.Option("--taxii", help="TAXII 2.1 API root URL (with --collection).")
    ] = None,
    collection: Annotated[str | None, typer.Option(help="TAXII collection id.")] = None,
    user: Annotated[str | None, typer.Option(help="TAXII user name.")] = None,
    force: Annotated[bool, typer.Option(help="Reload even if this exact file was loaded.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load or refresh a threat-intelligence feed (format detected from its content)."""
    from orbwatch.cli.main import _emit_json, _open, _parse_map, out
    from orbwatch.enrich.intel import FeedSource, add_feed
    from orbwatch.errors import InputError
    from orbwatch.report.terminal import safe

    feed = taxii or source
    if feed is None or (taxii and source):
        raise InputError("give one feed: a FILE or URL argument, or --taxii URL --collection ID")

    options = FeedSource(
        kind=kind,
        intel_class=intel_class,
        confidence=confidence,
        mapping=_parse_map(mapping or []),
        collection=collection,
        user=user,
        password=os.environ.get("ORBWATCH_TAXII_PASSWORD"),
    )
    with _open() as ws:
        result = add_feed(ws, feed, name, options, force=force)
    if as_json:
        _emit_json(asdict(result))
    else:
        out.print(
            f"{safe(result.name)}: {result.status} ({result.format}), {result.indicators} "
            f"indicators ({result.added} new, {result.removed} removed), "
            f"{result.quarantined} quarantined"
            + (f"; {safe(result.message)}" if result.message else "")
        )
        for reason, count in result.reasons.items():
            out.print(f"  {count} record(s): {safe(reason)}")
        for reason, count in sorted(result.skipped.items()):
            out.print(f"  {count} skipped: {safe(reason)}")
    if result.quarantined:
        raise typer.Exit(1)


@intel_app.command("list")
def intel_list(as_json: JsonOpt = False) -> None:
    """Loaded lists with their indicator counts and load times."""
    from orbwatch.cli.main import _emit_json, _open, out
    from orbwatch.report.terminal import table

    with _open(read_only=True) as ws:
        rows = ws.query(
            "SELECT list_name, count(*) AS indicators, min(first_seen) AS first_loaded, "
            "max(last_seen) AS last_loaded, min(source_file) AS file FROM intel "
            "GROUP BY list_name ORDER BY list_name"
        ).to_pylist()
    if as_json:
        _emit_json(rows)
    else:
        out.print(
            table(
                "intel lists",
                ["list", "indicators", "first loaded", "last loaded", "file"],
                [tuple(r.values()) for r in rows],
            )
        )


@intel_app.command("stats")
def intel_stats(as_json: JsonOpt = False) -> None:
    """Live and expired indicators per list and class, and how old they are (decay applied)."""
    from orbwatch.cli.main import _config, _emit_json, _open, out
    from orbwatch.enrich.decay import intel_stats as compute
    from orbwatch.report.terminal import table

    cfg = _config()
    with _open(read_only=True) as ws:
        stats = compute(ws, cfg.intel, dt.datetime.now(dt.UTC))
    if as_json:
        _emit_json(stats)
        return
    columns = ["total", "live", "expired", "mean_score"]
    groups = (("by_list", "list_name"), ("by_class", "intel_class"), ("by_age", "age"))
    for title, key in groups:
        group = stats[title]
        out.print(
            table(
                title.replace("_", " "),
                [key, *columns],
                [(r[key], *(r[c] for c in columns)) for r in group],
            )
        )


@intel_app.command("expire")
def intel_expire(
    mark: Annotated[
        bool, typer.Option(help="Mark expired indicators (expired_at) instead of deleting them.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete (or mark) indicators whose decayed score is under the threshold, printing them."""
    from orbwatch.cli.main import _config, _emit_json, _open, out
    from orbwatch.enrich.decay import expire
    from orbwatch.report.terminal import table

    cfg = _config()
    with _open() as ws:
        gone = expire(ws, cfg.intel, dt.datetime.now(dt.UTC), delete=not mark)
    rows = gone.drop_columns(["intel_id"]).to_pylist()
    if as_json:
        _emit_json(rows)
        return
    verb = "marked expired" if mark else "deleted"
    out.print(
        table(
            f"{len(rows)} indicator(s) {verb}",
            ["list", "indicator", "class", "score", "last seen"],
            [tuple(r.values()) for r in rows[:1000]],
        )
    )
    if len(rows) > 1000:
        out.print(f"... and {len(rows) - 1000} more (--json lists all)")


@blocklist_app.command("export")
def blocklist_export(
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="plain, edl, nftables, ipset or suricata.")
    ] = "plain",
    min_score: Annotated[
        float, typer.Option("--min-score", help="Only indicators with at least this decayed score.")
    ] = 0.0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write live indicators, each with its expiry, for a firewall or IDS to load."""
    from orbwatch.cli.main import _config, _open, err
    from orbwatch.export.blocklist import export

    cfg = _config()
    with _open(read_only=True) as ws:
        text, count = export(ws, cfg, fmt, min_score=min_score)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {count} entries to {output}")
