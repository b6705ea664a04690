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


def test_wazuh_pam_and_sshd_lines(corpus: Path) -> None:
    """Wazuh's PAM test lines: the sshd ones are logins, the others (su, vsftpd) are counted."""
    lines = raw_lines(corpus / "auth/linux-pam/wazuh_pam.ini")
    parsed = Sshd(year=2024).parse_lines(line_table(lines))
    assert parsed.rows.num_rows + parsed.rejects.num_rows + sum(parsed.skipped.values()) == len(
        lines
    )
    assert parsed.rejects.num_rows == 0
    sshd_lines = raw_lines(corpus / "auth/linux-sshd/wazuh_sshd.ini")
    sshd = Sshd(year=2024).parse_lines(line_table(sshd_lines))
    total = sshd.rows.num_rows + sshd.rejects.num_rows + sum(sshd.skipped.values())
    assert total == len(sshd_lines)
    rows = sshd.rows.to_pylist()
    assert rows and all(r["ts"] is not None and r["outcome"] for r in rows)
    failed = [r for r in rows if r["event"] == "failed" and r["src_ip"]]
    assert failed and all(r["outcome"] == "failure" for r in failed)


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
