"""Sending alerts to the tools a SOC already runs: a syslog collector or an HTTP webhook.

Both go through one :class:`Forwarder`: a bounded queue drained by one worker thread, so a slow
or absent receiver never makes orbwatch hold unbounded memory, and every alert is accounted for
(sent, failed after retries, or refused because the queue was full). Syslog carries CEF lines in
RFC 5424 frames (octet-counted on TCP, RFC 6587); the webhook POSTs one OCSF-or-JSON document per
alert and retries with exponential backoff.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from orbwatch.alerts.formats import to_cef, to_ocsf
from orbwatch.errors import InputError

#: syslog facility "security/authorization" (10) at severity per alert: PRI = facility*8 + sev.
_FACILITY = 10
_SYSLOG_SEVERITY = {"info": 6, "low": 5, "medium": 4, "high": 3, "critical": 2}
MAX_MESSAGE = 64 * 1024


@dataclass
class ForwardResult:
    """What happened to every alert handed to a forwarder."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` -> (host, port)."""
    parts = urlsplit(f"//{value}")
    if not parts.hostname:
        raise InputError(f"{value!r}: expected HOST:PORT")
    try:
        port = parts.port or default_port
    except ValueError:
        raise InputError(f"{value!r}: port is not a number from 0 to 65535") from None
    return parts.hostname, port


def syslog_frame(alert: dict[str, Any], hostname: str) -> bytes:
    """One RFC 5424 message whose MSG is the alert's CEF line."""
    pri = _FACILITY * 8 + _SYSLOG_SEVERITY.get(alert.get("severity") or "info", 6)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    msg = f"<{pri}>1 {stamp} {hostname} orbwatch - alert - {to_cef(alert)}"
    return msg.encode("utf-8")[:MAX_MESSAGE]


class Forwarder:
    """A bounded queue and one worker that hands each item to ``send`` with retries."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        max_queue: int = 10_000,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self._send = send
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._retries = retries
        self._backoff_s = backoff_s
        self.result = ForwardResult()
        self._worker = threading.Thread(target=self._drain, name="orbwatch-forward", daemon=True)
        self._worker.start()

    def put(self, alert: dict[str, Any], timeout_s: float = 5.0) -> None:
        """Queue one alert; when the queue stays full for ``timeout_s`` it is counted dropped."""
        try:
            self._queue.put(alert, timeout=timeout_s)
        except queue.Full:
            self.result.dropped += 1

    def close(self) -> ForwardResult:
        """Send what is queued, stop the worker and return the tally."""
        self._queue.put(None)
        self._worker.join()
        return self.result

    def _drain(self) -> None:
        while (alert := self._queue.get()) is not None:
            for attempt in range(self._retries + 1):
                try:
                    self._send(alert)
                    self.result.sent += 1
                    break
                except (OSError, urllib.error.URLError) as exc:
                    if attempt == self._retries:
                        self.result.failed += 1
                        if len(self.result.errors) < 20:
                            self.result.errors.append(f"{alert.get('alert_id')}: {exc}")
                    else:
                        time.sleep(self._backoff_s * 2**attempt)


class SyslogSender:
    """A ``send`` callable for :class:`Forwarder` writing to a syslog receiver over UDP or TCP."""

    def __init__(self, target: str, protocol: str = "udp") -> None:
        if protocol not in ("udp", "tcp"):
            raise InputError(f"unknown syslog protocol {protocol!r}; use udp or tcp")
        self.host, self.port = parse_host_port(target, 514)
        self.protocol = protocol
        self.hostname = socket.gethostname()[:255]
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            if self.protocol == "tcp":
                self._sock = socket.create_connection((self.host, self.port), timeout=10)
            else:
                family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
        return self._sock

    def __call__(self, alert: dict[str, Any]) -> None:
        frame = syslog_frame(alert, self.hostname)
        sock = self._connect()
        try:
            if self.protocol == "udp":
                sock.sendto(frame, (self.host, self.port))
            else:
                sock.sendall(str(len(frame)).encode() + b" " + frame)
        except OSError:
            self.close()  # reconnect on the retry
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def syslog_sender(target: str, protocol: str = "udp") -> SyslogSender:
    """A sender for ``forward`` (see :class:`SyslogSender`)."""
    return SyslogSender(target, protocol)


def webhook_sender(url: str, *, timeout_s: float = 10.0) -> Callable[[dict[str, Any]], None]:
    """A ``send`` function POSTing each alert as an OCSF Detection Finding JSON document."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise InputError(f"{url!r}: webhook URL must be http:// or https://")

    def send(alert: dict[str, Any]) -> None:
        body = json.dumps(to_ocsf(alert)).encode()
        # The scheme was checked above: only http(s), never file: or custom handlers.
        request = urllib.request.Request(  # noqa: S310
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            if response.status >= 300:
                raise OSError(f"HTTP {response.status}")

    return send


def forward(
    alerts: list[dict[str, Any]], send: Callable[[dict[str, Any]], None], **options: Any
) -> ForwardResult:
    """Send every alert through a :class:`Forwarder` and return the tally."""
    forwarder = Forwarder(send, **options)
    for alert in alerts:
        forwarder.put(alert)
    result = forwarder.close()
    close = getattr(send, "close", None)
    if close is not None:
        close()
    return result
