"""The README's walk-through, through the real CLI, on corpus data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orbwatch.cli.main import app

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
runner = CliRunner()


def orbwatch(ws: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(
        app, ["--workspace", str(ws), *args], input=input, env={"COLUMNS": "250"}
    )
    return result.exit_code, result.output


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.exists():
        pytest.skip("shared corpus folder is absent")
    return CORPUS


def test_readme_walkthrough(tmp_path: Path, corpus: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    code, out = orbwatch(ws, "ingest", str(corpus / "zeek"), "--json")
    # Two files are not conn logs (exit 2), and one truncated line was quarantined.
    assert code == 2
    results = {Path(r["file"]).name: r for r in json.loads(out[out.index("[") :])}
    assert results["rita_open_conns__conn.log"]["rows"] == 29
    assert results["rita_truncated__conn.log"]["quarantined"] == 1
    assert results["rita_text_file__conn.log"]["status"] == "failed"
    assert "unknown format" in results["rita_text_file__conn.log"]["message"]

    code, out = orbwatch(
        ws,
        "intel",
        "add",
        str(corpus / "threat_intel/firehol/firehol_level1.netset"),
        "--name",
        "firehol_level1",
    )
    assert code == 0 and "4631 indicators" in out
    analyst = tmp_path / "analyst.txt"
    analyst.write_text("147.32.83.234  # controller of the Android RAT capture\n")
    assert orbwatch(ws, "intel", "add", str(analyst), "--name", "analyst")[0] == 0

    code, out = orbwatch(ws, "detect", "--json")
    assert code == 0
    runs = {r["detector"]: r for r in json.loads(out)}
    assert runs["known_bad_infrastructure"]["alerts"] == 1  # firehol's 10/8, 192.168/16: nothing

    code, out = orbwatch(ws, "alerts", "--json")
    alerts = json.loads(out)
    listed = [a for a in alerts if a["detector"] == "known_bad_infrastructure"]
    assert len(listed) == 1
    assert listed[0]["src_ip"] == "10.8.0.61" and listed[0]["dst_ip"] == "147.32.83.234"
    assert listed[0]["severity"] == "high"
    # The Slips captures are a horizontal and a vertical port scan: both are reported.
    scans = sorted(a["title"] for a in alerts if a["detector"] == "recon_then_access")
    assert scans == [
        "Internal address 10.0.2.112 scanned 11 address(es)",
        "Internal address 192.168.1.9 scanned 1 address(es)",
    ]
    alerts = listed

    code, out = orbwatch(ws, "alerts", "show", alerts[0]["alert_id"][:6], "--json")
    shown = json.loads(out)
    assert shown["evidence"]["lists"] == ["analyst (147.32.83.234/32, unknown, score 80)"]
    assert shown["evidence_rows"][0]["dst_port"] == 1337
    assert shown["evidence_rows"][0]["source_file"].endswith(
        "stratosphere_003-android-rat__conn.log"
    )

    code, out = orbwatch(ws, "alerts")
    assert code == 0 and "147.32.83.234" in out

    code, out = orbwatch(ws, "status", "--json")
    tables = {t["table"]: t for t in json.loads(out)["tables"]}
    assert tables["flows"]["rows"] == 29 + 29 + 59 + 58 + 41 + 50 + 361 + 18
    assert tables["quarantine"]["rows"] == 1

    code, out = orbwatch(ws, "export-tables", str(tmp_path / "pq"))
    assert code == 0 and (tmp_path / "pq" / "flows.parquet").exists()


def test_reingest_adds_nothing(tmp_path: Path, corpus: Path) -> None:
    ws = tmp_path / "ws.duckdb"
    log = str(corpus / "zeek/slips_port-scans_horizontal__conn.log")
    assert orbwatch(ws, "ingest", log)[0] == 0
    code, out = orbwatch(ws, "ingest", log)
    assert code == 0 and "skipped" in out
    code, out = orbwatch(ws, "status", "--json")
    assert {t["table"]: t["rows"] for t in json.loads(out)["tables"]}["flows"] == 41


def test_stdin_and_forced_format(tmp_path: Path, corpus: Path) -> None:
    text = (corpus / "zeek/rita_open_conns__conn.log").read_text()
    code, out = orbwatch(tmp_path / "ws.duckdb", "ingest", "-", "--format", "zeek_conn", input=text)
    assert code == 0 and "29" in out


def test_missing_file_and_bad_format_exit_2(tmp_path: Path) -> None:
    code, out = orbwatch(tmp_path / "ws.duckdb", "ingest", str(tmp_path / "nope.log"))
    assert code == 2 and "no such file" in out
    other = tmp_path / "x.log"
    other.write_text("a,b\n")
    code, out = orbwatch(tmp_path / "ws.duckdb", "ingest", str(other), "--format", "nonsense")
    assert code == 2 and "unknown format 'nonsense'" in out


def test_bad_config_exit_3(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('internal_networks = ["banana"]\n')
    result = runner.invoke(
        app, ["--workspace", str(tmp_path / "w.duckdb"), "--config", str(cfg), "status"]
    )
    assert result.exit_code == 3
    assert "internal_networks" in result.output and str(cfg) in result.output


def test_init_writes_a_valid_config(tmp_path: Path) -> None:
    target = tmp_path / "orbwatch.toml"
    code, _ = orbwatch(tmp_path / "ws.duckdb", "init", str(target))
    assert code == 0 and target.exists()
    assert orbwatch(tmp_path / "ws.duckdb", "init", str(target))[0] == 1  # refuses to overwrite


def test_terminal_output_escapes_attacker_strings(tmp_path: Path) -> None:
    evil = tmp_path / "evil.csv"
    evil.write_text(
        "ts,src_ip,dst_ip,dst_port\n"
        "2026-11-02T10:00:00Z,10.0.0.1,1.2.3.4,99999\x1b[2J\x1b]0;pwned\x07[red]x[/red]\n"
    )
    code, _ = orbwatch(tmp_path / "ws.duckdb", "ingest", str(evil))
    assert code == 1  # one row quarantined
    code, out = orbwatch(tmp_path / "ws.duckdb", "quarantine")
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out and "[red]x[/red]" in out
