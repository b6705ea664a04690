"""Addresses enriched per second: orbwatch's bundled lookup vs a per-address maxminddb loop.

Both run in the same process on the same random addresses (90 % public IPv4, 10 % IPv6 in
2000::/4). The yardstick is the ``maxminddb`` C reader (``Reader.get`` in a Python loop, the
way per-address enrichment is usually written) over ``geo-whois-asn-country.mmdb`` from the
``@ip-location-db/geo-whois-asn-country-mmdb`` npm package: the same country data orbwatch
ships, as an .mmdb. The yardstick answers the country only; orbwatch answers country,
coordinates, ASN and AS organisation.

    make ipdb                              # caches the .mmdb tarball once
    .venv/bin/python bench/enrich.py       # 10 million addresses
    .venv/bin/python bench/enrich.py -n 1000000 --baseline-sample 200000
    .venv/bin/python bench/enrich.py --side orbwatch --json rows.json   # one side, for run_all

orbwatch is timed twice: the first call in the process (it builds the 64 MiB /24 index and
takes fresh memory for its answers) and a repeated call (steady state). Both wall-clock and
CPU time (user + system of every thread) are printed, with the load average: on a shared
machine the wall clock measures how much CPU the process got. orbwatch uses one thread per
CPU the process may run on (`taskset -c 0` makes it one); the yardstick loop is one thread.

Prints a Markdown table (the one in docs/performance.md, "Enrichment"). ``--side`` times one
side only, so that ``bench/run_all.py`` can measure each side's peak memory in its own process
(the yardstick's list of address strings would otherwise dominate orbwatch's figure); the
country agreement needs both sides and is printed only then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import maxminddb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from build_ipdb import YARDSTICK_MMDB, default_cache, verify  # noqa: E402

from orbwatch.enrich import geo  # noqa: E402

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def random_addresses(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """128-bit values (hi, lo): 90 % IPv4 in 1.0.0.0-223.255.255.255, 10 % IPv6 in 2000::/4."""
    rng = np.random.default_rng(seed)
    hi = np.zeros(n, np.uint64)
    lo = np.uint64(0xFFFF << 32) | rng.integers(1 << 24, 224 << 24, n, dtype=np.uint64)
    v6 = rng.random(n) < 0.1
    m = int(v6.sum())
    hi[v6] = np.uint64(0x2 << 60) | rng.integers(0, 1 << 60, m, dtype=np.uint64)
    lo[v6] = rng.integers(0, 2**63, m, dtype=np.uint64)
    return hi, lo


def keys_of(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """The 32-hex-digit key column (vectorised: nibble by nibble over the whole array)."""
    digits = np.empty((len(hi), 32), np.uint8)
    for word, values in enumerate((hi, lo)):
        for i in range(16):
            digits[:, word * 16 + i] = HEX[(values >> np.uint64(60 - 4 * i)) & np.uint64(15)]
    offsets = np.arange(len(hi) + 1, dtype=np.int32) * 32
    return pa.StringArray.from_buffers(len(hi), pa.py_buffer(offsets), pa.py_buffer(digits))


def yardstick_texts(hi: np.ndarray, lo: np.ndarray) -> list[str]:
    """Address text for the yardstick, built with Arrow string kernels outside the timing."""
    v4 = hi == 0
    ip = (lo & np.uint64(0xFFFFFFFF)).astype(np.int64)
    octets = [pa.array((ip >> s) & 255).cast(pa.string()) for s in (24, 16, 8, 0)]
    dotted = pc.binary_join_element_wise(*octets, ".")
    keys = keys_of(hi, lo)
    groups = [pc.utf8_slice_codeunits(keys, 4 * g, 4 * g + 4) for g in range(8)]
    colon = pc.binary_join_element_wise(*groups, ":")
    texts: list[str] = pc.if_else(pa.array(v4), dotted, colon).to_pylist()
    return texts


YARDSTICK_MISSING = "the yardstick .mmdb is not cached: run `make ipdb` once"


def yardstick_mmdb(folder: Path) -> Path | None:
    """The yardstick database extracted into ``folder``; None when it was never cached."""
    tarball = default_cache() / YARDSTICK_MMDB.tarball
    if not tarball.exists():
        return None
    verify(YARDSTICK_MMDB, tarball)
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile("package/geo-whois-asn-country.mmdb")
        assert member is not None
        path = folder / "geo-whois-asn-country.mmdb"
        path.write_bytes(member.read())
    return path


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds (user + system, every thread) of one timed call."""

    label: str
    addresses: int
    wall: float
    cpu: float

    def row(self, baseline: Timing | None) -> str:
        rate, cpu_rate = self.addresses / self.wall, self.addresses / self.cpu
        ratio = "1.0x"
        if baseline is not None:
            wall_x = rate / (baseline.addresses / baseline.wall)
            cpu_x = cpu_rate / (baseline.addresses / baseline.cpu)
            ratio = f"{wall_x:.1f}x, {cpu_x:.1f}x"
        return (
            f"| {self.label} | {self.addresses:,} | {self.wall:.2f} | {rate / 1e6:.2f} M "
            f"| {self.cpu:.2f} | {cpu_rate / 1e6:.2f} M | {ratio} |"
        )

    def as_json(self, side: str) -> dict[str, Any]:
        return {"stage": "enrich", "side": side, "name": self.label, "rows": self.addresses,
                "seconds": self.wall, "cpu_seconds": self.cpu}  # fmt: skip


