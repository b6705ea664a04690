"""Remote-access control gaps: MFA, machine certificates, allow lists, dormant accounts."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login, raised

from orbwatch.config import Config, RemoteAccessPolicy
from orbwatch.detect.remote_access_control_gaps import RemoteAccessControlGaps
from orbwatch.store.workspace import Workspace

DAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _kinds(ws: Workspace, config: Config) -> dict[str, dict]:
    return {a["evidence"]["kind"]: a for a in raised(ws, RemoteAccessControlGaps(), config)}


def test_success_without_mfa_where_required(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    rows = [
        login(DAY, "alice", "73.1.1.10", mfa="no"),
        login(DAY, "bob", "45.77.1.1", mfa="no", service="sso"),
        login(DAY, "carol", "73.1.1.10", mfa="unknown"),
        login(DAY, "dave", "10.1.1.1", mfa="no"),  # from inside
        login(DAY, "erin", "73.1.1.10", mfa="no", outcome="failure"),
    ]
    append_logins(workspace, rows)
    found = raised(workspace, RemoteAccessControlGaps(), Config())
    got = {(a["user"], a["severity"]) for a in found}
    assert got == {("alice", "medium"), ("bob", "high")}
    relaxed = Config(remote_access=RemoteAccessPolicy(mfa_required=False))
    assert raised(workspace, RemoteAccessControlGaps(), relaxed) == []


def test_vpn_without_machine_certificate(workspace: Workspace) -> None:
    append_logins(workspace, [login(DAY, "bob", "73.1.2.10", machine_cert="no")])
    assert _kinds(workspace, Config()) == {}
    strict = Config(remote_access=RemoteAccessPolicy(machine_certificate_required=True))
    alert = _kinds(workspace, strict)["no_machine_certificate"]
    assert alert["title"] == "bob connected to vpn-gw-1 without a device certificate"


def test_logins_outside_the_allow_lists(workspace: Workspace) -> None:
    append_ip_info(workspace, IP_INFO)
    append_logins(
        workspace,
        [login(DAY, "alice", "73.1.1.10"), login(DAY, "bob", "5.9.1.1")],
    )
    by_country = Config(remote_access=RemoteAccessPolicy(allowed_countries=["US"]))
    assert [a["user"] for a in raised(workspace, RemoteAccessControlGaps(), by_country)] == ["bob"]
    by_source = Config(remote_access=RemoteAccessPolicy(allowed_sources=["5.9.1.0/24"]))
    assert [a["user"] for a in raised(workspace, RemoteAccessControlGaps(), by_source)] == ["alice"]


@pytest.mark.parametrize(("gap_days", "alerts"), [(44.9, 0), (45.0, 1)])
def test_dormant_account_used_remotely(workspace: Workspace, gap_days: float, alerts: int) -> None:
    rows = [
        login(DAY, "old", "73.1.1.10"),
        login(DAY + dt.timedelta(days=gap_days), "old", "5.9.1.1"),
    ]
    append_logins(workspace, rows)
    found = [a for a in raised(workspace, RemoteAccessControlGaps()) if a["user"] == "old"]
    assert len(found) == alerts
    if found:
        assert found[0]["evidence"]["kind"] == "dormant_account"
        assert found[0]["evidence"]["login_records"] == ["auth.log:2"]


@pytest.mark.parametrize(("homes", "alerts"), [(4, 0), (5, 1)])
def test_account_only_on_changing_residential_addresses(
    workspace: Workspace, homes: int, alerts: int
) -> None:
    append_ip_info(workspace, IP_INFO)
    ips = [*(f"81.{i}.2.3" for i in range(1, 6)), *(f"92.{i}.0.9" for i in range(1, 6))]
    rows = [login(DAY + dt.timedelta(days=i), "svc", ips[i % homes]) for i in range(8)]
    append_logins(workspace, rows)
    found = raised(workspace, RemoteAccessControlGaps())
    assert len(found) == alerts
    if found:
        assert found[0]["evidence"]["kind"] == "residential_only_account"
        assert found[0]["severity"] == "low"
