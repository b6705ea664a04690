"""``orbwatch collect syslog``: a syslog receiver (UDP and TCP) feeding any line source.

Firewalls, VPN gateways and SOHO routers mostly log over syslog. The receiver does not parse
messages itself: it hands micro-batches of lines to a line source of :mod:`orbwatch.sources`
(``--format NAME``, or detected from the first lines with the sources registry), through the
same :meth:`~orbwatch.sources.base.Source.parse` interface as files, so every line format
orbwatch reads from files can also arrive live.

Framing. UDP: one datagram is one message (RFC 5426). TCP: octet counting (RFC 6587 3.4.1,
``LEN SP MSG``) or newline-terminated messages (3.4.2), chosen per connection from its first
bytes. A message longer than ``max_line`` bytes is not parsed: its head goes to quarantine with
its length, and at most ``max_line`` bytes of it are ever held. Line breaks inside one message
are escaped as ``#012`` (as rsyslog does), so one message stays one line.

Each micro-batch is spooled to a temporary file (at most ``batch_size`` lines of at most
``max_line`` bytes) and parsed; ``source_offset`` is the message's sequence number in the
session. Formats with a header (Zeek TSV ``#fields``, CSV column names) work too: the leading
lines of the first batch that produced neither rows nor rejects are kept as a preamble and put
in front of every later batch.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.collect.base import Collector, CollectSettings, Handler, Output, Received
from orbwatch.collect.net import ListenAddress, TcpListener, UdpListener, parse_listen
from orbwatch.config import Config
from orbwatch.errors import InputError
from orbwatch.sources import detect_format, registry
from orbwatch.sources.base import REJECT_SCHEMA, Parsed, Source, rejects
from orbwatch.sources.inputs import MAX_LINE_BYTES, RAW_KEEP_CHARS, Input
from orbwatch.store.workspace import Workspace

DEFAULT_PORT = 5514
MAX_PREAMBLE_LINES = 64
_OCTET_COUNT = re.compile(rb"^([1-9][0-9]{0,8}) ")


def one_line(message: bytes) -> bytes:
    """A message as one line: trailing line ends and NULs dropped, inner line breaks escaped."""
    message = message.rstrip(b"\r\n\0")
    if b"\n" in message or b"\r" in message:
        message = message.replace(b"\r\n", b"#012").replace(b"\n", b"#012").replace(b"\r", b"#015")
    return message


class SyslogFramer:
    """RFC 6587 framing of one TCP stream, octet-counted or newline-terminated, bounded.

    Written by hand: the standard library has no syslog-over-TCP framing, and the method is
    fixed per connection by its first byte (a digit starts an octet count; a message starts
    with ``<``, a JSON record with ``{``). Holds at most ``max_line`` + 10 bytes.
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self.buffer = b""
        self.octets: bool | None = None  # framing method, fixed by the first frame
        self.skip = 0  # bytes still to discard of an oversized octet-counted frame
        self.skip_line = False  # discarding the rest of an oversized newline-terminated line
        self.cut: tuple[bytes, int] | None = None  # head and length of the frame being skipped

    def feed(self, data: bytes) -> list[tuple[bytes, int | None]]:
        self.buffer += data
        frames: list[tuple[bytes, int | None]] = []
        while True:
            if self.cut is not None:
                if not self._discard(frames):
                    break
                continue
            frame = self._next()
            if frame is not None:
                if frame[0] or frame[1] is not None:  # empty lines carry nothing
                    frames.append(frame)
            elif self.cut is None:
                break  # needs more bytes
        return frames

    def _next(self) -> tuple[bytes, int | None] | None:
        """The next complete frame; None when more bytes are needed or a cut frame began."""
        if not self.buffer:
            return None
        match = _OCTET_COUNT.match(self.buffer)
        undecided = match is None and self.buffer[:1].isdigit() and len(self.buffer) < 11
        if self.octets is None:
            if undecided and b"\n" not in self.buffer:
                return None
            self.octets = match is not None
        if self.octets and match is None:
            if undecided:
                return None
            self.octets = False  # not a count where one must be: newline framing from here on
        if self.octets and match is not None:
            size, start = int(match.group(1)), match.end()
            if size > self.max_line:
                self.cut = (b"", size)
                self.skip, self.buffer = size, self.buffer[start:]
                return None
            if len(self.buffer) < start + size:
                return None
            frame, self.buffer = self.buffer[start : start + size], self.buffer[start + size :]
            return (one_line(frame), None)
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > self.max_line:
                self.cut = (self.buffer[:RAW_KEEP_CHARS], len(self.buffer))
                self.skip_line, self.buffer = True, b""
            return None
        frame, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
        if len(frame) > self.max_line:
            return (frame[:RAW_KEEP_CHARS], len(frame))
        return (one_line(frame), None)

    def _discard(self, frames: list[tuple[bytes, int | None]]) -> bool:
        """Drop bytes of an oversized frame; True when it ended (and was reported)."""
        assert self.cut is not None
        head, length = self.cut
        if self.skip:
            taken = min(self.skip, len(self.buffer))
            if len(head) < RAW_KEEP_CHARS:  # the head may arrive after the count
                head += self.buffer[: min(taken, RAW_KEEP_CHARS - len(head))]
                self.cut = (head, length)
            self.skip -= taken
            self.buffer = self.buffer[taken:]
            if self.skip:
                return False
        else:
            end = self.buffer.find(b"\n")
            if end < 0:
                length += len(self.buffer)
                self.cut, self.buffer = (head, length), b""
                return False
            length += end
            self.buffer = self.buffer[end + 1 :]
            self.skip_line = False
        frames.append((head, length))
        self.cut = None
        return True

    def close(self) -> list[tuple[bytes, int | None]]:
        """End of stream: an unterminated last line still counts; a cut frame is reported."""
        frames: list[tuple[bytes, int | None]] = []
        if self.cut is not None:
            head, length = self.cut
            frames.append((head, length + (len(self.buffer) if self.skip_line else 0)))
        elif self.buffer and not self.skip:
            frames.append((one_line(self.buffer), None))
        self.buffer, self.cut, self.skip, self.skip_line = b"", None, 0, False
        return frames


class LineSourceHandler(Handler):
    """Spools micro-batches of messages and parses them with a line source.

    The source is the one named (``fmt``) or, without a name, the first registered format whose
    ``sniff`` accepts the session's first lines. Until one does, lines are held; a batch that
    still matches no format when it must be written goes to quarantine, with the reason.
    """

    def __init__(
        self, fmt: str | None = None, max_line: int = MAX_LINE_BYTES, timezone: str = "UTC"
    ) -> None:
        known = registry()
        if fmt is not None and fmt not in known:
            raise InputError(f"unknown format {fmt!r}; known formats: {', '.join(known)}")
        self.source_cls: type[Source] | None = known[fmt] if fmt else None
        self.source: Source | None = None
        self.max_line = max_line
        # Zone of year-less stamps (config syslog_timezone), as the file ingest passes it.
        self.timezone = timezone
        self.table = self.source_cls.table if self.source_cls else "flows"
        self._items: list[Received] = []
        self._preamble: list[bytes] | None = None
        self._spool = tempfile.TemporaryDirectory(prefix="orbwatch-syslog-")

    @property
    def format(self) -> str:
        return self.source_cls.name if self.source_cls else ""

    def add(self, items: Sequence[Received]) -> int:
        self._items.extend(items)
        return len(self._items)

    def drain(self, final: bool) -> list[Output]:
        items, self._items = self._items, []
        by_source: dict[str, list[Received]] = {}
        for item in items:
            by_source.setdefault(item.source, []).append(item)
        out = [self._parse(source, group) for source, group in by_source.items()]
        if final:
            self._spool.cleanup()
        return out

    def _parse(self, source_name: str, items: list[Received]) -> Output:
        good = [i for i in items if i.length is None]
        too_long = [i for i in items if i.length is not None]
        preamble = self._preamble or []
        path = Path(self._spool.name) / "batch"
        path.write_bytes(b"".join(line + b"\n" for line in [*preamble, *(i.data for i in good)]))
        inp = Input(path, source_name, "", False)
        seqs = np.array([0] * len(preamble) + [i.seq for i in good], np.int64)
        parts = [_too_long(too_long, self.max_line)] if too_long else []
        rows: list[pa.Table] = []
        if good:
            try:
                if self.source_cls is None:
                    self.source_cls = detect_format(inp)
                    self.table = self.source_cls.table
                if self.source is None:
                    if getattr(self.source_cls, "accepts_clock", False):
                        self.source = self.source_cls(timezone=self.timezone)  # type: ignore[call-arg]
                    else:
                        self.source = self.source_cls()
                for parsed in self.source.parse(inp):
                    if parsed.rows.num_rows:
                        rows.append(_renumber(parsed.rows, seqs))
                    if parsed.rejects.num_rows:
                        parts.append(_renumber(parsed.rejects, seqs))
            except InputError as exc:
                parts.append(_all_rejected(good, str(exc).removeprefix(f"{source_name}: ")))
                rows = []
            if self._preamble is None and self.source is not None:
                self._preamble = _leading_silent_lines(good, rows, parts)
        table = pa.concat_tables(rows, promote_options="default") if rows else pa.table({})
        found = pa.concat_tables(parts) if parts else REJECT_SCHEMA.empty_table()
        return Output(source_name, self.format or "syslog", Parsed(table, found), Counter())


def _renumber(table: pa.Table, seqs: npt.NDArray[np.int64]) -> pa.Table:
    """Spool line numbers (1-based) -> the messages' sequence numbers in the session."""
    index = pc.subtract(table["source_offset"], 1)
    offsets = pa.array(seqs).take(index)
    return table.set_column(table.column_names.index("source_offset"), "source_offset", offsets)


def _leading_silent_lines(
    items: list[Received], rows: list[pa.Table], rejected: list[pa.Table]
) -> list[bytes]:
    """Lines before the first one that produced a row or reject: the format's header."""
    produced = [t["source_offset"] for t in [*rows, *rejected] if t.num_rows]
    first = min((pc.min(c).as_py() for c in produced), default=None)
    lead = [i.data for i in items if first is None or i.seq < first]
    return lead[:MAX_PREAMBLE_LINES]


def _too_long(items: list[Received], max_line: int) -> pa.Table:
    return rejects(
        pa.array([i.seq for i in items], pa.int64()),
        pa.array([f"message of {i.length} bytes exceeds the {max_line}-byte limit" for i in items]),
        pa.array([i.data.decode("utf-8", "replace") for i in items]),
    )


def _all_rejected(items: list[Received], reason: str) -> pa.Table:
    return rejects(
        pa.array([i.seq for i in items], pa.int64()),
        pa.repeat(pa.scalar(reason), len(items)),
        pa.array([i.data.decode("utf-8", "replace") for i in items]),
    )


def syslog_collector(
    ws: Workspace,
    config: Config,
    listen: str | ListenAddress = "127.0.0.1",
    protocol: str = "both",
    fmt: str | None = None,
    settings: CollectSettings | None = None,
    max_line: int = MAX_LINE_BYTES,
) -> Collector:
    """A syslog receiver on ``listen`` (default 127.0.0.1:5514) over UDP, TCP or both."""
    if protocol not in ("udp", "tcp", "both"):
        raise InputError(f"--protocol {protocol!r}: use udp, tcp or both")
    address = listen if isinstance(listen, ListenAddress) else parse_listen(listen, DEFAULT_PORT)
    listeners: list[UdpListener | TcpListener] = []
    if protocol in ("udp", "both"):
        listeners.append(UdpListener(address, max_size=max_line, keep=one_line))
    if protocol in ("tcp", "both"):
        tcp_address = address
        if protocol == "both" and address.port == 0 and listeners:
            tcp_address = ListenAddress(address.host, listeners[0].port, address.family)
        listeners.append(TcpListener(tcp_address, lambda: SyslogFramer(max_line)))
    handler = LineSourceHandler(fmt, max_line, timezone=config.syslog_timezone)
    return Collector(ws, config, handler, listeners, settings)
