"""Logins from listed addresses: the intel match of known_bad_infrastructure, applied to logins."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.scenario import append_logins, login, raised

from orbwatch.detect.login_from_known_bad_source import LoginFromKnownBadSource
from orbwatch.enrich.intel import add_list
from orbwatch.store.workspace import Workspace

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _listed(ws: Workspace, tmp_path: Path) -> None:
    feed = tmp_path / "relays.netset"
    feed.write_text("45.9.148.0/24\n185.220.101.4\n10.0.0.0/8\n", encoding="utf-8")
    add_list(ws, str(feed), "relays")


def test_success_from_a_listed_relay_is_critical(workspace: Workspace, tmp_path: Path) -> None:
    _listed(workspace, tmp_path)
    rows = [
        login(DAY, "alice", "45.9.148.10", outcome="failure"),
        login(DAY + dt.timedelta(minutes=1), "alice", "45.9.148.10"),
        login(DAY, "bob", "185.220.101.4", outcome="failure"),
        login(DAY, "carol", "185.220.101.4", outcome="failure"),
        login(DAY, "dave", "10.1.1.1"),  # listed only by a bogon range: never reported
        login(DAY, "erin", "73.1.1.10"),
    ]
    append_logins(workspace, rows, "vpn.log")
    found = {a["entity"]: a for a in raised(workspace, LoginFromKnownBadSource())}
    assert set(found) == {"45.9.148.10", "185.220.101.4"}
    relay = found["45.9.148.10"]
    assert relay["severity"] == "critical" and relay["user"] == "alice"
    assert relay["evidence"]["login_records"] == ["vpn.log:1", "vpn.log:2"]
    assert "alice logged in from it" in relay["explanation"]
    tor = found["185.220.101.4"]
    assert tor["severity"] == "medium"
    assert tor["evidence"]["accounts"] == ["bob", "carol"]
    assert tor["techniques"] == "T1078,T1110,T1090"


def test_one_failed_account_is_low(workspace: Workspace, tmp_path: Path) -> None:
    _listed(workspace, tmp_path)
    append_logins(workspace, [login(DAY, "bob", "185.220.101.4", outcome="failure")])
    [alert] = raised(workspace, LoginFromKnownBadSource())
    assert alert["severity"] == "low"
