"""VPN log formats on the corpus files, checked against the upstream expectations."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.sources.firewall.corpus_lines import line_table, raw_lines

from orbwatch.config import Config
from orbwatch.sources.base import Parsed
from orbwatch.sources.ingest import Ingestor
from orbwatch.sources.syslog import Clock, LineSource, _YearState, header_times, split_headers
from orbwatch.sources.vpn import VPN_SOURCES
from orbwatch.sources.vpn.cisco_asa_vpn import CiscoAsaVpn
from orbwatch.sources.vpn.fortigate_vpn import FortigateVpn
from orbwatch.sources.vpn.openvpn import OpenVpn
from orbwatch.sources.vpn.panos_globalprotect import PanosGlobalProtect
from orbwatch.sources.vpn.strongswan import StrongSwan
from orbwatch.store.workspace import Workspace

UTC = dt.UTC
# corpus file -> (format, rows, quarantined, skipped): every line accounted for.
EXPECTED: dict[str, tuple[str, int, int, int]] = {
    "vpn/cisco-asa-anyconnect/elastic_test-anyconnect-messages.log": ("cisco_asa_vpn", 15, 0, 0),
    "vpn/fortigate/crowdsec_fortinet-vpn-bf__fortinet-vpn-bf.log": ("fortigate_vpn", 9, 0, 0),
    "vpn/openvpn/crowdsec_openvpn__openvpn.log": ("openvpn", 22, 0, 2),
    "vpn/paloalto-globalprotect/cribl_pan_globalprotect.log.json": ("panos_globalprotect", 1, 0, 0),
    "vpn/strongswan/crowdsec_charon-ipsec-logs__charon-ipsec-logs.log": ("strongswan", 48, 0, 106),
    "vpn/wireguard/crowdsec_wireguard-logs__wireguard-logs.log": ("wireguard", 4, 0, 0),
}
# CrowdSec parser.assert -> the log it describes, the format, and how its names map to ours.
CROWDSEC = {
    "vpn/openvpn/crowdsec_openvpn.parser.assert": "vpn/openvpn/crowdsec_openvpn__openvpn.log",
    "vpn/fortigate/crowdsec_fortinet-vpn-bf.parser.assert": (
        "vpn/fortigate/crowdsec_fortinet-vpn-bf__fortinet-vpn-bf.log"
    ),
    "vpn/strongswan/crowdsec_charon-ipsec-logs.parser.assert": (
        "vpn/strongswan/crowdsec_charon-ipsec-logs__charon-ipsec-logs.log"
    ),
    "vpn/wireguard/crowdsec_wireguard-logs.parser.assert": (
        "vpn/wireguard/crowdsec_wireguard-logs__wireguard-logs.log"
    ),
}
NAMES = {
    "source_ip": "src_ip",
    "sport": "src_port",
    "source_port": "src_port",
    "target_user": "user",
}
# CrowdSec's parsed (Evt.Parsed) and normalised (Evt.Meta) values of the parse stage.
_ASSERTION = re.compile(
    r'^results\["s01-parse"\]\["[^"]+"\]\[(\d+)\]\.Evt\.(?:Parsed|Meta)\["(\w+)"\] == "(.*)"$'
)


def crowdsec_values(path: Path) -> list[tuple[int, str, str]]:
    """(1-based line, our column, value) for every value CrowdSec asserts that we store."""
    out = []
    for line in path.read_text().splitlines():
        m = _ASSERTION.match(line.strip())
        if m and m.group(2) in NAMES:
            out.append((int(m.group(1)) + 1, NAMES[m.group(2)], m.group(3)))
    return out


def _ingest(ws: Workspace, path: Path) -> Any:
    return Ingestor(ws, Config()).ingest(str(path), None, year=2024)


def _rows(ws: Workspace, path: Path) -> dict[int, dict[str, Any]]:
    rows = ws.query(
        "SELECT * FROM logins WHERE source_file = ? ORDER BY source_offset", [str(path)]
    ).to_pylist()
    return {r["source_offset"]: r for r in rows}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus_file_is_detected_and_fully_accounted_for(
    corpus: Path, workspace: Workspace, name: str, expected: tuple[str, int, int, int]
) -> None:
    fmt, rows, quarantined, skipped = expected
    path = corpus / name
    result = _ingest(workspace, path)
    assert (result.format, result.status) == (fmt, "loaded")
    assert (result.rows, result.quarantined, sum(result.skipped.values())) == (
        rows,
        quarantined,
        skipped,
    )
    # Quarantine rate per file: zero, every line is a row or a counted non-login line.
    assert result.quarantined / (rows + quarantined + skipped) == 0
    checked = workspace.scalar(
        "SELECT count(*) FROM logins WHERE source_file = ? AND service = 'vpn' AND ts IS NOT NULL "
        "AND outcome IN ('success', 'failure', 'end', 'info') AND mfa = 'unknown' "
        "AND machine_cert IN ('yes', 'no', 'unknown') AND (src_ip IS NULL OR src_key IS NOT NULL)",
        [str(path)],
    )
    assert checked == rows


@pytest.mark.parametrize(("expectations", "log"), sorted(CROWDSEC.items()))
def test_crowdsec_parsed_values(
    corpus: Path, workspace: Workspace, expectations: str, log: str
) -> None:
    """IP, port and user of every line CrowdSec parsed, on the row orbwatch made of it."""
    path = corpus / log
    _ingest(workspace, path)
    rows = _rows(workspace, path)
    checked = 0
    for offset, column, value in crowdsec_values(corpus / expectations):
        if offset not in rows:
            continue
        ours = rows[offset][column]
        # FortiOS writes N/A for an unknown user; orbwatch stores no user.
        assert (str(ours) if ours is not None else "N/A") == value, (offset, column)
        checked += 1
    if "charon" in log:
        # CrowdSec parses charon's packet lines, which orbwatch counts as skipped; the peers it
        # finds are the peers of orbwatch's rows (carried from those lines).
        theirs = {
            v for _, column, v in crowdsec_values(corpus / expectations) if column == "src_ip"
        }
        assert theirs == {r["src_ip"] for r in rows.values() if r["src_ip"]} == {"116.178.2.170"}
        return
    assert checked >= 4


def test_crowdsec_failures_are_failures(corpus: Path, workspace: Workspace) -> None:
    """Every line CrowdSec's OpenVPN, FortiGate and WireGuard parsers call a failed login."""
    for assertions, log in CROWDSEC.items():
        if "charon" in log:  # CrowdSec flags packets by size there, not log messages
            continue
        path = corpus / log
        _ingest(workspace, path)
        rows = _rows(workspace, path)
        failed = {n for n, column, _ in crowdsec_values(corpus / assertions) if column == "src_ip"}
        assert failed and all(rows[n]["outcome"] == "failure" for n in failed), log


