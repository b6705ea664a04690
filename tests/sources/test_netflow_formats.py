"""NetFlow v1 and v7 (fixed layouts, like v5) and IPFIX RFC 6313 structured data."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path

import pytest

from orbwatch.config import Config
from orbwatch.sources import detect_format
from orbwatch.sources.ingest import Ingestor
from orbwatch.sources.inputs import Input
from orbwatch.sources.netflow import NetflowRaw, plausible_message
from orbwatch.sources.netflow.decode import FIXED_FORMATS, Decoder, TemplateCache, batches_to_flows
from orbwatch.store.workspace import Workspace

UTC = dt.UTC


@pytest.fixture
def v1_packet(corpus: Path) -> Path:
    return corpus / "netflow" / "softflowd-hex" / "packet_v1.bin"


def test_v1_softflowd_packet(v1_packet: Path) -> None:
    """softflowd's v1 export of a ping: echo request and reply, 10 packets / 840 bytes each."""
    decoder = Decoder(TemplateCache())
    decoder.feed(v1_packet.read_bytes(), "192.0.2.7")
    flows = batches_to_flows(decoder.flush(), decoder.cache).to_pylist()
    assert not decoder.take_rejects()
    assert decoder.stats["bytes_decoded"] == decoder.stats["bytes_in"] == 16 + 2 * 48
    assert [(f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"]) for f in flows] == [
        ("172.17.0.2", "172.17.0.1", 8, 0),  # ICMP type 8 code 0: echo request
        ("172.17.0.1", "172.17.0.2", 0, 0),
    ]
    first = flows[0]
    assert (first["protocol"], first["src_bytes"], first["src_packets"]) == ("icmp", 840, 10)
    assert first["dst_bytes"] is None and first["netflow_version"] == 1
    # sysUptime-relative: exported at uptime 71,835 ms, 2020-03-29 15:47:56.802428996 UTC;
    # the flow ran from uptime 10,183 to 19,185 ms.
    export = dt.datetime(2020, 3, 29, 15, 47, 56, 802429, tzinfo=UTC)
    assert first["ts_start"] == export - dt.timedelta(milliseconds=71_835 - 10_183)
    assert first["ts_end"] == export - dt.timedelta(milliseconds=71_835 - 19_185)
    assert first["exporter"] == "192.0.2.7" and first["source_offset"] == 16


def test_v1_file_is_detected_and_ingested(
    v1_packet: Path, workspace: Workspace, config: Config
) -> None:
    head = v1_packet.read_bytes()
    assert plausible_message(head) and not plausible_message(head[:-1])
    assert detect_format(Input.open(str(v1_packet))) is NetflowRaw
    result = Ingestor(workspace, config).ingest(str(v1_packet))
    assert (result.format, result.rows, result.quarantined) == ("netflow_raw", 2, 0)


def _v7_message(records: int, uptime: int = 60_000, secs: int = 1_700_000_000) -> bytes:
    """A Catalyst-style v7 export: 24-byte header, 52-byte records."""
    header = struct.pack(">HHIIIII", 7, records, uptime, secs, 500_000_000, 42, 0)
    body = b""
    for i in range(records):
        body += struct.pack(
            ">4s4s4sHHIIIIHHBBBBHHBBH4s",
            bytes([10, 1, 1, i + 1]), bytes([198, 51, 100, 7]), bytes([10, 1, 1, 254]),
            3, 4, 5 + i, 1500 * (i + 1), 50_000, 59_000, 40_000 + i, 443,
            0x01, 0x1B, 6, 0, 64_512, 15_169, 24, 24, 0, bytes([10, 1, 1, 253]),
        )  # fmt: skip
    return header + body


def test_v7_constructed_message() -> None:
    message = _v7_message(3)
    assert len(message) == 24 + 3 * 52 and plausible_message(message)
    decoder = Decoder(TemplateCache())
    decoder.feed(message, "192.0.2.8", 100, set_offsets=False)
    (batch,) = decoder.flush()
    assert batch.version == 7 and batch.template is FIXED_FORMATS[7].template
    record = batch.records()[2]
    assert record["v7RouterShortcut"] == "10.1.1.253" and record["bgpDestinationAsNumber"] == 15169
    flows = batches_to_flows([batch], decoder.cache).to_pylist()
    assert [f["src_ip"] for f in flows] == ["10.1.1.1", "10.1.1.2", "10.1.1.3"]
    last = flows[2]
    assert (last["src_port"], last["dst_port"], last["protocol"]) == (40_002, 443, "tcp")
    assert (last["src_bytes"], last["src_packets"]) == (4500, 7)
    assert last["conn_state"] == "FIN|SYN|PSH|ACK"
    export = dt.datetime(2023, 11, 14, 22, 13, 20, 500_000, tzinfo=UTC)
    assert last["ts_start"] == export - dt.timedelta(seconds=10)
    assert last["ts_end"] == export - dt.timedelta(seconds=1)
    assert last["source_offset"] == 100 and last["netflow_version"] == 7


def test_v7_cut_and_oversized_messages_are_quarantined() -> None:
    decoder = Decoder(TemplateCache())
    decoder.feed(_v7_message(2)[:-10], "192.0.2.8")  # the second record is cut
    decoder.feed(struct.pack(">HHIIIII", 7, 29, 0, 0, 0, 0, 0), "192.0.2.8")
    (batch,) = decoder.flush()
    assert batch.num_records == 1
    reasons = [r.reason for r in decoder.take_rejects()]
    assert reasons == [
        "truncated NetFlow v7 message: 2 records need 128 bytes, only 118 present",
        "NetFlow v7 header announces 29 records (at most 28 allowed)",
    ]
    stats = decoder.stats
    assert stats["bytes_decoded"] + stats["bytes_rejected"] == stats["bytes_in"]


# ---------------------------------------------------------------------------------------------
# RFC 6313 structured data


def _ipfix_with_lists() -> bytes:
    """Template 300: source/destination address, a subTemplateList (variable length) and a
    basicList of fixed length; two data records, each carrying both lists."""
    fields = [(8, 4), (12, 4), (292, 0xFFFF), (291, 9), (2, 4)]
    tpl_body = struct.pack(">HH", 300, len(fields)) + b"".join(
        struct.pack(">HH", ie, n) for ie, n in fields
    )
    template_set = struct.pack(">HH", 2, 4 + len(tpl_body)) + tpl_body
    # subTemplateList: semantic (1 byte), template id, then the records of that template.
    sub_list = struct.pack(">BH", 3, 301) + bytes(8)
    # basicList: semantic, element id 7 (port), element length 2, then two ports.
    basic = struct.pack(">BHHHH", 3, 7, 2, 80, 443)
    records = b""
    for i in range(2):
        records += bytes([10, 0, 0, i + 1, 192, 0, 2, 9]) + bytes([len(sub_list)]) + sub_list
        records += basic + struct.pack(">I", 10 + i)
    data_set = struct.pack(">HH", 300, 4 + len(records)) + records
    body = template_set + data_set
    return struct.pack(">HHIII", 10, 16 + len(body), 1_700_000_000, 1, 5) + body


def test_structured_lists_are_skipped_and_counted() -> None:
    decoder = Decoder(TemplateCache())
    decoder.feed(_ipfix_with_lists(), "192.0.2.9")
    (batch,) = decoder.flush()
    assert batch.records() == [
        {"sourceIPv4Address": "10.0.0.1", "destinationIPv4Address": "192.0.2.9",
         "packetDeltaCount": 10},
        {"sourceIPv4Address": "10.0.0.2", "destinationIPv4Address": "192.0.2.9",
         "packetDeltaCount": 11},
    ]  # fmt: skip
    assert decoder.take_skipped() == {
        "subTemplateList values not decoded (RFC 6313 structured data)": 2,
        "basicList values not decoded (RFC 6313 structured data)": 2,
    }
    assert decoder.stats["bytes_decoded"] == decoder.stats["bytes_in"]
    assert decoder.take_skipped() == {}


def test_structured_lists_in_the_ingest_summary(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "lists.ipfix"
    path.write_bytes(_ipfix_with_lists())
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.format, result.rows, result.quarantined) == ("netflow_raw", 2, 0)
    assert result.skipped == {
        "subTemplateList values not decoded (RFC 6313 structured data)": 2,
        "basicList values not decoded (RFC 6313 structured data)": 2,
    }
