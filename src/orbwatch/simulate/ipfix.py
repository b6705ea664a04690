"""IPFIX export packets in a pcap, built with numpy: template first, then data, per exporter.

What a collector-side capture of a router's flow export looks like: classic pcap, Ethernet,
IPv4, UDP to port 4739, IPFIX messages (RFC 7011). Each exporter first sends a template set
(id 256) describing a fixed 62-byte record: flow start/end in milliseconds, addresses, ports,
protocol, TCP flags, and bidirectional counters (initiator/responder octets and packets,
RFC 5102 ids 231/232/298/299). Data messages carry up to :data:`PER_MESSAGE` records. No
library writes IPFIX from arrays, so this is written by hand; every header is laid out with
structured numpy dtypes so 10 million records take seconds, not minutes.

The file is written chunk by chunk (:class:`IpfixSink`): a router exports a flow when it ends,
so each exporter's records are ordered by end time, flows that end after the chunk's horizon
wait for the next chunk, and fewer than :data:`PER_MESSAGE` leftover records wait to fill the
next message. The file is therefore the same whatever the chunk size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from orbwatch.simulate.events import Events
from orbwatch.simulate.text import Landed, Written

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
PER_MESSAGE = 22  # 16 + 4 + 22 * 62 = 1384 bytes: fits a 1500-byte MTU
TEMPLATE_ID = 256
COLLECTOR = (10 << 24) | (1 << 16) | (30 << 8) | 5  # 10.1.30.5, the flow collector
FIELDS = [
    (152, 8),
    (153, 8),
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (231, 8),
    (232, 8),
    (298, 8),
    (299, 8),
]
RECORD = np.dtype(
    [
        ("start", ">u8"),
        ("end", ">u8"),
        ("src", ">u4"),
        ("dst", ">u4"),
        ("sport", ">u2"),
        ("dport", ">u2"),
        ("proto", "u1"),
        ("flags", "u1"),
        ("ibytes", ">u8"),
        ("rbytes", ">u8"),
        ("ipkts", ">u8"),
        ("rpkts", ">u8"),
    ]
)
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65_535, 1)
FRAME = np.dtype(
    [
        ("ts_sec", "<u4"),
        ("ts_usec", "<u4"),
        ("incl", "<u4"),
        ("orig", "<u4"),
        ("eth_dst", "V6"),
        ("eth_src", "V6"),
        ("ethertype", ">u2"),
        ("ver_ihl", "u1"),
        ("tos", "u1"),
        ("ip_len", ">u2"),
        ("ip_id", ">u2"),
        ("frag", ">u2"),
        ("ttl", "u1"),
        ("ip_proto", "u1"),
        ("ip_sum", ">u2"),
        ("ip_src", ">u4"),
        ("ip_dst", ">u4"),
        ("sport", ">u2"),
        ("dport", ">u2"),
        ("udp_len", ">u2"),
        ("udp_sum", ">u2"),
        ("version", ">u2"),
        ("length", ">u2"),
        ("export", ">u4"),
        ("seq", ">u4"),
        ("domain", ">u4"),
        ("set_id", ">u2"),
        ("set_len", ">u2"),
    ]
)
assert RECORD.itemsize == 62 and FRAME.itemsize == 16 + 14 + 20 + 8 + 16 + 4
FULL_BYTES = FRAME.itemsize + PER_MESSAGE * RECORD.itemsize


def _frames(
    n: int,
    exporter: int,
    export: npt.NDArray[np.int64],
    payload: npt.NDArray[np.int64],
    set_id: int,
    seq: I64,
) -> npt.NDArray[np.void]:
    """Packet headers (pcap record + Ethernet + IPv4 + UDP + IPFIX + set) for ``n`` messages."""
    h = np.zeros(n, dtype=FRAME)
    ipfix_len = 16 + 4 + payload
    h["ts_sec"], h["ts_usec"] = export, 0
    h["incl"] = h["orig"] = 14 + 20 + 8 + ipfix_len
    h["eth_dst"] = np.frombuffer(bytes.fromhex("02000000001e"), dtype="V6")[0]
    h["eth_src"] = np.frombuffer(bytes.fromhex("020000000001"), dtype="V6")[0]
    h["ethertype"], h["ver_ihl"], h["ttl"], h["ip_proto"] = 0x0800, 0x45, 64, 17
    h["ip_len"] = 20 + 8 + ipfix_len
    h["ip_id"] = seq & 0xFFFF
    h["frag"] = 0x4000  # don't fragment
    h["ip_src"], h["ip_dst"] = exporter, COLLECTOR
    h["sport"], h["dport"], h["udp_len"] = 4739, 4739, 8 + ipfix_len
    h["version"], h["length"], h["export"], h["seq"] = 10, ipfix_len, export, seq
    h["set_id"], h["set_len"] = set_id, 4 + payload
    words = h.view(np.uint8).reshape(n, FRAME.itemsize)[:, 30:50].astype(np.uint32)
    total = (words[:, 0::2] << 8 | words[:, 1::2]).sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    h["ip_sum"] = ~total & 0xFFFF
    return h


def _template(exporter: int, export: int) -> bytes:
    body = struct.pack(">HH", TEMPLATE_ID, len(FIELDS)) + b"".join(
        struct.pack(">HH", fid, size) for fid, size in FIELDS
    )
    head = _frames(1, exporter, np.array([export]), np.array([len(body)]), 2, np.zeros(1, int))
    return head.tobytes() + body


def _records(f: Events) -> npt.NDArray[np.void]:
    """IPFIX data records of a set of flows."""
    rec = np.zeros(len(f), dtype=RECORD)
    end = f["ts"] + f["duration"]
    rec["start"] = (f["ts"] * 1000).astype(np.uint64)
    rec["end"] = (end * 1000).astype(np.uint64)
    rec["src"], rec["dst"] = f["src"], f["dst"]
    rec["sport"], rec["dport"], rec["proto"] = f["sport"], f["dport"], f["proto"]
    answered = f["dpkts"] > 0
    rec["flags"] = np.where(f["proto"] == 6, np.where(answered, 0x1B, 0x02), 0)
    rec["ibytes"], rec["rbytes"] = f["sbytes"], f["dbytes"]
    rec["ipkts"], rec["rpkts"] = f["spkts"], f["dpkts"]
    return rec


@dataclass
class Messages:
    """Data messages of one size from one exporter: bytes (one row each) and bookkeeping."""

    data: npt.NDArray[np.uint8]
    export: I64  # export time, seconds
    seq: I64  # IPFIX sequence number (records sent before)
    exporter: int
    ids: I64  # event id of each record
    message: I64  # row of ``data`` each record went into


class _Queue:
    """One exporter's records not yet sent: records, their end times and event ids."""

    def __init__(self, address: int, index: int) -> None:
        self.address, self.index = address, index
        self.rec = np.zeros(0, dtype=RECORD)
        self.end = np.zeros(0, dtype=np.float64)
        self.ids = np.zeros(0, dtype=np.int64)
        self.sent = 0  # records exported so far: the IPFIX sequence number

    def push(self, f: Events) -> None:
        # concatenate() would turn the big-endian (wire order) fields into native ones
        self.rec = np.concatenate([self.rec, _records(f)]).astype(RECORD, copy=False)
        self.end = np.concatenate([self.end, f["ts"] + f["duration"]])
        self.ids = np.concatenate([self.ids, f["id"]])

    def pop(self, until: float) -> list[Messages]:
        """Full messages of the records ending before ``until``; at the end also the last one."""
        order = np.lexsort((self.ids, self.end))
        ready = order[self.end[order] < until]
        flush = not np.isfinite(until)
        full = len(ready) // PER_MESSAGE
        take = len(ready) if flush else full * PER_MESSAGE
        go, keep = ready[:take], np.concatenate([ready[take:], order[len(ready) :]])
        out = []
        for first, count, k in (
            (0, PER_MESSAGE, full),
            (full * PER_MESSAGE, take % PER_MESSAGE, 1),
        ):
            if k == 0 or count == 0 or first >= take:
                continue
            rows = go[first : first + k * count]
            last_end = self.end[rows].reshape(k, count).max(axis=1).astype(np.int64) + 1
            seq = self.sent + np.arange(k, dtype=np.int64) * count
            head = _frames(
                k, self.address, last_end, np.full(k, count * RECORD.itemsize), TEMPLATE_ID, seq
            )
            body = self.rec[rows].view(np.uint8).reshape(k, count * RECORD.itemsize)
            data = np.concatenate([head.view(np.uint8).reshape(k, FRAME.itemsize), body], axis=1)
            index = np.repeat(np.arange(k, dtype=np.int64), count)
            out.append(Messages(data, last_end, seq, self.index, self.ids[rows], index))
            self.sent += k * count
        self.rec, self.end, self.ids = self.rec[keep], self.end[keep], self.ids[keep]
        return out


