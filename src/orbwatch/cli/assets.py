"""``orbwatch assets``: the edge map, configured assets and those discovered from traffic."""

from __future__ import annotations

from orbwatch.baseline.assets import toml_snippet, update_assets
from orbwatch.cli.main import JsonOpt, _config, _emit_json, _open, out
from orbwatch.report.terminal import safe, table


def assets(as_json: JsonOpt = False) -> None:
    """Edge assets: configured ones, and ones discovered from traffic (suggested for the config)."""
    cfg = _config()
    with _open() as ws:
        views = update_assets(ws, cfg)
    if as_json:
        _emit_json([v.as_dict() for v in views])
        return
    rows = [
        (
            v.name,
            v.role,
            v.origin,
            v.cidr,
            ", ".join(map(str, v.services[:12])) + (" ..." if len(v.services) > 12 else ""),
            v.peers,
            v.flows,
            v.evidence,
        )
        for v in views
    ]
    columns = ["name", "role", "origin", "addresses", "services", "peers", "flows", "why"]
    out.print(table("edge assets", columns, rows))
    snippet = toml_snippet(views)
    if snippet:
        out.print("Discovered assets are used at once; confirm them in orbwatch.toml:\n")
        for line in snippet.splitlines():
            out.print(safe(line, 500), markup=False, highlight=False)
    elif not views:
        out.print("no edge assets: declare them under [[edge_assets]] in orbwatch.toml")
