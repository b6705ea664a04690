"""Zeek conn.log (TSV and JSON) through the ingestor, checked against the corpus files."""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path
from typing import Any

import pytest

from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources.ingest import Ingestor, expand_paths
from orbwatch.store.workspace import Workspace

UTC = dt.UTC

# file -> (format, rows, quarantined)
EXPECTED: dict[str, tuple[str, int, int]] = {
    "rita_json_with_all_fields__conn.log": ("zeek_conn_json", 29, 0),
    "rita_open_conns__conn.log": ("zeek_conn", 29, 0),
    "rita_open_conns__open_conn.log": ("zeek_conn", 59, 0),
    "rita_truncated__conn.log": ("zeek_conn", 58, 1),
    "slips_port-scans_horizontal__conn.log": ("zeek_conn", 41, 0),
    "slips_port-scans_vertical__conn.log": ("zeek_conn_json", 50, 0),
    "stratosphere_003-android-rat__conn.log": ("zeek_conn", 361, 0),
    "stratosphere_006-ssh-honeypot__conn.log": ("zeek_conn", 18, 0),
}
NOT_CONN = ("rita_text_file__conn.log", "stratosphere_006-ssh-honeypot__ssh.log")


def _row(ws: Workspace, file: Path | str, line: int) -> dict[str, Any]:
    rows = ws.query(
        "SELECT * FROM flows WHERE source_file = ? AND source_offset = ?", [str(file), line]
    ).to_pylist()
    assert len(rows) == 1, f"expected one row at {file}:{line}, found {len(rows)}"
    return rows[0]


def _quarantine(ws: Workspace, file: Path | str) -> list[dict[str, Any]]:
    return ws.query(
        "SELECT source_offset, reason, raw, raw_length FROM quarantine "
        "WHERE source_file = ? ORDER BY source_offset",
        [str(file)],
    ).to_pylist()


def test_corpus_folder_is_fully_accounted_for(corpus: Path) -> None:
    names = sorted(p.name for p in (corpus / "zeek").iterdir() if p.is_file())
    assert names == sorted([*EXPECTED, *NOT_CONN])


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus_file_counts_and_format(
    corpus: Path,
    workspace: Workspace,
    config: Config,
    name: str,
    expected: tuple[str, int, int],
) -> None:
    fmt, rows, quarantined = expected
    path = corpus / "zeek" / name
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.status, result.format) == ("loaded", fmt)
    assert (result.rows, result.quarantined) == (rows, quarantined)
    assert workspace.count("flows") == rows
    assert workspace.count("quarantine") == quarantined
    runs = workspace.table("ingest_runs").to_pylist()
    assert len(runs) == 1
    assert runs[0]["format"] == fmt
    assert (runs[0]["rows_parsed"], runs[0]["rows_quarantined"]) == (rows, quarantined)
    # Every row carries its provenance and a key for each address.
    assert (
        workspace.scalar(
            "SELECT count(*) FROM flows WHERE source_format = ? AND source_file = ? "
            "AND ingest_run_id = ? AND src_key IS NOT NULL AND dst_key IS NOT NULL "
            "AND ts_start IS NOT NULL AND ts_end >= ts_start",
            [fmt, str(path), runs[0]["ingest_run_id"]],
        )
        == rows
    )
    # Line numbers are unique within a file.
    assert workspace.scalar("SELECT count(DISTINCT source_offset) FROM flows") == rows


@pytest.mark.parametrize("name", NOT_CONN)
def test_files_that_are_not_conn_logs_are_refused(
    corpus: Path, workspace: Workspace, config: Config, name: str
) -> None:
    path = corpus / "zeek" / name
    with pytest.raises(InputError, match="unknown format") as caught:
        Ingestor(workspace, config).ingest(str(path))
    assert str(path) in str(caught.value)
    assert workspace.count("flows") == 0
    assert workspace.count("ingest_runs") == 0


