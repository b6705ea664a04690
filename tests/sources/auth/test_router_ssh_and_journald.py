"""Dropbear (router SSH), the journald JSON export of sshd, and PAM lines from the corpus."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sources.firewall.corpus_lines import line_table, raw_lines

from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources import detect_format
from orbwatch.sources.auth.dropbear import Dropbear
from orbwatch.sources.auth.journald import JournaldJson
from orbwatch.sources.auth.sshd import Sshd
from orbwatch.sources.ingest import Ingestor
from orbwatch.sources.inputs import Input
from orbwatch.store.workspace import Workspace

UTC = dt.UTC
DROPBEAR_LOG = "auth/dropbear/crowdsec_dropbear-logs__dropbear-logs.log"
# CrowdSec's dropbear parser.assert, line by line: (source_ip, port, user) it parsed.
CROWDSEC_DROPBEAR = {
    2: ("192.168.9.163", 49242, "foobar"),
    3: ("192.168.9.163", 49906, None),
    4: ("192.168.1.1", 35928, None),
}


def _ingest(ws: Workspace, path: Path) -> Any:
    return Ingestor(ws, Config()).ingest(str(path), None, year=2024)


def test_dropbear_corpus_is_detected_and_quarantined_for_want_of_time(
    corpus: Path, workspace: Workspace
) -> None:
    """The corpus file holds bare messages without a stamp: detected, and quarantined with the
    reason (a login without a time cannot be placed)."""
    result = _ingest(workspace, corpus / DROPBEAR_LOG)
    assert (result.format, result.rows, result.quarantined) == ("dropbear", 0, 4)
    assert result.reasons == {"ts: missing": 4}


def test_dropbear_matches_crowdsec_expectations(corpus: Path) -> None:
    """The same lines behind a syslog header: IP, port, user and outcome as CrowdSec has them."""
    lines = [
        f"Mar  7 12:34:5{n} router dropbear[1546]: {line}"
        for n, line in enumerate(raw_lines(corpus / DROPBEAR_LOG))
        if line.strip()
    ]
    parsed = Dropbear(year=2024).parse_lines(line_table(lines))
    assert parsed.rejects.num_rows == 0
    rows = {r["source_offset"]: r for r in parsed.rows.to_pylist()}
    for offset, expected in CROWDSEC_DROPBEAR.items():
        assert (rows[offset]["src_ip"], rows[offset]["src_port"], rows[offset]["user"]) == expected
    assert [rows[n]["outcome"] for n in (1, 2, 3, 4)] == ["end", "failure", "failure", "info"]
    assert rows[2]["ts"] == dt.datetime(2024, 3, 7, 12, 34, 51, tzinfo=UTC)
    assert rows[2]["service"] == "ssh"


def test_dropbear_openwrt_logread(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "logread.txt"
    path.write_text(
        "Thu Mar  7 12:34:56 2024 authpriv.info dropbear[1546]: Child connection from "
        "192.168.1.100:54321\n"
        "Thu Mar  7 12:34:57 2024 authpriv.warn dropbear[1546]: Bad password attempt for 'root' "
        "from 192.168.1.100:54321\n"
        "Thu Mar  7 12:34:58 2024 authpriv.notice dropbear[1546]: Password auth succeeded for "
        "'root' from 192.168.1.100:54321\n"
        "Thu Mar  7 12:34:58 2024 daemon.info procd: Instance dropbear::instance1 started\n"
        "Thu Mar  7 12:35:00 2024 authpriv.info dropbear[99]: Exit before auth from "
        "<203.0.113.7:4000>: (user 'admin', 10 fails): Max auth tries reached - user 'admin'\n"
    )
    result = _ingest(workspace, path)
    assert (result.format, result.rows, result.quarantined) == ("dropbear", 4, 0)
    assert result.skipped == {"not a dropbear line: program procd": 1}
    rows = workspace.query("SELECT * FROM logins ORDER BY source_offset").to_pylist()
    assert [(r["event"], r["outcome"], r["user"]) for r in rows] == [
        ("connection", "info", None),
        ("failed", "failure", "root"),
        ("accepted", "success", "root"),
        ("exit_before_auth", "info", "admin"),
    ]
    assert rows[2]["ts"] == dt.datetime(2024, 3, 7, 12, 34, 58, tzinfo=UTC)


def _journal(entries: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def test_journald_json_export_of_sshd(workspace: Workspace, tmp_path: Path) -> None:
    base = {"_HOSTNAME": "web1", "SYSLOG_IDENTIFIER": "sshd", "_PID": "811"}
    path = _journal(
        [
            {
                **base,
                "__REALTIME_TIMESTAMP": "1700000000123456",
                "MESSAGE": "Failed password for invalid user admin from 203.0.113.5 port 40222",
            },
            {
                **base,
                "__REALTIME_TIMESTAMP": "1700000001000000",
                "MESSAGE": "Accepted publickey for bob from 2001:db8::9 port 5000 ssh2: ED25519 x",
            },
            {
                **base,
                "__REALTIME_TIMESTAMP": "1700000002000000",
                "SYSLOG_IDENTIFIER": "CRON",
                "MESSAGE": "pam_unix(cron:session): session opened for user root",
            },
            {**base, "__REALTIME_TIMESTAMP": "1700000003000000", "MESSAGE": [104, 105]},
            {**base, "__REALTIME_TIMESTAMP": "1700000004000000", "MESSAGE": "weird sshd text"},
        ],
        tmp_path / "journal.json",
    )
    result = _ingest(workspace, path)
    assert (result.format, result.rows, result.quarantined) == ("journald_json", 2, 2)
    assert result.skipped == {"not an sshd line: program CRON": 1}
    failed, accepted = workspace.query("SELECT * FROM logins ORDER BY source_offset").to_pylist()
    assert failed["ts"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert (failed["user"], failed["src_ip"], failed["src_port"], failed["outcome"]) == (
        "admin",
        "203.0.113.5",
        40222,
        "failure",
    )
    assert (accepted["user"], accepted["src_ip"], accepted["auth_method"]) == (
        "bob",
        "2001:db8::9",
        "publickey",
    )
    raw = workspace.query("SELECT raw FROM quarantine ORDER BY source_offset")["raw"].to_pylist()
    assert all(text.startswith("{") for text in raw)  # the original entry, not a rebuilt line


# What each Wazuh test line says, as orbwatch columns: (event, outcome, user, src_ip, src_port),
# by 1-based position among the file's "log N pass/fail =" lines. User and address are the
# values Wazuh's sshd/pam decoders extract (srcuser/dstuser, srcip, srcport); the outcome is the
# meaning of the rule the section expects (5710/5716/5718/5760/5503 failed login, 2502 "missed
# the password more than one time", 5706/5701/5702/5757 probing, 5722/5761/5762 closed).
WAZUH_PAM = {5: ("pam_more_failures", "info", "root", "10.0.3.1", None)}
_DENIED_FROM = ("192.168.33.1", "172.18.1.100")  # the 5719 section alternates the two
WAZUH_SSHD: dict[int, tuple[str, str, str | None, str, int | None]] = {
    15: ("negotiation_failed", "info", None, "202.191.177.33", 3579),
    16: ("negotiation_failed", "info", None, "108.229.36.174", None),
    19: ("pam_error", "failure", "warez", "192.241.237.101", None),
    20: ("invalid_user", "failure", "opcione", "192.241.237.101", None),
    22: ("pam_error", "failure", "badguy", "192.168.33.1", None),
    23: ("failed", "failure", "user", "172.18.1.1", 32982),
    24: ("failed", "failure", "warez", "192.241.237.101", 54197),
    25: ("pam_error", "failure", "badguy", "192.168.33.1", None),
    26: ("failed", "failure", "sammy", "82.202.219.155", 51676),
    31: ("reverse_mapping", "info", None, "192.168.18.54", None),
    32: ("reverse_mapping", "info", None, "192.168.33.1", None),
    34: ("too_many_failures", "failure", "badguy", "192.168.33.1", 55146),
    35: ("too_many_failures", "failure", "user", "192.168.33.1", 55764),
    36: ("pam_error", "failure", "user", "192.168.33.1", None),
    37: ("failed", "failure", "user", "172.18.1.100", 43042),
    38: ("closed_preauth", "info", None, "10.0.2.2", 55462),
    # Rule 5710 calls these invalid-user attempts; the attempt is counted on its own
    # "Invalid user" line, the disconnect that ends it is context.
    39: ("disconnected", "info", "user", "172.18.1.100", 43042),
    40: ("disconnected", "info", "root", "172.18.1.100", 43042),
    41: ("disconnected", "info", "root", "172.18.1.100", 43042),
    42: ("no_identification", "info", None, "172.18.1.1", 45824),
    43: ("closed_preauth", "info", "user", "192.168.33.1", 51772),
    **{
        n: ("not_allowed", "failure", "root", _DENIED_FROM[(n - 44) % 2], None)
        for n in range(44, 54)
    },
    54: ("reverse_mapping", "info", None, "172.18.1.1", None),
    55: ("bad_protocol_version", "info", None, "172.18.1.1", 59920),
    **{n: ("failed", "failure", "user", "172.18.1.100", 43042) for n in range(56, 64)},
    **{n: ("invalid_user", "failure", "user", "212.64.151.233", None) for n in range(64, 72)},
}


def _fields(rows: dict[int, dict[str, Any]], n: int) -> tuple[Any, ...]:
    r = rows[n]
    return (r["event"], r["outcome"], r["user"], r["src_ip"], r["src_port"])


def test_wazuh_pam_lines_field_by_field(corpus: Path) -> None:
    """Wazuh's PAM test lines: the old-style ``sshd(pam_unix)`` one is an sshd login row; su
    and vsftpd are other programs, counted as skipped."""
    lines = raw_lines(corpus / "auth/linux-pam/wazuh_pam.ini")
    parsed = Sshd(year=2024).parse_lines(line_table(lines))
    assert parsed.rejects.num_rows == 0
    rows = {r["source_offset"]: r for r in parsed.rows.to_pylist()}
    assert {n: _fields(rows, n) for n in rows} == WAZUH_PAM
    assert rows[5]["ts"] == dt.datetime(2024, 11, 11, 22, 46, 29, tzinfo=UTC)
    assert parsed.skipped == {
        "not an sshd line: program su(pam_unix)": 3,
        "not an sshd line: program vsftpd(pam_unix)": 1,
    }


def test_old_style_pam_tag_lines_are_sshd_logins() -> None:
    """Linux-PAM before 0.99 wrote the module in the tag: ``sshd(pam_unix)[pid]: ...``."""
    head = "Nov 11 22:46:29 bastion sshd(pam_unix)[15794]: "
    lines = [
        head + "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
        "rhost=203.0.113.8  user=root",
        head + "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=scanner.example",
        head + "session opened for user alice by (uid=0)",
        head + "session closed for user alice",
        head + "check pass; user unknown",
    ]
    parsed = Sshd(year=2024).parse_lines(line_table(lines))
    got = [(r["event"], r["outcome"], r["user"], r["src_ip"]) for r in parsed.rows.to_pylist()]
    assert got == [
        ("pam_failure", "failure", "root", "203.0.113.8"),
        ("pam_failure", "failure", None, None),  # rhost is a name (UseDNS): no address kept
        ("session_opened", "info", "alice", None),
        ("session_closed", "end", "alice", None),
    ]
    assert parsed.skipped == {"sshd message that is not an authentication event": 1}


def test_wazuh_sshd_lines_field_by_field(corpus: Path) -> None:
    """Every Wazuh sshd test line with a user or an address: the values Wazuh decodes."""
    # Some fixture lines put two spaces between an ISO stamp and the host: read as one.
    lines = raw_lines(corpus / "auth/linux-sshd/wazuh_sshd.ini")
    parsed = Sshd(year=2024).parse_lines(line_table(lines))
    rows = {r["source_offset"]: r for r in parsed.rows.to_pylist()}
    assert {n: _fields(rows, n) for n in rows} == WAZUH_SSHD
    assert rows[20]["ts"] == dt.datetime(2013, 10, 30, 13, 51, 30, 267401, tzinfo=UTC)
    assert rows[22]["ts"] == dt.datetime(2020, 3, 23, 13, 47, 42, 801612, tzinfo=UTC)
    assert rows[19]["failure_reason"] == "User not known to the underlying authentication module"
    reasons = dict(zip(*parsed.rejects.select(["source_offset", "reason"]).to_pydict().values()))
    # A Solaris message-id prefix, and an address anonymised as "183.106.179.x".
    assert sorted(reasons) == [30, 33]
    assert reasons[33] == "src_ip: 183.106.179 is not a valid IP address"
    skipped = len(lines) - len(rows) - len(reasons)
    assert parsed.skipped == {"sshd message that is not an authentication event": skipped}


@pytest.mark.parametrize(
    "name",
    [
        "auth/linux-pam/wazuh_pam.ini",
        "auth/linux-sshd/wazuh_sshd.ini",
        "auth/windows/wazuh_win_security.ini",
        "vpn/openvpn/wazuh_openvpn_ldap.ini",
    ],
)
def test_wazuh_test_files_are_not_taken_for_logs(corpus: Path, name: str) -> None:
    with pytest.raises(InputError, match="INI file"):
        detect_format(Input.open(str(corpus / name)))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=100),
            st.builds(
                lambda s: "Mar 7 12:34:56 r dropbear[1]: Bad password attempt " + s,
                st.text(max_size=40),
            ),
            st.builds(
                lambda s: "Thu Mar  7 12:34:56 2024 a.b dropbear[1]: Exit " + s,
                st.text(max_size=40),
            ),
        ),
        max_size=25,
    )
)
def test_garbage_never_crashes_and_every_line_is_counted(tmp_path: Path, lines: list[str]) -> None:
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    nonblank = sum(1 for line in clean if line.strip())
    parsed = Dropbear(year=2024).parse_lines(line_table(clean))
    assert parsed.rows.num_rows + parsed.rejects.num_rows + sum(parsed.skipped.values()) == nonblank
    entries = [{"__REALTIME_TIMESTAMP": "1700000000000000", "MESSAGE": line} for line in clean]
    path = _journal(
        [*entries, {"MESSAGE": "x", "__REALTIME_TIMESTAMP": "not a time"}], tmp_path / "j.json"
    )
    total = 0
    for batch in JournaldJson().parse(Input.open(str(path))):
        total += batch.rows.num_rows + batch.rejects.num_rows + sum(batch.skipped.values())
    assert total == len(entries) + 1
