"""Forwarding alerts to syslog (UDP, TCP octet-counted) and a webhook, all on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from orbwatch.alerts.forward import forward, parse_host_port, syslog_sender, webhook_sender
from orbwatch.errors import InputError

ALERTS = [
    {
        "alert_id": f"a{i:015d}",
        "detector": "beaconing",
        "title": "beacon",
        "severity": "high",
        "score": 80.0,
        "techniques": "T1071",
        "src_ip": "10.0.0.5",
        "dst_ip": "198.51.100.9",
        "explanation": "every 60 s\nfor 2 days",
        "status": "new",
    }
    for i in range(25)
]


def test_syslog_udp_delivers_every_alert_as_rfc5424_cef() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        result = forward(ALERTS, syslog_sender(f"127.0.0.1:{port}", "udp"))
        messages = [receiver.recv(65536).decode() for _ in ALERTS]
    assert (result.sent, result.failed, result.dropped) == (len(ALERTS), 0, 0)
    assert all(m.startswith("<83>1 ") and " CEF:0|orbwatch|" in m for m in messages)
    assert "msg=every 60 s\\nfor 2 days" in messages[0]


class _Frames(socketserver.BaseRequestHandler):
    frames: ClassVar[list[bytes]] = []

    def handle(self) -> None:
        data = b""
        while chunk := self.request.recv(65536):
            data += chunk
        while data:
            length, _, rest = data.partition(b" ")
            self.frames.append(rest[: int(length)])
            data = rest[int(length) :]


def test_syslog_tcp_uses_octet_counting() -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), _Frames)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    # forward() closes the connection when done, which ends the server's read loop.
    result = forward(ALERTS[:5], syslog_sender(f"127.0.0.1:{server.server_address[1]}", "tcp"))
    thread.join(5)
    server.server_close()
    assert result.sent == 5
    assert len(_Frames.frames) == 5
    assert all(f.startswith(b"<83>1 ") for f in _Frames.frames)


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    fail_first: int = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.fail_first > 0:
            _Hook.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def hook() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def test_webhook_retries_until_the_receiver_accepts(hook: str) -> None:
    _Hook.fail_first = 2
    result = forward(ALERTS[:3], webhook_sender(hook), retries=3, backoff_s=0.01)
    assert (result.sent, result.failed) == (3, 0)
    assert [r["finding_info"]["uid"] for r in _Hook.received] == [a["alert_id"] for a in ALERTS[:3]]


def test_webhook_failures_are_counted_not_lost(hook: str) -> None:
    _Hook.fail_first = 100
    result = forward(ALERTS[:2], webhook_sender(hook), retries=1, backoff_s=0.01)
    assert (result.sent, result.failed) == (0, 2)
    assert "503" in result.errors[0]


def test_full_queue_counts_drops() -> None:
    gate = threading.Event()

    def slow(alert: dict[str, Any]) -> None:
        gate.wait(5)

    from orbwatch.alerts.forward import Forwarder

    forwarder = Forwarder(slow, max_queue=2)
    for alert in ALERTS[:6]:
        forwarder.put(alert, timeout_s=0.01)
    gate.set()
    result = forwarder.close()
    assert result.sent + result.dropped == 6
    assert result.dropped >= 3


def test_targets_are_validated() -> None:
    assert parse_host_port("[::1]:6514", 514) == ("::1", 6514)
    assert parse_host_port("localhost", 514) == ("localhost", 514)
    with pytest.raises(InputError):
        parse_host_port("host:99999", 514)
    with pytest.raises(InputError):
        webhook_sender("file:///etc/passwd")
