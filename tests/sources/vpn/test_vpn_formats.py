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
from tests.sources.login_corpus import assert_accounted_for, count_logins, ingest, logins_by_line

from orbwatch.sources.base import Parsed
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


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus_file_is_detected_and_fully_accounted_for(
    corpus: Path, workspace: Workspace, name: str, expected: tuple[str, int, int, int]
) -> None:
    _, rows, quarantined, skipped = expected
    path = corpus / name
    result = ingest(workspace, path, year=2024)
    assert_accounted_for(result, expected)
    # Quarantine rate per file: zero, every line is a row or a counted non-login line.
    assert result.quarantined / (rows + quarantined + skipped) == 0
    assert count_logins(workspace, path, "service = 'vpn' AND mfa = 'unknown'") == rows


@pytest.mark.parametrize(("expectations", "log"), sorted(CROWDSEC.items()))
def test_crowdsec_parsed_values(
    corpus: Path, workspace: Workspace, expectations: str, log: str
) -> None:
    """IP, port and user of every line CrowdSec parsed, on the row orbwatch made of it."""
    path = corpus / log
    ingest(workspace, path, year=2024)
    rows = logins_by_line(workspace, path)
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
        ingest(workspace, path, year=2024)
        rows = logins_by_line(workspace, path)
        failed = {n for n, column, _ in crowdsec_values(corpus / assertions) if column == "src_ip"}
        assert failed and all(rows[n]["outcome"] == "failure" for n in failed), log


def test_openvpn_times_and_certificate_names(corpus: Path, workspace: Workspace) -> None:
    path = corpus / "vpn/openvpn/crowdsec_openvpn__openvpn.log"
    ingest(workspace, path, year=2024)
    rows = logins_by_line(workspace, path)
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
    ingest(workspace, path, year=2024)
    rows = logins_by_line(workspace, path)
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
    # The file logs no AAA success and no certificate check around its sessions: the log cannot
    # tell whether a second factor or a device certificate was used.
    assert (rows[11]["mfa"], rows[11]["machine_cert"], rows[11]["target"]) == (
        "unknown",
        "unknown",
        "localhost",
    )


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
    # 717009 now names its subject too (it was null): the session folding matches it by name.
    assert (rows[3]["machine_cert"], rows[3]["outcome"], rows[3]["user"]) == ("no", "failure", "x")
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
    ingest(workspace, path, year=2024)
    (row,) = logins_by_line(workspace, path).values()
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


def _asa(stamp: str, device: str, message: str) -> str:
    return f"<166>Nov 04 2024 {stamp} {device} : %ASA-{message}"


def _aaa(stamp: str, server: str, user: str, device: str = "asa1") -> str:
    return _asa(
        stamp,
        device,
        f"6-113004: AAA user authentication Successful : server = {server} : user = {user}",
    )


def _started(stamp: str, policy: str, user: str, ip: str, device: str = "asa1") -> str:
    return _asa(
        stamp,
        device,
        f"6-113039: Group <{policy}> User <{user}> IP <{ip}> AnyConnect parent session started.",
    )


# Sessions as an ASA with a primary and a secondary authentication server logs them (message
# texts from Cisco's syslog reference; offsets are 1-based line numbers).
ASA_SESSIONS = [
    # 1-8 alice: certificate named after her, two factors, session start and its companions.
    _asa(
        "09:00:00",
        "asa1",
        "6-717022: Certificate was successfully validated. serial number: "
        "1A2B, subject name: CN=alice.laptop.corp.example,OU=Staff,O=Corp.",
    ),
    _asa(
        "09:00:00",
        "asa1",
        "6-717028: Certificate chain was successfully validated with "
        "warning, revocation status was not checked.",
    ),
    _aaa("09:00:01", "10.0.0.1", "alice"),
    _aaa("09:00:20", "10.0.0.2", "alice"),  # the push was approved 19 s later
    _asa("09:00:20", "asa1", "6-113008: AAA transaction status ACCEPT : user = alice"),
    _started("09:00:21", "GP-MFA", "alice", "198.51.100.10"),
    _asa(
        "09:00:21",
        "asa1",
        "6-716001: Group <GP-MFA> User <alice> IP <198.51.100.10> WebVPN session started.",
    ),
    _asa(
        "09:00:21",
        "asa1",
        "5-722051: Group <GP-MFA> User <alice> IP <198.51.100.10> IPv4 "
        "Address <10.9.0.5> assigned to session",
    ),
    # 9-10 alice again: only the primary since her last session, no certificate check.
    _aaa("09:04:00", "10.0.0.1", "alice"),
    _started("09:04:00", "GP-MFA", "alice", "198.51.100.10"),
    # 11-12 bob: a single factor on the server that is the primary of two-factor sessions.
    _aaa("09:10:00", "10.0.0.1", "CORP\\bob"),
    _started("09:10:00", "GP-Legacy", "bob", "203.0.113.7"),
    # 13-15 carol: a RADIUS server never seen with a secondary (it may run MFA behind it), and
    # a certificate named after a machine, not an account.
    _asa(
        "09:20:00",
        "asa1",
        "6-717022: Certificate was successfully validated. serial number: "
        "77, subject name: CN=LAPTOP-7.corp.example.",
    ),
    _aaa("09:20:01", "10.0.0.9", "carol"),
    _started("09:20:01", "GP-Radius", "carol", "192.0.2.44"),
    # 16-19 dave: his certificate fails (optional in the profile), both factors pass.
    _asa(
        "09:30:00",
        "asa1",
        "3-717009: Certificate validation failed. Peer certificate key "
        "usage is invalid, serial number: 78, subject name: CN=dave.",
    ),
    _aaa("09:30:01", "10.0.0.1", "dave"),
    _aaa("09:30:02", "10.0.0.2", "dave"),
    _started("09:30:02", "GP-MFA", "Dave", "192.0.2.50"),
    # 20-21 erin: the password was right but the session was refused.
    _aaa("09:40:00", "10.0.0.1", "erin"),
    _asa(
        "09:40:00",
        "asa1",
        "4-113038: Group <GP-MFA> User <erin> IP <192.0.2.60> Unable to "
        "create AnyConnect parent session.",
    ),
    # 22-23 alice on another ASA, which shows no two-factor session and no certificate check.
    _aaa("09:50:00", "10.0.0.1", "alice", device="asa2"),
    _started("09:50:00", "GP-MFA", "alice", "198.51.100.10", device="asa2"),
]


