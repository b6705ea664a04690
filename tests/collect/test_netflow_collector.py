"""The live NetFlow collector, fed every corpus export packet over UDP on the loopback.

What arrives must be exactly what the decoder makes of the same packets from files: same flow
rows, same rejects with the same reasons. Packets are sent from distinct 127.0.0.x source
addresses, one per exporter of the original capture (raw message files, which carry no sender,
share one), so that the collector's per-exporter template caches see the exporters the files
had. Every test binds port 0 and stops its collector thread.
"""

from __future__ import annotations

import collections
import json
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.collect.running import Running

from orbwatch.collect.base import CollectSettings, Received
from orbwatch.collect.net import parse_listen
from orbwatch.collect.netflow import netflow_collector
from orbwatch.config import Config
from orbwatch.sources.netflow import flow_columns, reject_table
from orbwatch.sources.netflow.decode import Decoder, TemplateCache, batches_to_flows
from orbwatch.sources.netflow.pcap import UdpPayload, iter_udp
from orbwatch.store.workspace import Workspace

RAW_SENDER = "127.0.0.2"
KEY_COLUMNS = ("exporter", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "src_bytes")


def corpus_packets(netflow: Path) -> list[tuple[str, bytes]]:
    """(sender address, payload) of every corpus export packet, in golden order.

    Raw messages first, in the order of the Logstash spec contexts, then the other raw files;
    then the UDP payloads of every capture, each original exporter mapped to its own
    loopback address.
    """
    golden = json.loads(
        (
            netflow / "logstash-codec-netflow" / "EXPECTED_logstash-codec-netflow_spec.json"
        ).read_text()
    )
    raw: list[Path] = []
    for context in golden["contexts"]:
        for name in context["local_dat_files"]:
            path = netflow.parent / name
            if path not in raw:
                raw.append(path)
    others = sorted(p for ext in ("*.dat", "*.bin") for p in netflow.rglob(ext))
    raw += [p for p in others if p not in raw]
    packets = [(RAW_SENDER, p.read_bytes()) for p in raw]
    senders: dict[str, str] = {}
    for pcap in sorted(netflow.rglob("*.pcap")):
        with pcap.open("rb") as stream:
            for item in iter_udp(stream):
                if isinstance(item, UdpPayload):
                    sender = senders.setdefault(item.exporter, f"127.0.0.{10 + len(senders)}")
                    packets.append((sender, item.payload))
    return packets


def decode_like_files(packets: list[tuple[str, bytes]]) -> tuple[pa.Table, pa.Table]:
    """Rows and rejects of the same packets decoded in order by one file-style decoder."""
    decoder = Decoder(TemplateCache())
    for seq, (sender, payload) in enumerate(packets, 1):
        decoder.feed(payload, sender, seq, set_offsets=False)
    batches = decoder.flush()
    decoder.finish()
    rows = flow_columns(batches_to_flows(batches, decoder.cache))
    return rows, reject_table(decoder.take_rejects())


def start(
    workspace: Workspace,
    config: Config,
    started: list[Running],
    listen: str = "127.0.0.1:0",
    **settings: Any,
) -> tuple[Running, tuple[str, int]]:
    collector = netflow_collector(workspace, config, [listen], CollectSettings(**settings))
    run = Running(collector)
    started.append(run)
    address = collector.listeners[0].sock.getsockname()  # type: ignore[attr-defined]
    return run, (address[0], address[1])


def send(packets: list[tuple[str, bytes]], target: tuple[str, int], run: Running) -> None:
    """Send from each packet's loopback address, pausing so the receiver keeps up."""
    sockets: dict[str, socket.socket] = {}
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    try:
        for i, (sender, payload) in enumerate(packets, 1):
            sock = sockets.get(sender)
            if sock is None:
                sock = sockets[sender] = socket.socket(family, socket.SOCK_DGRAM)
                sock.bind((sender, 0))
            sock.sendto(payload, target)
            if i % 32 == 0:
                run.wait_received(i - 16)
    finally:
        for sock in sockets.values():
            sock.close()
    run.wait_received(len(packets))


def _key_counts(table: pa.Table) -> collections.Counter[tuple[Any, ...]]:
    columns = [table[c].to_pylist() for c in KEY_COLUMNS]
    return collections.Counter(zip(*columns, strict=True))


def test_every_corpus_packet_arrives(
    corpus: Path, workspace: Workspace, config: Config, started: list[Running]
) -> None:
    packets = corpus_packets(corpus / "netflow")
    expected_rows, expected_rejects = decode_like_files(packets)
    assert expected_rows.num_rows > 800 and expected_rejects.num_rows > 0
    run, target = start(workspace, config, started, batch_size=100, flush_seconds=0.2)
    send(packets, target, run)
    stats = run.finish()
    assert stats.received == len(packets) and stats.dropped == 0
    flows = workspace.table("flows")
    assert flows.num_rows == expected_rows.num_rows == stats.rows
    assert _key_counts(flows) == _key_counts(expected_rows)
    assert set(flows["source_file"].to_pylist()) == {f"udp://127.0.0.1:{target[1]}"}
    assert set(flows["source_format"].to_pylist()) == {"netflow_udp"}
    offsets = flows["source_offset"].to_pylist()
    assert min(offsets) >= 1 and max(offsets) <= len(packets)
    # Nothing undecodable was lost: the same rejects, with their reasons, are in quarantine.
    quarantine = workspace.table("quarantine")
    assert collections.Counter(quarantine["reason"].to_pylist()) == collections.Counter(
        expected_rejects["reason"].to_pylist()
    )
    assert stats.quarantined == quarantine.num_rows and sum(stats.reasons.values()) == (
        quarantine.num_rows
    )
    kinds = {"unsupported version", "no template", "bad length", "trailing bytes"}
    assert kinds <= set(stats.reasons)
    runs = workspace.table("ingest_runs")
    assert sum(runs["rows_parsed"].to_pylist()) == flows.num_rows
    assert sum(runs["rows_quarantined"].to_pylist()) == quarantine.num_rows
    assert runs.num_rows == stats.batches >= 2  # several micro-batches, one run row each


