"""Fragmented export datagrams in captures: reassembled, bounded, incomplete ones quarantined.

The captures are built here: a real IPFIX message (the Logstash corpus' ``ipfix.dat``, three
messages with templates, options and flows) in one UDP datagram, cut into IPv4 fragments.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pyarrow as pa
import pytest

from orbwatch.sources.inputs import Input
from orbwatch.sources.netflow import NetflowPcap, TemplateCache
from orbwatch.sources.netflow.pcap import PacketProblem, Reassembler, UdpPayload, iter_udp

EXPORTER = bytes([192, 0, 2, 33])
COLLECTOR = bytes([192, 0, 2, 1])
LINK_RAW = 101


@pytest.fixture
def message(corpus: Path) -> bytes:
    return (corpus / "netflow" / "logstash-codec-netflow" / "generic" / "ipfix.dat").read_bytes()


def ipv4(payload: bytes, ident: int, start: int, more: bool, src: bytes = EXPORTER) -> bytes:
    flags = (0x2000 if more else 0) | start // 8
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, 17, 0,
                         src, COLLECTOR)  # fmt: skip
    return header + payload


def fragments(message: bytes, ident: int, size: int = 96, src: bytes = EXPORTER) -> list[bytes]:
    """The IPv4 packets of one UDP datagram carrying ``message``, ``size`` bytes per fragment."""
    udp = struct.pack(">HHHH", 40_000, 4739, 8 + len(message), 0) + message
    cuts = range(0, len(udp), size)
    return [ipv4(udp[c : c + size], ident, c, c + size < len(udp), src) for c in cuts]


def capture(packets: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINK_RAW)
    for i, packet in enumerate(packets):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(packet), len(packet)) + packet
    return out


def parse(path: Path) -> tuple[pa.Table, pa.Table]:
    parsed = list(NetflowPcap(TemplateCache()).parse(Input.open(str(path))))
    rows = pa.concat_tables([p.rows for p in parsed])
    rejects = pa.concat_tables([p.rejects for p in parsed])
    return rows, rejects


def test_fragments_reassemble_in_any_order(message: bytes, tmp_path: Path) -> None:
    whole = tmp_path / "whole.pcap"
    whole.write_bytes(capture(fragments(message, 7, size=1 << 16)))
    expected, none = parse(whole)
    assert expected.num_rows == 12 and none.num_rows == 0
    parts = fragments(message, 7)
    assert len(parts) > 3
    for order in (parts, parts[::-1], parts[1:] + parts[:1]):
        path = tmp_path / "fragmented.pcap"
        path.write_bytes(capture(order))
        rows, rejects = parse(path)
        assert rejects.num_rows == 0
        # Provenance: the packet whose fragment made the datagram known.
        assert set(rows["source_offset"].to_pylist()) == {24}
        assert rows.drop(["source_offset"]).equals(expected.drop(["source_offset"]))


def test_missing_fragment_is_quarantined_at_the_end(message: bytes, tmp_path: Path) -> None:
    broken = fragments(message, 8)
    del broken[2]
    intact = fragments(message, 9, src=bytes([192, 0, 2, 34]))
    path = tmp_path / "lost.pcap"
    path.write_bytes(capture(broken[:2] + intact + broken[2:]))
    rows, rejects = parse(path)
    assert set(rows["exporter"].to_pylist()) == {"192.0.2.34"} and rows.num_rows == 12
    (reason,) = rejects["reason"].to_pylist()
    assert reason.startswith("incomplete fragmented IPv4 datagram 8 from 192.0.2.33: ")
    assert f" of {len(message) + 8:,} bytes arrived (capture ended)" in reason
    assert rejects["source_offset"].to_pylist() == [24]


def test_reassembly_buffer_is_bounded(message: bytes) -> None:
    first, second = fragments(message, 1), fragments(message, 2)
    packets = [first[0], second[0], *second[1:], *first[1:]]
    items = list(iter_udp(io.BytesIO(capture(packets)), Reassembler(max_datagrams=1)))
    problems = [i for i in items if isinstance(i, PacketProblem)]
    payloads = [i for i in items if isinstance(i, UdpPayload)]
    assert [p.payload for p in payloads] == [message]  # datagram 2 completed
    assert "datagram 1 from 192.0.2.33" in problems[0].reason
    assert "evicted: the reassembly buffer is full" in problems[0].reason
    # Datagram 1's later fragments start a new, never completed datagram: reported at the end.
    assert problems[-1].reason.endswith("(capture ended)")


def test_fragment_past_the_datagram_end_is_rejected(message: bytes) -> None:
    parts = fragments(message, 3)
    last = parts[-1]
    beyond = ipv4(b"x" * 16, 3, 65_528, False)
    items = list(iter_udp(io.BytesIO(capture([last, beyond]))))
    assert isinstance(items[0], PacketProblem)
    assert items[0].reason == (
        "fragmented IPv4 datagram 3 from 192.0.2.33: a fragment ends past 65,535 bytes"
    )
    assert len(items) == 1  # the datagram was given up: nothing left at the end


def ipv6_fragments(message: bytes, ident: int, size: int = 96) -> list[bytes]:
    """IPv6 packets (fixed header + fragment header) of one UDP datagram carrying ``message``."""
    src, dst = bytes.fromhex("20010db8000000000000000000000021"), bytes(15) + b"\x01"
    udp = struct.pack(">HHHH", 40_000, 4739, 8 + len(message), 0) + message
    out = []
    for cut in range(0, len(udp), size):
        piece = udp[cut : cut + size]
        more = 1 if cut + size < len(udp) else 0
        fragment = struct.pack(">BBHI", 17, 0, cut | more, ident) + piece
        out.append(struct.pack(">IHBB16s16s", 6 << 28, len(fragment), 44, 64, src, dst) + fragment)
    return out


def test_ipv6_fragments_reassemble(message: bytes) -> None:
    parts = ipv6_fragments(message, 0xDEADBEEF)
    items = list(iter_udp(io.BytesIO(capture(parts[::-1]))))
    assert [(type(i), getattr(i, "exporter", None)) for i in items] == [
        (UdpPayload, "2001:db8::21")
    ]
    assert isinstance(items[0], UdpPayload) and items[0].payload == message
    lost = list(iter_udp(io.BytesIO(capture(parts[1:]))))
    assert isinstance(lost[0], PacketProblem)
    assert lost[0].reason.startswith(
        "incomplete fragmented IPv6 datagram 3735928559 from 2001:db8::21"
    )
