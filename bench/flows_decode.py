"""Flow decoding speed: orbwatch vs the ``netflow`` package (PyPI), and the live collector.

Why: a busy edge router exports tens of thousands of flows per second, and an investigation
replays days of captures. orbwatch decodes all sets of one template with one ``np.frombuffer``,
so its cost per flow should be far below a per-record Python decoder's.

Inputs are generated export messages from one exporter, like a router's: NetFlow v9 with a
Cisco-style 18-field IPv4 template (45-byte records) and IPFIX with a 14-field template using
absolute millisecond times (45-byte records), 30 records per message (~1.4 kB datagrams), the
data message repeated until there are ``--flows`` flow records. Rows measured:

* ``orbwatch decode``: messages -> columns (numpy/Arrow), the decoder alone, with every field
  of every record converted (columns are converted on first use; this row asks for all);
* ``orbwatch -> flows``: messages -> ``flows`` rows (times, names, flags, sampling), converting
  only the fields the mapping reads;
* ``netflow 0.12.2``: ``netflow.utils.parse_packet`` on the same messages (a tenth of them:
  it is slow), every record touched;
* ``collector``: ``--senders`` processes send pre-built v9 datagrams over loopback UDP, each
  paced to its share of ``--rate``; the collector decodes and writes them into a workspace;
  loss = flows sent - rows written.

The 1-minute load average is printed with each table: on a shared machine absolute rates move
with it, ratios measured in the same run much less. Pin to one core with ``taskset -c 0``.

Usage: ``python bench/flows_decode.py [--flows N] [--rate FLOWS_PER_S] [--seconds S]
[--senders N] [--skip-decode] [--skip-collector] [--side both|orbwatch|yardstick]
[--json PATH]``. The baseline needs the ``bench`` extra (``pip install -e .[bench]``); without
it the row says so. ``--json`` writes the decoder rows for ``bench/run_all.py``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orbwatch.collect.base import CollectSettings
from orbwatch.collect.netflow import netflow_collector
from orbwatch.config import Config
from orbwatch.sources.netflow.decode import Decoder, TemplateCache, batches_to_flows
from orbwatch.store.workspace import Workspace

RECORDS = 30
UNIX_SECS = 1_700_000_000
V9_FIELDS = (  # (type, length): a Cisco-style v9 IPv4 template
    (8, 4), (12, 4), (15, 4), (7, 2), (11, 2), (4, 1), (5, 1), (6, 1), (10, 2), (14, 2),
    (1, 4), (2, 4), (22, 4), (21, 4), (16, 2), (17, 2), (9, 1), (13, 1),
)  # fmt: skip
IPFIX_FIELDS = (  # absolute times, as most IPFIX exporters send them
    (8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (6, 1), (5, 1), (10, 2), (14, 2),
    (1, 4), (2, 4), (152, 8), (153, 8), (136, 1),
)  # fmt: skip


def _record(i: int, v9: bool) -> bytes:
    src, dst = bytes([10, 0, i // 256, i % 256]), bytes([198, 51, 100, i])
    if v9:
        return struct.pack(
            ">4s4s4sHHBBBHHIIIIHHBB", src, dst, bytes(4), 40_000 + i, 443, 6, 0, 0x1B, 1, 2,
            1500 * (i + 1), i + 1, 3_590_000, 3_599_000, 0, 0, 24, 24,
        )  # fmt: skip
    start = UNIX_SECS * 1000 - 9_000
    return struct.pack(
        ">4s4sHHBBBHHIIQQB", src, dst, 40_000 + i, 443, 6, 0x1B, 0, 1, 2, 1500 * (i + 1), i + 1,
        start, start + 8_000, 3,
    )  # fmt: skip


def messages(version: int) -> tuple[bytes, bytes]:
    """(template message, data message) of one exporter, domain / source id 0."""
    v9 = version == 9
    fields = b"".join(struct.pack(">HH", t, n) for t, n in (V9_FIELDS if v9 else IPFIX_FIELDS))
    count = len(V9_FIELDS if v9 else IPFIX_FIELDS)
    body = b"".join(_record(i, v9) for i in range(RECORDS))
    if v9:
        header = struct.Struct(">HHIIII")
        tpl = struct.pack(">HHHH", 0, 8 + len(fields), 256, count) + fields
        data = struct.pack(">HH", 256, 4 + len(body)) + body
        return (
            header.pack(9, 1, 3_600_000, UNIX_SECS, 0, 0) + tpl,
            header.pack(9, RECORDS, 3_600_000, UNIX_SECS, 1, 0) + data,
        )
    tpl = struct.pack(">HHHH", 2, 8 + len(fields), 256, count) + fields
    data = struct.pack(">HH", 256, 4 + len(body)) + body
    return (
        struct.pack(">HHIII", 10, 16 + len(tpl), UNIX_SECS, 0, 0) + tpl,
        struct.pack(">HHIII", 10, 16 + len(data), UNIX_SECS, 1, 0) + data,
    )


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
                for batch in batches:
                    for name in batch.columns:  # convert every field of every record
                        batch.columns[name]
                    flows += batch.num_records
    return flows


def baseline(template: bytes, data: bytes, n: int) -> int | None:
    try:
        from netflow.utils import parse_packet  # type: ignore[import-not-found,import-untyped,unused-ignore]
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


NETFLOW_MISSING = "the netflow package is not installed (pip install -e '.[bench]')"


def decode_rows(version: int, flows: int, side: str = "both") -> list[dict[str, Any]]:
    """Rows in ``bench/run_all.py``'s format: orbwatch's two paths and the netflow package.

    ``-> flows`` (what ingest and the collector run) is the stage figure; ``decode`` is a
    detail. The baseline runs on a tenth of the messages: at its speed the full input would
    take minutes, and a rate per flow does not need them.
    """
    template, data = messages(version)
    n = max(1, flows // RECORDS)
    label = "NetFlow v9" if version == 9 else "IPFIX"
    rows: list[dict[str, Any]] = []
    if side in ("both", "orbwatch"):
        for name, to_flows in (("orbwatch decode", False), ("orbwatch -> flows", True)):
            got, seconds = timed(lambda t=to_flows: ours(template, data, n, t))  # type: ignore[misc]
            rows.append({
                "stage": "flow decode", "side": "orbwatch" if to_flows else "detail",
                "name": f"{name}, {label}", "rows": got or 0, "seconds": seconds,
            })  # fmt: skip
    if side in ("both", "yardstick"):
        base_flows, base_seconds = timed(lambda: baseline(template, data, max(1, n // 10)))
        row: dict[str, Any] = {
            "stage": "flow decode", "side": "yardstick", "name": f"netflow 0.12.2, {label}",
            "rows": base_flows or 0, "seconds": base_seconds,
        }  # fmt: skip
        if base_flows is None:
            row["missing"] = NETFLOW_MISSING
        rows.append(row)
    return rows


def decode_table(version: int, flows: int, side: str = "both") -> list[dict[str, Any]]:
    """Print the decoder table of one protocol version; return its rows."""
    _, data = messages(version)
    label = "NetFlow v9" if version == 9 else "IPFIX"
    messages_n, load = max(1, flows // RECORDS), os.getloadavg()[0]
    print(f"\n{label}: {RECORDS} records per {len(data)}-byte message, {messages_n:,} messages, "
          f"load average {load:.1f}")  # fmt: skip
    print(f"{'decoder':<22}{'flows':>12}{'seconds':>10}{'flows/s':>14}{'vs netflow':>12}")
    rows = decode_rows(version, flows, side)
    yardstick = [r for r in rows if r["side"] == "yardstick" and r["rows"]]
    base_rate = yardstick[0]["rows"] / yardstick[0]["seconds"] if yardstick else None
    for row in rows:
        if row.get("missing"):
            print(f"{'netflow (PyPI)':<23}skipped: {row['missing']}")
            continue
        name = str(row["name"]).rsplit(",", 1)[0]
        rate = row["rows"] / row["seconds"]
        ratio = f"{rate / base_rate:>11.1f}x" if base_rate else f"{'n/a':>12}"
        print(f"{name:<22}{row['rows']:>12,}{row['seconds']:>10.2f}{rate:>14,.0f}{ratio}")
    return rows


def _send(
    port: int, template: bytes, data: bytes, datagrams: int, rate: float, go: Any, done: Any
) -> None:
    """Sender process: the template, then ``datagrams`` data messages paced to ``rate``/s.

    The datagram is built once; the loop only sends, sleeping when ahead of the pace (checked
    every 16 datagrams, so a late sender catches up in bursts, as a router's export does).
    All senders start together on ``go``; each puts its sending time on ``done``.
    """
    target = ("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        send = sock.sendto
        send(template, target)
        go.wait()
        start = time.perf_counter()
        for i in range(0, datagrams, 16):
            ahead = start + i / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
            for _ in range(min(16, datagrams - i)):
                send(data, target)
        done.put(time.perf_counter() - start)


def collector_run(flow_rate: float, seconds: float, senders: int = 2) -> None:
    template, data = messages(9)
    per_sender = int(flow_rate * seconds / RECORDS / senders)
    datagrams = per_sender * senders
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp, Workspace.open(Path(tmp) / "ws.duckdb") as ws:
        collector = netflow_collector(ws, Config(), ["127.0.0.1:0"], CollectSettings())
        port = collector.listeners[0].port  # type: ignore[attr-defined]
        thread = threading.Thread(target=collector.run, daemon=True)
        thread.start()
        spawn = multiprocessing.get_context("spawn")
        go, done = spawn.Event(), spawn.Queue()
        rate = flow_rate / RECORDS / senders
        processes = [
            spawn.Process(target=_send, args=(port, template, data, per_sender, rate, go, done))
            for _ in range(senders)
        ]
        for process in processes:
            process.start()
        time.sleep(3.0)  # interpreters start and send their template; then all go at once
        go.set()
        sent_seconds = max(done.get() for _ in processes)
        for process in processes:
            process.join()
        idle = time.monotonic() + 2.0
        seen = -1
        while time.monotonic() < idle and collector.stats.received != seen:
            seen = collector.stats.received
            time.sleep(0.5)
        collector.stop()
        thread.join()
        stats = collector.stats
        rows = ws.count("flows")
    sent = datagrams * RECORDS
    print(f"\ncollector on loopback UDP, v9, target {flow_rate:,.0f} flows/s for {seconds:.0f} s, "
          f"{senders} sender processes, load average {load:.1f}")  # fmt: skip
    print(f"{'flows sent':>12}{'send s':>8}{'sent/s':>12}{'rows':>12}{'lost':>8}"
          f"{'dropped':>9}{'batches':>9}")  # fmt: skip
    print(f"{sent:>12,}{sent_seconds:>8.1f}{sent / sent_seconds:>12,.0f}{rows:>12,}"
          f"{sent - rows:>8,}{stats.dropped:>9,}{stats.batches:>9}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flows", type=int, default=3_000_000, help="flows per decode run")
    parser.add_argument("--rate", type=float, default=100_000, help="collector flows/s")
    parser.add_argument("--seconds", type=float, default=10, help="collector run length")
    parser.add_argument("--senders", type=int, default=2, help="collector sender processes")
    parser.add_argument("--skip-decode", action="store_true", help="only the collector")
    parser.add_argument("--skip-collector", action="store_true", help="only the decoders")
    parser.add_argument(
        "--side", choices=("both", "orbwatch", "yardstick"), default="both",
        help="decoders to time: orbwatch's, the netflow package, or both",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the decoder rows here")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    if not args.skip_decode:
        rows += decode_table(9, args.flows, args.side)
        rows += decode_table(10, args.flows, args.side)
    if args.json is not None:
        args.json.write_text(json.dumps({"bench": "flows_decode", "rows": rows}, indent=1))
    if not args.skip_collector:
        collector_run(args.rate, args.seconds, args.senders)


if __name__ == "__main__":
    main()
