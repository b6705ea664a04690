"""Triage states and suppression rules: they take effect, survive re-runs, and lose nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.scenario import build
from typer.testing import CliRunner

from orbwatch.alerts.store import counts, list_alerts, set_status
from orbwatch.alerts.suppress import SuppressionRule, load_rules, suppressed_by
from orbwatch.cli.main import app
from orbwatch.config import Config
from orbwatch.detect.base import DetectContext
from orbwatch.detect.run import run
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.errors import ConfigError, OrbwatchError
from orbwatch.store.workspace import Workspace

TOR = "185.220.101.0/24"


def _detect(ws: Workspace, config: Config, rules: list[SuppressionRule] | None = None) -> int:
    runs = run(ws, DetectContext(config, DuckDBEngine(ws)), ["known_bad_infrastructure"], rules)
    return runs[0].suppressed


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.open(tmp_path / "ws.duckdb")
    build(tmp_path, workspace, Config(internal_networks=["10.0.0.0/8"]))
    return workspace


def test_suppressed_alerts_are_kept_counted_and_listable(ws: Workspace) -> None:
    config = Config(internal_networks=["10.0.0.0/8"])
    assert _detect(ws, config) == 0
    total = counts(ws)["active"]
    rule = SuppressionRule(name="tor-research", comment="lab uses Tor on purpose", cidr=TOR)
    suppressed = _detect(ws, config, [rule])
    assert suppressed >= 1
    assert counts(ws) == {"active": total - suppressed, "suppressed": suppressed}
    hidden = list_alerts(ws, suppressed="suppressed")
    assert {a["suppressed_by"] for a in hidden} == {"tor-research"}
    assert all("185.220.101." in (a["src_ip"] or "") + (a["dst_ip"] or "") for a in hidden)
    assert len(list_alerts(ws, suppressed="all")) == total


def test_expired_rule_stops_suppressing(ws: Workspace) -> None:
    config = Config(internal_networks=["10.0.0.0/8"])
    old = SuppressionRule(name="old", comment="x", cidr=TOR, expires=dt.date(2020, 1, 1))
    assert _detect(ws, config, [old]) == 0


def test_config_rules_apply_without_a_flag(ws: Workspace) -> None:
    config = Config(
        internal_networks=["10.0.0.0/8"],
        suppress=[
            SuppressionRule(name="all-kbi", comment="x", detector="known_bad_infrastructure")
        ],
    )
    _detect(ws, config)
    assert counts(ws)["active"] == 0


def test_triage_state_survives_a_new_detect_run(ws: Workspace) -> None:
    config = Config(internal_networks=["10.0.0.0/8"])
    _detect(ws, config)
    first = list_alerts(ws)[0]
    assert set_status(ws, [first["alert_id"][:8]], "false-positive", "our scanner") == 1
    _detect(ws, config)
    again = next(a for a in list_alerts(ws, limit=None) if a["alert_id"] == first["alert_id"])
    assert again["status"] == "false-positive"
    assert again["status_comment"] == "our scanner"
    assert list_alerts(ws, status="false-positive")[0]["alert_id"] == first["alert_id"]
    with pytest.raises(OrbwatchError, match="unknown status"):
        set_status(ws, [first["alert_id"]], "closed")


def test_rule_scopes() -> None:
    alert = {
        "detector": "beaconing",
        "src_ip": "10.0.0.5",
        "dst_ip": "198.51.100.9",
        "user": "Alice",
        "entity": "vpn-gw-1",
        "evidence": '{"dst_port": 8443, "direction": "outbound"}',
    }
    today = dt.date(2026, 11, 25)

    def hit(**scope: object) -> bool:
        rule = SuppressionRule(name="r", comment="c", **scope)  # type: ignore[arg-type]
        return suppressed_by([alert], [rule], {"198.51.100.9": 64500}, today) == ["r"]

    assert hit(cidr="198.51.100.0/24") and not hit(cidr="203.0.113.0/24")
    assert hit(asn=64500) and not hit(asn=64501)
    assert hit(user="alice") and hit(asset="vpn-gw-1") and hit(port=8443)
    assert hit(direction="outbound") and not hit(direction="inbound")
    assert hit(detector="beaconing", port=8443) and not hit(detector="beaconing", port=443)
    with pytest.raises(ValidationError, match="at least one scope"):
        SuppressionRule(name="r", comment="c")


def test_rules_file_errors_name_file_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[suppress]]\nname = "a"\ncomment = "b"\ncidr = "10.0.0.0/8"\n')
    assert load_rules(path)[0].cidr == "10.0.0.0/8"
    path.write_text('[[suppress]]\nname = "a"\ncomment = "b"\ncidr = "nope"\n')
    with pytest.raises(ConfigError, match=r"rules.toml: suppress\[0\]\.cidr"):
        load_rules(path)


def test_cli_triage_format_and_suppressions(tmp_path: Path, ws: Workspace) -> None:
    ws.close()
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[suppress]]\nname = "tor"\ncomment = "lab"\ncidr = "{TOR}"\n')
    cli = CliRunner()
    base = ["--workspace", str(tmp_path / "ws.duckdb"), "--config", str(tmp_path / "none.toml")]
    (tmp_path / "none.toml").write_text('internal_networks = ["10.0.0.0/8"]\n')
    result = cli.invoke(app, [*base, "detect", "--suppressions", str(rules)])
    assert result.exit_code == 0, result.output
    listed = cli.invoke(app, [*base, "alerts"])
    assert "suppressed by rules" in listed.output
    ocsf = cli.invoke(app, [*base, "alerts", "--format", "ocsf", "--view", "all"])
    assert ocsf.exit_code == 0 and ocsf.output.count('"class_uid": 2004') >= 2
    alert_id = json.loads(ocsf.output.splitlines()[0])["finding_info"]["uid"]
    triaged = cli.invoke(app, [*base, "alerts", "triage", alert_id, "--status", "resolved"])
    assert "1 alerts now resolved" in triaged.output