class IpfixSink:
    """``netflow.pcap`` written chunk by chunk; ``route`` gives each flow's exporter index."""

    fmt = "netflow_pcap"

    def __init__(
        self, path: Path, exporters: list[int], start: float, route: Callable[[Events], I64]
    ) -> None:
        self.path, self.route = path, route
        self.queues = [_Queue(address, i) for i, address in enumerate(exporters)]
        heads = b"".join(_template(a, int(start)) for a in exporters)
        self._handle = path.open("wb")
        self._handle.write(PCAP_HEADER + heads)
        self.pos = len(PCAP_HEADER) + len(heads)
        self.packets = len(exporters)

    def add(self, f: Events, until: float) -> Landed:
        """Queue the chunk's flows and send every message that is complete before ``until``.

        Full-size messages of all exporters go out interleaved in export-time order (one 2-D
        byte array, one sort); when flushing, each exporter's last, shorter message follows.
        """
        if len(f):
            which = self.route(f)
            for q in self.queues:
                q.push(f.take(which == q.index))
        groups = [m for q in self.queues for m in q.pop(until)]
        full = [m for m in groups if m.data.shape[1] == FULL_BYTES]
        rest = [m for m in groups if m.data.shape[1] != FULL_BYTES]
        landed = [self._send(full)] if full else []
        landed += [self._send([m]) for m in sorted(rest, key=lambda m: m.exporter)]
        if not landed:
            return Landed.empty()
        return Landed(
            np.concatenate([x.row for x in landed]), np.concatenate([x.offset for x in landed])
        )

    def _send(self, batch: list[Messages]) -> Landed:
        """Write messages of one size in (export time, exporter, sequence) order."""
        width = batch[0].data.shape[1]
        export = np.concatenate([m.export for m in batch])
        exporter = np.concatenate([np.full(len(m.export), m.exporter) for m in batch])
        order = np.lexsort((np.concatenate([m.seq for m in batch]), exporter, export))
        where = np.empty(len(order), dtype=np.int64)
        where[order] = self.pos + np.arange(len(order), dtype=np.int64) * width
        offsets, base = [], 0
        for m in batch:
            offsets.append(where[base + m.message])
            base += len(m.export)
        self._handle.write(np.concatenate([m.data for m in batch])[order].tobytes())
        self.pos += len(order) * width
        self.packets += len(order)
        return Landed(np.concatenate([m.ids for m in batch]), np.concatenate(offsets))

    def finish(self) -> Landed:
        """Send everything still queued, last short messages included, and close the file."""
        landed = self.add(Events({}), np.inf)
        self._handle.close()
        return landed

    def written(self) -> Written:
        return Written(self.path, self.fmt, self.packets)
