"""Field values of each firewall format, checked against what the vendor's line says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.sources.firewall.corpus_lines import line_table, raw_lines, with_header

from orbwatch.sources import registry
from orbwatch.sources.syslog import LineSource

UTC = dt.UTC


def _rows(fmt: str, lines: list[str], zone: str = "UTC") -> list[dict[str, object]]:
    cls = registry()[fmt]
    assert issubclass(cls, LineSource)
    parsed = cls(timezone=zone, year=2020).parse_lines(line_table(lines))
    assert parsed.rejects.num_rows == 0, parsed.rejects.to_pylist()
    rows: list[dict[str, object]] = parsed.rows.to_pylist()
    return rows


def _corpus_rows(corpus: Path, name: str, fmt: str) -> list[dict[str, object]]:
    cls = registry()[fmt]
    assert issubclass(cls, LineSource)
    lines = with_header(raw_lines(corpus / "firewall" / name))
    rows: list[dict[str, object]] = cls(year=2020).parse_lines(line_table(lines)).rows.to_pylist()
    return rows


def test_asa_built_outbound_puts_the_inside_host_first(corpus: Path) -> None:
    rows = {
        r["flow_uid"]: r
        for r in _corpus_rows(corpus, "cisco-asa/wazuh_cisco_asa.ini", "cisco_asa")
        if r["flow_uid"]
    }
    built = rows["9"]  # Built outbound TCP connection 9 for outside:10.1.2.1/22 to inside:...
    assert (built["src_ip"], built["src_port"], built["dst_ip"], built["dst_port"]) == (
        "10.1.1.2",
        53496,
        "10.1.2.1",
        22,
    )
    assert (built["action"], built["protocol"]) == ("allow", "tcp")
    teardown = rows["4211"]
    assert (teardown["src_ip"], teardown["dst_port"], teardown["src_bytes"]) == (
        "171.70.168.183",
        1032,
        526,
    )
    assert teardown["duration_s"] == 0.0


def test_asa_deny_messages(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "cisco-asa/wazuh_cisco_asa.ini", "cisco_asa")
    denied = {(r["src_ip"], r["dst_ip"], r["dst_port"]) for r in rows if r["action"] == "deny"}
    assert ("111.93.241.59", "116.6.127.122", 1433) in denied  # 106001
    assert ("185.158.113.158", "116.6.127.123", 53413) in denied  # 106006
    assert ("192.168.0.1", "192.168.0.2", 22) in denied  # 106015 and 710003
    assert ("111.11.11.1", "172.11.1.11", 139) in denied  # 106023
    acl = [r for r in rows if r["rule"] == "inside_inbound"]
    assert len(acl) == 1


def test_asa_106100_and_header_year() -> None:
    rows = _rows(
        "cisco_asa",
        [
            "Jun 19 2019 10:12:13 asa01 : %ASA-6-106100: access-list outside_in denied tcp "
            "outside/198.51.100.7(4444) -> inside/10.0.0.5(3389) hit-cnt 1 first hit [0x1, 0x0]",
        ],
    )
    assert rows[0]["ts_start"] == dt.datetime(2019, 6, 19, 10, 12, 13, tzinfo=UTC)
    assert (rows[0]["action"], rows[0]["rule"], rows[0]["dst_port"]) == ("deny", "outside_in", 3389)


def test_fortigate_traffic(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "fortigate/cribl_fortigate_traffic.log.json", "fortigate_traffic")
    first = rows[0]
    assert (first["src_ip"], first["src_port"], first["dst_ip"], first["dst_port"]) == (
        "10.192.168.121",
        55468,
        "95.192.16.56",
        53,
    )
    assert (first["protocol"], first["action"], first["rule"]) == ("udp", "allow", "1")
    assert (first["nat_src_ip"], first["nat_src_port"]) == ("192.168.253.254", 55468)
    assert (first["src_bytes"], first["dst_bytes"], first["src_packets"]) == (100, 133, 1)
    # eventtime (epoch, exact) wins over the local date/time fields.
    assert first["ts_start"] == dt.datetime(2021, 1, 6, 19, 17, 2, tzinfo=UTC)
    assert first["exporter"] == "rdaganffffffc01"


def test_fortigate_local_time_uses_the_configured_zone() -> None:
    line = (
        "date=2016-06-16 time=10:19:23 devname=FW logid=0000000013 type=traffic "
        "subtype=forward srcip=7.3.8.5 srcport=57727 dstip=7.8.9.81 dstport=80 proto=6 "
        "action=deny policyid=8"
    )
    rows = _rows("fortigate_traffic", [line], zone="Europe/Berlin")
    assert rows[0]["ts_start"] == dt.datetime(2016, 6, 16, 8, 19, 23, tzinfo=UTC)
    assert rows[0]["action"] == "deny"


def test_juniper_close_carries_volumes_and_nat(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "juniper/elastic_test-flow.log", "juniper_srx_rt_flow")
    close = next(r for r in rows if r["flow_uid"] == "5")
    assert (close["src_ip"], close["dst_ip"], close["dst_port"], close["protocol"]) == (
        "10.3.255.203",
        "67.43.156.15",
        80,
        "tcp",
    )
    assert (close["nat_src_ip"], close["nat_src_port"]) == ("10.3.136.49", 19162)
    assert (close["src_bytes"], close["dst_bytes"], close["src_packets"]) == (337, 535, 6)
    assert (close["rule"], close["action"], close["conn_state"]) == (
        "permit_all",
        "allow",
        "TCP FIN",
    )
    deny = next(r for r in rows if r["flow_uid"] == "7087")
    assert deny["action"] == "deny"
    assert deny["ts_start"] == dt.datetime(2019, 11, 14, 10, 12, 46, 573000, tzinfo=UTC)


def test_panos_traffic(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "paloalto/cribl_pan_traffic.log.json", "panos_traffic")
    first = rows[0]
    assert (first["src_ip"], first["dst_ip"], first["src_port"], first["dst_port"]) == (
        "34.217.108.226",
        "10.0.0.102",
        53722,
        8088,
    )
    assert (first["nat_dst_ip"], first["rule"], first["action"]) == ("10.0.2.65", "splunk", "allow")
    assert (first["src_bytes"], first["dst_bytes"], first["src_packets"]) == (296, 0, 4)
    assert first["ts_start"] == dt.datetime(2018, 9, 20, 13, 3, 45, tzinfo=UTC)
    assert first["duration_s"] == 7.0
    drop = rows[2]
    assert (drop["action"], drop["nat_src_ip"], drop["conn_state"]) == ("deny", None, "policy-deny")


def test_sophos_time_uses_the_logged_offset(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "sophos/wazuh_sophos_fw.ini", "sophos_firewall")
    assert rows[0]["ts_start"] == dt.datetime(2019, 10, 9, 9, 19, 6, tzinfo=UTC)
    assert [r["action"] for r in rows[:4]] == ["deny", "allow", "unknown", "deny"]
    assert (rows[0]["src_ip"], rows[0]["dst_port"], rows[0]["rule"]) == ("11.22.33.44", 10051, "14")


def test_checkpoint(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "checkpoint/wazuh_checkpoint_smart1.ini", "checkpoint_log_exporter")
    drop = rows[0]
    assert (drop["src_ip"], drop["dst_ip"], drop["src_port"], drop["dst_port"]) == (
        "11.22.33.77",
        "11.22.33.55",
        55036,
        1514,
    )
    assert (drop["action"], drop["rule"], drop["protocol"]) == ("deny", "CleanUp Rule", "udp")
    assert drop["ts_start"] == dt.datetime.fromtimestamp(1557937550, UTC)
    decrypt = next(r for r in rows if r["nat_dst_ip"])
    assert decrypt["nat_dst_ip"] == "11.22.33.99" and decrypt["nat_src_ip"] is None


def test_cef_values_run_to_the_next_key(corpus: Path) -> None:
    rows = _corpus_rows(corpus, "cef-leef/cribl_cef_syslog_samples.log.json", "cef")
    nxlog = next(r for r in rows if r["dst_port"] == 80)
    assert (nxlog["src_ip"], nxlog["src_port"], nxlog["dst_ip"]) == (
        "192.168.255.110",
        46117,
        "172.25.212.204",
    )
    blocked = [r for r in rows if r["dst_ip"] == "1.1.1.1"]
    assert {r["action"] for r in blocked} == {"unknown"}  # "blocked a | ": not a plain verdict


def test_leef_2_with_caret_separator() -> None:
    line = (
        "<13>Jan 18 11:07:53 fw LEEF:2.0|Vendor|Firewall|1.0|deny|^|src=192.0.2.5^"
        "dst=198.51.100.9^srcPort=4444^dstPort=22^proto=TCP^action=blocked^"
        "devTime=1600000000000^policy=edge-in"
    )
    rows = _rows("leef", [line])
    assert (rows[0]["src_ip"], rows[0]["dst_port"], rows[0]["action"], rows[0]["rule"]) == (
        "192.0.2.5",
        22,
        "deny",
        "edge-in",
    )
    assert rows[0]["ts_start"] == dt.datetime.fromtimestamp(1600000000, UTC)


@pytest.mark.parametrize(
    ("line", "action", "rule"),
    [
        (
            "Feb  4 23:33:37 h kernel: [UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=40 "
            "PROTO=TCP SPT=1 DPT=2",
            "deny",
            "UFW BLOCK",
        ),
        (
            "Feb  4 23:33:37 h kernel: filter_IN_public_ALLOW: IN=eth0 OUT= SRC=192.0.2.1 "
            "DST=192.0.2.2 LEN=40 PROTO=UDP SPT=1 DPT=2",
            "allow",
            "filter_IN_public_ALLOW",
        ),
        (
            "Feb  4 23:33:37 h kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 LEN=28 PROTO=ICMP "
            "TYPE=8 CODE=0 ID=1 SEQ=2",
            "unknown",
            None,
        ),
    ],
)
def test_netfilter_prefix_gives_verdict_and_rule(line: str, action: str, rule: str | None) -> None:
    row = _rows("netfilter_log", [line])[0]
    assert (row["action"], row["rule"]) == (action, rule)
    if row["protocol"] == "icmp":
        assert (row["src_port"], row["dst_port"]) == (8, 0)
