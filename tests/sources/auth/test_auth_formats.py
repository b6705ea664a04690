"""Authentication log formats on the corpus files, checked against the upstream expectations."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sources.login_corpus import assert_accounted_for, count_logins, ingest, login_rows

from orbwatch.sources.auth.sshd import Sshd
from orbwatch.sources.auth.windows import WindowsJson, WindowsXml
from orbwatch.sources.inputs import Input
from orbwatch.store.workspace import Workspace

UTC = dt.UTC
# corpus file -> (format, rows, quarantined, skipped): every record accounted for.
EXPECTED: dict[str, tuple[str, int, int, int]] = {
    "auth/linux-sshd/loghub_OpenSSH_2k.log": ("sshd", 1744, 0, 256),
    "auth/linux-sshd/crowdsec_ssh-bf__ssh-bf.log": ("sshd", 6, 0, 0),
    "auth/linux-sshd/crowdsec_sshd-logs__sshd-logs.log": ("sshd", 18, 1, 5),
    "auth/windows/crowdsec_windows-logs__windows-logs.log": ("windows_xml", 1, 0, 0),
    "auth/windows/cribl_5-Windows_XML_Events.json": ("windows_xml", 5, 0, 0),
    "auth/okta/cribl_cribl_okta.log.json": ("okta", 1, 0, 99),
    "auth/duo/cribl_duo_authentication_docs_sample.log.json": ("duo", 2, 0, 0),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus_file_is_fully_accounted_for(
    corpus: Path, workspace: Workspace, name: str, expected: tuple[str, int, int, int]
) -> None:
    path = corpus / name
    assert_accounted_for(ingest(workspace, path), expected)
    assert count_logins(workspace, path, "mfa IN ('yes', 'no', 'unknown')") == expected[1]


def test_sshd_matches_loghub_structured_parse(corpus: Path, workspace: Workspace) -> None:
    """Every Failed/Accepted password line: user, IP, port and outcome as loghub parsed them."""
    path = corpus / "auth/linux-sshd/loghub_OpenSSH_2k.log"
    ingest(workspace, path)
    ours = {r["source_offset"]: r for r in login_rows(workspace, path)}
    structured = corpus / "auth/linux-sshd/loghub_OpenSSH_2k.log_structured.csv"
    checked = 0
    with structured.open(newline="") as handle:
        for rec in csv.DictReader(handle):
            found = re.match(
                r"(Accepted|Failed) password for (?:invalid user )?(\S+) from (\S+) port (\d+)",
                rec["Content"],
            )
            if not found:
                continue
            row = ours[int(rec["LineId"])]
            outcome = "success" if found.group(1) == "Accepted" else "failure"
            assert (row["outcome"], row["user"], row["src_ip"], row["src_port"]) == (
                outcome,
                found.group(2),
                found.group(3),
                int(found.group(4)),
            )
            assert row["ts"].strftime("%H:%M:%S") == rec["Time"]
            assert row["auth_method"] == "password"
            checked += 1
    assert checked == 518


def test_sshd_crowdsec_expectations(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "auth/linux-sshd/crowdsec_sshd-logs__sshd-logs.log"
    ingest(workspace, path)
    rows = {r["source_offset"]: r for r in login_rows(workspace, path)}
    assert rows[1]["user"] == "pascal" and rows[1]["src_ip"] == "35.188.49.176"
    assert rows[4]["src_ip"] == "5.33.63.160" and rows[4]["user"] == "workshop"
    assert rows[6]["src_ip"] == "206.81.24.125" and rows[6]["src_port"] == 45362
    assert rows[17]["ts"] == dt.datetime(2023, 11, 13, 23, 20, 42, 738197, tzinfo=UTC)
    quarantined = workspace.query("SELECT source_offset, reason FROM quarantine").to_pylist()
    assert [q["source_offset"] for q in quarantined] == [9]  # "totobad user": not an sshd message


def test_windows_xml_crowdsec_expectations(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "auth/windows/crowdsec_windows-logs__windows-logs.log"
    ingest(workspace, path)
    (row,) = login_rows(workspace, path)
    assert row["ts"] == dt.datetime(2022, 4, 28, 16, 9, 28, 944354, tzinfo=UTC)
    assert (row["event"], row["outcome"], row["target"]) == (
        "4625",
        "failure",
        "exchange-1.mydomain.test",
    )
    assert (row["src_ip"], row["src_port"], row["user"]) == (
        "192.168.9.212",
        1628,
        "testuser@mydomain.test",
    )
    assert row["failure_reason"] == "0xc0000064: user name does not exist"
    assert row["logon_type"] == "8 network-cleartext"


def test_windows_xml_event_kinds(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "auth/windows/cribl_5-Windows_XML_Events.json"
    ingest(workspace, path)
    got = [(r["event"], r["outcome"], r["user"]) for r in login_rows(workspace, path)]
    assert got == [
        ("4625", "failure", "ADMINISTRATOR"),
        ("4672", "info", "EC2AMAZ-CPMK6J5$"),
        ("4624", "success", "JSMITH"),
        ("4634", "end", "JSMITH"),
        ("4625", "failure", "SCAN"),
    ]


def test_windows_json_wazuh_events(corpus: Path, workspace: Workspace, tmp_path: Path) -> None:
    """The Wazuh test file's events (none a logon) are all skipped; a 4625 in the same shape
    is read field for field."""
    ini = (corpus / "auth/windows/wazuh_win_security.ini").read_text()
    events = [line.split(" = ", 1)[1] for line in ini.splitlines() if line.startswith("log ")]
    logon = (
        '{"win": {"eventdata": {"targetUserName": "alice", "targetDomainName": "CORP", '
        '"ipAddress": "[2001:db8::7]:50123", "logonType": "10", "status": "0xc000006d", '
        '"subStatus": "0xc000006a", "authenticationPackageName": "NTLM"}, '
        '"system": {"eventID": "4625", "systemTime": "2021-11-08T18:09:47.4367951Z", '
        '"computer": "dc1.corp.local"}}}'
    )
    path = tmp_path / "alerts.json"
    path.write_text("\n".join([*events, logon]) + "\n")
    result = ingest(workspace, path)
    assert result.format == "windows_json"
    assert (result.rows, result.quarantined, sum(result.skipped.values())) == (1, 0, len(events))
    (row,) = login_rows(workspace, path)
    assert (row["user"], row["domain"], row["src_ip"], row["src_port"]) == (
        "alice",
        "CORP",
        "2001:db8::7",
        50123,
    )
    assert row["failure_reason"] == "0xc000006a: wrong password"
    assert row["logon_type"] == "10 remote-interactive"
    assert row["src_key"] is not None


def test_okta_sign_on_policy_event(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "auth/okta/cribl_cribl_okta.log.json"
    ingest(workspace, path)
    (row,) = login_rows(workspace, path)
    assert (row["user"], row["src_ip"], row["event"], row["outcome"]) == (
        "jdoe@acme.com",
        "97.178.252.31",
        "policy.evaluate_sign_on",
        "info",
    )
    assert row["target"] == "Okta Admin Console"
    assert row["country_logged"] == "United States"


def test_duo_results_and_factors(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "auth/duo/cribl_duo_authentication_docs_sample.log.json"
    ingest(workspace, path)
    first, second = login_rows(workspace, path)
    assert (first["user"], first["src_ip"], first["outcome"], first["mfa"]) == (
        "mjackson@example.com",
        "192.168.1.105",
        "success",
        "yes",
    )
    assert (first["mfa_method"], first["machine_cert"]) == ("duo_push", "yes")
    assert (second["outcome"], second["failure_reason"], second["machine_cert"]) == (
        "failure",
        "user_denied",
        "no",
    )


def test_duo_csv_export(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "duo.csv"
    path.write_text(
        "Timestamp (UTC),User,Application,Result,Reason,Factor,Access Device IP,TxID\n"
        "2024-05-01 10:00:00,bob,VPN,denied,user_mistake,duo_push,203.0.113.9,t1\n"
        "2024-05-01 10:01:00,bob,VPN,success,allow_unenrolled_user,not_available,"
        "203.0.113.9,t2\n"
    )
    result = ingest(workspace, path)
    assert (result.format, result.rows, result.quarantined) == ("duo_csv", 2, 0)
    rows = login_rows(workspace, path)
    assert [(r["outcome"], r["mfa"], r["source_offset"]) for r in rows] == [
        ("failure", "yes", 2),
        ("success", "no", 3),
    ]


ENTRA = """{"value": [
{"id": "1", "createdDateTime": "2020-03-13T19:15:41.6195833Z",
 "userPrincipalName": "a@contoso.com", "appDisplayName": "Graph explorer",
 "ipAddress": "131.107.159.37", "clientAppUsed": "Browser", "correlationId": "c0",
 "conditionalAccessStatus": "success", "status": {"errorCode": 0},
 "deviceDetail": {"deviceId": "d-1", "trustType": "Azure AD joined"},
 "location": {"countryOrRegion": "US"},
 "authenticationRequirement": "multiFactorAuthentication",
 "mfaDetail": {"authMethod": "PhoneAppNotification"}},
{"id": "2", "createdDateTime": "2020-03-13T19:16:00Z", "userPrincipalName": "b@contoso.com",
 "ipAddress": "203.0.113.7", "clientAppUsed": "IMAP4", "conditionalAccessStatus": "notApplied",
 "status": {"errorCode": 50126, "failureReason": "Invalid username or password."},
 "deviceDetail": {"deviceId": ""}, "authenticationRequirement": "singleFactorAuthentication"}
]}"""


def test_entra_graph_sign_ins(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "signins.json"
    path.write_text(ENTRA)
    result = ingest(workspace, path)
    assert (result.format, result.rows, result.quarantined) == ("entra_signin", 2, 0)
    ok, bad = login_rows(workspace, path)
    assert (ok["outcome"], ok["mfa"], ok["mfa_method"], ok["machine_cert"]) == (
        "success",
        "yes",
        "PhoneAppNotification",
        "yes",
    )
    assert (ok["policy"], ok["country_logged"], ok["service"]) == ("success", "US", "sso")
    assert (bad["outcome"], bad["mfa"], bad["machine_cert"], bad["auth_method"]) == (
        "failure",
        "no",
        "no",
        "IMAP4",
    )
    assert bad["failure_reason"] == "50126: Invalid username or password."


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.text(max_size=120), max_size=30))
def test_garbage_never_crashes_and_every_line_is_counted(tmp_path: Path, lines: list[str]) -> None:
    body = "\n".join(line.replace("\n", " ").replace("\r", " ") for line in lines)
    path = tmp_path / "garbage.log"
    path.write_text(body, encoding="utf-8", errors="replace")
    nonblank = sum(1 for line in body.split("\n") if line.strip())
    for source in (Sshd(), WindowsJson()):
        inp = Input.open(str(path))
        total = 0
        for parsed in source.parse(inp):
            total += parsed.rows.num_rows + parsed.rejects.num_rows + sum(parsed.skipped.values())
        if isinstance(source, Sshd):
            assert total == nonblank
    inp = Input.open(str(path))
    for parsed in WindowsXml().parse(inp):
        assert parsed.rows.num_rows <= body.count("</Event>") + 1
