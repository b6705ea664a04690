"""New network for the user: what counts as new, the exit node near the victim, learning period."""

from __future__ import annotations

import datetime as dt

import pytest
from tests.scenario import IP_INFO, append_ip_info, append_logins, login, raised

from orbwatch.baseline.logins import update_login_baselines
from orbwatch.config import Config
from orbwatch.detect.new_network_for_user import NewNetworkForUser
from orbwatch.store.workspace import Workspace

T0 = dt.datetime(2026, 10, 1, 8, tzinfo=dt.UTC)
HOME = "73.1.1.10"  # AS7922, residential, US/NY


def _history(ws: Workspace, count: int, days: float, user: str = "alice") -> dt.datetime:
    """``count`` home logins over ``days``; returns the time of the last one."""
    step = dt.timedelta(days=days) / max(count - 1, 1)
    append_logins(ws, [login(T0 + i * step, user, HOME) for i in range(count)], "history.log")
    append_ip_info(ws, IP_INFO)
    return T0 + (count - 1) * step


def _probe(ws: Workspace, ts: dt.datetime, ip: str, baseline_first: bool = True) -> list[dict]:
    if baseline_first:
        update_login_baselines(ws, Config())
    append_logins(ws, [login(ts, "alice", ip)], "probe.log")
    if not baseline_first:
        update_login_baselines(ws, Config())
    return raised(ws, NewNetworkForUser())


@pytest.mark.parametrize("baseline_first", [True, False])
def test_hosting_asn_in_own_country_is_high(workspace: Workspace, baseline_first: bool) -> None:
    last = _history(workspace, 20, 20)
    [alert] = _probe(workspace, last + dt.timedelta(hours=5), "45.77.1.1", baseline_first)
    assert alert["severity"] == "high"
    assert alert["user"] == "alice" and alert["src_ip"] == "45.77.1.1"
    assert alert["explanation"].startswith(
        "alice logged in to vpn-gw-1 from AS20473 (hosting, US) (45.77.1.1) for the first time; "
        "alice's 20 earlier logins came from AS7922 in US."
    )
    assert alert["evidence"]["login_records"] == ["probe.log:1"]
    assert alert["evidence"]["past_asns"] == [{"asn": "7922", "logins": 20}]


def _daily(ws: Workspace, days: int = 20) -> dt.datetime:
    """One home login a day at 08:00 UTC for ``days`` days; returns the last day's 00:00."""
    rows = [login(T0 + dt.timedelta(days=d), "alice", HOME) for d in range(days)]
    append_logins(ws, rows, "history.log")
    append_ip_info(ws, IP_INFO)
    return T0.replace(hour=0) + dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("hour", "client", "reported"),
    [
        (20, "AnyConnect 5.1", True),  # 12 hours from every earlier login
        (11, "AnyConnect 5.1", True),  # 3 hours away: outside the 2-hour tolerance
        (10, "AnyConnect 5.1", False),  # 2 hours away: a usual hour, nothing else new
        (9, "python-requests/2.31", True),  # usual hour, but a client never used
    ],
)
def test_residential_asn_in_own_country_is_the_exit_node_near_the_victim(
    workspace: Workspace, hour: int, client: str, reported: bool
) -> None:
    """A new residential ASN in the account's own country is reported (high) when a second
    property of the login is unfamiliar too: the hour of the day or the client."""
    day = _daily(workspace)
    update_login_baselines(workspace, Config())
    probe = login(day + dt.timedelta(hours=hour), "alice", "24.5.6.7", client=client)  # AS701
    append_logins(workspace, [probe], "probe.log")
    found = raised(workspace, NewNetworkForUser())
    assert len(found) == int(reported)
    if reported:
        [alert] = found
        assert alert["severity"] == "high"
        assert "country the account already uses" in alert["explanation"]
        assert set(alert["evidence"]["new"]) == {"network", "region"}
        assert alert["evidence"]["unfamiliar_hour"] is (hour >= 11)
    # Without corroboration every novelty is reported.
    assert len(raised(workspace, NewNetworkForUser(require_corroboration=False))) == 1


def test_too_few_remote_logins_is_the_first_days_at_home(workspace: Workspace) -> None:
    day = _daily(workspace, 2)
    office = [login(day - dt.timedelta(days=d), "alice", "10.1.1.1") for d in range(3, 20)]
    append_logins(workspace, office, "office.log")
    update_login_baselines(workspace, Config(), full=True)
    probe = login(day + dt.timedelta(hours=20), "alice", "24.5.6.7")
    append_logins(workspace, [probe], "probe.log")
    config = Config(internal_networks=["10.0.0.0/8"])
    assert raised(workspace, NewNetworkForUser(), config) == []  # 2 remote logins before
    assert len(raised(workspace, NewNetworkForUser(min_remote_logins=2), config)) == 1


@pytest.mark.parametrize(("client", "reported"), [("curl/8.5", True), ("AnyConnect 5.1", False)])
def test_residential_abroad_is_medium_with_a_new_client(
    workspace: Workspace, client: str, reported: bool
) -> None:
    """Abroad, the hour of day moves with the traveller's time zone: only a new client
    corroborates a new country."""
    day = _daily(workspace)
    update_login_baselines(workspace, Config())
    probe = login(day + dt.timedelta(hours=20), "alice", "81.1.2.3", client=client)  # GB
    append_logins(workspace, [probe], "probe.log")
    found = raised(workspace, NewNetworkForUser())
    assert [a["severity"] for a in found] == (["medium"] if reported else [])


def test_known_network_raises_nothing(workspace: Workspace) -> None:
    last = _history(workspace, 20, 20)
    assert _probe(workspace, last + dt.timedelta(hours=5), "73.1.1.10") == []
    assert _probe(workspace, last + dt.timedelta(hours=6), "73.1.2.10") == []  # same AS, region


@pytest.mark.parametrize(
    ("count", "days", "profiled"),
    [
        (10, 6, True),  # 10 logins, 6 days: profiled
        (9, 6, False),  # 9 logins: still learning
        (10, 4, False),  # 10 logins but 4 days: before the 5-day minimum
        (2, 14, True),  # 14 days with few logins: profiled
        (2, 13, False),  # 13 days: still learning
    ],
)
def test_learning_period_gives_a_weaker_labelled_verdict(
    workspace: Workspace, count: int, days: float, profiled: bool
) -> None:
    last = _history(workspace, count, days)
    probe_at = max(last, T0 + dt.timedelta(days=days)) + dt.timedelta(minutes=1)
    [alert] = _probe(workspace, probe_at, "45.77.1.1")
    assert alert["evidence"]["profiled"] is profiled
    assert alert["severity"] == ("high" if profiled else "low")
    assert ("(not yet profiled)" in alert["title"]) is not profiled


def test_unprofiled_account_from_residential_source_is_not_reported(
    workspace: Workspace,
) -> None:
    last = _history(workspace, 3, 2)
    assert _probe(workspace, last + dt.timedelta(hours=1), "24.5.6.7") == []


def test_corporate_egress_is_never_new(workspace: Workspace) -> None:
    last = _history(workspace, 20, 20)
    update_login_baselines(workspace, Config())
    append_logins(workspace, [login(last + dt.timedelta(hours=1), "alice", "45.77.1.1")])
    assert raised(workspace, NewNetworkForUser(), Config(corporate_egress=["45.77.1.0/24"])) == []