def test_openvpn_times_and_certificate_names(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "vpn/openvpn/crowdsec_openvpn__openvpn.log"
    _ingest(workspace, path)
    rows = _rows(workspace, path)
    assert rows[5]["ts"] == dt.datetime(2024, 12, 15, 14, 11, 27, tzinfo=UTC)
    assert (rows[14]["event"], rows[14]["user"], rows[14]["machine_cert"]) == (
        "cert_verify_error",
        "malicious-client",
        "no",
    )
    assert (rows[18]["event"], rows[18]["user"], rows[18]["src_ip"]) == (
        "auth_failed",
        "client1",
        "192.168.1.13",
    )
    assert (rows[23]["user"], rows[23]["outcome"]) == ("client3", "success")


def test_openvpn_wazuh_ldap_lines(corpus: Path) -> None:
    lines = raw_lines(corpus / "vpn/openvpn/wazuh_openvpn_ldap.ini")
    parsed = OpenVpn(year=2024).parse_lines(line_table(lines))
    assert parsed.rejects.num_rows == 0
    got = parsed.rows.select(["event", "outcome", "user"]).to_pylist()
    assert got == [
        {"event": "ldap_failed", "outcome": "failure", "user": None},
        {"event": "ldap_failed", "outcome": "failure", "user": "Harry T. Hacker"},
    ]


def test_asa_corpus_groups_users_and_outcomes(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "vpn/cisco-asa-anyconnect/elastic_test-anyconnect-messages.log"
    _ingest(workspace, path)
    rows = _rows(workspace, path)
    assert (rows[11]["event"], rows[11]["outcome"], rows[11]["policy"]) == (
        "113039",
        "success",
        "VPN_USERS",
    )
    assert rows[11]["ts"] == dt.datetime(2018, 10, 10, 12, 34, 56, tzinfo=UTC)
    assert (rows[15]["user"], rows[15]["src_ip"], rows[15]["policy"]) == (
        "first.o'last@example.com",
        "81.2.69.144",
        "GroupPolicy Remote-VPN",
    )
    assert [rows[n]["outcome"] for n in (1, 3, 9, 12)] == ["failure", "info", "failure", "failure"]


ASA_MORE = [
    "<166>Jun 22 2022 13:29:11 asa : %ASA-4-113019: Group = GP, Username = bob, IP = "
    "198.51.100.7, Session disconnected. Session Type: SSL, Duration: 1d 2h:03m:04s, "
    "Bytes xmt: 100, Bytes rcv: 23, Reason: User Requested",
    "Nov 2 10:00:00 asa %ASA-6-717022: Certificate was successfully validated. serial number: "
    "12AB, subject name: CN=laptop-7.corp.example,OU=IT,O=Corp.",
    "Nov 2 10:00:00 asa %ASA-3-717009: Certificate validation failed. Peer certificate key usage"
    " is invalid, serial number: 1, subject name: CN=x.",
    "Nov 2 10:00:00 asa %ASA-6-113005: AAA user authentication Rejected : reason = AAA failure :"
    " server = 10.1.1.1 : user = ***** : user IP = 203.0.113.9",
    "Nov 2 10:00:00 asa %ASA-6-722055: Group <GP> User <bob> IP <203.0.113.9> Client Type: "
    "Cisco AnyConnect VPN Agent for Windows 4.10.05085",
    "Nov 2 10:00:00 asa %ASA-6-302013: Built inbound TCP connection 1 for outside:1.2.3.4/5 "
    "(1.2.3.4/5) to inside:10.0.0.1/80 (10.0.0.1/80)",
    "Nov 2 10:00:00 asa %ASA-4-722999: Group <GP> User <bob> IP <203.0.113.9> new text",
]


def test_asa_totals_certificates_and_masked_users() -> None:
    parsed = CiscoAsaVpn(year=2024).parse_lines(line_table(ASA_MORE))
    rows = {r["source_offset"]: r for r in parsed.rows.to_pylist()}
    assert (rows[1]["outcome"], rows[1]["bytes"], rows[1]["duration_s"]) == ("end", 123, 93784.0)
    assert (rows[1]["failure_reason"], rows[1]["policy"]) == ("User Requested", "GP")
    assert (rows[2]["machine_cert"], rows[2]["user"]) == ("yes", "laptop-7.corp.example")
    assert (rows[3]["machine_cert"], rows[3]["outcome"]) == ("no", "failure")
    assert (rows[4]["user"], rows[4]["src_ip"], rows[4]["outcome"]) == (
        None,
        "203.0.113.9",
        "failure",
    )
    assert rows[5]["client"] == "Cisco AnyConnect VPN Agent for Windows 4.10.05085"
    assert parsed.skipped == {"Cisco ASA message that is not a VPN or authentication event": 1}
    assert parsed.rejects["source_offset"].to_pylist() == [7]  # unknown VPN message


def test_fortigate_tunnel_up_down_and_ipsec() -> None:
    lines = [
        'date=2024-05-01 time=11:00:00 devname="FG1" type="event" subtype="vpn" tz="+0200" '
        'logdesc="SSL VPN tunnel down" action="tunnel-down" tunneltype="ssl-tunnel" '
        'tunnelid=123 remip=203.0.113.5 user="bob" group="vpn-users" duration=3600 '
        'sentbyte=1000 rcvdbyte=2345 reason="N/A" msg="SSL tunnel shutdown"',
        'date=2024-05-01 time=11:00:00 type="event" subtype="vpn" logdesc="IPsec connection '
        'status changed" action="tunnel-up" remip=198.51.100.2 locip=192.0.2.1 remport=500 '
        'user="N/A" xauthuser="alice" vpntunnel="dialup" tunneltype="ipsec"',
        'date=2024-05-01 time=11:00:00 type="traffic" subtype="forward" srcip=1.1.1.1',
    ]
    parsed = FortigateVpn(year=2024).parse_lines(line_table(lines))
    down, up = parsed.rows.to_pylist()
    assert down["ts"] == dt.datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    assert (down["outcome"], down["bytes"], down["duration_s"], down["policy"]) == (
        "end",
        3345,
        3600.0,
        "vpn-users",
    )
    assert (up["outcome"], up["user"], up["src_port"], up["policy"]) == (
        "success",
        "alice",
        500,
        "dialup",
    )
    assert parsed.skipped == {"FortiGate traffic/forward log: not a VPN event": 1}


def test_globalprotect_wrapped_json_and_system_events(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "vpn/paloalto-globalprotect/cribl_pan_globalprotect.log.json"
    _ingest(workspace, path)
    (row,) = _rows(workspace, path).values()
    assert (row["event"], row["user"], row["src_ip"], row["outcome"]) == (
        "gateway-hip-report",
        "user",
        "76.1.1.1",
        "info",
    )
    assert (row["client"], row["policy"]) == ("GlobalProtect 5.0.8 SysAdmin", "opo-mgm-portal")
    assert row["ts"] == dt.datetime(2021, 7, 20, 23, 59, 2, tzinfo=UTC)
    lines = [
        "<14>Jan 5 10:00:00 fw1 1,2024/01/05 10:00:00,0123,SYSTEM,globalprotect,0,2024/01/05 "
        '10:00:00,,globalprotectgateway-auth-fail,GW-N,0,0,general,informational,"GlobalProtect'
        " gateway user authentication failed. Login from: 203.0.113.50, Source region: NL, User "
        "name: admin, Reason: Authentication failed: Invalid username or password, Auth type: "
        'profile.",123,0x0',
        "<14>Jan 5 10:00:00 fw1 1,2024/01/05 10:00:00,0123,GLOBALPROTECT,0,2305,2024/01/05 "
        "10:00:00,vsys1,gateway-logout,logout,,,jdoe,US,LAPTOP1,198.51.100.4,0.0.0.0,10.0.0.5,"
        "0.0.0.0,hostid,ser,6.0.1,Windows,10,1,client logout,,,success,,3600,pre-logon,0,GW-N,"
        "125,0x0",
        "<14>Jan 5 10:00:00 fw1 1,2024/01/05 10:00:00,0123,TRAFFIC,end,2305,2024/01/05",
    ]
    parsed = PanosGlobalProtect(year=2024).parse_lines(line_table(lines))
    failed, logout = parsed.rows.to_pylist()
    assert (failed["outcome"], failed["user"], failed["src_ip"], failed["auth_method"]) == (
        "failure",
        "admin",
        "203.0.113.50",
        "profile",
    )
    assert failed["failure_reason"] == "Authentication failed: Invalid username or password"
    assert (failed["country_logged"], failed["machine_cert"]) == ("NL", "unknown")
    assert (logout["outcome"], logout["duration_s"], logout["machine_cert"]) == (
        "end",
        3600.0,
        "yes",
    )
    assert parsed.skipped == {"PAN-OS TRAFFIC log: not a GlobalProtect event": 1}


def test_strongswan_carries_peer_and_identity_within_an_ike_sa() -> None:
    lines = [
        "Feb 22 20:23:03 gw charon[1]: 06[NET] <c|7> received packet: from 198.51.100.9[4500] "
        "to 192.0.2.1[4500] (80 bytes)",
        "Feb 22 20:23:03 gw charon[1]: 06[IKE] <c|7> EAP-MS-CHAPv2 username: 'carol'",
        "Feb 22 20:23:03 gw charon[1]: 06[IKE] <c|8> EAP-MS-CHAPv2 verification failed, retry (1)",
        "Feb 22 20:23:04 gw charon[1]: 06[IKE] <c|7> authentication of 'CN=laptop' with "
        "RSA_EMSA_PKCS1_SHA2_256 successful",
        "Feb 22 20:23:04 gw charon[1]: 06[IKE] <c|7> authentication of 'gw' (myself) with "
        "pre-shared key successful",
        "Feb 22 20:23:04 gw charon[1]: 06[IKE] <c|7> IKE_SA c[7] established between "
        "192.0.2.1[gw]...198.51.100.9[CN=laptop]",
    ]
    rows = StrongSwan(year=2024).parse_lines(line_table(lines)).rows.to_pylist()
    identity, other_sa, cert, established = rows
    assert (identity["user"], identity["src_ip"], identity["src_port"]) == (
        "carol",
        "198.51.100.9",
        4500,
    )
    assert (other_sa["user"], other_sa["src_ip"]) == (None, None)  # another IKE SA
    assert (cert["outcome"], cert["user"], cert["machine_cert"]) == ("success", "CN=laptop", "yes")
    assert (established["policy"], established["src_ip"]) == ("c", "198.51.100.9")


def test_one_digit_day_with_one_space_keeps_its_time() -> None:
    """``Nov 2 15:40:14`` was read from fixed positions as 05:40:14."""
    stamps = ["Nov 2 15:40:14 h x: m", "Nov  2 15:40:14 h x: m", "Nov 2 2021 15:40:14 h x: m"]
    df = split_headers(pl.DataFrame({"line": stamps}))
    times = header_times(df, Clock(year=2020), _YearState()).to_list()
    assert [t.isoformat() for t in times] == [
        "2020-11-02T15:40:14+00:00",
        "2020-11-02T15:40:14+00:00",
        "2021-11-02T15:40:14+00:00",
    ]


def _count(parsed: Parsed) -> int:
    return int(parsed.rows.num_rows + parsed.rejects.num_rows + sum(parsed.skipped.values()))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=120),
            st.sampled_from(ASA_MORE),
            st.builds(lambda s: "Nov 2 10:00:00 gw charon[1]: 06[IKE] <c|1> " + s, st.text()),
            st.builds(lambda s: 'type="event" subtype="vpn" action=' + s, st.text()),
        ),
        max_size=25,
    )
)
def test_garbage_never_crashes_and_every_line_is_counted(lines: list[str]) -> None:
    clean = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    nonblank = sum(1 for line in clean if line.strip())
    for cls in VPN_SOURCES:
        source: LineSource = cls(year=2024)
        assert _count(source.parse_lines(line_table(clean))) == nonblank, cls.name
        cls.sniff("\n".join(clean).encode("utf-8", "replace"), "x.log")


def test_vpn_formats_come_before_the_firewall_formats() -> None:
    from orbwatch.sources import BUILTIN

    names = [cls.name for cls in BUILTIN]
    assert names.index("fortigate_vpn") < names.index("fortigate_traffic")
    assert names.index("cisco_asa_vpn") < names.index("cisco_asa")
    assert isinstance(line_table([]), pa.Table)