def _facts(row: dict[str, Any]) -> tuple[str, str, str | None, str]:
    return (row["outcome"], row["mfa"], row["mfa_method"], row["machine_cert"])


def test_asa_session_start_carries_factors_and_certificate() -> None:
    parsed = CiscoAsaVpn(year=2024).parse_lines(line_table(ASA_SESSIONS))
    assert parsed.rejects.num_rows == 0
    rows = {r["source_offset"]: r for r in parsed.rows.to_pylist()}
    assert len(rows) == len(ASA_SESSIONS)
    two_factors = ("success", "yes", "secondary AAA server 10.0.0.2")
    assert _facts(rows[6]) == (*two_factors, "yes")
    assert _facts(rows[10]) == ("success", "no", None, "no")
    assert _facts(rows[12]) == ("success", "no", None, "no")
    assert _facts(rows[15]) == ("success", "unknown", None, "unknown")
    assert _facts(rows[19]) == (*two_factors, "no")
    assert _facts(rows[23]) == ("success", "unknown", None, "unknown")
    # Context: the folded factors and the WebVPN start that repeats the AnyConnect one are info
    # rows (one success per login); the repeat carries the session's facts.
    assert [rows[n]["outcome"] for n in (3, 4, 9, 11, 14, 17, 18, 22)] == ["info"] * 8
    assert _facts(rows[7]) == ("info", *two_factors[1:], "yes")
    assert (rows[20]["outcome"], rows[20]["event"]) == ("success", "113004")  # no session
    assert (rows[1]["machine_cert"], rows[2]["machine_cert"], rows[16]["machine_cert"]) == (
        "yes",
        "yes",
        "no",
    )
    assert {rows[n]["target"] for n in (1, 6, 22)} == {"asa1", "asa2"}
    # Outcomes of every other message are as the rule table says.
    assert [rows[n]["outcome"] for n in (5, 8, 21)] == ["info", "info", "failure"]


def test_asa_sessions_cut_by_a_batch_boundary_stay_unknown() -> None:
    """Folding is per batch: a start whose factors lie in the previous batch claims nothing."""
    source, clock, state = CiscoAsaVpn(year=2024), Clock(year=2024), _YearState()
    first = source.parse_lines(line_table(ASA_SESSIONS[:4]), clock, state).rows.to_pylist()
    second = source.parse_lines(line_table(ASA_SESSIONS[4:8]), clock, state).rows.to_pylist()
    assert [r["outcome"] for r in first if r["event"] == "113004"] == ["success", "success"]
    start = next(r for r in second if r["event"] == "113039")
    assert _facts(start) == ("success", "unknown", None, "unknown")


def test_asa_simulator_sessions_match_the_simulated_truth(tmp_path: Path) -> None:
    """Every simulated ASA session: MFA and machine certificate as the simulator decided them;
    the campaign's login in the legacy password-only group policy is single-factor."""
    from orbwatch.simulate.events import SERVICE
    from orbwatch.simulate.run import build, write
    from orbwatch.simulate.scenario import Scenario
    from orbwatch.sources.inputs import Input

    scenario = Scenario(seed=5)
    scenario.org.users, scenario.org.days = 30, 9
    scenario.output.netflow = scenario.output.zeek = scenario.output.firewall = False
    world = build(scenario)
    write(world, tmp_path)
    lg = world.logins
    mine = (lg["service"] == SERVICE["vpn-asa"]) & lg["success"]
    yes_no = {True: "yes", False: "no"}
    truth = {
        (str(world.login_names[n]), int(t)): (yes_no[bool(m)], yes_no[bool(c)])
        for n, t, m, c in zip(
            lg["name"][mine], lg["ts"][mine], lg["mfa"][mine], lg["cert"][mine], strict=True
        )
    }
    batches = list(CiscoAsaVpn().parse(Input.open(str(tmp_path / "asa-vpn.log"))))
    rows = [r for b in batches for r in b.rows.to_pylist()]
    assert not any(b.rejects.num_rows for b in batches)
    starts = [r for r in rows if r["event"] == "113039"]
    assert [r for r in rows if r["outcome"] == "success"] == starts  # one success per login
    got = {(r["user"], int(r["ts"].timestamp())): (r["mfa"], r["machine_cert"]) for r in starts}
    assert got.keys() == truth.keys()
    assert {k: mfa for k, (mfa, _) in got.items()} == {k: mfa for k, (mfa, _) in truth.items()}
    # Certificates: never the opposite of the truth. "unknown" only where another account's
    # certificate check was logged within the window (logins in the same second).
    certs = [(got[k][1], truth[k][1]) for k in truth]
    assert all(ours in ("unknown", theirs) for ours, theirs in certs)
    assert sum(ours == "unknown" for ours, _ in certs) <= len(certs) // 20
    victim = str(world.login_names[world.truth.victim_user])
    victim_starts = {(r["policy"], r["mfa"]) for r in starts if r["user"] == victim}
    assert ("GP-Legacy-Password", "no") in victim_starts
