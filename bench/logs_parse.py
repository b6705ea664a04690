"""Log parsing speed: orbwatch's vectorised line formats vs a per-line Python ``re`` parser.

Why: a firewall cluster writes thousands of lines per second, and an investigation replays
weeks of them. orbwatch splits lines with numpy, and takes headers and fields apart with Polars
(whole batches, one lazy query per batch, each ``key=value`` key looked up once; ten or more
keys of a column in one compiled pass, ``orbwatch.sources.kv_scan``); the baseline is what a
script would do: one ``re`` match for the syslog header and one for the fields, per line, into
a dict.

For each syslog firewall format a file of ``--lines`` lines is generated from real corpus line
shapes, with addresses, ports and times varied by numpy (so that no two lines are equal), and
then measured, each in a fresh process (peak RSS is per measurement):

* ``orbwatch``: ``Source.parse`` over the file: reading, splitting, header, time resolution,
  fields, typed conversion, quarantine decisions (everything but the workspace write);
* ``per-line re``: the same file read line by line (the first ``--baseline-lines`` lines), a
  header regex and a field regex per line, values converted with ``int()``;
* ``Polars floor``: not a parser but the floor of a vectorised one, the issue's "per-field
  ``str.extract`` over a lazily scanned file": the time stamp and the baseline's fields taken
  out by Polars in one lazy query (one ``str.extract`` per field, one split for CSV), with
  nothing else. What orbwatch does on top (header fields, year and zone, typing, address
  checks, provenance, quarantine) is the gap between the two.

Besides wall-clock lines/s (which other jobs on a shared machine slow down), each side's CPU
time (user + system, all threads) per line is printed: it moves less with the machine's load.
The load average is printed before each measurement. Pin to one core with ``taskset -c 0``.

Memory is bounded by the read size (8 MiB of text per batch), not by the file: the last table
parses files of ``--memory-lines`` lines (default 0.5, 1 and 2 million) and prints orbwatch's
peak RSS for each, which stays flat as the file grows.

Usage: ``python bench/logs_parse.py [--lines N] [--baseline-lines N] [--formats a,b]
[--memory-lines N,N] [--memory-formats a,b]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import polars as pl

from orbwatch.sources import registry
from orbwatch.sources.inputs import Input

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_BSD = r"^(?:<\d+>)?(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) (?:([^:\[\s]+)(?:\[\d+\])?: )?(.*)$"


@dataclass(frozen=True)
class Case:
    """One format: how to generate its lines, and the per-line baseline parser of it."""

    fmt: str
    template: str  # str.format fields: stamp, a, b, c, d (octets), sp, dp
    fields: str  # the baseline's field regex over the message
    # The baseline's fields for the Polars floor: one regex each (group 1), or for CSV
    # formats the indices of the comma-separated fields (the first holds the header too).
    extract: tuple[str, ...] | tuple[int, ...]


def _kv(*keys: str, quoted: bool = False) -> tuple[str, ...]:
    """Per-field regexes of ``key=value`` (``key="value"``) fields."""
    return tuple(f' {k}="([^"]*)"' if quoted else rf" {k}=\"?([^\s\"]*)" for k in keys)


CASES = [
    Case(
        "netfilter_log",
        "{stamp} gw kernel: [19955416.516358] [UFW BLOCK] IN=ens2 OUT= "
        "MAC=de:1c:88:64:10:19:5e:e1:a4:3b:cf:f0:08:00 SRC=62.34.{a}.{b} DST=10.73.{c}.{d} "
        "LEN=44 TOS=0x00 PREC=0x00 TTL=43 ID=25313 PROTO=TCP SPT={sp} DPT={dp} WINDOW=1024 "
        "RES=0x00 SYN URGP=0",
        r"^(?:\[\s*[\d.]+\]\s*)?(.*?)\s*IN=(\S*) OUT=(\S*).*? SRC=(\S+) DST=(\S+) .*?PROTO=(\S+)"
        r"(?: SPT=(\d+) DPT=(\d+))?",
        (r"\] (.*?)\s*IN=", *_kv("IN", "OUT", "SRC", "DST", "PROTO", "SPT", "DPT")),
    ),
    Case(
        "pfsense_filterlog",
        "{stamp} pfSense filterlog: 5,,,1000102433,em0,match,block,in,4,0x0,,128,24677,0,none,"
        "17,udp,186,10.9.{a}.{b},10.9.{c}.{d},{sp},{dp},166",
        r"^([^,]*),[^,]*,[^,]*,([^,]*),[^,]*,[^,]*,([^,]*),[^,]*,4,(?:[^,]*,){7}([^,]*),[^,]*,"
        r"([^,]*),([^,]*),(\d+),(\d+)",
        (0, 3, 6, 16, 18, 19, 20, 21),
    ),
    Case(
        "cisco_asa",
        "{stamp} asa01 %ASA-6-302013: Built outbound TCP connection 9 for "
        "outside:198.51.{a}.{b}/{dp} (198.51.{a}.{b}/{dp}) to inside:10.1.{c}.{d}/{sp} "
        "(203.0.113.{d}/{sp})",
        r"Built (inbound|outbound) (\w+) connection (\d+) for [^:]+:([^/]+)/(\d+) \(([^/]+)/(\d+)"
        r"\) to [^:]+:([^/]+)/(\d+) \(([^/]+)/(\d+)\)",
        (
            *(r"Built (\w+)", r"Built \w+ (\w+)", r"connection (\d+)"),
            *(r"for [^:]+:([^/]+)/", r"for [^:]+:[^/]+/(\d+)", r"for [^(]+\(([^/]+)/"),
            *(r"for [^(]+\([^/]+/(\d+)", r" to [^:]+:([^/]+)/", r" to [^:]+:[^/]+/(\d+)"),
            *(r" to [^(]+\(([^/]+)/", r" to [^(]+\([^/]+/(\d+)"),
        ),
    ),
    Case(
        "fortigate_traffic",
        '{stamp} fgt date=2021-01-06 time=11:17:02 devname="fgt" devid="FG1" '
        'logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" '
        'eventtime=1609960622 srcip=10.192.{a}.{b} srcport={sp} srcintf="lan" '
        'dstip=95.192.{c}.{d} dstport={dp} dstintf="wan" sessionid=38269007 proto=17 '
        'action="accept" policyid=1 service="DNS" trandisp="snat" transip=192.168.253.254 '
        "transport={sp} duration=180 sentbyte=100 rcvdbyte=133 sentpkt=1 rcvdpkt=1",
        r"srcip=(\S+) srcport=(\d+) .*?dstip=(\S+) dstport=(\d+) .*?proto=(\d+) "
        r"action=\"?(\w+)\"? policyid=(\d+) .*?sentbyte=(\d+) rcvdbyte=(\d+)",
        _kv("srcip", "srcport", "dstip", "dstport", "proto", "action", "policyid", "sentbyte")
        + _kv("rcvdbyte"),
    ),
    Case(
        "panos_traffic",
        "{stamp} PA-VM 1,2018/09/20 13:03:58,44A1B3FC68F5304,TRAFFIC,end,2049,"
        "2018/09/20 13:03:58,34.217.{a}.{b},10.0.{c}.{d},34.217.108.226,10.0.2.65,splunk,,,"
        "incomplete,vsys1,untrusted,trusted,ethernet1/3,ethernet1/2,log-forwarding-default,"
        "2018/09/20 13:03:58,574326,1,{sp},{dp},53722,8088,0x400064,tcp,allow,296,296,0,4,"
        "2018/09/20 13:03:45,7,any,0,730277,0x0,United States,10.0.0.0-10.255.255.255,0,4,0,"
        "aged-out,0,0,0,0,,PA-VM,from-policy,,,0,,0,,N/A,0,0,0,0",
        # Fields 7, 8 (addresses), 24, 25 (ports), 29 (protocol), 30 (action), 31-33 (bytes).
        r"^\d+,[^,]*,[^,]*,TRAFFIC,(?:[^,]*,){3}([^,]*),([^,]*),(?:[^,]*,){15}(\d+),(\d+),"
        r"(?:[^,]*,){3}([^,]*),([^,]*),(\d+),(\d+),(\d+)",
        (7, 8, 24, 25, 29, 30, 31, 32, 33),
    ),
    Case(
        "juniper_srx_rt_flow",
        '<14>1 {iso} fw01 RT_FLOW - RT_FLOW_SESSION_CLOSE [junos@2636.1.1.1.2.39 reason="idle '
        'Timeout" source-address="192.168.{a}.{b}" source-port="{sp}" '
        'destination-address="67.43.{c}.{d}" destination-port="{dp}" service-name="junos-dns" '
        'nat-source-address="192.168.0.47" nat-source-port="20215" '
        'nat-destination-address="67.43.156.15" nat-destination-port="53" protocol-id="17" '
        'policy-name="trust-to-untrust" source-zone-name="trust" destination-zone-name="untrust"'
        ' session-id-32="9621" packets-from-client="1" bytes-from-client="67" '
        'packets-from-server="1" bytes-from-server="116" elapsed-time="3"]',
        r'source-address="([^"]*)" source-port="(\d+)" destination-address="([^"]*)" '
        r'destination-port="(\d+)".*?protocol-id="(\d+)" policy-name="([^"]*)".*?'
        r'bytes-from-client="(\d+)".*?bytes-from-server="(\d+)"',
        _kv("source-address", "source-port", "destination-address", "destination-port", quoted=True)
        + _kv("protocol-id", "policy-name", "bytes-from-client", "bytes-from-server", quoted=True),
    ),
]


def generate(case: Case, lines: int, path: Path, seed: int = 7) -> None:
    """Write ``lines`` lines of the case's shape with varied addresses, ports and times."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, 86_400 * 30, lines))
    stamps = np.datetime64("2024-03-01T00:00:00") + seconds.astype("timedelta64[s]")
    df = pl.DataFrame({"t": stamps.astype("datetime64[us]")}).with_columns(
        *(pl.Series(k, rng.integers(1, 255, lines)) for k in "abcd"),
        sp=pl.Series(rng.integers(1024, 65535, lines)),
        dp=pl.Series(rng.choice([22, 53, 80, 443, 3389, 8080], lines)),
    )
    month = (
        pl.col("t")
        .dt.month()
        .cast(pl.Int64)
        .replace_strict(dict(enumerate(MONTHS, 1)), return_dtype=pl.String)
    )
    day = pl.col("t").dt.day().cast(pl.String).str.pad_start(2, " ")
    stamp = pl.concat_str([month, pl.lit(" "), day, pl.lit(" "), pl.col("t").dt.strftime("%T")])
    iso = pl.col("t").dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    pieces = re.split(r"(\{\w+\})", case.template)
    exprs: list[pl.Expr] = []
    for piece in pieces:
        if piece == "{stamp}":
            exprs.append(stamp)
        elif piece == "{iso}":
            exprs.append(iso)
        elif piece.startswith("{"):
            exprs.append(pl.col(piece[1:-1]).cast(pl.String))
        elif piece:
            exprs.append(pl.lit(piece))
    out = df.select(pl.concat_str(exprs).alias("line"))
    out.write_csv(path, include_header=False, quote_style="never")


