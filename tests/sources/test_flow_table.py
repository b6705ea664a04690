"""Generic flow tables (CSV/space-separated text and Parquet) through the ingestor."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources import detect_format
from orbwatch.sources.flow_table import FlowCsv
from orbwatch.sources.ingest import Ingestor
from orbwatch.sources.inputs import Input
from orbwatch.store.workspace import Workspace

UTC = dt.UTC
VPC_HEADER = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status"
)


@pytest.fixture
def vpc_log(corpus: Path, tmp_path: Path) -> Path:
    """The AWS VPC flow log of the corpus, as the plain text file AWS writes."""
    events = json.loads(
        (corpus / "netflow" / "aws-vpc-flow" / "cribl_VPC_Flow.log.json").read_text()
    )
    target = tmp_path / "vpc_flow.log"
    target.write_text("".join(event["_raw"] + "\n" for event in events))
    return target


def _rows(ws: Workspace, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    return ws.query(sql, params).to_pylist()


def _row(ws: Workspace, file: Path, offset: int) -> dict[str, Any]:
    (row,) = _rows(
        ws, "SELECT * FROM flows WHERE source_file = ? AND source_offset = ?", [str(file), offset]
    )
    return row


def _counts(ws: Workspace, column: str) -> dict[Any, int]:
    return {
        r["k"]: r["n"]
        for r in _rows(ws, f'SELECT "{column}" AS k, count(*) AS n FROM flows GROUP BY 1')
    }


def test_vpc_log_is_detected_as_space_separated_flow_csv(vpc_log: Path) -> None:
    assert vpc_log.read_text().splitlines()[0] == VPC_HEADER
    inp = Input.open(str(vpc_log))
    try:
        assert detect_format(inp) is FlowCsv
        names, delimiter = FlowCsv._header(inp.head()) or ([], "")
    finally:
        inp.close()
    assert delimiter == " "
    assert names == VPC_HEADER.split()


def test_vpc_log_counts_and_values(vpc_log: Path, workspace: Workspace, config: Config) -> None:
    result = Ingestor(workspace, config).ingest(str(vpc_log))
    assert (result.status, result.format, result.rows, result.quarantined) == (
        "loaded",
        "flow_csv",
        99,
        0,
    )
    assert result.first_ts == dt.datetime(2021, 9, 2, 21, 44, 25, tzinfo=UTC)  # 1630619065
    assert result.last_ts == dt.datetime(2021, 9, 2, 21, 45, 18, tzinfo=UTC)  # 1630619118

    assert _counts(workspace, "protocol") == {"tcp": 93, "udp": 4, "icmp": 2}
    assert _counts(workspace, "action") == {"deny": 67, "allow": 32}
    assert _counts(workspace, "direction") == {"inbound": 71, "internal": 24, "outbound": 4}
    assert _counts(workspace, "conn_state") == {"OK": 99}  # log-status
    assert _counts(workspace, "exporter") == {  # interface-id
        "eni-07e5d76940fbaa5c6": 56,
        "eni-0858304751c757b2e": 17,
        "eni-0b2fc5457066bc156": 13,
        "eni-0bf22c72ebe087ac9": 13,
    }
    assert workspace.scalar("SELECT sum(src_bytes) FROM flows") == 8_641_867
    assert workspace.scalar("SELECT sum(src_packets) FROM flows") == 40_072
    offsets = workspace.query("SELECT source_offset FROM flows ORDER BY 1")["source_offset"]
    assert offsets.to_pylist() == list(range(2, 101))  # line 1 is the header

    # Line 2: 89.248.165.164:39540 -> 10.0.0.164:1900 udp, 1 packet, 118 bytes, REJECT.
    udp = _row(workspace, vpc_log, 2)
    assert (udp["src_ip"], udp["src_port"], udp["dst_ip"], udp["dst_port"]) == (
        "89.248.165.164",
        39540,
        "10.0.0.164",
        1900,
    )
    assert (udp["protocol"], udp["action"], udp["direction"]) == ("udp", "deny", "inbound")
    assert (udp["src_packets"], udp["src_bytes"]) == (1, 118)
    assert udp["dst_bytes"] is None and udp["dst_packets"] is None
    assert udp["ts_start"] == dt.datetime(2021, 9, 2, 21, 44, 48, tzinfo=UTC)  # 1630619088
    assert udp["ts_end"] == dt.datetime(2021, 9, 2, 21, 45, 2, tzinfo=UTC)  # 1630619102
    assert udp["exporter"] == "eni-0b2fc5457066bc156"
    assert udp["src_key"] == "00000000000000000000ffff59f8a5a4"
    assert udp["source_format"] == "flow_csv"

    # Line 6: ICMP (protocol 1) with ports 0.
    icmp = _row(workspace, vpc_log, 6)
    assert (icmp["protocol"], icmp["src_ip"], icmp["src_port"], icmp["dst_port"]) == (
        "icmp",
        "195.169.125.251",
        0,
        0,
    )

    # Line 8: an accepted internal TCP flow.
    tcp = _row(workspace, vpc_log, 8)
    assert (tcp["src_ip"], tcp["src_port"], tcp["dst_ip"], tcp["dst_port"]) == (
        "10.0.0.138",
        42376,
        "10.0.0.236",
        9997,
    )
    assert (tcp["protocol"], tcp["action"], tcp["direction"]) == ("tcp", "allow", "internal")
    assert (tcp["src_packets"], tcp["src_bytes"]) == (429, 3_718_361)
    assert tcp["ts_start"] == dt.datetime(2021, 9, 2, 21, 44, 25, tzinfo=UTC)
    assert tcp["ts_end"] == dt.datetime(2021, 9, 2, 21, 45, 25, tzinfo=UTC)


def test_vpc_nodata_rows_are_quarantined(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "vpc.log"
    path.write_text(
        f"{VPC_HEADER}\n"
        "2 123456789010 eni-1 203.0.113.12 172.31.16.139 0 0 1 4 336 1432917027 1432917142 "
        "ACCEPT OK\n"
        "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA\n"
        "2 123456789010 eni-1 172.31.9.69 172.31.9.12 49761 3389 6 20 4249 1418530010 "
        "1418530070 REJECT OK\n"
    )
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.rows, result.quarantined) == (2, 1)
    (bad,) = _rows(workspace, "SELECT source_offset, reason, raw FROM quarantine")
    assert bad["source_offset"] == 3
    assert bad["reason"] == "srcaddr: missing"
    assert bad["raw"] == "2 123456789010 eni-1 - - - - - - - 1431280876 1431280934 - NODATA"
    assert _row(workspace, path, 4)["dst_port"] == 3389


def test_csv_with_explicit_mapping(workspace: Workspace, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "a,b,when,x,p,verdict_text\n"
        "1.2.3.4,10.0.0.1,2024-01-02T03:04:05Z,5,TCP,permit\n"
        "10.0.0.2,9.9.9.9,2024-01-02 03:04:06+02:00,7,17,Drop\n"
        "10.0.0.3,10.0.0.4,1704164647.25,8,gre,shrug\n"
    )
    mapping = {
        "src_ip": "a",
        "dst_ip": "b",
        "ts_start": "when",
        "src_bytes": "x",
        "protocol": "p",
        "action": "verdict_text",
    }
    result = Ingestor(workspace, config).ingest(str(path), "flow_csv", mapping=mapping)
    assert (result.format, result.rows, result.quarantined) == ("flow_csv", 3, 0)

    first = _row(workspace, path, 2)
    assert (first["src_ip"], first["dst_ip"], first["src_bytes"]) == ("1.2.3.4", "10.0.0.1", 5)
    assert first["ts_start"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert first["ts_end"] == first["ts_start"]  # no end and no duration: end = start
    assert (first["protocol"], first["action"], first["direction"]) == ("tcp", "allow", "inbound")

    second = _row(workspace, path, 3)
    assert second["ts_start"] == dt.datetime(2024, 1, 2, 1, 4, 6, tzinfo=UTC)  # +02:00
    assert (second["protocol"], second["action"], second["direction"]) == (
        "udp",
        "deny",
        "outbound",
    )

    third = _row(workspace, path, 4)
    assert third["ts_start"] == dt.datetime(2024, 1, 2, 3, 4, 7, 250000, tzinfo=UTC)
    assert (third["protocol"], third["action"], third["direction"]) == (
        "gre",
        "unknown",
        "internal",
    )


def test_explicit_mapping_wins_over_aliases(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "two_times.csv"
    path.write_text("src,dst,ts,real_start,dport\n8.8.8.8,192.168.0.9,1,1700000000,53\n")
    Ingestor(workspace, config).ingest(str(path), mapping={"ts_start": "real_start"})
    row = _row(workspace, path, 2)
    assert row["ts_start"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert (row["src_ip"], row["dst_ip"], row["dst_port"]) == ("8.8.8.8", "192.168.0.9", 53)


def test_csv_row_with_too_many_fields_is_quarantined(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    path.write_text(
        "ts,src_ip,dst_ip,dst_port,bytes\n"
        "1700000000,10.1.1.1,8.8.8.8,53,100\n"
        "1700000001,10.1.1.2,8.8.8.8,53,200,surplus\n"
        "1700000002,10.1.1.3,8.8.8.8,99999,300\n"
        "1700000003,10.1.1.4,8.8.4.4,443,400\n"
    )
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.format, result.rows, result.quarantined) == ("flow_csv", 2, 2)
    bad = _rows(workspace, "SELECT source_offset, reason, raw FROM quarantine ORDER BY 1")
    assert bad == [
        {
            "source_offset": 3,
            "reason": "expected 5 fields, found 6",
            "raw": "1700000001,10.1.1.2,8.8.8.8,53,200,surplus",
        },
        {
            "source_offset": 4,
            "reason": "dst_port: 99999 is not a valid port (0-65535)",
            "raw": "1700000002,10.1.1.3,8.8.8.8,99999,300",
        },
    ]
    good = _rows(workspace, "SELECT source_offset, src_ip, src_bytes FROM flows ORDER BY 1")
    assert good == [
        {"source_offset": 2, "src_ip": "10.1.1.1", "src_bytes": 100},
        {"source_offset": 5, "src_ip": "10.1.1.4", "src_bytes": 400},
    ]


def test_parquet_with_typed_columns(workspace: Workspace, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "flows.parquet"
    starts = [
        dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 12, 0, 1, 500000, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 12, 0, 2, tzinfo=UTC),
    ]
    table = pa.table(
        {
            "timestamp": pa.array(starts, pa.timestamp("ms", tz="UTC")),
            "src_addr": ["10.9.8.7", "2001:db8::1", "not-an-address"],
            "dst_addr": ["198.51.100.7", "fd00::2", "10.0.0.1"],
            "dport": pa.array([443, 22, 80], pa.int64()),
            "proto": pa.array([6, 17, 6], pa.int32()),
            "duration": pa.array([1.25, None, 0.0], pa.float64()),
            "bytes": pa.array([1000, 2000, 3000], pa.int64()),
        }
    )
    pq.write_table(table, path)
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.format, result.rows, result.quarantined) == ("flow_parquet", 2, 1)

    first = _row(workspace, path, 0)
    assert first["ts_start"] == starts[0]
    assert first["ts_end"] == dt.datetime(2024, 5, 1, 12, 0, 1, 250000, tzinfo=UTC)
    assert first["duration_s"] == 1.25
    assert (first["src_ip"], first["dst_ip"], first["dst_port"]) == (
        "10.9.8.7",
        "198.51.100.7",
        443,
    )
    assert (first["protocol"], first["src_bytes"], first["direction"]) == ("tcp", 1000, "outbound")

    second = _row(workspace, path, 1)
    assert second["ts_start"] == starts[1]
    assert second["ts_end"] == starts[1]  # null duration: end = start
    assert (second["protocol"], second["direction"]) == ("udp", "inbound")  # fd00::/7 is internal
    assert second["src_key"] == "20010db8000000000000000000000001"

    (bad,) = _rows(workspace, "SELECT source_offset, reason FROM quarantine")
    assert bad == {
        "source_offset": 2,
        "reason": "src_addr: not-an-address is not a valid IP address",
    }


def test_unknown_map_columns_raise(workspace: Workspace, config: Config, tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("ts,src_ip,dst_ip\n1700000000,10.1.1.1,8.8.8.8\n")
    ingestor = Ingestor(workspace, config)
    with pytest.raises(InputError, match=r"unknown flows columns \['bogus'\]"):
        ingestor.ingest(str(path), mapping={"bogus": "ts"})
    with pytest.raises(InputError, match=r"columns not in the input: \['nope'\]"):
        ingestor.ingest(str(path), mapping={"src_ip": "nope"})
    assert workspace.count("flows") == 0
    assert workspace.count("ingest_runs") == 0
    # The same file without a mapping loads.
    assert ingestor.ingest(str(path)).rows == 1


def test_mapping_for_a_format_without_columns_raises(
    corpus: Path, workspace: Workspace, config: Config
) -> None:
    path = corpus / "zeek" / "rita_open_conns__conn.log"
    with pytest.raises(InputError, match="--map does not apply to format zeek_conn"):
        Ingestor(workspace, config).ingest(str(path), mapping={"src_ip": "id.orig_h"})


def test_csv_without_required_columns_raises(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "flows.csv"
    path.write_text("when,who,whom\n1700000000,10.1.1.1,8.8.8.8\n")
    with pytest.raises(InputError, match="unknown format"):
        Ingestor(workspace, config).ingest(str(path))
    with pytest.raises(InputError, match=r"cannot find columns for \['ts_start', 'src_ip'"):
        Ingestor(workspace, config).ingest(str(path), "flow_csv")


@pytest.mark.parametrize(
    "head",
    [b"\x01\x02\r\x03,\x04,\x05\n", b"\xff" * 200_000, b'"' + b"\x00" * 200_000],
    ids=["lone carriage return", "field over the csv size limit", "unterminated quote"],
)
def test_sniff_answers_false_on_binary_input(head: bytes) -> None:
    assert FlowCsv.sniff(head, "blob.bin") is False


def test_binary_file_no_format_recognises_is_an_input_error(
    corpus: Path, workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    path = tmp_path / "blob.bin"
    invalid = (corpus / "netflow" / "softflowd-hex" / "packet_invalid.bin").read_bytes()
    path.write_bytes(invalid + b"\r" + b"\xff" * 200_000)
    with pytest.raises(InputError, match="unknown format"):
        Ingestor(workspace, config).ingest(str(path))