def timed(label: str, addresses: int, work: Callable[[], object]) -> tuple[Timing, object]:
    started, cpu = time.perf_counter(), time.process_time()
    result = work()
    return Timing(
        label, addresses, time.perf_counter() - started, time.process_time() - cpu
    ), result


def agreement(answers: pa.Table, records: list[object]) -> float:
    """Share of the sample where orbwatch's country equals the yardstick's (same source data)."""
    found = pa.array(records, pa.struct([("country_code", pa.string())]))
    theirs = pc.fill_null(pc.struct_field(found, "country_code"), "-")
    ours = pc.fill_null(answers["country"].slice(0, len(found)).cast(pa.string()), "-")
    same = pc.sum(pc.equal(ours, theirs).cast(pa.int64())).as_py() or 0
    return float(same) / max(len(found), 1)


def time_orbwatch(keys: pa.Array) -> tuple[list[Timing], pa.Table]:
    """orbwatch's first call in the process (index build included) and a repeated call."""
    db = geo.bundled()
    db.lookup(keys.slice(0, 1000))  # load the files; the /24 index is built in the first run
    first, answers = timed(
        "orbwatch, first call (builds the /24 index)", len(keys), lambda: db.lookup(keys)
    )
    again, _ = timed("orbwatch, repeated call", len(keys), lambda: db.lookup(keys))
    table = answers.table if isinstance(answers, geo.Answers) else pa.table({})
    return [first, again], table


def time_yardstick(hi: np.ndarray, lo: np.ndarray) -> tuple[Timing, list[object]] | None:
    """The per-address maxminddb loop over the given addresses; None without the .mmdb."""
    texts = yardstick_texts(hi, lo)
    with tempfile.TemporaryDirectory() as tmp:
        mmdb = yardstick_mmdb(Path(tmp))
        if mmdb is None:
            return None
        reader = maxminddb.open_database(str(mmdb))
        loop, records = timed(
            "maxminddb `Reader.get` loop (country)",
            len(texts),
            lambda: [reader.get(text) for text in texts],
        )
        reader.close()
    assert isinstance(records, list) and len(records) == len(texts)
    return loop, records


def json_rows(ours: list[Timing], loop: Timing | None, side: str) -> list[dict[str, Any]]:
    """Rows in ``bench/run_all.py``'s format; the first call is the stage figure."""
    rows = [t.as_json("orbwatch" if i == 0 else "detail") for i, t in enumerate(ours)]
    if loop is not None:
        rows.append(loop.as_json("yardstick"))
    elif side != "orbwatch":
        rows.append({"stage": "enrich", "side": "yardstick", "name": "maxminddb loop",
                     "rows": 0, "seconds": 0.0, "missing": YARDSTICK_MISSING})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=10_000_000, help="addresses")
    parser.add_argument(
        "--baseline-sample", type=int, default=0, help="yardstick on the first N only (0: all)"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--side", choices=("both", "orbwatch", "yardstick"), default="both")
    parser.add_argument("--json", type=Path, help="also write the rows here (bench/run_all.py)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    hi, lo = random_addresses(args.n, args.seed)
    ours: list[Timing] = []
    table = pa.table({})
    if args.side != "yardstick":
        ours, table = time_orbwatch(keys_of(hi, lo))
    yardstick = None
    if args.side != "orbwatch":
        sample = args.baseline_sample or args.n
        yardstick = time_yardstick(hi[:sample], lo[:sample])
    load_after = os.getloadavg()
    loop = yardstick[0] if yardstick is not None else None

    print(
        "| tool | addresses | wall s | addresses/s | CPU s | addresses/CPU-s | ratio (wall, CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for timing in ours:
        print(timing.row(loop))
    if loop is not None:
        print(loop.row(None))
    elif args.side != "orbwatch":
        print(f"\nno yardstick: {YARDSTICK_MISSING}")
    if ours:
        print(f"\n{args.n - table['asn'].null_count:,} of {args.n:,} addresses got an ASN")
    if ours and yardstick is not None:
        print(f"country equal to the yardstick's for {agreement(table, yardstick[1]):.4%} "
              "of the sample")  # fmt: skip
    print(
        f"threads: {geo.usable_cpus()}; load average (1, 5, 15 min) before "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + ", after "
        + ", ".join(f"{x:.1f}" for x in load_after)
    )
    if args.json is not None:
        doc = {"bench": "enrich", "rows": json_rows(ours, loop, args.side)}
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