def test_truncated_last_line_is_quarantined(
    corpus: Path, workspace: Workspace, config: Config
) -> None:
    path = corpus / "zeek" / "rita_truncated__conn.log"
    result = Ingestor(workspace, config).ingest(str(path))
    reason = "expected 21 fields, found 9 (truncated or malformed line)"
    assert result.reasons == {reason: 1}
    (bad,) = _quarantine(workspace, path)
    assert bad["source_offset"] == 67
    assert bad["reason"] == reason
    assert bad["raw"].startswith("1517336086.507674\tCWjAXr3YklCCTQsYPg\t10.55.182.100")
    assert bad["raw"].endswith("\ttcp\t-\t0.065")
    assert bad["raw_length"] == 86
    # The line before it, the file's last good one, is loaded.
    row = _row(workspace, path, 66)
    assert row["flow_uid"] == "CRdiow2TR6gjwTtM09"
    assert row["ts_start"] == dt.datetime(2018, 1, 30, 18, 14, 46, 165021, tzinfo=UTC)
    assert result.last_ts == dt.datetime(2018, 1, 30, 18, 14, 46, 165021, tzinfo=UTC)
    assert workspace.scalar("SELECT max(source_offset) FROM flows") == 66


def test_tsv_row_values(corpus: Path, workspace: Workspace, config: Config) -> None:
    path = corpus / "zeek" / "rita_open_conns__open_conn.log"
    Ingestor(workspace, config).ingest(str(path))

    first = _row(workspace, path, 9)  # first data line, after 8 header lines
    assert first["flow_uid"] == "Ci85EB2YjUI9a2eql6"
    assert (first["src_ip"], first["src_port"]) == ("10.55.182.100", 14291)
    assert (first["dst_ip"], first["dst_port"]) == ("10.233.233.5", 80)
    assert first["protocol"] == "tcp"
    assert first["service"] is None  # "-" is Zeek's unset marker
    assert first["conn_state"] == "S0"
    assert (first["src_bytes"], first["dst_bytes"]) == (0, 0)
    assert (first["src_packets"], first["dst_packets"]) == (2, 0)
    assert first["direction"] == "internal"
    assert first["action"] == "unknown"
    assert first["src_key"] == "00000000000000000000ffff0a37b664"

    dns = _row(workspace, path, 10)
    assert dns["flow_uid"] == "CVvreZ2AGtqjnP3nnl"
    assert (dns["src_ip"], dns["src_port"]) == ("192.168.88.2", 55638)
    assert (dns["dst_ip"], dns["dst_port"]) == ("165.227.88.15", 53)
    assert (dns["protocol"], dns["service"], dns["conn_state"]) == ("udp", "dns", "SF")
    assert (dns["src_bytes"], dns["dst_bytes"], dns["src_packets"], dns["dst_packets"]) == (
        61,
        81,
        1,
        1,
    )
    assert dns["duration_s"] == pytest.approx(0.069982)
    assert dns["ts_start"] == dt.datetime(2018, 1, 30, 18, 14, 2, 279652, tzinfo=UTC)
    assert dns["ts_end"] == dt.datetime(2018, 1, 30, 18, 14, 2, 349634, tzinfo=UTC)
    assert dns["direction"] == "outbound"
    assert dns["source_format"] == "zeek_conn"


def test_tsv_unset_fields_and_small_epoch(
    corpus: Path, workspace: Workspace, config: Config
) -> None:
    path = corpus / "zeek" / "slips_port-scans_horizontal__conn.log"
    Ingestor(workspace, config).ingest(str(path))
    first = _row(workspace, path, 9)
    # This capture's clock started at the epoch: 928.943457 s after 1970-01-01.
    assert first["ts_start"] == dt.datetime(1970, 1, 1, 0, 15, 28, 943457, tzinfo=UTC)
    assert (first["src_ip"], first["dst_ip"], first["dst_port"]) == (
        "10.0.2.112",
        "195.113.214.219",
        80,
    )
    assert (first["service"], first["src_bytes"], first["dst_bytes"]) == ("http", 261, 1077)

    unanswered = _row(workspace, path, 12)  # duration and byte counts are "-"
    assert unanswered["flow_uid"] == "CW9u9wbGOMHboemg7"
    assert unanswered["duration_s"] is None
    assert unanswered["src_bytes"] is None and unanswered["dst_bytes"] is None
    assert (unanswered["src_packets"], unanswered["dst_packets"]) == (1, 0)
    assert unanswered["conn_state"] == "S0"
    assert unanswered["dst_port"] == 6898
    assert unanswered["ts_end"] == unanswered["ts_start"]  # unknown duration: end = start


