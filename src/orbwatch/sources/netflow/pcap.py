"""Reading UDP payloads out of packet captures (classic pcap and pcapng), by hand.

Flow exports are often handed over as a capture taken on the collector: the only way to see
what an exporter sent, including which exporter sent it. Both capture formats are simple
enough to read without a dependency: classic pcap (either byte order, micro- or nanosecond
timestamps) and pcapng (Section Header, Interface Description, Enhanced / Simple / obsolete
Packet blocks; several sections with their own byte order). Link layers: Ethernet (with
802.1Q/802.1ad tags), Linux cooked capture v1 and v2, BSD loopback and raw IPv4/IPv6.

Each UDP packet is yielded as a :class:`UdpPayload` with the exporter (IP source address) and
the byte offset of the packet's record in the file. Whatever cannot be read is yielded as a
:class:`PacketProblem` with offset and reason, so the caller can quarantine it; a damaged
file ends the iteration with one final problem rather than an exception.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",  # microsecond timestamps
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",  # nanosecond timestamps
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
MAX_PACKET = 262_144 * 4  # larger records mean a damaged file, not a jumbo frame

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_LOOP = 0, 1, 101, 108
LINK_SLL, LINK_SLL2, LINK_IPV4, LINK_IPV6 = 113, 276, 228, 229
LINK_RAW_BSD = (12, 14)


@dataclass
class UdpPayload:
    """One UDP datagram: who sent it, where its packet starts in the file, and its payload."""

    offset: int
    exporter: str
    src_port: int
    dst_port: int
    payload: bytes


@dataclass
class PacketProblem:
    """A packet (or the rest of the file) that yielded no UDP payload, and why."""

    offset: int
    reason: str
    raw: bytes
    fatal: bool = False


_ADDR_TEXT: dict[bytes, str] = {}


def _addr(raw: bytes) -> str:
    """Address text, cached: a capture holds few exporters and many packets."""
    text = _ADDR_TEXT.get(raw)
    if text is None:
        text = str(ipaddress.ip_address(raw))
        if len(_ADDR_TEXT) < 65_536:
            _ADDR_TEXT[raw] = text
    return text


def is_capture(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


def iter_udp(stream: BinaryIO) -> Iterator[UdpPayload | PacketProblem]:
    """UDP payloads (and problems) of a classic pcap or pcapng stream, in file order."""
    head = stream.read(4)
    if head in PCAP_MAGICS:
        yield from _classic(stream, PCAP_MAGICS[head])
    elif head == PCAPNG_MAGIC:
        yield from _pcapng(stream, head)
    else:
        yield PacketProblem(0, "not a pcap or pcapng file (unknown magic number)", head, True)


def _classic(stream: BinaryIO, order: str) -> Iterator[UdpPayload | PacketProblem]:
    rest = stream.read(20)
    if len(rest) < 20:
        yield PacketProblem(0, "pcap file header is truncated", rest, True)
        return
    linktype = struct.unpack(order + "I", rest[16:20])[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    offset = 24
    while True:
        header = stream.read(16)
        if not header:
            return
        if len(header) < 16:
            yield PacketProblem(
                offset, "pcap record header is truncated (file cut short)", header, True
            )
            return
        _, _, incl, orig = record.unpack(header)
        if incl > MAX_PACKET:
            yield PacketProblem(
                offset, f"pcap record claims {incl} bytes: damaged file", header, True
            )
            return
        data = stream.read(incl)
        if len(data) < incl:
            yield PacketProblem(
                offset,
                f"pcap record of {incl} bytes is truncated (file cut short after {len(data)})",
                header + data,
                True,
            )
            return
        yield _packet(offset, linktype, data, orig)
        offset += 16 + incl


def _pcapng(stream: BinaryIO, first: bytes) -> Iterator[UdpPayload | PacketProblem]:
    offset = 0
    order = "<"
    links: list[tuple[int, int]] = []  # (link type, snap length) per interface of the section
    pending = first
    while True:
        head = pending + stream.read(8 - len(pending))
        pending = b""
        if not head:
            return
        if len(head) < 8:
            yield PacketProblem(offset, "pcapng block header is truncated", head, True)
            return
        if head[:4] == PCAPNG_MAGIC:
            magic = stream.read(4)
            if magic == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                yield PacketProblem(
                    offset,
                    "pcapng section header has no valid byte-order magic",
                    head + magic,
                    True,
                )
                return
            length = struct.unpack(order + "I", head[4:8])[0]
            body_start = magic
            links = []
        else:
            length = struct.unpack(order + "I", head[4:8])[0]
            body_start = b""
        block_type = struct.unpack(order + "I", head[:4])[0]
        if length < 12 or length % 4 or length > MAX_PACKET + 64:
            yield PacketProblem(
                offset,
                f"pcapng block of type {block_type:#x} has invalid length {length}: damaged file",
                head,
                True,
            )
            return
        body = body_start + stream.read(length - 8 - len(body_start))
        if len(body) < length - 8:
            yield PacketProblem(
                offset, f"pcapng block of {length} bytes is truncated", head + body, True
            )
            return
        body = body[:-4]  # trailing copy of the block length
        if block_type == 1:  # Interface Description
            if len(body) >= 8:
                linktype, _, snap = struct.unpack(order + "HHI", body[:8])
                links.append((linktype, snap))
        elif block_type in (6, 2, 3) and len(body) < (4 if block_type == 3 else 20):
            yield PacketProblem(
                offset, f"pcapng packet block of {length} bytes is too short", head + body
            )
        elif block_type in (6, 2):  # Enhanced Packet / obsolete Packet
            if block_type == 6:
                iface, _, _, incl, orig = struct.unpack(order + "IIIII", body[:20])
            else:
                iface, _, _, _, incl, orig = struct.unpack(order + "HHIIII", body[:20])
            if iface >= len(links):
                yield PacketProblem(
                    offset,
                    f"packet names interface {iface}, which the section does not describe",
                    head + body,
                )
            elif 20 + incl > len(body):
                yield PacketProblem(offset, "packet data overruns its pcapng block", head + body)
            else:
                yield _packet(offset, links[iface][0], body[20 : 20 + incl], orig)
        elif block_type == 3:  # Simple Packet: interface 0, captured = min(orig, snaplen)
            orig = struct.unpack(order + "I", body[:4])[0]
            if not links:
                yield PacketProblem(offset, "simple packet block before any interface", head + body)
            else:
                snap = links[0][1] or orig
                yield _packet(offset, links[0][0], body[4 : 4 + min(orig, snap)], orig)
        offset += length


def _packet(offset: int, linktype: int, data: bytes, orig: int) -> UdpPayload | PacketProblem:
    """Peel link, IP and UDP headers off one captured frame."""
    ethertype: int | None = None
    pos = 0
    if linktype == LINK_ETHERNET:
        if len(data) < 14:
            return PacketProblem(offset, "Ethernet frame shorter than its header", data)
        ethertype, pos = struct.unpack_from(">H", data, 12)[0], 14
        while ethertype in (0x8100, 0x88A8, 0x9100) and len(data) >= pos + 4:
            ethertype, pos = struct.unpack_from(">H", data, pos + 2)[0], pos + 4
    elif linktype == LINK_SLL:
        if len(data) < 16:
            return PacketProblem(offset, "Linux cooked frame shorter than its header", data)
        ethertype, pos = struct.unpack_from(">H", data, 14)[0], 16
    elif linktype == LINK_SLL2:
        if len(data) < 20:
            return PacketProblem(offset, "Linux cooked v2 frame shorter than its header", data)
        ethertype, pos = struct.unpack_from(">H", data, 0)[0], 20
    elif linktype in (LINK_NULL, LINK_LOOP):
        pos = 4  # address family; the IP version nibble says the rest
    elif linktype not in (LINK_RAW, LINK_IPV4, LINK_IPV6, *LINK_RAW_BSD):
        return PacketProblem(offset, f"link type {linktype} is not supported", data[:64])
    if ethertype is not None and ethertype not in (0x0800, 0x86DD):
        return PacketProblem(offset, f"not an IP packet (ethertype {ethertype:#06x})", data[:64])
    if len(data) <= pos:
        return PacketProblem(offset, "frame holds no IP header", data)
    version = data[pos] >> 4
    if version == 4:
        if len(data) < pos + 20:
            return PacketProblem(offset, "IPv4 header is truncated", data)
        ihl = (data[pos] & 0x0F) * 4
        total = struct.unpack_from(">H", data, pos + 2)[0]
        frag = struct.unpack_from(">H", data, pos + 6)[0]
        proto = data[pos + 9]
        src = _addr(data[pos + 12 : pos + 16])
        if frag & 0x3FFF:
            return PacketProblem(
                offset,
                f"fragmented IPv4 packet from {src} (reassembly is not supported)",
                data[:64],
            )
        end = min(len(data), pos + total) if total >= ihl else len(data)
        pos += ihl
    elif version == 6:
        if len(data) < pos + 40:
            return PacketProblem(offset, "IPv6 header is truncated", data)
        plen = struct.unpack_from(">H", data, pos + 4)[0]
        proto = data[pos + 6]
        src = _addr(data[pos + 8 : pos + 24])
        end = min(len(data), pos + 40 + plen)
        pos += 40
        while proto in (0, 43, 60) and end - pos >= 8:  # hop-by-hop, routing, destination
            proto, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        if proto == 44:
            return PacketProblem(
                offset,
                f"fragmented IPv6 packet from {src} (reassembly is not supported)",
                data[:64],
            )
    else:
        return PacketProblem(offset, f"IP version {version} in frame", data[:64])
    if proto != 17:
        return PacketProblem(
            offset, f"not a UDP packet (IP protocol {proto}) from {src}", data[:64]
        )
    if end - pos < 8:
        return PacketProblem(offset, f"UDP header from {src} is truncated", data)
    sport, dport, ulen = struct.unpack_from(">HHH", data, pos)
    stop = pos + ulen if 8 <= ulen <= end - pos else end
    if ulen > end - pos and len(data) < orig:
        return PacketProblem(
            offset,
            f"UDP datagram from {src} was cut by the capture snap "
            f"length ({len(data)} of {orig} bytes captured)",
            data[:64],
        )
    return UdpPayload(offset, src, sport, dport, data[pos + 8 : stop])
