"""``orbwatch report``: one self-contained HTML file that an analyst opens without a network.

The data for every section is computed by DuckDB over the workspace (aggregates only: the
report never loads raw flows into Python); the charts are Plotly figures described as plain
JSON and drawn by the Plotly.js bundle of the ``plotly`` package, embedded in the page with the
world map (see ``report/assets/README.md``). Every string from logs goes through Jinja2's
autoescaping, and the JSON inside ``<script>`` has ``<``, ``>`` and ``&`` escaped, so an
attacker-controlled user name cannot close the script element.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from orbwatch import __version__, netaddr
from orbwatch.alerts.store import counts, evidence_rows, list_alerts
from orbwatch.config import Config
from orbwatch.store.workspace import Workspace

SEVERITIES = ("critical", "high", "medium", "low", "info")
SEVERITY_COLOURS = {
    "critical": "#7f0000",
    "high": "#d7301f",
    "medium": "#fc8d59",
    "low": "#fdcc8a",
    "info": "#bdbdbd",
}
MAX_ALERTS = 200
MAX_MAP_POINTS = 5000


@dataclass
class ReportData:
    """Everything the template shows, computed before rendering."""

    organisation: str
    generated_at: str
    summary: dict[str, Any]
    control_gaps: list[dict[str, Any]]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    assets: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _script_json(value: Any) -> Markup:
    """JSON that is safe inside an HTML ``<script>`` element (so not HTML-escaped again)."""
    text = json.dumps(value, default=str, separators=(",", ":"))
    return Markup(  # noqa: S704 - every <, > and & is escaped as a JSON unicode escape
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )


def _summary(ws: Workspace) -> dict[str, Any]:
    by_sev = dict(
        ws.con.execute(
            "SELECT severity, count(*) FROM alerts WHERE suppressed_by IS NULL GROUP BY 1"
        ).fetchall()
    )
    by_detector = ws.con.execute(
        "SELECT detector, severity, count(*) FROM alerts WHERE suppressed_by IS NULL "
        "GROUP BY 1, 2 ORDER BY 1"
    ).fetchall()
    tally = counts(ws)
    return {
        "campaigns": ws.count("campaigns"),
        "alerts": tally["active"],
        "suppressed": tally["suppressed"],
        "by_severity": {s: int(by_sev.get(s, 0)) for s in SEVERITIES},
        "by_detector": by_detector,
        "flows": ws.count("flows"),
        "logins": ws.count("logins"),
        "quarantined": ws.count("quarantine"),
    }


def _control_gaps(ws: Workspace, config: Config) -> list[dict[str, Any]]:
    """Posture counts straight from the logins, whatever detectors ran."""
    row = ws.query(
        "SELECT"
        " count(*) FILTER (WHERE mfa = 'no') AS no_mfa,"
        " count(DISTINCT user) FILTER (WHERE mfa = 'no') AS no_mfa_users,"
        " count(*) FILTER (WHERE service = 'vpn' AND machine_cert = 'no') AS no_cert,"
        " count(DISTINCT user) FILTER (WHERE service = 'vpn' AND machine_cert = 'no')"
        "  AS no_cert_users"
        " FROM logins WHERE outcome = 'success' AND service IN ('vpn', 'ssh', 'sso')"
    ).to_pylist()[0]
    policy = config.remote_access
    gaps = [
        {
            "finding": "Successful remote-access logins without MFA",
            "count": row["no_mfa"],
            "accounts": row["no_mfa_users"],
            "policy": "required" if policy.mfa_required else "not required",
        },
        {
            "finding": "VPN sessions without a machine certificate",
            "count": row["no_cert"],
            "accounts": row["no_cert_users"],
            "policy": "required" if policy.machine_certificate_required else "not required",
        },
    ]
    posture = ws.con.execute(
        "SELECT detector, count(*) FROM alerts WHERE suppressed_by IS NULL "
        "AND techniques LIKE '%T1133%' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    gaps += [
        {"finding": f"Alerts of {d}", "count": n, "accounts": None, "policy": ""}
        for d, n in posture
    ]
    return gaps


def _detector_figure(summary: dict[str, Any]) -> dict[str, Any]:
    detectors = sorted({d for d, _, _ in summary["by_detector"]})
    data = [
        {
            "type": "bar",
            "name": sev,
            "y": detectors,
            "x": [
                next((n for d, s, n in summary["by_detector"] if d == det and s == sev), 0)
                for det in detectors
            ],
            "orientation": "h",
            "marker": {"color": SEVERITY_COLOURS[sev]},
        }
        for sev in SEVERITIES
    ]
    layout = {
        "barmode": "stack",
        "height": 120 + 28 * len(detectors),
        "margin": {"l": 220, "r": 20, "t": 30, "b": 40},
        "title": {"text": "Alerts by detector and severity"},
    }
    return {"data": data, "layout": layout}


def _map_figure(ws: Workspace) -> dict[str, Any] | None:
    """Login sources and edge peers on a world map; relays (addresses in alerts) in red."""
    rows = ws.query(
        "WITH peers AS ("
        "  SELECT src_ip AS ip, 'login source' AS kind FROM logins"
        "  UNION ALL SELECT src_ip, 'edge peer' FROM flows WHERE direction = 'inbound'"
        "  UNION ALL SELECT dst_ip, 'edge peer' FROM flows WHERE direction = 'outbound'),"
        " relays AS (SELECT src_ip AS ip FROM alerts WHERE suppressed_by IS NULL"
        "  UNION SELECT dst_ip FROM alerts WHERE suppressed_by IS NULL)"
        " SELECT round(i.latitude, 1) AS lat, round(i.longitude, 1) AS lon,"
        "  any_value(i.country) AS country, p.kind,"
        "  bool_or(p.ip IN (SELECT ip FROM relays)) AS relay,"
        "  count(*) AS records, count(DISTINCT p.ip) AS addresses"
        " FROM peers p JOIN ip_info i ON i.ip = p.ip"
        " WHERE i.latitude IS NOT NULL GROUP BY 1, 2, 4 ORDER BY records DESC LIMIT ?",
        [MAX_MAP_POINTS],
    ).to_pylist()
    if not rows:
        return None
    groups = {
        "login sources": ([r for r in rows if r["kind"] == "login source" and not r["relay"]],
                          "#3182bd"),
        "edge peers": ([r for r in rows if r["kind"] == "edge peer" and not r["relay"]],
                       "#74c476"),
        "relay nodes (in alerts)": ([r for r in rows if r["relay"]], "#de2d26"),
    }  # fmt: skip
    traces = [
        {
            "type": "scattergeo",
            "name": name,
            "lat": [r["lat"] for r in chosen],
            "lon": [r["lon"] for r in chosen],
            "text": [
                f"{r['country'] or '?'}: {r['addresses']} addresses, {r['records']} records"
                for r in chosen
            ],
            "marker": {
                "color": colour,
                "size": [min(30, 4 + 2 * r["addresses"] ** 0.5) for r in chosen],
                "opacity": 0.75,
            },
            "hoverinfo": "text",
        }
        for name, (chosen, colour) in groups.items()
    ]
    layout = {
        "height": 460,
        "margin": {"l": 0, "r": 0, "t": 30, "b": 0},
        "geo": {
            "showcountries": True,
            "showland": True,
            "landcolor": "#f2f2f2",
            "projection": {"type": "natural earth"},
            "lonaxis": {"range": [-180, 180]},
            "lataxis": {"range": [-60, 85]},
        },
        "title": {"text": "Where logins and edge connections come from"},
        "legend": {"orientation": "h"},
    }
    return {"data": traces, "layout": layout}


def _asset_figures(ws: Workspace, config: Config) -> list[dict[str, Any]]:
    """Per edge asset: hourly bytes against its hour-of-week median +- 3 MAD band."""
    assets = []
    for asset in config.edge_assets:
        ranges = [netaddr.network(a) for a in asset.addresses]
        cond = " OR ".join(
            f"(k BETWEEN '{r.start_key}' AND '{r.end_key}')" for r in ranges
        )  # keys are hex digits produced by orbwatch, never input text
        rows = ws.query(
            "WITH hits AS ("
            " SELECT ts_start, src_bytes + dst_bytes AS b, src_key AS k FROM flows"
            " UNION ALL SELECT ts_start, src_bytes + dst_bytes, dst_key FROM flows),"
            f" hourly AS (SELECT date_trunc('hour', ts_start) AS hour,"
            f"  sum(coalesce(b, 0)) AS bytes FROM hits WHERE {cond} GROUP BY 1),"
            " how AS (SELECT *, (isodow(hour) - 1) * 24 + hour(hour) AS slot FROM hourly),"
            " centre AS (SELECT slot, median(bytes) AS med FROM how GROUP BY slot),"
            " band AS (SELECT slot, med, median(abs(bytes - med)) AS mad"
            "  FROM how JOIN centre USING (slot) GROUP BY slot, med)"
            " SELECT hour, bytes, med, mad FROM how JOIN band USING (slot) ORDER BY hour"
        ).to_pylist()
        if not rows:
            continue
        upper = [r["med"] + 3 * 1.4826 * r["mad"] for r in rows]
        lower = [max(0.0, r["med"] - 3 * 1.4826 * r["mad"]) for r in rows]
        hours = [r["hour"] for r in rows]
        outliers = [r for r, hi in zip(rows, upper, strict=True) if r["bytes"] > hi and r["mad"]]
        data = [
            {"type": "scatter", "x": hours, "y": upper, "mode": "lines", "line": {"width": 0},
             "name": "baseline high", "showlegend": False},
            {"type": "scatter", "x": hours, "y": lower, "mode": "lines", "fill": "tonexty",
             "line": {"width": 0}, "fillcolor": "rgba(49,130,189,0.2)",
             "name": "baseline (median ± 3 MAD per hour of week)"},
            {"type": "scatter", "x": hours, "y": [r["bytes"] for r in rows], "mode": "lines",
             "name": "bytes per hour", "line": {"color": "#08519c"}},
            {"type": "scatter", "x": [r["hour"] for r in outliers],
             "y": [r["bytes"] for r in outliers], "mode": "markers", "name": "anomalies",
             "marker": {"color": "#de2d26", "size": 8}},
        ]  # fmt: skip
        layout = {
            "height": 300,
            "margin": {"l": 60, "r": 20, "t": 30, "b": 40},
            "title": {"text": f"{asset.name} ({asset.role})"},
        }
        assets.append(
            {
                "name": asset.name,
                "role": str(asset.role),
                "anomalies": len(outliers),
                "figure": {"data": data, "layout": layout},
            }
        )
    return assets


def _campaigns(ws: Workspace) -> list[dict[str, Any]]:
    campaigns: list[dict[str, Any]] = ws.query(
        "SELECT * FROM campaigns ORDER BY score DESC LIMIT 50"
    ).to_pylist()
    for c in campaigns:
        ids = json.loads(c["alert_ids"])
        members = ws.query(
            "SELECT alert_id, detector, severity, title, first_seen, last_seen FROM alerts "
            "WHERE alert_id IN (SELECT unnest(?)) ORDER BY first_seen",
            [ids],
        ).to_pylist()
        relays = json.loads(c["relays"])
        churn = ws.query(
            "SELECT ip, min(t) AS first, max(t) AS last FROM ("
            " SELECT src_ip AS ip, ts_start AS t FROM flows UNION ALL"
            " SELECT dst_ip, ts_start FROM flows UNION ALL SELECT src_ip, ts FROM logins)"
            " WHERE ip IN (SELECT unnest(?)) GROUP BY ip ORDER BY first LIMIT 300",
            [relays],
        ).to_pylist()
        c["users"] = json.loads(c["users"])
        c["targets"] = json.loads(c["targets"])
        c["linked_by"] = json.loads(c["linked_by"])
        c["timeline"] = _timeline_figure(members)
        c["churn"] = _churn_figure(churn, c["campaign_id"])
    return campaigns


def _timeline_figure(members: list[dict[str, Any]]) -> dict[str, Any]:
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": [m["first_seen"], m["last_seen"]],
            "y": [m["detector"], m["detector"]],
            "line": {"color": SEVERITY_COLOURS[m["severity"]], "width": 8},
            "name": m["alert_id"],
            "text": [m["title"], m["title"]],
            "hoverinfo": "text+x",
            "showlegend": False,
        }
        for m in members
    ]
    layout = {
        "height": 140 + 24 * len({m["detector"] for m in members}),
        "margin": {"l": 220, "r": 20, "t": 30, "b": 40},
        "title": {"text": "Timeline"},
    }
    return {"data": data, "layout": layout}


def _churn_figure(churn: list[dict[str, Any]], campaign_id: str) -> dict[str, Any]:
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "x": [r["first"], r["last"]],
            "y": [r["ip"], r["ip"]],
            "line": {"color": "#de2d26", "width": 4},
            "showlegend": False,
            "hoverinfo": "y+x",
        }
        for r in churn
    ]
    layout = {
        "height": min(900, 120 + 12 * len(churn)),
        "margin": {"l": 160, "r": 20, "t": 30, "b": 40},
        "title": {"text": f"Relay addresses first to last seen ({campaign_id})"},
        "yaxis": {"showticklabels": len(churn) <= 40},
    }
    return {"data": data, "layout": layout}


def _alerts(ws: Workspace) -> list[dict[str, Any]]:
    alerts = list_alerts(ws, limit=MAX_ALERTS, with_evidence=True)
    for alert in alerts:
        alert["evidence"] = json.loads(alert["evidence"] or "{}")
        alert["rows"] = evidence_rows(ws, alert)[:10]
    return alerts


def collect(ws: Workspace, config: Config) -> ReportData:
    """Compute every section of the report from the workspace."""
    summary = _summary(ws)
    data = ReportData(
        organisation=config.organisation,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        summary=summary,
        control_gaps=_control_gaps(ws, config),
        campaigns=_campaigns(ws),
        alerts=_alerts(ws),
        assets=_asset_figures(ws, config),
    )
    data.figures["detectors"] = _detector_figure(summary)
    world = _map_figure(ws)
    if world is None:
        data.notes.append(
            "No located addresses: run `orbwatch enrich` to place sources on the map."
        )
    else:
        data.figures["map"] = world
    if not config.edge_assets:
        data.notes.append("No edge assets in the config: per-asset traffic is not shown.")
    return data


def render(data: ReportData) -> str:
    """The report page as one HTML string with everything it needs inline."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orbwatch.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["script_json"] = _script_json
    plotly_js = (resources.files("plotly") / "package_data" / "plotly.min.js").read_text()
    world = (resources.files("orbwatch.report") / "assets" / "world_110m.json").read_text()
    return env.get_template("report.html.j2").render(
        d=data,
        version=__version__,
        colours=SEVERITY_COLOURS,
        plotly_js=plotly_js.replace("</script", "<\\/script"),
        world_json=world,
    )


def write_report(ws: Workspace, config: Config, path: Path) -> ReportData:
    """Collect and render the report into ``path``."""
    data = collect(ws, config)
    path.write_text(render(data), encoding="utf-8")
    return data
