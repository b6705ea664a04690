"""Distributed password spray: campaign thresholds, quietness, escalation, a real brute force."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login, raised

from orbwatch.baseline.logins import update_login_baselines
from orbwatch.config import Config
from orbwatch.detect.password_spray import PasswordSpray
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
RELAYS = [f"92.{i}.0.9" for i in range(1, 16)]


def _spray(ws: Workspace, accounts: int, sources: int, per_source: int = 1) -> None:
    """``accounts`` accounts, one failure each, cycling through ``sources`` relays;
    ``per_source`` extra failures from the first relay make it loud."""
    rows = [
        login(
            DAY + dt.timedelta(minutes=13 * i),
            f"user{i}",
            RELAYS[i % sources],
            outcome="failure",
            client="python-requests/2.31",
        )
        for i in range(accounts)
    ]
    rows += [
        login(
            DAY + dt.timedelta(hours=20, seconds=i),
            f"user{i % accounts}",
            RELAYS[0],
            outcome="failure",
        )
        for i in range(per_source - 1)
    ]
    append_ip_info(ws, IP_INFO)
    append_logins(ws, rows, source="spray.log")


@pytest.mark.parametrize(("accounts", "sources", "alerts"), [(9, 5, 0), (10, 5, 1), (10, 4, 0)])
def test_campaign_needs_min_accounts_and_min_sources(
    workspace: Workspace, accounts: int, sources: int, alerts: int
) -> None:
    _spray(workspace, accounts, sources)
    found = raised(workspace, PasswordSpray())
    assert len(found) == alerts
    if found:
        alert = found[0]
        assert alert["severity"] == "high"
        assert alert["evidence"]["distributed"] is True
        assert alert["evidence"]["accounts"] == accounts
        assert alert["evidence"]["client_strings"] == 1
        assert alert["evidence"]["risky_source_share"] == 1.0
        assert alert["evidence"]["login_records"][:2] == ["spray.log:1", "spray.log:2"]
        assert alert["techniques"] == "T1110.003,T1090"


def test_one_loud_source_is_not_the_mechanism(workspace: Workspace) -> None:
    # 200 failures against 20 accounts from a single address: no campaign of many sources.
    append_logins(
        workspace,
        [
            login(DAY + dt.timedelta(seconds=i), f"user{i % 20}", "5.9.1.1", outcome="failure")
            for i in range(200)
        ],
    )
    assert raised(workspace, PasswordSpray()) == []


@pytest.mark.parametrize(("loud_attempts", "severity"), [(5, "high"), (6, "high")])
def test_quiet_share_boundary(workspace: Workspace, loud_attempts: int, severity: str) -> None:
    # 5 sources, one making 5 or 6 attempts: 4/5 = 0.8 of the sources stay quiet either way.
    _spray(workspace, 10, 5, per_source=loud_attempts - 1)
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == severity
    quiet = 1.0 if loud_attempts <= 5 else 0.8
    assert alert["evidence"]["quiet_source_share"] == quiet


def _known(ws: Workspace, accounts: int) -> None:
    """Earlier successful logins of ``user0`` ... : the accounts exist in the organisation."""
    rows = [login(DAY - dt.timedelta(days=3), f"user{i}", "73.1.1.10") for i in range(accounts)]
    append_logins(ws, rows, source="known.log")


@pytest.mark.parametrize(("known", "severity"), [(5, "medium"), (4, "low")])
def test_guessing_is_medium_when_half_the_accounts_are_the_organisations(
    workspace: Workspace, known: int, severity: str
) -> None:
    _known(workspace, known)
    _spray(workspace, 10, 5, per_source=30)
    [alert] = raised(workspace, PasswordSpray(quiet_share=0.9))
    assert alert["severity"] == severity
    assert alert["evidence"]["targeted"] is (severity == "medium")
    assert alert["title"].startswith("Password guessing")
    assert alert["evidence"]["loudest_sources"][0] == {"src_ip": RELAYS[0], "attempts": 31}


def test_evidence_lists_every_source(workspace: Workspace) -> None:
    _spray(workspace, 12, 6)
    [alert] = raised(workspace, PasswordSpray())
    assert alert["evidence"]["sources"] == RELAYS[:6]
    assert alert["evidence"]["source_count"] == 6
    [bounded] = raised(workspace, PasswordSpray(max_listed_sources=2))
    assert len(bounded["evidence"]["sources"]) == 2 and bounded["evidence"]["source_count"] == 6


def test_consecutive_days_are_one_campaign(workspace: Workspace) -> None:
    _spray(workspace, 12, 6)
    later = [
        login(DAY + dt.timedelta(days=d, hours=2, minutes=i), f"user{i}", RELAYS[6 + i % 6])
        for d in (1, 3)
        for i in range(12)
    ]
    append_logins(workspace, [{**r, "outcome": "failure"} for r in later], source="later.log")
    found = sorted(raised(workspace, PasswordSpray()), key=lambda a: a["first_seen"])
    assert [a["evidence"]["windows"] for a in found] == [2, 1]  # days 0-1, then day 3
    assert found[0]["evidence"]["sources"] == sorted(RELAYS[:12], key=lambda ip: int(ip[3:-4]))
    assert "over 2 days" in found[0]["title"]


def test_internal_sources_do_not_count(workspace: Workspace) -> None:
    append_logins(
        workspace,
        [login(DAY, f"user{i}", f"10.0.0.{i}", outcome="failure") for i in range(30)],
    )
    assert raised(workspace, PasswordSpray(), Config(internal_networks=["10.0.0.0/8"])) == []


def test_success_from_a_new_source_escalates_to_critical(workspace: Workspace) -> None:
    history = [login(DAY - dt.timedelta(days=d), "user3", "73.1.1.10") for d in range(1, 20)]
    append_logins(workspace, history, source="history.log")
    _spray(workspace, 12, 6)
    # user3 at home (usual /24) after the spray: the owner, not the attacker.
    append_logins(workspace, [login(DAY + dt.timedelta(hours=6), "user3", "73.1.1.10")], "a.log")
    update_login_baselines(workspace, Config())
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == "high"
    # user5, who works at 14:00 UTC, from a hosting address at 06:00 the next day with a
    # password alone: the spray paid off.
    usual = [login(DAY - dt.timedelta(days=d, hours=-14), "user5", "73.1.2.10") for d in (15, 8, 2)]
    append_logins(workspace, usual, source="history5.log")
    late = login(DAY + dt.timedelta(hours=30), "user5", "45.77.1.1", mfa="no")
    append_logins(workspace, [late], "b.log")
    update_login_baselines(workspace, Config(), full=True)  # user5's history came in late
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == "critical"
    assert alert["evidence"]["compromised_accounts"] == ["user5"]
    assert alert["evidence"]["users"] == ["user5"]
    assert alert["evidence"]["success_sources"] == ["45.77.1.1"]
    assert alert["user"] == "user5"
    assert "user5 then logged in successfully" in alert["explanation"]


def test_success_with_a_second_factor_at_the_usual_hour_does_not_escalate(
    workspace: Workspace,
) -> None:
    """The owner on a new network (a phone, a hotel) with MFA at their usual time."""
    history = [login(DAY - dt.timedelta(days=d), "user3", "73.1.1.10") for d in range(1, 20)]
    append_logins(workspace, history, source="history.log")
    _spray(workspace, 12, 6)
    update_login_baselines(workspace, Config())
    owner = login(DAY + dt.timedelta(days=1), "user3", "24.5.6.7")  # 00:00 UTC, as before
    append_logins(workspace, [owner], "c.log")
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == "high"
    # The same login from one of the spraying addresses escalates whatever the factor.
    relay = {**owner, "src_ip": RELAYS[2], "ts": owner["ts"] + dt.timedelta(minutes=5)}
    append_logins(workspace, [relay], "d.log")
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == "critical"


def test_success_after_follow_window_does_not_escalate(workspace: Workspace) -> None:
    _spray(workspace, 12, 6)
    late = DAY + dt.timedelta(hours=5 * 13 / 60 + 72, minutes=1)
    append_logins(workspace, [login(late, "user5", "45.77.1.1", mfa="no")], "late.log")
    [alert] = raised(workspace, PasswordSpray())
    assert alert["severity"] == "high"


def test_loghub_openssh_brute_force_names_its_top_sources(corpus: Path, tmp_path: Path) -> None:
    """The LabSZ server's real log: guessing from many sources, the loudest three named."""
    log = corpus / "auth/linux-sshd/loghub_OpenSSH_2k.log"
    with Workspace.open(tmp_path / "ws.duckdb") as ws:
        Ingestor(ws, Config()).ingest(str(log), "sshd")
        [alert] = raised(ws, PasswordSpray())
    loudest = [s["src_ip"] for s in alert["evidence"]["loudest_sources"]]
    assert loudest[:3] == ["183.62.140.253", "187.141.143.180", "103.99.0.122"]
    # Classic guessing (the loud sources are not quiet) of names that mostly never logged in
    # on this server (root, admin, ...): untargeted background guessing, reported low.
    assert alert["severity"] == "low"
    assert alert["evidence"]["targeted"] is False
    assert alert["evidence"]["accounts"] >= 50 and alert["evidence"]["source_count"] >= 20
    assert {"183.62.140.253", "187.141.143.180", "103.99.0.122"} <= set(
        alert["evidence"]["sources"]
    )
    # The one success (fztu) was never among the guessed accounts.
    assert alert["evidence"]["compromised_accounts"] == []
    assert all(ref.startswith(str(log)) for ref in alert["evidence"]["login_records"])
