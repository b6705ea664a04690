"""``orbwatch enrich`` and ``orbwatch lookup``: geo, ASN and network class of addresses."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from orbwatch.cli.main import JsonOpt, _config, _emit_json, _open, err, out
from orbwatch.enrich.geo import about, enrich_workspace, lookup_addresses, new_addresses
from orbwatch.errors import InputError
from orbwatch.report.terminal import safe, table


def enrich(as_json: JsonOpt = False) -> None:
    """Fill ip_info (country, ASN, network class) for every address not enriched yet."""
    cfg = _config()
    with _open() as ws:
        pending = new_addresses(ws).num_rows
        with Progress(
            SpinnerColumn(),
            TextColumn("enrich"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} addresses"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("enrich", total=pending)
            result = enrich_workspace(ws, cfg, on_rows=lambda n: progress.advance(task, n))
    if as_json:
        _emit_json(vars(result))
        return
    out.print(
        f"{result.added:,} address(es) enriched, {result.total:,} in ip_info "
        f"({safe(result.geo_db or 'nothing new')}) in {result.seconds:.2f} s"
    )
    out.print(table("by network class", ["class", "addresses"], result.by_class.items()))
    top = list(result.by_country.items())[:15]
    out.print(table("by country (top 15)", ["country", "addresses"], top))


def lookup(
    addresses: Annotated[
        list[str] | None, typer.Argument(help="IPv4 or IPv6 addresses to look up.")
    ] = None,
    show_about: Annotated[
        bool, typer.Option("--about", help="Source, licence and date of the bundled data.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Country, ASN, AS organisation, network class and source database of addresses."""
    if show_about:
        _print_about(about(), as_json)
        return
    if not addresses:
        raise InputError("give one or more addresses, or --about")
    cfg = _config()
    rows = lookup_addresses(addresses, cfg)
    if as_json:
        _emit_json(rows)
        return
    columns = ["ip", "country", "asn", "as_org", "net_class", "latitude", "longitude", "geo_db"]
    out.print(table("lookup", columns, [[r[c] for c in columns] for r in rows]))
    bad = [r["ip"] for r in rows if not r["valid"]]
    if bad:
        raise InputError(f"not an IP address: {', '.join(safe(b, 60) for b in bad)}")


def _print_about(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _emit_json(data)
        return
    out.print(
        f"bundled IP database: data of {safe(data['data_date'])}, built {safe(data['build_date'])} "
        f"by {safe(data['build_script'])} ({data['rows']:,} ranges)"
    )
    out.print(
        table(
            "sources",
            ["package", "version", "licence", "data date"],
            [(p["name"], p["version"], p["licence"], p["data_date"]) for p in data["packages"]],
        )
    )
    for package in data["packages"]:
        out.print(f"{safe(package['name'])}: {safe(package['attribution'], 1000)}")
    out.print(
        table(
            "network lists",
            ["file", "source", "licence"],
            [(a["file"], a["source"], a["licence"]) for a in data["asn_lists"]],
        )
    )