def test_json_row_values(corpus: Path, workspace: Workspace, config: Config) -> None:
    path = corpus / "zeek" / "rita_json_with_all_fields__conn.log"
    Ingestor(workspace, config).ingest(str(path))
    row = _row(workspace, path, 1)
    assert row["source_format"] == "zeek_conn_json"
    assert row["flow_uid"] == "CxHo3m4N8uGxrMlcl2"
    assert (row["src_ip"], row["src_port"]) == ("10.55.100.100", 61843)
    assert (row["dst_ip"], row["dst_port"]) == ("205.204.101.182", 80)
    assert (row["protocol"], row["service"], row["conn_state"]) == ("tcp", "http", "SF")
    assert (row["src_bytes"], row["dst_bytes"]) == (719, 336)
    assert (row["src_packets"], row["dst_packets"]) == (10, 4)
    assert row["ts_start"] == dt.datetime(2018, 1, 31, 18, 12, 6, 539915, tzinfo=UTC)
    assert row["ts_end"] == dt.datetime(2018, 1, 31, 18, 13, 55, 525411, tzinfo=UTC)
    assert row["direction"] == "outbound"

    second = _row(workspace, path, 2)
    assert (second["flow_uid"], second["src_ip"], second["dst_ip"]) == (
        "Cj9jo31VXUoMwBTaN1",
        "10.55.100.104",
        "104.16.89.188",
    )
    assert (second["src_bytes"], second["dst_bytes"], second["src_packets"]) == (241, 489, 6)


def test_json_without_service_field(corpus: Path, workspace: Workspace, config: Config) -> None:
    path = corpus / "zeek" / "slips_port-scans_vertical__conn.log"
    Ingestor(workspace, config).ingest(str(path))
    row = _row(workspace, path, 1)
    assert row["flow_uid"] == "CfykLO1IT1nVRJhLA3"
    assert (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"]) == (
        "192.168.1.9",
        50820,
        "45.33.32.156",
        443,
    )
    assert row["service"] is None
    assert row["conn_state"] == "REJ"
    assert row["ts_start"] == dt.datetime(2023, 11, 24, 12, 16, 57, 314165, tzinfo=UTC)
    assert row["duration_s"] == pytest.approx(0.20696377754211426)
    # A vertical scan: one source, mostly one target, many ports; 4 lines name a service.
    assert workspace.scalar("SELECT count(DISTINCT dst_port) FROM flows") == 44
    counted = workspace.query("SELECT dst_ip, direction, count(*) AS n FROM flows GROUP BY ALL")
    assert {(r["dst_ip"], r["direction"]): r["n"] for r in counted.to_pylist()} == {
        ("45.33.32.156", "outbound"): 46,
        ("192.168.1.1", "internal"): 3,
        ("185.199.110.133", "outbound"): 1,
    }
    services = workspace.query(
        "SELECT source_offset, service FROM flows WHERE service IS NOT NULL ORDER BY 1"
    ).to_pylist()
    assert [(r["source_offset"], r["service"]) for r in services] == [
        (13, "ssl"),
        (14, "dns"),
        (32, "dns"),
        (33, "dns"),
    ]