def run_orbwatch(fmt: str, path: str) -> int:
    source = registry()[fmt](year=2024)  # type: ignore[call-arg]
    inp = Input.open(path)
    rows = 0
    for parsed in source.parse(inp):
        rows += parsed.rows.num_rows
    return rows


def run_field_extract(case: Case, path: str) -> int:
    """The floor of a vectorised parse: Polars scans the file lazily and takes out the time
    stamp and each field the baseline captures (one ``str.extract`` per field, or one split
    of a CSV line), all in one query, and does nothing else: no header fields, no year or
    zone, no typing, validation, provenance or quarantine."""
    stamp = r"^<\d+>1 (\S+)" if case.template.startswith("<") else r"^(\w{3} [ \d]\d [\d:]{8})"
    line = pl.col("line")
    fields = [
        line.str.split(",").list.get(f, null_on_oob=True)
        if isinstance(f, int)
        else line.str.extract(f, 1)
        for f in case.extract
    ]
    found = (
        pl.scan_csv(
            path,
            has_header=False,
            separator="\x01",
            quote_char=None,
            new_columns=["line"],
            schema_overrides={"line": pl.String},
        )
        .select(e.alias(f"f{i}") for i, e in enumerate([line.str.extract(stamp, 1), *fields]))
        .collect()
    )
    return found.drop_nulls().height  # the lines in which every field was found


