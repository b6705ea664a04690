"""The syslog receiver over UDP and TCP (octet-counted and newline framing) on 127.0.0.1.

Lines are real Zeek conn records from the corpus (JSON lines, and the TSV log with its header);
each must land in ``flows`` exactly as file ingest puts it there.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tests.collect.running import Running

from orbwatch.collect.base import CollectSettings
from orbwatch.collect.syslog import SyslogFramer, one_line, syslog_collector
from orbwatch.config import Config
from orbwatch.sources.ingest import Ingestor
from orbwatch.store.workspace import Workspace

JSON_LOG = "zeek/slips_port-scans_vertical__conn.log"
TSV_LOG = "zeek/rita_open_conns__conn.log"


def collector(
    ws: Workspace, config: Config, started: list[Running], **kwargs: object
) -> tuple[Running, int]:
    c = syslog_collector(
        ws,
        config,
        "127.0.0.1:0",
        settings=CollectSettings(batch_size=20, flush_seconds=0.2),
        **kwargs,  # type: ignore[arg-type]
    )
    run = Running(c)
    started.append(run)
    return run, c.listeners[0].port  # type: ignore[attr-defined]


def file_flows(corpus: Path, name: str, tmp_path: Path, config: Config) -> list[tuple[object, ...]]:
    with Workspace.open(tmp_path / "files.duckdb") as ws:
        Ingestor(ws, config).ingest(str(corpus / name))
        return sorted(ws.con.execute(FLOW_KEYS).fetchall())


FLOW_KEYS = "SELECT ts_start, src_ip, src_port, dst_ip, dst_port, src_bytes, conn_state FROM flows"


def test_udp_json_lines_autodetected(
    corpus: Path, workspace: Workspace, config: Config, started: list[Running], tmp_path: Path
) -> None:
    lines = (corpus / JSON_LOG).read_bytes().splitlines()
    run, port = collector(workspace, config, started, protocol="udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i, line in enumerate(lines, 1):
            sock.sendto(line + b"\n", ("127.0.0.1", port))
            if i % 16 == 0:
                run.wait_received(i - 8)
        sock.sendto(b"not a zeek record", ("127.0.0.1", port))
    run.wait_received(len(lines) + 1)
    stats = run.finish()
    assert sorted(workspace.con.execute(FLOW_KEYS).fetchall()) == file_flows(
        corpus, JSON_LOG, tmp_path, config
    )
    assert stats.rows == len(lines) and stats.batches >= 2
    assert set(workspace.table("flows")["source_format"].to_pylist()) == {"zeek_conn_json"}
    assert workspace.scalar("SELECT max(source_offset) FROM flows") == len(lines)
    (bad,) = workspace.query("SELECT source_offset, raw, source_file FROM quarantine").to_pylist()
    assert bad["source_offset"] == len(lines) + 1 and bad["raw"] == "not a zeek record"
    assert bad["source_file"] == f"udp://127.0.0.1:{port}"


@pytest.mark.parametrize("framing", ["octets", "newline"])
def test_tcp_tsv_with_header(
    corpus: Path,
    workspace: Workspace,
    config: Config,
    started: list[Running],
    tmp_path: Path,
    framing: str,
) -> None:
    lines = (corpus / TSV_LOG).read_bytes().splitlines()
    if framing == "octets":
        stream = b"".join(b"%d %s" % (len(line), line) for line in lines)
    else:
        stream = b"".join(line + b"\n" for line in lines)
    run, port = collector(workspace, config, started, protocol="tcp", fmt="zeek_conn")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for start in range(0, len(stream), 700):  # frames split across segments
            sock.sendall(stream[start : start + 700])
    run.wait_received(len(lines))
    stats = run.finish()
    # Batches of 20 lines: the #fields header of the first one is replayed before the others.
    assert stats.batches >= 2 and workspace.count("quarantine") == 0
    assert sorted(workspace.con.execute(FLOW_KEYS).fetchall()) == file_flows(
        corpus, TSV_LOG, tmp_path, config
    )
    assert set(workspace.table("flows")["source_file"].to_pylist()) == {f"tcp://127.0.0.1:{port}"}


def test_both_protocols_on_one_port(
    corpus: Path, workspace: Workspace, config: Config, started: list[Running]
) -> None:
    lines = (corpus / JSON_LOG).read_bytes().splitlines()[:10]
    run, port = collector(workspace, config, started, protocol="both")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in lines[:5]:
            sock.sendto(line, ("127.0.0.1", port))
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(b"".join(line + b"\n" for line in lines[5:]))
    run.wait_received(10)
    run.finish()
    files = workspace.query("SELECT source_file, count(*) AS n FROM flows GROUP BY 1 ORDER BY 1")
    assert files.to_pylist() == [
        {"source_file": f"tcp://127.0.0.1:{port}", "n": 5},
        {"source_file": f"udp://127.0.0.1:{port}", "n": 5},
    ]


def test_framer_bounds_and_methods() -> None:
    framer = SyslogFramer(max_line=10)
    assert framer.feed(b"5 hello3 abc") == [(b"hello", None), (b"abc", None)]
    assert framer.feed(b"12 ") == []
    assert framer.feed(b"0123456789") == []
    assert framer.feed(b"ab4 last") == [(b"0123456789ab", 12), (b"last", None)]
    lines = SyslogFramer(max_line=10)
    assert lines.feed(b"<13>hi\n\n<13>a b\r\n") == [(b"<13>hi", None), (b"<13>a b", None)]
    assert lines.feed(b"x" * 25) == []
    assert lines.feed(b"yy\nok") == [(b"x" * 25, 27)]  # head kept, real length
    assert lines.close() == [(b"ok", None)]
    assert SyslogFramer().feed(b"1700000000.1\t10.0.0.1\n") == [(b"1700000000.1\t10.0.0.1", None)]
    assert one_line(b"line one\nline two\r\n") == b"line one#012line two"


def test_oversized_udp_message_quarantined(
    workspace: Workspace, config: Config, started: list[Running]
) -> None:
    run, port = collector(workspace, config, started, protocol="udp", fmt="zeek_conn_json",
                          max_line=100)  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"{" + b"x" * 500, ("127.0.0.1", port))
    run.wait_received(1)
    stats = run.finish()
    (row,) = workspace.query("SELECT reason, raw_length FROM quarantine").to_pylist()
    assert row == {"reason": "message of 501 bytes exceeds the 100-byte limit", "raw_length": 100}
    assert stats.quarantined == 1
