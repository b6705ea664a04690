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

Export datagrams larger than the path MTU (IPFIX from a busy firewall, v9 with many templates)
arrive as IP fragments. :class:`Reassembler` puts them back together (RFC 791 and RFC 8200
section 4.5: by source, destination and identification, pieces placed by fragment offset) in a
bounded buffer; a datagram whose fragments never all arrive becomes a problem with the reason
when the buffer must make room or the capture ends. Written by hand: the capture readers on
PyPI that reassemble (scapy) are far heavier than this and slower per packet.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict
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
MAX_PENDING_DATAGRAMS = 1_024  # fragmented datagrams being reassembled at once
MAX_PENDING_BYTES = 16 << 20  # bytes held in their fragments, over all of them
MAX_IP_DATAGRAM = 65_535
MAX_FRAGMENTS = 1_024  # per datagram; a 64 kB datagram over a 576-byte path needs 120


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


@dataclass
class Fragment:
    """One IPv4 or IPv6 fragment of a UDP datagram: its place in the datagram and its bytes."""

    offset: int
    src: str
    key: tuple[bytes, bytes, int]  # (source, destination, identification)
    start: int
    more: bool
    data: bytes
    family: str = "IPv4"


@dataclass
class _Partial:
    """The fragments of one datagram seen so far."""

    offset: int  # where the first fragment seen lies in the file
    src: str
    ident: int
    family: str
    pieces: dict[int, bytes]
    total: int | None = None  # known once the last fragment (more fragments = 0) arrived
    held: int = 0


class Reassembler:
    """IP fragments back into UDP datagrams, holding a bounded number of bytes.

    :meth:`add` returns what a fragment completes (a payload, or a problem when the datagram
    is malformed or had to be evicted to stay within the bounds); :meth:`finish` returns one
    problem per datagram still incomplete at the end of the capture.
    """

    def __init__(
        self, max_datagrams: int = MAX_PENDING_DATAGRAMS, max_bytes: int = MAX_PENDING_BYTES
    ) -> None:
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.held = 0
        self._partial: OrderedDict[tuple[bytes, bytes, int], _Partial] = OrderedDict()

    def add(self, frag: Fragment) -> list[UdpPayload | PacketProblem]:
        out: list[UdpPayload | PacketProblem] = []
        part = self._partial.get(frag.key)
        if part is None:
            part = _Partial(frag.offset, frag.src, frag.key[2], frag.family, {})
            self._partial[frag.key] = part
        end = frag.start + len(frag.data)
        if end > MAX_IP_DATAGRAM or (part.total is not None and end > part.total):
            limit = "65,535 bytes" if end > MAX_IP_DATAGRAM else "the datagram's end"
            return [self._drop(frag, part, f"a fragment ends past {limit}")]
        if len(part.pieces) >= MAX_FRAGMENTS and frag.start not in part.pieces:
            return [self._drop(frag, part, f"more than {MAX_FRAGMENTS} fragments")]
        old = part.pieces.get(frag.start)
        part.pieces[frag.start] = frag.data
        growth = len(frag.data) - (len(old) if old is not None else 0)
        part.held += growth
        self.held += growth
        if not frag.more:
            part.total = end
        # Cheap test first: without as many bytes as the datagram holds it cannot be complete.
        whole = None if part.total is None or part.held < part.total else self._assemble(part)
        if whole is not None:
            del self._partial[frag.key]
            self.held -= part.held
            out.append(_udp(part.offset, part.src, whole, 0, len(whole), cut=False))
        while self._partial and (
            len(self._partial) > self.max_datagrams or self.held > self.max_bytes
        ):
            _, oldest = self._partial.popitem(last=False)
            self.held -= oldest.held
            out.append(self._incomplete(oldest, "evicted: the reassembly buffer is full"))
        return out

    def _drop(self, frag: Fragment, part: _Partial, why: str) -> PacketProblem:
        """Give up a malformed datagram: its fragments so far are released."""
        del self._partial[frag.key]
        self.held -= part.held
        return PacketProblem(
            frag.offset,
            f"fragmented {part.family} datagram {part.ident} from {part.src}: {why}",
            frag.data[:64],
        )

    @staticmethod
    def _assemble(part: _Partial) -> bytes | None:
        """The datagram when its pieces cover it from byte 0 to its end, else None."""
        if part.total is None:
            return None
        covered = 0
        for start in sorted(part.pieces):
            if start > covered:
                return None
            covered = max(covered, start + len(part.pieces[start]))
        if covered < part.total:
            return None
        buffer = bytearray(part.total)
        for start in sorted(part.pieces):  # overlaps: the later offset's bytes win
            buffer[start : start + len(part.pieces[start])] = part.pieces[start]
        return bytes(buffer)

    @staticmethod
    def _incomplete(part: _Partial, why: str) -> PacketProblem:
        have = sum(len(p) for p in part.pieces.values())
        need = "an unknown number of" if part.total is None else f"{part.total:,}"
        first = part.pieces.get(0, b"")[:64]
        return PacketProblem(
            part.offset,
            f"incomplete fragmented {part.family} datagram {part.ident} from {part.src}: "
            f"{have:,} of {need} bytes arrived ({why})",
            first,
        )

    def finish(self) -> list[PacketProblem]:
        """End of the capture: every datagram still incomplete, as a problem."""
        out = [self._incomplete(p, "capture ended") for p in self._partial.values()]
        self._partial.clear()
        self.held = 0
        return out


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


