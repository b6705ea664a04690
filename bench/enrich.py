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

Prints a Markdown table (the one in docs/performance.md, "Enrichment").
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
import time
from pathlib import Path

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


def yardstick_mmdb(folder: Path) -> Path:
    tarball = default_cache() / YARDSTICK_MMDB.tarball
    if not tarball.exists():
        raise SystemExit(f"{tarball} missing: run `make ipdb` (it caches the yardstick)")
    verify(YARDSTICK_MMDB, tarball)
    with tarfile.open(tarball, "r:gz") as tar:
        member = tar.extractfile("package/geo-whois-asn-country.mmdb")
        assert member is not None
        path = folder / "geo-whois-asn-country.mmdb"
        path.write_bytes(member.read())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=10_000_000, help="addresses")
    parser.add_argument(
        "--baseline-sample", type=int, default=0, help="yardstick on the first N only (0: all)"
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    hi, lo = random_addresses(args.n, args.seed)
    keys = keys_of(hi, lo)
    db = geo.bundled()
    db.lookup(keys.slice(0, 1000))  # load the files; the /24 index is built in the timed run
    started, cpu = time.perf_counter(), time.process_time()
    answers = db.lookup(keys)
    ours, ours_cpu = time.perf_counter() - started, time.process_time() - cpu
    found = answers.table["asn"].null_count

    sample = args.baseline_sample or args.n
    texts = yardstick_texts(hi[:sample], lo[:sample])
    with tempfile.TemporaryDirectory() as tmp:
        reader = maxminddb.open_database(str(yardstick_mmdb(Path(tmp))))
        started, cpu = time.perf_counter(), time.process_time()
        countries = [reader.get(text) for text in texts]
        theirs, theirs_cpu = time.perf_counter() - started, time.process_time() - cpu
        reader.close()
    assert len(countries) == sample

    ours_rate, theirs_rate = args.n / ours, sample / theirs
    ours_cpu_rate, theirs_cpu_rate = args.n / ours_cpu, sample / theirs_cpu
    print(
        "| tool | addresses | wall s | addresses/s | CPU s | addresses/CPU-s | ratio (wall, CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| orbwatch bundled lookup (country, coordinates, ASN, AS org) | {args.n:,} "
        f"| {ours:.2f} | {ours_rate / 1e6:.2f} M | {ours_cpu:.2f} | {ours_cpu_rate / 1e6:.2f} M "
        f"| {ours_rate / theirs_rate:.1f}x, {ours_cpu_rate / theirs_cpu_rate:.1f}x |"
    )
    print(
        f"| maxminddb `Reader.get` loop (country) | {sample:,} | {theirs:.2f} "
        f"| {theirs_rate / 1e6:.2f} M | {theirs_cpu:.2f} | {theirs_cpu_rate / 1e6:.2f} M | 1.0x |"
    )
    print(f"\n{args.n - found:,} of {args.n:,} addresses got an ASN")


if __name__ == "__main__":
    main()