def test_data_before_template_is_held_then_decoded_or_quarantined(
    corpus: Path, workspace: Workspace, config: Config, started: list[Running]
) -> None:
    akv = corpus / "netflow" / "akvorado" / "netflow"

    def payloads(name: str) -> list[tuple[str, bytes]]:
        with (akv / name).open("rb") as stream:
            return [("127.0.0.3", i.payload) for i in iter_udp(stream) if isinstance(i, UdpPayload)]

    run, target = start(workspace, config, started, flush_seconds=0.1)
    data = payloads("data.pcap")
    send(data, target, run)
    time.sleep(0.3)  # at least one flush passes while the data waits for its template
    assert workspace.count("flows") == 0
    send(payloads("template.pcap"), target, run)
    send(payloads("icmp-data.pcap"), target, run)  # its template never comes
    stats = run.finish()
    assert stats.rows > 0 and workspace.count("flows") == stats.rows
    reasons = workspace.query("SELECT DISTINCT reason FROM quarantine")["reason"].to_pylist()
    assert reasons and all(r.startswith("no template ") for r in reasons)
    assert all("exporter 127.0.0.3 domain" in r for r in reasons)
    assert stats.reasons["no template"] == workspace.count("quarantine")


def test_ipv6_listener(
    corpus: Path, workspace: Workspace, config: Config, started: list[Running]
) -> None:
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    v5 = corpus / "netflow/logstash-codec-netflow/mikrotik/netflow5_test_microtik.dat"
    run, target = start(workspace, config, started, listen="[::1]:0")
    send([("::1", v5.read_bytes())], target, run)
    run.finish()
    flows = workspace.table("flows")
    assert flows.num_rows == 30
    assert set(flows["exporter"].to_pylist()) == {"::1"}
    assert flows["source_file"][0].as_py() == f"udp://[::1]:{target[1]}"


def test_full_buffer_drops_are_counted_and_quarantined(
    workspace: Workspace, config: Config
) -> None:
    collector = netflow_collector(
        workspace, config, ["127.0.0.1:0"], CollectSettings(max_buffer=2, duration=0)
    )
    source = collector.listeners[0].source
    accepted = [
        collector.offer(Received(collector.next_seq(), b"\x00\x05", source, "127.0.0.9"))
        for _ in range(5)
    ]
    assert accepted == [True, True, False, False, False]
    stats = collector.run()
    assert stats.dropped == 3 and stats.reasons["buffer full (dropped)"] == 3
    rows = workspace.query("SELECT reason, source_offset FROM quarantine ORDER BY 2").to_pylist()
    assert rows[-1] == {"reason": "buffer full: 3 item(s) dropped (--max-buffer 2)",
                        "source_offset": 3}  # fmt: skip
    assert stats.reasons["truncated message"] == 2  # the two buffered ones were decoded


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:2055", 1).port == 2055
    assert parse_listen("[::1]:9995", 1).host == "::1"
    assert parse_listen("::1", 2055).port == 2055
    assert parse_listen(":5514", 1).host == "127.0.0.1"
    with pytest.raises(Exception, match="not an IPv4 or IPv6 address"):
        parse_listen("localhost:2055", 1)
    with pytest.raises(Exception, match="port must be"):
        parse_listen("127.0.0.1:99999", 1)


def test_cli_sigterm_flushes(corpus: Path, tmp_path: Path) -> None:
    """`orbwatch collect netflow` stops on SIGTERM after writing what it received."""
    import re
    import signal
    import subprocess
    import sys

    ws = tmp_path / "cli.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orbwatch", "--workspace", str(ws), "collect", "netflow",
         "--listen", "127.0.0.1:0", "--flush-seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
        match = re.search(r"udp://127\.0\.0\.1:(\d+)", first)
        assert match, first
        v5 = corpus / "netflow/logstash-codec-netflow/mikrotik/netflow5_test_microtik.dat"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(v5.read_bytes(), ("127.0.0.1", int(match.group(1))))
            sock.sendto(b"\x00\x08junk", ("127.0.0.1", int(match.group(1))))
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1  # something was quarantined
    text = stdout.decode()
    assert "quarantined by reason" in text and "unsupported version" in text
    with Workspace.open(ws, read_only=True) as check:
        assert check.count("flows") == 30 and check.count("quarantine") == 1
