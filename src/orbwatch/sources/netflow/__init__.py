"""NetFlow v1/v5/v7/v9 and IPFIX as ``flows`` sources: captures of export traffic and raw messages.

Edge routers and firewalls (the devices ORB networks hijack) are usually only visible through
the flows they export, so orbwatch reads flow exports directly:

* ``netflow_pcap``: a pcap/pcapng capture of export packets taken at a collector. The exporter
  is the packet's source address; ``source_offset`` is the packet's offset in the file.
* ``netflow_raw``: a file holding one export message (a UDP payload), as test corpora and some
  collectors store them; ``source_offset`` is the offset of the set in the message.

Templates are kept in a :class:`~orbwatch.sources.netflow.decode.TemplateCache` shared by all
instances (``DEFAULT_CACHE``) unless one is injected, because ingest feeds one file at a time
and v9/IPFIX data only decodes with the template an earlier file carried. Rows carry only the
columns the ``flows`` schema declares; the NAT, sampling and version columns of
:data:`EXTRA_COLUMNS` pass through as soon as the schema declares them (or with
``keep_extra=True``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import ClassVar

import pyarrow as pa

from orbwatch.errors import InputError
from orbwatch.sources.base import REJECT_SCHEMA, Parsed, Source, rejects
from orbwatch.sources.inputs import Input
from orbwatch.sources.netflow.decode import (
    DEFAULT_CACHE,
    EXTRA_COLUMNS,
    FIXED_FORMATS,
    Decoder,
    Reject,
    TemplateCache,
    batches_to_flows,
)
from orbwatch.sources.netflow.pcap import PacketProblem, UdpPayload, is_capture, iter_udp
from orbwatch.store.schema import FLOWS

FLUSH_MESSAGES = 20_000  # bounded memory: decode and hand over rows every so many messages
RAW_EXPORTER = "unknown"


def reject_table(items: list[Reject]) -> pa.Table:
    """Decoder rejects as a quarantine table (offset, reason, raw bytes as hex)."""
    if not items:
        return REJECT_SCHEMA.empty_table()
    return rejects(
        pa.array([r.offset for r in items], pa.int64()),
        pa.array([r.reason for r in items], pa.string()),
        pa.array([r.raw for r in items], pa.string()),
    )


def flow_columns(rows: pa.Table, keep_extra: bool = False) -> pa.Table:
    """The decoder's columns that the ``flows`` schema declares (plus the extra ones if asked)."""
    keep = set(FLOWS.schema.names)
    if keep_extra:
        keep.update(EXTRA_COLUMNS)
    return rows.select([c for c in rows.column_names if c in keep])


class _NetflowSource(Source):
    """What both NetFlow sources share: the decoder, batching and column selection."""

    table: ClassVar[str] = "flows"

    def __init__(
        self,
        cache: TemplateCache | None = None,
        *,
        keep_extra: bool = False,
        exporter: str = RAW_EXPORTER,
    ) -> None:
        self.cache = DEFAULT_CACHE if cache is None else cache
        self.keep_extra = keep_extra
        self.exporter = exporter
        self.decoder = Decoder(self.cache)

    def _columns(self, rows: pa.Table) -> pa.Table:
        return flow_columns(rows, self.keep_extra)

    def _output(self, extra_rejects: list[Reject] | None = None, final: bool = False) -> Parsed:
        if final:
            self.decoder.finish()
        rows = self._columns(batches_to_flows(self.decoder.flush(), self.cache))
        found = self.decoder.take_rejects()
        if extra_rejects:
            found = sorted([*extra_rejects, *found], key=lambda r: r.offset)
        return Parsed(rows, reject_table(found), self.decoder.take_skipped())

    @property
    def stats(self) -> dict[str, int]:
        """Byte accounting and record counters of the last parse, plus reject counts by kind."""
        out = dict(self.decoder.stats)
        out.update({f"rejected: {k}": v for k, v in self.decoder.reasons.items()})
        return out