def iter_udp(
    stream: BinaryIO, reassembler: Reassembler | None = None
) -> Iterator[UdpPayload | PacketProblem]:
    """UDP payloads (and problems) of a classic pcap or pcapng stream, in file order.

    A fragmented datagram is yielded when its last missing fragment arrives; datagrams still
    incomplete at the end are yielded last, as problems.
    """
    head = stream.read(4)
    packets: Iterator[UdpPayload | PacketProblem | Fragment]
    if head in PCAP_MAGICS:
        packets = _classic(stream, PCAP_MAGICS[head])
    elif head == PCAPNG_MAGIC:
        packets = _pcapng(stream, head)
    else:
        yield PacketProblem(0, "not a pcap or pcapng file (unknown magic number)", head, True)
        return
    fragments = Reassembler() if reassembler is None else reassembler
    for item in packets:
        if isinstance(item, Fragment):
            yield from fragments.add(item)
        else:
            yield item
    yield from fragments.finish()


def _classic(stream: BinaryIO, order: str) -> Iterator[UdpPayload | PacketProblem | Fragment]:
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


def _pcapng(stream: BinaryIO, first: bytes) -> Iterator[UdpPayload | PacketProblem | Fragment]:
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


def _packet(
    offset: int, linktype: int, data: bytes, orig: int
) -> UdpPayload | PacketProblem | Fragment:
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
        end = min(len(data), pos + total) if total >= ihl else len(data)
        if frag & 0x3FFF and proto == 17:
            if len(data) < orig:
                return _cut_fragment(offset, src, data, orig)
            ident = struct.unpack_from(">H", data, pos + 4)[0]
            key = (data[pos + 12 : pos + 16], data[pos + 16 : pos + 20], ident)
            start = (frag & 0x1FFF) * 8
            return Fragment(offset, src, key, start, bool(frag & 0x2000), data[pos + ihl : end])
        pos += ihl
    elif version == 6:
        if len(data) < pos + 40:
            return PacketProblem(offset, "IPv6 header is truncated", data)
        plen = struct.unpack_from(">H", data, pos + 4)[0]
        proto = data[pos + 6]
        src = _addr(data[pos + 8 : pos + 24])
        end = min(len(data), pos + 40 + plen)
        start_v6 = pos
        pos += 40
        while proto in (0, 43, 60) and end - pos >= 8:  # hop-by-hop, routing, destination
            proto, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        if proto == 44 and end - pos >= 8 and data[pos] == 17:  # fragment header, then UDP
            if len(data) < orig:
                return _cut_fragment(offset, src, data, orig)
            place, ident = struct.unpack_from(">HI", data, pos + 2)
            key = (data[start_v6 + 8 : start_v6 + 24], data[start_v6 + 24 : start_v6 + 40], ident)
            fragment = data[pos + 8 : end]
            return Fragment(offset, src, key, place & 0xFFF8, bool(place & 1), fragment, "IPv6")
        if proto == 44:
            proto = data[pos] if end - pos >= 8 else proto
    else:
        return PacketProblem(offset, f"IP version {version} in frame", data[:64])
    if proto != 17:
        return PacketProblem(
            offset, f"not a UDP packet (IP protocol {proto}) from {src}", data[:64]
        )
    return _udp(offset, src, data, pos, end, cut=len(data) < orig, orig=orig)


def _cut_fragment(offset: int, src: str, data: bytes, orig: int) -> PacketProblem:
    return PacketProblem(
        offset,
        f"IP fragment from {src} was cut by the capture snap length "
        f"({len(data)} of {orig} bytes captured)",
        data[:64],
    )


def _udp(
    offset: int, src: str, data: bytes, pos: int, end: int, cut: bool, orig: int = 0
) -> UdpPayload | PacketProblem:
    """The UDP datagram at ``pos`` (its IP packet ends at ``end``)."""
    if end - pos < 8:
        return PacketProblem(offset, f"UDP header from {src} is truncated", data)
    sport, dport, ulen = struct.unpack_from(">HHH", data, pos)
    stop = pos + ulen if 8 <= ulen <= end - pos else end
    if ulen > end - pos and cut:
        return PacketProblem(
            offset,
            f"UDP datagram from {src} was cut by the capture snap "
            f"length ({len(data)} of {orig} bytes captured)",
            data[:64],
        )
    return UdpPayload(offset, src, sport, dport, data[pos + 8 : stop])
