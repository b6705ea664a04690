"""Sockets for the collectors: listen addresses, a UDP listener and a TCP listener.

Each listener reads in its own thread and hands items to a
:class:`~orbwatch.collect.base.Collector`. They bind to what the user named (127.0.0.1 unless
told otherwise), IPv4 or IPv6, and bound everything they hold: datagram size, frame size,
number of TCP connections.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from orbwatch.errors import InputError

if TYPE_CHECKING:
    from orbwatch.collect.base import Collector

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_535
RECV_BUFFER_BYTES = 32 << 20  # asked of the kernel (see _grow_receive_buffer)
POLL_SECONDS = 0.2
MAX_TCP_CONNECTIONS = 256
STOP_GRACE_SECONDS = 2.0  # a TCP sender that never pauses still lets the collector stop


@dataclass(frozen=True)
class ListenAddress:
    """A host and port to bind, with its socket family."""

    host: str
    port: int
    family: socket.AddressFamily

    def url(self, scheme: str, port: int | None = None) -> str:
        host = f"[{self.host}]" if self.family == socket.AF_INET6 else self.host
        return f"{scheme}://{host}:{self.port if port is None else port}"


def parse_listen(text: str, default_port: int) -> ListenAddress:
    """``127.0.0.1:2055``, ``[::1]:2055``, ``::1``, ``0.0.0.0`` or ``:2055`` -> an address.

    Only literal addresses are accepted: a collector should not depend on name resolution, and
    binding to a name that resolves to several addresses would be ambiguous.
    """
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise InputError(f"--listen {text!r}: expected [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    host = host or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InputError(f"--listen {text!r}: {host!r} is not an IPv4 or IPv6 address") from None
    if port_text and (not port_text.isdigit() or int(port_text) > 65535):
        raise InputError(f"--listen {text!r}: port must be a number from 0 to 65535")
    port = int(port_text) if port_text else default_port
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return ListenAddress(str(address), port, family)


def peer_text(address: str) -> str:
    """A sender's address as text; IPv4 seen through a dual-stack socket loses its ::ffff:."""
    if address.startswith("::ffff:") and "." in address:
        return address[7:]
    return address.split("%", 1)[0]


def _bind(address: ListenAddress, kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(address.family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            _grow_receive_buffer(sock, RECV_BUFFER_BYTES)
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        scheme = "tcp" if kind == socket.SOCK_STREAM else "udp"
        raise InputError(f"cannot listen on {address.url(scheme)}: {exc.strerror or exc}") from None
    sock.settimeout(POLL_SECONDS)
    return sock


def _grow_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a large kernel receive buffer; returns what the kernel granted.

    The buffer absorbs bursts while the writer is busy (a 1.4 kB export datagram takes about
    2.3 kB of it). ``SO_RCVBUF`` is capped at ``net.core.rmem_max`` (often 208 kB-4 MB);
    ``SO_RCVBUFFORCE`` (Linux, needs CAP_NET_ADMIN) is not, so it is tried first.
    """
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    for option in (force, socket.SO_RCVBUF):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            break
        except OSError:
            continue
    granted = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    if granted < size:
        log.info(
            "UDP receive buffer is %d bytes (asked %d): raise net.core.rmem_max", granted, size
        )
    return granted


@dataclass
class UdpListener:
    """Reads datagrams; one datagram is one item. Port 0 binds a free port (see ``port``).

    A datagram over ``max_size`` bytes is passed on cut, with its real length; ``keep`` (if
    given) rewrites every datagram that fits (e.g. to one line).
    """

    address: ListenAddress
    max_size: int = MAX_DATAGRAM
    keep: Callable[[bytes], bytes] | None = None
    sock: socket.socket = field(init=False)
    port: int = field(init=False)
    source: str = field(init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.sock = _bind(self.address, socket.SOCK_DGRAM)
        self.port = int(self.sock.getsockname()[1])
        self.source = self.address.url("udp", self.port)

    def start(self, collector: Collector) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(collector,), name=f"listen {self.source}", daemon=True
        )
        self._thread.start()

    def _run(self, collector: Collector) -> None:
        from orbwatch.collect.base import Received

        recv = self.sock.recvfrom
        while True:
            try:
                data, (host, *_) = recv(MAX_DATAGRAM)
            except TimeoutError:
                if collector.stopping:
                    break
                continue
            except BlockingIOError:
                break  # stopping and the kernel buffer is empty
            except OSError as exc:
                log.warning("%s: receive failed: %s", self.source, exc)
                break
            if collector.stopping and self.sock.gettimeout() != 0:
                self.sock.setblocking(False)  # read what the kernel still holds, then end
            length = len(data) if len(data) > self.max_size else None
            if length is not None:
                data = data[: self.max_size]
            elif self.keep is not None:
                data = self.keep(data)
            peer = peer_text(host)
            collector.offer(Received(collector.next_seq(), data, self.source, peer, length))

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self.sock.close()


class FrameSplitter(Protocol):
    """Splits a byte stream into frames (see :mod:`orbwatch.collect.syslog`)."""

    def feed(self, data: bytes) -> list[tuple[bytes, int | None]]:
        """Frames completed by ``data``: (bytes, real length when cut to the bound, else None)."""

    def close(self) -> list[tuple[bytes, int | None]]:
        """The unterminated rest of the stream, as a last frame."""


Framer = Callable[[], FrameSplitter]


@dataclass
class TcpListener:
    """Accepts connections (at most ``max_connections``); a framer splits each stream.

    Reading stops while the collector's buffer is full (the sender then sees TCP back-pressure).
    """

    address: ListenAddress
    framer: Framer
    max_connections: int = MAX_TCP_CONNECTIONS
    sock: socket.socket = field(init=False)
    port: int = field(init=False)
    source: str = field(init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _accept: threading.Thread | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.sock = _bind(self.address, socket.SOCK_STREAM)
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.source = self.address.url("tcp", self.port)

    def start(self, collector: Collector) -> None:
        self._accept = threading.Thread(
            target=self._accept_loop, args=(collector,), name=f"accept {self.source}", daemon=True
        )
        self._accept.start()

    def _accept_loop(self, collector: Collector) -> None:
        while not collector.stopping:
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                log.warning("%s: accept failed: %s", self.source, exc)
                break
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) >= self.max_connections:
                log.warning("%s: connection from %s refused: too many", self.source, peer[0])
                conn.close()
                continue
            thread = threading.Thread(
                target=self._read, args=(collector, conn, peer_text(peer[0])), daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _read(self, collector: Collector, conn: socket.socket, peer: str) -> None:
        from orbwatch.collect.base import Received

        splitter = self.framer()
        conn.settimeout(POLL_SECONDS)
        give_up: float | None = None
        with conn:
            while True:
                if collector.stopping and give_up is None:
                    give_up = time.monotonic() + STOP_GRACE_SECONDS
                try:
                    data = conn.recv(1 << 16)
                except TimeoutError:
                    if not collector.stopping:
                        continue
                    data = b""  # the sender is idle: what it sent is complete
                except OSError:
                    data = b""
                last = not data or (give_up is not None and time.monotonic() > give_up)
                frames = splitter.feed(data) if data else []
                if last:
                    frames += splitter.close()
                for frame, length in frames:
                    item = Received(collector.next_seq(), frame, self.source, peer, length)
                    collector.offer(item, wait=True)
                if last:
                    return

    def stop(self) -> None:
        if self._accept is not None:
            self._accept.join()
        for thread in self._threads:
            thread.join()
        self.sock.close()