def run_baseline(case: Case, path: str, limit: int) -> int:
    """The straightforward parser: per line, a header regex and a field regex into a dict."""
    header = re.compile(_BSD)
    rfc5424 = re.compile(r"^<\d+>1 (\S+) (\S+) (\S+) (\S+) (\S+) (.*)$")
    fields = re.compile(case.fields)
    rows = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for n, line in enumerate(handle):
            if n >= limit:
                break
            h = header.match(line) or rfc5424.match(line)
            if h is None:
                continue
            m = fields.search(h.groups()[-1])
            if m is None:
                continue
            record = {"time": h.group(1), "host": h.group(2), "fields": m.groups()}
            record["ports"] = [int(g) for g in m.groups() if g is not None and g.isdigit()]
            rows += 1
    return rows


@dataclass(frozen=True)
class Measured:
    """One run: rows produced, wall seconds, CPU seconds (all threads), peak RSS in MiB."""

    rows: int
    seconds: float
    cpu_seconds: float
    peak_mib: float


def peak_rss_mib() -> float:
    """This process's own peak RSS.

    Linux's ``VmHWM`` (high-water mark of this address space), not ``ru_maxrss``: across
    ``exec`` the kernel carries ``ru_maxrss`` over from the parent, so a measurement process
    spawned by a parent that had just generated a 2 GiB test file would report the parent's
    peak, which grows with the file, as its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(target: Callable[[], int], queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    started, cpu_started = time.perf_counter(), time.process_time()
    rows = target()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    queue.put(Measured(rows, seconds, cpu, peak_rss_mib()))


def measure(target: Callable[[], int]) -> Measured:
    """``target`` run in a fresh process (so that the peak RSS is its own)."""
    # spawn, not fork: a forked child of a process that used Polars can deadlock in its pool.
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(target, queue))
    proc.start()
    result: Measured = queue.get()
    proc.join()
    return result


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def speed_table(
    cases: list[Case], lines: int, baseline_lines: int, tmp: Path
) -> list[dict[str, object]]:
    """Lines/s and CPU per line of orbwatch, the per-line baseline and the Polars floor.

    Returns the measurements as rows for ``--json`` (``bench/run_all.py``'s format).
    """
    limit = min(lines, baseline_lines)
    rows: list[dict[str, object]] = []
    print(f"{lines:,} generated lines per format; baseline on the first {limit:,}\n")
    header = (
        f"{'format':20} {'orbwatch lines/s':>16} {'per-line re':>12} {'ratio':>6} "
        f"{'Polars floor':>12} {'of floor':>8} {'CPU us/line: orbwatch':>21} {'re':>5} "
        f"{'floor':>5} {'peak MiB':>8} {'rows':>10} {'load 1/5/15 min':>16}"
    )
    print(header)
    print("-" * len(header))
    for case in cases:
        path = tmp / f"{case.fmt}.log"
        generate(case, lines, path)
        load = _load()
        ours = measure(partial(run_orbwatch, case.fmt, str(path)))
        theirs = measure(partial(run_baseline, case, str(path), limit))
        floor = measure(partial(run_field_extract, case, str(path)))
        speed, base_speed = lines / ours.seconds, limit / theirs.seconds
        floor_speed = lines / floor.seconds
        cpu, base_cpu = ours.cpu_seconds / lines * 1e6, theirs.cpu_seconds / limit * 1e6
        print(
            f"{case.fmt:20} {speed:16,.0f} {base_speed:12,.0f} {speed / base_speed:5.1f}x "
            f"{floor_speed:12,.0f} {speed / floor_speed:7.2f}x {cpu:21.2f} {base_cpu:5.2f} "
            f"{floor.cpu_seconds / lines * 1e6:5.2f} {ours.peak_mib:8,.0f} {ours.rows:10,} "
            f"{load:>16}"
        )
        if ours.rows != lines or theirs.rows != limit or floor.rows != lines:
            print(
                f"  (not every generated line parsed: orbwatch {ours.rows:,} of {lines:,}, "
                f"baseline {theirs.rows:,} of {limit:,}, floor {floor.rows:,} of {lines:,})"
            )
        path.unlink()
        rows.append({"stage": "log parse", "side": "orbwatch", "name": case.fmt,
                     "rows": lines, "seconds": ours.seconds, "cpu_seconds": ours.cpu_seconds,
                     "peak_mib": ours.peak_mib})  # fmt: skip
        rows.append({"stage": "log parse", "side": "yardstick", "name": f"per-line re, {case.fmt}",
                     "rows": limit, "seconds": theirs.seconds,
                     "cpu_seconds": theirs.cpu_seconds})  # fmt: skip
        # A detail row: run_all rates orbwatch against the per-line parser alone.
        rows.append({"stage": "log parse", "side": "detail",
                     "name": f"Polars field extract, {case.fmt}", "rows": lines,
                     "seconds": floor.seconds, "cpu_seconds": floor.cpu_seconds})  # fmt: skip
    return rows


def memory_table(cases: list[Case], sizes: list[int], tmp: Path) -> None:
    """orbwatch's peak RSS as the file grows: flat when memory is bounded by the batch size."""
    print(f"\norbwatch peak RSS (MiB) by file size, {len(sizes)} sizes per format\n")
    header = f"{'format':20} " + " ".join(f"{n:>12,}" for n in sizes) + f" {'load':>16}"
    print(header)
    print("-" * len(header))
    for case in cases:
        peaks = []
        load = _load()
        for size in sizes:
            path = tmp / f"{case.fmt}-{size}.log"
            generate(case, size, path)
            result = measure(partial(run_orbwatch, case.fmt, str(path)))
            if result.rows != size:
                print(f"  ({case.fmt}: {result.rows:,} rows of {size:,} lines)")
            peaks.append(result.peak_mib)
            path.unlink()
        print(f"{case.fmt:20} " + " ".join(f"{p:12,.0f}" for p in peaks) + f" {load:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--baseline-lines", type=int, default=500_000)
    parser.add_argument("--formats", default=",".join(c.fmt for c in CASES))
    parser.add_argument("--memory-lines", default="500000,1000000,2000000")
    parser.add_argument("--memory-formats", default="netfilter_log,juniper_srx_rt_flow")
    parser.add_argument("--json", type=Path, help="also write the speed rows here (run_all)")
    args = parser.parse_args()
    wanted = set(args.formats.split(","))
    memory_wanted = {f for f in args.memory_formats.split(",") if f}
    sizes = [int(n) for n in args.memory_lines.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="orbwatch-bench-") as tmp:
        rows = speed_table(
            [c for c in CASES if c.fmt in wanted], args.lines, args.baseline_lines, Path(tmp)
        )
        if args.json is not None:
            args.json.write_text(json.dumps({"bench": "logs_parse", "rows": rows}, indent=1))
        if sizes and memory_wanted:
            memory_table([c for c in CASES if c.fmt in memory_wanted], sizes, Path(tmp))


if __name__ == "__main__":
    main()