def test_ipv6_rows_of_the_honeypot(corpus: Path, workspace: Workspace, config: Config) -> None:
    path = corpus / "zeek" / "stratosphere_006-ssh-honeypot__conn.log"
    Ingestor(workspace, config).ingest(str(path))

    ssh = _row(workspace, path, 10)
    assert ssh["flow_uid"] == "CksTnzONbQWOcOIK1"
    assert (ssh["src_ip"], ssh["src_port"]) == ("2001:718:2:1663::1ce", 50978)
    assert (ssh["dst_ip"], ssh["dst_port"]) == ("2001:718:2:1663:2d1c:6afd:7fc2:31f8", 902)
    assert ssh["src_key"] == "200107180002166300000000000001ce"
    assert ssh["dst_key"] == "20010718000216632d1c6afd7fc231f8"
    assert (ssh["protocol"], ssh["service"], ssh["conn_state"]) == ("tcp", "ssh", "SF")
    assert (ssh["src_bytes"], ssh["dst_bytes"], ssh["src_packets"], ssh["dst_packets"]) == (
        2881,
        2575,
        21,
        22,
    )
    assert ssh["ts_start"] == dt.datetime(2020, 7, 27, 12, 44, 16, 931187, tzinfo=UTC)
    assert ssh["direction"] == "external"

    icmp = _row(workspace, path, 11)  # neighbour solicitation from a link-local address
    assert icmp["src_ip"] == "fe80::5bcc:698e:39d5:cdf"
    assert icmp["src_key"] == "fe800000000000005bcc698e39d50cdf"
    assert (icmp["protocol"], icmp["src_port"], icmp["dst_port"]) == ("icmp", 135, 136)
    assert icmp["conn_state"] == "OTH"
    assert icmp["direction"] == "outbound"  # fe80::/10 is internal by default

    first = _row(workspace, path, 9)
    assert first["ts_start"] == dt.datetime(2020, 7, 27, 12, 40, 22, 865067, tzinfo=UTC)
    assert first["ts_end"] == dt.datetime(2020, 7, 27, 12, 41, 36, 228589, tzinfo=UTC)

    counted = workspace.query("SELECT direction, count(*) AS n FROM flows GROUP BY 1")
    directions = {r["direction"]: r["n"] for r in counted.to_pylist()}
    assert directions == {"external": 16, "outbound": 2}
    assert workspace.scalar("SELECT count(*) FROM flows WHERE service = 'ssh'") == 10


def test_reingest_is_skipped_and_force_replaces(
    corpus: Path, workspace: Workspace, config: Config
) -> None:
    path = str(corpus / "zeek" / "rita_truncated__conn.log")
    ingestor = Ingestor(workspace, config)
    first = ingestor.ingest(path)
    assert first.status == "loaded"

    again = ingestor.ingest(path)
    assert again.status == "skipped"
    assert again.rows == 0
    assert "already ingested" in again.message
    assert workspace.count("flows") == 58
    assert workspace.count("quarantine") == 1
    assert workspace.count("ingest_runs") == 1

    forced = ingestor.ingest(path, force=True)
    assert (forced.status, forced.rows, forced.quarantined) == ("loaded", 58, 1)
    assert workspace.count("flows") == 58
    assert workspace.count("quarantine") == 1
    run_ids = workspace.query("SELECT ingest_run_id FROM ingest_runs")["ingest_run_id"]
    assert run_ids.to_pylist() != [None] and len(run_ids) == 1
    assert workspace.scalar("SELECT count(DISTINCT ingest_run_id) FROM flows") == 1
    assert workspace.scalar("SELECT any_value(ingest_run_id) FROM flows") == run_ids[0].as_py()


def test_gzip_input(corpus: Path, workspace: Workspace, config: Config, tmp_path: Path) -> None:
    source = corpus / "zeek" / "stratosphere_006-ssh-honeypot__conn.log"
    target = tmp_path / "conn.log.gz"
    with source.open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    result = Ingestor(workspace, config).ingest(str(target))
    assert (result.status, result.format, result.rows, result.quarantined) == (
        "loaded",
        "zeek_conn",
        18,
        0,
    )
    row = _row(workspace, target, 10)
    assert row["flow_uid"] == "CksTnzONbQWOcOIK1"
    assert row["src_ip"] == "2001:718:2:1663::1ce"


