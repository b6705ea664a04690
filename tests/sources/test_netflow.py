"""NetFlow v5/v9/IPFIX decoding against real exporters' packets and two independent decoders.

Golden data: the Logstash netflow codec's RSpec expectations (per test context: files in order,
event counts, field values) and pmacct's nfacctd JSON output for its pcaps. Logstash emits
options records as events too, so events here are flow *and* options records in arrival order.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orbwatch.sources.inputs import Input
from orbwatch.sources.netflow import NetflowPcap, NetflowRaw, plausible_message
from orbwatch.sources.netflow.decode import (
    DecodedBatch,
    Decoder,
    TemplateCache,
    batches_to_flows,
    flow_times,
)
from orbwatch.sources.netflow.pcap import UdpPayload, iter_udp
from orbwatch.store.schema import FLOWS

NETFLOW = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "netflow"
LOGSTASH = NETFLOW / "logstash-codec-netflow"


@pytest.fixture(scope="module")
def netflow_dir() -> Path:
    if not NETFLOW.is_dir():
        pytest.skip(f"NetFlow corpus not found at {NETFLOW} (shared/corpus is not checked out)")
    return NETFLOW


def _golden() -> dict[str, dict[str, Any]]:
    path = LOGSTASH / "EXPECTED_logstash-codec-netflow_spec.json"
    if not path.is_file():
        return {}
    return {c["context"]: c for c in json.loads(path.read_text())["contexts"]}


GOLDEN = _golden()


# ---------------------------------------------------------------------------------------------
# helpers


def decode_files(
    paths: list[Path], cache: TemplateCache | None = None
) -> tuple[list[dict[str, Any]], pa.Table, Decoder]:
    """Decode raw message files in order (one cache); events in arrival order, flows, decoder."""
    cache = TemplateCache() if cache is None else cache
    decoder = Decoder(cache)
    batches: list[DecodedBatch] = []
    for path in paths:
        decoder.feed(path.read_bytes(), "192.0.2.1")
        batches += decoder.flush()
    decoder.finish()
    events: list[tuple[int, int, dict[str, Any]]] = []
    for batch in batches:
        times = None if batch.template.options else flow_times(batch, cache)
        for i, record in enumerate(batch.records()):
            record["_version"] = batch.version
            record["_template_id"] = batch.template.template_id
            record["_options"] = batch.template.options
            if times is not None:
                record["_ts_start"], record["_ts_end"] = int(times[0][i]), int(times[1][i])
            events.append((int(batch.seq[i]), i, record))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in events], batches_to_flows(batches, cache), decoder


def context_files(name: str) -> list[Path]:
    return [NETFLOW.parent / f for f in GOLDEN[name]["local_dat_files"]]


# Logstash field name -> our candidate names (first present wins).
LOGSTASH_NAMES: dict[str, tuple[str, ...]] = {
    "ipv4_src_addr": ("sourceIPv4Address",),
    "ipv4_dst_addr": ("destinationIPv4Address",),
    "ipv6_src_addr": ("sourceIPv6Address",),
    "ipv6_dst_addr": ("destinationIPv6Address",),
    "ipv4_next_hop": ("ipNextHopIPv4Address",),
    "l4_src_port": ("sourceTransportPort",),
    "l4_dst_port": ("destinationTransportPort",),
    "tcp_flags": ("tcpControlBits",),
    "protocol": ("protocolIdentifier",),
    "in_bytes": ("octetDeltaCount",),
    "in_pkts": ("packetDeltaCount",),
    "out_bytes": ("postOctetDeltaCount",),
    "out_pkts": ("postPacketDeltaCount",),
    "in_permanent_bytes": ("octetTotalCount",),
    "src_tos": ("ipClassOfService",),
    "src_as": ("bgpSourceAsNumber",),
    "dst_as": ("bgpDestinationAsNumber",),
    "src_mask": ("sourceIPv4PrefixLength",),
    "dst_mask": ("destinationIPv4PrefixLength",),
    "input_snmp": ("ingressInterface",),
    "output_snmp": ("egressInterface",),
    "ip_protocol_version": ("ipVersion",),
    "in_src_mac": ("sourceMacAddress",),
    "in_dst_mac": ("destinationMacAddress",),
    "out_src_mac": ("postSourceMacAddress",),
    "out_dst_mac": ("postDestinationMacAddress",),
    "scope_system": ("scopeSystem",),
    "total_flows_exp": ("exportedFlowRecordTotalCount",),
    "total_pkts_exp": ("exportedMessageTotalCount",),
    "total_bytes_exp": ("exportedOctetTotalCount",),
    "flow_active_timeout": ("flowActiveTimeout",),
    "flow_inactive_timeout": ("flowIdleTimeout",),
    "sampling_algorithm": ("samplingAlgorithm",),
    "sampling_interval": ("samplingInterval",),
    "if_desc": ("interfaceDescription",),
    "application_id": ("applicationId",),
    "application_name": ("applicationName",),
    "application_description": ("applicationDescription",),
    "nprobe_proto": ("ntopL7Proto",),
    "app_id": ("panAppId",),
    "user_id": ("panUserId",),
    "conn_id": ("flowId",),
    "fw_event": ("fwEvent", "firewallEvent"),
    "fw_ext_event": ("fwExtEvent",),
    "icmp_type": ("icmpTypeIPv4", "icmpTypeCodeIPv4"),
    "icmp_code": ("icmpCodeIPv4",),
    "xlate_src_addr_ipv4": ("xlateSrcAddrIPv4",),
    "xlate_dst_addr_ipv4": ("xlateDstAddrIPv4",),
    "xlate_src_port": ("xlateSrcPort",),
    "xlate_dst_port": ("xlateDstPort",),
    "event_time_msec": ("observationTimeMilliseconds",),
    "flow_start_msec": ("flowStartMilliseconds",),
    "ingress_acl_id": ("ingressAclId",),
    "egress_acl_id": ("egressAclId",),
    "username": ("username",),
    "direction": ("flowDirection",),
    "version": ("_version",),
    "flowset_id": ("_template_id",),
}
# Header fields and Logstash-only conveniences with no per-record counterpart.
NOT_COMPARED = {"flow_seq_num", "engine_type", "engine_id", "flow_records", "uptime"}


def _iso_ms(micros: int) -> str:
    when = dt.datetime.fromtimestamp(micros / 1e6, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(micros // 1000) % 1000:03d}Z"


def compare_event(ours: dict[str, Any], expected: dict[str, Any], times: bool = True) -> int:
    """Assert every comparable expected field; returns how many were compared."""
    compared = 0
    for field, want in expected.items():
        if field in NOT_COMPARED:
            continue
        if field in ("first_switched", "last_switched"):
            if times and "_ts_start" in ours:
                got = ours["_ts_start" if field == "first_switched" else "_ts_end"]
                # Logstash subtracts the whole seconds of (sysUptime - switched) and then the
                # milliseconds without borrowing a second, so its v5/v9 times are often exactly
                # 1 s late; we keep the exact time (test_v5_v9_uptime_times_exact).
                late = got + 1_000_000
                assert want in (_iso_ms(got), _iso_ms(late)), field
                compared += 1
            continue
        names = LOGSTASH_NAMES.get(field, (field,))
        name = next((n for n in names if n in ours), None)
        if name is None:
            continue
        got = ours[name]
        if isinstance(want, str) and isinstance(got, int) and want.endswith("Z"):
            got = _iso_ms(got * 1000)  # IPFIX dateTimeMilliseconds rendered as text
        if field.endswith("acl_id"):
            want = want.replace("-", "")
        assert got == want, f"{field} ({name}): {got!r} != {want!r}"
        compared += 1
    return compared


def check_context(
    name: str, *, times: bool = True, count: int | None = None
) -> list[dict[str, Any]]:
    """Decode a Logstash spec context and check its counts, assertions and JSON events."""
    ctx = GOLDEN[name]
    events, _, _ = decode_files(context_files(name))
    expected_count = (
        count
        if count is not None
        else (ctx["expected_event_count"][0] if ctx["expected_event_count"] else None)
    )
    if expected_count is not None:
        assert len(events) == expected_count
    for assertion in ctx["field_assertions"]:
        event = events[assertion["event_index"]]
        field = assertion["field"].removeprefix("[netflow][").removesuffix("]")
        assert compare_event(event, {field: assertion["expected"]}, times) == 1, field
    for link in ctx["json_event_mapping"]:
        expected = ctx["expected_json_events"][link["json_events_index"]]["event"]["netflow"]
        assert compare_event(events[link["event_index"]], expected, times) >= 3
    return events


# ---------------------------------------------------------------------------------------------
# Logstash golden contexts


SIMPLE_CONTEXTS = [
    "Netflow 9 valid 01",
    "Netflow 9 macaddress",
    "Netflow 9 Cisco ASA",
    "Netflow 9 multiple netflow exporters",
    "Netflow 9 options template with scope fields",
    "IPFIX OpenBSD pflow",
    "Netflow5 mikrotik",
    "Netflow5 Juniper MX80",
    "Netflow 9 ipt_netflow reduced size encoding",
    "IPFIX options template from Juniper MX240 JunOS 15.1 R6 S3",
    "Netflow 9 Ubiquiti Edgerouter with MPLS labels",
    "Netflow 9 nprobe DPI L7",
    "Netflow 9 Fortigate FortiOS 5.2.1",
    "IPFIX VMware virtual distributed switch",
    "Juniper SRX options template with 0 scope field length",
    "Netflow 9 template with 0 length fields",
    "Netflow 9 Cisco ASR 9000 series options template 256",
    "Netflow 9 Cisco ASR 9000 series template 260",
    "Netflow 9 Cisco NBAR options template 260",
    "Netflow 9 Cisco NBAR flowset 262",
    "Netflow 9 Palo Alto PAN-OS with app-id",
    "IPFIX Barracuda firewall",
    "IPFIX YAF basic with applabel",
]


@pytest.mark.parametrize("name", SIMPLE_CONTEXTS)
def test_logstash_context(netflow_dir: Path, name: str) -> None:
    check_context(name)


def test_v5_v9_uptime_times_exact(netflow_dir: Path) -> None:
    events, _, _ = decode_files(context_files("Netflow5 Juniper MX80"))
    # header: unix_secs 1469109172, nsecs 0, sysUptime 190649064; switched at 190631000
    assert events[28]["_ts_start"] == 1469109172 * 1_000_000 - 18_064_000
    events, _, _ = decode_files(context_files("Netflow 9 valid 01"))
    # header: unix_secs 1444331070, sysUptime 45076; first 1216, last 1217
    assert events[0]["_ts_start"] == 1444331070 * 1_000_000 - 43_860_000
    assert events[0]["_ts_end"] == 1444331070 * 1_000_000 - 43_859_000


def test_logstash_v5_softflowd(netflow_dir: Path) -> None:
    # softflowd's first_switched lies after the export time (its uptime bug); Logstash wraps it
    # unsigned into the far future, we read it as slightly early. Times are checked elsewhere.
    events = check_context("Netflow 5 valid 01", times=False)
    assert [e["octetDeltaCount"] for e in events] == [230, 304]
    _, _, decoder = decode_files(context_files("Netflow 5 valid 01"))
    rejects = decoder.take_rejects()
    assert [r.kind for r in rejects] == ["trailing bytes"]  # 1608 bytes after the 2 records


def test_logstash_ipfix_three_messages(netflow_dir: Path) -> None:
    # ipfix.dat holds three IPFIX messages back to back; Logstash reads only the first (7
    # events), we decode all three: the first 7 events must be Logstash's.
    events = check_context("IPFIX", count=13)
    assert events[0]["_options"] and events[0]["systemInitTimeMilliseconds"] == 1431516013506
    # flowStartSysUpTime is relative to the options record's systemInitTimeMilliseconds.
    assert events[5]["_ts_start"] == (1431516013506 + 1142) * 1000
    assert events[5]["_ts_end"] == (1431516013506 + 2392) * 1000


def test_logstash_templates_without_data(netflow_dir: Path) -> None:
    for name, flows in (
        ("Netflow 9 Cisco 1941/K9 release 15.1", 29),
        ("Netflow 9 Cisco ASR1001-X", 25),
    ):
        _, table, decoder = decode_files(context_files(name))
        assert table.num_rows == flows
        assert not decoder.take_rejects()


def test_vmware_ipv6_flow_row(netflow_dir: Path) -> None:
    _, flows, _ = decode_files(context_files("IPFIX VMware virtual distributed switch"))
    row = flows.to_pylist()[4]
    assert row["src_ip"] == "fe80::5187:5cd8:d750:cdc9" and row["dst_ip"] == "ff02::1:3"
    assert (row["dst_port"], row["protocol"], row["src_bytes"], row["src_packets"]) == (
        5355,
        "udp",
        144,
        2,
    )
    assert row["ts_start"] == dt.datetime(2016, 12, 22, 12, 25, 49, tzinfo=dt.UTC)


def test_cisco_asa_nsel_row(netflow_dir: Path) -> None:
    _, flows, _ = decode_files(context_files("Netflow 9 Cisco ASA"))
    row = flows.to_pylist()[1]
    assert (row["src_ip"], row["dst_ip"], row["protocol"]) == (
        "192.168.23.22",
        "164.164.37.11",
        "icmp",
    )
    assert (row["src_port"], row["dst_port"]) == (8, 0)  # ICMP echo request: type, code
    assert row["action"] == "allow"  # fw_event 2: flow deleted, so it had been allowed
    assert row["rule"] == "0f8e7ff3-fc1a030f-00000000"
    assert row["flow_uid"] == "8501" and row["src_bytes"] == 56
    assert row["ts_start"] == dt.datetime(2015, 10, 9, 9, 47, 48, 169000, tzinfo=dt.UTC)
    assert row["ts_end"] == dt.datetime(2015, 10, 9, 9, 47, 50, 179000, tzinfo=dt.UTC)
    assert row["nat_src_ip"] == "192.168.23.22"


def test_yaf_biflow_reverse_counters(netflow_dir: Path) -> None:
    _, flows, _ = decode_files(context_files("IPFIX YAF basic with applabel"))
    first = flows.to_pylist()[0]
    assert (first["src_bytes"], first["dst_bytes"], first["src_packets"], first["dst_packets"]) == (
        132,
        200,
        2,
        2,
    )
    assert first["ts_start"] == dt.datetime(2016, 12, 25, 12, 58, 35, 818000, tzinfo=dt.UTC)


def test_barracuda_duration_only(netflow_dir: Path) -> None:
    _, flows, _ = decode_files(context_files("IPFIX Barracuda firewall"))
    last = flows.to_pylist()[7]
    assert last["duration_s"] == pytest.approx(20.368)
    assert last["action"] == "allow" and last["src_ip"] == "10.98.243.20"


def test_sampling_rate_from_options(netflow_dir: Path) -> None:
    cache = TemplateCache()
    decode_files(context_files("IPFIX options template from Juniper MX240 JunOS 15.1 R6 S3"), cache)
    assert cache.sampling_rate("192.0.2.1", 524288) == 1000


def test_invalid_packets_rejected_with_reasons(netflow_dir: Path) -> None:
    for name in ("netflow5_test_invalid01.dat", "netflow5_test_invalid02.dat"):
        events, _, decoder = decode_files([LOGSTASH / "invalid" / name])
        rejects = decoder.take_rejects()
        assert not events and len(rejects) == 1
        assert rejects[0].offset == 0 and "records" in rejects[0].reason
        assert decoder.stats["bytes_rejected"] == decoder.stats["bytes_in"]
    # netflow9_test_invalid01: header count (2) and 32-bit alignment of two flowsets are off,
    # but every flowset length is consistent, so its records decode; nothing is lost.
    _, _, decoder = decode_files([LOGSTASH / "invalid" / "netflow9_test_invalid01.dat"])
    assert decoder.stats["bytes_decoded"] == decoder.stats["bytes_in"]
    events, _, decoder = decode_files([NETFLOW / "softflowd-hex" / "packet_invalid.bin"])
    assert not events and decoder.take_rejects()[0].reason.startswith("version 65535")


def test_data_before_template_is_held_then_decoded(netflow_dir: Path) -> None:
    files = context_files("Netflow 9 Palo Alto PAN-OS with app-id")
    cache = TemplateCache()
    parsed = [p for f in reversed(files) for p in NetflowRaw(cache).parse(Input.open(str(f)))]
    # Separate inputs: sets held for a template are rejected at the end of their own input.
    assert sum(p.rows.num_rows for p in parsed) == 0
    assert parsed[0].rejects["reason"].to_pylist()[0] == (
        "no template 257 from exporter unknown domain 1"
    )
    in_one = Decoder(TemplateCache())
    data, tpl = (f.read_bytes() for f in files[::-1])
    in_one.feed(data, "10.0.0.1")
    assert in_one.held_sets > 0 and not in_one.flush()
    in_one.feed(tpl, "10.0.0.1")
    assert sum(b.num_records for b in in_one.flush()) == 8
    in_one.finish()
    assert not in_one.take_rejects()


def test_missing_template_reason(netflow_dir: Path) -> None:
    _, _, decoder = decode_files(context_files("Netflow 9 ipt_netflow reduced size encoding"))
    reasons = {r.reason for r in decoder.take_rejects()}
    assert reasons == {
        "no template 259 from exporter 192.0.2.1 domain 0",
        "no template 262 from exporter 192.0.2.1 domain 0",
    }
    assert decoder.reasons["no template"] == 6


def test_held_sets_are_bounded() -> None:
    header = struct.pack(">HHIIII", 9, 1, 0, 0, 0, 0)
    message = header + struct.pack(">HH", 300, 8) + b"\1\2\3\4"
    decoder = Decoder(TemplateCache(), max_held_sets=5)
    for _ in range(8):
        decoder.feed(message, "198.51.100.1")
    assert decoder.held_sets == 5 and decoder.reasons["held-set limit"] == 3
    decoder.finish()
    assert decoder.reasons["no template"] == 5
    assert decoder.stats["bytes_rejected"] == decoder.stats["bytes_in"] - 8 * 20


def test_ipfix_withdrawal_and_variable_length() -> None:
    domain = 7

    def message(*sets: bytes) -> bytes:
        body = b"".join(sets)
        return struct.pack(">HHIII", 10, 16 + len(body), 1_700_000_000, 0, domain) + body

    fields = struct.pack(">HHHHHH", 8, 4, 96, 0xFFFF, 2, 4)
    template = struct.pack(">HHHH", 2, 8 + len(fields), 400, 3) + fields
    rec1 = bytes([10, 0, 0, 1]) + b"\x03ssh" + struct.pack(">I", 5)
    rec2 = bytes([10, 0, 0, 2]) + b"\xff\x00\x04http" + struct.pack(">I", 6)
    data = rec1 + rec2
    data_set = struct.pack(">HH", 400, 4 + len(data) + 3) + data + b"\0\0\0"
    cache = TemplateCache()
    decoder = Decoder(cache)
    decoder.feed(message(template, data_set), "203.0.113.9")
    (batch,) = decoder.flush()
    assert batch.records()[1] == {
        "sourceIPv4Address": "10.0.0.2",
        "applicationName": "http",
        "packetDeltaCount": 6,
    }
    flows = batches_to_flows([batch], cache)
    assert flows["service"].to_pylist() == ["ssh", "http"]
    assert flows["exporter"].to_pylist() == ["203.0.113.9#7"] * 2
    withdraw = struct.pack(">HHHH", 2, 8, 400, 0)
    decoder.feed(message(withdraw, data_set), "203.0.113.9")
    assert decoder.flush() == [] and cache.get(("203.0.113.9", 10, domain), 400) is None
    decoder.finish()
    assert decoder.reasons["no template"] == 1
    assert (
        decoder.stats["bytes_decoded"] + decoder.stats["bytes_rejected"]
        == decoder.stats["bytes_in"]
    )


def test_time_representations() -> None:
    """flowStart/End in seconds, NTP micro/nanoseconds, deltas and durations."""
    ntp = (1_700_000_000 + 2_208_988_800) << 32 | (1 << 31)  # .5 s
    fields = struct.pack(">HHHHHHHH", 150, 4, 155, 8, 8, 4, 12, 4)
    record = struct.pack(">IQ", 1_699_999_990, ntp) + bytes([1, 1, 1, 1, 2, 2, 2, 2])
    fields2 = struct.pack(">HHHHHH", 158, 4, 161, 4, 8, 4)
    record2 = struct.pack(">II", 3_000_000, 1500) + bytes([3, 3, 3, 3])
    sets = (
        struct.pack(">HHHH", 2, 8 + len(fields), 300, 4)
        + fields
        + struct.pack(">HHHH", 2, 8 + len(fields2), 301, 3)
        + fields2
        + struct.pack(">HH", 300, 4 + len(record))
        + record
        + struct.pack(">HH", 301, 4 + len(record2))
        + record2
    )
    msg = struct.pack(">HHIII", 10, 16 + len(sets), 1_700_000_100, 0, 0) + sets
    decoder = Decoder(TemplateCache())
    decoder.feed(msg, "192.0.2.7")
    flows = batches_to_flows(decoder.flush(), decoder.cache).to_pylist()
    assert flows[0]["ts_start"] == dt.datetime.fromtimestamp(1_699_999_990, dt.UTC)
    assert flows[0]["ts_end"] == dt.datetime.fromtimestamp(1_700_000_000.5, dt.UTC)
    assert flows[1]["ts_start"] == dt.datetime.fromtimestamp(1_700_000_097, dt.UTC)
    assert flows[1]["duration_s"] == 1.5


# ---------------------------------------------------------------------------------------------
# pcaps: pmacct golden output, Akvorado and Graylog captures


def _pcap_rows(paths: list[Path], cache: TemplateCache | None = None) -> tuple[pa.Table, pa.Table]:
    cache = TemplateCache() if cache is None else cache
    rows, rejects = [], []
    for path in paths:
        source = NetflowPcap(cache, keep_extra=True)
        for parsed in source.parse(Input.open(str(path))):
            rows.append(parsed.rows)
            rejects.append(parsed.rejects)
    return pa.concat_tables(rows), pa.concat_tables(rejects)


@pytest.mark.parametrize(
    "test",
    [
        "100-IPFIXv10-CISCO",
        "101-NFv9-CISCO-cust_primitives",
        "102-NFv9-CISCO-f2rd-pretag-sampling-reload",
        "104-IPFIXv10-IPv6-CISCO-sampling_option",
        "110-IPFIXv10-NFv9-multiple-sources",
    ],
)
def test_pmacct_golden(netflow_dir: Path, test: str) -> None:
    folder = netflow_dir / "pmacct" / test
    rows, rejects = _pcap_rows(sorted(folder.glob("traffic-*.pcap")))
    assert rejects.num_rows == 0
    # nfacctd aggregates on its own primitives and renormalises by the sampling rate; sum
    # both sides per 5-tuple. (102's output-flow-01 follows a map reload that rescales bytes
    # by configuration, not by anything in the packets, so only -00 is compared.)
    ours: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for r in rows.to_pylist():
        key = (r["src_ip"], r["dst_ip"], r["src_port"], r["dst_port"], r["protocol"])
        rate = r["sampling_rate"] or 1
        ours[(*key, "bytes")] += r["src_bytes"] * rate
        ours[(*key, "packets")] += r["src_packets"] * rate
    expected: collections.Counter[tuple[Any, ...]] = collections.Counter()
    lines = (folder / "output-flow-00.json").read_text().splitlines()
    for line in filter(None, lines):
        e = json.loads(line)
        key = (e["ip_src"], e["ip_dst"], e["port_src"], e["port_dst"], e["ip_proto"])
        expected[(*key, "bytes")] += e["bytes"]
        expected[(*key, "packets")] += e["packets"]
    assert ours == expected
    for line in filter(None, lines):  # times nfacctd takes from the records (whole seconds)
        e = json.loads(line)
        if "timestamp_start" in e:
            match = rows.filter(
                pa.compute.and_(
                    pa.compute.equal(rows["src_ip"], e["ip_src"]),
                    pa.compute.equal(rows["src_port"], e["port_src"]),
                )
            )
            starts = [t.timestamp() for t in match["ts_start"].to_pylist()]
            assert any(abs(s - float(e["timestamp_start"])) < 1 for s in starts)


def test_pmacct_ipv6_exporter_and_sampling(netflow_dir: Path) -> None:
    folder = netflow_dir / "pmacct" / "104-IPFIXv10-IPv6-CISCO-sampling_option"
    rows, _ = _pcap_rows([folder / "traffic-00.pcap"])
    assert set(rows["exporter"].to_pylist()) == {"2a02:a90:4007:700::54"}
    assert set(rows["sampling_rate"].to_pylist()) == {256}
    assert set(rows["protocol"].to_pylist()) == {"ipv6-icmp", "vrrp"}


def test_template_cache_across_pcaps(netflow_dir: Path) -> None:
    akv = netflow_dir / "akvorado" / "netflow"
    cache = TemplateCache()
    _pcap_rows(
        [akv / "options-template.pcap", akv / "options-data.pcap", akv / "template.pcap"], cache
    )
    rows, rejects = _pcap_rows([akv / "data.pcap"], cache)
    assert rejects.num_rows == 0 and rows.num_rows > 0
    assert set(rows["exporter"].to_pylist()) == {"192.0.2.100"}
    alone, rejects = _pcap_rows([akv / "data.pcap"])
    assert alone.num_rows == 0
    assert rejects["reason"].to_pylist() == ["no template 260 from exporter 192.0.2.100 domain 0"]


def test_akvorado_nat_and_icmp(netflow_dir: Path) -> None:
    akv = netflow_dir / "akvorado" / "netflow"
    nat, _ = _pcap_rows([akv / "nat.pcap"])
    first = nat.to_pylist()[0]
    assert (first["src_ip"], first["nat_src_ip"], first["nat_src_port"]) == (
        "172.16.100.198",
        "10.143.52.29",
        35303,
    )
    icmp, _ = _pcap_rows([akv / "icmp-template.pcap", akv / "icmp-data.pcap"])
    assert icmp["protocol"].to_pylist()[:2] == ["ipv6-icmp", "ipv6-icmp"]
    assert icmp["src_port"].to_pylist()[:2] == [128, 129]  # echo request, echo reply


def test_graylog_and_non_netflow_udp(netflow_dir: Path) -> None:
    rows, rejects = _pcap_rows([netflow_dir / "graylog-netflow" / "nprobe-netflow9.pcap"])
    assert rows.num_rows == 152 and rejects.num_rows == 0
    assert set(rows["netflow_version"].to_pylist()) == {5, 9}
    sflow = netflow_dir / "akvorado" / "sflow" / "data-1140.pcap"
    assert not NetflowPcap.sniff(Input.open(str(sflow)).head(), sflow.name)
    rows, rejects = _pcap_rows([sflow])
    assert rows.num_rows == 0 and "version 0" in rejects["reason"][0].as_py()


def test_sniff_and_source_offsets(netflow_dir: Path) -> None:
    v5 = LOGSTASH / "mikrotik" / "netflow5_test_microtik.dat"
    assert NetflowRaw.sniff(v5.read_bytes()[:65536], v5.name)
    pcap = netflow_dir / "graylog-netflow" / "netflow5.pcap"
    assert NetflowPcap.sniff(pcap.read_bytes(), pcap.name)
    assert not NetflowRaw.sniff(pcap.read_bytes(), pcap.name)
    assert not NetflowPcap.sniff(b"#separator \\x09\n#fields\tts", "conn.log")
    parsed = list(NetflowRaw(TemplateCache()).parse(Input.open(str(v5))))
    assert parsed[0].rows["source_offset"].to_pylist() == [24] * 30
    assert set(parsed[0].rows.column_names) <= set(FLOWS.schema.names)
    offsets = [item.offset for item in iter_udp(pcap.open("rb")) if isinstance(item, UdpPayload)]
    assert offsets == [24, 154, 284]  # 24-byte file header, 16-byte record headers


def test_pcapng_and_cooked_capture() -> None:
    """A pcapng file (big-endian section) with a Linux cooked frame carrying a v5 message."""
    v5 = struct.pack(">HHIIIIBBH", 5, 1, 1000, 1_600_000_000, 0, 0, 0, 0, 0)
    v5 += bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0]) + struct.pack(
        ">HHIIIIHHBBBBHHBBH", 1, 2, 3, 400, 900, 1000, 1234, 80, 0, 0x12, 6, 0, 0, 0, 0, 0, 0
    )
    udp = struct.pack(">HHHH", 5555, 2055, 8 + len(v5), 0) + v5
    ip = (
        struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            0,
            0,
            64,
            17,
            0,
            bytes([192, 0, 2, 50]),
            bytes([192, 0, 2, 1]),
        )
        + udp
    )
    frame = struct.pack(">HHH8sH", 0, 1, 6, b"\0" * 8, 0x0800) + ip

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack(">II", kind, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))

    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack(">HHI", 113, 0, 65535))
    epb = block(6, struct.pack(">IIIII", 0, 0, 0, len(frame), len(frame)) + frame)
    items = list(iter_udp(io.BytesIO(shb + idb + epb)))
    assert len(items) == 1 and isinstance(items[0], UdpPayload)
    assert items[0].exporter == "192.0.2.50" and items[0].offset == len(shb) + len(idb)
    decoder = Decoder(TemplateCache())
    decoder.feed(items[0].payload, items[0].exporter)
    row = batches_to_flows(decoder.flush()).to_pylist()[0]
    assert (row["src_ip"], row["dst_ip"], row["src_port"], row["dst_port"]) == (
        "10.0.0.1",
        "10.0.0.2",
        1234,
        80,
    )
    assert row["conn_state"] == "SYN|ACK" and row["duration_s"] == pytest.approx(0.1)
    assert row["ts_end"] == dt.datetime.fromtimestamp(1_600_000_000, dt.UTC)


# ---------------------------------------------------------------------------------------------
# robustness


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from([b"", b"\x00\x05", b"\x00\x09", b"\x00\x0a"]))
def test_random_bytes_never_raise_and_are_accounted(data: bytes, prefix: bytes) -> None:
    decoder = Decoder(TemplateCache())
    message = prefix + data
    decoder.feed(message, "192.0.2.99")
    decoder.feed(message, "192.0.2.99")  # again: now with any templates the first one defined
    batches = decoder.flush()
    decoder.finish()
    batches_to_flows(batches, decoder.cache)
    stats = decoder.stats
    assert stats["bytes_decoded"] + stats["bytes_rejected"] == stats["bytes_in"] == 2 * len(message)
    assert decoder.held_sets == 0


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=24, max_size=300))
def test_random_capture_bytes_never_raise(data: bytes) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for item in iter_udp(io.BytesIO(header + data)):
        assert item.offset >= 24
    plausible_message(data)


def test_v9_bulk_matches_per_record_semantics() -> None:
    """Reduced-size (3-byte) counters and odd widths decode as big-endian integers."""
    fields = struct.pack(">HHHHHH", 1, 3, 2, 5, 8, 4)
    record = (70000).to_bytes(3, "big") + (2**33 + 5).to_bytes(5, "big") + bytes([1, 2, 3, 4])
    msg = struct.pack(">HHIIII", 9, 2, 0, 0, 0, 1)
    msg += struct.pack(">HHHH", 0, 8 + len(fields), 256, 3) + fields
    msg += struct.pack(">HH", 256, 4 + 2 * len(record)) + record * 2
    decoder = Decoder(TemplateCache())
    decoder.feed(msg, "192.0.2.3")
    (batch,) = decoder.flush()
    assert isinstance(batch.columns["octetDeltaCount"], np.ndarray)
    assert batch.records()[0] == {
        "octetDeltaCount": 70000,
        "packetDeltaCount": 2**33 + 5,
        "sourceIPv4Address": "1.2.3.4",
    }


def test_v5_from_two_exporters_in_one_flush(netflow_dir: Path) -> None:
    """v5 shares one template object: records must keep their own exporter (and times)."""
    v5 = (LOGSTASH / "mikrotik" / "netflow5_test_microtik.dat").read_bytes()
    juniper = (LOGSTASH / "juniper" / "netflow5_test_juniper_mx80.dat").read_bytes()
    decoder = Decoder(TemplateCache())
    decoder.feed(v5, "192.0.2.1")
    decoder.feed(juniper, "192.0.2.2")
    flows = batches_to_flows(decoder.flush(), decoder.cache)
    exporters = collections.Counter(flows["exporter"].to_pylist())
    assert exporters == {"192.0.2.1": 30, "192.0.2.2": 29}
