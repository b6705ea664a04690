"""The reference measurements of the benchmarks compute what they say they compute.

``bench/logs_parse.py``'s Polars floor must find every field it claims to extract in every
generated line of each format (else it would time less work than it names), and
``bench/detect.py``'s beacon statistics floor must give the quartiles and MADs that numpy
gives for a constructed series (else it would not be the work beaconing needs).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from tests.benchkit import load_bench

LOGS = load_bench("logs_parse")


@pytest.mark.parametrize("case", LOGS.CASES, ids=lambda c: c.fmt)
def test_polars_floor_finds_every_field_of_every_line(case: object, tmp_path: Path) -> None:
    path = tmp_path / "lines.log"
    LOGS.generate(case, 2_000, path)
    assert LOGS.run_field_extract(case, str(path)) == 2_000


def test_beacon_floor_gives_the_quartiles_and_mads_of_the_gaps_and_sizes() -> None:
    detect = load_bench("detect")
    rng = np.random.default_rng(3)
    gaps = rng.integers(250, 350, 40)
    gaps[5] = 0  # two flows in the same second: a zero gap, left out of the gap statistics
    starts = 1_770_000_000 - 1_770_000_000 % 86_400 + np.concatenate([[0], np.cumsum(gaps)])
    sizes = rng.integers(100, 200, len(starts)).astype(float)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE flows (src_key VARCHAR, dst_key VARCHAR, ts_start TIMESTAMPTZ, "
        "src_bytes BIGINT, dst_bytes BIGINT, direction VARCHAR)"
    )
    rows: list[tuple[str, str, int, int, int | None, str]] = [
        ("a", "b", int(t), int(s), None, "outbound") for t, s in zip(starts, sizes, strict=True)
    ]
    rows += [("a", "c", int(starts[0]) + i, 10, 0, "outbound") for i in range(3)]  # gated out
    rows += [("a", "b", int(starts[0]) + 7, 10, 0, "inbound")]  # not outbound
    con.executemany("INSERT INTO flows VALUES (?, ?, to_timestamp(?), ?, ?, ?)", rows)
    found = con.execute(
        f"SELECT dst_key, ts_q, ds_q, ts_mad, ds_mad FROM ({detect.BEACON_FLOOR_SQL})"
    ).fetchall()
    assert [r[0] for r in found] == ["b"]
    _, ts_q, ds_q, ts_mad, ds_mad = found[0]
    positive = gaps[gaps > 0].astype(float)
    assert ts_q == pytest.approx(np.quantile(positive, [0.25, 0.5, 0.75]).tolist())
    assert ds_q == pytest.approx(np.quantile(sizes, [0.25, 0.5, 0.75]).tolist())
    assert ts_mad == pytest.approx(np.median(np.abs(positive - np.median(positive))))
    assert ds_mad == pytest.approx(np.median(np.abs(sizes - np.median(sizes))))
