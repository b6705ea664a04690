"""Login convergence: several accounts on one outside source; one account on many homes."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login, raised

from orbwatch.baseline.logins import update_login_baselines
from orbwatch.config import Config
from orbwatch.detect.login_convergence import LoginConvergence
from orbwatch.store.workspace import Workspace

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


@pytest.mark.parametrize(("users", "alerts"), [(2, 0), (3, 1)])
def test_several_accounts_on_one_hosting_source(
    workspace: Workspace, users: int, alerts: int
) -> None:
    append_ip_info(workspace, IP_INFO)
    rows = [login(DAY + dt.timedelta(hours=n), f"user{n}", "45.77.1.1") for n in range(users)]
    append_logins(workspace, rows, "vpn.log")
    found = raised(workspace, LoginConvergence())
    assert len(found) == alerts
    if found:
        assert found[0]["severity"] == "high"
        assert found[0]["src_ip"] == "45.77.1.1"
        assert found[0]["evidence"]["accounts"] == ["user0", "user1", "user2"]
        assert found[0]["evidence"]["login_records"] == ["vpn.log:1", "vpn.log:2", "vpn.log:3"]


def test_familiar_and_corporate_sources_are_not_convergence(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    office = [login(DAY - dt.timedelta(days=10 - 3 * n), f"user{n}", "73.1.1.10") for n in range(4)]
    append_logins(workspace, office, "history.log")
    update_login_baselines(workspace, Config())
    today = [login(DAY + dt.timedelta(minutes=n), f"user{n}", "73.1.1.10") for n in range(4)]
    today += [login(DAY + dt.timedelta(minutes=n), f"user{n}", "45.77.1.1") for n in range(4)]
    append_logins(workspace, today, "today.log")
    assert raised(workspace, LoginConvergence(), Config(corporate_egress=["45.77.1.1"])) == []


@pytest.mark.parametrize(("sources", "alerts"), [(3, 0), (4, 1)])
def test_one_account_hopping_across_residential_networks(
    workspace: Workspace, sources: int, alerts: int
) -> None:
    append_ip_info(workspace, IP_INFO)
    rows = [
        login(DAY + dt.timedelta(minutes=30 * i), "frank", f"81.{i + 1}.2.3", service="sso")
        for i in range(sources)
    ]
    append_logins(workspace, rows)
    found = raised(workspace, LoginConvergence())
    assert len(found) == alerts
    if found:
        assert found[0]["user"] == "frank"
        assert found[0]["severity"] == "medium"
        assert found[0]["evidence"]["sources"] == 4


def test_hopping_needs_unrelated_networks(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    # Five /24s of one residential ISP (AS7922): one ASN, so not "unrelated".
    rows = [
        login(DAY + dt.timedelta(minutes=10 * i), "alice", f"73.1.{i + 1}.10") for i in range(5)
    ]
    append_logins(workspace, rows)
    assert raised(workspace, LoginConvergence()) == []