class NetflowPcap(_NetflowSource):
    """NetFlow v5/v9/IPFIX export packets in a pcap or pcapng capture (any UDP port)."""

    name: ClassVar[str] = "netflow_pcap"
    description: ClassVar[str] = "NetFlow v1/v5/v7/v9/IPFIX export packets in a pcap/pcapng capture"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        """A capture whose first UDP packets carry NetFlow/IPFIX headers."""
        if not is_capture(head):
            return False
        import io

        for item in iter_udp(io.BytesIO(head)):
            if isinstance(item, UdpPayload):
                return plausible_message(item.payload)
        return False

    def parse(self, inp: Input) -> Iterator[Parsed]:
        self.decoder = Decoder(self.cache)
        problems: list[Reject] = []
        messages = 0
        with inp.open_binary() as stream:
            for item in iter_udp(stream):
                if isinstance(item, PacketProblem):
                    problems.append(
                        Reject(item.offset, item.reason, item.raw[:2048].hex(), "capture")
                    )
                    self.decoder.reasons["capture"] += 1
                    continue
                self.decoder.feed(item.payload, item.exporter, item.offset, set_offsets=False)
                messages += 1
                if messages % FLUSH_MESSAGES == 0:
                    yield self._output(problems)
                    problems = []
        yield self._output(problems, final=True)


class NetflowRaw(_NetflowSource):
    """One raw NetFlow/IPFIX export message per file (a UDP payload without headers)."""

    name: ClassVar[str] = "netflow_raw"
    description: ClassVar[str] = "one raw NetFlow v1/v5/v7/v9/IPFIX export message (UDP payload)"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        return plausible_message(head)

    def parse(self, inp: Input) -> Iterator[Parsed]:
        self.decoder = Decoder(self.cache)
        with inp.open_binary() as stream:
            message = stream.read()
        self.decoder.feed(message, self.exporter, 0, set_offsets=True)
        yield self._output(final=True)


NFCAPD_MAGIC = b"\x0c\xa5"  # 0xA50C, little-endian, then the layout version (1 or 2)


class Nfcapd(Source):
    """nfdump's nfcapd files: recognised, and refused with how to convert them.

    No well-kept Python reader of the nfcapd format exists (see docs/netflow.md), and its
    layout changes between nfdump releases (1.6 layout 1, 1.7 layout 2, optional LZO/LZ4/ZSTD
    blocks), so orbwatch asks nfdump itself to write CSV, which ``flow_csv`` reads.
    """

    name: ClassVar[str] = "nfcapd"
    table: ClassVar[str] = "flows"
    description: ClassVar[str] = "nfdump nfcapd file: not read, convert with nfdump -o csv"

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        return head[:2] == NFCAPD_MAGIC and head[2:4] in (b"\x01\x00", b"\x02\x00")

    def parse(self, inp: Input) -> Iterator[Parsed]:
        layout = int.from_bytes(inp.head(4)[2:4], "little")
        raise InputError(
            f"{inp.display}: nfdump nfcapd file (layout {layout}) cannot be read directly; "
            f"convert it with `nfdump -r {inp.display} -o csv > flows.csv` and ingest the CSV "
            "(format flow_csv)"
        )


def plausible_message(data: bytes) -> bool:
    """Does ``data`` start like a NetFlow v1/v5/v7/v9 or IPFIX message whose lengths add up?"""
    if len(data) < 20:
        return False
    version, count = struct.unpack_from(">HH", data)
    if version in (1, 7):
        # "\x00\x01" starts many binary files: only a message of exactly its records counts.
        fixed = FIXED_FORMATS[version]
        size = fixed.header.size + fixed.template.record_len * count
        return 1 <= count <= fixed.max_records and len(data) in (size, size + (-size % 4))
    if version == 5:
        # Even a v5 header whose count is wrong: the decoder quarantines it with the reason.
        return data[:2] == b"\x00\x05"
    if version == 9:
        set_id, length = struct.unpack_from(">HH", data, 20) if len(data) >= 24 else (1, 0)
        return bool((set_id in (0, 1) or set_id >= 256) and 4 <= length <= len(data) - 20)
    if version == 10:
        length = count
        if not 20 <= length <= len(data):
            return False
        set_id, set_len = struct.unpack_from(">HH", data, 16)
        return bool((set_id in (2, 3) or set_id >= 256) and 4 <= set_len <= length - 16)
    return False


__all__ = [
    "DEFAULT_CACHE",
    "EXTRA_COLUMNS",
    "NetflowPcap",
    "NetflowRaw",
    "Nfcapd",
    "TemplateCache",
    "flow_columns",
    "plausible_message",
    "reject_table",
]