def test_folder_via_expand_paths(
    corpus: Path, workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    folder = tmp_path / "logs"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(corpus / "zeek" / "rita_open_conns__conn.log", folder / "a_conn.log")
    shutil.copy(corpus / "zeek" / "slips_port-scans_vertical__conn.log", folder / "sub" / "b.log")
    (folder / ".hidden").write_text("ignored\n")
    paths = expand_paths([str(folder)])
    assert paths == [str(folder / "a_conn.log"), str(folder / "sub" / "b.log")]
    ingestor = Ingestor(workspace, config)
    results = [ingestor.ingest(p) for p in paths]
    assert [(r.format, r.rows) for r in results] == [("zeek_conn", 29), ("zeek_conn_json", 50)]
    assert workspace.count("flows") == 79
    # A named file passes through untouched.
    assert expand_paths([str(folder / "a_conn.log"), "-"]) == [str(folder / "a_conn.log"), "-"]


def test_malformed_lines_in_the_middle(
    corpus: Path, workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    header = (corpus / "zeek" / "rita_open_conns__open_conn.log").read_text().splitlines()[:8]
    good = (
        "1517336042.090842\tCi85EB2YjUI9a2eql6\t10.55.182.100\t14291\t10.233.233.5\t80\ttcp\t-"
        "\t3.000158\t0\t0\tS0\tT\tT\t0\tS\t2\t104\t0\t0\t(empty)"
    )
    fields = good.split("\t")

    def variant(**changes: str) -> str:
        out = list(fields)
        for index, value in changes.items():
            out[int(index[1:])] = value
        return "\t".join(out)

    lines = [
        *header,
        good,  # 9
        variant(i3="70000"),  # 10: port out of range
        variant(i0="yesterday"),  # 11: not a time
        "\t".join(fields[:10]),  # 12: too few fields
        variant(i5="443", i9="12345"),  # 13: good
        variant(i2="not-an-ip"),  # 14
        variant(i0="-"),  # 15: ts unset
        variant(i4="-"),  # 16: responder unset
        variant(i9="many"),  # 17: bad count
        "",  # 18: blank line: ignored, not quarantined
        variant(i1="Clast"),  # 19: good
    ]
    path = tmp_path / "conn.log"
    path.write_text("\n".join(lines) + "\n")
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.format, result.rows, result.quarantined) == ("zeek_conn", 3, 7)
    got = {q["source_offset"]: q["reason"] for q in _quarantine(workspace, path)}
    assert got == {
        10: "id.orig_p: 70000 is not a valid port (0-65535)",
        11: "ts: yesterday is not a valid time (epoch seconds or ISO 8601)",
        12: "expected 21 fields, found 10 (truncated or malformed line)",
        14: "id.orig_h: not-an-ip is not a valid IP address",
        15: "ts: missing",
        16: "id.resp_h: missing",
        17: "orig_bytes: many is not a valid count",
    }
    assert result.reasons["id.orig_p is not a valid port (0-65535)"] == 1
    raw = workspace.scalar("SELECT raw FROM quarantine WHERE source_offset = 10")
    assert raw == variant(i3="70000")
    offsets = workspace.query("SELECT source_offset FROM flows ORDER BY 1")["source_offset"]
    assert offsets.to_pylist() == [9, 13, 19]
    row = _row(workspace, path, 13)
    assert (row["dst_port"], row["src_bytes"]) == (443, 12345)
    assert _row(workspace, path, 19)["flow_uid"] == "Clast"


def test_repeated_header_changes_the_field_list(
    workspace: Workspace, config: Config, tmp_path: Path
) -> None:
    first = [
        "#separator \\x09",
        "#path\tconn",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state",
        "1700000000.5\tCa\t10.0.0.1\t1111\t8.8.8.8\t53\tudp\tSF",
        "#close\t2023",
        "#separator \\x09",
        "#path\tconn",
        "#fields\tts\tid.orig_h\tid.resp_h\tid.resp_p\tproto\torig_bytes\tconn_state",
        "1700000001\t8.8.4.4\t192.168.1.1\t22\ttcp\t77\tREJ",
    ]
    path = tmp_path / "two.log"
    path.write_text("\n".join(first) + "\n")
    result = Ingestor(workspace, config).ingest(str(path))
    assert (result.format, result.rows, result.quarantined) == ("zeek_conn", 2, 0)
    a = _row(workspace, path, 4)
    assert (a["flow_uid"], a["src_port"], a["dst_port"], a["direction"]) == (
        "Ca",
        1111,
        53,
        "outbound",
    )
    assert a["ts_start"] == dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    b = _row(workspace, path, 9)
    assert (b["src_ip"], b["dst_port"], b["src_bytes"], b["flow_uid"]) == ("8.8.4.4", 22, 77, None)
    assert b["direction"] == "inbound"
