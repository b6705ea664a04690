"""The HTML report: self-contained, escaped, and drawn by a real browser without errors."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from tests.scenario import build

from orbwatch.alerts.campaigns import build_campaigns
from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.run import run
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.report.html import write_report
from orbwatch.store.workspace import Workspace

ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = "</script><script>alert('owned')</script><img src=x onerror=alert(1)>"
CONFIG = Config(
    organisation="Example & Co",
    internal_networks=["10.0.0.0/8"],
    edge_assets=[{"name": "vpn-gw", "addresses": ["10.1.1.1"], "role": "vpn-gateway"}],
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    with Workspace.open(tmp / "ws.duckdb") as ws:
        build(tmp, ws, CONFIG)
        run(ws, DetectContext(CONFIG, DuckDBEngine(ws)), ["known_bad_infrastructure"])
        hostile = ws.query("SELECT * FROM alerts LIMIT 1").to_pylist()[0]
        hostile.update(alert_id="hostile", title=HOSTILE, explanation=HOSTILE, user=HOSTILE)
        ws.append("alerts", pa.Table.from_pylist([hostile]))
        located = pa.table(
            {
                "ip": ["45.9.148.10", "185.220.101.4"],
                "ip_key": ["x1", "x2"],
                "latitude": [52.37, 50.11],
                "longitude": [4.89, 8.68],
                "country": ["NL", "DE"],
            }
        )
        ws.con.execute("DELETE FROM ip_info WHERE ip IN ('45.9.148.10', '185.220.101.4')")
        ws.append("ip_info", located)
        assert build_campaigns(ws, CONFIG).num_rows >= 1
        path = tmp / "report.html"
        write_report(ws, CONFIG, path)
    return path


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", html, re.I)
    assert "Content-Security-Policy" in html
    assert "world_110m" in html and "Plotly" in html


def test_attacker_strings_are_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert HOSTILE not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(" in html
    assert "Example &amp; Co" in html


def _browser_or_skip() -> str:
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium on this machine (Debian package `chromium`)")


def test_report_draws_charts_and_map_without_console_errors(report: Path) -> None:
    from playwright.sync_api import sync_playwright

    executable = _browser_or_skip()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:"))
                else errors.append(f"network request to {r.url}"))  # fmt: skip
        page.goto(report.as_uri())
        page.wait_for_selector("#fig-map .geo path", timeout=15_000)
        plots = page.locator(".js-plotly-plot").count()
        outline = page.evaluate(
            "[...document.querySelectorAll('#fig-map .geo path')]"
            ".reduce((n, p) => n + (p.getAttribute('d') || '').length, 0)"
        )
        markers = page.locator("#fig-map .scattergeo path.point").count()
        bars = page.locator("#fig-detectors .bars path").count()
        assets = page.locator("[data-asset] .scatterlayer .trace").count()
        ARTEFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTEFACTS / "report.png"), full_page=True)
        browser.close()
    assert errors == [], json.dumps(errors, indent=1)
    assert plots >= 4  # detectors, map, one asset, the open campaign's timeline and churn
    assert outline > 20_000, "the embedded world map was not drawn"
    assert markers >= 2 and bars >= 1 and assets >= 3
    if os.environ.get("CI"):
        print(f"screenshot: {ARTEFACTS / 'report.png'}")
