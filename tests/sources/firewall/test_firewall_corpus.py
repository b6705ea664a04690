"""Every firewall log in the shared corpus parses; values match the upstream expectations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from tests.sources.firewall.corpus_lines import (
    crowdsec_expectations,
    line_table,
    raw_lines,
    with_header,
)

from orbwatch.sources import detect_format, registry
from orbwatch.sources.inputs import Input
from orbwatch.sources.syslog import LineSource

# corpus file -> (format, rows, quarantined, skipped). Quarantined lines are, per file: a
# CrowdSec negative test (iptables "XX=" instead of "IN="); sanitised addresses that are not
# addresses (FortiGate "x.x.x.x", "222.333.192.166", PAN-OS "00.00.000.00"); truncated fixture
# lines (Check Point "[action:...;..."; PAN-OS "...,TRAFFIC,"); an ASA object name in place of
# an address; CEF events of applications without two addresses; UniFi's sshd line.
CORPUS = [
    ("cef-leef/cribl_cef_syslog_samples.log.json", "cef", 4, 8, 0),
    ("checkpoint/wazuh_checkpoint_smart1.ini", "checkpoint_log_exporter", 5, 13, 0),
    ("cisco-asa/wazuh_cisco_asa.ini", "cisco_asa", 7, 1, 80),
    ("firewalld/wazuh_firewalld.ini", "netfilter_log", 0, 0, 3),
    ("fortigate/cribl_fortigate_eventtype.log.json", "fortigate_traffic", 0, 0, 6),
    ("fortigate/cribl_fortigate_traffic.log.json", "fortigate_traffic", 13, 6, 0),
    ("fortigate/cribl_fortigate_utm.log.json", "fortigate_traffic", 0, 0, 5),
    ("fortigate/wazuh_fortigate.ini", "fortigate_traffic", 10, 1, 35),
    ("iptables/crowdsec_iptables-logs__iptables-logs.log", "netfilter_log", 3, 1, 0),
    (
        "iptables/crowdsec_iptables-scan-multi-port__iptables-scan-multi-port.log",
        "netfilter_log",
        49,
        0,
        0,
    ),
    ("iptables/wazuh_iptables.ini", "netfilter_log", 43, 0, 0),
    ("juniper/elastic_test-flow.log", "juniper_srx_rt_flow", 17, 0, 9),
    ("juniper/wazuh_junos.ini", "juniper_srx_rt_flow", 1, 0, 2),
    ("mikrotik/crowdsec_mikrotik-logs__mikrotik-logs.log", "mikrotik_firewall", 6, 0, 1),
    ("paloalto/cribl_pan_config.log.json", "panos_traffic", 0, 0, 1),
    ("paloalto/cribl_pan_system.log.json", "panos_traffic", 0, 0, 4),
    ("paloalto/cribl_pan_threat.log.json", "panos_traffic", 0, 0, 1),
    ("paloalto/cribl_pan_traffic.log.json", "panos_traffic", 4, 0, 0),
    ("paloalto/crowdsec_palo-alto-threat__palo-alto-threat.log", "panos_traffic", 0, 0, 2),
    ("paloalto/wazuh_paloalto.ini", "panos_traffic", 1, 6, 9),
    ("pfsense/crowdsec_pf-logs__pf-logs.log", "pfsense_filterlog", 9, 0, 0),
    (
        "pfsense/crowdsec_pfsense-rfc5424-filterlog__pfsense-rfc5424-filterlog.log",
        "pfsense_filterlog",
        4,
        0,
        0,
    ),
    ("pfsense/wazuh_pfsense.ini", "pfsense_filterlog", 2, 0, 0),
    ("sophos/wazuh_sophos_fw.ini", "sophos_firewall", 10, 0, 0),
    ("ubiquiti-unifi/crowdsec_unifi-logs__unifi-logs.log", "unifi_firewall", 3, 1, 0),
]


def _source(fmt: str) -> LineSource:
    cls = registry()[fmt]
    assert issubclass(cls, LineSource)
    return cls(year=2020)


def _parse(corpus: Path, name: str, fmt: str) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    lines = with_header(raw_lines(corpus / "firewall" / name))
    parsed = _source(fmt).parse_lines(line_table(lines))
    return parsed.rows, parsed.rejects, parsed.skipped


def _row(rows: pa.Table, offset: int) -> dict[str, object]:
    found: list[dict[str, object]] = [r for r in rows.to_pylist() if r["source_offset"] == offset]
    assert len(found) == 1, f"no row for line {offset}"
    return found[0]


def test_every_firewall_file_is_covered(corpus: Path) -> None:
    listed = {name for name, *_ in CORPUS}
    present = {
        str(p.relative_to(corpus / "firewall"))
        for p in (corpus / "firewall").rglob("*")
        if p.is_file() and not p.name.endswith(".assert")
    }
    assert present == listed


@pytest.mark.parametrize(("name", "fmt", "rows", "quarantined", "skipped"), CORPUS)
def test_corpus_file_parses(
    corpus: Path, name: str, fmt: str, rows: int, quarantined: int, skipped: int
) -> None:
    lines = [ln for ln in raw_lines(corpus / "firewall" / name) if ln.strip()]
    got_rows, got_rejects, got_skipped = _parse(corpus, name, fmt)
    assert (got_rows.num_rows, got_rejects.num_rows, sum(got_skipped.values())) == (
        rows,
        quarantined,
        skipped,
    )
    # Every line is accounted for, exactly once.
    assert rows + quarantined + skipped == len(lines)
    if rows:
        assert set(got_rows["action"].to_pylist()) <= {"allow", "deny", "unknown"}
        assert got_rows["ts_start"].null_count == 0
        assert got_rows["src_key"].null_count == 0 if "src_key" in got_rows.column_names else True


@pytest.mark.parametrize(
    ("name", "fmt"),
    [(name, fmt) for name, fmt, *_ in CORPUS if name.endswith(".log")],
)
def test_raw_log_files_are_detected(corpus: Path, name: str, fmt: str) -> None:
    inp = Input.open(str(corpus / "firewall" / name))
    assert detect_format(inp).name == fmt


_VERDICTS = {"block": "deny", "pass": "allow", "D": "deny", "A": "allow", "R": "deny"}


@pytest.mark.parametrize(
    ("log", "expectations", "fmt", "parsers"),
    [
        (
            "iptables/crowdsec_iptables-logs__iptables-logs.log",
            "iptables/crowdsec_iptables-logs.parser.assert",
            "netfilter_log",
            ("crowdsecurity/iptables-logs",),
        ),
        (
            "pfsense/crowdsec_pf-logs__pf-logs.log",
            "pfsense/crowdsec_pf-logs.parser.assert",
            "pfsense_filterlog",
            ("firewallservices/pf-logs",),
        ),
        (
            "mikrotik/crowdsec_mikrotik-logs__mikrotik-logs.log",
            "mikrotik/crowdsec_mikrotik-logs.parser.assert",
            "mikrotik_firewall",
            ("a1ad/mikrotik-logs",),
        ),
        (
            "ubiquiti-unifi/crowdsec_unifi-logs__unifi-logs.log",
            "ubiquiti-unifi/crowdsec_unifi-logs.parser.assert",
            "unifi_firewall",
            ("crowdsecurity/iptables-logs", "crowdsecurity/unifi-logs:action"),
        ),
    ],
)
def test_values_match_crowdsec_expectations(
    corpus: Path, log: str, expectations: str, fmt: str, parsers: tuple[str, ...]
) -> None:
    rows, _, _ = _parse(corpus, log, fmt)
    checked = 0
    for exp in crowdsec_expectations(corpus / "firewall" / expectations):
        if exp.parser not in parsers and f"{exp.parser}:{exp.name}" not in parsers:
            continue
        if exp.name not in (
            "src_ip",
            "dst_ip",
            "src_port",
            "dst_port",
            "proto",
            "action",
            "timestamp",
        ):
            continue
        if exp.name == "timestamp" and exp.offset not in rows["source_offset"].to_pylist():
            continue  # the stamp of a line that is not a flow (a RouterOS login failure)
        row = _row(rows, exp.offset)
        if exp.name == "proto":
            assert row["protocol"] == exp.value.lower()
        elif exp.name == "action":
            assert row["action"] == _VERDICTS[exp.value]
        elif exp.name == "timestamp":
            ts = row["ts_start"]
            assert isinstance(ts, dt.datetime)
            if exp.value[:1].isdigit():
                assert ts == dt.datetime.fromisoformat(exp.value)
            else:
                assert f"{ts:%b} {ts.day:>2} {ts:%H:%M:%S}" == exp.value
        elif exp.name.endswith("_port"):
            assert row[exp.name] == int(exp.value)
        else:
            assert row[exp.name] == exp.value
        checked += 1
    assert checked >= 10
