"""NetFlow v9 decode speed: orbwatch's bulk decoder vs the ``netflow`` package (PyPI).

Why: a busy edge router exports tens of thousands of flows per second, and an investigation
replays days of captures. The decoder does one ``np.frombuffer`` per template over many
messages, so its cost per flow should be far below a per-record Python decoder's.

The input is synthetic: one template message, then one data message with 30 records of a
typical 18-field IPv4 template (45 bytes per record, ~1.4 kB like a real export packet),
repeated N times. "orbwatch decode" counts decoding to columns; "orbwatch -> flows" adds the
mapping onto ``flows`` rows (times, protocol names, TCP flags, sampling).

Usage: ``python bench/bench_netflow_decode.py [messages]`` (default 100000). The baseline
column is skipped, with a note, when the ``netflow`` package is not installed; it is not a
dependency of orbwatch (``pip install netflow`` into the venv to measure it).
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable

from orbwatch.sources.netflow.decode import Decoder, TemplateCache, batches_to_flows

FIELDS = (  # (type, length): a Cisco-style v9 IPv4 template
    (8, 4), (12, 4), (15, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, 2), (14, 2),
    (1, 4), (2, 4), (22, 4), (21, 4), (16, 2), (17, 2), (9, 1), (13, 1),
)  # fmt: skip
RECORDS = 30
UNIX_SECS = 1_700_000_000


def messages() -> tuple[bytes, bytes]:
    """(template message, data message) from one exporter, source id 0."""
    header = struct.Struct(">HHIIII")
    fields = b"".join(struct.pack(">HH", t, n) for t, n in FIELDS)
    tpl_set = struct.pack(">HHHH", 0, 8 + len(fields), 256, len(FIELDS)) + fields
    template = header.pack(9, 1, 3_600_000, UNIX_SECS, 0, 0) + tpl_set
    records = []
    for i in range(RECORDS):
        records.append(
            struct.pack(
                ">4s4s4sHHBBBHHIIIIHHBB",
                bytes([10, 0, i // 256, i % 256]), bytes([198, 51, 100, i]), bytes(4),
                40_000 + i, 443, 6, 0, 0x1B, 1, 2, 1500 * (i + 1), i + 1,
                3_590_000, 3_599_000, 0, 0, 24, 24,
            )
        )  # fmt: skip
    body = b"".join(records)
    data = header.pack(9, RECORDS, 3_600_000, UNIX_SECS, 1, 0)
    data += struct.pack(">HH", 256, 4 + len(body)) + body
    return template, data


def ours(template: bytes, data: bytes, n: int, to_flows: bool) -> int:
    decoder = Decoder(TemplateCache())
    decoder.feed(template, "192.0.2.1")
    flows = 0
    for i in range(n):
        decoder.feed(data, "192.0.2.1", offset=i)
        if (i + 1) % 20_000 == 0 or i == n - 1:
            batches = decoder.flush()
            if to_flows:
                flows += batches_to_flows(batches, decoder.cache).num_rows
            else:
                flows += sum(b.num_records for b in batches)
    return flows


def baseline(template: bytes, data: bytes, n: int) -> int | None:
    try:
        from netflow.utils import parse_packet  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    templates: dict[str, dict[int, object]] = {"netflow": {}, "ipfix": {}}
    parse_packet(template, templates)
    flows = 0
    for _ in range(n):
        packet = parse_packet(data, templates)
        flows += len([f.data for f in packet.flows])  # touch every decoded record
    return flows


def timed(run: Callable[[], int | None]) -> tuple[int | None, float]:
    start = time.perf_counter()
    flows = run()
    return flows, time.perf_counter() - start


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    template, data = messages()
    rows: list[tuple[str, int | None, float]] = []
    for label, run in (
        ("orbwatch decode", lambda: ours(template, data, n, False)),
        ("orbwatch -> flows", lambda: ours(template, data, n, True)),
    ):
        flows, seconds = timed(run)
        rows.append((label, flows, seconds))
    base_n = max(1, n // 10)  # the baseline is slow: time a tenth and report its rate
    base_flows, base_seconds = timed(lambda: baseline(template, data, base_n))
    base_rate = base_flows / base_seconds if base_flows else None
    print(f"NetFlow v9, {RECORDS} records per message, {len(data)}-byte messages, {n} messages")
    print(f"{'decoder':<22}{'flows':>12}{'seconds':>10}{'flows/s':>14}{'vs netflow':>12}")
    for label, flows, seconds in rows:
        rate = (flows or 0) / seconds
        ratio = f"{rate / base_rate:>11.1f}x" if base_rate else f"{'n/a':>12}"
        print(f"{label:<22}{flows or 0:>12}{seconds:>10.2f}{rate:>14,.0f}{ratio}")
    if base_rate is None:
        print("netflow (PyPI)         skipped: package not installed (pip install netflow)")
    else:
        print(f"{'netflow 0.12 (PyPI)':<22}{base_flows:>12}{base_seconds:>10.2f}"
              f"{base_rate:>14,.0f}{1.0:>11.1f}x   ({base_n} messages)")  # fmt: skip


if __name__ == "__main__":
    main()
